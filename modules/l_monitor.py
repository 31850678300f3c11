"""L · predict and monitor: the as-of date's predictions, evaluation of earlier ones, drift (PSI)."""
from __future__ import annotations

import datetime as dt
import logging

import numpy as np
import pandas as pd

from modules.models import TrainedModels, load_models, predict
from modules.registry import ModuleResult
from utils.artifacts import ArtifactError, ArtifactStore
from utils.evaluation import DRIFT_WINDOW_DAYS, calibration_table, calibration_test, psi, run_metrics, win_metrics

log = logging.getLogger("mlb.l_monitor")







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


def read_log(store: ArtifactStore) -> pd.DataFrame | None:
    """The prediction log so far (None before the first night). L appends to it, so re-running L cannot
    mend a damaged copy: the error names the restore that can."""
    if not store.resolve_output_path("prediction_log").exists():
        return None
    try:
        return store.read_frame("prediction_log")
    except ArtifactError as exc:
        from utils.versioning import latest_versioned_run

        run_id = latest_versioned_run(store.root, "prediction_log") or "RUN_ID"
        problem = str(exc).split("; ")[0]
        raise ArtifactError(f"{problem}; L appends to it, so restore the last good copy: "
                            f"`python pipeline.py restore {run_id} prediction_log`") from None


def model_version(store: ArtifactStore, chosen: str) -> str:
    import hashlib

    digest = hashlib.sha256("".join(store.verify(n) for n in ("win_model", "model_params")).encode()).hexdigest()
    return f"{chosen}-{digest[:12]}"


def main(cfg) -> ModuleResult:
    store = ArtifactStore.from_config(cfg)
    as_of = cfg.run.as_of
    table = store.read_frame("model_table")
    models = load_models(store)
    today = table[(table["date"] == pd.Timestamp(as_of)) & ~table["played"]]
    predictions = predict(models, today, model_version(store, models.chosen))
    if predictions.empty:
        log.info("no games scheduled on %s: writing an empty predictions table", as_of)
    previous = read_log(store)
    history = append_log(previous, predictions, as_of)
    evaluation = evaluate(history, table, as_of)
    drift = drift_report(models, table, as_of)
    outputs = [store.write_frame("predictions", predictions), store.write_frame("prediction_log", history),
               store.write_json("evaluation", evaluation), store.write_json("drift_report", drift)]
    metrics = {"games_predicted": len(predictions), "evaluated": evaluation["evaluated"]}
    for key in ("max_feature_psi", "prediction_psi"):
        if drift[key] is not None:
            metrics[key] = drift[key]
    recent = evaluation["last_30_days"]
    if recent:  # the run's own record of quality, so the viewer can draw its history across runs
        metrics.update({"brier_30d": recent["brier"], "log_loss_30d": recent["log_loss"],
                        "runs_mae_30d": recent["runs"]["mae"], "runs_rmse_30d": recent["runs"]["rmse"]})
    return ModuleResult(outputs, metrics=metrics)
