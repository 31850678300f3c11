"""L · predict and monitor, run through its main(cfg) after K on a synthetic model table."""
import pandas as pd

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


def test_the_published_predictions_carry_names_and_agree_with_the_parquet(synthetic_store):
    """CSV and JSON beside the parquet: the same games and numbers, with the schedule's gamePk and names
    matched to each game by its key (not by row order), the as-of date and the model version."""
    import io

    import pandas as pd

    from tests.synthetic_table import schedule

    cfg, store = synthetic_store
    sched = schedule(store.read_frame("model_table")).iloc[::-1].reset_index(drop=True)  # row order must not matter
    sched.loc[0, "h_starting_pitcher_name"] = "Kevin O'Gausman, Jr."  # a quote and a comma survive the CSV
    store.write_frame("schedule", sched)
    k_train.main(cfg)
    l_predict_monitor.main(cfg)
    parquet = store.read_frame("predictions")
    keys = ["home_team", "date", "game_number", "game_pk", "visiting_team_name", "home_team_name"]
    expected = {f"{h}{d:%Y%m%d}{g}": (pk, a, hn) for h, d, g, pk, a, hn in sched[keys].itertuples(index=False)}
    got = {r.game_id: (r.game_pk, r.away_team_name, r.home_team_name) for r in parquet.itertuples()}
    assert got == expected
    assert parquet["home_starter_name"].eq("Kevin O'Gausman, Jr.").sum() == 1
    csv_text = store.resolve_output_path("predictions_csv").read_text()
    csv = pd.read_csv(io.StringIO(csv_text), dtype={"game_pk": "Int64"})
    assert csv.columns.tolist()[:4] == ["date", "game_number", "game_pk", "game_id"]
    assert csv["as_of"].unique().tolist() == ["2024-06-01"] and csv["date"].unique().tolist() == ["2024-06-01"]
    merged = csv.merge(parquet, on="game_id", suffixes=("", "_pq"))
    assert len(merged) == 3 and (merged["p_home_win"] == merged["p_home_win_pq"]).all()  # full precision
    assert (merged["game_pk"] == merged["game_pk_pq"]).all()
    assert merged["home_starter_name"].fillna("").tolist() == merged["home_starter_name_pq"].fillna("").tolist()
    document = store.read_json("predictions_json")
    assert document["as_of"] == "2024-06-01" and document["model_version"] == parquet["model_version"].iloc[0]
    assert [g["game_id"] for g in document["games"]] == csv["game_id"].tolist()
    by_id = {g["game_id"]: g for g in document["games"]}
    for row in parquet.itertuples():
        game = by_id[row.game_id]
        assert game["p_home_win"] == row.p_home_win and game["exp_home_runs"] == row.exp_home_runs
        assert game["game_pk"] == row.game_pk and game["away_starter_name"] is None  # no name: null, not "nan"


def test_a_game_time_run_is_logged_beside_the_morning_s_and_says_which_nines_it_used(synthetic_store):
    """The morning run, then the game-time run (run.lineups=confirmed) with one game's lineups posted
    and another's home side only: each prediction says which nine each side's used, the log keeps
    both runs of the day, and `predictions` shows either."""
    import json

    from tests.synthetic_table import schedule
    from utils.config import build_config

    cfg, store = synthetic_store
    k_train.main(cfg)
    l_predict_monitor.main(cfg)
    morning = store.read_frame("predictions")
    assert set(morning["lineups"]) == {"expected"} and set(morning["home_lineup"]) == {"expected"}
    sched = schedule(store.read_frame("model_table"))
    for slot in range(1, 10):  # the first game: both nines posted; the second: the home nine only
        sched[f"h_player{slot}_id"] = pd.array([f"h{slot}", f"h{slot}", None], dtype="string")
        sched[f"v_player{slot}_id"] = pd.array([f"v{slot}", None, None], dtype="string")
    store.write_frame("schedule", sched)
    game_time = build_config(cfg.model_dump(mode="json"), ["run.lineups=confirmed"])
    k_train.main(game_time)
    l_predict_monitor.main(game_time)
    tonight = store.read_frame("predictions").sort_values("game_id")
    keys = sched["home_team"] + sched["date"].dt.strftime("%Y%m%d") + sched["game_number"].astype(str)
    sides = {k: (a, h) for k, a, h in zip(keys, ["posted", "expected", "expected"], ["posted", "posted", "expected"])}
    assert {r.game_id: (r.away_lineup, r.home_lineup) for r in tonight.itertuples()} == sides
    assert set(tonight["lineups"]) == {"confirmed"}
    log = store.read_frame("prediction_log")
    assert sorted(log["lineups"].value_counts().items()) == [("confirmed", 3), ("expected", 3)]
    assert store.read_json("evaluation")["lineups"] == "confirmed"
    # the game-time run again replaces its own rows only
    l_predict_monitor.main(game_time)
    assert len(store.read_frame("prediction_log")) == 6
    # what a person reads: the latest run (game time), marked; the morning's from the log on request
    text = l_predict_monitor.published_night(store, None, "table")
    assert "confirmed lineups (3 of 6 posted; * expected nine)" in text.splitlines()[0]
    assert text.count("*") == 1 + 3  # the header's note and the three sides not posted
    expected = json.loads(l_predict_monitor.published_night(store, None, "json", "expected"))
    assert expected["lineups"] == "expected" and {g["home_lineup"] for g in expected["games"]} == {"expected"}
    assert {g["game_id"]: g["p_home_win"] for g in expected["games"]} == dict(zip(morning["game_id"],
                                                                                   morning["p_home_win"]))
