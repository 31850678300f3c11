"""Retrosheet's game logs: the 161 fields of glfields.txt, typed (`parse_gamelog`), read out of a season's
zip with its limits (`read_season_zip`); a line that cannot be right goes to the quarantine with its
line number and reason, never into the rows.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import re
import zipfile
import zlib
from dataclasses import dataclass

import pandas as pd

from utils.sources.quarantine import quarantine_frame

_BAT = ["ab", "h", "2b", "3b", "hr", "rbi", "sh", "sf", "hbp", "bb", "ibb", "so", "sb", "cs", "gidp", "ci", "lob"]
_PITCH = ["pitchers_used", "ind_er", "team_er", "wp", "balk"]
_FIELD = ["po", "a", "e", "pb", "dp", "tp"]


def _lineup(side: str) -> list[tuple[str, str]]:
    cols = []
    for slot in range(1, 10):
        cols += [(f"{side}_player{slot}_id", "string"), (f"{side}_player{slot}_name", "string"),
                 (f"{side}_player{slot}_pos", "integer")]
    return cols


# The 161 fields of glfields.txt, in order: (name, type).
FIELDS: list[tuple[str, str]] = (
    [("date", "date"), ("game_number", "string"), ("day_of_week", "string"),
     ("visiting_team", "string"), ("visiting_league", "string"), ("visiting_game_number", "integer"),
     ("home_team", "string"), ("home_league", "string"), ("home_game_number", "integer"),
     ("visiting_score", "integer"), ("home_score", "integer"), ("length_outs", "integer"),
     ("day_night", "string"), ("completion_info", "string"), ("forfeit_info", "string"),
     ("protest_info", "string"), ("park_id", "string"), ("attendance", "integer"), ("time_minutes", "integer"),
     ("visiting_line_score", "string"), ("home_line_score", "string")]
    + [(f"v_{s}", "integer") for s in _BAT + _PITCH + _FIELD]
    + [(f"h_{s}", "integer") for s in _BAT + _PITCH + _FIELD]
    + [(f"ump_{pos}_{part}", "string") for pos in ("hp", "1b", "2b", "3b", "lf", "rf") for part in ("id", "name")]
    + [(f"{who}_{part}", "string") for who in ("v_manager", "h_manager", "winning_pitcher", "losing_pitcher",
                                                "saving_pitcher", "gwrbi", "v_starting_pitcher",
                                                "h_starting_pitcher") for part in ("id", "name")]
    + _lineup("v") + _lineup("h")
    + [("additional_info", "string"), ("acquisition_info", "string")]
)
FIELD_NAMES = [name for name, _ in FIELDS]
assert len(FIELDS) == 161

class IngestError(ValueError):
    """A source file that cannot be read at all; the message names it."""


# No game-log count comes near ten digits (attendance tops out at six); a longer one is a broken line,
# and would overflow a 64-bit integer if it ran past nineteen.
MAX_INTEGER_DIGITS = 9
# The most runs a team scored in a game of the logs is 49 (1871), 30 since 1900: past this a score is
# a broken line, not a rare game.
MAX_RUNS = 60
# A season's log is about 2,500 lines of under 1.5 KB (4 MB); a member far larger is a zip bomb.
MAX_GAMELOG_BYTES = 64_000_000


@dataclass(frozen=True)
class Parsed:
    games: pd.DataFrame
    quarantine: pd.DataFrame


def parse_gamelog(text: str, season: int, source: str, known_teams: set[str] | None = None) -> Parsed:
    """One season's GLYYYY.TXT -> typed rows; malformed lines go to quarantine with line number and reason."""
    good: list[list[str]] = []
    lines: list[int] = []
    bad: list[dict] = []
    raw_lines = text.splitlines()
    seen: dict[tuple[str, str, str], int] = {}  # (date, home team, game number) -> its first line
    for number, line in enumerate(raw_lines, start=1):
        if not line.strip():
            continue
        try:
            row = next(csv.reader([line], strict=True))
        except csv.Error as exc:
            bad.append(_quarantined(season, source, number, f"unparseable CSV: {exc}", line))
            continue
        if len(row) != len(FIELDS):
            bad.append(_quarantined(season, source, number, f"{len(row)} fields, expected {len(FIELDS)}", line))
            continue
        reason = _row_problem(row, season, known_teams)
        key = (row[0], row[6], row[1])
        if not reason and key in seen:
            reason = f"repeats line {seen[key]} (the same date, home team and game number)"
        if reason:
            bad.append(_quarantined(season, source, number, reason, line))
            continue
        seen[key] = number
        good.append(row)
        lines.append(number)
    frame = pd.DataFrame(good, columns=FIELD_NAMES, dtype=object)
    typed = {}
    not_numeric = pd.Series(pd.NA, index=frame.index, dtype="string")
    for name, kind in FIELDS:
        column = frame[name].where(frame[name] != "")
        if kind == "integer":
            # whole numbers only: "1.5", "1e23" or "inf" are none, and exponents slip past a length check.
            # A sign is kept: Retrosheet writes -1 where a count is unknown (attendance, 2021-07-21 ATL).
            count = column.str.fullmatch(rf"-?\d{{1,{MAX_INTEGER_DIGITS}}}").fillna(False).astype(bool)
            not_count = (column.notna() & ~count).to_numpy()
            typed[name] = pd.to_numeric(column.mask(not_count), errors="coerce").astype("Int64")
            broken = column.notna() & typed[name].isna()
            not_numeric = not_numeric.mask(broken & not_numeric.isna(), f"{name} is not a whole number"
                                           f" of at most {MAX_INTEGER_DIGITS} digits")
        elif kind == "date":
            # Parquet keeps milliseconds; fixing the unit here keeps a cached parse byte-identical to a fresh one
            typed[name] = pd.to_datetime(column, format="%Y%m%d").astype("datetime64[ms]")
        else:
            typed[name] = column.astype("string")
    out = pd.DataFrame(typed)
    out.insert(0, "line_number", pd.array(lines, dtype="Int64"))
    out.insert(0, "season", pd.array([season] * len(out), dtype="Int64"))
    broken = not_numeric.notna().to_numpy()
    for index in broken.nonzero()[0]:
        reason = not_numeric.iloc[index]
        value = good[index][FIELD_NAMES.index(reason.split()[0])]
        bad.append(_quarantined(season, source, lines[index], f"{reason}: {value!r}", raw_lines[lines[index] - 1]))
    out = out[~broken].reset_index(drop=True)
    bad.sort(key=lambda row: row["line_number"])
    return Parsed(out, quarantine_frame(bad))


# the values raw_gamelogs' contract allows (tests/test_faults.py holds them to it): a line with another
# is quarantined here, not left to fail the contract, and with it module A and the night
GAME_NUMBERS = ("0", "1", "2", "3", "A", "B")  # a single game, a doubleheader's first or second, ...
DAY_NIGHT = ("D", "N", "")  # "" unknown
TEAM_CODE = re.compile(r"[A-Z0-9]{3}")


def _row_problem(row: list[str], season: int, known_teams: set[str] | None) -> str | None:
    date, visiting, home = row[0], row[3], row[6]
    if len(date) != 8 or not date.isdigit() or int(date[:4]) != season:
        return f"date '{date}' is not a {season} date yyyymmdd"
    try:
        dt.date(int(date[:4]), int(date[4:6]), int(date[6:]))
    except ValueError:
        return f"date '{date}' does not exist"
    if row[1] not in GAME_NUMBERS:
        return f"game_number '{row[1][:30]}' is not one of {', '.join(GAME_NUMBERS)}"
    if row[12] not in DAY_NIGHT:
        return f"day_night '{row[12][:30]}' is not D, N or empty"
    for field, code in (("visiting_team", visiting), ("home_team", home)):
        if not TEAM_CODE.fullmatch(code):
            return f"{field} '{code[:30]}' is not a three-character team code"
    if visiting == home:
        return f"visiting_team and home_team are both '{home}'"
    for field, value in (("visiting_score", row[9]), ("home_score", row[10])):
        if not value.isdigit() or len(value) > MAX_INTEGER_DIGITS:
            return f"{field} '{value[:30]}' is not a whole number of at most {MAX_INTEGER_DIGITS} digits"
        if int(value) > MAX_RUNS:
            return f"{field} {value} is more runs than any team has scored in a game ({MAX_RUNS} at most)"
    if known_teams is not None:
        for field, code in (("visiting_team", visiting), ("home_team", home)):
            if code not in known_teams:
                return f"unknown team code '{code}' in {field} for {season}"
    return None


def _quarantined(season: int, source: str, number: int, reason: str, line: str) -> dict:
    return {"season": season, "source": source, "line_number": number, "reason": reason, "text": line[:500]}


def read_season_zip(payload: bytes, season: int, source: str) -> str:
    """The text of GLYYYY.TXT inside a glYYYY.zip; IngestError naming the file if it is not a sound zip."""
    try:
        with zipfile.ZipFile(io.BytesIO(payload)) as archive:
            names = [n for n in archive.namelist() if n.upper() == f"GL{season}.TXT"]
            found = archive.namelist()
            if names and archive.getinfo(names[0]).file_size > MAX_GAMELOG_BYTES:
                raise IngestError(f"{source}: GL{season}.TXT unpacks to {archive.getinfo(names[0]).file_size:,} "
                                  f"bytes, more than any season's log ({MAX_GAMELOG_BYTES:,} at most)")
            text = archive.read(names[0]).decode("latin-1") if names else None
    except IngestError:
        raise
    # zlib.error, CRC mismatches, encrypted members (RuntimeError) and unknown compression methods
    except (zipfile.BadZipFile, EOFError, zipfile.LargeZipFile, OSError, ValueError, zlib.error, RuntimeError,
            NotImplementedError) as exc:
        raise IngestError(f"{source}: corrupt or truncated zip ({' '.join(str(exc).split())})") from None
    if text is None:
        raise IngestError(f"{source}: no GL{season}.TXT inside (found {found})")
    return text
