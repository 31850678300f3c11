"""DVC: dvc.yaml drawn from the registry, `dvc repro` through per-module commands, and restoring a run."""
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from modules.registry import REGISTRY
from tests.conftest import ROOT
from utils.engine.versioning import dvc_yaml
from utils.store.artifacts import ArtifactStore

ENV = {**os.environ, "DVC_NO_ANALYTICS": "1", "PYTHONPATH": ".",
       "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}


def test_committed_dvc_yaml_is_the_registry_s():
    assert (ROOT / "dvc.yaml").read_text() == dvc_yaml(REGISTRY, ArtifactStore(Path("artifacts"), ROOT / "schemas"))
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    assert list(stages) == [f"{s.id}_{s.name}" for s in REGISTRY.runnable]
    assert all("--legacy-executor" in s["cmd"] and "versioning.backend=none" in s["cmd"] for s in stages.values())
    log_out = [o for o in stages["L_predict_monitor"]["outs"] if isinstance(o, dict)]
    assert log_out == [{"artifacts/data/prediction_log.parquet": {"persist": True}},  # L appends to them
                       {"artifacts/data/drift_history.parquet": {"persist": True}}]


def project_copy(tmp_path: Path, mirror: Path, as_of: str, git: bool = False) -> Path:
    """The project's files in a new folder: a DVC project without git, or (git=True) a real git
    repository with the project's own .gitignore, as a `git clone` has it."""
    proj = tmp_path / "proj"
    proj.mkdir()
    for name in ("pipeline.py", "phase_status.py", "dvc.yaml", ".gitignore", ".dvcignore"):
        shutil.copy(ROOT / name, proj / name)
    for name in ("modules", "utils", "schemas"):
        shutil.copytree(ROOT / name, proj / name, ignore=shutil.ignore_patterns("__pycache__"))
    (proj / ".dvc").mkdir()
    config = (ROOT / ".dvc" / "config").read_text()
    if not git:
        config = config.replace("[core]\n", "[core]\n    no_scm = True\n")  # not a git checkout
    (proj / ".dvc" / "config").write_text(config)
    raw = yaml.safe_load((ROOT / "config.yaml").read_text())  # the copy's own config.yaml, as a user edits it
    raw["sources"]["retrosheet"]["base_url"] = str(mirror)
    raw["data"]["first_season"] = 2021
    raw["model"]["train_seasons"] = 2
    raw["run"]["as_of"] = as_of
    (proj / "config.yaml").write_text(yaml.safe_dump(raw))
    if git:
        shutil.copy(ROOT / ".dvc" / ".gitignore", proj / ".dvc" / ".gitignore")
        for args in (["init", "-q"], ["add", "-A"], ["-c", "user.name=t", "-c", "user.email=t@example.com",
                                                      "commit", "-qm", "project files"]):
            subprocess.run(["git", *args], cwd=proj, check=True, capture_output=True)
    return proj


def run(proj, *args, timeout=600):
    proc = subprocess.run(list(args), cwd=proj, env=ENV, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{args}: {proc.stderr[-2500:]}"
    return proc


@pytest.mark.dvc
def test_dvc_dag_is_the_pipeline_dag(tmp_path, mirror):
    proj = project_copy(tmp_path, mirror, "2024-07-14")
    dot = run(proj, sys.executable, "-m", "dvc", "dag", "--dot").stdout
    edges = set(re.findall(r'"(\w+)" -> "(\w+)"', dot))
    name = {s.id: f"{s.id}_{s.name}" for s in REGISTRY.runnable}
    expected = {(name[u], name[s.id]) for s in REGISTRY.runnable for u in REGISTRY.upstream(s.id)}
    assert edges == expected


@pytest.mark.slow
def test_dvc_repro_runs_every_stage_without_prefect(tmp_path, mirror):
    proj = project_copy(tmp_path, mirror, "2024-07-14")
    out = run(proj, sys.executable, "-m", "dvc", "repro", timeout=900)
    assert "Running stage 'L_predict_monitor'" in out.stdout and "prefect" not in (out.stdout + out.stderr).lower()
    lock = yaml.safe_load((proj / "dvc.lock").read_text())["stages"]
    assert set(lock) == {f"{s.id}_{s.name}" for s in REGISTRY.runnable}
    assert len(ArtifactStore(proj / "artifacts", proj / "schemas").read_frame("predictions")) == 15


@pytest.mark.slow
def test_each_run_is_versioned_and_an_earlier_prediction_table_restores_exactly(tmp_path, mirror):
    """In a real git repository, as every clone is (on cab14e4 `dvc commit` refused the git-ignored dvc.lock)."""
    proj = project_copy(tmp_path, mirror, "2024-07-13", git=True)
    py = [sys.executable, "pipeline.py"]
    run(proj, *py, "run", "--legacy-executor")
    run(proj, *py, "run", "--legacy-executor", "--as-of", "2024-07-14")
    runs = sorted(p for p in (proj / "artifacts" / "runs").iterdir())
    first, second = (json.loads((r / "manifest.json").read_text()) for r in runs)
    assert first["artifacts"]["predictions"] != second["artifacts"]["predictions"]
    assert all((r / "dvc.lock").exists() for r in runs)
    remote = proj / ".dvc-remote" / "files" / "md5"
    assert remote.is_dir() and sum(1 for _ in remote.rglob("*") if _.is_file()) > 20  # pushed
    out = run(proj, *py, "restore", runs[0].name, "predictions")
    assert out.stdout.strip() == f"restored predictions from {runs[0].name}: sha256 {first['artifacts']['predictions']}"
    store = ArtifactStore(proj / "artifacts", proj / "schemas")
    assert store.verify("predictions") == first["artifacts"]["predictions"]
    assert set(store.read_frame("predictions")["date"].dt.strftime("%F")) == {"2024-07-13"}
    shutil.rmtree(proj / ".dvc" / "cache")  # the local cache is gone: the remote still has it
    run(proj, *py, "restore", runs[1].name, "predictions")
    assert store.verify("predictions") == second["artifacts"]["predictions"]
    diff = run(proj, *py, "diff", runs[0].name, runs[1].name).stdout
    version = json.loads((proj / "schemas" / "predictions.schema.json").read_text())["schema_version"]
    assert re.search(rf"^predictions\s+predictions@{re.escape(version)}\s+16 -> 15\s+changed$", diff,
                     flags=re.M)  # 16 games on 07-13
    # both nights publish the fit of the season's retrain day before them (2024-07-10): the same model
    assert re.search(r"^win_model\s+win_model@1.0.0\s+- -> -\s+same$", diff, flags=re.M)
    assert re.search(r"^drift_baseline\s+drift_baseline@[\d.]+\s+- -> -\s+changed$", diff, flags=re.M)
    assert re.search(r"^lahman_pitching\s+lahman_pitching@[\d.]+\s+\d+ -> \d+\s+same$", diff, flags=re.M)
    moved = diff.split("features whose drift score moved most (PSI or tonight's shift, over its normal):\n")[1]
    assert len(re.findall(r"^  [a-z]+_\w+ +\d+\.\d\d -> \d+\.\d\d$", moved, flags=re.M)) == 5
    # a damaged prediction log: L cannot rebuild what it appends to, so the error names the restore
    log_file = proj / "artifacts" / "data" / "prediction_log.parquet"
    log_file.write_bytes(log_file.read_bytes() + b"x")
    proc = subprocess.run([*py, "run", "--legacy-executor", "--as-of", "2024-07-19"], cwd=proj, env=ENV,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1
    way_out = re.search(r"`python (pipeline.py restore (\S+) prediction_log)`$", proc.stderr.strip(), flags=re.M)
    assert way_out and way_out.group(2) == runs[1].name, proc.stderr
    run(proj, *py, *way_out.group(1).split()[1:])
    run(proj, *py, "run", "--legacy-executor", "--as-of", "2024-07-19")
    logged = store.read_frame("prediction_log")["predicted_for"].dt.strftime("%F")
    assert sorted(set(logged)) == ["2024-07-13", "2024-07-14", "2024-07-19"]
    assert "dvc.lock" not in subprocess.run(["git", "check-ignore", "dvc.lock"], cwd=proj, capture_output=True,
                                            text=True).stdout


def test_restore_needs_a_known_run(tmp_path, mirror):
    proj = project_copy(tmp_path, mirror, "2024-07-14")
    proc = subprocess.run([sys.executable, "pipeline.py", "restore", "20240714T101010Z-abcdef", "predictions"],
                          cwd=proj, env=ENV, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "no such run" in proc.stderr
