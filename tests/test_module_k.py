"""K · train, run through its main(cfg) on a synthetic model table (tests/synthetic_table.py)."""
from modules import k_train


def test_the_models_the_card_and_the_time_ordered_split(synthetic_store):
    cfg, store = synthetic_store
    result = k_train.main(cfg)
    card, params = store.read_json("model_card"), store.read_json("model_params")
    # 700 decided games before the as-of date: the newest 15% (105) validate, the 105 before calibrate
    assert card["training_window"]["fit"]["games"] == 700
    assert card["training_window"]["validation"]["games"] == 105 == card["training_window"]["calibration"]["games"]
    assert card["chosen"] in card["candidates"] and params["chosen"] == card["chosen"]
    # the home side wins as its Elo edge says, so the logistic weight on elo_diff is positive
    assert params["logistic"]["features"][0] == "elo_diff" and params["logistic"]["coef"][0] > 0
    assert store.read_bytes("win_model").startswith(b"tree")
    assert result.metrics["validation_brier"] == card["candidates"][card["chosen"]]["validation"]["brier"]
    assert store.meta("win_model")["lineage"]["params"]["model"]["num_threads"] == cfg.model.num_threads
