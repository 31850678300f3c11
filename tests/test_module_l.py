"""L · predict and monitor, run through its main(cfg) after K on a synthetic model table."""
from modules import k_train, l_predict_monitor


def test_predictions_for_the_day_and_a_log_that_a_rerun_does_not_double(synthetic_store):
    cfg, store = synthetic_store
    k_train.main(cfg)
    result = l_predict_monitor.main(cfg)
    predictions = store.read_frame("predictions")
    # the synthetic table has three games on the as-of date, none played
    assert len(predictions) == 3 and predictions["p_home_win"].between(0, 1).all()
    assert predictions["model_version"].str.startswith(store.read_json("model_params")["chosen"]).all()
    assert result.metrics["games_predicted"] == 3
    assert store.read_json("evaluation")["evaluated"] == 0  # nothing was predicted before today
    l_predict_monitor.main(cfg)  # the same night again: that date's rows are replaced, not appended twice
    log = store.read_frame("prediction_log")
    assert len(log) == 3 and log["predicted_for"].dt.strftime("%F").unique().tolist() == ["2024-06-01"]
    drift = store.read_json("drift_report")
    assert drift["window"]["last"] == "2024-06-01" and set(drift["features"]) <= {"elo_diff", "elo_p_home",
                                                                                  "ctx_home_field", "form_diff_pythag"}
