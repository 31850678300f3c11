"""A · ingest, run through its main(cfg) on the tiny league (tests/tiny_league.py)."""
from modules import a_ingest
from utils.sources.common import SCHEDULE_COLUMNS


def test_history_stops_before_the_as_of_date_and_the_day_is_a_schedule(tiny_store):
    cfg, store = tiny_store
    result = a_ingest.main(cfg)
    # six games, the last on the as-of date 2024-04-04: five are history, one is the day's schedule
    assert result.metrics == {"games": 5, "quarantined": 0, "scheduled": 1, "player_lines": 0}
    history = store.read_frame("raw_gamelogs")
    assert history["date"].max().date().isoformat() == "2024-04-02" and len(history) == 5
    schedule = store.read_frame("schedule")
    assert list(schedule.columns) == SCHEDULE_COLUMNS  # no result field at all
    assert schedule[["home_team", "visiting_team"]].values.tolist() == [["BOS", "NYA"]]
    # names from Lahman; a game Retrosheet supplied has no gamePk
    names = schedule[["home_team_name", "visiting_team_name"]].values.tolist()
    assert names == [["Boston Red Sox", "New York Yankees"]]
    assert schedule["game_pk"].isna().all()
    # Lahman lines stop before the as-of season
    assert int(store.read_frame("lahman_pitching")["season"].max()) == 2023
    assert store.read_frame("quarantine").empty
    assert store.meta("raw_gamelogs")["lineage"]["params"]["as_of"] == "2024-04-04"
