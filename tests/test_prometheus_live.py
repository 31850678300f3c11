"""Real Prometheus and Pushgateway on loopback: a replayed date with a shifted feature must fire the alert."""
import json
import urllib.parse
import urllib.request

import pytest

from phase_status import latest_status
from tests.conftest import ROOT, free_port, run_pipeline, wait_for
from tests.monitoring_servers import Servers
from utils.store.artifacts import ArtifactStore

pytestmark = [pytest.mark.server, pytest.mark.slow]
AS_OF = "2024-07-14"


def get_json(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


@pytest.fixture
def servers(tmp_path):
    """The Pushgateway and Prometheus from dashboards/prometheus.yml (its addresses and a 1 s interval
    changed; the rules' `for: 1m` kept), without Alertmanager: tests/test_alert_delivery.py has it."""
    servers = Servers(tmp_path)
    try:
        gateway = servers.pushgateway()
        yield gateway, servers.prometheus(gateway)
    finally:
        servers.stop()


def test_shifted_feature_fires_the_drift_alert(servers, mirror, tmp_path, shared_cache):
    gateway, prometheus = servers
    root = tmp_path / "artifacts"
    base = ["--legacy-executor", "--as-of", AS_OF, "--set", f"sources.retrosheet.base_url={mirror}",
            "--set", f"paths.artifacts={root}", "--set", "data.first_season=2021", "--set", "model.train_seasons=2",
            *shared_cache]
    proc = run_pipeline("run", *base)
    assert proc.returncode == 0, proc.stderr[-2000:]
    # A source break: this season's runs arrive in another unit (per nine innings, x9), so one feature
    # of the drift window's games moves far beyond its normal; written through the artifact layer (hash
    # kept valid) as a rebuilt table would be.
    store = ArtifactStore(root, ROOT / "schemas")
    table = store.read_frame("model_table")
    table.loc[table["season"] == 2024, "form_home_rf_10"] *= 9
    store.write_frame("model_table", table)
    proc = run_pipeline("run", "--modules", "L", *base, "--set", f"monitoring.pushgateway_url={gateway}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "mlb_pipeline_feature_drift_score_max" in (root / "metrics" / "mlb_pipeline.prom").read_text()
    run_id = latest_status(root).run_id

    def score_in_prometheus(feature):
        query = f'mlb_pipeline_feature_drift_score{{feature="{feature}",view="psi"}}'
        result = get_json(f"{prometheus}/api/v1/query?query={urllib.parse.quote(query)}")
        values = result["data"]["result"]
        return float(values[0]["value"][1]) if values else None

    assert wait_for(lambda: score_in_prometheus("form_home_rf_10"), "the pushed drift score in Prometheus") > 4

    def firing():
        alerts = get_json(f"{prometheus}/api/v1/alerts")["data"]["alerts"]
        return [a for a in alerts if a["labels"]["alertname"] == "MlbFeatureDriftBreak" and a["state"] == "firing"]

    alerts = wait_for(firing, "MlbFeatureDriftBreak to fire (after its for: 1m)", seconds=150)
    broke = [a for a in alerts if a["labels"]["feature"] == "form_home_rf_10"]
    assert {a["labels"]["view"] for a in broke} == {"psi", "shift"}  # the 30 days and tonight's games
    assert {a["labels"]["severity"] for a in broke} == {"critical"}
    # the annotation names the feature's value, its normal and the run, from the pushed gauges
    assert f"in run {run_id}:" in broke[0]["annotations"]["description"]
    assert "against a normal of at most" in broke[0]["annotations"]["description"]
    assert score_in_prometheus("elo_diff") < 4 and "elo_diff" not in {a["labels"]["feature"] for a in alerts}


def test_unreachable_pushgateway_is_one_line_and_exit_1(mirror, tmp_path):
    proc = run_pipeline("run", "--legacy-executor", "--modules", "A", "--as-of", AS_OF,
               "--set", f"sources.retrosheet.base_url={mirror}", "--set", f"paths.artifacts={tmp_path}",
               "--set", "data.first_season=2024", "--set", f"monitoring.pushgateway_url=127.0.0.1:{free_port()}")
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: metrics")]
    assert len(errors) == 1 and "Connection refused" in errors[0]
    assert (tmp_path / "metrics" / "mlb_pipeline.prom").exists()  # the textfile is written before the push
