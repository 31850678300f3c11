"""I · assemble, run through its main(cfg) on the tiny league."""
import pytest

from modules import i_assemble
from modules.i_assemble import AssemblyError


def test_every_game_with_every_namespaced_feature(tiny_store):
    cfg, store = tiny_store
    result = i_assemble.main(cfg)
    table = store.read_frame("model_table")
    assert len(table) == 6 and table["home_win"].isna().tolist() == [False] * 5 + [True]
    features = [c for c in table.columns if c not in i_assemble.KEYS + i_assemble.LABELS]
    assert result.metrics["features"] == len(features)
    assert all(c.startswith(("ctx_", "form_", "sp_", "lu_", "elo_", "mu_", "nine_")) for c in features)


def test_a_feature_table_missing_a_game_fails_the_stage_naming_it(tiny_store):
    cfg, store = tiny_store
    matchup = store.read_frame("matchup_features")
    store.write_frame("matchup_features", matchup[matchup["game_id"] != "BOS202404040"])  # valid, but short
    before = store.verify("model_table")
    with pytest.raises(AssemblyError, match=r"matchup_features: no row for 1 game\(s\), e.g. BOS202404040"):
        i_assemble.main(cfg)
    assert store.verify("model_table") == before  # the last good table stays


def test_a_duplicated_game_or_feature_row_is_refused_naming_it(tiny_store):
    cfg, store = tiny_store
    games = store.read_frame("games")
    features = {name: store.read_frame(name) for name in i_assemble.FEATURE_SOURCES}
    first = games["game_id"].iloc[0]
    with pytest.raises(AssemblyError, match=f"games: duplicate game_id {first}"):
        i_assemble.assemble(games.iloc[[0, 0, 1]], features)
    ratings = features["team_ratings"]
    with pytest.raises(AssemblyError, match=f"team_ratings: duplicate game_id {first}"):
        i_assemble.assemble(games, {**features, "team_ratings": ratings.iloc[[0, *range(len(ratings))]]})
    table = i_assemble.assemble(games, features)  # one row a game, none lost or doubled by the joins
    assert table["game_id"].tolist() == games["game_id"].tolist() and "_matched" not in table.columns
