"""Retention: remove run folders (`<root>/runs/<run_id>`) older than the retention period.

The current artifacts under `<root>/data` are never touched, and neither is the newest run
whose modules all succeeded: its manifest names the latest good version of every artifact.
"""
from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

from phase_status import StatusError, load_status
from utils.artifacts import safe_path


def _run_started(run_dir: Path) -> dt.datetime | None:
    try:
        return dt.datetime.strptime(run_dir.name.split("-")[0], "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.timezone.utc)
    except ValueError:
        return None


def _succeeded(run_dir: Path) -> bool:
    try:
        return load_status(run_dir / "phase_status.yaml").modules_ok
    except StatusError:  # unreadable or missing: not a run to keep for its success
        return False


def cleanup_runs(root: Path, retention_days: int, dry_run: bool = False,
                 now: dt.datetime | None = None) -> list[Path]:
    """Remove (or with dry_run, list) expired run folders; returns them oldest first.

    Nothing outside the root is ever removed: a linked `runs/` is refused (ArtifactError), and a
    link among the run folders is passed over, never followed."""
    runs_dir = safe_path(root, Path(root) / "runs")
    if not runs_dir.is_dir():
        return []
    runs = sorted((d for d in runs_dir.iterdir() if not d.is_symlink() and d.is_dir() and _run_started(d)),
                  key=_run_started)
    keep = {d for d in reversed(runs) if _succeeded(d)}
    keep = {max(keep, key=_run_started)} if keep else set()
    cutoff = (now or dt.datetime.now(dt.timezone.utc)) - dt.timedelta(days=retention_days)
    expired = [d for d in runs if _run_started(d) < cutoff and d not in keep]
    if not dry_run:
        for run_dir in expired:
            shutil.rmtree(run_dir)
    return expired
