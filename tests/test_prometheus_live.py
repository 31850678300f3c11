"""Real Prometheus and Pushgateway on loopback: a replayed date with a shifted feature must fire the alert."""
import json
import shutil
import subprocess
import urllib.request

import pandas as pd
import pytest

from tests.conftest import ROOT, free_port, run_pipeline, stop, wait_for
from utils.artifacts import ArtifactStore

pytestmark = [pytest.mark.server, pytest.mark.slow]
AS_OF = "2024-07-14"


def binary(name):
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is missing: .ci/run installs the Debian package")
    return path


def get_json(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


@pytest.fixture
def servers(tmp_path):
    gateway_port, prom_port = free_port(), free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(f"""
global: {{scrape_interval: 1s, evaluation_interval: 1s}}
rule_files: ["{ROOT / 'dashboards' / 'alerts.yml'}"]
scrape_configs:
  - job_name: pushgateway
    honor_labels: true
    static_configs: [{{targets: ["127.0.0.1:{gateway_port}"]}}]
""")
    procs = [
        subprocess.Popen([binary("prometheus-pushgateway"), f"--web.listen-address=127.0.0.1:{gateway_port}"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
        subprocess.Popen([binary("prometheus"), f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                          f"--web.listen-address=127.0.0.1:{prom_port}"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
    ]
    try:
        wait_for(lambda: urllib.request.urlopen(f"http://127.0.0.1:{gateway_port}/-/ready", timeout=2).status == 200,
                 "the Pushgateway")
        wait_for(lambda: urllib.request.urlopen(f"http://127.0.0.1:{prom_port}/-/ready", timeout=2).status == 200,
                 "Prometheus")
        yield f"127.0.0.1:{gateway_port}", f"http://127.0.0.1:{prom_port}"
    finally:
        stop(procs)


def test_shifted_feature_fires_the_drift_alert(servers, mirror, tmp_path):
    gateway, prometheus = servers
    root = tmp_path / "artifacts"
    base = ["--legacy-executor", "--as-of", AS_OF, "--set", f"sources.retrosheet.base_url={mirror}",
            "--set", f"paths.artifacts={root}", "--set", "data.first_season=2021", "--set", "model.train_seasons=2"]
    proc = run_pipeline("run", *base)
    assert proc.returncode == 0, proc.stderr[-2000:]
    # Shift one feature for the games of the drift window, through the artifact layer (hash kept valid).
    store = ArtifactStore(root, ROOT / "schemas")
    table = store.read_frame("model_table")
    recent = table["date"] >= table["date"].max() - pd.Timedelta(days=29)
    table.loc[recent, "ctx_park_factor"] += 0.5
    store.write_frame("model_table", table)
    proc = run_pipeline("run", "--modules", "L", *base, "--set", f"monitoring.pushgateway_url={gateway}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "mlb_pipeline_feature_psi_max" in (root / "metrics" / "mlb_pipeline.prom").read_text()

    def psi_in_prometheus():
        query = "mlb_pipeline_feature_psi%7Bfeature%3D%22ctx_park_factor%22%7D"  # ...{feature="ctx_park_factor"}
        result = get_json(f"{prometheus}/api/v1/query?query={query}")
        values = result["data"]["result"]
        return float(values[0]["value"][1]) if values else None

    psi = wait_for(psi_in_prometheus, "the pushed PSI in Prometheus")
    assert psi > 0.25

    def firing():
        alerts = get_json(f"{prometheus}/api/v1/alerts")["data"]["alerts"]
        return [a for a in alerts if a["labels"]["alertname"] == "MlbFeatureDriftCritical" and a["state"] == "firing"]

    alerts = wait_for(firing, "MlbFeatureDriftCritical to fire")
    assert "ctx_park_factor" in {a["labels"]["feature"] for a in alerts}
    unshifted = get_json(f"{prometheus}/api/v1/query?query=mlb_pipeline_feature_psi%7Bfeature%3D%22elo_diff%22%7D")
    assert float(unshifted["data"]["result"][0]["value"][1]) < 0.25


def test_unreachable_pushgateway_is_one_line_and_exit_1(mirror, tmp_path):
    proc = run_pipeline("run", "--legacy-executor", "--modules", "A", "--as-of", AS_OF,
               "--set", f"sources.retrosheet.base_url={mirror}", "--set", f"paths.artifacts={tmp_path}",
               "--set", "data.first_season=2024", "--set", f"monitoring.pushgateway_url=127.0.0.1:{free_port()}")
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: metrics")]
    assert len(errors) == 1 and "Connection refused" in errors[0]
    assert (tmp_path / "metrics" / "mlb_pipeline.prom").exists()  # the textfile is written before the push
