"""External sources behind one interface each; tests use the local mirror or recorded payloads.

- RetrosheetSource: `glYYYY.zip` (or the event files' `YYYYeve.zip`) from Retrosheet's https folder
  (cached with its SHA-256, fetched once) or from a local folder laid out the same way.
- the MLB Stats API (schedule, box scores, people): `utils/sources/statsapi.py`, which uses the team map here.
"""
from __future__ import annotations

import logging
import random
import time
from pathlib import Path
from typing import Callable

from utils.sources.gamelogs import IngestError
from utils.store.cache import ContentCache

log = logging.getLogger("mlb.sources")

Fetch = Callable[..., bytes]  # (url, params, timeout seconds, max_bytes or None) -> the body


class SourceError(OSError):
    """A source that could not be read; the message names the URL or file. `transient`: the same
    request may well succeed a little later (no answer, a refused connection, 429, a 5xx);
    `retry_after`: the seconds the server asked to wait first (its Retry-After), if it said."""

    def __init__(self, message: str, transient: bool = False, retry_after: float | None = None):
        super().__init__(message)
        self.transient = transient
        self.retry_after = retry_after


class NotFound(SourceError):
    """The file or URL is not there (404, no such file): not published yet, or never."""


MAX_REDIRECTS = 5
MAX_DOWNLOAD_BYTES = 200_000_000  # a season's zip is a few MB; the Stats API's answers have their own caps


def http_get(url: str, params: dict | None, timeout: int, max_bytes: int | None = None) -> bytes:
    """The body of a GET, within `timeout` seconds for the whole request (a server that drips a byte
    at a time is cut off too) and `max_bytes` (counted as it arrives, never buffered past the cap).
    A redirect is followed only to the same scheme and host; the error names the URL it came to."""
    from urllib.parse import urljoin, urlsplit


    deadline = time.monotonic() + timeout
    limit = max_bytes or MAX_DOWNLOAD_BYTES
    where, query = url, params
    for _ in range(MAX_REDIRECTS + 1):
        response = _request(where, query, timeout)
        if not response.is_redirect:
            break
        target = urljoin(where, response.headers.get("Location", ""))
        response.close()
        if (urlsplit(target).scheme, urlsplit(target).netloc) != (urlsplit(url).scheme, urlsplit(url).netloc):
            raise SourceError(f"{url}: redirected to {target[:200]}, another host or scheme; not followed")
        where, query = target, None
    else:
        raise SourceError(f"{url}: more than {MAX_REDIRECTS} redirects")
    with response:
        if response.status_code == 404:
            raise NotFound(f"{where}: not found (404)")
        if response.status_code != 200:
            transient = response.status_code == 429 or response.status_code >= 500
            raise SourceError(f"{where}: HTTP {response.status_code}", transient=transient,
                              retry_after=retry_after(response.headers.get("Retry-After")))
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > limit:
            raise SourceError(f"{where}: an answer of {int(declared):,} bytes, more than any ({limit:,} at most)")
        body = bytearray()
        while chunk := _read_some(response, where, timeout):
            body += chunk
            if len(body) > limit:
                raise SourceError(f"{where}: an answer of more than {limit:,} bytes ({limit:,} at most); "
                                  f"not read further")
            if time.monotonic() > deadline:
                raise SourceError(f"{where}: no complete answer within {timeout}s", transient=True)
    return bytes(body)


def _read_some(response, where: str, timeout: int) -> bytes:
    """What has arrived of the body (at most 64 KB, at least a byte unless it ended), as it arrives."""
    import requests
    import urllib3

    try:
        return response.raw.read1(65536, decode_content=True)
    except urllib3.exceptions.ReadTimeoutError:
        raise SourceError(f"{where}: no answer within {timeout}s", transient=True) from None
    except (urllib3.exceptions.HTTPError, requests.RequestException, OSError) as exc:
        raise SourceError(f"{where}: the connection broke off mid-download ({type(exc).__name__})",
                          transient=True) from None


def retry_after(value: str | None) -> float | None:
    """A Retry-After header's wait in seconds: a number of seconds or an HTTP date; None if neither."""
    import email.utils

    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time()) if when.tzinfo else None


_SESSION = None


def session():
    """One HTTP session for every request (its connections reused), saying who asks."""
    global _SESSION
    if _SESSION is None:
        from importlib.metadata import PackageNotFoundError, version

        import requests

        try:
            mine = version("mlb-pipeline")
        except PackageNotFoundError:
            mine = "dev"
        _SESSION = requests.Session()
        _SESSION.headers["User-Agent"] = f"mlb-pipeline/{mine} (nightly MLB predictions; python-requests)"
    return _SESSION


def _request(url: str, params: dict | None, timeout: int):
    """One GET, its body not read yet; a one-line SourceError naming the URL if it gets no answer."""
    import requests

    try:
        return session().get(url, params=params, timeout=timeout, stream=True, allow_redirects=False)
    except requests.Timeout:
        raise SourceError(f"{url}: no answer within {timeout}s", transient=True) from None
    except requests.exceptions.SSLError as exc:  # a certificate will not fix itself in a few seconds
        raise SourceError(f"{url}: SSLError: {' '.join(str(exc).split())[:200]}") from None
    except requests.ConnectionError:
        raise SourceError(f"{url}: ConnectionError: cannot connect (refused, or no network)", transient=True) from None
    except requests.RequestException as exc:
        raise SourceError(f"{url}: {type(exc).__name__}: {exc}") from None


MAX_WAIT_S = 60.0  # the longest wait between two attempts: a night must not sleep for hours


def with_retries(fetch: Fetch, retries: int, backoff_seconds: float, sleep: Callable[[float], None] = time.sleep,
                 jitter: Callable[[], float] = random.random) -> Fetch:
    """`fetch` asked again after a transient failure, up to `retries` more times, waiting
    backoff, 2*backoff, 4*backoff... each stretched by up to a quarter at random (so clients that
    failed together do not ask again together), or as long as the server's Retry-After asks, at most
    a minute. A 404 or a bad payload is not retried: asking again cannot change it. The last
    failure's message says how many attempts were made."""
    def fetch_again(url: str, params: dict | None, timeout: int, max_bytes: int | None = None) -> bytes:
        for attempt in range(retries + 1):
            try:
                return fetch(url, params, timeout, max_bytes)
            except SourceError as exc:
                if not exc.transient or attempt == retries:
                    if attempt:
                        raise SourceError(f"{exc} (after {attempt + 1} attempts)") from None
                    raise
                wait = min(max(backoff_seconds * 2 ** attempt * (1 + jitter() / 4), exc.retry_after or 0),
                           MAX_WAIT_S)
                log.warning("%s; attempt %d of %d, next in %.0f s", exc, attempt + 1, retries + 1, wait)
                sleep(wait)
        raise AssertionError("unreachable")
    return fetch_again


class RetrosheetSource:
    def __init__(self, base_url: str, cache_dir: Path, timeout: int = 60, fetch: Fetch = http_get,
                 name: str = "gl{season}.zip", what: str = "game log", folder_hint: str | None = None):
        """`fetch` does one request; the caller wraps it `with_retries` (A does, from sources.retry).
        `name` is a season's file in the folder (`{season}eve.zip` for the event files). With
        `folder_hint`, a local folder that does not exist at all is an error of its own when a season is
        first asked for (not a season's missing file, which the as-of season may be)."""
        self.folder_hint = folder_hint
        self.cache = ContentCache(cache_dir)  # downloads, each beside its SHA-256
        self.base_url = base_url
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
            if self.folder_hint is not None and not Path(self.base_url).is_dir():
                raise IngestError(f"{self.base_url}: no such folder of {self.what} ({self.folder_hint})")
            path = Path(self.base_url) / name
            try:
                return read_local(path), str(path)
            except FileNotFoundError:
                raise NotFound(f"{path}: no {self.what} for {season}") from None
        payload = self.cache.get(name)  # a copy that does not verify is a warning and downloaded again
        if payload is not None:
            return payload, str(self.cache.path(name))
        url = self.base_url.rstrip("/") + "/" + name
        payload = self.fetch(url, None, self.timeout)
        self.cache.put(name, payload)
        return payload, url


def read_local(path: Path, limit: int = MAX_DOWNLOAD_BYTES) -> bytes:
    """A local source file's bytes: a regular file (a link to one is fine) of at most `limit` bytes, as a
    download is held to. A FIFO would block the night, holding the run lock, and a device such as
    /dev/zero read until memory ran out; each is SourceError naming the file (FileNotFoundError as is)."""
    import os
    import stat

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO opens at once instead of waiting for a writer
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise SourceError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_size > limit:
        os.close(fd)
        raise SourceError(f"{path}: not a regular file" if not stat.S_ISREG(info.st_mode) else
                          f"{path}: {info.st_size:,} bytes, more than any source file ({limit:,} at most)")
    with os.fdopen(fd, "rb") as handle:
        try:
            payload = handle.read(limit + 1)
        except OSError as exc:
            raise SourceError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    if len(payload) > limit:  # grew while read
        raise SourceError(f"{path}: more than {limit:,} bytes, more than any source file")
    return payload


# MLB Stats API team ids -> Retrosheet codes (current franchises).
STATSAPI_TEAMS = {
    108: "ANA", 109: "ARI", 110: "BAL", 111: "BOS", 112: "CHN", 113: "CIN", 114: "CLE", 115: "COL", 116: "DET",
    117: "HOU", 118: "KCA", 119: "LAN", 120: "WAS", 121: "NYN", 133: "OAK", 134: "PIT", 135: "SDN", 136: "SEA",
    137: "SFN", 138: "SLN", 139: "TBA", 140: "TEX", 141: "TOR", 142: "MIN", 143: "PHI", 144: "ATL", 145: "CHA",
    146: "MIA", 147: "NYA", 158: "MIL",
}
# The game log's pre-game fields (a replayed day's schedule is these fields of its game-log lines)...
SCHEDULE_FIELDS = ["season", "date", "game_number", "day_of_week", "visiting_team", "visiting_league",
                   "visiting_game_number", "home_team", "home_league", "home_game_number", "day_night", "park_id",
                   "v_starting_pitcher_id", "v_starting_pitcher_name", "h_starting_pitcher_id",
                   "h_starting_pitcher_name"]
# ...and what a reader of the predictions wants beside them: the Stats API's gamePk (null where the game
# came from Retrosheet) and the teams' names.
# The posted starting nines, in batting order with each one's position (1-9, 10 the designated hitter), as
# the game log's fields name them: filled in `run.lineups: confirmed` where a team has posted its lineup.
LINEUP_FIELDS = [f"{side}_player{slot}_{part}" for side in ("v", "h") for slot in range(1, 10)
                 for part in ("id", "pos")]
SCHEDULE_COLUMNS = SCHEDULE_FIELDS + ["game_pk", "visiting_team_name", "home_team_name"] + LINEUP_FIELDS


def posted_nine(schedule, prefix: str):
    """Per schedule row, whether side `prefix` ("v" or "h") has its whole nine posted (a bool Series)."""
    return schedule.reindex(columns=[f"{prefix}_player{slot}_id" for slot in range(1, 10)]).notna().all(axis=1)
