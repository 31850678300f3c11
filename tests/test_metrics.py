"""Metrics: names and values from a run, and the alert rules under promtool."""
import datetime as dt
import hashlib
import json
import re
import shutil
import subprocess

import pytest
import yaml
from prometheus_client import generate_latest

from phase_status import OutputStatus, PhaseStatus, RunStatus
from tests.conftest import ROOT
from utils.monitoring.metrics import build_registry, record_last_success
from utils.store.artifacts import ArtifactStore

NOW = 1_720_000_000.0


def run_status(failed: bool = False) -> RunStatus:
    out = OutputStatus(name="predictions", path="p", sha256="0" * 64, rows=15, validator="predictions@1.0.0")
    return RunStatus(run_id="r", executor="legacy", started_at=dt.datetime.now(dt.timezone.utc), phases={
        "K": PhaseStatus(module="K", name="train", status="failed" if failed else "success", duration_seconds=3.5,
                         error="boom" if failed else None),
        "L": PhaseStatus(module="L", name="predict_monitor", status="success", duration_seconds=0.25, outputs=[out]),
    })


def feature(psi=0.05, psi_normal=0.1, shift=0.5, shift_normal=2.5, psi_before=None, shift_before=None):
    return {"psi": psi, "psi_normal": psi_normal, "psi_score": psi / psi_normal, "psi_recent_max": psi_before,
            "shift": shift, "shift_normal": shift_normal, "shift_score": abs(shift) / shift_normal,
            "shift_recent_max": shift_before}


def drift_report(features: dict, sources: dict | None = None, prediction_psi=0.05) -> dict:
    scores = [(s[f"{v}_score"], n, v) for n, s in features.items() for v in ("psi", "shift")]
    top = max(scores)
    return {"as_of": "2024-07-14", "window": {"first": "2024-06-15", "last": "2024-07-14", "games": 400,
                                              "tonight_games": 15},
            "baseline": {"as_of": "2024-07-14", "seasons": [2019, 2020], "nights": 300, "quantile": 0.99,
                         "ready": True},
            "features": features, "excluded": {"ctx_month": "the calendar"},
            "max_score": top[0], "max_feature": top[1], "max_view": top[2], "prediction_psi": prediction_psi,
            "sources": {"starters": 30, "starters_unknown": 0, "games_scheduled": 15, "games_predicted": 15,
                        "results_date": "2024-07-13", "results_expected": 14, "results_ingested": 14,
                        **(sources or {})}}


def evaluation(z_brier=0.4, games=100) -> dict:
    gap = lambda z: {"live": 0.25, "expected": 0.24, "standard_error": 0.004, "games": 400, "z": z}  # noqa: E731
    block = {"n": games, "brier": 0.245, "log_loss": 0.68, "accuracy": 0.56, "runs": {"mae": 2.5, "rmse": 3.2}}
    return {"as_of": "2024-07-14", "evaluated": games, "all": block, "last_7_days": None,
            "last_30_days": {**block, "vs_validation": {"brier": gap(z_brier), "log_loss": gap(0.1),
                                                        "runs_mae": gap(-1.0), "runs_mse": gap(0.0)}}}


@pytest.fixture
def store(tmp_path):
    store = ArtifactStore(tmp_path, ROOT / "schemas")
    store.write_json("evaluation", evaluation())
    store.write_json("drift_report", drift_report({"elo_diff": feature(), "ctx_park_factor": feature(
        psi=0.62, psi_normal=0.124, psi_before=0.7)}))
    return store


def exposition(status, store, now=NOW) -> str:
    last = record_last_success(store.root, status, now)
    return generate_latest(build_registry(status, store, last, now)).decode()


def test_metric_values_and_labels(store):
    text = exposition(run_status(), store)
    assert 'mlb_pipeline_module_duration_seconds{module="K"} 3.5' in text
    assert 'mlb_pipeline_module_status{module="K",status="success"} 1.0' in text
    assert 'mlb_pipeline_module_status{module="K",status="failed"} 0.0' in text
    assert 'mlb_pipeline_artifact_rows{artifact="predictions"} 15.0' in text
    assert 'mlb_pipeline_games_predicted 15.0' in text
    assert 'mlb_pipeline_brier_score{window="30d"} 0.245' in text
    assert 'mlb_pipeline_evaluated_games{window="30d"} 100.0' in text
    assert 'mlb_pipeline_performance_z{metric="brier",window="30d"} 0.4' in text
    assert 'mlb_pipeline_runs_rmse{window="all"} 3.2' in text
    assert 'mlb_pipeline_feature_drift_score{feature="ctx_park_factor",view="psi"} 5.0' in text
    assert 'mlb_pipeline_feature_drift_value{feature="ctx_park_factor",view="psi"} 0.62' in text
    assert 'mlb_pipeline_feature_drift_normal{feature="ctx_park_factor",view="psi"} 0.124' in text
    assert 'mlb_pipeline_feature_drift_recent_max{feature="ctx_park_factor",view="psi"} 0.7' in text
    assert 'mlb_pipeline_feature_drift_recent_max{feature="elo_diff",view="psi"} 0.0' in text  # no history: 0
    assert 'mlb_pipeline_feature_drift_score_max 5.0' in text and 'mlb_pipeline_prediction_psi 0.05' in text
    assert 'mlb_pipeline_source_results_expected 14.0' in text and 'mlb_pipeline_games_scheduled 15.0' in text
    assert 'mlb_pipeline_run_info{run_id="r"} 1.0' in text
    assert "mlb_pipeline_last_success_timestamp_seconds 1.72e+09" in text  # NOW, as the client formats it


def test_names_follow_prometheus_conventions_and_no_game_ids(store):
    text = exposition(run_status(), store)
    names = set(re.findall(r"^# TYPE (\S+) ", text, flags=re.M))
    assert names and all(re.fullmatch(r"mlb_pipeline_[a-z0-9_]+", n) for n in names)
    assert all(not n.endswith("_total") for n in names)  # gauges only: a batch job's values, not counters
    assert "game_id" not in text and not re.search(r'"[A-Z]{3}\d{9}"', text)


def test_last_success_survives_a_failed_run(store):
    exposition(run_status(), store, now=NOW)
    text = exposition(run_status(failed=True), store, now=NOW + 3600)
    assert "mlb_pipeline_last_success_timestamp_seconds 1.72e+09" in text
    assert 'mlb_pipeline_module_status{module="K",status="failed"} 1.0' in text
    assert float((store.root / "metrics/last_success_timestamp").read_text()) == NOW


def promtool():
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is missing: .ci/run installs the Debian 'prometheus' package")
    return path


def test_alert_rules_are_valid_and_their_unit_tests_pass():
    check = subprocess.run([promtool(), "check", "rules", "alerts.yml"], cwd=ROOT / "dashboards",
                           capture_output=True, text=True)
    count = sum(len(group["rules"]) for group in yaml.safe_load((ROOT / "dashboards" / "alerts.yml").read_text())[
        "groups"])
    assert check.returncode == 0 and f"SUCCESS: {count} rules found" in check.stdout, check.stdout + check.stderr
    test = subprocess.run([promtool(), "test", "rules", "alerts_test.yml"], cwd=ROOT / "dashboards",
                          capture_output=True, text=True)
    assert test.returncode == 0 and "SUCCESS" in test.stdout, test.stdout + test.stderr


CASES = {  # name -> (drift report, evaluation, games predicted): gauges the rules must judge alike
    "ordinary night": (drift_report({"elo_diff": feature(), "sp_home_prior_ip": feature(psi=0.12)}), evaluation(), 15),
    "a new break": (drift_report({"elo_diff": feature(psi=0.9, psi_before=0.5)}), evaluation(), 15),
    "a break that stays": (drift_report({"elo_diff": feature(psi=0.9, psi_before=8.0)}), evaluation(), 15),
    "a break on top of a drift": (drift_report({"elo_diff": feature(psi=0.9, psi_before=4.0)}), evaluation(), 15),
    "a drift that grows": (drift_report({"elo_diff": feature(psi=0.7, psi_before=4.0)}), evaluation(), 15),
    "a break on the first run": (drift_report({"elo_diff": feature(shift=40.0)}), evaluation(), 15),
    "exactly on the line": (drift_report({"elo_diff": feature(psi=0.25, psi_before=2.5)}), evaluation(), 15),
    "between the lines": (drift_report({"elo_diff": feature(psi=0.22, psi_before=1.6)}), evaluation(), 15),
    "starters unknown": (drift_report({"elo_diff": feature()}, {"starters_unknown": 30}), evaluation(), 15),
    "few starters, all unknown": (drift_report({"elo_diff": feature()}, {"starters": 4, "starters_unknown": 4}),
                                  evaluation(), 2),
    "half the games not predicted": (drift_report({"elo_diff": feature()}), evaluation(), 7),
    "half of yesterday's results missing": (drift_report({"elo_diff": feature()}, {"results_ingested": 7}),
                                            evaluation(), 15),
    "a rainout": (drift_report({"elo_diff": feature()}, {"results_ingested": 13}), evaluation(), 15),
    "performance beyond 3 se": (drift_report({"elo_diff": feature()}), evaluation(z_brier=3.5), 15),
    "beyond 3 se on 20 games": (drift_report({"elo_diff": feature()}), evaluation(z_brier=3.5, games=20), 15),
    "prediction drift": (drift_report({"elo_diff": feature()}, prediction_psi=0.4), evaluation(), 15),
    "a module failed": (drift_report({"elo_diff": feature()}), evaluation(), 15),  # K failed: module_status below
}


def promtool_series(registry) -> list[dict]:
    """A registry's gauges as promtool input series, as the Pushgateway's job would carry them."""
    from utils.monitoring.alerts import samples

    return [{"series": "mlb_pipeline_" + metric + "{" + ",".join(
        f'{k}="{v}"' for k, v in {"job": "mlb_pipeline", **labels}.items()) + "}", "values": f"{value!r}x20"}
            for metric, values in samples(registry).items() for labels, value in values]


def test_the_python_rules_agree_with_promtool(tmp_path):
    """utils/monitoring/alerts.py (what bench/bench_alerts.py counts with) fires exactly what Prometheus fires on the
    same gauges: each case's gauges become promtool input series, and its Python alerts the expected ones."""
    import yaml

    from utils.monitoring.alerts import evaluate, load_rules, not_replayed
    from utils.monitoring.metrics import STATUSES, gauge_maker, monitoring_registry

    replayed = [rule.name for rule in load_rules() if rule.tree is not None]
    assert set(not_replayed()) == {"MlbPipelineStale", "MlbPipelineMetricsAbsent"}  # the clock's, the absence's
    tests, fired_somewhere = [], set()
    for name, (drift, quality, predicted) in CASES.items():
        registry = monitoring_registry(quality, drift, None, games_predicted=predicted, run_id="r1")
        state = gauge_maker(registry)("module_status", "1 for the module's status", ("module", "status"))
        for module, status in (("K", "failed" if name == "a module failed" else "success"), ("L", "success")):
            for one in STATUSES:
                state.labels(module, one).set(1.0 if one == status else 0.0)
        series = promtool_series(registry)
        alerts = evaluate(registry)
        fired_somewhere |= {a.name for a in alerts}
        checks = []
        for rule in replayed:
            expected = [{"exp_labels": {"severity": a.severity, "job": "mlb_pipeline", **dict(a.labels)}}
                        for a in alerts if a.name == rule]
            checks.append({"eval_time": "15m", "alertname": rule, "exp_alerts": expected})
        tests.append({"name": name, "interval": "1m", "input_series": series, "alert_rule_test": checks})
    # every replayable rule fires in at least one case, so agreement is not all-empty (a new rule needs a
    # case here that fires it)
    assert fired_somewhere == set(replayed), f"no case of CASES fires {set(replayed) - fired_somewhere}: add one"
    # the same rules without their annotations (dashboards/alerts_test.yml checks those): which alerts fire
    rules = yaml.safe_load((ROOT / "dashboards" / "alerts.yml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(rules))
    (tmp_path / "agree.yml").write_text(yaml.safe_dump(
        {"rule_files": ["rules.yml"], "evaluation_interval": "1m", "tests": tests}))
    result = subprocess.run([promtool(), "test", "rules", "agree.yml"],
                            cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_warning_is_held_back_while_its_own_series_pages():
    """utils.monitoring.alerts.notified, dashboards/alertmanager.yml's inhibition as the bench counts it: a break of
    elo_diff's 30 days holds back that series' lasting-drift warning, not its tonight view's nor the
    performance warning (which names no feature)."""
    from utils.monitoring.alerts import evaluate, notified
    from utils.monitoring.metrics import monitoring_registry

    report = drift_report({"elo_diff": {**feature(psi=0.9, psi_before=2.0), "shift": 5.0, "shift_score": 2.0,
                                        "shift_recent_max": 1.8}})
    alerts = evaluate(monitoring_registry(evaluation(z_brier=3.5), report, None, games_predicted=15))
    fired = [(a.name, dict(a.labels).get("view")) for a in alerts]
    assert ("MlbFeatureDriftPersisting", "psi") in fired
    assert [(a.name, dict(a.labels).get("view")) for a in notified(alerts)] == [
        ("MlbFeatureDriftBreak", "psi"), ("MlbFeatureDriftPersisting", "shift"),
        ("MlbPerformanceWorseThanValidation", None)]


def test_a_report_an_older_version_wrote_is_not_exported_in_todays_shape(store):
    """A run that fails before L leaves the last drift report; after an upgrade it may be schema 1's
    ({feature: psi}). The metrics step skips it instead of failing on a missing key."""
    meta_path = store.meta_path("drift_report")
    meta = json.loads(meta_path.read_text())
    store.resolve_output_path("drift_report").write_text(json.dumps(
        {"as_of": "2024-07-14", "window": {}, "features": {"elo_diff": 0.02}, "max_feature_psi": 0.02,
         "max_feature": "elo_diff", "prediction_psi": 0.05}))
    meta.update(validator="drift_report@1.0.0",
                sha256=hashlib.sha256(store.resolve_output_path("drift_report").read_bytes()).hexdigest())
    meta_path.write_text(json.dumps(meta))
    text = exposition(run_status(failed=True), store)
    assert "mlb_pipeline_feature_drift_score" not in text and 'mlb_pipeline_brier_score{window="30d"}' in text


def test_rules_are_read_from_alerts_yml_and_what_cannot_be_replayed_is_named(tmp_path):
    """The bench's rules are alerts.yml's own: a rule needing a function is listed as not replayed, one
    using PromQL the evaluator does not know is an error naming the file and the rule."""
    from utils.monitoring.alerts import UnsupportedExpression, load_rules, threshold

    assert threshold("MlbFeatureDriftBreak") == 2.5 and threshold("MlbFeatureDriftPersisting") == 1.5
    rules = {"groups": [{"name": "g", "rules": [
        {"alert": "Gone", "expr": "absent(mlb_pipeline_x)", "labels": {"severity": "warning"}},
        {"alert": "Plain", "expr": 'mlb_pipeline_x{a="b"} > on(job) 2 * mlb_pipeline_y',
         "labels": {"severity": "critical"}},
    ]}]}
    path = tmp_path / "alerts.yml"
    path.write_text(json.dumps(rules))
    gone, plain = load_rules(path)
    assert (gone.tree, "absent()" in gone.why, plain.severity) == (None, True, "critical") and plain.tree is not None
    for name, expr, why in (("Joined", "mlb_pipeline_x * on(job) group_left mlb_pipeline_y", "group_left"),
                            ("Rate", "rate(mlb_pipeline_x[5m]) > 1", r"the function rate\(\)")):
        path.write_text(json.dumps({"groups": [{"name": "g", "rules": [*rules["groups"][0]["rules"],
                                                                       {"alert": name, "expr": expr}]}]}))
        with pytest.raises(UnsupportedExpression, match=rf"alerts.yml: rule {name}: {why}"):
            load_rules(path)
    with pytest.raises(UnsupportedExpression, match="no replayable rule MlbPipelineStale"):
        threshold("MlbPipelineStale")


def test_the_evaluator_reads_promql_as_prometheus_does():
    """Precedence, literals, escaped label values and the matching rules the rules rely on."""
    from utils.monitoring.alerts import UnsupportedExpression, _evaluate, _Parser

    series = {"x": [({"job": "j", "f": "a.b"}, 3.0), ({"job": "j", "f": "ab"}, 1.0)],
              "y": [({"job": "j", "f": "a.b"}, 2.0), ({"job": "j", "f": "ab"}, 2.0)]}

    def run(expr):
        return sorted((labels.get("f", ""), value) for labels, value in _evaluate(_Parser(expr).parse(), series))

    assert run("x > 1 + 1 * 1.5") == [("a.b", 3.0)]  # * before +, + before >
    assert run("x > 2e0 or y > 10") == [("a.b", 3.0)] and run("x > .5 and y > 1") == [("a.b", 3.0), ("ab", 1.0)]
    assert run(r'x{f=~"a\\.b"}') == [("a.b", 3.0)] and run("x > -1 unless y < 3") == []
    assert run("x > on(job, f) 1.2 * y") == [("a.b", 3.0)] and run("x * 2 > NaN") == []
    with pytest.raises(UnsupportedExpression, match="many-to-one"):
        run("x > on(job) y")


def test_a_new_alert_is_one_rule(tmp_path):
    """docs/alerts.md's recipe: a rule added to alerts.yml (nothing else) is valid for Prometheus, fires in
    the bench's evaluation exactly when promtool says it does, and is silent otherwise."""
    import yaml

    from utils.monitoring.alerts import evaluate
    from utils.monitoring.metrics import monitoring_registry

    rules = yaml.safe_load((ROOT / "dashboards" / "alerts.yml").read_text())
    rules["groups"][0]["rules"].append({
        "alert": "MlbEvaluatedGamesLow", "for": "1m", "labels": {"severity": "warning"},
        "expr": 'mlb_pipeline_evaluated_games{window="30d"} < 20'
                ' and on(job, instance) mlb_pipeline_games_predicted > 0',
        "annotations": {"summary": "few games evaluated", "runbook_url": "docs/alerts.md#mlbevaluatedgameslow"}})
    (tmp_path / "alerts.yml").write_text(yaml.safe_dump(rules))
    check = subprocess.run([promtool(), "check", "rules", "alerts.yml"], cwd=tmp_path, capture_output=True, text=True)
    count = sum(len(group["rules"]) for group in rules["groups"])
    assert check.returncode == 0 and f"SUCCESS: {count} rules found" in check.stdout, check.stdout + check.stderr
    tests = []
    for games, fires in ((10, True), (100, False)):
        registry = monitoring_registry(evaluation(games=games), drift_report({"elo_diff": feature()}), None,
                                       games_predicted=15, run_id="r1")
        alerts = [a for a in evaluate(registry, tmp_path / "alerts.yml") if a.name == "MlbEvaluatedGamesLow"]
        assert [dict(a.labels) for a in alerts] == ([{"window": "30d"}] if fires else [])
        series = promtool_series(registry)
        tests.append({"interval": "1m", "input_series": series, "alert_rule_test": [{
            "eval_time": "15m", "alertname": "MlbEvaluatedGamesLow",
            "exp_alerts": [{"exp_labels": {"severity": "warning", "job": "mlb_pipeline", **dict(a.labels)},
                            "exp_annotations": {"summary": "few games evaluated",
                                                "runbook_url": "docs/alerts.md#mlbevaluatedgameslow"}}
                           for a in alerts]}]})
    (tmp_path / "new.yml").write_text(yaml.safe_dump({"rule_files": ["alerts.yml"], "evaluation_interval": "1m",
                                                      "tests": tests}))
    agree = subprocess.run([promtool(), "test", "rules", "new.yml"], cwd=tmp_path, capture_output=True, text=True)
    assert agree.returncode == 0, agree.stdout + agree.stderr
