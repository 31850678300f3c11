"""Pushgateway, Prometheus and Alertmanager on loopback, started from the shipped dashboards/ configs.

Each copy changes only what a test must: addresses (free ports), intervals (seconds instead of minutes)
and storage (the test's own folder); the routes, rules, scrape and inhibition are the shipped ones.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, free_port, stop, wait_for

DASHBOARDS = ROOT / "dashboards"


def binary(name: str, package: str | None = None) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is missing: make system-deps installs the Debian package {package or name}")
    return path


def ready(address: str) -> bool:
    return urllib.request.urlopen(f"http://{address}/-/ready", timeout=2).status == 200


def seconds_for_minutes(duration: str) -> str:
    """A rule's `for` with minutes read as seconds ("10m" -> "10s"), as the test's intervals are."""
    return re.sub(r"(\d+)m$", r"\1s", duration)


def prometheus_config(folder: Path, gateway: str, alertmanager: str | None, interval: str = "1s",
                      scale_for: bool = False) -> Path:
    """dashboards/prometheus.yml with the Pushgateway's and Alertmanager's addresses and the scrape and
    evaluation intervals changed, and alerts.yml beside it (the rules' `for` in seconds with `scale_for`)."""
    config = yaml.safe_load((DASHBOARDS / "prometheus.yml").read_text())
    config["global"].update(scrape_interval=interval, evaluation_interval=interval)
    (job,) = config["scrape_configs"]
    job["static_configs"] = [{"targets": [gateway]}]
    if alertmanager is None:
        del config["alerting"]
    else:
        config["alerting"]["alertmanagers"] = [{"static_configs": [{"targets": [alertmanager]}]}]
    rules = yaml.safe_load((DASHBOARDS / "alerts.yml").read_text())
    if scale_for:
        for rule in (r for group in rules["groups"] for r in group["rules"] if "for" in r):
            rule["for"] = seconds_for_minutes(rule["for"])
    (folder / "alerts.yml").write_text(yaml.safe_dump(rules, sort_keys=False))
    path = folder / "prometheus.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def alertmanager_config(folder: Path, webhook: str) -> Path:
    """dashboards/alertmanager.yml with every webhook sent to `webhook` (its path kept: /page, /digest) and
    its waits scaled: what takes minutes takes a second, what takes hours (the digest's day, every reminder)
    takes an hour, so it never comes twice during a test, as it never comes twice in a night."""
    config = yaml.safe_load((DASHBOARDS / "alertmanager.yml").read_text())
    routes = [config["route"], *config["route"].get("routes", [])]
    for route in routes:
        for key in ("group_wait", "group_interval", "repeat_interval"):
            if key in route:
                route[key] = "1h" if route[key].endswith(("h", "d")) else "1s"
    for receiver in config["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            hook["url"] = re.sub(r"^http://[^/]+", f"http://{webhook}", hook["url"])
    path = folder / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


class Servers:
    """Started processes, stopped together."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.procs: list[subprocess.Popen] = []
        self.logs: list = []

    def start(self, *args: str) -> None:
        """Start a server, its output in <folder>/<binary>.log (what a failed wait_for leaves to read)."""
        self.logs.append((self.folder / f"{Path(args[0]).name}.log").open("wb"))
        self.procs.append(subprocess.Popen(args, stdout=self.logs[-1], stderr=subprocess.STDOUT))

    def pushgateway(self) -> str:
        address = f"127.0.0.1:{free_port()}"
        # Debian's build persists to /var/lib/prometheus/pushgateway.data by default: an earlier session's
        # run_info would come back and an alert could name that run. Each test keeps its own file.
        self.start(binary("prometheus-pushgateway"), f"--web.listen-address={address}",
                   f"--persistence.file={self.folder / 'pushgateway.data'}")
        wait_for(lambda: ready(address), "the Pushgateway")
        return address

    def alertmanager(self, webhook: str) -> str:
        address = f"127.0.0.1:{free_port()}"
        # No cluster: Debian's service (when systemd started it) or a parallel test holds the gossip port.
        self.start(binary("prometheus-alertmanager"), f"--config.file={alertmanager_config(self.folder, webhook)}",
                   f"--storage.path={self.folder / 'alertmanager'}", f"--web.listen-address={address}",
                   "--cluster.listen-address=")
        wait_for(lambda: ready(address), "Alertmanager")
        return address

    def prometheus(self, gateway: str, alertmanager: str | None = None, scale_for: bool = False) -> str:
        address = f"127.0.0.1:{free_port()}"
        self.start(binary("prometheus"),
                   f"--config.file={prometheus_config(self.folder, gateway, alertmanager, scale_for=scale_for)}",
                   f"--storage.tsdb.path={self.folder / 'tsdb'}", f"--web.listen-address={address}")
        wait_for(lambda: ready(address), "Prometheus")
        return f"http://{address}"

    def stop(self) -> None:
        stop(self.procs)
        for log in self.logs:
            log.close()
