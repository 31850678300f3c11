"""Backtests of many seasons at once, spread over a Dask cluster.

Each season's backtest is independent (its own root `<artifacts>/backtest/<season>/`, its own lock)
and takes a minute or two, so the seasons fan out as tasks: `dask.distributed` directly, with a
local cluster sized to the machine by default, or `backtest.dask_scheduler` (`--dask-scheduler`)
for a running cluster. Every worker runs the very function a serial run calls (`run_backtest`),
reading the game logs from the configured source and writing under the configured root, so the
files are the serial run's byte for byte (tests/test_scale.py). A worker needs what the serial run
needs: the same code and package versions, and the same paths (a shared folder) or URLs.
"""
from __future__ import annotations

import datetime as dt
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from utils.flows.backtest import BacktestError, run_backtest

SEASON_SPEC = re.compile(r"^(\d{4})(?:-(\d{4}))?$")


@dataclass
class SeasonResult:
    season: int
    summary: dict | None = None
    predictions: Path | None = None
    error: str | None = None


FIRST_SEASON = 1871  # Retrosheet's first game log


def parse_seasons(values: list[str], this_season: int) -> list[int]:
    """`--season` values: 2023, a range 2016-2024, or a comma list 2016,2018; sorted, without repeats,
    each from 1871 to this season."""
    seasons: set[int] = set()
    for value in values:
        for part in (p.strip() for p in value.split(",")):
            match = SEASON_SPEC.match(part)
            if not match:
                raise ValueError(f"--season: '{part}' is not a season (2023), a range (2016-2024) or a list")
            first, last = int(match.group(1)), int(match.group(2) or match.group(1))
            if last < first:
                raise ValueError(f"--season: '{part}' is not a range of seasons, first to last")
            if first < FIRST_SEASON or last > this_season:
                raise ValueError(f"--season: '{part}' is outside the seasons there are, {FIRST_SEASON}-{this_season}")
            seasons.update(range(first, last + 1))
    if not seasons:
        raise ValueError("--season: no season given")
    return sorted(seasons)


def portable(cfg) -> dict:
    """The config as plain data a worker rebuilds, with the local paths made absolute: a worker's
    working folder is not the caller's."""
    raw = cfg.model_dump(mode="json")
    raw["paths"] = {key: None if value is None else str(Path(value).resolve()) for key, value in raw["paths"].items()}
    for key in ("base_url", "events_url"):
        url = raw["sources"]["retrosheet"][key]
        if not url.startswith("https://") and url not in ("auto", "off"):
            raw["sources"]["retrosheet"][key] = str(Path(url).resolve())
    return raw


def season_task(raw: dict, season: int, today: str) -> tuple[dict, str]:
    """One season's backtest on a worker: the serial run's own function, with no progress bar (the
    caller draws one for the seasons)."""
    from utils.config import build_config
    from utils.engine import progress

    progress.QUIET = True
    summary, path = run_backtest(build_config(raw), season, dt.date.fromisoformat(today))
    return summary, str(path)


def local_workers(cfg) -> int:
    """One worker process per core: each fit takes only the cores the other workers leave free
    (utils/engine/threads.py), so two seasons on two cores train on a thread each."""
    from utils.engine.threads import usable_cores

    return cfg.backtest.local_workers or usable_cores()


def backtest_seasons(cfg, seasons: list[int], today: dt.date, serial: bool,
                     on_done: Callable[[SeasonResult], None] = lambda result: None) -> list[SeasonResult]:
    """Every season's backtest, serially in this process or as Dask tasks; `on_done` hears of each
    as it finishes. A failed season is reported, and the others still run."""
    if serial or len(seasons) == 1:
        results = []
        for season in seasons:
            try:
                summary, path = run_backtest(cfg, season, today)
                results.append(SeasonResult(season, summary, path))
            except BacktestError as exc:
                results.append(SeasonResult(season, error=str(exc)))
            on_done(results[-1])
        return results
    return _on_dask(cfg, seasons, today, on_done)


def _on_dask(cfg, seasons: list[int], today: dt.date, on_done: Callable[[SeasonResult], None]) -> list[SeasonResult]:
    import logging

    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError:  # the `dask` extra: a cron host that only runs the nightly job may go without it
        raise BacktestError("several seasons run on Dask, which is not installed: install the project's "
                            "'dask' extra (`make install` installs it from the lock), or pass --serial") from None

    logging.getLogger("distributed").setLevel(logging.ERROR)  # a night's log is the seasons, not the cluster's
    scheduler = cfg.backtest.dask_scheduler
    cluster = client = None
    try:
        if scheduler:
            client = Client(scheduler, timeout="30s")
        else:
            cluster = LocalCluster(n_workers=local_workers(cfg), threads_per_worker=1, processes=True,
                                   dashboard_address=None, silence_logs=logging.ERROR)
            client = Client(cluster)
    except (OSError, TimeoutError, ValueError) as exc:  # ValueError: an address Dask cannot read
        if cluster is not None:
            cluster.close()
        raise BacktestError(f"Dask scheduler {scheduler or 'local cluster'}: {' '.join(str(exc).split())}") from None
    raw, run = portable(cfg), uuid.uuid4().hex[:8]  # a shared scheduler may see the same season twice
    results: dict[int, SeasonResult] = {}
    futures = {}
    try:
        futures = {client.submit(season_task, raw, season, today.isoformat(), key=f"backtest-{season}-{run}"): season
                   for season in seasons}
        for future in as_completed(futures):
            season = futures[future]
            try:
                summary, path = future.result()
                results[season] = SeasonResult(season, summary, Path(path))
            except BacktestError as exc:
                results[season] = SeasonResult(season, error=str(exc))
            except Exception as exc:  # a worker that died (KilledWorker) or could not import the pipeline
                results[season] = SeasonResult(season, error=f"{type(exc).__name__}: {' '.join(str(exc).split())}")
            on_done(results[season])
    finally:
        pending = [f for f in futures if not f.done()]
        if pending:  # interrupted: stop the seasons still queued or running on the cluster
            client.cancel(pending)
        client.close()
        if cluster is not None:
            cluster.close()
    return [results[season] for season in seasons]


def backtest_command(cfg, season_specs: list[str], out: Path | None, serial: bool, today: dt.date,
                     echo: Callable[[str, bool], None]) -> int:
    """`pipeline.py backtest`: each season's table as it finishes, an error line per failed season;
    the exit code (1 when any season failed)."""
    import shutil

    from utils.config import ConfigError
    from utils.engine.progress import progress
    from utils.flows.backtest import format_season

    try:
        seasons = parse_seasons(season_specs, today.year)
    except ValueError as exc:
        raise ConfigError([str(exc)]) from None
    if out is not None and len(seasons) > 1:
        raise ConfigError([f"--out: one file holds one season's predictions, not {len(seasons)} seasons'"])
    failed = []

    with progress("seasons", len(seasons) if not serial and len(seasons) > 1 else 0) as step:
        def report(result: SeasonResult) -> None:
            step(str(result.season), done=True)
            if result.error:  # with one season, the error is the command's own, as it always was
                failed.append(result.season)
                echo(f"error: {f'season {result.season}: ' if len(seasons) > 1 else ''}{result.error}", True)
                return
            where = result.predictions
            if out is not None:
                out.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(result.predictions, out)
                where = out
            echo(format_season(result.summary) + f"\npredictions: {where}", False)

        backtest_seasons(cfg, seasons, today, serial, report)
    return 1 if failed else 0
