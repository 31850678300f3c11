"""Real recorded MLB Stats API answers (../shared/data/statsapi) read through the reader, side by side
with Retrosheet's game log and event-file lines for the same game.

A `feed/live` answer carries the box score, the line score, the decisions and everyone's `people`
record, so it reads exactly as a hydrated schedule listing plus a box score do on a live night. A bare
box score has no listing: its game is paired with the recorded schedule answer of its day when there
is one (744914), else it is compared on what the box score alone gives (the 2016 game).
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import json
import zipfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pandas as pd

from tests.conftest import EVENTS, MIRROR
from utils.sources.common import STATSAPI_TEAMS
from utils.sources.crosswalk import Crosswalk, normalise
from utils.sources.events import _GAME_START, COUNTS, parse_event_file, to_frame
from utils.sources.gamelogs import FIELD_NAMES, read_season_zip
from utils.sources.statsapi import gamelog_row, player_lines

ANSWERS = MIRROR.parent.parent / "statsapi"
# game-log fields a listing gives (scores, line scores, park, light, decisions): not compared for a
# box score with no recorded listing of its day
LISTING_FIELDS = {"date", "game_number", "day_of_week", "visiting_score", "home_score", "day_night", "park_id",
                  "visiting_line_score", "home_line_score", "completion_info", "visiting_league", "home_league",
                  "v_lob", "h_lob"} | {f"{w}_{p}" for w in ("winning_pitcher", "losing_pitcher", "saving_pitcher")
                                       for p in ("id", "name")}
PLAYER_COLUMNS = ["slot", "seq", *COUNTS.values()]


@dataclass
class Answer:
    name: str                       # the answer's file name
    game: dict                      # the game as a hydrated schedule lists it
    box: dict
    date: dt.date
    ids: dict[int, str]             # MLBAM id -> Retrosheet id
    listed: bool                    # the listing is a recorded answer (not made from the box score)

    @property
    def final(self) -> bool:
        return self.game["status"]["abstractGameState"] == "Final"


def read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8-sig"))  # one answer was committed with a BOM


def listing_of_feed(feed: dict) -> dict:
    """A feed's game as the schedule lists it, hydrated with `linescore,decisions,probablePitcher`."""
    data, live = feed["gameData"], feed["liveData"]
    teams = {side: {"team": {"id": data["teams"][side]["id"]}, "score": live["linescore"]["teams"][side].get("runs"),
                    "probablePitcher": data.get("probablePitchers", {}).get(side)} for side in ("away", "home")}
    return {"gamePk": data["game"]["pk"], "gameType": data["game"]["type"],
            "doubleHeader": data["game"]["doubleHeader"], "gameNumber": data["game"]["gameNumber"],
            "dayNight": data["datetime"].get("dayNight"), "venue": data["venue"],
            "officialDate": data["datetime"]["officialDate"], "status": data["status"], "teams": teams,
            "linescore": live["linescore"], "decisions": live.get("decisions", {})}


def box_date(box: dict) -> dt.date:
    """A bare box score's date: its last `info` line ("June 14, 2016")."""
    return dt.datetime.strptime(box["info"][-1]["label"], "%B %d, %Y").date()


def listing_of_box(box: dict) -> dict:
    """A bare box score's game, listed with only what the box score says."""
    teams = {side: {"team": {"id": box["teams"][side]["team"]["id"]},
                    "score": box["teams"][side]["teamStats"]["batting"]["runs"]} for side in ("away", "home")}
    return {"gamePk": 0, "gameType": "R", "doubleHeader": "N", "gameNumber": 1,
            "status": {"abstractGameState": "Final", "detailedState": "Final"}, "teams": teams}


@cache
def crosswalk() -> Crosswalk:
    return Crosswalk.from_lahman()


@cache
def roster_ids(season: int, team: str) -> dict[str, str]:
    """'first last' (normalised) -> Retrosheet id, from the team's roster file of the season."""
    with zipfile.ZipFile(EVENTS / f"{season}eve.zip") as archive:
        text = archive.read(f"{team}{season}.ROS").decode("latin-1")
    return {normalise(f"{row[2]} {row[1]}"): row[0] for row in csv.reader(io.StringIO(text)) if row}


def ids_by_roster(box: dict, season: int) -> dict[int, str]:
    """For a box score with no people records: each player by his name on his team's roster."""
    out = {}
    for side in ("away", "home"):
        names = roster_ids(season, STATSAPI_TEAMS[box["teams"][side]["team"]["id"]])
        for entry in box["teams"][side]["players"].values():
            full = normalise(entry["person"]["fullName"])
            surname = [rid for name, rid in names.items() if name.split()[-1] == full.split()[-1]]
            found = names.get(full) or (surname[0] if len(surname) == 1 else None)  # Norichika is Nori on it
            if found:
                out[int(entry["person"]["id"])] = found
    return out


def answers() -> list[Answer]:
    """Every recorded answer with a box score, of a season the Retrosheet mirror has."""
    out = []
    feeds = {}
    for path in sorted(ANSWERS.glob("feed_live_*.json")):
        feed = read_json(path)
        feeds[feed["gamePk"]] = feed
        game = listing_of_feed(feed)
        ids = {int(p["id"]): crosswalk().match(p)[0] for p in feed["gameData"]["players"].values()}
        out.append(Answer(path.name, game, feed["liveData"]["boxscore"],
                          dt.date.fromisoformat(game["officialDate"]), ids, True))
    schedules = [g for path in sorted(ANSWERS.glob("schedule_*.json"))
                 for block in read_json(path)["dates"] for g in block["games"]]
    for path in sorted(ANSWERS.glob("boxscore_*.json")):
        box, date = read_json(path), None
        teams = tuple(box["teams"][s]["team"]["id"] for s in ("away", "home"))
        date = box_date(box)
        listed = [g for g in schedules if g.get("officialDate") == date.isoformat()
                  and (g["teams"]["away"]["team"]["id"], g["teams"]["home"]["team"]["id"]) == teams]
        game = listed[0] if listed else listing_of_box(box)
        feed = feeds.get(game["gamePk"])
        if feed is not None:  # the recorded listing has no line score or decisions: the feed of the game does
            game = {**game, "linescore": feed["liveData"]["linescore"], "decisions": feed["liveData"]["decisions"]}
            ids = {int(p["id"]): crosswalk().match(p)[0] for p in feed["gameData"]["players"].values()}
        else:
            ids = ids_by_roster(box, date.year)
        out.append(Answer(path.name, game, box, date, ids, bool(listed)))
    return [a for a in out if (MIRROR / f"gl{a.date.year}.zip").exists()]


@cache
def gamelog(season: int) -> list[list[str]]:
    path = MIRROR / f"gl{season}.zip"
    return list(csv.reader(io.StringIO(read_season_zip(path.read_bytes(), season, str(path)))))


@cache
def event_lines(season: int, home: str) -> pd.DataFrame:
    """Every player's line in the home team's games of the season, as A reads them."""
    with zipfile.ZipFile(EVENTS / f"{season}eve.zip") as archive:
        name = next(n for n in archive.namelist() if n[4:7] == home and n.upper().endswith((".EVA", ".EVN")))
        lines, _ = parse_event_file(archive.read(name), season, name)
    return to_frame(lines, season)


@cache
def game_event_lines(season: int, game_id: str) -> pd.DataFrame:
    """Every player's line in one game, as A reads it: A replays each game of an event file on its own
    (parse_event_file splits the file at each `id,` record), so the game's own records, parsed alone,
    give the very lines the whole file gives it, in a fraction of the file's half second."""
    with zipfile.ZipFile(EVENTS / f"{season}eve.zip") as archive:
        name = next(n for n in archive.namelist()
                    if n[4:7] == game_id[:3] and n.upper().endswith((".EVA", ".EVN")))
        records = [chunk for chunk in _GAME_START.split(archive.read(name))
                   if chunk.split(b"\n", 1)[0].strip() == f"id,{game_id}".encode()]
    assert len(records) == 1, f"{name}: {len(records)} games {game_id}"
    lines, _ = parse_event_file(records[0], season, name)
    return to_frame(lines, season)


def retrosheet_row(answer: Answer) -> dict[str, str]:
    """Retrosheet's game-log line of the answer's game (its home team, date and game number)."""
    row = gamelog_row(answer.game, answer.box, answer.date, None, lambda pid: answer.ids.get(int(pid), "?"))
    found = [r for r in gamelog(answer.date.year)
             if r[0] == row["date"] and r[6] == row["home_team"] and r[1] == row["game_number"]]
    assert len(found) == 1, f"{answer.name}: {len(found)} game-log lines for {row['home_team']} {row['date']}"
    return dict(zip(FIELD_NAMES, found[0]))


def field_differences(answer: Answer) -> set[tuple[str, str, str, str]]:
    """(answer, field, reader's value, Retrosheet's) for every game-log field the reader fills."""
    row = gamelog_row(answer.game, answer.box, answer.date, None, lambda pid: answer.ids.get(int(pid), "?"))
    retro = retrosheet_row(answer)
    skip = set() if answer.listed else LISTING_FIELDS
    return {(answer.name, k, v, retro[k]) for k, v in row.items() if k not in skip and v != retro[k]}


def line_differences(answer: Answer) -> set[tuple[str, str, str, str]]:
    """(answer, 'column player', reader's value, Retrosheet's) for every player_games column, and a
    player in one source's lines only."""
    mine = pd.DataFrame(player_lines(answer.game, answer.box, answer.date, None,
                                     lambda pid: answer.ids.get(int(pid), "?")))
    game_id = mine["event_game_id"].iloc[0]
    theirs = game_event_lines(answer.date.year, game_id)
    theirs = theirs[theirs["event_game_id"] == game_id]
    both = mine.merge(theirs, on="player_id", how="outer", suffixes=("_api", "_retro"), indicator=True)
    side = {"left_only": "only in the answer", "right_only": "only in the event file"}
    out = {(answer.name, side[m], p, "") for p, m in zip(both["player_id"], both["_merge"]) if m != "both"}
    both = both[both["_merge"] == "both"]
    for column in ["team", "opponent", "is_home", "game_number", "date", *PLAYER_COLUMNS]:
        for _, r in both.iterrows():
            a, b = (_text(column, r[f"{column}_{source}"]) for source in ("api", "retro"))
            if a != b:
                out.add((answer.name, f"{column} {r.player_id}", a, b))
    return out


def _text(column: str, value) -> str:
    """A player_games value as text, whichever source's dtype it has."""
    if column == "date":
        return str(pd.Timestamp(value).date())
    return str(value) if column in ("team", "opponent") else str(int(value))
