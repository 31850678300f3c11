"""The Prefect path, once per session on a temporary local server (~10 s); everything else runs legacy."""
import pytest

from tests.toy_modules import toy_registry
from utils.artifacts import ArtifactStore
from utils.config import build_config
from utils.plan import make_plan
from utils.runner import execute

pytestmark = pytest.mark.prefect


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory):
    home = tmp_path_factory.mktemp("prefect_home")
    mp = pytest.MonkeyPatch()
    mp.setenv("PREFECT_HOME", str(home))
    mp.setenv("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    mp.setenv("PREFECT_LOGGING_LEVEL", "WARNING")
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield
    mp.undo()


def run_with(executor, root, registry):
    cfg = build_config({"paths": {"artifacts": str(root), "schemas": "tests/data/schemas"},
                        "run": {"as_of": "2024-07-14", "executor": executor}})
    store = ArtifactStore.from_config(cfg)
    return execute(cfg, registry, make_plan(registry, None, store), store, executor, 2), store


def test_prefect_and_legacy_produce_identical_artifacts_and_status(prefect_server, tmp_path):
    prefect, p_store = run_with("prefect", tmp_path / "prefect", toy_registry())
    legacy, l_store = run_with("legacy", tmp_path / "legacy", toy_registry())
    for name in ("numbers", "doubled", "squared", "summary"):
        assert p_store.resolve_output_path(name).read_bytes() == l_store.resolve_output_path(name).read_bytes()
    strip = lambda run: {m: (p.status, p.validator, [(o.name, o.sha256, o.rows) for o in p.outputs], p.error)  # noqa: E731
                         for m, p in run.phases.items()}
    assert strip(prefect) == strip(legacy)
    assert all(p.status == "success" for p in prefect.phases.values())


def test_prefect_failure_skips_downstream_like_legacy(prefect_server, tmp_path):
    prefect, _ = run_with("prefect", tmp_path / "prefect", toy_registry(middle="broken"))
    legacy, _ = run_with("legacy", tmp_path / "legacy", toy_registry(middle="broken"))
    assert {m: p.status for m, p in prefect.phases.items()} == {m: p.status for m, p in legacy.phases.items()} == {
        "N": "success", "D": "failed", "S": "success", "T": "skipped"}
    assert prefect.phases["T"].error == legacy.phases["T"].error == "upstream module(s) D did not succeed"


@pytest.mark.slow
def test_nightly_flow_runs_the_pipeline_and_fails_on_a_failed_run(prefect_server, mirror, tmp_path):
    from utils.nightly import mlb_nightly

    overrides = [f"sources.retrosheet.base_url={mirror}", f"paths.artifacts={tmp_path}", "run.as_of=2024-07-14",
                 "run.executor=legacy", "data.first_season=2018", "model.train_seasons=4"]
    assert mlb_nightly(config_path="config.yaml", overrides=overrides) == 0
    assert len(ArtifactStore(tmp_path, "schemas").read_frame("predictions")) == 15
    state = mlb_nightly(config_path="config.yaml", overrides=[*overrides, "run.modules=[Q]"], return_state=True)
    assert state.is_failed() and "exited with 2" in str(state.message)
