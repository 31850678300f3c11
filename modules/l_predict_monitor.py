"""L · predict and monitor: the as-of date's predictions, the prediction log, the evaluation of
earlier predictions, and the drift report (PSI)."""
from __future__ import annotations

import datetime as dt
import hashlib
import logging

import numpy as np
import pandas as pd

from modules.models import TrainedModels, predict, trained_models
from modules.registry import ModuleResult, StageOutput
from utils.evaluation import DRIFT_WINDOW_DAYS, calibration_table, calibration_test, psi, run_metrics, win_metrics

log = logging.getLogger("mlb.l_predict_monitor")


def drift_report(models: TrainedModels, table: pd.DataFrame, as_of: dt.date) -> dict:
    """PSI of each feature and of p_home_win over the games of the last 30 days up to the as-of date,
    against K's reference (the same weeks of the last two seasons)."""
    day = pd.Timestamp(as_of)
    window = table[(table["date"] > day - pd.Timedelta(days=DRIFT_WINDOW_DAYS)) & (table["date"] <= day)]
    features = {name: psi(ref, window[name].to_numpy(dtype=float))
                for name, ref in models.reference["features"].items() if name in window}
    known = {k: v for k, v in features.items() if v is not None}
    prediction = psi(models.reference["p_home_win"], models.p_home_win(window)) if len(window) else None
    return {
        "as_of": as_of.isoformat(),
        "window": {"first": (day - pd.Timedelta(days=DRIFT_WINDOW_DAYS - 1)).date().isoformat(),
                   "last": as_of.isoformat(), "games": int(len(window))},
        "features": known,
        "max_feature_psi": max(known.values()) if known else None,
        "max_feature": max(known, key=known.get) if known else None,
        "prediction_psi": prediction,
    }


def evaluate(log_table: pd.DataFrame, table: pd.DataFrame, as_of: dt.date) -> dict:
    """Every earlier prediction whose result is known before the as-of date, overall and last 7/30 days."""
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
                        away_runs_model: bytes, model_params: dict, model_card: dict,
                        prediction_log: pd.DataFrame | None, as_of: dt.date,
                        input_hashes: dict[str, str]) -> StageOutput:
    """The as-of date's predictions, the log of every prediction so far, the evaluation of those whose
    results are known, and the drift report."""
    models = trained_models(win_model, home_runs_model, away_runs_model, model_params, model_card)
    today = model_table[(model_table["date"] == pd.Timestamp(as_of)) & ~model_table["played"]]
    predictions = predict(models, today, model_version(models.chosen, input_hashes))
    if predictions.empty:
        log.info("no games scheduled on %s: writing an empty predictions table", as_of)
    history = append_log(prediction_log, predictions, as_of)
    evaluation = evaluate(history, model_table, as_of)
    drift = drift_report(models, model_table, as_of)
    metrics = {"games_predicted": len(predictions), "evaluated": evaluation["evaluated"]}
    for key in ("max_feature_psi", "prediction_psi"):
        if drift[key] is not None:
            metrics[key] = drift[key]
    recent = evaluation["last_30_days"]
    if recent:  # the run's own record of quality, so the viewer can draw its history across runs
        metrics.update({"brier_30d": recent["brier"], "log_loss_30d": recent["log_loss"],
                        "runs_mae_30d": recent["runs"]["mae"], "runs_rmse_30d": recent["runs"]["rmse"]})
    return StageOutput({"predictions": predictions, "prediction_log": history, "evaluation": evaluation,
                        "drift_report": drift}, metrics)


def main(cfg) -> ModuleResult:
    """Stage L through the pipeline's runner, as a run does."""
    from utils.runner import run_stage

    return run_stage(cfg, "L")
