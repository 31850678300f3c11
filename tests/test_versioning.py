"""The DVC version store in-process, on a real DVC repository in a temp folder."""
import json
import os
import shutil

import pytest

from tests.conftest import TOY_SCHEMAS
from utils.config import build_config
from utils.engine.versioning import DvcVersionStore, VersioningError, restore, version_store
from utils.store.artifacts import ArtifactStore

pytestmark = pytest.mark.dvc
ENV = {**os.environ, "DVC_NO_ANALYTICS": "1"}


def version(store, versions, root, run_id, total):
    record = store.write_json("summary", {"total": total})
    run_dir = root / "artifacts" / "runs" / run_id
    run_dir.mkdir(parents=True)
    (run_dir / "manifest.json").write_text(json.dumps({"artifacts": {"summary": record.sha256}}))
    versions.commit(run_dir)
    return run_dir


def test_commit_push_and_restore_an_earlier_version(repo, tmp_path):
    store = ArtifactStore(repo / "artifacts", TOY_SCHEMAS)
    versions = DvcVersionStore(repo, "local")
    first = version(store, versions, repo, "r1", 1)
    second = version(store, versions, repo, "r2", 2)
    assert (first / "dvc.lock").exists() and (tmp_path / "remote" / "files" / "md5").is_dir()
    digest = restore(store, versions, first, "summary")
    assert store.read_json("summary") == {"total": 1} and digest == store.verify("summary")
    shutil.rmtree(repo / ".dvc" / "cache")  # only the remote has the objects now
    restore(store, versions, second, "summary")
    assert store.read_json("summary") == {"total": 2}


def test_clear_errors(repo):
    store = ArtifactStore(repo / "artifacts", TOY_SCHEMAS)
    versions = DvcVersionStore(repo, "local")
    run_dir = version(store, versions, repo, "r1", 1)
    with pytest.raises(VersioningError, match="r1: the run wrote no artifact 'numbers'"):
        restore(store, versions, run_dir, "numbers")
    with pytest.raises(VersioningError, match="'artifacts/data/x.json' is not among the run's versioned outputs"):
        versions.fetch(run_dir, "artifacts/data/x.json")
    bare = repo / "artifacts" / "runs" / "r0"
    bare.mkdir()
    with pytest.raises(VersioningError, match="r0: no dvc.lock was kept for this run"):
        versions.fetch(bare, "artifacts/data/summary.json")
    lost = DvcVersionStore(repo, None)
    shutil.rmtree(repo / ".dvc" / "cache")
    with pytest.raises(VersioningError, match="no sound copy of md5 [0-9a-f]{32} in the DVC cache or the remote$"):
        lost.fetch(run_dir, "artifacts/data/summary.json")
    with pytest.raises(VersioningError, match=r"^dvc push --remote nowhere: ERROR: .*nowhere"):
        DvcVersionStore(repo, "nowhere").commit(run_dir)


def test_version_store_only_for_the_tracked_root(repo, tmp_path):
    def cfg(artifacts, backend="dvc"):
        return build_config({"paths": {"artifacts": str(artifacts)}, "versioning": {"backend": backend}})

    assert isinstance(version_store(cfg(repo / "artifacts"), repo), DvcVersionStore)
    assert version_store(cfg(repo / "artifacts", "none"), repo) is None
    assert version_store(cfg(tmp_path / "elsewhere"), repo) is None
    assert version_store(cfg(tmp_path / "artifacts"), tmp_path) is None  # not a DVC repository
