"""C · context, run through its main(cfg) on the tiny league."""
from modules import c_context


def test_rest_and_recent_load_count_only_earlier_days(tiny_store):
    cfg, store = tiny_store
    c_context.main(cfg)
    ctx = store.read_frame("context_features").set_index("game_id")
    # NYA and BOS played 2023-04-01, then 04-02 (1 day's rest), then 04-04 (2 days' rest)
    assert ctx.loc["NYA202304020", "ctx_home_rest_days"] == 1 and ctx.loc["BOS202304040", "ctx_away_rest_days"] == 2
    # by 04-04 each had played twice in the last seven days, 04-01 and 04-02
    assert ctx.loc["BOS202304040", ["ctx_home_games_last7", "ctx_away_games_last7"]].tolist() == [2, 2]
    # Boston at home after two games in New York: the park changed for both
    assert ctx.loc["BOS202304040", ["ctx_home_park_changed", "ctx_away_park_changed"]].tolist() == [1, 1]
    assert ctx.loc["NYA202304020", "ctx_home_park_changed"] == 0
