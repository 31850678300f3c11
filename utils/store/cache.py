"""The one cache: key -> bytes, each entry beside its SHA-256, published atomically, never read through a link.

Every cache of the pipeline is a `ContentCache` over one folder of `<root>/cache/`: A's parsed seasons
(game logs and play-by-play), K's drift baselines, the Stats API's settled answers. An entry is a file
and, beside it, `<file>.sha256`; a read that does not verify (changed bytes, a link, a half-written
pair) is a miss with a warning, so the worst a damaged cache costs is the work again.

Two kinds of name:
- `get(name)` / `put(name, payload)`: an entry named by what it is (a game's box score by its gamePk).
- `get_keyed(stem, key, suffix)` / `publish(stem, key, {suffix: payload})`: an entry named by a key of
  what it was made from (`ContentCache.key`: a zip's bytes, a parser's version); publishing a new key
  for a stem drops the stem's older keys, so a season re-published by Retrosheet leaves one parse.

`claim(stem)` is a lock on a stem (an `flock`, dropped by the kernel when the holder dies): a process
that must make an entry takes it first, and a second process needing the same entry waits and then
reads it, so two runs (two backtest seasons on Dask) that need the same cold season make it once.
"""
from __future__ import annotations

import errno
import fcntl
import hashlib
import logging
import os
import re
import stat
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from utils.store.artifacts import read_verified, write_verified

log = logging.getLogger("mlb.cache")

_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*")  # never "..", never hidden (".locks" is the cache's)


class ContentCache:
    def __init__(self, folder: Path | str):
        self.folder = Path(folder)

    @staticmethod
    def key(*parts: bytes | str) -> str:
        """A key for what an entry is made from: the SHA-256 of the parts (each length-prefixed, so no two
        different lists of parts give one key), 16 hex digits."""
        digest = hashlib.sha256()
        for part in parts:
            data = part.encode() if isinstance(part, str) else part
            digest.update(len(data).to_bytes(8, "big") + data)
        return digest.hexdigest()[:16]

    def path(self, name: str) -> Path:
        """The entry's file: `name` is relative, each part a plain file name (no `..`, nothing absolute)."""
        parts = name.split("/")
        if not all(_NAME.fullmatch(part) for part in parts):
            raise ValueError(f"cache entry name {name!r} is not a plain relative name")
        return self.folder.joinpath(*parts)

    def _linked_folder(self, name: str) -> Path | None:
        """The first folder on the way to the entry that is a symbolic link, if any."""
        folder = self.folder
        for part in name.split("/")[:-1]:
            folder = folder / part
            if folder.is_symlink():
                return folder
        return None

    def get(self, name: str) -> bytes | None:
        path, linked = self.path(name), self._linked_folder(name)
        if linked is not None:
            log.warning("%s: a symbolic link inside the cache; never followed, the entry is made again", linked)
            return None
        payload = read_verified(path)
        if payload is not None:
            try:  # its last use: cleanup prunes the derived caches' entries unused for the retention period
                os.utime(path, follow_symlinks=False)
            except OSError:
                pass
        return payload

    def put(self, name: str, payload: bytes) -> None:
        """Write the entry; a folder on its way that is a link is replaced by a real one (the link's
        target is left as it was)."""
        path = self.path(name)
        while (linked := self._linked_folder(name)) is not None:
            linked.unlink()
        write_verified(path, payload)

    def get_keyed(self, stem: str, key: str, suffix: str = "") -> bytes | None:
        return self.get(f"{stem}-{key}{suffix}")

    def publish(self, stem: str, key: str, entries: dict[str, bytes]) -> None:
        """Write the entries of `stem` at `key` (suffix -> bytes) and drop the stem's entries at other keys."""
        self.folder.mkdir(parents=True, exist_ok=True)
        for old in self.folder.glob(f"{stem}-*"):
            if not old.name.startswith(f"{stem}-{key}"):  # another process may be writing this very key
                old.unlink(missing_ok=True)
        for suffix, payload in entries.items():
            self.put(f"{stem}-{key}{suffix}", payload)

    @contextmanager
    def claim(self, stem: str, wait: bool = True) -> Iterator[bool]:
        """Hold the stem's lock while making its entry; yields False (without waiting) when `wait` is
        False and another process holds it. Neither `.locks` nor the lock file is followed if a link; one
        that cannot be used (a link, a FIFO, a read-only disk) costs the guarantee, not the run: a warning,
        and the entry is made without the lock (at worst twice, as before there was one)."""
        folder = self.folder / ".locks"
        lock = folder / f"{self.path(stem).name}.lock"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            if folder.is_symlink() or not folder.is_dir():
                raise OSError(errno.ENOTDIR, "not a folder of this cache", str(folder))
            fd = os.open(lock, os.O_RDONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644)
        except OSError as exc:
            log.warning("%s: cannot take the lock (%s); making the entry without it", lock, exc.strerror or exc)
            yield True
            return
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                log.warning("%s: not a regular file; making the entry without the lock", lock)
                yield True
                return
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
