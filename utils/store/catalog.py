"""The catalog: every path under the artifacts root, by what it is.

Stages, the runner, the CLI, retention, versioning, metrics and the viewer ask it for paths; no
other file names a folder or file of the layout (tests/test_code_rules.py checks; versioning opens a
run folder's files by the names in RUN_FILES). Every path it gives lies
inside the root with no symbolic link between the root and it (`safe_path`), so nothing the
pipeline writes or deletes can land outside the root, whatever was linked there.

    <root>/data/<name>.<suffix> (+ .meta.json)   artifacts and their sidecars
    <root>/runs/<run_id>/                         each run's status copy, manifest, dvc.lock
    <root>/backtest/<season>/                     a season's backtest: a catalog of its own
    <root>/cache/<name>/                          downloads, parsed seasons, fits, kept rows' records: by content (a
                                                  backtest's catalog uses its parent root's)
    <root>/metrics/, <root>/logs/                 Prometheus textfile, last success; run logs
    <root>/.phase_status.yaml, <root>/.run.lock   the latest run's status; one run at a time
"""
from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path

from utils.store.schema import Contract, load_contract

LOG_NAME = re.compile(r"run-\d{8}\.log")
RUN_ID = re.compile(r"\d{8}T\d{6}Z-[0-9a-f]{6}")  # a run's folder name under <root>/runs
STATUS_FILE = ".phase_status.yaml"
LOCK_FILE = ".run.lock"
RUN_FILES = {"status": "phase_status.yaml", "manifest": "manifest.json", "dvc_lock": "dvc.lock"}


class ArtifactError(RuntimeError):
    """A missing, corrupt, forbidden-to-overwrite or out-of-root artifact; the message names the file."""


def safe_path(root: Path | str, path: Path | str) -> Path:
    """`path` (absolute) when it lies under `root` and nothing between them is a symbolic link.

    The root itself may be a link (an operator's choice of disk); a link *inside* it is refused, so
    no write or delete of the pipeline's ever lands outside the root, whatever was linked there.
    """
    base, target = Path(os.path.abspath(root)), Path(os.path.abspath(path))
    try:
        parts = target.relative_to(base).parts
    except ValueError:
        raise ArtifactError(f"{path}: outside the artifacts root {root}; refusing to touch it") from None
    current = base
    for part in parts:
        current = current / part
        if current.is_symlink():
            raise ArtifactError(f"{current}: is a symbolic link inside the artifacts root; refusing to follow it")
    return target


class Catalog:
    """Paths under one artifacts root; each checked by `safe_path` when asked for."""

    def __init__(self, root: Path | str, schema_dir: Path | str = "schemas", cache_root: Path | str | None = None):
        """`cache_root`: the root whose `cache/` this catalog uses (a backtest shares its parent's)."""
        self.root = Path(root)
        self.schema_dir = Path(schema_dir)
        self.cache_root = Path(cache_root) if cache_root is not None else self.root

    def _under(self, *parts: str) -> Path:
        return safe_path(self.root, self.root.joinpath(*parts))

    def contract(self, name: str) -> Contract:
        return load_contract(self.schema_dir, name)

    def artifact(self, name: str) -> Path:
        return self._under("data", f"{name}{self.contract(name).suffix}")

    def sidecar(self, name: str) -> Path:
        """`<artifact>.meta.json`, checked like the artifact: a link planted there is never followed."""
        return self._under("data", f"{name}{self.contract(name).suffix}.meta.json")

    def data_relpath(self, name: str) -> Path:
        """The artifact's path relative to the root (how dvc.yaml names it under the tracked root)."""
        return self.artifact(name).relative_to(os.path.abspath(self.root))

    @property
    def status_file(self) -> Path:
        return self._under(STATUS_FILE)

    @property
    def lock_file(self) -> Path:
        return self._under(LOCK_FILE)

    @property
    def runs_dir(self) -> Path:
        return self._under("runs")

    def run_dir(self, run_id: str) -> Path:
        """The folder of run `run_id`; ArtifactError unless the id is of the pipeline's own format."""
        if not RUN_ID.fullmatch(run_id):
            raise ArtifactError(f"'{run_id}' is not a run id (YYYYMMDDTHHMMSSZ-xxxxxx)")
        return self._under("runs", run_id)

    def run_file(self, run_id: str, kind: str) -> Path:
        """A file of a run's folder: its `status` copy, `manifest` of artifact hashes, or `dvc_lock`."""
        return self._under("runs", run_id, RUN_FILES[kind]) if RUN_ID.fullmatch(run_id) else self.run_dir(run_id)

    def run_ids(self) -> list[str]:
        """Run folders, oldest first: real folders named like a run id (a link among them is passed over)."""
        runs = self.runs_dir
        if not runs.is_dir():
            return []
        return sorted(d.name for d in runs.iterdir() if RUN_ID.fullmatch(d.name) and not d.is_symlink()
                      and d.is_dir())

    def backtest(self, season: int, lineups: str = "expected") -> Catalog:
        """The catalog of a season's backtest, `<root>/backtest/<season>/`; the walk of the game-time run's
        models (`run.lineups: confirmed`) is kept beside it in `<season>-confirmed/`."""
        if lineups not in ("expected", "confirmed"):
            raise ValueError(f"run.lineups: {lineups!r} is not expected or confirmed")
        name = str(int(season)) if lineups == "expected" else f"{int(season)}-{lineups}"
        return Catalog(self._under("backtest", name), self.schema_dir, self.cache_root)

    def backtest_seasons(self, lineups: str = "expected") -> list[int]:
        """The seasons with a backtest folder of the morning's models (`<season>/`) or, with
        lineups="confirmed", of the game-time run's (`<season>-confirmed/`)."""
        folder = self._under("backtest")
        if not folder.is_dir():
            return []
        suffix = "" if lineups == "expected" else f"-{lineups}"
        return sorted(int(d.name.removesuffix(suffix)) for d in folder.iterdir()
                      if d.name.endswith(suffix) and d.name.removesuffix(suffix).isdigit() and not d.is_symlink())

    def cache(self, name: str) -> Path:
        """`<cache root>/cache/<name>/`, created: content-keyed, so a backtest shares its parent's."""
        path = self.cache_path(name)
        path.mkdir(parents=True, exist_ok=True)
        return safe_path(self.cache_root, path)

    def cache_path(self, name: str) -> Path:
        """`<cache root>/cache/<name>/` as it is, never created (a dry run's or cleanup's look); a link on
        the way is refused (ArtifactError)."""
        return safe_path(self.cache_root, self.cache_root / "cache" / name)

    @property
    def metrics_file(self) -> Path:
        return self._under("metrics", "mlb_pipeline.prom")

    @property
    def last_success_file(self) -> Path:
        return self._under("metrics", "last_success_timestamp")

    def log_file(self, day: dt.date) -> Path:
        return self._under("logs", f"run-{day:%Y%m%d}.log")

    def log_days(self) -> dict[dt.date, Path]:
        """The run logs by day: real files named like one (a link, or cron's own log, is passed over)."""
        logs = self._under("logs")
        if not logs.is_dir():
            return {}
        found = {}
        for path in logs.iterdir():
            if LOG_NAME.fullmatch(path.name) and path.is_file() and not path.is_symlink():
                found[dt.datetime.strptime(path.name[4:12], "%Y%m%d").date()] = path
        return found
