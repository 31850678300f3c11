"""Phase status: what each module of the latest run did, in `<artifacts>/.phase_status.yaml`."""
from __future__ import annotations

import datetime as dt
import os
import threading
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from utils.store.artifacts import atomic_write_text
from utils.store.catalog import ArtifactError, Catalog

Status = Literal["pending", "running", "success", "failed", "skipped", "interrupted"]
StepState = Literal["running", "success", "failed", "skipped", "off", "interrupted"]


class StatusError(ValueError):
    """A phase-status file that cannot be read; the message names it."""


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

    @property
    def shown(self) -> str:
        """The status in words for a person: 'skipped' is two things, a module kept as up to date
        (nothing to do) and one that did not run because a module it reads failed."""
        if self.status == "skipped":
            return "not run" if self.error else "up to date"
        return self.status


class StepStatus(BaseModel):
    """A step after the modules (versioning, metrics): its failure fails the run too."""
    model_config = ConfigDict(extra="forbid")
    status: StepState
    error: str | None = None

    @property
    def shown(self) -> str:
        """The status in words for a person: a step is skipped only when a module failed ('not run')."""
        return "not run" if self.status == "skipped" else self.status


class RunStatus(BaseModel):
    model_config = ConfigDict(extra="forbid")
    run_id: str
    as_of: dt.date | None = None
    executor: str
    started_at: dt.datetime
    finished_at: dt.datetime | None = None
    phases: dict[str, PhaseStatus] = {}
    steps: dict[str, StepStatus] = {}
    interrupted: str | None = Field(None, description="the signal that stopped the run, if one did")

    @property
    def modules_ok(self) -> bool:
        """Every module succeeded or was kept as up to date."""
        return bool(self.phases) and all(p.status in ("success", "skipped") and not p.error
                                         for p in self.phases.values())

    @property
    def ok(self) -> bool:
        """The run did everything it set out to: modules, versioning and metrics."""
        return self.modules_ok and not self.interrupted and all(s.status in ("success", "off")
                                                                for s in self.steps.values())

    def ok_before(self, step: str) -> bool:
        """Everything went well up to `step` (the metrics use it to decide what counts as a success)."""
        return self.modules_ok and all(s.status in ("success", "off") for n, s in self.steps.items() if n != step)


MAX_STATUS_BYTES = 1_000_000  # a run of twelve modules writes a few kilobytes


class _NoAliases(yaml.SafeLoader):
    """Safe YAML without anchors and aliases: the pipeline never writes them, and nested aliases
    expand into gigabytes (a 'billion laughs' planted in a status file)."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            raise yaml.YAMLError("aliases are not allowed in a phase status")
        return super().compose_node(parent, index)


def load_status(path: Path) -> RunStatus:
    """A status file as a RunStatus; StatusError naming the file when it is not one."""
    try:
        with open(path, "rb") as handle:
            text = handle.read(MAX_STATUS_BYTES + 1)
        if len(text) > MAX_STATUS_BYTES:
            raise ValueError(f"larger than {MAX_STATUS_BYTES:,} bytes")
        return RunStatus.model_validate(yaml.load(text.decode(), Loader=_NoAliases))  # noqa: S506 (a SafeLoader)
    except ValidationError as exc:
        first = exc.errors()[0]
        reason = "empty" if first["type"] == "model_type" and not first.get("input") else \
            f"{'.'.join(str(p) for p in first['loc']) or 'top level'}: {first['msg']}"
        raise StatusError(f"{path}: unreadable phase status ({reason})") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError, ValueError, RecursionError) as exc:
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise StatusError(f"{path}: unreadable phase status ({reason})") from None


INTERRUPTED = "interrupted: the run ended while this module was running"


def read_status(root: Path | str, run_alive: bool = False) -> RunStatus | None:
    """The latest run's status. A run that never finished and no longer holds the lock was killed:
    its running module is reported failed, and modules it never reached stay pending."""
    path = Catalog(root).status_file
    if not path.exists():
        return None
    run = load_status(path)
    if run.finished_at is None and not run_alive:
        phases = {m: p.model_copy(update={"status": "failed", "error": INTERRUPTED}) if p.status == "running" else p
                  for m, p in run.phases.items()}
        run = run.model_copy(update={"phases": phases})
    return run


class StatusRecorder:
    """The single writer of a run's status: every update rewrites the file atomically under a lock,
    so modules finishing at once on different threads cannot interleave their writes."""

    def __init__(self, root: Path | str, run: RunStatus, copy_to: Path | None = None):
        self.path = Catalog(root).status_file
        self.copy_to = copy_to
        self.run = run
        self.previous: Path | None = None  # the last run's status, kept aside while this one runs
        self._lock = threading.RLock()  # re-entered by a signal handler on the thread that holds it

    def update(self, phase: PhaseStatus) -> None:
        with self._lock:
            self.run = self.run.model_copy(update={"phases": {**self.run.phases, phase.module: phase}})
            self._flush()

    def step(self, name: str, status: str, error: str | None = None) -> None:
        with self._lock:
            steps = {**self.run.steps, name: StepStatus(status=status, error=error)}
            self.run = self.run.model_copy(update={"steps": steps})
            self._flush()

    def finish(self, interrupted: str | None = None) -> RunStatus:
        """Close the run. An interrupted run marks its running modules and steps 'interrupted'."""
        with self._lock:
            update: dict = {"finished_at": dt.datetime.now(dt.timezone.utc)}
            if interrupted:
                update["interrupted"] = interrupted
                update["phases"] = {m: p.model_copy(update={"status": "interrupted",
                                                            "error": f"interrupted by {interrupted}"})
                                    if p.status == "running" else p for m, p in self.run.phases.items()}
                update["steps"] = {n: s.model_copy(update={"status": "interrupted"}) if s.status == "running" else s
                                   for n, s in self.run.steps.items()}
            self.run = self.run.model_copy(update=update)
            self._flush()
            return self.run

    def _flush(self) -> None:
        text = yaml.safe_dump(self.run.model_dump(mode="json"), sort_keys=False)
        if self.previous is None:  # the run's first write: keep the last run's status until this one ends
            self.previous = self.path.with_name(self.path.name + ".previous")
            self.previous.unlink(missing_ok=True)
            if self.path.is_file() and not self.path.is_symlink():
                os.link(self.path, self.previous, follow_symlinks=False)  # a name, not a copy: no space needed
        try:
            atomic_write_text(self.path, text)
            if self.copy_to is not None:
                atomic_write_text(self.copy_to, text)
        except OSError as exc:  # a full disk: the last run's status comes back (a rename needs no space)
            if self.previous.exists():
                os.replace(self.previous, self.path)
                exc.status_untouched = True
            raise
        if self.run.finished_at is not None:
            self.previous.unlink(missing_ok=True)


def status_table(status: RunStatus) -> str:
    """A run's modules and steps, one line each (`pipeline.py run` and `status`)."""
    rows = [f"run {status.run_id}  as of {status.as_of}  executor {status.executor}",
            f"{'id':<3} {'module':<10} {'status':<11} {'seconds':>8}  outputs / error"]
    for phase in status.phases.values():
        detail = phase.error or ", ".join(f"{o.name}:{'-' if o.rows is None else o.rows} rows sha {o.sha256[:10]}"
                                          for o in phase.outputs)
        secs = f"{phase.duration_seconds:.2f}" if phase.duration_seconds is not None else "-"
        rows.append(f"{phase.module:<3} {phase.name:<10} {phase.shown:<11} {secs:>8}  {detail}")
    for name, step in status.steps.items():
        rows.append(f"{'-':<3} {name:<10} {step.shown:<11} {'-':>8}  {step.error or ''}".rstrip())
    if status.interrupted:
        rows.append(f"run interrupted by {status.interrupted}")
    return "\n".join(rows)


def run_result(status: RunStatus) -> str:
    """One word for a run: ok, failed, interrupted, or unfinished (still running, or killed)."""
    if status.interrupted:
        return "interrupted"
    if status.finished_at is None:
        return "unfinished"
    return "ok" if status.ok else "failed"


def runs_table(catalog: Catalog, last: int = 20) -> str:
    """The newest `last` runs kept under the root, oldest first (`pipeline.py runs`)."""
    rows = [f"{'run id':<24} {'as of':<10} {'result':<11} {'seconds':>8}  versioned"]
    for run_id in catalog.run_ids()[-last:]:
        try:
            run = load_status(catalog.run_file(run_id, "status"))
        except (StatusError, ArtifactError) as exc:
            rows.append(f"{run_id:<24} {'?':<10} {'unreadable':<11} {'-':>8}  {exc}")
            continue
        seconds = f"{(run.finished_at - run.started_at).total_seconds():.1f}" if run.finished_at else "-"
        step = run.steps.get("versioning")
        said = f"{step.status}{': ' + step.error if step.error else ''}" if step else ""
        if catalog.run_file(run_id, "dvc_lock").is_file():  # kept before the push: the step says how it ended
            versioned = "yes" if not step or step.status in ("success", "off") else \
                f"partly (dvc.lock kept; versioning {said})"  # failed, interrupted, or killed while running
        else:
            versioned = f"no ({said})" if step else "no"
        rows.append(f"{run_id:<24} {str(run.as_of or '-'):<10} {run_result(run):<11} {seconds:>8}  {versioned}")
    if len(rows) == 1:
        rows.append(f"(no runs under {catalog.runs_dir})")
    return "\n".join(rows)


def latest_status(root: Path | str) -> RunStatus | None:
    """The latest run's status, knowing whether a live run still holds the root."""
    from utils.store.locking import RunLock

    return read_status(root, run_alive=RunLock(root).is_held())


def latest_status_text(root: Path | str) -> str:
    """What `pipeline.py status` prints: the latest run's table, or that there is none."""
    current = latest_status(root)
    return status_table(current) if current is not None else f"no run recorded under {root}"
