"""The season in progress from the MLB Stats API, in the game log's and the play-by-play's shape.

Retrosheet publishes a season's game log and event files after it ends; until then the nightly job
reads the season's completed games here (docs/live-season.md):

- `schedule` for a date range, hydrated with line scores, decisions and probable pitchers: which
  games were played (and their line scores), which were postponed or suspended, and the as-of day's slate;
- each final game's `boxscore`: the starting nines in batting order, the pitchers in order of
  appearance and every player's batting and pitching line, and the teams' batting lines;
- `people`: names and birth dates of the players, which map MLBAM ids to Retrosheet ids
  (`utils/sources/crosswalk.py`).

Every answer that cannot change is stored under the cache with its SHA-256 and never asked again: a
final game's box score, a person, and a *settled* day's schedule (every game on it final, postponed,
cancelled or suspended). A night therefore asks for the days since the last settled one (yesterday
and today: one request), the box scores of yesterday's finals and any new player; the first night
of a season backfills from its first day, at most `requests_per_second`, and a run killed halfway
resumes where it stopped.

Each final game becomes one game-log line of the 161 fields (`gamelog_row`), parsed by A's own
parser, and each player's line one row of `player_games` (`player_lines`).
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import re
import time
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable
from urllib.parse import urlencode

import pandas as pd

from utils.engine.progress import progress
from utils.sources.common import SCHEDULE_COLUMNS, STATSAPI_TEAMS, Fetch, SourceError
from utils.sources.crosswalk import Crosswalk, mapping_frame
from utils.store.cache import ContentCache

log = logging.getLogger("mlb.statsapi")

# The league of each Stats API team (the schedule names only the team).
AMERICAN = {108, 110, 111, 114, 116, 117, 118, 133, 136, 139, 140, 141, 142, 145, 147}
TEAM_LEAGUE = {team: ("AL" if team in AMERICAN else "NL") for team in STATSAPI_TEAMS}
# Stats API venue ids -> (Retrosheet park code in parkcode.txt, first season, last season or None).
# A venue id names one stadium, so its park is the same every season it hosted MLB games; the seasons
# keep a venue from being read as a park that was not in use that day (tests/test_statsapi.py checks
# each entry against parkcode.txt and the game logs; the recorded answers in ../shared/data/statsapi
# show the thirty home parks, Arlington's old park and Monterrey under these ids). The neutral sites
# of recent seasons (Seoul, Mexico City, London, Rickwood Field, Williamsport) have appeared in no
# recorded answer yet. A venue not here, or out of its seasons, has no park id (a warning names it):
# never the home team's park, since a neutral site is exactly the venue a table may not know.
VENUES: dict[int, tuple[str, int | None, int | None]] = {
    1: ("ANA01", None, None), 2: ("BAL12", None, None), 3: ("BOS07", None, None), 4: ("CHI12", None, None),
    5: ("CLE08", None, None), 7: ("KAN06", None, None), 10: ("OAK01", None, None), 12: ("STP01", None, None),
    14: ("TOR02", None, None), 15: ("PHO01", None, None), 17: ("CHI11", None, None), 19: ("DEN02", None, None),
    22: ("LOS03", None, None), 31: ("PIT08", None, None), 32: ("MIL06", None, None), 680: ("SEA03", None, None),
    2392: ("HOU03", None, None), 2394: ("DET05", None, None), 2395: ("SFO03", None, None),
    2602: ("CIN09", None, None), 2680: ("SAN02", None, None), 2681: ("PHI13", None, None),
    2889: ("STL10", None, None), 3289: ("NYC20", None, None), 3309: ("WAS11", None, None),
    3312: ("MIN04", None, None), 3313: ("NYC21", None, None), 4169: ("MIA02", None, None),
    4705: ("ATL03", 2017, None), 13: ("ARL02", 1994, 2019), 5325: ("ARL03", 2020, None),
    2701: ("MNT01", 1996, 2019),
    5150: ("SEO01", 2024, None), 5340: ("MEX02", 2019, None), 2640: ("LON01", 2019, None),
    5382: ("BIR01", 2024, None), 5381: ("WIL02", 2017, None),
}
NOT_PLAYED = ("Postponed", "Cancelled", "Suspended")  # detailedState prefixes: no result (yet) on that date
HYDRATE = "linescore,decisions,probablePitcher"
# a day's games with line scores and probable pitchers are ~100 KB; a box score ~150 KB
MAX_PAYLOAD_BYTES = {"schedule": 2_000_000, "boxscore": 5_000_000, "people": 5_000_000}  # schedule: a day
PEOPLE_BATCH = 100  # ids a `people` request asks for
SPAN_DAYS = 31  # days a schedule request asks for: a month's games, with line scores, are ~10 MB
# A day this long before the as-of day is taken as its listing stands, even with a game in an odd
# state ("Game Over" never made "Final", "Delayed" never updated): else it is asked for every night.
SETTLE_AFTER_DAYS = 3
FIRST_DAY = (3, 1)  # a season's games are asked for from March 1 (the earliest openers are in mid-March)
LAST_DAY = (11, 30)

# Box-score stat names -> the game log's team fields and player_games' columns.
TEAM_BATTING = {"ab": "atBats", "h": "hits", "2b": "doubles", "3b": "triples", "hr": "homeRuns", "rbi": "rbi",
                "sh": "sacBunts", "sf": "sacFlies", "hbp": "hitByPitch", "bb": "baseOnBalls",
                "ibb": "intentionalWalks", "so": "strikeOuts", "sb": "stolenBases", "cs": "caughtStealing",
                "gidp": "groundIntoDoublePlay", "ci": "catchersInterference"}
PLAYER_BATTING = {"b_pa": "plateAppearances", "b_ab": "atBats", "b_h": "hits", "b_2b": "doubles",
                  "b_3b": "triples", "b_hr": "homeRuns", "b_bb": "baseOnBalls", "b_ibb": "intentionalWalks",
                  "b_so": "strikeOuts", "b_hp": "hitByPitch", "b_sf": "sacFlies", "b_sh": "sacBunts"}
PLAYER_PITCHING = {"p_gs": "gamesStarted", "p_gf": "gamesFinished", "p_sv": "saves", "p_out": "outs",
                   "p_tbf": "battersFaced", "p_r": "runs", "p_er": "earnedRuns", "p_h": "hits", "p_hr": "homeRuns",
                   "p_bb": "baseOnBalls", "p_ibb": "intentionalWalks", "p_so": "strikeOuts", "p_hp": "hitByPitch",
                   "p_ir": "inheritedRunners", "p_irs": "inheritedRunnersScored", "p_pitch": "numberOfPitches"}


class PayloadShapeError(ValueError):
    """A payload that is not what the Stats API sends; the caller names the URL."""


class PayloadError(SourceError):
    """An answer that arrived but does not read (too large, not JSON, the wrong shape): asking again
    at once would not help, unlike a network error. A box score's quarantines its game."""


def api_root(schedule_url: str) -> str:
    """`https://statsapi.mlb.com/api/v1` from the configured schedule endpoint `.../api/v1/schedule`."""
    root, _, last = schedule_url.rstrip("/").rpartition("/")
    if last != "schedule":
        raise ValueError(f"sources.schedule.statsapi_url '{schedule_url}' does not end in /schedule")
    return root


def schedule_params(start: dt.date, end: dt.date) -> dict:
    """The schedule request for the regular-season games of these days, with what A reads of them."""
    return {"sportId": 1, "gameType": "R", "startDate": start.isoformat(), "endDate": end.isoformat(),
            "hydrate": HYDRATE}


class RateLimit:
    """At most `per_second` requests a second: each waits for its turn."""

    def __init__(self, per_second: float, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self.interval = 1.0 / per_second
        self.clock, self.sleep = clock, sleep
        self.next_at = 0.0

    def wait(self) -> None:
        now = self.clock()
        if now < self.next_at:
            self.sleep(self.next_at - now)
            now = self.next_at
        self.next_at = now + self.interval


class StatsApi:
    """The Stats API's `schedule`, `game/{pk}/boxscore` and `people` endpoints, with the cache."""

    def __init__(self, schedule_url: str, timeout: int, fetch: Fetch, requests_per_second: float, cache_dir: Path):
        self.root = api_root(schedule_url)
        self.schedule_url = schedule_url
        self.timeout = timeout
        self.fetch = fetch
        self.limit = RateLimit(requests_per_second)
        # one folder per API address: a test server's or a mirror's answers never mix with the real API's
        self.cache_dir = Path(cache_dir) / hashlib.sha256(self.root.encode()).hexdigest()[:12]
        self.cache = ContentCache(self.cache_dir)  # one folder an API root: a test's fake never mixes with it
        self.requests = 0

    def get(self, url: str, params: dict | None, kind: str, days: int = 1) -> dict:
        self.limit.wait()
        self.requests += 1
        limit = MAX_PAYLOAD_BYTES[kind] * (days if kind == "schedule" else 1)
        payload = self.fetch(url, params, self.timeout, limit)
        where = url + ("?" + urlencode(params) if params else "")
        if len(payload) > limit:
            raise PayloadError(f"{where}: {kind} payload of {len(payload):,} bytes, more than any "
                              f"({limit:,} at most)")
        try:
            doc = json.loads(payload)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise PayloadError(f"{where}: unexpected {kind} payload ({type(exc).__name__}: {exc})") from None
        if not isinstance(doc, dict):
            raise PayloadError(f"{where}: unexpected {kind} payload (a {type(doc).__name__}, not an object)")
        return doc

    def schedule(self, start: dt.date, end: dt.date) -> list[dict]:
        """The regular-season games listed from `start` to `end`, each with its listing's `date`."""
        params = schedule_params(start, end)
        doc = self.get(self.schedule_url, params, "schedule", (end - start).days + 1)
        try:
            return [{**game, "_listed": block["date"]} for block in doc["dates"] for game in block["games"]
                    if game.get("gameType", "R") == "R"]
        except (KeyError, TypeError) as exc:
            raise SourceError(f"{self.schedule_url}?{urlencode(params)}: unexpected schedule payload "
                              f"({type(exc).__name__}: {exc})") from None

    def boxscore(self, game_pk: int, season: int, keep: bool = True) -> dict:
        """A final game's box score; stored (`keep`) once the game is final for good, never asked again."""
        name = f"{int(season)}/games/{int(game_pk)}.json"
        cached = self.cache.get(name)
        if cached is not None:
            return json.loads(cached)
        url = f"{self.root}/game/{int(game_pk)}/boxscore"
        doc = self.get(url, None, "boxscore")
        try:
            check_boxscore(doc)
        except PayloadShapeError as exc:
            raise PayloadError(f"{url}: unexpected boxscore payload ({exc})") from None
        if keep:
            self.cache.put(name, json.dumps(doc, separators=(",", ":")).encode())
        return doc

    def day_schedule(self, day: dt.date, ids: LiveIds, slate: list[dict] | None = None,
                     posted: bool = False) -> pd.DataFrame:
        """The day's games with probable pitchers by id (`slate`: the day's listing when a season's
        backfill has it already; else one request), and with `posted` each side's starting nine where
        its lineup is posted (`posted_nines`: a box score a game)."""
        params = schedule_params(day, day)
        try:
            if slate is None:
                slate = [g for g in self.schedule(day, day) if g["_listed"] == day.isoformat()]
            ids.learn(self, [int(t["probablePitcher"]["id"]) for g in slate for t in g["teams"].values()
                             if (t.get("probablePitcher") or {}).get("id") is not None])
            nines = posted_nines(self, slate, day, ids) if posted else {}
            return slate_frame(slate, day, lambda pitcher: ids.get(pitcher.get("id")), nines)
        except (PayloadShapeError, KeyError, TypeError, ValueError, AttributeError) as exc:
            reason = str(exc) if isinstance(exc, PayloadShapeError) else \
                f"unexpected schedule payload ({type(exc).__name__}: {exc})"
            raise SourceError(f"{self.schedule_url}?{urlencode(params)}: {reason}") from None

    def people(self, ids: list[int]) -> dict[int, dict]:
        """id -> the person's record (name, birth date); one with both is kept and never asked again."""
        found: dict[int, dict] = {}
        missing = []
        for pid in sorted(set(ids)):
            cached = self.cache.get(f"people/{pid}.json")
            if cached is None:
                missing.append(pid)
            else:
                found[pid] = json.loads(cached)
        for start in range(0, len(missing), PEOPLE_BATCH):
            batch = missing[start:start + PEOPLE_BATCH]
            url = f"{self.root}/people"
            doc = self.get(url, {"personIds": ",".join(map(str, batch))}, "people")
            try:
                records = {int(person["id"]): person for person in doc["people"]}
            except (KeyError, TypeError, ValueError) as exc:
                raise SourceError(f"{url}: unexpected people payload ({type(exc).__name__}: {exc})") from None
            for pid in batch:
                if pid not in records:  # an id the API does not know stays unmatched, and is asked again
                    continue
                found[pid] = records[pid]
                if records[pid].get("fullName") and records[pid].get("birthDate"):  # else asked again
                    self.cache.put(f"people/{pid}.json", json.dumps(records[pid]).encode())
        return found


class LiveIds:
    """MLBAM ids -> the ids this pipeline uses, each person asked of the Stats API once."""

    def __init__(self, crosswalk: Crosswalk):
        self.crosswalk = crosswalk
        self.records: dict[int, dict] = {}
        self.matches: dict[int, tuple[str, str]] = {}  # MLBAM id -> (the id used, how it matched)

    def learn(self, api: StatsApi, pids: list[int]) -> None:
        new = sorted({int(p) for p in pids} - set(self.matches))
        if not new:
            return
        self.records.update(api.people(new))
        for pid in new:
            self.matches[pid] = self.crosswalk.match(self.records.get(pid, {"id": pid}))

    def id(self, pid: int) -> str:
        """The id of a player learned before."""
        return self.matches[int(pid)][0]

    def get(self, pid: object) -> str | None:
        return None if pid is None or int(pid) not in self.matches else self.id(pid)

    def frame(self) -> pd.DataFrame:
        return mapping_frame(self.records, self.matches)


def check_boxscore(doc: dict) -> None:
    """The parts of a box score this pipeline reads, each of the expected type."""
    try:
        for side in ("away", "home"):
            team = doc["teams"][side]
            if not isinstance(team["team"]["id"], int):
                raise PayloadShapeError(f"teams.{side}.team.id is not a number")
            for key in ("battingOrder", "pitchers", "batters"):
                if not isinstance(team[key], list) or not all(isinstance(x, int) for x in team[key]):
                    raise PayloadShapeError(f"teams.{side}.{key} is not a list of ids")
            if not isinstance(team["players"], dict) or not isinstance(team["teamStats"]["batting"], dict):
                raise PayloadShapeError(f"teams.{side}.players or teamStats is not an object")
            for pid in team["battingOrder"] + team["pitchers"] + team["batters"]:
                entry = team["players"].get(f"ID{pid}")
                if not isinstance(entry, dict) or not isinstance((entry.get("person") or {}).get("id"), int):
                    raise PayloadShapeError(f"teams.{side}: player {pid} is listed but has no entry with his id")
    except (KeyError, TypeError) as exc:
        raise PayloadShapeError(f"{type(exc).__name__}: {exc}") from None


def _state(game: dict) -> str:
    """The listing's detailed state ("Final", "Postponed", "Suspended: Rain", ...)."""
    return str((game.get("status") or {}).get("detailedState", ""))


def _resumed_from(game: dict) -> object:
    """The day a resumed game began, as the listing of its completion names it (or None)."""
    return game.get("resumedFrom") or game.get("resumedFromDate")


def is_final(game: dict) -> bool:
    return (game.get("status") or {}).get("abstractGameState") == "Final" and not _state(game).startswith(NOT_PLAYED)


def is_settled(games: list[dict]) -> bool:
    """A day whose listing cannot change any more: games, every one final, postponed, cancelled or
    suspended. A day without games is settled only next to a later day with games (season_listing):
    an empty answer may be an outage, not an off day."""
    return bool(games) and all(is_final(g) or _state(g).startswith(NOT_PLAYED) for g in games)


def final_for_good(game: dict) -> bool:
    """Final, not just over ("Game Over" comes before the official "Final")."""
    return is_final(game) and _state(game).startswith(("Final", "Completed Early"))


@dataclass
class SeasonListing:
    """A season's schedule as of a day: every listed game by date, settled days from the cache."""
    by_day: dict[dt.date, list[dict]] = field(default_factory=dict)


def season_listing(api: StatsApi, season: int, as_of: dt.date) -> SeasonListing:
    """Each day's games from the season's first day to `as_of`; settled days are read from the cache
    and asked for never again, the others in a request a month (one a night, usually)."""
    first = dt.date(season, *FIRST_DAY)
    last = min(as_of, dt.date(season, *LAST_DAY))
    folder = f"{int(season)}/days"
    listing = SeasonListing()
    day, unsettled = first, []
    while day <= last:
        cached = api.cache.get(f"{folder}/{day.isoformat()}.json") if day < as_of else None
        if cached is None:
            unsettled.append(day)
        else:
            listing.by_day[day] = json.loads(cached)
        day += dt.timedelta(days=1)
    for start, end in _month_spans(unsettled):
        games = api.schedule(start, end)
        try:
            fresh = _by_day(games, start, end)
            settled = {listed: is_settled(day_games) for listed, day_games in fresh.items()}
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise SourceError(f"{api.schedule_url} ({start} to {end}): unexpected schedule payload "
                              f"({type(exc).__name__}: {exc})") from None
        played = [d for d, day_games in fresh.items() if day_games]
        for listed, day_games in fresh.items():
            listing.by_day[listed] = day_games
            off_day = not day_games and any(d > listed for d in played)  # an empty answer is no off day
            stale = bool(day_games) and listed <= as_of - dt.timedelta(days=SETTLE_AFTER_DAYS)
            if listed < as_of and listed < dt.date.today() and (settled[listed] or off_day or stale):
                if not settled[listed] and stale:
                    odd = [f"{g.get('gamePk')} '{_state(g)[:30]}'" for g in day_games
                           if not (is_final(g) or _state(g).startswith(NOT_PLAYED))]
                    log.warning("the listing of %s is kept as it stands, %d days on: %s", listed,
                                (as_of - listed).days, ", ".join(odd))
                api.cache.put(f"{folder}/{listed.isoformat()}.json", json.dumps(day_games).encode())
    return listing


def _by_day(games: list[dict], start: dt.date, end: dt.date) -> dict[dt.date, list[dict]]:
    fresh: dict[dt.date, list[dict]] = {d: [] for d in _days(start, end)}
    for game in games:
        listed = dt.date.fromisoformat(str(game["_listed"])[:10])
        if listed in fresh:
            fresh[listed].append(game)
    return fresh


def _days(start: dt.date, end: dt.date) -> list[dt.date]:
    return [start + dt.timedelta(days=n) for n in range((end - start).days + 1)]


def _month_spans(days: list[dt.date]) -> list[tuple[dt.date, dt.date]]:
    """The unsettled days as requests: from the first one on, at most 31 days a request (a night's
    yesterday and today are one request, even across the end of a month)."""
    if not days:
        return []
    spans, start, end = [], days[0], days[-1]
    while start <= end:
        stop = min(start + dt.timedelta(days=SPAN_DAYS - 1), end)
        spans.append((start, stop))
        start = stop + dt.timedelta(days=1)
    return spans


def team_code(team: dict, game: str) -> str:
    team_id = (team.get("team") or {}).get("id")
    if team_id not in STATSAPI_TEAMS:
        raise PayloadShapeError(f"game {game}: unknown Stats API team id {str(team_id)[:20]}")
    return STATSAPI_TEAMS[team_id]


def park_code(game: dict, season: int) -> str:
    """The Retrosheet park of the game's venue in that season; "" (no park) for a venue the table
    does not know then, with a warning naming it."""
    venue = game.get("venue") or {}
    code, first, last = VENUES.get(venue.get("id"), ("", None, None))
    if code and (first or season) <= season <= (last or season):
        return code
    log.warning("game %s: Stats API venue %s (%s) is not in the park table for %d; no park id",
                game.get("gamePk"), str(venue.get("id"))[:20], str(venue.get("name"))[:40], season)
    return ""


def game_number(game: dict) -> str:
    return "0" if game.get("doubleHeader", "N") == "N" else str(int(game.get("gameNumber", 1)))


def line_score(innings: list[dict], side: str) -> str:
    """Retrosheet's line score: a character an inning, `(10)` for two digits, `x` for a half not batted."""
    out = []
    for inning in innings:
        runs = (inning.get(side) or {}).get("runs")
        out.append("x" if runs is None else (str(runs) if 0 <= int(runs) < 10 else f"({int(runs)})"))
    return "".join(out)


def _name(person: dict) -> str:
    """A name as Retrosheet writes it: ASCII, no Jr. ("Jose Ramirez" for "José Ramírez")."""
    text = unicodedata.normalize("NFKD", str(person.get("fullName") or "")).encode("ascii", "ignore").decode("ascii")
    return re.sub(r",? (Jr|Sr|II|III|IV)\.?$", "", text.strip())[:80]


# Stat keys an older answer may lack, and how each is derived from what it has (by the stat's own
# definition); any other missing key refuses the game, naming it: never a silent zero.
PA_PARTS = ("atBats", "baseOnBalls", "hitByPitch", "sacBunts", "sacFlies", "catchersInterference")
PITCHING_ALIASES = {"hitByPitch": "hitBatsmen"}


def _stat(line: dict, key: str, where: str) -> int:
    """One stat of a player's batting or pitching line, derived where an older answer lacks it."""
    value = line.get(key)
    if value is None and key == "plateAppearances":
        lacking = [k for k in PA_PARTS if line.get(k) is None]
        if lacking:
            raise PayloadShapeError(f"{where} has no '{key}', nor '{lacking[0]}' to derive it")
        value = sum(int(line[k]) for k in PA_PARTS)
    if value is None and key in PITCHING_ALIASES:
        value = line.get(PITCHING_ALIASES[key])
    if value is None and key == "saves" and ("note" in line or line.get("gamesStarted") == 1):
        value = int(str(line.get("note", "")).startswith("(S,"))  # the box's decision note; a starter never saves
    if value is None:
        raise PayloadShapeError(f"{where} has no '{key}'")
    return int(value)


def starting_nine(team: dict, label: str) -> list[tuple[int, int, str]]:
    """(slot, player id, first position) of the nine who started, from each player's own
    `battingOrder` ("300": the third slot's starter; "301": his first substitute). The team's
    `battingOrder` list is the order at the end of the game, substitutes in."""
    nine: dict[int, tuple[int, str]] = {}
    for entry in team["players"].values():
        code = str(entry.get("battingOrder") or "")
        if len(code) == 3 and code.isdigit() and code.endswith("00") and code[0] != "0":
            if int(code[0]) in nine:
                raise PayloadShapeError(f"game {label}: two starters in batting slot {code[0]}")
            position = str(((entry.get("allPositions") or [entry.get("position") or {}])[0]).get("code", ""))
            nine[int(code[0])] = (int(entry["person"]["id"]), position if position.isdigit() else "")
    if sorted(nine) != list(range(1, 10)):
        raise PayloadShapeError(f"game {label}: no starter in batting slot(s) "
                                f"{', '.join(str(s) for s in range(1, 10) if s not in nine)}")
    return [(slot, *nine[slot]) for slot in range(1, 10)]


def _info_fields(team: dict) -> dict[str, str] | None:
    """The box score's notes for a team ("Team LOB", "DP", ...): label -> text; None when it has none."""
    if not isinstance(team.get("info"), list):
        return None
    return {str(f.get("label")): str(f.get("value", "")) for section in team["info"]
            for f in (section.get("fieldList") or [])}


def _times(note: str) -> int:
    """How many a fielding note counts: "2 (A-B-C; D-E)" is 2, "(A-B-C)" is one."""
    head = note.strip().split(" ")[0]
    return int(head) if head.isdigit() else 1


def team_lob(game: dict, team: dict, side: str) -> int | None:
    """Runners the side left on base: the line score's (the box's team total sums every batter's LOB,
    counting a runner once for each out he stood through); else the box's own "Team LOB" note."""
    lob = (((game.get("linescore") or {}).get("teams") or {}).get(side) or {}).get("leftOnBase")
    if lob is None:
        note = (_info_fields(team) or {}).get("Team LOB")
        lob = note.rstrip(".") if note and note.rstrip(".").isdigit() else None
    return None if lob is None else int(lob)


def double_and_triple_plays(team: dict) -> tuple[int, int] | None:
    """Double and triple plays the side turned, from the box's fielding notes (none noted: none)."""
    fields = _info_fields(team)
    if fields is None:
        return None
    return tuple(_times(fields[k]) if k in fields else 0 for k in ("DP", "TP"))  # type: ignore[return-value]


def gamelog_row(game: dict, box: dict | None, date: dt.date, completed: dt.date | None,
                ids: Callable[[int], str]) -> dict[str, str]:
    """One game as the game log's fields (text, as in GLYYYY.TXT). `box` None for a game begun but
    not final by the as-of day (a suspended one): the fields known before the first pitch, and as its
    completion the as-of day, so A hides its (placeholder) result as for a replayed game log."""
    label = str(game.get("gamePk"))
    teams = game["teams"]
    visiting, home = team_code(teams["away"], label), team_code(teams["home"], label)
    if visiting == home:
        raise PayloadShapeError(f"game {label}: {home} listed as both home and away team")
    park = park_code(game, date.year)
    row = {"date": date.strftime("%Y%m%d"), "game_number": game_number(game), "day_of_week": date.strftime("%a"),
           "visiting_team": visiting, "visiting_league": TEAM_LEAGUE[teams["away"]["team"]["id"]],
           "home_team": home, "home_league": TEAM_LEAGUE[teams["home"]["team"]["id"]],
           "day_night": {"day": "D", "night": "N"}.get(game.get("dayNight"), ""), "park_id": park}
    if box is None:
        for side, prefix in (("away", "v"), ("home", "h")):
            pitcher = teams[side].get("probablePitcher") or {}
            if pitcher.get("id") is not None:
                row[f"{prefix}_starting_pitcher_id"] = ids(int(pitcher["id"]))
                row[f"{prefix}_starting_pitcher_name"] = _name(pitcher)
        row.update(visiting_score="0", home_score="0", completion_info=f"{completed:%Y%m%d},{park},,,")
        return row
    linescore = game.get("linescore") or {}
    innings = linescore.get("innings") or []
    row["visiting_score"] = str(int(teams["away"]["score"]))
    row["home_score"] = str(int(teams["home"]["score"]))
    row["visiting_line_score"] = line_score(innings, "away")
    row["home_line_score"] = line_score(innings, "home")
    outs = 0
    for side, prefix in (("away", "v"), ("home", "h")):
        team = box["teams"][side]
        stats = team["teamStats"]
        batting = [line for pid in team["batters"] if (line := _line(team, pid, "batting"))]
        for name, key in TEAM_BATTING.items():
            # the batters' sum where every line has the stat (an older answer's team totals can disagree
            # with its own lines), else the team's total, else nothing
            if batting and all(key in line for line in batting):
                row[f"{prefix}_{name}"] = str(sum(int(line[key]) for line in batting))
            elif stats["batting"].get(key) is not None:
                row[f"{prefix}_{name}"] = str(int(stats["batting"][key]))
        pitching = stats.get("pitching") or {}
        outs += int(pitching.get("outs") or 0)
        row[f"{prefix}_pitchers_used"] = str(len(team["pitchers"]))
        for name, key in (("team_er", "earnedRuns"), ("wp", "wildPitches"), ("balk", "balks")):
            if pitching.get(key) is not None:
                row[f"{prefix}_{name}"] = str(int(pitching[key]))
        fielding = stats.get("fielding") or {}
        for name, key in (("po", "putOuts"), ("a", "assists"), ("e", "errors"), ("pb", "passedBall")):
            if fielding.get(key) is not None:
                row[f"{prefix}_{name}"] = str(int(fielding[key]))
        lob = team_lob(game, team, side)
        if lob is not None:
            row[f"{prefix}_lob"] = str(lob)
        plays = double_and_triple_plays(team)
        if plays is not None:
            row[f"{prefix}_dp"], row[f"{prefix}_tp"] = str(plays[0]), str(plays[1])
        row[f"{prefix}_ind_er"] = str(sum(_stat(_line(team, pid, "pitching"), "earnedRuns",
                                                f"game {label}: pitcher {pid}'s line") for pid in team["pitchers"]))
        if team["pitchers"]:
            starter = team["players"][f"ID{team['pitchers'][0]}"]["person"]
            row[f"{prefix}_starting_pitcher_id"] = ids(team["pitchers"][0])
            row[f"{prefix}_starting_pitcher_name"] = _name(starter)
        for slot, pid, position in starting_nine(team, label):
            row[f"{prefix}_player{slot}_id"] = ids(pid)
            row[f"{prefix}_player{slot}_name"] = _name(team["players"][f"ID{pid}"]["person"])
            row[f"{prefix}_player{slot}_pos"] = position
    row["length_outs"] = str(outs)
    decisions = game.get("decisions") or {}
    for who, key in (("winning_pitcher", "winner"), ("losing_pitcher", "loser"), ("saving_pitcher", "save")):
        if (decisions.get(key) or {}).get("id") is not None:
            row[f"{who}_id"] = ids(int(decisions[key]["id"]))
            row[f"{who}_name"] = _name(decisions[key])
    if completed is not None:  # suspended, then completed: Retrosheet's "date,park,..." (the date is what is read)
        row["completion_info"] = f"{completed.strftime('%Y%m%d')},{park},,,"
    return row


def _line(team: dict, pid: int, kind: str) -> dict:
    return ((team["players"][f"ID{pid}"].get("stats") or {}).get(kind)) or {}


def player_lines(game: dict, box: dict, date: dt.date, completed: dt.date | None,
                 ids: Callable[[int], str]) -> list[dict]:
    """Every player's batting and pitching line in one final game, as `player_games` rows."""
    label = str(game.get("gamePk"))
    codes = {side: team_code(game["teams"][side], label) for side in ("away", "home")}
    home = codes["home"]
    event_id = f"{home}{date.strftime('%Y%m%d')}{game_number(game)}"
    rows = []
    for side in ("away", "home"):
        team = box["teams"][side]
        starters = {pid for _, pid, _ in starting_nine(team, label)} | set(team["pitchers"][:1])
        pitchers = team["pitchers"]
        order = list(dict.fromkeys(team["batters"] + pitchers))
        unslotted = 0
        for pid in order:
            player = team["players"][f"ID{pid}"]
            stats = player.get("stats") or {}
            batting, pitching = stats.get("batting") or {}, stats.get("pitching") or {}
            batting_order = str(player.get("battingOrder") or "")
            if batting_order.isdigit() and len(batting_order) == 3:
                slot, seq = int(batting_order[0]), int(batting_order[1:]) + 1
            else:  # a pitcher who never batted: slot 0, in order of appearance
                unslotted += 1
                slot, seq = 0, unslotted
            row = {"event_game_id": event_id, "date": date, "game_number": int(game_number(game)),
                   "appear_date": date if completed is None or pid in starters else completed,
                   "team": codes[side], "opponent": codes["home" if side == "away" else "away"],
                   "is_home": side == "home", "player_id": ids(pid), "slot": slot, "seq": seq}
            for column, key in PLAYER_BATTING.items():  # a player who did not bat has no batting line
                row[column] = _stat(batting, key, f"game {label}: batter {pid}'s line") if batting else 0
            pitched = pid in pitchers
            row["p_g"] = int(pitched)
            for column, key in PLAYER_PITCHING.items():
                row[column] = _stat(pitching, key, f"game {label}: pitcher {pid}'s line") if pitched else 0
            rows.append(row)
    return rows


def suspended_on(listing: SeasonListing) -> dict[int, dt.date]:
    """The day each suspended game began: where it stays once completed (Retrosheet files it there).
    A postponed game's earlier listing does not count: it is played on its new date."""
    first: dict[int, dt.date] = {}
    for day in sorted(listing.by_day):
        for game in listing.by_day[day]:
            if _state(game).startswith("Suspended"):
                first.setdefault(int(game["gamePk"]), day)
    return first


def games_before(listing: SeasonListing, as_of: dt.date) -> tuple[dict[int, tuple[dict, dt.date, dt.date | None]],
                                                                   dict[int, tuple[dict, dt.date]]]:
    """(final games: pk -> (listing, date, completion date or None); games begun before `as_of` but
    not final by then (suspended): pk -> (listing, date)). A game's date is its first listing's
    (a resumed game's `resumedFrom`), as Retrosheet files it."""
    first = suspended_on(listing)
    began_as = {int(g["gamePk"]): g for day in sorted(listing.by_day, reverse=True) for g in listing.by_day[day]
                if int(g["gamePk"]) in first and first[int(g["gamePk"])] == day}
    finals: dict[int, tuple[dict, dt.date, dt.date | None]] = {}
    pending: dict[int, tuple[dict, dt.date]] = {}
    for day in sorted(listing.by_day):
        if day >= as_of:
            continue
        for game in listing.by_day[day]:
            pk = int(game["gamePk"])
            resumed = _resumed_from(game)
            began = dt.date.fromisoformat(str(resumed)[:10]) if resumed else min(first.get(pk, day), day)
            if is_final(game):
                if pk in began_as and day != began:  # filed as it began: its doubleheader number, park, light
                    game = {**game, **{k: began_as[pk][k] for k in ("doubleHeader", "gameNumber", "venue", "dayNight")
                                       if k in began_as[pk]}}
                finals[pk] = (game, began, day if day != began else None)
                pending.pop(pk, None)
            elif _state(game).startswith("Suspended") and pk not in finals:
                pending[pk] = (game, began)
    return finals, pending


def day_slate(listing: SeasonListing, as_of: dt.date) -> list[dict]:
    """The day's games to predict: not postponed or cancelled, and not a suspended game resuming
    (it is filed on the day it began, and its outcome is already half decided)."""
    return [g for g in listing.by_day.get(as_of, [])
            if not _state(g).startswith(("Postponed", "Cancelled")) and not _resumed_from(g)]


@dataclass
class LiveSeason:
    rows: list[dict[str, str]]          # game-log fields of each game before the as-of day
    pks: list[int]
    lines: list[dict]                   # player_games rows
    quarantine: list[dict]              # games whose box score does not read, as A's quarantine rows


def read_season(api: StatsApi, season: int, as_of: dt.date, live_ids: LiveIds) -> tuple[LiveSeason, SeasonListing]:
    """A season's games before `as_of` from the Stats API (cached finals never asked again), every
    player in them mapped through `live_ids`."""
    listing = season_listing(api, season, as_of)
    try:
        finals, pending = games_before(listing, as_of)
        probables = {int(t["probablePitcher"]["id"]) for game in [g for g, _ in pending.values()]
                     + day_slate(listing, as_of) for t in game["teams"].values() if t.get("probablePitcher")}
    except (PayloadShapeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise SourceError(f"{api.schedule_url} ({season} to {as_of}): unexpected schedule payload "
                          f"({type(exc).__name__}: {exc})") from None
    boxes: dict[int, dict] = {}
    quarantine: list[dict] = []
    with progress(f"Stats API {season}", len(finals)) as step:
        for pk in sorted(finals, key=lambda p: (finals[p][1], p)):
            step(f"game {pk}")
            try:
                stale = finals[pk][1] <= as_of - dt.timedelta(days=SETTLE_AFTER_DAYS)
                boxes[pk] = api.boxscore(pk, season, keep=final_for_good(finals[pk][0]) or stale)
            except PayloadError as exc:
                quarantine.append(unreadable(season, f"{api.root}/game/{pk}/boxscore", pk, finals[pk][1], exc))
    people = set(probables)
    for box in boxes.values():  # those who played (a box score lists the whole roster)
        for side in ("away", "home"):
            team = box["teams"][side]
            people.update(team["battingOrder"] + team["batters"] + team["pitchers"])
    live_ids.learn(api, sorted(people))
    ids = live_ids.id
    rows, pks, lines = [], [], []
    for pk, (game, date, completed) in sorted(finals.items(), key=lambda kv: (kv[1][1], kv[0])):
        if pk not in boxes:
            continue
        try:
            row = gamelog_row(game, boxes[pk], date, completed, ids)
            game_lines = player_lines(game, boxes[pk], date, completed, ids)
        except (PayloadShapeError, KeyError, TypeError, ValueError) as exc:
            quarantine.append(unreadable(season, f"{api.root}/game/{pk}/boxscore", pk, date, exc))
            continue
        rows.append(row)
        lines.extend(game_lines)
        pks.append(pk)
    for pk, (game, date) in sorted(pending.items(), key=lambda kv: (kv[1][1], kv[0])):
        try:
            rows.append(gamelog_row(game, None, date, as_of, ids))
        except (PayloadShapeError, KeyError, TypeError, ValueError) as exc:
            raise SourceError(f"{api.schedule_url} ({season}): game {pk} does not read ({type(exc).__name__}: "
                              f"{exc})") from None
        pks.append(pk)
    return LiveSeason(rows, pks, lines, quarantine), listing


def unreadable(season: int, url: str, pk: int, date: dt.date, exc: Exception) -> dict:
    """A final game whose box score does not read, as a quarantine row (its gamePk in place of a line
    number): E reports it, the night goes on without it, and the next night asks for it again."""
    reason = str(exc) if isinstance(exc, (PayloadError, PayloadShapeError)) else f"{type(exc).__name__}: {exc}"
    log.warning("game %s of %s does not read; quarantined: %s", pk, date, " ".join(reason.split())[:200])
    return {"season": season, "source": url, "line_number": int(pk),
            "reason": f"game {pk} of {date} does not read: {' '.join(reason.split())[:240]}", "text": ""}


MAX_GAMES_A_DAY = 40  # 15 games on a full day, a few more with doubleheaders and split squads


def _pitcher_name(value: object, game: str, where: str) -> str | None:
    """A probable pitcher's name as the payload gives it: text of a sane length, or absent."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > 80:
        raise PayloadShapeError(f"game {game}: {where} probable pitcher's name {str(value)[:40]!r} is not a name")
    return value.strip()


def _game_pk(game: dict, label: str) -> int:
    pk = game.get("gamePk")
    if isinstance(pk, bool) or not isinstance(pk, int) or pk <= 0:
        raise PayloadShapeError(f"game {label}: gamePk {str(pk)[:20]!r} is not a positive integer")
    return pk


def posted_nines(api: StatsApi, slate: list[dict], day: dt.date, ids: LiveIds) -> dict[int, dict[str, object]]:
    """gamePk -> the schedule's lineup fields of each side that has posted its nine. Teams post their
    lineup a few hours before the first pitch, and the game's box score carries it from then on: each
    starter's `battingOrder` ("100".."900") and his position, as in a final box score (`starting_nine`).
    A side with no lineup yet, or a box score that does not read, is left out: its game is predicted
    with the expected nine, and says so. The box score is asked for afresh (a lineup can change until
    the game begins); a final game's stored one is read from the cache."""
    out: dict[int, dict[str, object]] = {}
    for game in slate:
        if _state(game).startswith(("Postponed", "Cancelled")) or not isinstance(game.get("gamePk"), int):
            continue
        pk = game["gamePk"]
        try:
            box = api.boxscore(pk, day.year, keep=False)
        except (SourceError, OSError) as exc:
            log.warning("game %s of %s: no box score to read its lineups from (%s); predicted with the expected "
                        "nines", pk, day, " ".join(str(exc).split())[:200])
            continue
        fields: dict[str, object] = {}
        for side, prefix in (("away", "v"), ("home", "h")):
            team = box["teams"][side]
            if not any(str((e or {}).get("battingOrder") or "").endswith("00") for e in team["players"].values()):
                continue  # not posted yet: no player has a batting slot
            try:
                nine = starting_nine(team, str(pk))
                ids.learn(api, [pid for _, pid, _ in nine])  # new players' people records (a request)
            except (PayloadShapeError, KeyError, TypeError, ValueError, SourceError, OSError) as exc:
                log.warning("game %s of %s: the %s lineup does not read (%s); predicted with the expected nine",
                            pk, day, side, " ".join(str(exc).split())[:200])
                continue
            for slot, pid, position in nine:
                fields[f"{prefix}_player{slot}_id"] = ids.id(pid)
                fields[f"{prefix}_player{slot}_pos"] = int(position) if position else pd.NA
        if fields:
            out[pk] = fields
    return out


def slate_frame(games: list[dict], day: dt.date, pitcher_ids: Callable[[dict], str | None],
                nines: dict[int, dict[str, object]] | None = None) -> pd.DataFrame:
    """The day's regular-season games (postponed and cancelled ones left out) as the schedule's
    columns: teams and leagues, park, day or night, doubleheader game, probable pitchers by id, and
    each side's posted nine where `nines` (gamePk -> lineup fields) has it."""
    if len(games) > MAX_GAMES_A_DAY:
        raise PayloadShapeError(f"{len(games)} games on {day}, more than any day's slate ({MAX_GAMES_A_DAY})")
    rows = []
    for game in games:
        label = str(game.get("gamePk", "?"))[:20]
        if game.get("gameType", "R") != "R" or _state(game).startswith(("Postponed", "Cancelled")):
            continue
        official = game.get("officialDate") or game.get("_listed")  # gameDate is UTC: a night game's is tomorrow's
        if official != day.isoformat():
            raise PayloadShapeError(f"game {label}: dated {str(official)[:20]!r}, not the requested {day}")
        side = {}
        for where in ("away", "home"):
            team = game["teams"][where]
            pitcher = team.get("probablePitcher") or {}
            name = _pitcher_name(pitcher.get("fullName"), label, where)
            side[where] = (team_code(team, label), name, pitcher_ids(pitcher) if name else None,
                           TEAM_LEAGUE[team["team"]["id"]])
        if side["away"][0] == side["home"][0]:
            raise PayloadShapeError(f"game {label}: {side['home'][0]} listed as both home and away team")
        number = game_number(game)
        if number not in ("0", "1", "2"):
            raise PayloadShapeError(f"game {label}: game number {number} of a doubleheader")
        rows.append({
            "season": day.year, "date": pd.Timestamp(day), "game_number": number,
            "day_of_week": day.strftime("%a"), "visiting_team": side["away"][0], "visiting_league": side["away"][3],
            "visiting_game_number": pd.NA, "home_team": side["home"][0], "home_league": side["home"][3],
            "home_game_number": pd.NA, "day_night": {"day": "D", "night": "N"}.get(game.get("dayNight"), pd.NA),
            "park_id": park_code(game, day.year), "v_starting_pitcher_id": side["away"][2],
            "v_starting_pitcher_name": side["away"][1], "h_starting_pitcher_id": side["home"][2],
            "h_starting_pitcher_name": side["home"][1], "game_pk": _game_pk(game, label),
            **(nines or {}).get(game.get("gamePk"), {}),
        })
    frame = pd.DataFrame(rows, columns=SCHEDULE_COLUMNS)
    integers = ("season", "visiting_game_number", "home_game_number", "game_pk",
                *(c for c in SCHEDULE_COLUMNS if c.endswith("_pos")))
    for col in integers:
        frame[col] = frame[col].astype("Int64")
    for col in SCHEDULE_COLUMNS:
        if col not in ("date", *integers):
            frame[col] = frame[col].astype("string")
    frame["date"] = pd.to_datetime(frame["date"]).astype("datetime64[ms]")
    return frame
