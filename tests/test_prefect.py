"""The Prefect path on the session's long-lived Prefect server (conftest.prefect_api); everything
else runs legacy. A server that does not answer falls back to a temporary one, with one warning."""
import pytest

from tests.toy_modules import toy_registry
from utils.config import build_config
from utils.engine.plan import make_plan
from utils.engine.session import execute
from utils.store.artifacts import ArtifactStore

pytestmark = pytest.mark.prefect


def run_with(executor, root, registry, api=None):
    cfg = build_config({"paths": {"artifacts": str(root), "schemas": "tests/data/schemas"},
                        "run": {"as_of": "2024-07-14", "executor": executor, "prefect_api_url": api}})
    store = ArtifactStore.from_config(cfg)
    return execute(cfg, registry, make_plan(registry, None, store), store, executor, 2), store


def test_prefect_and_legacy_produce_identical_artifacts_and_status(prefect_api, tmp_path):
    prefect, p_store = run_with("prefect", tmp_path / "prefect", toy_registry(), prefect_api)
    legacy, l_store = run_with("legacy", tmp_path / "legacy", toy_registry())
    for name in ("numbers", "doubled", "squared", "summary"):
        assert p_store.resolve_output_path(name).read_bytes() == l_store.resolve_output_path(name).read_bytes()
    strip = lambda run: {m: (p.status, p.validator, [(o.name, o.sha256, o.rows) for o in p.outputs], p.error)  # noqa: E731
                         for m, p in run.phases.items()}
    assert strip(prefect) == strip(legacy)
    assert all(p.status == "success" for p in prefect.phases.values())


def test_prefect_failure_skips_downstream_like_legacy(prefect_api, tmp_path):
    prefect, _ = run_with("prefect", tmp_path / "prefect", toy_registry(middle="broken"), prefect_api)
    legacy, _ = run_with("legacy", tmp_path / "legacy", toy_registry(middle="broken"))
    assert {m: p.status for m, p in prefect.phases.items()} == {m: p.status for m, p in legacy.phases.items()} == {
        "N": "success", "D": "failed", "S": "success", "T": "skipped"}
    assert prefect.phases["T"].error == legacy.phases["T"].error == "upstream module(s) D did not succeed"


@pytest.mark.slow
def test_nightly_flow_runs_the_pipeline_and_fails_on_a_failed_run(prefect_api, mirror, tmp_path, shared_cache):
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from utils.flows.nightly import mlb_nightly

    overrides = [f"sources.retrosheet.base_url={mirror}", f"paths.artifacts={tmp_path}", "run.as_of=2024-07-14",
                 "run.executor=legacy", "data.first_season=2021", "model.train_seasons=2", shared_cache[1]]
    with temporary_settings(updates={PREFECT_API_URL: prefect_api}):
        assert mlb_nightly(config_path="config.yaml", overrides=overrides) == 0
        assert len(ArtifactStore(tmp_path, "schemas").read_frame("predictions")) == 15
        state = mlb_nightly(config_path="config.yaml", overrides=[*overrides, "run.modules=[Q]"], return_state=True)
    assert state.is_failed() and "exited with 2" in str(state.message)


def test_runs_on_the_long_lived_server_are_kept_there(prefect_api, tmp_path):
    """The server keeps each run's history (what its UI shows): the flow run and one task run per module."""
    import json
    import urllib.request

    from tests.conftest import wait_for

    def post(path: str, body: dict) -> list:
        ask = urllib.request.Request(f"{prefect_api}/{path}", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        return json.loads(urllib.request.urlopen(ask, timeout=10).read())

    run_with("prefect", tmp_path, toy_registry(), prefect_api)
    newest = post("flow_runs/filter", {"sort": "START_TIME_DESC", "limit": 1})[0]
    assert newest["state_type"] == "COMPLETED"
    # the server records task runs from events, a moment after the flow returns
    names = wait_for(lambda: (lambda got: got if len(got) == 4 else None)(sorted(
        t["name"].split("-")[0] for t in post("task_runs/filter", {"flow_runs": {"id": {"any_": [newest["id"]]}}}))),
        "the four task runs on the server", seconds=30)
    assert names == ["D_doubled", "N_numbers", "S_squared", "T_summary"]


def test_a_failed_night_is_failed_in_prefect_and_each_module_s_log_is_under_its_task(prefect_api, tmp_path):
    """Read back from the server through its API: the failed module is a Failed task run with its
    one-line error, the module it blocked never ran (Prefect's Pending 'NotReady'), the others are
    Completed, the flow run is Failed; a good night's flow run is Completed; each module's own log
    line (the `mlb` logger) is under its task run."""
    import json
    import urllib.request

    from tests.conftest import wait_for

    def post(path: str, body: dict) -> list:
        ask = urllib.request.Request(f"{prefect_api}/{path}", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        return json.loads(urllib.request.urlopen(ask, timeout=10).read())

    def newest_runs():
        flow_run = post("flow_runs/filter", {"sort": "START_TIME_DESC", "limit": 1})[0]
        tasks = wait_for(lambda: (lambda got: got if len(got) == 4 and all(t["state_type"] for t in got) else None)(
            post("task_runs/filter", {"flow_runs": {"id": {"any_": [flow_run["id"]]}}})), "four task runs", 30)
        return flow_run, {t["name"].split("_")[0]: t for t in tasks}

    from utils.engine.logging import setup_logging

    setup_logging()  # the `mlb` logger at INFO, as the command line sets it
    status, _ = run_with("prefect", tmp_path / "bad", toy_registry(middle="broken"), prefect_api)
    flow_run, tasks = newest_runs()
    assert (flow_run["state_type"], flow_run["state"]["message"]) == ("FAILED", "module(s) D (doubled) failed")
    assert tasks["D"]["state_type"] == "FAILED" and tasks["D"]["state"]["message"] == status.phases["D"].error
    assert (tasks["T"]["state_type"], tasks["T"]["state_name"]) == ("PENDING", "NotReady")
    assert tasks["N"]["state_type"] == tasks["S"]["state_type"] == "COMPLETED"
    def lines(module: str) -> list[str]:
        logs = wait_for(lambda: post("logs/filter", {"logs": {"task_run_id": {"any_": [tasks[module]["id"]]}}})
                        or None, f"the {module} task run's log lines", 30)
        return [line["message"] for line in logs if line["name"].startswith("mlb")]

    assert any(line.startswith("module N done in ") for line in lines("N"))
    assert any(line.startswith("module D failed: ") for line in lines("D"))

    run_with("prefect", tmp_path / "good", toy_registry(), prefect_api)
    flow_run, tasks = newest_runs()
    assert flow_run["state_type"] == "COMPLETED" and {t["state_type"] for t in tasks.values()} == {"COMPLETED"}


def test_a_named_server_that_does_not_answer_falls_back_to_a_temporary_one():
    from prefect.settings import PREFECT_API_URL

    from tests.conftest import free_port, logged
    from utils.engine.prefect_api import prefect_server

    dead = f"http://127.0.0.1:{free_port()}/api"
    with logged("mlb.prefect") as records, prefect_server(dead) as used:
        assert used is None and PREFECT_API_URL.value() is None  # Prefect starts its temporary server
    warnings = [r.getMessage() for r in records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and warnings[0].startswith(f"the Prefect server at {dead} does not answer (")


def test_the_shipped_automation_is_one_prefect_accepts():
    """dashboards/prefect_automation.yaml (docs/operations.md) reads as Prefect's own automation model."""
    import yaml
    from prefect.events.schemas.automations import AutomationCore

    from tests.conftest import ROOT

    automation = AutomationCore.model_validate(yaml.safe_load((ROOT / "dashboards" / "prefect_automation.yaml")
                                                              .read_text()))
    assert automation.trigger.expect == {"prefect.flow-run.Failed"}
    assert automation.actions[0].type == "send-notification"
