"""The Prefect path on the session's long-lived Prefect server (conftest.prefect_api); everything
else runs legacy. A server that does not answer falls back to a temporary one, with one warning."""
import pytest

from tests.toy_modules import toy_registry
from utils.artifacts import ArtifactStore
from utils.config import build_config
from utils.plan import make_plan
from utils.runner import execute

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
def test_nightly_flow_runs_the_pipeline_and_fails_on_a_failed_run(prefect_api, mirror, tmp_path):
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from utils.nightly import mlb_nightly

    overrides = [f"sources.retrosheet.base_url={mirror}", f"paths.artifacts={tmp_path}", "run.as_of=2024-07-14",
                 "run.executor=legacy", "data.first_season=2021", "model.train_seasons=2"]
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


def test_a_named_server_that_does_not_answer_falls_back_to_a_temporary_one():
    from prefect.settings import PREFECT_API_URL

    from tests.conftest import free_port, logged
    from utils.prefect_api import prefect_server

    dead = f"http://127.0.0.1:{free_port()}/api"
    with logged("mlb.prefect") as records, prefect_server(dead) as used:
        assert used is None and PREFECT_API_URL.value() is None  # Prefect starts its temporary server
    warnings = [r.getMessage() for r in records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and warnings[0].startswith(f"the Prefect server at {dead} does not answer (")
