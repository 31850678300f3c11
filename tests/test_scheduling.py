"""Both documented ways to schedule the nightly job resolve to real, valid things."""
import importlib
import re
import tomllib

import yaml

from tests.conftest import ROOT


def test_prefect_deployment_points_at_the_nightly_flow_with_a_valid_schedule():
    from prefect.client.schemas.schedules import CronSchedule  # prefect is imported by the tests that use it
    from prefect.flows import Flow

    from utils.flows.nightly import NIGHTLY_CRON, NIGHTLY_TIMEZONE

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


def test_the_game_time_deployment_runs_the_same_flow_with_confirmed_lineups():
    from prefect.client.schemas.schedules import CronSchedule

    from utils.config import build_config
    from utils.flows.nightly import GAME_TIME_CRON, GAME_TIME_OVERRIDES, NIGHTLY_TIMEZONE

    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    morning, game_time = (next(d for d in spec["deployments"] if d["name"] == n) for n in ("nightly", "game-time"))
    assert game_time["entrypoint"] == morning["entrypoint"]
    schedule = game_time["schedules"][0]
    cron = CronSchedule(cron=schedule["cron"], timezone=schedule["timezone"])
    assert (cron.cron, cron.timezone) == (GAME_TIME_CRON, NIGHTLY_TIMEZONE)
    assert game_time["parameters"]["overrides"] == GAME_TIME_OVERRIDES
    # the override is a real, valid setting that turns the mode on
    cfg = build_config(yaml.safe_load((ROOT / "config.yaml").read_text()), GAME_TIME_OVERRIDES)
    assert cfg.run.lineups == "confirmed" and build_config(yaml.safe_load((ROOT / "config.yaml").read_text()),
                                                           []).run.lineups == "expected"
    # and `--serve` serves the same two as prefect.yaml declares
    from utils.flows.nightly import deployments

    served = {d.name: d for d in deployments("config.yaml")}
    for spec in (morning, game_time):
        schedule = served[spec["name"]].schedules[0].schedule
        assert (schedule.cron, schedule.timezone) == (spec["schedules"][0]["cron"], spec["schedules"][0]["timezone"])
        assert served[spec["name"]].parameters == spec["parameters"]


def test_readme_crontab_lines_are_valid_and_log_to_a_file():
    from prefect.client.schemas.schedules import CronSchedule

    from utils.flows.nightly import GAME_TIME_CRON, GAME_TIME_OVERRIDES, NIGHTLY_CRON, NIGHTLY_TIMEZONE

    readme = (ROOT / "README.md").read_text()
    lines = re.findall(r"^\s*(\S+ \S+ \S+ \S+ \S+) (cd \S+ && (\S+) run(.*))$", readme, flags=re.M)
    assert len(lines) == 2, "README must show the morning's and the game-time run's crontab lines"
    for (when, command, script, args), (cron, extra) in zip(lines, [(NIGHTLY_CRON, ""), (GAME_TIME_CRON,
                                                                                     GAME_TIME_OVERRIDES[0])]):
        CronSchedule(cron=when, timezone=NIGHTLY_TIMEZONE)
        assert when == cron and (f"--set {extra}" in args if extra else "--set" not in args)
        assert ">> " in command and "2>&1" in command
        # the console script that exits with the pipeline's own code, not make (whose code is 2 for any failure)
        assert script == ".venv/bin/mlb-pipeline"
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["mlb-pipeline"] == "pipeline:cli"
