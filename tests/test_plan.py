import pytest

from modules.registry import REGISTRY
from tests.conftest import TOY_SCHEMAS
from tests.toy_modules import toy_registry
from utils.engine.plan import PlanError, ascii_dag, dag_dot, describe_outputs, make_plan, plan_text
from utils.engine.stages import ModuleSpec, Registry
from utils.store.artifacts import ArtifactStore


@pytest.fixture
def store(tmp_path):
    return ArtifactStore(tmp_path, TOY_SCHEMAS)


def test_levels_follow_the_registry_edges():
    # C, D, E, F, H read only A/B outputs; G waits for F; I for all features; K for I; L for K.
    plan = make_plan(REGISTRY, None, ArtifactStore("/nonexistent", "schemas"))
    assert plan.levels == [["A"], ["B"], ["C", "D", "E", "F", "H"], ["G"], ["I"], ["K"], ["L"]]
    assert "J" not in plan.modules


def test_registry_is_consistent():
    # every input is some module's output, and E is the only orphan (nothing reads it)
    outputs = {out for spec in REGISTRY for out in spec.outputs}
    assert {i for spec in REGISTRY for i in spec.inputs} <= outputs
    read = {i for spec in REGISTRY for i in spec.inputs}
    assert [s.id for s in REGISTRY if s.outputs and not set(s.outputs) & read and s.id != "L"] == ["E"]
    assert REGISTRY["E"].orphan and REGISTRY["J"].reserved


def test_duplicate_producer_is_refused():
    with pytest.raises(ValueError, match="'x' is made by both A and B"):
        Registry([ModuleSpec("A", "a", "m", (), ("x",)), ModuleSpec("B", "b", "m", (), ("x",))])


def test_unknown_module_id(store):
    with pytest.raises(PlanError, match="unknown module id\\(s\\) Q; known: N, D, S, J, T"):
        make_plan(toy_registry(), ["N", "Q"], store)


def test_naming_j_says_it_is_skipped(store):
    plan = make_plan(toy_registry(), ["N", "J"], store)
    assert plan.modules == ["N"]
    assert plan.notes == ["J is reserved and skipped on purpose"]


def test_selected_module_needs_its_inputs(store):
    with pytest.raises(PlanError, match="module D needs 'numbers' \\(made by N\\), which is not selected"):
        make_plan(toy_registry(), ["D"], store)


def test_input_present_and_hash_valid_on_disk_is_enough(store):
    import pandas as pd

    store.write_frame("numbers", pd.DataFrame({"n": [1], "label": ["a"]}))
    assert make_plan(toy_registry(), ["D"], store).modules == ["D"]
    path = store.resolve_output_path("numbers")
    path.write_bytes(path.read_bytes()[:-3])  # truncated: no longer hash-valid
    with pytest.raises(PlanError, match="SHA-256 mismatch"):
        make_plan(toy_registry(), ["D"], store)


def test_plan_text_shows_what_the_policy_would_do(store):
    from utils.config import build_config
    from utils.engine.one_stage import run_stage

    cfg = build_config({"paths": {"artifacts": str(store.root), "schemas": str(store.schema_dir)}})
    registry = toy_registry()
    run_stage(cfg, "N", registry, store)
    plan = make_plan(registry, None, store)
    assert describe_outputs(registry, plan, store, "skip", cfg)["numbers"] == "keep (up to date; module skipped)"
    run_stage(cfg, "D", registry, store)
    run_stage(cfg, "N", registry, store)  # same numbers again, but another write: doubled's input hash holds
    assert describe_outputs(registry, plan, store, "skip", cfg)["doubled"] == "keep (up to date; module skipped)"
    store.write_frame("numbers", store.read_frame("numbers").assign(n=[7, 8, 9]))
    assert describe_outputs(registry, plan, store, "skip", cfg)["doubled"] == (
        "rebuild: changed since it was made: input numbers")
    assert describe_outputs(toy_registry(), plan, store, "fail")["numbers"].startswith("ERROR")
    effects = describe_outputs(toy_registry(), plan, store, "warn")
    assert effects == {"numbers": "replace", "doubled": "replace", "squared": "new", "summary": "new"}
    text = plan_text(toy_registry(), plan, effects)
    assert "level 1 (parallel): D, S" in text and "writes: numbers  [replace]" in text


def test_drawings_come_from_the_registry():
    plan = make_plan(toy_registry(), None, ArtifactStore("/nonexistent", TOY_SCHEMAS))
    art = ascii_dag(toy_registry(), plan)
    assert art.splitlines()[0] == "[N numbers]" and "[T summary <- D,S]" in art and "(J reserved, not run)" in art
    dot = dag_dot(toy_registry(), statuses={"N": "success", "D": "failed"})
    assert 'N -> D [label="numbers"' in dot and 'J [label="J (reserved)"' in dot and "dashed" in dot
    assert 'D [label="D doubled\\nfailed", fillcolor="#f4a3a3"' in dot
