import json
import os
import subprocess
import sys
import textwrap

import pytest

from phase_status import INTERRUPTED, read_status
from tests.conftest import ROOT
from tests.toy_modules import toy_registry
from utils.config import build_config
from utils.engine.plan import make_plan
from utils.engine.session import execute
from utils.store.artifacts import ArtifactStore
from utils.store.locking import LockHeld, RunLock


def run(cfg, registry=None, modules=None):
    registry = registry or toy_registry()
    store = ArtifactStore.from_config(cfg)
    return execute(cfg, registry, make_plan(registry, modules, store), store, "legacy", 2), store


def with_policy(cfg, policy):
    return build_config(cfg.model_dump(mode="json"), [f"run.overwrite_policy={policy}"])


def test_legacy_run_writes_artifacts_and_phase_status(toy_cfg):
    status, store = run(toy_cfg)
    assert {m: p.status for m, p in status.phases.items()} == dict.fromkeys("NDST", "success")
    # 1,2,3 doubled is 12 and squared is 14
    assert store.read_json("summary") == {"total": 26}
    on_disk = read_status(store.root)
    assert on_disk.finished_at is not None
    n = on_disk.phases["N"]
    assert n.validator == "numbers@1.2.0" and n.outputs[0].sha256 == store.verify("numbers")
    assert n.metrics == {"rows": 3.0} and n.timestamp.tzinfo is not None
    manifest = json.loads((store.root / "runs" / status.run_id / "manifest.json").read_text())
    assert manifest["artifacts"]["summary"] == store.verify("summary")


def test_failed_module_skips_its_downstream_and_keeps_earlier_artifacts(toy_cfg):
    _, store = run(toy_cfg)
    before = {n: store.verify(n) for n in ("numbers", "doubled", "squared", "summary")}
    status, _ = run(toy_cfg, toy_registry(middle="broken"))
    phases = status.phases
    assert phases["D"].status == "failed" and phases["D"].error == "numbers.parquet row 2: deliberate failure"
    assert phases["S"].status == "success"  # an independent branch still runs
    assert phases["T"].status == "skipped" and "upstream module(s) D did not succeed" in phases["T"].error
    assert store.verify("doubled") == before["doubled"] and store.verify("summary") == before["summary"]


def test_contract_violation_fails_the_module_and_keeps_the_last_good_artifact(toy_cfg):
    _, store = run(toy_cfg)
    good = store.verify("doubled")
    status, _ = run(toy_cfg, toy_registry(middle="invalid"))
    assert status.phases["D"].error == "doubled: column 'n' has value -1 below minimum 0"
    assert store.verify("doubled") == good


def test_run_killed_inside_a_module_leaves_earlier_artifacts_and_names_the_module(toy_cfg, tmp_path):
    script = textwrap.dedent(f"""
        import sys; sys.path.insert(0, {str(ROOT)!r})
        from tests.toy_modules import toy_registry
        from utils.store.artifacts import ArtifactStore
        from utils.config import build_config
        from utils.engine.plan import make_plan
        from utils.engine.session import execute
        cfg = build_config({toy_cfg.model_dump(mode="json")!r})
        store = ArtifactStore.from_config(cfg)
        registry = toy_registry(middle="killed")
        execute(cfg, registry, make_plan(registry, None, store), store, "legacy", 1)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr
    store = ArtifactStore.from_config(toy_cfg)
    assert store.read_frame("numbers")["n"].tolist() == [1, 2, 3]  # hash verified by the read
    status = read_status(store.root)
    assert status.phases["D"].status == "failed" and status.phases["D"].error == INTERRUPTED
    assert status.phases["N"].status == "success"
    assert status.phases["T"].status == "pending"
    assert not store.resolve_output_path("doubled").exists()


def test_skip_policy_keeps_valid_artifacts_and_rebuilds_corrupt_ones(toy_cfg):
    _, store = run(toy_cfg)
    mtime = store.resolve_output_path("numbers").stat().st_mtime_ns
    path = store.resolve_output_path("squared")
    path.write_bytes(b"corrupt")
    status, _ = run(with_policy(toy_cfg, "skip"))
    assert status.phases["N"].status == "skipped" and status.phases["N"].error is None
    assert status.phases["N"].outputs[0].sha256 == store.verify("numbers")
    assert store.resolve_output_path("numbers").stat().st_mtime_ns == mtime
    assert status.phases["S"].status == "success" and store.is_valid("squared")
    assert status.phases["T"].status == "skipped"  # its inputs did not change, so its output is kept


def test_fail_policy_fails_the_module_whose_output_exists(toy_cfg):
    run(toy_cfg)
    status, _ = run(with_policy(toy_cfg, "fail"))
    assert status.phases["N"].status == "failed" and "overwrite policy is 'fail'" in status.phases["N"].error
    assert status.phases["D"].status == "skipped"


def test_second_run_is_refused_with_the_holder_named(tmp_path, quick_refusal):
    with RunLock(tmp_path):
        with pytest.raises(LockHeld, match=rf"another run holds the artifacts root \(pid {os.getpid()} on"):
            RunLock(tmp_path).acquire()
        assert RunLock(tmp_path).is_held()
    assert not RunLock(tmp_path).is_held()


def test_stale_lock_from_a_killed_run_is_taken_over(tmp_path, caplog, quick_refusal):
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time; sys.path.insert(0, {str(ROOT)!r})
        from utils.store.locking import RunLock
        RunLock({str(tmp_path)!r}).acquire(); print('held', flush=True); time.sleep(60)
    """)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(LockHeld, match=f"pid {holder.pid}"):
        RunLock(tmp_path).acquire()
    holder.kill()
    holder.wait(timeout=10)
    import logging
    logging.getLogger("mlb").propagate = True
    with caplog.at_level(logging.WARNING, logger="mlb.lock"):
        lock = RunLock(tmp_path).acquire()
    assert f"took over a stale lock left by pid {holder.pid}" in caplog.text
    assert lock.holder()["pid"] == os.getpid()
    lock.release()


def test_runs_lists_each_run_with_its_result_and_versioning(toy_cfg, capsys):
    import datetime as dt
    import time

    import pipeline

    ok, store = run(toy_cfg)
    # run ids sort by their start second (the lock keeps real runs further apart): the next run starts
    # in the next second, no sooner and no later
    started = dt.datetime.strptime(ok.run_id.split("-")[0], "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.timezone.utc)
    time.sleep(max(0.0, (started + dt.timedelta(seconds=1) - dt.datetime.now(dt.timezone.utc)).total_seconds()) + 0.01)
    failed, _ = run(toy_cfg, toy_registry(middle="broken"))
    (store.catalog.run_file(ok.run_id, "dvc_lock")).write_text("stages: {}\n")  # as a versioned run keeps it
    with pytest.raises(SystemExit) as done:
        pipeline.main(["runs", "--set", f"paths.artifacts={store.root}"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert done.value.code == 0 and lines[0].split() == ["run", "id", "as", "of", "result", "seconds", "versioned"]
    first, second = (line.split() for line in lines[1:])
    assert first[:3] == [ok.run_id, "2024-07-14", "ok"] and first[-1] == "yes"
    assert second[:3] == [failed.run_id, "2024-07-14", "failed"] and second[-1] == "no"
    assert float(first[3]) >= 0 and float(first[3]) < 60


def test_runs_does_not_call_a_run_versioned_whose_versioning_was_interrupted(tmp_path, capsys):
    """A Ctrl-C during `dvc push` left the run's dvc.lock (kept before the push) and `status` said
    'versioning interrupted', while `runs` said 'yes'."""
    import yaml

    import pipeline

    run_dir = tmp_path / "runs" / "20240714T060000Z-abcdef"
    run_dir.mkdir(parents=True)
    status = {"run_id": run_dir.name, "executor": "legacy", "started_at": "2024-07-14T06:00:00Z",
              "steps": {"versioning": {"status": "interrupted", "error": "SIGINT during dvc push"}}}
    (run_dir / "phase_status.yaml").write_text(yaml.safe_dump(status))
    (run_dir / "manifest.json").write_text('{"artifacts": {}}')
    (run_dir / "dvc.lock").write_text("stages: {}\n")
    with pytest.raises(SystemExit):
        pipeline.main(["runs", "--set", f"paths.artifacts={tmp_path}"])
    row = capsys.readouterr().out.strip().splitlines()[1]
    assert row.endswith("partly (dvc.lock kept; versioning interrupted: SIGINT during dvc push)"), row
    status["steps"]["versioning"] = {"status": "running"}  # killed during the push: the step never ended
    (run_dir / "phase_status.yaml").write_text(yaml.safe_dump(status))
    with pytest.raises(SystemExit):
        pipeline.main(["runs", "--set", f"paths.artifacts={tmp_path}"])
    assert capsys.readouterr().out.strip().splitlines()[1].endswith("partly (dvc.lock kept; versioning running)")


def test_a_new_stage_is_a_function_and_a_registry_entry(toy_cfg):
    """The README's 'Adding a stage', on a toy stage: a function named after its input, a parameter
    bound to a config key, one registry entry; the runner loads, calls, validates and writes."""
    from tests.toy_modules import toy_registry
    from utils.engine.one_stage import run_stage
    from utils.engine.stages import ModuleSpec, Registry

    numbers = toy_registry()["N"]
    registry = Registry([numbers, ModuleSpec("W", "windowed", "tests.test_runner:keep_first", ("numbers",),
                                             ("squared",), params={"count": "features.form.window"})])
    cfg = build_config(toy_cfg.model_dump(mode="json"), ["features.form.window=2"])
    store = ArtifactStore.from_config(cfg)
    run_stage(cfg, "N", registry, store)
    result = run_stage(cfg, "W", registry, store)
    # numbers is 1, 2, 3; the stage keeps the first `window` = 2 rows
    assert store.read_frame("squared")["n"].tolist() == [1, 2] and result.outputs[0].rows == 2
    lineage = store.meta("squared")["lineage"]
    assert lineage["params"] == {"count": 2} and lineage["inputs"] == {"numbers": store.verify("numbers")}
    status, _ = run(cfg, registry, ["N", "W"])  # and the orchestrator runs it like any other stage
    assert status.phases["W"].status == "success"


def keep_first(numbers, count: int):
    return numbers.head(count)
