"""Retention: remove run folders (`<root>/runs/<run_id>`) and run logs (`<root>/logs/run-YYYYMMDD.log`)
older than the retention period.

The current artifacts under `<root>/data` are never touched, and for every artifact the newest
successful run that wrote it is kept: its manifest (and dvc.lock) names that artifact's latest good
version, even when later runs ran only some modules.
"""
from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

from phase_status import StatusError, load_status
from utils.store.catalog import ArtifactError, Catalog


def _run_started(run_id: str) -> dt.datetime:
    return dt.datetime.strptime(run_id.split("-")[0], "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.timezone.utc)


def _good_artifacts(catalog: Catalog, run_id: str) -> set[str]:
    """The artifacts a run wrote, if every module of it succeeded; none for a failed or unreadable run."""
    try:
        status = load_status(catalog.run_file(run_id, "status"))
    except (StatusError, ArtifactError):  # unreadable, or a link planted in the run folder
        return set()
    return {o.name for p in status.phases.values() for o in p.outputs} if status.modules_ok else set()


def cleanup_runs(root: Path, retention_days: int, dry_run: bool = False,
                 now: dt.datetime | None = None) -> list[Path]:
    """Remove (or with dry_run, list) expired run folders; returns them oldest first.

    Nothing outside the root is ever removed: a linked `runs/` is refused (ArtifactError), and a
    link among the run folders is passed over, never followed."""
    catalog = Catalog(root)
    runs = catalog.run_ids()  # oldest first: run ids start with their UTC start time
    newest_good: dict[str, str] = {}
    for run_id in runs:
        for name in _good_artifacts(catalog, run_id):
            newest_good[name] = run_id
    keep = set(newest_good.values())
    cutoff = (now or dt.datetime.now(dt.timezone.utc)) - dt.timedelta(days=retention_days)
    expired = [catalog.run_dir(r) for r in runs if _run_started(r) < cutoff and r not in keep]
    if not dry_run:
        for run_dir in expired:
            shutil.rmtree(run_dir)
    return expired


def cleanup_logs(root: Path, retention_days: int, dry_run: bool = False, now: dt.datetime | None = None) -> list[Path]:
    """Remove (or list) the run logs of days before the retention period, oldest first; a log that is
    a link, or a file not named like a run log (cron's own), is left alone."""
    today = (now or dt.datetime.now(dt.timezone.utc)).date()
    days = Catalog(root).log_days()
    expired = [days[day] for day in sorted(days) if day < today - dt.timedelta(days=retention_days)]
    if not dry_run:
        for path in expired:
            path.unlink(missing_ok=True)
    return expired


def cleanup_report(root: Path, retention_days: int, dry_run: bool) -> str:
    """`pipeline.py cleanup`: under the run lock, as a run holds it; a line per run folder and a total."""
    from utils.store.locking import RunLock

    with RunLock(root):
        removed = cleanup_runs(root, retention_days, dry_run=dry_run)
        logs = cleanup_logs(root, retention_days, dry_run=dry_run)
    verb = "would remove" if dry_run else "removed"
    lines = [f"{verb} {path}" for path in removed + logs]
    return "\n".join([*lines, f"{verb} {len(removed)} run folder(s) and {len(logs)} run log(s) older than "
                              f"{retention_days} days"])
