"""H · matchup, run through its main(cfg) on the tiny league."""
from modules import h_matchup


def test_streaks_and_head_to_head_from_earlier_games(tiny_store):
    cfg, store = tiny_store
    h_matchup.main(cfg)
    mu = store.read_frame("matchup_features").set_index("game_id")
    # before 2023-04-02 New York had won its one game, Boston lost it
    assert mu.loc["NYA202304020", ["mu_home_streak", "mu_away_streak"]].tolist() == [1, -1]
    # before 2023-04-04: one win each, the last Boston's: Boston +1, New York -1; two meetings so far
    assert mu.loc["BOS202304040", ["mu_home_streak", "mu_away_streak", "mu_h2h_games"]].tolist() == [1, -1, 2]
    # head-to-head counts the season's meetings: two in 2024 before 04-04, both won by New York at home
    assert mu.loc["BOS202404040", ["mu_h2h_games", "mu_h2h_home_win_pct"]].tolist()[0] == 2
