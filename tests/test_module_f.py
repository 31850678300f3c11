"""F · starters, run through its main(cfg) on the tiny league."""
from modules import f_starters


def test_rest_and_experience_of_each_starter_from_earlier_starts(tiny_store):
    cfg, store = tiny_store
    f_starters.main(cfg)
    sp = store.read_frame("starter_features").set_index("game_id")
    # the same two pitchers start every game (the template's): 04-01, 04-02 (1 day), 04-04 (2 days)
    assert sp.loc["NYA202304020", "sp_home_rest_days"] == 1 and sp.loc["BOS202304040", "sp_home_rest_days"] == 2
    assert sp.loc["BOS202304040", "sp_home_starts"] == 2
    # the first start of a season after months off: capped rest, and a long rest
    assert sp.loc["NYA202404010", ["sp_home_rest_days", "sp_home_long_rest"]].tolist() == [
        f_starters.NO_START_REST, 1.0]
    assert sp.loc["NYA202404010", "sp_home_starts"] == 3  # experience carries over seasons
