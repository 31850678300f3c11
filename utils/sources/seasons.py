"""A season's files through a `SeasonFiles` source, parsed once: the game logs (`parse_cached`) and the
play-by-play (`read_player_games`) of every season, each parse kept in the content-keyed cache
(utils/store/cache.py) by its zip's bytes, its parser's version and the team codes it checks against,
and claimed while it is made, so two runs needing the same cold season parse it once; and the past
seasons' game logs together (`parse_seasons_cached`), one entry a span of seasons, made from those
parses without a claim (two runs making it at once write the same bytes).
"""
from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from utils.engine.progress import progress
from utils.sources.adapters import SeasonFiles
from utils.sources.common import NotFound, SourceError
from utils.sources.events import ParsedEvents, parse_many, to_frame
from utils.sources.gamelogs import IngestError, Parsed, parse_gamelog, read_season_zip
from utils.sources.quarantine import quarantine_frame
from utils.store.cache import ContentCache

log = logging.getLogger("mlb.a_ingest")


PARSER_VERSION = "4"  # bump when parse_gamelog's output changes: it invalidates the parsed-season cache


def parse_cached(payload: bytes, season: int, where: str, known: set[str], cache_dir: Path) -> Parsed:
    """parse_gamelog, reusing an earlier parse of the very same zip (finished seasons never change); a
    second process needing the same parse meanwhile waits for this one's."""
    cache, key = ContentCache(cache_dir), cache_key(payload, PARSER_VERSION, known)
    cached = read_cached_frames(cache, f"gl{season}", key, where)
    if cached is not None:
        return Parsed(*cached)
    with cache.claim(f"gl{season}"):
        cached = read_cached_frames(cache, f"gl{season}", key, where)  # made by the process we waited for
        if cached is not None:
            return Parsed(*cached)
        parsed = parse_gamelog(read_season_zip(payload, season, where), season, where, known)
        write_cached_frames(cache, f"gl{season}", key, (parsed.games, parsed.quarantine), where)
    return parsed


SEASONS_VERSION = "1"  # bump when parse_seasons_cached's entry changes shape


def parse_seasons_cached(fetched: list[tuple[int, bytes, str]], known: Callable[[int], set[str]], cache_dir: Path,
                         check: Callable[[int, Parsed, str], None] | None = None) -> Parsed:
    """Several seasons' game logs, (season, zip bytes, where) in order, as one Parsed: each season's parse
    (`parse_cached`, then `check`ed), and the seasons' rows together kept as one more entry, keyed by each
    season's key, so a night reads one file for its settled seasons instead of one a season. The entry is
    named by the first and last season (a backtest's earlier span keeps its own); a changed zip, parser or
    team list makes a new one from the seasons' parses, which are kept (two runs making it at once each
    write the same bytes). The quarantine's sources name each season's `where`, as `parse_cached`'s do.

    What it gives is laid out as the seasons' own frames concatenated, one piece a season: a text column's
    pieces decide where the Parquet writer cuts its pages, so a table written from it has the bytes the
    seasons read one by one give. `check` runs on each season parsed or read on its own: an entry is made
    only of checked seasons."""
    if not fetched:
        raise ValueError("parse_seasons_cached: no season given")
    cache = ContentCache(cache_dir)
    stem = f"glseasons{fetched[0][0]}to{fetched[-1][0]}"
    keys = [cache_key(payload, PARSER_VERSION, known(season)) for season, payload, _ in fetched]
    key = ContentCache.key(SEASONS_VERSION, *(f"{season}:{k}" for (season, _, _), k in zip(fetched, keys)))
    seasons = [season for season, _, _ in fetched]
    cached = read_cached_frames(cache, stem, key, "")
    if cached is not None:
        rows, quarantine = (_by_season(frame, seasons) for frame in cached)
        if rows is not None and quarantine is not None:
            return Parsed(pd.concat(rows, ignore_index=True), pd.concat(
                [lines.assign(source=(where + lines["source"]).astype("string"))
                 for (_, _, where), lines in zip(fetched, quarantine)], ignore_index=True))
        log.warning("%s: discarding a kept entry whose rows are not its seasons' in order", cache.path(stem))
    parsed = []
    with progress("parsing game logs", len(fetched)) as step:
        for season, payload, where in fetched:
            step(str(season))
            one = parse_cached(payload, season, where, known(season), cache_dir)
            if check is not None:
                check(season, one, where)
            parsed.append(one)
    relative = [one.quarantine.assign(source=one.quarantine["source"].str.removeprefix(where))
                for one, (_, _, where) in zip(parsed, fetched)]
    together = Parsed(pd.concat([one.games for one in parsed], ignore_index=True),
                      pd.concat([one.quarantine for one in parsed], ignore_index=True))
    del parsed
    write_cached_frames(cache, stem, key, (together.games, pd.concat(relative, ignore_index=True)), "")
    return together


def _by_season(frame: pd.DataFrame, seasons: list[int]) -> list[pd.DataFrame] | None:
    """The frame's rows of each season, in order (a slice each, empty for a season without rows); None
    when its rows are not grouped by those seasons in that order."""
    import numpy as np

    rank = frame["season"].astype("Int64").map({season: i for i, season in enumerate(seasons)})
    if rank.isna().any() or not rank.is_monotonic_increasing:
        return None
    starts = np.searchsorted(rank.to_numpy(dtype="int64"), np.arange(len(seasons) + 1))
    return [frame.iloc[starts[i]:starts[i + 1]] for i in range(len(seasons))]


def cache_key(payload: bytes, version: str, known: set[str]) -> str:
    """A parse's cache key: the zip's bytes, the parser's version and the team codes it checks against."""
    return ContentCache.key(payload, version, ",".join(sorted(known)))


FRAME_SUFFIXES = (".parquet", ".q.parquet")  # a parse's rows and its quarantine


def read_cached_frames(cache: ContentCache, stem: str, key: str,
                       where: str) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """A cached parse (rows, quarantine) whose files match their recorded SHA-256; None otherwise. The
    quarantine names `where`, this run's zip, wherever the run that parsed it read it from.

    An entry that does not verify or cannot be read is discarded with a warning and rebuilt from the zip."""
    frames = [_read_cached(cache, f"{stem}-{key}{suffix}") for suffix in FRAME_SUFFIXES]
    if any(frame is None for frame in frames):
        return None
    rows, quarantine = frames
    return rows, quarantine.assign(source=(where + quarantine["source"]).astype("string"))


def write_cached_frames(cache: ContentCache, stem: str, key: str, frames: tuple[pd.DataFrame, pd.DataFrame],
                        where: str) -> None:
    """Replace a season's cached parse (an older zip's or parser's goes) by these frames, each with its hash;
    the quarantine's sources without `where` (the zip's place is the reader's, not the content's)."""
    rows, quarantine = frames
    frames = (rows, quarantine.assign(source=quarantine["source"].str.removeprefix(where).astype("string")))
    payloads = {}
    for frame, suffix in zip(frames, FRAME_SUFFIXES):
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
        payloads[suffix] = buffer.getvalue()
    cache.publish(stem, key, payloads)


def _read_cached(cache: ContentCache, name: str) -> pd.DataFrame | None:
    payload = cache.get(name)
    if payload is None:
        return None
    try:
        return pd.read_parquet(io.BytesIO(payload))
    except ValueError as exc:  # pyarrow's errors are ValueErrors (ArrowInvalid)
        log.warning("%s: discarding a cached parse that does not read (%s); rebuilding it from the zip",
                    cache.path(name), " ".join(str(exc).split())[:160])
        return None


def known_team_codes(teams: pd.DataFrame, season: int) -> set[str]:
    """Retrosheet codes Lahman knows for the season (the latest Lahman season for later years)."""
    year = min(season, int(teams["yearID"].max()))
    return set(teams.loc[teams["yearID"] == year, "teamIDretro"].dropna())


EVENTS_PARSER_VERSION = "5"  # bump when utils/sources/events.py's rows change: it invalidates the cached seasons


def fetch_published(source: SeasonFiles, season: int, season_now: int, missing_ok: bool = False,
                    ) -> tuple[bytes, str] | None:
    """A season's zip and where it came from; None when the as-of season's is not there (404, no such
    file: Retrosheet publishes a season after it ends), and another season's too when `missing_ok`. Any
    other missing season, and any file that cannot be read, is the source's error, naming the file."""
    try:
        return source.fetch_season(season)
    except SourceError as exc:
        # only a file that is not there is not published yet: one that cannot be read (a network error, a
        # FIFO or a folder in its place) is the source's error, whichever the season
        if not isinstance(exc, NotFound) or (season != season_now and not missing_ok):
            raise
        log.info("no %s for %s yet (%s)", source.what, season, exc)
        return None


def chadwick_version() -> str:
    """The installed chadwickpy's version: a new one may replay a game differently, so it keys the cache."""
    from importlib.metadata import version

    return version("chadwickpy")


def read_player_games(source: SeasonFiles, seasons: list[int], season_now: int, teams: pd.DataFrame,
                      cache_dir: Path, workers: int) -> ParsedEvents:
    """Every player's line in every game of these seasons, each season parsed once (cached by its
    zip's hash) and cold seasons spread over `workers` processes. The as-of season's file is absent
    until Retrosheet publishes it; any other missing season is an error naming the file."""
    frames: dict[int, ParsedEvents] = {}
    cold: list[tuple[int, str, bytes, str]] = []
    cache = ContentCache(cache_dir)
    with progress("play-by-play", len(seasons)) as step:
        for season in seasons:
            step(str(season))
            fetched = fetch_published(source, season, season_now)
            if fetched is None:
                continue
            payload, where = fetched
            known = known_team_codes(teams, season)
            key = cache_key(payload, f"{EVENTS_PARSER_VERSION}/chadwickpy {chadwick_version()}", known)
            cached = read_cached_frames(cache, f"ev{season}", key, where)
            if cached is not None:
                frames[season] = ParsedEvents(*cached)
            else:
                cold.append((season, key, payload, where))
    with contextlib.ExitStack() as claims:
        # the cold seasons no other process is reading now are ours; one another process is reading
        # (a backtest season beside this one) is waited for and then read from the cache
        ours, theirs = [], []
        for entry in cold:
            season, key, _payload, entry_where = entry
            if not claims.enter_context(cache.claim(f"ev{season}", wait=False)):
                theirs.append(entry)
            elif (cached := read_cached_frames(cache, f"ev{season}", key, entry_where)) is not None:  # just made
                frames[season] = ParsedEvents(*cached)
            else:
                ours.append(entry)
        if ours:
            # DEBUG: a night's log is one line a module (a terminal shows the progress bar meanwhile)
            log.debug("reading the play-by-play of %d season(s) on %d process(es): about 27 s a season each",
                      len(ours), min(workers, len(ours)))
            parsed = parse_many([(payload, season, where, known_team_codes(teams, season))
                                 for season, _key, payload, where in ours], workers)
            for (season, key, _payload, where), result in zip(ours, parsed):
                publish_season_lines(cache, season, key, where, result, season_now)
                frames[season] = result
    for season, key, payload, where in theirs:
        log.info("waiting for another run reading the play-by-play of %d (then reading its result)", season)
        with cache.claim(f"ev{season}"):
            cached = read_cached_frames(cache, f"ev{season}", key, where)
            if cached is None:  # the other process failed or read another zip: read it here
                (result,) = parse_many([(payload, season, where, known_team_codes(teams, season))], 1)
                publish_season_lines(cache, season, key, where, result, season_now)
                cached = (result.lines, result.quarantine)
            frames[season] = ParsedEvents(*cached)
    ordered = [frames[season] for season in sorted(frames)]
    lines = pd.concat([f.lines for f in ordered], ignore_index=True) if ordered else to_frame([], season_now)
    return ParsedEvents(lines, pd.concat([quarantine_frame([])] + [f.quarantine for f in ordered], ignore_index=True))


def publish_season_lines(cache: ContentCache, season: int, key: str, where: str, result: ParsedEvents,
                         season_now: int) -> None:
    """A season's parsed play-by-play into the cache; a finished season of which no game reads is an error."""
    if result.lines.empty and season != season_now:
        raise IngestError(f"{where}: no game could be read ({len(result.quarantine)} quarantined)")
    write_cached_frames(cache, f"ev{season}", key, (result.lines, result.quarantine), where)
