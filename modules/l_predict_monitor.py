"""L · predict and monitor: the as-of date's predictions, the prediction log, the evaluation of
earlier predictions against their noise, and the drift report (each feature against its normal,
the sources' health) with its history."""
from __future__ import annotations

import datetime as dt
import hashlib
import logging

import numpy as np
import pandas as pd

from modules.models import TrainedModels, predict, trained_models
from modules.registry import ModuleResult, StageOutput
from utils import drift
from utils.drift import psi
from utils.evaluation import calibration_table, calibration_test, run_metrics, standard_errors, win_metrics

log = logging.getLogger("mlb.l_predict_monitor")


def drift_report(models: TrainedModels, baseline: dict, table: pd.DataFrame, as_of: dt.date,
                 history: pd.DataFrame | None) -> tuple[dict, pd.DataFrame]:
    """Each watched feature's 30-day PSI and tonight's shift, each over its normal (utils/drift.py),
    with the highest score of the week before (a break is new when that stayed low); the PSI of
    p_home_win against the validation's. Also tonight's rows of the drift history."""
    last, tonight = drift.window(table, as_of)
    scores = drift.score(drift.measure(models.reference["features"], last, tonight), baseline, len(last))
    before = drift.recent_max(history, as_of)
    features = {name: {**s, **{f"{view}_recent_max": before.get((name, view)) for view in drift.VIEWS}}
                for name, s in scores.items()}
    ranked = [(s[f"{view}_score"], name, view) for name, s in features.items() for view in drift.VIEWS
              if s[f"{view}_score"] is not None]
    top = max(ranked, default=(None, None, None))
    prediction = psi(models.reference["p_home_win"], models.p_home_win(last)) if len(last) else None
    report = {
        "as_of": as_of.isoformat(),
        "window": {"first": (pd.Timestamp(as_of) - pd.Timedelta(days=drift.WINDOW_DAYS - 1)).date().isoformat(),
                   "last": as_of.isoformat(), "games": int(len(last)), "tonight_games": int(len(tonight))},
        "baseline": {"as_of": baseline["as_of"], "seasons": baseline["seasons"], "nights": baseline["nights"],
                     "quantile": baseline["quantile"], "ready": drift.ready(baseline)},
        "features": features,
        "excluded": baseline["excluded"],
        "max_score": top[0], "max_feature": top[1], "max_view": top[2],
        "prediction_psi": prediction,
    }
    return report, drift.history_rows(as_of, scores)


def source_health(table: pd.DataFrame, schedule_games: int, predictions: pd.DataFrame,
                  prediction_log: pd.DataFrame | None, as_of: dt.date) -> dict:
    """What a broken source shows before PSI does: tonight's starters with no known id (none given, or
    one with neither a start nor a Lahman line: a debutant, or an id from nowhere), games predicted
    against the schedule's games, and of the games predicted on the last earlier date, those whose
    result arrived before the as-of date (judged once the table holds any result of this season)."""
    day = pd.Timestamp(as_of)
    tonight = table[(table["date"] == day) & ~table["played"]]
    unknown = 0
    for side in ("home", "away"):
        no_id = tonight[f"{side}_starter_id"].isna()
        history = [f"sp_{side}_starts", f"sp_{side}_prior_ip"]
        unseen = (tonight[history] == 0).all(axis=1) if set(history) <= set(tonight.columns) else False
        unknown += int((no_id | unseen).sum())
    health = {"starters": 2 * len(tonight), "starters_unknown": unknown,
              "games_scheduled": int(schedule_games), "games_predicted": int(len(predictions)),
              "results_date": None, "results_expected": 0, "results_ingested": 0}
    known = table["played"] & (table["result_date"] < day)
    # Results of the as-of season arrive only with an in-season source: without one (the nightly job
    # before the season's game log is published) every game would look missing, every night.
    in_season = bool((known & (table["season"] == as_of.year)).any())
    if prediction_log is not None and not prediction_log.empty and in_season:
        earlier = prediction_log[prediction_log["predicted_for"] < day]
        if not earlier.empty:
            last = earlier["predicted_for"].max()
            expected = earlier.loc[earlier["predicted_for"] == last, "game_id"]
            arrived = table.loc[known & table["game_id"].isin(expected), "game_id"]
            health.update({"results_date": last.date().isoformat(), "results_expected": int(expected.nunique()),
                           "results_ingested": int(arrived.nunique())})
    return health


def evaluate(log_table: pd.DataFrame, table: pd.DataFrame, as_of: dt.date, noise: dict) -> dict:
    """Every earlier prediction whose result is known before the as-of date, overall and last 7/30 days;
    the last 30 days also against what the model card's validation implies for that many games."""
    day = pd.Timestamp(as_of)
    results = table.loc[table["played"] & (table["result_date"] < day) & table["home_win"].notna(),
                        ["game_id", "home_win", "home_score", "away_score"]]
    scored = log_table.merge(results, on="game_id", how="inner")
    summary = {"as_of": as_of.isoformat(), "evaluated": int(len(scored))}
    for label, days in (("all", None), ("last_7_days", 7), ("last_30_days", 30)):
        part = scored if days is None else scored[scored["date"] >= day - pd.Timedelta(days=days)]
        if part.empty:
            summary[label] = None
            continue
        y, p = part["home_win"].to_numpy(dtype=float), part["p_home_win"].to_numpy(dtype=float)
        block = win_metrics(y, p)
        block["runs"] = run_metrics(np.concatenate([part["home_score"].to_numpy(dtype=float),
                                                    part["away_score"].to_numpy(dtype=float)]),
                                    np.concatenate([part["exp_home_runs"].to_numpy(dtype=float),
                                                    part["exp_away_runs"].to_numpy(dtype=float)]))
        if label == "all":
            block["calibration"] = calibration_table(y, p)
            block["calibration_deciles"] = calibration_table(y, p, equal_count=True)
            block["calibration_test"] = calibration_test(y, p)
        if label == "last_30_days":
            block["vs_validation"] = standard_errors(block, noise)
        summary[label] = block
    return summary


def append_log(previous: pd.DataFrame | None, predictions: pd.DataFrame, as_of: dt.date) -> pd.DataFrame:
    """The prediction log: every prediction ever published; a re-run for a date replaces that date's rows."""
    new = predictions.assign(predicted_for=pd.Timestamp(as_of))
    if previous is None or previous.empty:
        return new.reset_index(drop=True)
    kept = previous[previous["predicted_for"] != pd.Timestamp(as_of)]
    return pd.concat([kept, new], ignore_index=True).sort_values(["predicted_for", "game_id"]).reset_index(drop=True)


def model_version(chosen: str, input_hashes: dict[str, str]) -> str:
    """The chosen candidate and a digest of the files that define it (the LightGBM model, the params)."""
    digest = hashlib.sha256("".join(input_hashes[n] for n in ("win_model", "model_params")).encode()).hexdigest()
    return f"{chosen}-{digest[:12]}"


def predict_and_monitor(model_table: pd.DataFrame, win_model: bytes, home_runs_model: bytes,
                        away_runs_model: bytes, model_params: dict, model_card: dict, drift_baseline: dict,
                        schedule: pd.DataFrame, prediction_log: pd.DataFrame | None,
                        drift_history: pd.DataFrame | None, as_of: dt.date,
                        input_hashes: dict[str, str]) -> StageOutput:
    """The as-of date's predictions, the log of every prediction so far, the evaluation of those whose
    results are known, the drift report with the sources' health, and the drift history."""
    models = trained_models(win_model, home_runs_model, away_runs_model, model_params, model_card)
    today = model_table[(model_table["date"] == pd.Timestamp(as_of)) & ~model_table["played"]]
    predictions = predict(models, today, model_version(models.chosen, input_hashes))
    if predictions.empty:
        log.info("no games scheduled on %s: writing an empty predictions table", as_of)
    history = append_log(prediction_log, predictions, as_of)
    evaluation = evaluate(history, model_table, as_of, model_card["validation_noise"])
    report, tonight = drift_report(models, drift_baseline, model_table, as_of, drift_history)
    report["sources"] = source_health(model_table, len(schedule[schedule["date"] == pd.Timestamp(as_of)]),
                                      predictions, prediction_log, as_of)
    metrics = {"games_predicted": len(predictions), "evaluated": evaluation["evaluated"]}
    for key in ("max_score", "prediction_psi"):
        if report[key] is not None:
            metrics[key] = report[key]
    recent = evaluation["last_30_days"]
    if recent:  # the run's own record of quality, so the viewer can draw its history across runs
        metrics.update({"brier_30d": recent["brier"], "log_loss_30d": recent["log_loss"],
                        "runs_mae_30d": recent["runs"]["mae"], "runs_rmse_30d": recent["runs"]["rmse"]})
    return StageOutput({"predictions": predictions, "prediction_log": history, "evaluation": evaluation,
                        "drift_report": report, "drift_history": drift.append_history(drift_history, tonight, as_of)},
                       metrics)


def main(cfg) -> ModuleResult:
    """Stage L through the pipeline's runner, as a run does."""
    from utils.runner import run_stage

    return run_stage(cfg, "L")
