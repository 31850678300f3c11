"""Console and per-run file logging for the `mlb` logger tree."""
from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is when a record is emitted (a test's capture, a redirected stream)."""

    def __init__(self):
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # StreamHandler.__init__ assigns it; the property always reads sys.stderr
        pass


class NoFollowFileHandler(logging.FileHandler):
    """A FileHandler that refuses to append through a symbolic link planted at the log's path."""

    def _open(self):
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        return os.fdopen(fd, "a", encoding=self.encoding or "utf-8", errors=self.errors)


def setup_logging(level: int = logging.INFO, log_file: Path | None = None) -> logging.Logger:
    root = logging.getLogger("mlb")
    root.setLevel(level)
    root.propagate = False
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    console = StderrHandler()
    # Records logged with extra={"console": False} go to the run's log file only: the CLI prints its
    # own one-line summary of them (a failed module), and cron output should not say it twice.
    console.addFilter(lambda record: getattr(record, "console", True))
    console.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root.addHandler(console)
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handler = NoFollowFileHandler(log_file)
        handler.setFormatter(logging.Formatter(FORMAT))
        root.addHandler(handler)
    return root
