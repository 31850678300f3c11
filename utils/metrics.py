"""Run metrics for Prometheus: a `.prom` textfile under the artifacts root, and a Pushgateway push.

Names follow Prometheus conventions (base units, `_seconds`, `_timestamp_seconds`); labels are
of low cardinality: module, artifact, feature, window — never a game id.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

from prometheus_client import CollectorRegistry, Gauge, push_to_gateway, write_to_textfile

from phase_status import RunStatus
from utils.artifacts import ArtifactStore, atomic_write_text
from utils.catalog import Catalog

log = logging.getLogger("mlb.metrics")
PREFIX = "mlb_pipeline"
STATUSES = ("success", "failed", "skipped", "pending", "running", "interrupted")


def record_last_success(root: Path, status: RunStatus, now: float) -> float:
    """Remember `now` if every module of this run succeeded and it was versioned; the last success time
    either way (0: never). Kept in a file because a failed run must still report the previous success."""
    path = Catalog(root).last_success_file
    if status.ok_before("metrics"):
        atomic_write_text(path, f"{now}\n")
    return float(path.read_text()) if path.exists() else 0.0


def build_registry(status: RunStatus, store: ArtifactStore, margins: dict[str, float], last_success: float,
                   now: float) -> CollectorRegistry:
    """The run's gauges, from its status and the artifacts L and K left (reads only)."""
    registry = CollectorRegistry()

    def gauge(name: str, doc: str, labels: tuple[str, ...] = ()) -> Gauge:
        return Gauge(f"{PREFIX}_{name}", doc, labels, registry=registry)

    gauge("last_success_timestamp_seconds", "Unix time of the last run in which every module succeeded").set(
        last_success)
    gauge("last_run_timestamp_seconds", "Unix time the last run finished").set(now)
    duration = gauge("module_duration_seconds", "Wall time of the module in the last run", ("module",))
    state = gauge("module_status", "1 for the module's status in the last run", ("module", "status"))
    rows = gauge("artifact_rows", "Rows written to the artifact in the last run", ("artifact",))
    for phase in status.phases.values():
        duration.labels(phase.module).set(phase.duration_seconds or 0.0)
        for name in STATUSES:
            state.labels(phase.module, name).set(1.0 if phase.status == name else 0.0)
        for out in phase.outputs:
            if out.rows is not None:
                rows.labels(out.name).set(out.rows)
    predictions = status.phases.get("L")
    if predictions is not None and predictions.status == "success":
        games = next((o.rows for o in predictions.outputs if o.name == "predictions"), 0)
        gauge("games_predicted", "Games in the last predictions table").set(games or 0)
    evaluation = store.read_if_present("evaluation")
    if evaluation:
        brier = gauge("brier_score", "Brier score of published predictions with known results", ("window",))
        loss = gauge("log_loss", "Log loss of published predictions with known results", ("window",))
        mae = gauge("runs_mae", "Mean absolute error of expected runs", ("window",))
        rmse = gauge("runs_rmse", "Root mean squared error of expected runs", ("window",))
        for window, key in (("all", "all"), ("7d", "last_7_days"), ("30d", "last_30_days")):
            block = evaluation.get(key)
            if block:
                brier.labels(window).set(block["brier"])
                loss.labels(window).set(block["log_loss"])
                mae.labels(window).set(block["runs"]["mae"])
                rmse.labels(window).set(block["runs"]["rmse"])
    drift = store.read_if_present("drift_report")
    if drift:
        psi = gauge("feature_psi", "Population stability index of the feature over the last 30 days", ("feature",))
        for feature, value in drift["features"].items():
            psi.labels(feature).set(value)
        if drift["max_feature_psi"] is not None:
            gauge("feature_psi_max", "Largest feature PSI over the last 30 days").set(drift["max_feature_psi"])
        if drift["prediction_psi"] is not None:
            gauge("prediction_psi", "PSI of the predicted home-win probability").set(drift["prediction_psi"])
    card = store.read_if_present("model_card")
    if card:
        chosen = card["candidates"][card["chosen"]]["validation"]
        gauge("model_validation_brier",
              "Brier score of the published model on its validation slice").set(chosen["brier"])
        gauge("model_validation_log_loss", "Log loss of the published model on its validation slice").set(
            chosen["log_loss"])
        runs = card["runs"]["validation"]
        gauge("model_validation_runs_mae", "Run MAE of the run models on the validation slice").set(
            (runs["home"]["mae"] + runs["away"]["mae"]) / 2)
        gauge("model_validation_runs_rmse", "Run RMSE of the run models on the validation slice").set(
            (runs["home"]["rmse"] + runs["away"]["rmse"]) / 2)
    margin = gauge("alert_margin", "How much worse than validation a live metric may get before alerting",
                   ("metric",))
    for metric, value in margins.items():
        margin.labels(metric).set(value)
    return registry


def export_metrics(cfg, status: RunStatus, store: ArtifactStore) -> Path:
    """Write the run's metrics atomically to `<artifacts>/metrics/mlb_pipeline.prom`; push if configured."""
    m = cfg.monitoring
    now = time.time()
    registry = build_registry(status, store, {"brier": m.brier_margin, "runs_mae": m.runs_mae_margin,
                                              "runs_rmse": m.runs_rmse_margin},
                              record_last_success(store.root, status, now), now)
    path = store.catalog.metrics_file
    path.parent.mkdir(parents=True, exist_ok=True)
    write_to_textfile(str(path), registry)
    if m.pushgateway_url:
        push_to_gateway(m.pushgateway_url, job=m.job_name, registry=registry, timeout=10)
        log.info("pushed metrics to %s (job %s)", m.pushgateway_url, m.job_name)
    return path
