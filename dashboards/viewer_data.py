"""What the DAG viewer shows, read from the artifacts root: pure readers, no Streamlit, no writes."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from modules.registry import Registry
from phase_status import RunStatus, StatusError, latest_status, load_status
from utils.alerts import BREAK_SCORE
from utils.artifacts import ArtifactStore
from utils.catalog import ArtifactError, Catalog

# The drift score's lines: 1 is the top of a feature's normal band (its worst ordinary night in a hundred);
# above BREAK_SCORE a new drift pages (dashboards/alerts.yml, MlbFeatureDriftBreak).
THRESHOLDS = {"normal": 1.0, "break": BREAK_SCORE}


def latest_run(root: Path) -> RunStatus | None:
    return latest_status(root)


def module_states(registry: Registry, run: RunStatus | None) -> dict[str, str]:
    """Colour key per module: its latest status, 'never run', or 'reserved'."""
    phases = run.phases if run else {}
    return {spec.id: "reserved" if spec.reserved else (phases[spec.id].status if spec.id in phases else "never run")
            for spec in registry}


def run_history(root: Path) -> list[RunStatus]:
    """Every kept run whose status can be read, oldest first."""
    runs = []
    catalog = Catalog(root)
    for run_id in catalog.run_ids():
        try:
            runs.append(load_status(catalog.run_file(run_id, "status")))
        except (StatusError, ArtifactError):  # one damaged run folder must not hide the others' history
            continue
    return runs


def module_history(runs: list[RunStatus], module_id: str) -> pd.DataFrame:
    rows = [{"run": r.run_id, "as_of": r.as_of, "status": p.status, "seconds": p.duration_seconds,
             "validator": p.validator, "error": p.error}
            for r in runs if (p := r.phases.get(module_id)) is not None]
    return pd.DataFrame(rows, columns=["run", "as_of", "status", "seconds", "validator", "error"])


def output_table(store: ArtifactStore, run: RunStatus | None, module_id: str) -> pd.DataFrame:
    """Each output of the module in the latest run: path, SHA-256, whether the file still matches it."""
    phase = run.phases.get(module_id) if run else None
    rows = []
    for out in phase.outputs if phase else []:
        verified = store.valid_hash(out.name) == out.sha256
        rows.append({"artifact": out.name, "path": out.path, "sha256": out.sha256, "verified": verified,
                     "schema": out.validator, "rows": out.rows})
    return pd.DataFrame(rows, columns=["artifact", "path", "sha256", "verified", "schema", "rows"])


def drift_table(drift: dict | None) -> pd.DataFrame:
    """One row per watched feature and view (psi: the last 30 days; shift: tonight's games): the value,
    its normal (the top of the band ordinary nights stay in), the score (value over normal), the score
    of the week before and its level (normal, above normal, break), the highest scores first."""
    columns = ["feature", "view", "value", "normal", "score", "recent_max", "level"]
    if not drift:
        return pd.DataFrame(columns=columns)
    rows = [{"feature": name, "view": view, "value": s[view], "normal": s[f"{view}_normal"],
             "score": s[f"{view}_score"], "recent_max": s[f"{view}_recent_max"]}
            for name, s in drift["features"].items() for view in ("psi", "shift") if s[f"{view}_score"] is not None]
    frame = pd.DataFrame(rows, columns=columns[:-1]).sort_values("score", ascending=False, kind="stable")
    frame["level"] = pd.cut(frame["score"], [-1, THRESHOLDS["normal"], THRESHOLDS["break"], float("inf")],
                            labels=["normal", "above normal", "break"]).astype(str)
    return frame.reset_index(drop=True)


def sources_table(drift: dict | None) -> pd.DataFrame:
    """The sources' health as the alerts read it: each check, its value and what it is compared with."""
    if not drift or "sources" not in drift:
        return pd.DataFrame(columns=["check", "value", "of"])
    s = drift["sources"]
    return pd.DataFrame([
        {"check": "tonight's starters with no known id", "value": s["starters_unknown"], "of": s["starters"]},
        {"check": "games predicted", "value": s["games_predicted"], "of": s["games_scheduled"]},
        {"check": f"results arrived for {s['results_date'] or '-'}", "value": s["results_ingested"],
         "of": s["results_expected"]},
    ])


def quality_history(runs: list[RunStatus]) -> pd.DataFrame:
    """Per run with an L phase: its largest drift score, Brier, log loss and run errors it recorded."""
    keys = ["max_score", "brier_30d", "log_loss_30d", "runs_mae_30d", "runs_rmse_30d"]
    rows = [{"as_of": pd.Timestamp(r.as_of) if r.as_of else None, "run": r.run_id,
             **{k: r.phases["L"].metrics.get(k) for k in keys}}
            for r in runs if "L" in r.phases and r.phases["L"].status == "success"]
    return pd.DataFrame(rows, columns=["as_of", "run", *keys])


def predictions_view(store: ArtifactStore) -> pd.DataFrame | None:
    """Latest predictions with the probable starters' names from the schedule where known."""
    predictions = store.read_if_present("predictions")
    if predictions is None:
        return None
    schedule = store.read_if_present("schedule")
    view = predictions.copy()
    if schedule is not None and len(schedule):
        names = dict(zip(schedule["h_starting_pitcher_id"], schedule["h_starting_pitcher_name"]))
        names.update(zip(schedule["v_starting_pitcher_id"], schedule["v_starting_pitcher_name"]))
        view["home_starter"] = view["home_starter_id"].map(names).fillna(view["home_starter_id"])
        view["away_starter"] = view["away_starter_id"].map(names).fillna(view["away_starter_id"])
    else:
        view["home_starter"], view["away_starter"] = view["home_starter_id"], view["away_starter_id"]
    return view[["date", "away_team", "away_starter", "home_team", "home_starter", "p_home_win", "exp_away_runs",
                 "exp_home_runs", "model_version"]]


def backtests(store: ArtifactStore) -> pd.DataFrame:
    """One row per backtested season whose summary verifies: model and Elo Brier, with the calibration table."""
    rows = []
    for season in store.catalog.backtest_seasons():
        summary = ArtifactStore(store.catalog.backtest(season).root, store.schema_dir).read_if_present(
            "backtest_summary")
        if summary is None:
            continue
        rows.append({"season": summary["season"], "games": summary["games"], "model_brier": summary["model"]["brier"],
                     "elo_brier": summary["elo"]["brier"], "calibration": summary["model"]["calibration"]})
    return pd.DataFrame(rows, columns=["season", "games", "model_brier", "elo_brier", "calibration"])


def reliability(backtest_rows: pd.DataFrame) -> pd.DataFrame:
    """Pooled reliability diagram over the backtested seasons: mean prediction vs observed rate by bin."""
    bins = [b for cal in backtest_rows["calibration"] for b in cal]
    if not bins:
        return pd.DataFrame(columns=["bin", "n", "mean_prediction", "observed_rate"])
    frame = pd.DataFrame(bins)
    frame["pred_sum"] = frame["mean_prediction"] * frame["n"]
    frame["obs_sum"] = frame["observed_rate"] * frame["n"]
    pooled = frame.groupby("bin")[["n", "pred_sum", "obs_sum"]].sum().reset_index()
    pooled["mean_prediction"] = pooled["pred_sum"] / pooled["n"]
    pooled["observed_rate"] = pooled["obs_sum"] / pooled["n"]
    return pooled[["bin", "n", "mean_prediction", "observed_rate"]]
