"""Metrics: names and values from a run, and the alert rules under promtool."""
import datetime as dt
import re
import shutil
import subprocess

import pytest
from prometheus_client import generate_latest

from phase_status import OutputStatus, PhaseStatus, RunStatus
from tests.conftest import ROOT
from utils.artifacts import ArtifactStore
from utils.metrics import build_registry, record_last_success

NOW = 1_720_000_000.0


def run_status(failed: bool = False) -> RunStatus:
    out = OutputStatus(name="predictions", path="p", sha256="0" * 64, rows=15, validator="predictions@1.0.0")
    return RunStatus(run_id="r", executor="legacy", started_at=dt.datetime.now(dt.timezone.utc), phases={
        "K": PhaseStatus(module="K", name="train", status="failed" if failed else "success", duration_seconds=3.5,
                         error="boom" if failed else None),
        "L": PhaseStatus(module="L", name="predict_monitor", status="success", duration_seconds=0.25, outputs=[out]),
    })


@pytest.fixture
def store(tmp_path):
    store = ArtifactStore(tmp_path, ROOT / "schemas")
    block = {"n": 100, "brier": 0.245, "log_loss": 0.68, "accuracy": 0.56, "runs": {"mae": 2.5, "rmse": 3.2}}
    store.write_json("evaluation", {"as_of": "2024-07-14", "evaluated": 100, "all": block, "last_7_days": None,
                                    "last_30_days": block})
    store.write_json("drift_report", {"as_of": "2024-07-14", "window": {"first": "x", "last": "y", "games": 400},
                                      "features": {"elo_diff": 0.02, "ctx_park_factor": 0.31},
                                      "max_feature_psi": 0.31, "max_feature": "ctx_park_factor",
                                      "prediction_psi": 0.05})
    return store


def exposition(status, store, now=NOW) -> str:
    last = record_last_success(store.root, status, now)
    return generate_latest(build_registry(status, store, {"brier": 0.01}, last, now)).decode()


def test_metric_values_and_labels(store):
    text = exposition(run_status(), store)
    assert 'mlb_pipeline_module_duration_seconds{module="K"} 3.5' in text
    assert 'mlb_pipeline_module_status{module="K",status="success"} 1.0' in text
    assert 'mlb_pipeline_module_status{module="K",status="failed"} 0.0' in text
    assert 'mlb_pipeline_artifact_rows{artifact="predictions"} 15.0' in text
    assert 'mlb_pipeline_games_predicted 15.0' in text
    assert 'mlb_pipeline_brier_score{window="30d"} 0.245' in text
    assert 'mlb_pipeline_runs_rmse{window="all"} 3.2' in text
    assert 'mlb_pipeline_feature_psi{feature="ctx_park_factor"} 0.31' in text
    assert 'mlb_pipeline_feature_psi_max 0.31' in text and 'mlb_pipeline_prediction_psi 0.05' in text
    assert 'mlb_pipeline_alert_margin{metric="brier"} 0.01' in text
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
    assert check.returncode == 0 and "SUCCESS: 8 rules found" in check.stdout, check.stdout + check.stderr
    test = subprocess.run([promtool(), "test", "rules", "alerts_test.yml"], cwd=ROOT / "dashboards",
                          capture_output=True, text=True)
    assert test.returncode == 0 and "SUCCESS" in test.stdout, test.stdout + test.stderr
