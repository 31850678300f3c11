"""Wall time and peak memory of the pipeline's main paths, one run each (figures for the issue notes).

    PYTHONPATH=. .venv/bin/python bench/bench_pipeline.py [--mirror ../shared/data/retrosheet/gamelogs] [--only NAME]
        [--set key=value ...]

Each measured command runs in its own child process; peak memory is that child's max RSS.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable

MEASURE = """
import resource, subprocess, sys, time, json
start = time.perf_counter()
proc = subprocess.run(sys.argv[1:], capture_output=True, text=True)
wall = time.perf_counter() - start
peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"rc": proc.returncode, "wall_s": wall, "peak_mb": peak_kb / 1024, "tail": proc.stderr[-400:]}))
"""


def measure(args: list[str], cwd: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([PY, "-c", MEASURE, *args], capture_output=True, text=True, cwd=cwd, env=env, check=True)
    result = json.loads(out.stdout)
    if result["rc"] != 0:
        raise SystemExit(f"{' '.join(args)} failed ({result['rc']}): {result['tail']}")
    return result


@contextlib.contextmanager
def prefect_server(work: Path):
    """`prefect server start` on a free loopback port (as `make prefect-server`), stopped afterwards."""
    import socket
    import time

    sys.path.insert(0, str(ROOT))
    from utils.engine.prefect_api import answers

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "PREFECT_HOME": str(work / "prefect"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    proc = subprocess.Popen([str(Path(PY).parent / "prefect"), "server", "start", "--host", "127.0.0.1", "--port",
                             str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    api = f"http://127.0.0.1:{port}/api"
    try:
        for _ in range(180):  # the project's own health check, as runs use it
            if answers(api) is None:
                break
            time.sleep(1)
        yield api
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def pipeline(*args: str) -> list[str]:
    return [PY, str(ROOT / "pipeline.py"), *args]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mirror", default=str(ROOT.parent / "shared/data/retrosheet/gamelogs"))
    parser.add_argument("--as-of", default="2024-07-14")
    parser.add_argument("--only", default=None,
                        help="dry_run | build | skip | nightly | prefect | backtest | first_night")
    parser.add_argument("--parsed-from", default=None,
                        help="first_night: a cache/parsed folder to copy into the new root (the seasons' parses "
                             "only; without it the night parses every season first)")
    parser.add_argument("--season", default="2023")
    parser.add_argument("--set", dest="sets", action="append", default=[], help="extra config overrides")
    opts = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mlb-bench-"))
    common = ["--config", str(ROOT / "config.yaml"), "--set", f"sources.retrosheet.base_url={opts.mirror}", "--set",
              f"paths.artifacts={work / 'artifacts'}",
              "--set", f"paths.schemas={ROOT / 'schemas'}", *[x for kv in opts.sets for x in ("--set", kv)]]
    wanted = lambda name: opts.only in (None, name)  # noqa: E731
    results = {}
    try:
        if wanted("dry_run"):
            runs = [measure(pipeline("--modules", "A,B,C,D,E,F,G,H,I,K,L", "--overwrite-policy", "warn", "--dry-run",
                                     "--visual", *common), work)["wall_s"] for _ in range(5)]
            results["dry_run_visual"] = {"wall_s_median": sorted(runs)[2], "wall_s_max": max(runs)}
        if wanted("build") or wanted("skip") or wanted("nightly") or wanted("prefect"):
            results["cold_build_A_to_I"] = measure(pipeline("run", "--legacy-executor", "--as-of", opts.as_of,
                                                            "--modules", "A,B,C,D,E,F,G,H,I", *common), work)
        if wanted("skip"):
            results["rerun_skip_A_to_I"] = measure(pipeline("run", "--legacy-executor", "--as-of", opts.as_of,
                                                            "--modules", "A,B,C,D,E,F,G,H,I",
                                                            "--overwrite-policy", "skip", *common), work)
        if wanted("nightly"):
            # the season's first night fits the drift baseline (utils/monitoring/drift.py); the nights after read it
            results["nightly_A_to_L_legacy_first_of_season"] = measure(pipeline(
                "run", "--legacy-executor", "--as-of", opts.as_of, *common), work)
            next_night = (dt.date.fromisoformat(opts.as_of) + dt.timedelta(days=1)).isoformat()
            results["nightly_A_to_L_legacy"] = measure(pipeline("run", "--legacy-executor", "--as-of", next_night,
                                                                *common), work)
            # the same day's game-time run: the morning's feature rows kept, its own models fit or read
            results["nightly_A_to_L_legacy_game_time"] = measure(pipeline(
                "run", "--legacy-executor", "--as-of", next_night, *common, "--set", "run.lineups=confirmed"), work)
        if wanted("prefect"):
            results["nightly_A_to_L_legacy"] = measure(pipeline("run", "--legacy-executor", "--as-of", opts.as_of,
                                                                *common), work)
            results["nightly_A_to_L_prefect_temporary_server"] = measure(pipeline("run", "--as-of", opts.as_of,
                                                                                  *common), work)
            with prefect_server(work) as api:
                results["nightly_A_to_L_prefect_long_lived_server"] = measure(pipeline(
                    "run", "--as-of", opts.as_of, *common, "--set", f"run.prefect_api_url={api}"), work)
        if opts.only == "first_night":
            # a night in a root of its own with nothing kept but (with --parsed-from) the parsed seasons: every
            # feature row built, the fit and the drift baseline made. --as-of defaults to 2024-07-14; the figure the
            # notes give for a season's first night is --as-of 2024-03-20 (its fit and baseline are the season's first)
            if opts.parsed_from:
                shutil.copytree(opts.parsed_from, work / "artifacts" / "cache" / "parsed")
            results[f"first_night_{opts.as_of}_new_root"] = measure(pipeline("run", "--legacy-executor", "--as-of",
                                                                             opts.as_of, *common), work)
        if wanted("backtest"):
            results[f"backtest_{opts.season}"] = measure(pipeline("backtest", "--season", opts.season, *common), work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for name, figures in results.items():
        figures.pop("tail", None)
        figures.pop("rc", None)
        print(f"{name:38s} " + "  ".join(f"{k}={v:.2f}" for k, v in figures.items()))


if __name__ == "__main__":
    main()
