"""The Stats API source's parts on their own: the crosswalk with real Lahman namesakes, the park
table against Retrosheet's parkcode.txt, line scores, the rate limit, settled days and suspended games,
and a hand-checked real-shaped box score (tests/data/statsapi_boxscore.json)."""
from __future__ import annotations

import csv
import datetime as dt
import io
import json
import zipfile

import pytest

from tests.conftest import MIRROR, ROOT
from utils.sources.common import STATSAPI_TEAMS, SourceError
from utils.sources.crosswalk import Crosswalk, normalise
from utils.sources.statsapi import (
    VENUES,
    RateLimit,
    SeasonListing,
    StatsApi,
    api_root,
    gamelog_row,
    games_before,
    is_settled,
    line_score,
    player_lines,
)


@pytest.fixture(scope="module")
def crosswalk():
    return Crosswalk.from_lahman()


def person(pid, full, born, first=None, last=None, use=None):
    first = first or full.split()[0]
    last = last or full.split()[-1]
    return {"id": pid, "fullName": full, "firstName": first, "lastName": last, "useName": use or first,
            "birthDate": born}


@pytest.mark.parametrize("record, retro", [
    # the two Will Smiths: the Dodgers' catcher and the left-handed reliever
    (person(669257, "Will Smith", "1995-03-28", first="William"), "smitw003"),
    (person(519293, "Will Smith", "1989-07-10", first="William"), "smitw002"),
    # three Luis Garcías, one a Jr.; accents and the suffix go, the birth date decides
    (person(671277, "Luis García Jr.", "2000-05-16", last="García"), "garcl006"),
    (person(677651, "Luis Garcia", "1996-12-13"), "garcl007"),
    (person(472610, "Luis García", "1987-01-30", last="García"), "garcl005"),
    # the two Diego Castillos, a pitcher and an infielder
    (person(650895, "Diego Castillo", "1994-01-18"), "castd002"),
    (person(660636, "Diego Castillo", "1997-10-28"), "castd004"),
    # the two José Ramírezes: Cleveland's third baseman, and the pitcher
    (person(608070, "José Ramírez", "1992-09-17", first="José", last="Ramírez"), "ramij003"),
    (person(500000, "José Ramírez", "1990-01-21", first="José", last="Ramírez"), "ramij004"),
])
def test_namesakes_stay_apart_by_birth_date(crosswalk, record, retro):
    assert crosswalk.match(record) == (retro, "name_and_birth_date")


def test_a_name_alone_never_matches_and_a_debutant_keeps_his_own_id(crosswalk):
    # a Will Smith born on another day is nobody Lahman knows: not merged into either
    assert crosswalk.match(person(1, "Will Smith", "2001-01-01")) == ("mlbam:1", "unmatched")
    assert crosswalk.match({"id": 2, "fullName": "Will Smith"}) == ("mlbam:2", "unmatched")  # no birth date
    # known by a nickname the Stats API does not use: the surname and birth date still find him
    assert crosswalk.match(person(3, "Bill Smith", "1995-03-28", first="Bill")) == ("smitw003",
                                                                                   "surname_and_birth_date")
    assert normalise("  Ronald Acuña Jr. ") == "ronald acuna" and normalise("J.D. Martinez") == "j d martinez"


def test_every_park_is_retrosheets_and_in_use_in_the_seasons_the_table_gives():
    """Each code is in parkcode.txt (opened no later than the table's first season) or, for parks newer
    than the mirror's copy of it, in the game logs; and every game the logs of 2000-2024 played in a
    table's park falls within that park's seasons (Arlington's old park until 2019, the new one after)."""
    with (MIRROR.parent / "parkcode.txt").open(encoding="latin-1") as handle:
        parks = {row["PARKID"]: row for row in csv.DictReader(handle)}
    seasons_used: dict[str, set[int]] = {}
    for season in range(2000, 2025):
        with zipfile.ZipFile(MIRROR / f"gl{season}.zip") as archive:
            text = archive.read(f"GL{season}.TXT").decode("latin-1")
        for row in csv.reader(io.StringIO(text)):
            seasons_used.setdefault(row[16], set()).add(season)
    codes = [code for code, _, _ in VENUES.values()]
    assert len(set(codes)) == len(codes)  # one venue a park
    assert set(codes) - set(parks) == {"ARL03", "BIR01", "LON01", "SEO01", "MEX02"}  # newer than parkcode.txt
    for venue, (code, first, last) in VENUES.items():
        assert code in parks or code in seasons_used, code
        if code in parks and first is not None:
            assert int(parks[code]["START"][-4:]) <= first, (venue, code)
        used = seasons_used.get(code, set())
        assert all((first or s) <= s <= (last or s) for s in used), (venue, code, sorted(used))
    in_use_2024 = {code for code, seasons in seasons_used.items() if 2024 in seasons}
    assert in_use_2024 <= set(codes)  # every park of the last season is in the table
    assert set(STATSAPI_TEAMS.values()) >= {"TEX", "ANA"}


def test_an_unknown_venue_has_no_park_rather_than_the_home_teams(caplog):
    from utils.sources.statsapi import park_code

    assert park_code({"gamePk": 1, "venue": {"id": 13}}, 2019) == "ARL02"
    assert park_code({"gamePk": 1, "venue": {"id": 13}}, 2020) == ""  # Globe Life Park hosted no game after 2019
    assert park_code({"gamePk": 2, "venue": {"id": 2701, "name": "Estadio de Beisbol Monterrey"}}, 2019) == "MNT01"
    assert park_code({"gamePk": 3, "venue": {"id": 99999, "name": "Somewhere"}}, 2024) == ""
    assert "game 3: Stats API venue 99999 (Somewhere) is not in the park table for 2024; no park id" in caplog.text


def test_line_scores_read_as_retrosheet_writes_them():
    innings = [{"away": {"runs": 0}, "home": {"runs": 1}}, {"away": {"runs": 12}, "home": {"runs": 0}},
               {"away": {"runs": 2}, "home": {}}]
    assert line_score(innings, "away") == "0(12)2" and line_score(innings, "home") == "10x"


def test_the_rate_limit_spaces_requests():
    now = [0.0]
    waits = []

    def sleep(seconds):
        waits.append(round(seconds, 6))
        now[0] += seconds

    limit = RateLimit(5, clock=lambda: now[0], sleep=sleep)
    for _ in range(4):
        limit.wait()
    assert waits == [0.2, 0.2, 0.2]
    now[0] += 10  # idle for a while: no wait, and no burst credit either
    limit.wait()
    limit.wait()
    assert waits == [0.2, 0.2, 0.2, 0.2]


def test_the_api_root_comes_from_the_schedule_endpoint():
    assert api_root("https://statsapi.mlb.com/api/v1/schedule") == "https://statsapi.mlb.com/api/v1"
    with pytest.raises(ValueError, match="does not end in /schedule"):
        api_root("https://statsapi.mlb.com/api/v1/games")


def listed(pk, day, state, **extra):
    status = {"abstractGameState": "Final" if state != "Scheduled" else "Preview", "detailedState": state}
    return {"gamePk": pk, "_listed": day, "status": status, **extra}


def test_a_day_is_settled_once_nothing_on_it_can_change():
    assert is_settled([listed(1, "d", "Final"), listed(2, "d", "Postponed"), listed(3, "d", "Suspended: Rain")])
    assert not is_settled([listed(1, "d", "Final"), listed(2, "d", "Scheduled")])
    assert not is_settled([])  # an off day, or an answer with nothing in it: decided by the days around it


def schedule_answer(days: dict[str, list[dict]]) -> bytes:
    return json.dumps({"dates": [{"date": d, "games": g} for d, g in days.items()]}).encode()


def test_an_empty_answer_caches_nothing_and_an_off_day_before_games_is_kept(tmp_path):
    """An outage answering `{"dates": []}` must not settle the season's days as off days forever."""
    from utils.sources.statsapi import season_listing

    answers = [schedule_answer({})]
    api = StatsApi("https://statsapi.example/api/v1/schedule", 5, lambda *a: answers[0], 1000, tmp_path)
    season_listing(api, 2024, dt.date(2024, 3, 10))
    assert not list(tmp_path.rglob("*.json"))
    game = {"gamePk": 1, "gameType": "R", "status": {"abstractGameState": "Final", "detailedState": "Final"}}
    answers[0] = schedule_answer({"2024-03-05": [game]})
    listing = season_listing(api, 2024, dt.date(2024, 3, 10))
    assert listing.by_day[dt.date(2024, 3, 5)] == [{**game, "_listed": "2024-03-05"}]
    cached = sorted(p.stem for p in tmp_path.rglob("days/*.json"))
    assert cached == [f"2024-03-0{d}" for d in range(1, 6)]  # the off days before the game, and its day
    before = api.requests
    season_listing(api, 2024, dt.date(2024, 3, 10))  # the days after it are asked again, those are not
    assert api.requests == before + 1


def test_a_schedule_that_does_not_read_is_one_line_naming_the_url(tmp_path, crosswalk):
    from utils.sources.statsapi import LiveIds, read_season

    bad = {"gamePk": 1, "status": "Final"}
    api = StatsApi("https://statsapi.example/api/v1/schedule", 5, lambda *a: schedule_answer({"2024-03-05": [bad]}),
                   1000, tmp_path)
    with pytest.raises(SourceError, match=r"^https://statsapi.example/api/v1/schedule \(2024-03-01 to "
                                          r"2024-03-10\): unexpected schedule payload \(AttributeError"):
        read_season(api, 2024, dt.date(2024, 3, 10), LiveIds(crosswalk))
    resumed = {"gamePk": 2, "status": {"abstractGameState": "Final", "detailedState": "Final"},
               "resumedFrom": "yesterday", "teams": {}}
    api.fetch = lambda *a: schedule_answer({"2024-03-06": [resumed]})
    with pytest.raises(SourceError, match=r"unexpected schedule payload \(ValueError"):
        read_season(api, 2024, dt.date(2024, 3, 10), LiveIds(crosswalk))


def test_a_suspended_game_keeps_its_first_day_and_a_postponed_one_moves():
    day = dt.date
    listing = SeasonListing({
        day(2024, 5, 21): [listed(10, "2024-05-21", "Suspended: Rain"), listed(11, "2024-05-21", "Postponed")],
        day(2024, 5, 22): [listed(10, "2024-05-22", "Final", resumedFrom="2024-05-21"),
                           listed(11, "2024-05-22", "Final")],
        day(2024, 6, 26): [listed(12, "2024-06-26", "Suspended: Rain")],
    })
    listing.by_day[day(2024, 5, 21)][0].update(doubleHeader="N", gameNumber=1, venue={"id": 2889})
    listing.by_day[day(2024, 5, 22)][0].update(doubleHeader="Y", gameNumber=1, venue={"id": 2889})
    finals, pending = games_before(listing, day(2024, 7, 14))
    assert finals[10][1:] == (day(2024, 5, 21), day(2024, 5, 22))  # filed on its first day, completed later
    assert finals[10][0]["doubleHeader"] == "N"  # and numbered as it began, not as the day it resumed
    assert finals[11][1:] == (day(2024, 5, 22), None)  # a postponed game is played on its new date
    assert list(pending) == [12]  # begun, not finished by the day: kept without a result
    finals, pending = games_before(listing, day(2024, 5, 22))  # the morning of the resumption
    assert list(finals) == [] and list(pending) == [10]
    from utils.sources.statsapi import day_slate

    assert [g["gamePk"] for g in day_slate(listing, day(2024, 5, 22))] == [11]  # the resumed one is no new game


def test_a_real_shaped_box_score_reads_as_the_game_log_and_the_event_files_have_it():
    """NYA at BAL, 2024-07-14, a walk-off: the values are Retrosheet's game-log line and the cwdaily
    lines of BAL202407140; the payload keeps keys of the real API that the pipeline does not read."""
    doc = json.loads((ROOT / "tests" / "data" / "statsapi_boxscore.json").read_text())
    game, box = doc["schedule_game"], doc["boxscore"]
    judge, rodon, kimbrel, mullins = 500011, 500023, 500013, 500019

    def ids(pid):
        return f"id{pid}"

    row = gamelog_row(game, box, dt.date(2024, 7, 14), None, ids)
    assert (row["visiting_team"], row["home_team"], row["park_id"], row["day_night"]) == ("NYA", "BAL", "BAL12", "D")
    assert (row["visiting_league"], row["home_league"], row["game_number"]) == ("AL", "AL", "0")
    assert (row["visiting_score"], row["home_score"]) == ("5", "6")
    assert row["visiting_line_score"] == "010010003" and row["home_line_score"] == "002010003"
    assert row["length_outs"] == "53"  # the winning run scored with two out in the ninth
    assert (row["v_pitchers_used"], row["h_pitchers_used"]) == ("6", "5")
    assert (row["v_ab"], row["v_bb"], row["v_hbp"], row["v_sh"], row["v_so"]) == ("32", "6", "1", "1", "8")
    assert (row["h_ab"], row["h_bb"], row["h_so"]) == ("35", "5", "14")
    assert row["v_starting_pitcher_id"] == f"id{rodon}" and row["winning_pitcher_id"] == f"id{kimbrel}"
    assert row["v_player3_id"] == f"id{judge}" and row["v_player3_pos"] == "10"  # the DH
    assert "saving_pitcher_id" not in row
    lines = {r["player_id"]: r for r in player_lines(game, box, dt.date(2024, 7, 14), None, ids)}
    assert len(lines) == 33  # 16 Yankees and 17 Orioles appeared
    assert [lines[f"id{judge}"][k] for k in ("slot", "seq", "b_pa", "b_bb", "b_so", "p_g")] == [3, 1, 5, 2, 1, 0]
    assert [lines[f"id{mullins}"][k] for k in ("slot", "seq", "b_pa", "b_h")] == [4, 2, 1, 1]  # pinch hit
    assert [lines[f"id{rodon}"][k] for k in ("slot", "seq", "p_gs", "p_out", "p_tbf", "p_so", "p_pitch")] == \
        [0, 1, 1, 12, 19, 7, 98]
    assert [lines[f"id{kimbrel}"][k] for k in ("seq", "p_out", "p_r", "p_er", "p_gs")] == [5, 3, 3, 3, 0]


def test_a_box_score_of_the_wrong_shape_is_one_line_naming_the_url(tmp_path):
    api = StatsApi("https://statsapi.example/api/v1/schedule", 5, lambda *a: b'{"teams": {"away": {}}}', 1000,
                   tmp_path)
    with pytest.raises(SourceError, match=r"^https://statsapi.example/api/v1/game/7/boxscore: unexpected "
                                          r"boxscore payload \(KeyError: 'team'\)$"):
        api.boxscore(7, 2024)
    assert not list(tmp_path.rglob("*.json"))  # nothing cached
    api = StatsApi("https://statsapi.example/api/v1/schedule", 5, lambda *a: b"[1, 2]", 1000, tmp_path)
    with pytest.raises(SourceError, match="unexpected boxscore payload .a list, not an object"):
        api.boxscore(7, 2024)


def test_a_night_is_one_schedule_request_even_across_a_month_end():
    from utils.sources.statsapi import _month_spans

    day = dt.date
    assert _month_spans([day(2024, 9, 30), day(2024, 10, 1)]) == [(day(2024, 9, 30), day(2024, 10, 1))]
    spans = _month_spans([day(2024, 3, 1), day(2024, 7, 14)])
    assert spans[0] == (day(2024, 3, 1), day(2024, 3, 31)) and spans[-1][1] == day(2024, 7, 14)
    assert all((b - a).days <= 30 for a, b in spans) and len(spans) == 5
    assert all(b + dt.timedelta(days=1) == c for (_, b), (c, _) in zip(spans, spans[1:]))  # no gap, no overlap


def test_each_api_address_has_its_own_cache(tmp_path):
    real = StatsApi("https://statsapi.mlb.com/api/v1/schedule", 5, None, 5, tmp_path)
    fake = StatsApi("http://127.0.0.1:8765/api/v1/schedule", 5, None, 5, tmp_path)
    assert real.cache_dir.parent == fake.cache_dir.parent == tmp_path and real.cache_dir != fake.cache_dir


def test_a_day_stuck_in_an_odd_state_is_kept_as_it_stands_after_three_days(tmp_path, caplog):
    """A game whose listing never leaves "Delayed" would make its day be asked for every night: three
    days on, the day is kept as it stands (with a warning naming the game), and not asked again."""
    from utils.sources.statsapi import season_listing

    stuck = {"gamePk": 9, "gameType": "R", "status": {"abstractGameState": "Live", "detailedState": "Delayed"}}
    later = {"gamePk": 10, "gameType": "R", "status": {"abstractGameState": "Final", "detailedState": "Final"}}
    opener = {**later, "gamePk": 8}
    answer = schedule_answer({"2024-03-28": [opener], "2024-04-02": [stuck], "2024-04-05": [later]})
    api = StatsApi("https://statsapi.example/api/v1/schedule", 5, lambda *a: answer, 1000, tmp_path)
    season_listing(api, 2024, dt.date(2024, 4, 4))  # two days on: still asked for
    assert not (api.cache_dir / "2024" / "days" / "2024-04-02.json").exists()
    season_listing(api, 2024, dt.date(2024, 4, 5))  # three days on: kept
    assert (api.cache_dir / "2024" / "days" / "2024-04-02.json").exists()
    assert "the listing of 2024-04-02 is kept as it stands, 3 days on: 9 'Delayed'" in caplog.text
    before = api.requests
    caplog.clear()
    listing = season_listing(api, 2024, dt.date(2024, 4, 6))  # one request, from the first day not kept
    assert api.requests == before + 1 and listing.by_day[dt.date(2024, 4, 2)][0]["gamePk"] == 9
    assert "kept as it stands" not in caplog.text
