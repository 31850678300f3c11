"""The fits of a season's walk-forward backtest alone, every one cold: the floor under the backtest's time.

    PYTHONPATH=. .venv/bin/python bench/bench_fits.py [--season 2023] [--artifacts ROOT]
        [--mirror ../shared/data/retrosheet/gamelogs] [--set key=value ...]

A season backtest fits K's models on each of its retrain days (every `model.retrain_every_days` from
opening day); with every fit cold, those fits are most of its time. This times `train_models` on each
retrain day of `--season`, in this process, on the model table of `--artifacts` (a nightly root after
the season, or a backtest's `<root>/backtest/<season>`), without the fit cache. Without `--artifacts`
it first builds one (modules A-I as of December 1st of the season, in a temporary root; the game
logs' parse is not timed). It prints the retrain days, the fits' wall and CPU time, and their mean.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def build_root(work: Path, season: int, mirror: str, sets: list[str]) -> Path:
    """Modules A-I as of December 1st of `season`, as its backtest builds them: every game of it."""
    root = work / "artifacts"
    args = [sys.executable, str(ROOT / "pipeline.py"), "run", "--legacy-executor", "--modules", "A,B,C,D,E,F,G,H,I",
            "--as-of", f"{season}-12-01", "--config", str(ROOT / "config.yaml"),
            *[x for kv in (f"sources.retrosheet.base_url={mirror}", f"paths.artifacts={root}",
                           "versioning.backend=none", *sets) for x in ("--set", kv)]]
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    if proc.returncode != 0:
        raise SystemExit(f"building the model table failed ({proc.returncode}): {proc.stderr[-600:]}")
    return root


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--season", type=int, default=2023)
    parser.add_argument("--artifacts", default=None, help="a root holding the season's model_table")
    parser.add_argument("--mirror", default=str(ROOT.parent / "shared/data/retrosheet/gamelogs"))
    parser.add_argument("--set", dest="sets", action="append", default=[], help="extra config overrides")
    opts = parser.parse_args()

    from modules.k_train import train_models
    from utils.config import load_config
    from utils.flows.backtest import retrain_dates
    from utils.store.artifacts import ArtifactStore

    work = Path(tempfile.mkdtemp(prefix="mlb-bench-fits-"))
    try:
        root = Path(opts.artifacts) if opts.artifacts else build_root(work, opts.season, opts.mirror, opts.sets)
        cfg = load_config(ROOT / "config.yaml", [f"paths.artifacts={root}", *opts.sets])
        table = ArtifactStore.from_config(cfg).read_frame("model_table")
        games = table[table["season"] == opts.season]
        if games.empty:
            raise SystemExit(f"{root}: the model table has no games of {opts.season}")
        days = [day.date() for day in retrain_dates(games, cfg.model.retrain_every_days)]
        wall = cpu = 0.0
        for day in days:
            start, start_cpu = time.perf_counter(), time.process_time()
            train_models(table, day, cfg.model, cfg.monitoring.psi_bins, cfg.run.lineups)
            wall += time.perf_counter() - start
            cpu += time.process_time() - start_cpu
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"season {opts.season}: {len(days)} retrain days, {days[0]} to {days[-1]} "
          f"(every {cfg.model.retrain_every_days} days, model.num_threads {cfg.model.num_threads})")
    print(f"fits_cold  wall_s={wall:.2f}  cpu_s={cpu:.2f}  wall_s_per_day={wall / len(days):.2f}  "
          f"checked {dt.datetime.now().isoformat(timespec='seconds')}")


if __name__ == "__main__":
    main()
