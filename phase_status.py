"""Phase status: what each module of the latest run did, in `<artifacts>/.phase_status.yaml`."""
from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from utils.artifacts import atomic_write_text

Status = Literal["pending", "running", "success", "failed", "skipped"]
STATUS_FILE = ".phase_status.yaml"


class OutputStatus(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    path: str
    sha256: str
    rows: int | None = None
    validator: str


class PhaseStatus(BaseModel):
    model_config = ConfigDict(extra="forbid")
    module: str
    name: str
    status: Status
    git_sha: str | None = None
    timestamp: dt.datetime = Field(default_factory=lambda: dt.datetime.now(dt.timezone.utc))
    validator: str | None = Field(None, description="schema name@version of each output, comma-separated")
    duration_seconds: float | None = None
    outputs: list[OutputStatus] = []
    metrics: dict[str, float] = {}
    error: str | None = None


class RunStatus(BaseModel):
    model_config = ConfigDict(extra="forbid")
    run_id: str
    as_of: dt.date | None = None
    executor: str
    started_at: dt.datetime
    finished_at: dt.datetime | None = None
    phases: dict[str, PhaseStatus] = {}


INTERRUPTED = "interrupted: the run ended while this module was running"


def read_status(root: Path | str, run_alive: bool = False) -> RunStatus | None:
    """The latest run's status. A run that never finished and no longer holds the lock was killed:
    its running module is reported failed, and modules it never reached stay pending."""
    path = Path(root) / STATUS_FILE
    if not path.exists():
        return None
    run = RunStatus.model_validate(yaml.safe_load(path.read_text()))
    if run.finished_at is None and not run_alive:
        phases = {m: p.model_copy(update={"status": "failed", "error": INTERRUPTED}) if p.status == "running" else p
                  for m, p in run.phases.items()}
        run = run.model_copy(update={"phases": phases})
    return run


class StatusRecorder:
    """The single writer of a run's status: every update rewrites the file atomically under a lock,
    so modules finishing at once on different threads cannot interleave their writes."""

    def __init__(self, root: Path | str, run: RunStatus, copy_to: Path | None = None):
        self.path = Path(root) / STATUS_FILE
        self.copy_to = copy_to
        self.run = run
        self._lock = threading.Lock()

    def update(self, phase: PhaseStatus) -> None:
        with self._lock:
            self.run = self.run.model_copy(update={"phases": {**self.run.phases, phase.module: phase}})
            self._flush()

    def finish(self) -> RunStatus:
        with self._lock:
            self.run = self.run.model_copy(update={"finished_at": dt.datetime.now(dt.timezone.utc)})
            self._flush()
            return self.run

    def _flush(self) -> None:
        text = yaml.safe_dump(self.run.model_dump(mode="json"), sort_keys=False)
        atomic_write_text(self.path, text)
        if self.copy_to is not None:
            atomic_write_text(self.copy_to, text)
