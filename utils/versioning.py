"""Versioning of each run's artifacts, behind one small interface.

`VersionStore` is what the pipeline needs from a data-versioning system: keep this run's
artifacts, and give back any earlier run's copy of an artifact. The DVC backend commits the
stage outputs of dvc.yaml to the DVC cache, pushes them to the configured remote and keeps the
run's dvc.lock beside its manifest; a lakeFS backend would commit to a branch instead and keep
the commit id (see README).
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Protocol

import yaml

from modules.registry import Registry
from utils.artifacts import ArtifactStore, atomic_write_bytes, atomic_write_text

log = logging.getLogger("mlb.versioning")
DVC_ENV = {"DVC_NO_ANALYTICS": "1"}


class VersioningError(RuntimeError):
    """A version that cannot be kept or found; the message names the run or artifact."""


class VersionStore(Protocol):
    def commit(self, run_dir: Path) -> None:
        """Keep the current artifacts as the version of the run in `run_dir`."""

    def fetch(self, run_dir: Path, relpath: str) -> bytes:
        """The bytes `relpath` (relative to the repository) had in that run."""


def dvc(repo: Path, *args: str, timeout: int = 300) -> str:
    proc = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=repo, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **DVC_ENV})
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        raise VersioningError(f"dvc {' '.join(args)}: {detail[-1] if detail else f'exit {proc.returncode}'}")
    return proc.stdout


class DvcVersionStore:
    def __init__(self, repo: Path, remote: str | None):
        self.repo = Path(repo).resolve()
        self.remote = remote

    def commit(self, run_dir: Path) -> None:
        dvc(self.repo, "commit", "--force", "--quiet")
        shutil.copyfile(self.repo / "dvc.lock", run_dir / "dvc.lock")
        if self.remote:
            dvc(self.repo, "push", "--quiet", "--remote", self.remote)

    def _md5(self, run_dir: Path, relpath: str) -> str:
        lock_file = run_dir / "dvc.lock"
        if not lock_file.exists():
            raise VersioningError(f"{run_dir.name}: no dvc.lock was kept for this run (versioning was off)")
        for stage in yaml.safe_load(lock_file.read_text())["stages"].values():
            for out in stage.get("outs", []):
                if out["path"] == relpath:
                    return out["md5"]
        raise VersioningError(f"{run_dir.name}: '{relpath}' is not among the run's versioned outputs")

    def remote_folder(self) -> Path | None:
        """The remote's folder when it is a local path (DVC keeps relative URLs relative to .dvc/)."""
        if not self.remote:
            return None
        url = dvc(self.repo, "config", f"remote.{self.remote}.url").strip()
        return None if "://" in url else (self.repo / ".dvc" / url).resolve()  # an absolute url stays as it is

    def fetch(self, run_dir: Path, relpath: str) -> bytes:
        """From the cache, else from the remote; `dvc fetch` only knows the current dvc.lock's versions,
        so an earlier run's object is read by its md5 from a folder remote."""
        md5 = self._md5(run_dir, relpath)
        key = Path("files") / "md5" / md5[:2] / md5[2:]
        for base in (self.repo / ".dvc" / "cache", self.remote_folder()):
            if base is not None and (base / key).exists():
                return (base / key).read_bytes()
        raise VersioningError(f"{relpath}@{run_dir.name}: md5 {md5} is in neither the DVC cache nor the remote")


def version_store(cfg, repo: Path | None = None) -> DvcVersionStore | None:
    """The configured backend, or None when off or when the artifacts root is not the tracked one."""
    repo = Path(repo or Path.cwd()).resolve()
    if cfg.versioning.backend == "none":
        return None
    tracked = repo / "artifacts"
    if not (repo / ".dvc").is_dir() or not (repo / "dvc.yaml").exists():
        log.warning("versioning: %s is not a DVC repository with dvc.yaml; run not versioned", repo)
        return None
    if Path(cfg.paths.artifacts).resolve() != tracked:
        log.warning("versioning: dvc.yaml tracks %s, not %s; run not versioned", tracked, cfg.paths.artifacts)
        return None
    return DvcVersionStore(repo, cfg.versioning.remote)


def restore(store: ArtifactStore, versions: VersionStore, run_dir: Path, name: str, repo: Path) -> str:
    """Put run `run_dir`'s copy of an artifact (and its sidecar) back in place; returns its SHA-256."""
    manifest = json.loads((run_dir / "manifest.json").read_text())["artifacts"]
    if name not in manifest:
        raise VersioningError(f"{run_dir.name}: the run wrote no artifact '{name}'")
    path, meta = store.resolve_output_path(name), store.meta_path(name)
    payload = versions.fetch(run_dir, str(path.resolve().relative_to(repo.resolve())))
    sidecar = versions.fetch(run_dir, str(meta.resolve().relative_to(repo.resolve())))
    atomic_write_bytes(path, payload)
    atomic_write_bytes(meta, sidecar)
    digest = store.verify(name)
    if digest != manifest[name]:
        raise VersioningError(f"{name}@{run_dir.name}: restored SHA-256 {digest[:12]}… differs from the "
                              f"manifest's {manifest[name][:12]}…")
    return digest


def dvc_yaml(registry: Registry, store: ArtifactStore) -> str:
    """One DVC stage per module, from the registry; commands never start Prefect or nest DVC."""
    def rel(name: str) -> str:
        return str(Path("artifacts") / "data" / store.resolve_output_path(name).name)

    stages = {}
    for spec in registry.runnable:
        outs = []
        for name in spec.outputs:
            out = {rel(name): {"persist": True}} if name == "prediction_log" else rel(name)
            outs += [out, rel(name) + ".meta.json"]
        stages[f"{spec.id}_{spec.name}"] = {
            "cmd": f"PYTHONPATH=. python pipeline.py run --modules {spec.id} --legacy-executor --overwrite-policy overwrite "
                   f"--set versioning.backend=none",
            "deps": [f"{spec.target.replace('.', '/')}.py", "config.yaml", *(rel(n) for n in spec.inputs)],
            "outs": outs,
        }
    header = "# Generated from modules/registry.py by `python pipeline.py dvc-yaml`; do not edit by hand.\n"
    return header + yaml.safe_dump({"stages": stages}, sort_keys=False)


def write_text_if_changed(path: Path, text: str) -> bool:
    if path.exists() and path.read_text() == text:
        return False
    atomic_write_text(path, text)
    return True
