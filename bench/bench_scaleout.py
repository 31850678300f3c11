"""Many seasons' backtests: serial against the local Dask cluster (issue 16), one run each.

    PYTHONPATH=. .venv/bin/python bench/bench_scaleout.py [--seasons 2016-2018,2022-2024] [--set k=v ...]

Peak memory is the whole process tree's (the CLI and every Dask worker), sampled every 0.2 s with
psutil: on a cluster the workers hold the seasons, not the CLI. The game logs are parsed once per
season root before the measured runs (the parse cache is warm in both). At the end every season's
predictions and summary are compared byte for byte between the two runs.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from utils.flows.scaleout import parse_seasons  # noqa: E402

PY = sys.executable


def tree_rss(proc: psutil.Process) -> int:
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def timed(args: list[str]) -> dict:
    _, wall, peak = watched_run(args)
    return {"wall_s": wall, "peak_tree_mb": peak}


def watched_run(args: list[str]) -> tuple[str, float, float]:
    """(stdout, wall seconds, peak MB of the process tree) of one command; exits on its failure."""
    start = time.perf_counter()
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    peak, watched = [0], psutil.Process(proc.pid)

    def sample() -> None:
        while proc.poll() is None:
            try:
                peak[0] = max(peak[0], tree_rss(watched))
            except psutil.Error:
                pass
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    sampler.join()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args[:6])}... failed ({proc.returncode}): {err[-800:]}")
    return out, time.perf_counter() - start, peak[0] / 2**20


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seasons", default="2016-2018,2022-2024")
    parser.add_argument("--mirror", default=str(ROOT.parent / "shared/data/retrosheet/gamelogs"))
    parser.add_argument("--set", dest="sets", action="append", default=[])
    opts = parser.parse_args()
    seasons = parse_seasons([opts.seasons], time.localtime().tm_year)
    work = Path(tempfile.mkdtemp(prefix="mlb-bench-scaleout-"))
    flags = lambda root: [a for s in (f"sources.retrosheet.base_url={opts.mirror}", f"paths.artifacts={root}",  # noqa: E731
                                      *opts.sets) for a in ("--set", s)]
    cli = [PY, str(ROOT / "pipeline.py")]
    try:
        for run in ("serial", "dask"):  # warm each season root's parse cache
            for season in seasons:
                timed([*cli, "run", "--legacy-executor", "--modules", "A", "--as-of", f"{season}-03-01",
                       *flags(work / run / "backtest" / str(season)), "--set", "versioning.backend=none"])
        results = {
            "serial": timed([*cli, "backtest", "--season", opts.seasons, "--serial", *flags(work / "serial")]),
            "dask_local": timed([*cli, "backtest", "--season", opts.seasons, *flags(work / "dask")]),
        }
        same = {}
        for season in seasons:
            for name in ("backtest.parquet", "backtest_summary.json"):
                files = [work / run / "backtest" / str(season) / "data" / name for run in ("serial", "dask")]
                same[f"{season}/{name}"] = len({hashlib.sha256(f.read_bytes()).hexdigest() for f in files}) == 1
        print(json.dumps({"seasons": seasons, **results, "byte_identical": all(same.values()),
                          "differ": [k for k, v in same.items() if not v]}, indent=1))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
