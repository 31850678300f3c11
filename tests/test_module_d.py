"""D · team form, run through its main(cfg) on the tiny league."""
from modules import d_team_form
from modules.common import LEAGUE_RUNS
from tests.tiny_league import tiny_cfg


def test_rolling_runs_use_earlier_games_only(tiny_store):
    cfg, store = tiny_store
    d_team_form.main(cfg)
    form = store.read_frame("team_form_features").set_index("game_id")
    # the first game: no history, so the league prior
    assert form.loc["NYA202304010", "form_home_rf_10"] == LEAGUE_RUNS
    # game 2: New York had scored 5, Boston 3
    assert form.loc["NYA202304020", ["form_home_rf_10", "form_away_rf_10"]].tolist() == [5.0, 3.0]
    # game 3 (Boston home): Boston scored 3 then 4 -> 3.5; New York 5 then 2 -> 3.5
    assert form.loc["BOS202304040", ["form_home_rf_10", "form_away_rf_10"]].tolist() == [3.5, 3.5]


def test_the_configured_window_names_and_sizes_every_short_window(tiny_store, tmp_path):
    cfg, store = tiny_store
    d_team_form.main(tiny_cfg(store.root, cfg.sources.retrosheet.base_url, "features.form.window=1"))
    form = store.read_frame("team_form_features").set_index("game_id")
    # window 1: the last game alone. Before the 2024 game of 04-02 New York had won 3-1, Boston lost it
    assert form.loc["NYA202404020", ["form_home_rf_1", "form_home_win_rate_1", "form_away_win_rate_1"]].tolist() == [
        3.0, 1.0, 0.0]
    assert "form_home_win_rate_10" not in form.columns
