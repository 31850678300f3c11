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
from pathlib import Path

from utils.catalog import ArtifactError, Catalog

log = logging.getLogger("mlb.lock")


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

    def holder(self) -> dict | None:
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:  # absent, a link, or under a link (LockError)
            return None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            return None
        with os.fdopen(fd, "rb") as handle:
            text = handle.read(4096)
        try:
            holder = json.loads(text or b"null")
        except (json.JSONDecodeError, UnicodeDecodeError):
            return None
        return holder if isinstance(holder, dict) else None

    def is_held(self) -> bool:
        """Whether a live process holds the lock now (probes without taking it)."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:  # absent, or a link no run of ours could hold (LockError is an OSError too)
            return False
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False

    def acquire(self) -> RunLock:
        path = self.path  # LockError when a link inside the root leads elsewhere
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # O_NOFOLLOW: a link planted at .run.lock must not get its target truncated
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644)
            if not stat.S_ISREG(os.fstat(fd).st_mode):  # a FIFO or device planted there would block reads
                os.close(fd)
                raise OSError(errno.EINVAL, "not a regular file")
        except OSError as exc:
            reason = "is a symbolic link; refusing to follow it" if exc.errno == errno.ELOOP else \
                f"cannot take the run lock ({exc.strerror or exc})"
            raise LockError(f"{path}: {reason}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            who = self.holder() or {}
            raise LockHeld(
                f"{self.path}: another run holds the artifacts root "
                f"(pid {who.get('pid', '?')} on {who.get('host', '?')}, started {who.get('started_at', '?')})"
            ) from None
        stale = self.holder()
        if stale:
            log.warning("took over a stale lock left by pid %s (started %s)", stale.get("pid"), stale.get("started_at"))
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        }
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(info).encode(), 0)
        except OSError as exc:
            os.close(fd)
            raise LockError(f"{self.path}: cannot record the run lock's holder ({exc.strerror or exc})") from None
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        os.ftruncate(self._fd, 0)
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire() if self._fd is None else self

    def __exit__(self, *exc) -> None:
        self.release()
