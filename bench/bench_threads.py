"""A season's walk-forward backtest idle and beside busy processes (issue 16: OpenMP under load).

    PYTHONPATH=. .venv/bin/python bench/bench_threads.py [--season 2023] [--busy 0 1] [--code DIR]
        [--timeout 1500] [--set model.num_threads=1]

`--code DIR` runs another checkout's pipeline.py (e.g. a `git worktree` of an older commit) so a
before/after pair is measured on the same machine the same hour. Each busy process is one Python
loop that keeps a core at 100%. The game logs are parsed once before the measured runs (the parse
cache is warm), so each figure is the backtest itself: build the season's model table, retrain
every 7 days, predict. A run that passes --timeout is stopped and reported as such.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


def timed(args: list[str], cwd: Path, timeout: float) -> dict:
    """Wall time and the child's peak RSS; `timed_out` when it had to be stopped."""
    start = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.Popen(args, cwd=cwd, env={**os.environ, "PYTHONPATH": str(cwd)}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return {"wall_s": time.perf_counter() - start, "timed_out": True}
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({proc.returncode}): {err[-600:]}")
    return {"wall_s": time.perf_counter() - start, "cpu_s": (after.ru_utime + after.ru_stime)
            - (before.ru_utime + before.ru_stime), "peak_mb": after.ru_maxrss / 1024, "timed_out": False}


def busy(n: int) -> list[subprocess.Popen]:
    return [subprocess.Popen([PY, "-c", "while True: pass"]) for _ in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--season", default="2023")
    parser.add_argument("--busy", type=int, nargs="+", default=[0, 1], help="competing busy processes per run")
    parser.add_argument("--code", type=Path, default=ROOT, help="the checkout whose pipeline.py runs")
    parser.add_argument("--mirror", default=str(ROOT.parent / "shared/data/retrosheet/gamelogs"))
    parser.add_argument("--timeout", type=float, default=1500)
    parser.add_argument("--set", dest="sets", action="append", default=[], help="extra config overrides")
    opts = parser.parse_args()
    code = opts.code.resolve()
    work = Path(tempfile.mkdtemp(prefix="mlb-bench-threads-"))
    flags = lambda *sets: [arg for s in (f"sources.retrosheet.base_url={opts.mirror}",  # noqa: E731
                                          f"paths.schemas={code / 'schemas'}", *sets) for arg in ("--set", s)]
    backtest = [PY, str(code / "pipeline.py"), "backtest", "--season", opts.season, "--config",
                str(code / "config.yaml"), *flags(f"paths.artifacts={work}", *opts.sets)]
    results = []
    try:  # warm the parse cache of the season's backtest root
        warm = [PY, str(code / "pipeline.py"), "run", "--legacy-executor", "--modules", "A", "--as-of",
                f"{opts.season}-03-01", "--config", str(code / "config.yaml"),
                *flags(f"paths.artifacts={work / 'backtest' / opts.season}", "versioning.backend=none")]
        timed(warm, code, opts.timeout)
        for n in opts.busy:
            hogs = busy(n)
            try:
                figures = timed(backtest, code, opts.timeout)
            finally:
                for hog in hogs:
                    hog.kill()
                    hog.wait()
            results.append({"busy": n, **figures})
            print(json.dumps({"code": str(code), "season": opts.season, **results[-1]}), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
