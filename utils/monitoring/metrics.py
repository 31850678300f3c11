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
from utils.engine.stages import PostRunHook, StepFailed, one_line
from utils.store.artifacts import ArtifactStore, atomic_write_text
from utils.store.catalog import ArtifactError, Catalog

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


def build_registry(status: RunStatus, store: ArtifactStore, last_success: float, now: float) -> CollectorRegistry:
    """The run's gauges, from its status and the artifacts L and K left (reads only)."""
    registry = CollectorRegistry()
    gauge = gauge_maker(registry)
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
    games = None
    if predictions is not None and predictions.status == "success":
        games = next((o.rows for o in predictions.outputs if o.name == "predictions"), 0) or 0
    run_gauges(gauge, status.run_id, games)
    monitoring_gauges(gauge, store.read_if_present("evaluation"), store.read_if_present("drift_report"),
                      store.read_if_present("model_card"))
    return registry


def gauge_maker(registry: CollectorRegistry):
    """gauge(name, doc, labels): a Gauge named with the pipeline's prefix, in `registry`."""
    def gauge(name: str, doc: str, labels: tuple[str, ...] = ()) -> Gauge:
        return Gauge(f"{PREFIX}_{name}", doc, labels, registry=registry)
    return gauge


def run_gauges(gauge, run_id: str | None, games_predicted: int | None) -> None:
    """The run's id (what an alert's annotation names) and, when L succeeded, the games it predicted."""
    if run_id is not None:
        gauge("run_info", "1, labelled with the last run's id", ("run_id",)).labels(run_id).set(1)
    if games_predicted is not None:
        gauge("games_predicted", "Games in the last predictions table").set(games_predicted)


def export_metrics(cfg, status: RunStatus, store: ArtifactStore) -> Path:
    """Write the run's metrics atomically to `<artifacts>/metrics/mlb_pipeline.prom`; push if configured."""
    m = cfg.monitoring
    now = time.time()
    registry = build_registry(status, store, record_last_success(store.root, status, now), now)
    path = store.catalog.metrics_file
    path.parent.mkdir(parents=True, exist_ok=True)
    write_to_textfile(str(path), registry)
    if m.pushgateway_url:
        push_to_gateway(m.pushgateway_url, job=m.job_name, registry=registry, timeout=10)
        log.info("pushed metrics to %s (job %s)", m.pushgateway_url, m.job_name)
    return path


def monitoring_gauges(gauge, evaluation: dict | None, drift: dict | None, card: dict | None) -> None:
    """The gauges L's and K's artifacts give: quality of published predictions against the model card's
    validation, feature drift against its normal, the sources' health."""
    if evaluation:
        evaluation_gauges(gauge, evaluation)
    if drift:
        drift_gauges(gauge, drift)
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


def monitoring_registry(evaluation: dict | None, drift: dict | None, card: dict | None,
                        games_predicted: int | None = None, run_id: str | None = None) -> CollectorRegistry:
    """Only those gauges (and games predicted, the run id): a replay of the monitoring step
    (bench/bench_alerts.py) and the tests."""
    registry = CollectorRegistry()
    gauge = gauge_maker(registry)
    run_gauges(gauge, run_id, games_predicted)
    monitoring_gauges(gauge, evaluation, drift, card)
    return registry


def evaluation_gauges(gauge, evaluation: dict) -> None:
    """Brier, log loss and run errors over all, 7 and 30 days with the games behind them, and the 30
    days' gap to the validation in standard errors."""
    brier = gauge("brier_score", "Brier score of published predictions with known results", ("window",))
    loss = gauge("log_loss", "Log loss of published predictions with known results", ("window",))
    mae = gauge("runs_mae", "Mean absolute error of expected runs", ("window",))
    rmse = gauge("runs_rmse", "Root mean squared error of expected runs", ("window",))
    games = gauge("evaluated_games", "Games with known results behind the window's metrics", ("window",))
    for window, key in (("all", "all"), ("7d", "last_7_days"), ("30d", "last_30_days")):
        block = evaluation.get(key)
        if block:
            brier.labels(window).set(block["brier"])
            loss.labels(window).set(block["log_loss"])
            mae.labels(window).set(block["runs"]["mae"])
            rmse.labels(window).set(block["runs"]["rmse"])
            games.labels(window).set(block["n"])
    recent = evaluation.get("last_30_days")
    if recent and "vs_validation" in recent:
        z = gauge("performance_z", "Standard errors by which the window's metric is worse than the model card's "
                  "validation implies for that many games", ("metric", "window"))
        se = gauge("performance_standard_error", "Standard error of the gap between the window's metric and the "
                   "validation's", ("metric", "window"))
        for metric, gap in recent["vs_validation"].items():
            z.labels(metric, "30d").set(gap["z"])
            se.labels(metric, "30d").set(gap["standard_error"])


def drift_gauges(gauge, drift: dict) -> None:
    """Each watched feature's drift score per view (psi: the last 30 days; shift: tonight's games), its
    value, normal and the highest score of the week before; the sources' health."""
    labels = ("feature", "view")
    score = gauge("feature_drift_score", "The feature's drift over its normal (1: the worst ordinary night "
                  "in a hundred)", labels)
    value = gauge("feature_drift_value", "PSI (view psi) or tonight's mean shift in standard errors (view shift)",
                  labels)
    normal = gauge("feature_drift_normal", "The value's normal: its high quantile on ordinary nights", labels)
    before = gauge("feature_drift_recent_max", "The highest score on the runs of the week before (0: none)",
                   labels)
    top = 0.0
    for feature, s in drift["features"].items():
        for view in ("psi", "shift"):
            if s[f"{view}_score"] is None:
                continue
            score.labels(feature, view).set(s[f"{view}_score"])
            value.labels(feature, view).set(s[view])
            normal.labels(feature, view).set(s[f"{view}_normal"])
            before.labels(feature, view).set(s[f"{view}_recent_max"] or 0.0)
            top = max(top, s[f"{view}_score"])
    gauge("feature_drift_score_max", "The largest feature drift score of the run").set(top)
    window = gauge("drift_window_games", "Games behind the drift measures", ("window",))
    window.labels("30d").set(drift["window"]["games"])
    window.labels("tonight").set(drift["window"]["tonight_games"])
    if drift["prediction_psi"] is not None:
        gauge("prediction_psi", "PSI of the predicted home-win probability").set(drift["prediction_psi"])
    sources = drift["sources"]
    gauge("source_starters", "Starters of tonight's games").set(sources["starters"])
    gauge("source_starters_unknown_ratio", "Share of tonight's starters with no known id").set(
        sources["starters_unknown"] / sources["starters"] if sources["starters"] else 0.0)
    gauge("games_scheduled", "Games on the as-of date's schedule").set(sources["games_scheduled"])
    gauge("source_results_expected", "Games predicted on the last earlier date").set(sources["results_expected"])
    gauge("source_results_ingested", "Of those, games whose result arrived").set(sources["results_ingested"])


def export_run_metrics(cfg, run_dir: Path, status: RunStatus, store: ArtifactStore) -> tuple[str, str | None]:
    """The metrics step: an unreachable Pushgateway fails the step, never hides the run's outcome."""
    try:
        export_metrics(cfg, status, store)
    except (OSError, ValueError, ArtifactError) as exc:
        gateway = cfg.monitoring.pushgateway_url
        where = f"{gateway}: " if gateway else ""  # without a Pushgateway the error names the file
        raise StepFailed(f"{where}{one_line(exc)}") from None
    return "success", None


METRICS = PostRunHook("metrics", export_run_metrics)
