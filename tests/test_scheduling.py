"""Both documented ways to schedule the nightly job resolve to real, valid things."""
import importlib
import re
import tomllib

import yaml
from prefect.client.schemas.schedules import CronSchedule
from prefect.flows import Flow

from tests.conftest import ROOT
from utils.flows.nightly import NIGHTLY_CRON, NIGHTLY_TIMEZONE


def test_prefect_deployment_points_at_the_nightly_flow_with_a_valid_schedule():
    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    deployment = next(d for d in spec["deployments"] if d["name"] == "nightly")
    path, _, name = deployment["entrypoint"].partition(":")
    module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
    flow = getattr(module, name)
    assert isinstance(flow, Flow) and flow.name == "mlb-nightly"
    schedule = deployment["schedules"][0]
    cron = CronSchedule(cron=schedule["cron"], timezone=schedule["timezone"])
    assert (cron.cron, cron.timezone) == (NIGHTLY_CRON, NIGHTLY_TIMEZONE)
    assert set(deployment["parameters"]) <= set(flow.parameters.properties)


def test_readme_crontab_line_is_valid_and_logs_to_a_file():
    readme = (ROOT / "README.md").read_text()
    line = re.search(r"^\s*(\S+ \S+ \S+ \S+ \S+) (cd \S+ && (\S+) run .*)$", readme, flags=re.M)
    assert line, "README must show the crontab line"
    CronSchedule(cron=line.group(1), timezone=NIGHTLY_TIMEZONE)
    assert line.group(1) == NIGHTLY_CRON
    assert ">> " in line.group(2) and "2>&1" in line.group(2)
    # the console script that exits with the pipeline's own code, not make (whose code is 2 for any failure)
    assert line.group(3) == ".venv/bin/mlb-pipeline"
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["mlb-pipeline"] == "pipeline:main"
