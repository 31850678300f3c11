"""B · clean, run through its main(cfg) on the tiny league."""
import pandas as pd

from modules import b_clean


def test_one_row_a_game_with_the_day_s_game_unplayed(tiny_store):
    cfg, store = tiny_store
    result = b_clean.main(cfg)
    games = store.read_frame("games").set_index("game_id")
    assert result.metrics == {"games": 5, "scheduled": 1}
    # 2023-04-02: New York lost 2-4 at home
    assert games.loc["NYA202304020", ["home_score", "away_score", "home_win"]].tolist() == [2, 4, 0]
    day = games.loc["BOS202404040"]
    assert not day["played"] and pd.isna(day["home_score"]) and pd.isna(day["result_date"])
    assert (games["home_team_game"].tolist(), games["away_team_game"].tolist()) == ([1, 2, 3, 1, 2, 3],
                                                                                   [1, 2, 3, 1, 2, 3])
