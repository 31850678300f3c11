"""The alert rules of dashboards/alerts.yml evaluated in Python on one run's gauges.

bench/bench_alerts.py replays whole seasons through the monitoring step and needs to know, night by
night, which alerts Prometheus would fire; starting Prometheus for each of a thousand nights would
measure Prometheus. The expressions are mirrored here one by one, and a test feeds the same gauges to
`promtool test rules` with these results as the expected alerts, so the two cannot drift apart.
`MlbPipelineStale` (wall-clock time) and `MlbPipelineMetricsAbsent` (no metrics at all) are not
mirrored: a replay has no clock and always has its metrics. `notified` applies dashboards/alertmanager.yml's
inhibition, so the bench counts what reaches a person.
"""
from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry

PREFIX = "mlb_pipeline_"
BREAK_SCORE = 2.5  # MlbFeatureDriftBreak: over 2.5 times its normal, after a week at most that,
BREAK_JUMP = 2.0  # or over twice the week's highest
PERSIST_SCORE = 1.5  # MlbFeatureDriftPersisting
PREDICTION_PSI = 0.25
UNKNOWN_STARTERS, MIN_STARTERS = 0.5, 8
PREDICTED_SHARE = 0.9
RESULTS_SHARE, MIN_RESULTS = 0.75, 4
PERFORMANCE_Z, MIN_EVALUATED = 3.0, 50


@dataclass(frozen=True)
class Alert:
    name: str
    severity: str
    labels: tuple[tuple[str, str], ...]  # the series' own labels (without job and instance), sorted

    def describe(self) -> str:
        return f"{self.name}{{{', '.join(f'{k}={v}' for k, v in self.labels)}}}"


def samples(registry: CollectorRegistry) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Gauge name (without the prefix) -> [(labels, value)]."""
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in registry.collect():
        for sample in family.samples:
            out.setdefault(sample.name.removeprefix(PREFIX), []).append((dict(sample.labels), sample.value))
    return out


def evaluate(registry: CollectorRegistry) -> list[Alert]:
    """Every alert of dashboards/alerts.yml (but the clock's) that these gauges fire, sorted."""
    s = samples(registry)
    one = {name: values[0][1] for name, values in s.items() if len(values) == 1 and not values[0][0]}
    fired: list[Alert] = []

    def fire(name: str, severity: str, labels: dict[str, str] | None = None) -> None:
        fired.append(Alert(name, severity, tuple(sorted((labels or {}).items()))))

    recent = {(d["feature"], d["view"]): v for d, v in s.get("feature_drift_recent_max", [])}
    for labels, score in s.get("feature_drift_score", []):
        before = recent.get((labels["feature"], labels["view"]))
        if before is None:
            continue
        if score > BREAK_SCORE and (before <= BREAK_SCORE or score > BREAK_JUMP * before):
            fire("MlbFeatureDriftBreak", "critical", labels)
        if score > PERSIST_SCORE and before > PERSIST_SCORE:
            fire("MlbFeatureDriftPersisting", "warning", labels)
    if one.get("prediction_psi", 0.0) > PREDICTION_PSI:
        fire("MlbPredictionDrift", "warning")
    if one.get("source_starters_unknown_ratio", 0.0) > UNKNOWN_STARTERS \
            and one.get("source_starters", 0) >= MIN_STARTERS:
        fire("MlbStartersUnknown", "critical")
    if "games_predicted" in one and "games_scheduled" in one \
            and one["games_predicted"] < PREDICTED_SHARE * one["games_scheduled"]:
        fire("MlbGamesNotPredicted", "critical")
    expected = one.get("source_results_expected")
    if expected is not None and expected >= MIN_RESULTS and "source_results_ingested" in one \
            and one["source_results_ingested"] < RESULTS_SHARE * expected:
        fire("MlbResultsMissing", "critical")
    evaluated = {d.get("window"): v for d, v in s.get("evaluated_games", [])}
    for labels, z in s.get("performance_z", []):
        if labels.get("window") == "30d" and z > PERFORMANCE_Z and evaluated.get("30d", 0) >= MIN_EVALUATED:
            fire("MlbPerformanceWorseThanValidation", "warning", labels)
    for labels, value in s.get("module_status", []):
        if labels.get("status") == "failed" and value == 1:
            fire("MlbModuleFailed", "critical", labels)
    return sorted(fired, key=lambda a: (a.name, a.labels))


def critical(alerts: list[Alert]) -> list[Alert]:
    return [a for a in alerts if a.severity == "critical"]


def notified(alerts: list[Alert]) -> list[Alert]:
    """The alerts dashboards/alertmanager.yml passes on: a warning naming a feature is held back while a
    critical alert fires for the same feature and view (its inhibit rule)."""
    def series(alert: Alert) -> tuple[str | None, str | None]:
        labels = dict(alert.labels)
        return labels.get("feature"), labels.get("view")

    broke = {series(a) for a in critical(alerts) if series(a)[0]}
    return [a for a in alerts if not (a.severity == "warning" and series(a)[0] and series(a) in broke)]
