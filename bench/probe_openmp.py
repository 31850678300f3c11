"""LightGBM training alone under each OpenMP wait policy and thread count, idle or beside busy
processes: the micro-measure behind `utils/engine/threads.py`'s choice (issue 16).

    .venv/bin/python bench/probe_openmp.py [--busy 0 1] [--rows 60000] [--trees 200]

Each setting runs in its own process, because OpenMP reads its environment once, when it loads.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

TRAIN = """
import json, sys, time
import numpy as np, lightgbm as lgb
rows, trees, threads = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(0)
x = rng.normal(size=(rows, 80)); y = (x[:, 0] + rng.normal(size=rows) > 0).astype(float)
params = {"objective": "binary", "num_threads": threads, "deterministic": True, "force_row_wise": True,
          "verbose": -1, "num_leaves": 15, "learning_rate": 0.03}
start = time.perf_counter()
for _ in range(3):
    lgb.train(params, lgb.Dataset(x, y), num_boost_round=trees)
print(json.dumps({"seconds": (time.perf_counter() - start) / 3}))
"""

SETTINGS = {"default": {}, "passive": {"OMP_WAIT_POLICY": "PASSIVE"}, "spin 10k": {"GOMP_SPINCOUNT": "10000"},
            "spin 100k": {"GOMP_SPINCOUNT": "100000"}}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--busy", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--rows", type=int, default=60000)
    parser.add_argument("--trees", type=int, default=200)
    opts = parser.parse_args()
    base = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    for busy in opts.busy:
        hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(busy)]
        try:
            for name, env in SETTINGS.items():
                for threads in (1, 2):
                    out = subprocess.run([sys.executable, "-c", TRAIN, str(opts.rows), str(opts.trees), str(threads)],
                                         env={**base, **env}, capture_output=True, text=True, check=True).stdout
                    print(f"busy={busy} {name:10s} threads={threads} {json.loads(out)['seconds']:.2f} s", flush=True)
        finally:
            for hog in hogs:
                hog.kill()
                hog.wait()


if __name__ == "__main__":
    main()
