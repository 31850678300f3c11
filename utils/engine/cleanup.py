"""Retention: remove run folders (`<root>/runs/<run_id>`) and run logs (`<root>/logs/run-YYYYMMDD.log`)
older than the retention period, and the entries of the derived caches (`<cache root>/cache/` of K's
fits, the drift baselines and the stages' kept history) not used for as long.

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


# Caches made from the artifacts, cheap to make again and growing with every retrain day and season:
# K's fits (one a retrain day and lineup mode), the drift baselines and the stages' kept history; and
# in parsed/, the past seasons' game logs read together (one a span of seasons: a year's nights, each
# backtest season). The parsed seasons (one entry a season, replaced when its zip changes) and the
# downloaded answers (the network's, fetched once each) are left alone.
DERIVED_CACHES = ("models", "drift", "history")
DERIVED_ENTRIES = {"parsed": "glseasons"}  # folder: the name its derived entries start with


def cleanup_cache(cache_root: Path, retention_days: int, dry_run: bool = False,
                  now: dt.datetime | None = None) -> list[Path]:
    """Remove (or list) the entries of the DERIVED_CACHES, and the DERIVED_ENTRIES of other folders, last
    used before the retention period (a read refreshes an entry's time, ContentCache.get), each with its
    SHA-256 beside it; oldest first. A folder or entry that is a link is passed over, never followed; an
    entry being written (no digest yet) is left; a linked `cache/` is refused (ArtifactError), as a
    linked `runs/` is."""
    cutoff = ((now or dt.datetime.now(dt.timezone.utc)) - dt.timedelta(days=retention_days)).timestamp()
    expired = []
    catalog = Catalog(cache_root)
    for name in (*DERIVED_CACHES, *DERIVED_ENTRIES):
        folder = catalog.cache_path(name)  # a link on the way (cache/ itself too) is refused
        if not folder.is_dir():
            continue
        for entry in folder.iterdir():
            digest = entry.with_name(entry.name + ".sha256")
            if entry.name.endswith(".sha256") or entry.is_symlink() or not entry.is_file() or not digest.is_file():
                continue
            if name in DERIVED_ENTRIES and not entry.name.startswith(DERIVED_ENTRIES[name]):
                continue
            used = entry.lstat().st_mtime
            if used < cutoff:
                expired.append((used, entry))
    expired.sort()
    if not dry_run:
        for _used, entry in expired:
            entry.unlink(missing_ok=True)
            entry.with_name(entry.name + ".sha256").unlink(missing_ok=True)
    return [entry for _used, entry in expired]


def cleanup_report(root: Path, retention_days: int, dry_run: bool, cache_root: Path | None = None) -> str:
    """`pipeline.py cleanup`: under the run lock, as a run holds it; a line per run folder, log and cache
    entry, and a total."""
    from utils.store.locking import RunLock

    with RunLock(root):
        removed = cleanup_runs(root, retention_days, dry_run=dry_run)
        logs = cleanup_logs(root, retention_days, dry_run=dry_run)
        cached = cleanup_cache(cache_root or root, retention_days, dry_run=dry_run)
    verb = "would remove" if dry_run else "removed"
    lines = [f"{verb} {path}" for path in removed + logs + cached]
    return "\n".join([*lines, f"{verb} {len(removed)} run folder(s), {len(logs)} run log(s) and {len(cached)} "
                              f"cache entr{'y' if len(cached) == 1 else 'ies'} older than {retention_days} days"])
