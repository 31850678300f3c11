"""One run at a time per artifacts root.

The lock is an `flock` on `<root>/.run.lock`; the kernel drops it when the holder dies, so a
lock left by a killed run is stale by construction and the next run takes it over. The file
holds the holder's pid and start time so a refused run can name it.
"""
from __future__ import annotations

import datetime as dt
import fcntl
import json
import logging
import os
import socket
from pathlib import Path

log = logging.getLogger("mlb.lock")
LOCK_FILE = ".run.lock"


class LockHeld(RuntimeError):
    """Another run holds the artifacts root."""


class RunLock:
    def __init__(self, root: Path | str):
        self.path = Path(root) / LOCK_FILE
        self._fd: int | None = None

    def holder(self) -> dict | None:
        try:
            return json.loads(self.path.read_text() or "null")
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def is_held(self) -> bool:
        """Whether a live process holds the lock now (probes without taking it)."""
        if not self.path.exists():
            return False
        fd = os.open(self.path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False

    def acquire(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
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
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
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
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
