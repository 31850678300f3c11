"""One run at a time per artifacts root.

The lock is an `flock` on `<root>/.run.lock`; the kernel drops it when the holder dies, so a
lock left by a killed run is stale by construction and the next run takes it over. The file
holds the holder's pid and start time so a refused run can name it.
"""
from __future__ import annotations

import datetime as dt
import errno
import fcntl
import json
import logging
import os
import socket
import stat
import time
from pathlib import Path

from utils.store.catalog import ArtifactError, Catalog

log = logging.getLogger("mlb.lock")


PROBE_RETRIES, PROBE_WAIT_SECONDS = 20, 0.05  # a second at most, for a reader's shared-lock probe to pass


def _printable(value: object) -> str:
    """A value read from the lock file, as one short line: the file is anyone's to write, and its text
    goes into a one-line error (a newline there would print a line of its own)."""
    return "".join(c if c.isprintable() else " " for c in " ".join(str(value).split()))[:80]


class LockHeld(RuntimeError):
    """Another run holds the artifacts root."""


class LockError(OSError):
    """The lock file cannot be taken at all (a link, a read-only or full disk); the message names it."""


class RunLock:
    def __init__(self, root: Path | str):
        self.catalog = Catalog(root)
        self._fd: int | None = None

    @property
    def path(self) -> Path:
        """`<root>/.run.lock`; LockError if a link inside the root leads elsewhere."""
        try:
            return self.catalog.lock_file
        except ArtifactError as exc:
            raise LockError(str(exc)) from None

    def _open_regular(self, flags: int) -> int:
        """An fd of the lock file: never through a link (O_NOFOLLOW), never blocking on a FIFO planted
        there (O_NONBLOCK), and only a regular file; OSError otherwise."""
        fd = os.open(self.path, flags | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise OSError(errno.EINVAL, "not a regular file")
        return fd

    def holder(self) -> dict | None:
        try:
            fd = self._open_regular(os.O_RDONLY)
        except OSError:  # absent, a link, not a file, or under a link (LockError)
            return None
        with os.fdopen(fd, "rb") as handle:
            text = handle.read(4096)
        try:
            holder = json.loads(text or b"null")
        except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested beyond reason: anyone can write it
            return None
        return holder if isinstance(holder, dict) else None

    def is_held(self) -> bool:
        """Whether a live process holds the lock now (probes with a shared lock, released at once)."""
        try:
            fd = self._open_regular(os.O_RDONLY)
        except OSError:  # absent, or a link no run of ours could hold (LockError is an OSError too)
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return True
        finally:
            os.close(fd)
        return False

    def acquire(self) -> RunLock:
        if self._fd is not None:
            return self
        path = self.path  # LockError when a link inside the root leads elsewhere
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = self._open_regular(os.O_RDWR | os.O_CREAT)  # a link there must not get its target truncated
        except OSError as exc:
            reason = "is a symbolic link; refusing to follow it" if exc.errno == errno.ELOOP else \
                f"cannot take the run lock ({exc.strerror or exc})"
            raise LockError(f"{path}: {reason}") from None
        try:
            self._lock(fd)
            stale = self.holder()
            if stale:
                log.warning("took over a stale lock left by pid %s (started %s)", _printable(stale.get("pid")),
                            _printable(stale.get("started_at")))
            info = {"pid": os.getpid(), "host": socket.gethostname(),
                    "started_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(info).encode(), 0)
        except LockHeld:
            os.close(fd)
            raise
        except OSError as exc:
            os.close(fd)
            raise LockError(f"{path}: cannot take the run lock ({exc.strerror or exc})") from None
        self._fd = fd
        return self

    def _lock(self, fd: int) -> None:
        """flock, retried for a moment: `status` or the viewer may be probing with a shared lock."""
        for attempt in range(PROBE_RETRIES):
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if attempt == PROBE_RETRIES - 1:
                    who = {k: _printable(v) for k, v in (self.holder() or {}).items()}
                    raise LockHeld(f"{self.path}: another run holds the artifacts root (pid {who.get('pid', '?')} "
                                   f"on {who.get('host', '?')}, started {who.get('started_at', '?')})") from None
                time.sleep(PROBE_WAIT_SECONDS)

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)
        except OSError:  # a full or read-only disk: the unlock below still frees the root
            log.debug("could not clear the lock file's holder", exc_info=True)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def __enter__(self) -> RunLock:
        return self.acquire() if self._fd is None else self

    def __exit__(self, *exc) -> None:
        self.release()
