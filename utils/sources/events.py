"""Retrosheet play-by-play event files -> one row per player per game (`player_games`).

Each `YYYYeve.zip` (Retrosheet's `events/` folder, or a local folder laid out the same way) holds
one event file per home team. `chadwickpy`, a port of the Chadwick tools, replays each game and
gives every player's batting and pitching line in it (its `cwdaily`): the same lines Retrosheet's
box scores print, checked on 2023 against Lahman's season totals for all 863 pitchers. A second
walk through each replayed game counts every batter's results against left-handed pitchers
(`VS_LEFT`, the pitchers' hands from the zip's own roster files): the platoon splits F regresses.

Each game is read on its own, so a game Chadwick cannot replay (or warns about) is quarantined
with its file, the line of its `id` record and the reason, and the season's other games stay. A
season takes about 15 s of one core (utils/sources/chadwick_box.py builds the box scores without the
fielding chadwickpy also credits); the parse is cached by the zip's SHA-256, like the game logs, and
cold seasons are spread over worker processes.
"""
from __future__ import annotations

import io
import logging
import re
import zipfile
import zlib
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing import get_context

import pandas as pd

FIRST_EVENT_SEASON = 2000  # the first season of the event files this pipeline reads (docs/play-by-play.md)
# The cwdaily fields kept -> column names: keys, the batting-order slot and sequence, then lines.
KEYS = {"GAME_ID": "event_game_id", "GAME_DT": "date", "GAME_CT": "game_number", "APPEAR_DT": "appear_date",
        "TEAM_ID": "team", "OPPONENT_ID": "opponent", "HOME_FL": "is_home", "PLAYER_ID": "player_id",
        "SLOT_CT": "slot", "SEQ_CT": "seq"}
COUNTS = {"B_PA": "b_pa", "B_AB": "b_ab", "B_H": "b_h", "B_2B": "b_2b", "B_3B": "b_3b", "B_HR": "b_hr",
          "B_BB": "b_bb", "B_IBB": "b_ibb", "B_SO": "b_so", "B_HP": "b_hp", "B_SF": "b_sf", "B_SH": "b_sh",
          "P_G": "p_g", "P_GS": "p_gs", "P_GF": "p_gf", "P_SV": "p_sv", "P_OUT": "p_out", "P_TBF": "p_tbf",
          "P_R": "p_r", "P_ER": "p_er", "P_H": "p_h", "P_HR": "p_hr", "P_BB": "p_bb", "P_IBB": "p_ibb",
          "P_SO": "p_so", "P_HP": "p_hp", "P_IR": "p_ir", "P_IRS": "p_irs", "P_PITCH": "p_pitch"}
# Each batter's plate appearances and their results against left-handed pitchers (the pitcher charged
# with each, by his hand in the zip's rosters or a `padj` record); against right-handers is the rest.
VS_LEFT = {"b_pa": "bl_pa", "b_h": "bl_h", "b_2b": "bl_2b", "b_3b": "bl_3b", "b_hr": "bl_hr", "b_bb": "bl_bb",
           "b_ibb": "bl_ibb", "b_hp": "bl_hp"}
COLUMNS = ["season", *KEYS.values(), *COUNTS.values(), *VS_LEFT.values()]
# where a cwdaily line (KEYS, then COUNTS) has the player, whether he pitched, and his pitches
_PLAYER, _PITCHED, _PITCH = (list(KEYS) + list(COUNTS)).index("PLAYER_ID"), len(KEYS) + list(COUNTS).index("P_G"), -1
_SLOT = list(KEYS).index("SLOT_CT")
MAX_EVENT_FILE_BYTES = 16_000_000  # a home team's season is about 1.5 MB; a member far larger is a zip bomb
MAX_EVENT_FILES = 64  # 30 teams a season (and 26-30 before 1998); more members is not a season's zip
MAX_COUNT = 999  # no line of one game reaches it (pitches top out near 150)
# Retrosheet's pitch codes of a ball or a strike thrown (Chadwick's own sets); pickoff throws, the
# catcher's markers, automatic balls and strikes (A, V since 2023) and "no pitch" (N) are not pitches.
PITCHES_THROWN = frozenset("BHIPCFKLMOQRSTXY")
_GAME_START = re.compile(rb"(?m)^(?=id,)")
log = logging.getLogger("mlb.events")


class EventsError(ValueError):
    """An events zip that cannot be read at all; the message names it."""


@dataclass(frozen=True)
class ParsedEvents:
    lines: pd.DataFrame
    quarantine: pd.DataFrame


class _Collect(logging.Handler):
    """chadwickpy's own warnings about a game (an unreadable number, say), kept as its quarantine reason."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def pitch_counts(game: bytes) -> dict[str, int]:
    """Pitches each pitcher threw in one game's event records: every pitch of a plate appearance
    once, to whoever was on the mound when its record was written.

    A plate appearance broken by a play not involving the batter (a steal, a pickoff, a pitching
    change) is two or more `play` records of the same batter. The event files repeat the earlier
    records' pitches at the start of the later one, with `.` where the play came; so a record that
    begins with its predecessor's pitches adds only what follows them. Chadwick counts only what
    follows a record's last `.`, which loses pitches wherever `.` stands without an earlier record:
    the 2023 files mark pitch-clock and mound-visit pauses so (docs/play-by-play.md)."""
    mound: dict[int, str] = {}
    counts: dict[str, int] = {}
    last_key, last_pitches = None, ""
    for raw in game.decode("latin-1").splitlines():
        parts = raw.split(",")
        if parts[0] in ("start", "sub") and len(parts) >= 6 and parts[5].strip() == "1" and parts[3] in ("0", "1"):
            mound[int(parts[3])] = parts[1]
        elif parts[0] == "play" and len(parts) >= 7 and parts[2] in ("0", "1"):
            key, pitches = (parts[1], parts[2], parts[3]), parts[5]
            prior = last_pitches if key == last_key else ""
            new = pitches[len(prior):] if prior and pitches.startswith(prior) else pitches
            pitcher = mound.get(1 - int(parts[2]))
            if pitcher is not None:
                counts[pitcher] = counts.get(pitcher, 0) + sum(ch in PITCHES_THROWN for ch in new)
            last_key, last_pitches = key, pitches or prior
    return counts


def _with_pitches(lines: list[str], counts: dict[str, int]) -> list[str]:
    """cwdaily lines with each pitcher's P_PITCH (the last field) replaced by `pitch_counts`'."""
    out = []
    for line in lines:
        fields = line.split(",")
        player = fields[_PLAYER].strip('"')
        if fields[_PITCHED] == "1" and player in counts:
            fields[_PITCH] = str(counts[player])
        out.append(",".join(fields))
    return out


def left_handed_results(game, throws: dict[str, str]) -> dict[str, list[int]]:
    """Each batter's VS_LEFT counts in one replayed game (chadwickpy's Game): every plate appearance
    credited as Chadwick's box score credits it (the charged batter and pitcher), counted where the
    charged pitcher throws left-handed."""
    from chadwickpy.gameiter import GameIter
    from chadwickpy.parse import Ev, is_batter

    results = {Ev.SINGLE: (1,), Ev.DOUBLE: (1, 2), Ev.TRIPLE: (1, 3), Ev.HOMERUN: (1, 4), Ev.WALK: (5,),
               Ev.INTENTIONALWALK: (5, 6), Ev.HITBYPITCH: (7,)}  # indexes into VS_LEFT's counts
    counts: dict[str, list[int]] = {}
    it = GameIter(game)
    while it.event is not None:
        data, event = it.data, it.event
        if event.event_text != "NP" and is_batter(data):
            pitcher = it.state.charged_pitcher(data)
            hand = event.pitcher_hand if event.pitcher_hand != " " else throws.get(pitcher or "", "?")
            if hand == "L":
                line = counts.setdefault(it.state.charged_batter(event.batter, data), [0] * len(VS_LEFT))
                for index in (0, *results.get(data.event_type, ())):
                    line[index] += 1
        it.next()
    return counts


def _with_left(lines: list[str], counts: dict[str, list[int]] | None) -> list[str]:
    """cwdaily lines with each player's VS_LEFT counts appended (zeros for one who never faced a lefty;
    empty, not known, without the pitchers' hands). A player with two lines in a game (who batted for
    both teams of a suspended game finished after a trade) has them on his first batting line, where
    Chadwick's box score credits all his plate appearances (a pitcher's line that never batted is slot 0)."""
    if counts is None:
        return [line + "," * len(VS_LEFT) for line in lines]
    zeros = [0] * len(VS_LEFT)
    fields = [line.split(",") for line in lines]
    players = [parts[_PLAYER].strip('"') for parts in fields]
    credited: dict[str, int] = {}  # player -> the index of the line his counts go on
    for index, player in enumerate(players):
        if player not in credited or (fields[credited[player]][_SLOT] == "0" and fields[index][_SLOT] != "0"):
            credited[player] = index
    return [line + "," + ",".join(map(str, counts.get(player, zeros) if credited[player] == index else zeros))
            for index, (line, player) in enumerate(zip(lines, players))]


def roster_throws(payload_members: list[tuple[str, bytes]]) -> dict[str, str]:
    """player id -> throwing hand from a season zip's roster files (`TTTYYYY.ROS`: id, last, first,
    bats, throws, team, position); a player on two teams' rosters has the same hand on both."""
    throws: dict[str, str] = {}
    for _name, data in payload_members:
        for row in data.decode("latin-1").splitlines():
            fields = row.split(",")
            if len(fields) >= 5 and fields[4].strip() in ("L", "R", "B"):
                throws[fields[0].strip()] = fields[4].strip()
    return throws


def _fields() -> tuple[int, ...]:
    from chadwickpy.tools.daily import COLUMNS as CWDAILY

    return tuple(CWDAILY.index(name) for name in [*KEYS, *COUNTS])


def event_members(payload: bytes, where: str, kinds: tuple[str, ...] = (".EVA", ".EVN")) -> list[tuple[str, bytes]]:
    """(name, bytes) of each event file (`*.EVA`, `*.EVN`; or of other `kinds`, the rosters' `.ROS`) in a
    season's zip; EventsError naming the zip if it is not a sound one, holds no event file, or a member
    unpacks past any season's size."""
    try:
        with zipfile.ZipFile(io.BytesIO(payload)) as archive:
            members = sorted(n for n in archive.namelist() if n.upper().endswith(kinds))
            if len(members) > MAX_EVENT_FILES:
                raise EventsError(f"{where}: {len(members)} event files, more than any season's "
                                  f"({MAX_EVENT_FILES} at most)")
            files = []
            for name in members:
                declared = archive.getinfo(name).file_size
                with archive.open(name) as member:  # read at most the limit, whatever the header declares
                    data = member.read(MAX_EVENT_FILE_BYTES + 1) if declared <= MAX_EVENT_FILE_BYTES else b""
                if declared > MAX_EVENT_FILE_BYTES or len(data) > MAX_EVENT_FILE_BYTES:
                    raise EventsError(f"{where}: {name} unpacks to {max(declared, len(data)):,} bytes or more, "
                                      f"more than any team's season ({MAX_EVENT_FILE_BYTES:,} at most)")
                files.append((name, data))
    except EventsError:
        raise
    except (zipfile.BadZipFile, EOFError, zipfile.LargeZipFile, OSError, ValueError, zlib.error, RuntimeError,
            NotImplementedError) as exc:
        raise EventsError(f"{where}: corrupt or truncated zip ({' '.join(str(exc).split())})") from None
    if not files and kinds == (".EVA", ".EVN"):
        raise EventsError(f"{where}: no event file (*.EVA, *.EVN) inside")
    return files


def parse_event_file(data: bytes, season: int, source: str, known_teams: set[str] | None = None,
                     throws: dict[str, str] | None = None) -> tuple[list[str], list[dict]]:
    """One event file -> (cwdaily CSV lines with each batter's VS_LEFT counts, quarantined games). Each
    game is replayed on its own; `throws` (roster_throws) gives the pitchers' hands: without them the
    counts against lefties are not known (empty)."""
    from chadwickpy.tools.tools import iterate_games

    from utils.sources.chadwick_box import game_lines

    fields = _fields()
    lines: list[str] = []
    bad: list[dict] = []
    chadwick = logging.getLogger("chadwickpy")
    collect = _Collect()
    chadwick.addHandler(collect)
    propagate, chadwick.propagate = chadwick.propagate, False
    level = chadwick.level
    chadwick.setLevel(logging.WARNING)  # its warnings are the quarantine's reasons, whatever the root logger's level
    line_number = 1
    try:
        for chunk in _GAME_START.split(data):
            first_line, line_number = line_number, line_number + chunk.count(b"\n")
            if not chunk.startswith(b"id,"):
                continue  # text before the first game (none in Retrosheet's files)
            game_id = chunk[3:chunk.find(b"\n") if b"\n" in chunk else None].decode("latin-1").strip()
            collect.messages.clear()
            try:
                game, left = [], {}
                for replay, _visitors, _home in iterate_games(chunk):
                    game = list(game_lines(replay, fields))
                    left = left_handed_results(replay, throws) if throws else None
            except Exception as exc:  # noqa: BLE001 - any failure of the third-party replay is this game's
                game, reason = [], f"Chadwick cannot replay game {game_id}: {type(exc).__name__}: {exc}"
            else:
                reason = (f"Chadwick warned on game {game_id}: {collect.messages[0]}" if collect.messages
                          else None if game else f"game {game_id} has no player line")
            if reason is None:
                try:
                    reason = _game_problem(game, season, known_teams)
                except (IndexError, ValueError) as exc:  # a line Chadwick cut short
                    reason = f"game {game_id}: unreadable line ({exc})"
            if reason:
                bad.append({"season": season, "source": source, "line_number": first_line,
                            "reason": " ".join(reason.split())[:300],
                            "text": chunk[:200].decode("latin-1").splitlines()[0]})
                continue
            lines.extend(_with_left(_with_pitches(game, pitch_counts(chunk)), left))
    finally:
        chadwick.removeHandler(collect)
        chadwick.propagate = propagate
        chadwick.setLevel(level)
    return lines, bad


def _game_problem(lines: list[str], season: int, known_teams: set[str] | None) -> str | None:
    """Why one game's lines cannot be right: a date of another season, an unknown team."""
    first = lines[0].split(",")
    if len(first) != len(KEYS) + len(COUNTS):
        return f"a line of {len(first)} fields, expected {len(KEYS) + len(COUNTS)} (a malformed info record?)"
    date, number, team, opponent = first[1].strip('"'), first[2], first[4].strip('"'), first[5].strip('"')
    if not (len(date) == 8 and date.isdigit() and int(date[:4]) == season):
        return f"date '{date}' is not a {season} date"
    if number not in ("0", "1", "2", "3"):
        return f"game number '{number[:20]}' is not 0-3"
    if known_teams is not None:
        for code in (team, opponent):
            if code not in known_teams:
                return f"unknown team code '{code}' for {season}"
    return None


def to_frame(lines: list[str], season: int) -> pd.DataFrame:
    """cwdaily lines -> typed rows of the player_games contract."""
    names = [*KEYS.values(), *COUNTS.values(), *VS_LEFT.values()]
    if not lines:
        frame = pd.DataFrame({name: pd.Series(dtype=object) for name in names})
    else:
        frame = pd.read_csv(io.StringIO("\n".join(lines)), header=None, names=names, dtype=str,
                            keep_default_na=False)
    out = pd.DataFrame({"season": pd.array([season] * len(frame), dtype="Int16")})
    for name in ("event_game_id", "team", "opponent", "player_id"):
        out[name] = frame[name].astype("string").array
    for name in ("date", "appear_date"):
        out[name] = pd.to_datetime(frame[name], format="%Y%m%d", errors="coerce").astype("datetime64[ms]").to_numpy()
    out["game_number"] = pd.to_numeric(frame["game_number"]).astype("Int16").array
    out["is_home"] = frame["is_home"].astype(str).eq("1").to_numpy()
    for name in ("slot", "seq", *COUNTS.values(), *VS_LEFT.values()):
        values = pd.to_numeric(frame[name].where(frame[name] != ""), errors="coerce")
        out[name] = values.where(values.between(0, MAX_COUNT)).astype("Int16").array
    return out[COLUMNS]


def parse_event_zip(payload: bytes, season: int, where: str, known_teams: set[str] | None = None) -> ParsedEvents:
    """A season's `YYYYeve.zip` -> its player lines and quarantined games (each named by zip and member)."""
    from utils.sources.quarantine import quarantine_frame

    lines: list[str] = []
    bad: list[dict] = []
    throws = roster_throws(event_members(payload, where, (".ROS",)))
    if not throws:
        log.warning("%s: no roster file (TTTYYYY.ROS) names a pitcher's hand; counts against lefties not known",
                    where)
    for name, data in event_members(payload, where):
        good, rejected = parse_event_file(data, season, f"{where}:{name}", known_teams, throws)
        lines.extend(good)
        bad.extend(rejected)
    return ParsedEvents(to_frame(lines, season), quarantine_frame(bad))


def _leave_interrupts_to_the_parent() -> None:
    """A worker ignores Ctrl-C, which a terminal sends to every process of the job: the parent stops
    the run and its workers (utils/engine/session.Interrupts), with one line and no worker's traceback."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


def parse_many(jobs: list[tuple[bytes, int, str, set[str] | None]], workers: int) -> list[ParsedEvents]:
    """parse_event_zip over several seasons, on up to `workers` processes (one season a task)."""
    from multiprocessing import current_process

    # a daemonic process (a Dask worker's) may not start processes of its own
    if workers <= 1 or len(jobs) <= 1 or current_process().daemon:
        return [parse_event_zip(*job) for job in jobs]
    # spawn, not fork: the caller may run in one of a thread pool's or Prefect's threads
    try:
        with ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=get_context("spawn"),
                                 initializer=_leave_interrupts_to_the_parent) as pool:
            return list(pool.map(parse_event_zip, *zip(*jobs)))
    except BrokenProcessPool:  # a worker that could not start (a __main__ read from stdin) or was killed
        log.warning("the play-by-play worker processes stopped; reading the %d season(s) in this one", len(jobs))
        return [parse_event_zip(*job) for job in jobs]
