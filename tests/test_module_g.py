"""G · ratings, run through its main(cfg) on the tiny league."""
import math

import pytest

from modules import g_ratings


def test_elo_by_hand_through_the_stage(tiny_store):
    cfg, store = tiny_store
    g_ratings.main(cfg)
    elo = store.read_frame("team_ratings").set_index("game_id")
    # game 1: both at 1500, the home side's 24 points: p = 1 / (1 + 10^(-24/400)) = 0.534484
    assert elo.loc["NYA202304010", "elo_diff"] == 24 and elo.loc["NYA202304010",
                                                                 "elo_p_home"] == pytest.approx(0.534484,
                                                                                                               abs=1e-6)
    # New York won 5-3: K 4 x margin factor ln(3) * 2.2 / (24 * 0.001 + 2.2) x (1 - 0.534484)
    gain = 4 * math.log(3) * 2.2 / (0.024 + 2.2) * (1 - 0.534484)
    assert elo.loc["NYA202304020", "elo_home_pre"] == pytest.approx(1500 + gain, abs=1e-4)
    assert elo.loc["NYA202304020", "elo_away_pre"] == pytest.approx(1500 - gain, abs=1e-4)
