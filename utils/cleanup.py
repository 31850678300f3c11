"""Retention: remove run folders (`<root>/runs/<run_id>`) older than the retention period.

The current artifacts under `<root>/data` are never touched, and neither is the newest run
whose modules all succeeded: its manifest names the latest good version of every artifact.
"""
from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

from phase_status import StatusError, load_status
from utils.catalog import Catalog


def _run_started(run_id: str) -> dt.datetime:
    return dt.datetime.strptime(run_id.split("-")[0], "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.timezone.utc)


def _succeeded(catalog: Catalog, run_id: str) -> bool:
    try:
        return load_status(catalog.run_file(run_id, "status")).modules_ok
    except StatusError:  # unreadable or missing: not a run to keep for its success
        return False


def cleanup_runs(root: Path, retention_days: int, dry_run: bool = False,
                 now: dt.datetime | None = None) -> list[Path]:
    """Remove (or with dry_run, list) expired run folders; returns them oldest first.

    Nothing outside the root is ever removed: a linked `runs/` is refused (ArtifactError), and a
    link among the run folders is passed over, never followed."""
    catalog = Catalog(root)
    runs = catalog.run_ids()  # oldest first: run ids start with their UTC start time
    good = [r for r in runs if _succeeded(catalog, r)]
    keep = good[-1:]  # the newest run whose modules all succeeded names the latest good artifacts
    cutoff = (now or dt.datetime.now(dt.timezone.utc)) - dt.timedelta(days=retention_days)
    expired = [catalog.run_dir(r) for r in runs if _run_started(r) < cutoff and r not in keep]
    if not dry_run:
        for run_dir in expired:
            shutil.rmtree(run_dir)
    return expired
