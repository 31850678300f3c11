"""Versioning of each run's artifacts, behind one small interface.

`VersionStore` is what the pipeline needs from a data-versioning system: keep this run's
artifacts, and give back any earlier run's copy of an artifact. The DVC backend commits the
stage outputs of dvc.yaml to the DVC cache, pushes them to the configured remote and keeps the
run's dvc.lock beside its manifest; a lakeFS backend would commit to a branch instead and keep
the commit id (docs/operations.md).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Protocol

import yaml

from phase_status import StatusError, load_status
from utils.engine.stages import PROJECT_ROOT, PostRunHook, Registry, StepFailed
from utils.store.artifacts import ArtifactStore, atomic_write_bytes, atomic_write_text, staged_writes
from utils.store.catalog import RUN_FILES, ArtifactError, Catalog

log = logging.getLogger("mlb.versioning")
DVC_ENV = {"DVC_NO_ANALYTICS": "1"}
TRACKED_ROOT = Path("artifacts")  # the artifacts root dvc.yaml tracks, relative to the repository


class VersioningError(RuntimeError):
    """A version that cannot be kept or found; the message names the run or artifact."""


class VersionStore(Protocol):
    repo: Path  # the repository whose artifacts root is versioned

    def commit(self, run_dir: Path) -> None:
        """Keep the current artifacts as the version of the run in `run_dir`."""

    def fetch(self, run_dir: Path, relpath: str) -> bytes:
        """The bytes `relpath` (relative to the repository) had in that run."""


MD5 = re.compile(r"[0-9a-f]{32}")


def dvc(repo: Path, *args: str, timeout: int = 300) -> str:
    """Run DVC in `repo`; VersioningError carrying DVC's own reason (its ERROR line) when it fails."""
    try:
        proc = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=repo, capture_output=True, text=True,
                              timeout=timeout, env={**os.environ, **DVC_ENV})
    except subprocess.TimeoutExpired:
        raise VersioningError(f"dvc {' '.join(args)}: no answer within {timeout}s") from None
    if proc.returncode != 0:
        lines = [line.strip() for line in (proc.stderr + "\n" + proc.stdout).splitlines() if line.strip()]
        errors = [line for line in lines if line.startswith("ERROR")]
        reason = " ".join((errors or lines[-1:] or [f"exit {proc.returncode}"])[0].split())
        raise VersioningError(f"dvc {' '.join(args)}: {reason}")
    return proc.stdout


class DvcVersionStore:
    def __init__(self, repo: Path, remote: str | None):
        self.repo = Path(repo).resolve()
        self.remote = remote

    def commit(self, run_dir: Path) -> None:
        dvc(self.repo, "commit", "--force")
        atomic_write_bytes(run_dir / RUN_FILES["dvc_lock"], (self.repo / "dvc.lock").read_bytes())
        if self.remote:
            dvc(self.repo, "push", "--remote", self.remote)

    def _md5(self, run_dir: Path, relpath: str) -> str:
        lock_file = run_dir / RUN_FILES["dvc_lock"]
        if not lock_file.exists():
            raise VersioningError(f"{run_dir.name}: no dvc.lock was kept for this run ({_why_unversioned(run_dir)})")
        try:
            stages = yaml.safe_load(lock_file.read_text())["stages"]
            outs = [out for stage in stages.values() for out in stage.get("outs", [])]
            md5 = next((out["md5"] for out in outs if out["path"] == relpath), None)
        except (OSError, UnicodeDecodeError, yaml.YAMLError, KeyError, TypeError, AttributeError, ValueError,
                RecursionError):
            raise VersioningError(f"{lock_file}: not a dvc.lock this pipeline wrote") from None
        if md5 is None:
            raise VersioningError(f"{run_dir.name}: '{relpath}' is not among the run's versioned outputs")
        if not isinstance(md5, str) or not MD5.fullmatch(md5):  # it becomes a path: nothing but 32 hex digits
            raise VersioningError(f"{lock_file}: md5 of '{relpath}' is not 32 hex digits")
        return md5

    def remote_folder(self) -> Path | None:
        """The remote's folder when it is a local path (DVC keeps relative URLs relative to .dvc/)."""
        if not self.remote:
            return None
        url = dvc(self.repo, "config", f"remote.{self.remote}.url").strip()
        return None if "://" in url else (self.repo / ".dvc" / url).resolve()  # an absolute url stays as it is

    def cache_folder(self) -> Path:
        """The DVC cache as DVC is configured (`.dvc/cache` unless `cache.dir` says otherwise)."""
        return Path(dvc(self.repo, "cache", "dir").strip())

    def fetch(self, run_dir: Path, relpath: str) -> bytes:
        """From the cache, else from the remote; `dvc fetch` only knows the current dvc.lock's versions,
        so an earlier run's object is read by its md5 from a folder remote. A copy whose bytes do not
        hash to that md5 (a corrupted object) is passed over."""
        md5 = self._md5(run_dir, relpath)
        key = Path("files") / "md5" / md5[:2] / md5[2:]
        corrupt = []
        for base in (self.cache_folder(), self.remote_folder()):
            if base is None or not (base / key).is_file():
                continue
            payload = (base / key).read_bytes()
            if hashlib.md5(payload).hexdigest() == md5:
                return payload
            corrupt.append(str(base / key))
        where = f"; corrupted copies: {', '.join(corrupt)}" if corrupt else ""
        raise VersioningError(f"{relpath}@{run_dir.name}: no sound copy of md5 {md5} in the DVC cache or the remote"
                              f"{where}")


def version_store(cfg, repo: Path | None = None) -> DvcVersionStore | None:
    """The configured backend, or None when off or when the artifacts root is not the tracked one."""
    repo = Path(repo or Path.cwd()).resolve()
    if cfg.versioning.backend == "none":
        return None
    tracked = repo / TRACKED_ROOT
    if not (repo / ".dvc").is_dir() or not (repo / "dvc.yaml").exists():
        log.warning("versioning: %s is not a DVC repository with dvc.yaml; run not versioned", repo)
        return None
    if Path(cfg.paths.artifacts).resolve() != tracked:
        log.warning("versioning: dvc.yaml tracks %s, not %s; run not versioned", tracked, cfg.paths.artifacts)
        return None
    return DvcVersionStore(repo, cfg.versioning.remote)


def _why_unversioned(run_dir: Path) -> str:
    """What the run's own status says about its versioning step."""
    try:
        step = load_status(run_dir / RUN_FILES["status"]).steps.get("versioning")
    except StatusError:
        step = None
    if step is None:
        return "its status does not say why"
    if step.status == "failed":
        return f"versioning failed: {step.error}"
    if step.status == "skipped":
        return f"not versioned: {step.error}"
    return f"versioning was {step.status}"


def latest_versioned_run(root: Path, name: str) -> str | None:
    """The newest run under `root/runs` that versioned artifact `name` (it kept a dvc.lock), if any."""
    catalog = Catalog(root)
    for run_id in reversed(catalog.run_ids()):
        try:
            written = json.loads(catalog.run_file(run_id, "manifest").read_text())["artifacts"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if catalog.run_file(run_id, "dvc_lock").is_file() and isinstance(written, dict) and name in written:
            return run_id
    return None


def restore(store: ArtifactStore, versions: VersionStore, run_dir: Path, name: str) -> str:
    """Put run `run_dir`'s copy of an artifact (and its sidecar) back in place; returns its SHA-256.

    Both copies are checked against the run's manifest *before* anything is replaced, then renamed
    into place together: a corrupted or forged copy leaves the current artifact as it was."""
    try:
        manifest = json.loads((run_dir / RUN_FILES["manifest"]).read_text())["artifacts"]
        expected = manifest.get(name)
    except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError):
        raise VersioningError(f"{run_dir / RUN_FILES['manifest']}: not a manifest this pipeline wrote") from None
    if not isinstance(expected, str):
        raise VersioningError(f"{run_dir.name}: the run wrote no artifact '{name}'")
    path, meta = store.resolve_output_path(name), store.meta_path(name)
    payload = versions.fetch(run_dir, tracked_relpath(store, name))
    sidecar = versions.fetch(run_dir, tracked_relpath(store, name) + ".meta.json")
    digest = hashlib.sha256(payload).hexdigest()
    try:
        stored = json.loads(sidecar)
        recorded, made_as = stored.get("sha256"), (stored.get("name"), str(stored.get("validator")).split("@")[0])
    except (UnicodeDecodeError, json.JSONDecodeError, AttributeError, RecursionError):
        recorded, made_as = None, None
    if digest != expected or recorded != expected:
        raise VersioningError(f"{name}@{run_dir.name}: the stored copy (SHA-256 {digest[:12]}…) does not match the "
                              f"run's manifest ({expected[:12]}…); the current '{name}' is left as it is")
    if made_as != (name, store.contract(name).name):  # a forged run folder naming another artifact's copy
        said = str(made_as and made_as[0])[:40]
        raise VersioningError(f"{name}@{run_dir.name}: the stored copy's sidecar says it is '{said}', not "
                              f"'{name}'; the current '{name}' is left as it is")
    with staged_writes() as staging:
        staging.stage(path, payload)
        staging.stage(meta, sidecar)
        staging.commit()
    return store.verify(name)


def tracked_relpath(store: ArtifactStore, name: str) -> str:
    """An artifact's path as dvc.yaml and dvc.lock name it, relative to the repository."""
    return str(TRACKED_ROOT / store.catalog.data_relpath(name))


def diff_runs(store: ArtifactStore, versions: VersionStore | None, runs: list[Path]) -> str:
    """Two runs side by side per artifact (schema version, rows, hash), and, when both runs were
    versioned, the features whose drift score moved most between their drift reports."""
    outputs = []
    for run_dir in runs:
        status = load_status(run_dir / RUN_FILES["status"])
        outputs.append({o.name: o for p in status.phases.values() for o in p.outputs})
    lines = [f"{'artifact':22s} {'schema':24s} {'rows':>17s}  hash"]
    for name in sorted(set(outputs[0]) | set(outputs[1])):
        a, b = outputs[0].get(name), outputs[1].get(name)
        schema = a.validator if a and b and a.validator == b.validator else \
            f"{a.validator if a else '-'} -> {b.validator if b else '-'}"
        rows = " -> ".join("-" if out is None or out.rows is None else str(out.rows) for out in (a, b))
        same = "same" if a and b and a.sha256 == b.sha256 else "changed"
        lines.append(f"{name:22s} {schema:24s} {rows:>17s}  {same}")
    if versions is None:
        return "\n".join(lines + ["(drift comparison needs the DVC versions of both runs' drift reports)"])
    try:
        reports = [drift_scores(json.loads(versions.fetch(run_dir, tracked_relpath(store, "drift_report"))))
                   for run_dir in runs]
        moved = sorted(set(reports[0]) & set(reports[1]), key=lambda f: -abs(reports[1][f] - reports[0][f]))
        lines.append("features whose drift score moved most (PSI or tonight's shift, over its normal):")
        lines += [f"  {f:32s} {reports[0][f]:.2f} -> {reports[1][f]:.2f}" for f in moved[:5]]
    except VersioningError as exc:
        lines.append(f"(no drift comparison: {exc})")
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError):  # not a drift report of ours
        lines.append("(no drift comparison: a stored drift report is not one this pipeline wrote)")
    return "\n".join(lines)


def drift_scores(report: dict) -> dict[str, float]:
    """Feature -> its larger drift score of the two views (a report of schema 2)."""
    return {name: max(s["psi_score"] or 0.0, s["shift_score"] or 0.0) for name, s in report["features"].items()}


def dvc_yaml(registry: Registry, store: ArtifactStore) -> str:
    """One DVC stage per module, from the registry; commands never start Prefect or nest DVC."""
    def rel(name: str) -> str:
        return tracked_relpath(store, name)

    stages = {}
    for spec in registry.runnable:
        outs = []
        for name in spec.outputs:
            out = {rel(name): {"persist": True}} if name in spec.appends else rel(name)
            outs += [out, rel(name) + ".meta.json"]
        # its code as code_version hashes it: the module's file and the project modules it imports
        code = [path.relative_to(PROJECT_ROOT).as_posix() for path in spec.code_files()]
        stages[f"{spec.id}_{spec.name}"] = {
            "cmd": f"PYTHONPATH=. python pipeline.py run --modules {spec.id} --legacy-executor "
                   "--overwrite-policy overwrite --set versioning.backend=none",
            "deps": [*code, "config.yaml", *(rel(n) for n in spec.inputs)],
            "outs": outs,
        }
    header = "# Generated from modules/registry.py by `python pipeline.py dvc-yaml`; do not edit by hand.\n"
    return header + yaml.safe_dump({"stages": stages}, sort_keys=False)


def sync_dvc_yaml(registry: Registry, path: Path, check: bool) -> str:
    """Write dvc.yaml from the registry, or (check) say whether it matches; VersioningError if it does not."""
    text = dvc_yaml(registry, ArtifactStore(TRACKED_ROOT, Path("schemas")))
    if check:
        if (path.read_text() if path.exists() else "") != text:
            raise VersioningError(f"{path} differs from the registry; run `python pipeline.py dvc-yaml`")
        return f"{path} matches the registry"
    return f"wrote {path}" if write_text_if_changed(path, text) else f"{path} unchanged"


def write_text_if_changed(path: Path, text: str) -> bool:
    if path.exists() and path.read_text() == text:
        return False
    atomic_write_text(path, text)
    return True


def diff_run_ids(cfg, run_a: str, run_b: str) -> str:
    """`pipeline.py diff`: two runs named by id, compared by `diff_runs`."""
    store = ArtifactStore.from_config(cfg)
    return diff_runs(store, version_store(cfg), [existing_run(store.catalog, run_id) for run_id in (run_a, run_b)])


def existing_run(catalog: Catalog, run_id: str) -> Path:
    """The folder of a run that exists: an id of the pipeline's own format, inside the root, no link.
    RunNotFound (exit 2) otherwise."""
    try:
        run_dir, manifest = catalog.run_dir(run_id), catalog.run_file(run_id, "manifest")
    except ArtifactError as exc:
        if "is not a run id" in str(exc):
            raise RunNotFound(f"{exc}; see `python pipeline.py runs`") from None
        raise
    if not manifest.is_file():
        raise RunNotFound(f"{run_dir}: no such run (see `python pipeline.py runs`)")
    return run_dir


class NotAnArtifact(ValueError):
    """`restore` was asked for a name that is no artifact of this pipeline (exit 2, bad usage)."""


class RunNotFound(ValueError):
    """A run id that is malformed or names no run (exit 2)."""


def restore_artifacts(cfg, run_id: str, names: list[str]) -> list[str]:
    """Put run `run_id`'s versions of `names` back, under the run lock; a line per artifact restored."""
    from utils.store.locking import RunLock
    from utils.store.schema import ARTIFACT_NAME

    store = ArtifactStore.from_config(cfg)
    for name in names:  # a name no contract has is a misspelling, told before the run is looked for
        if not ARTIFACT_NAME.fullmatch(name) or not (Path(store.schema_dir) / f"{name}.schema.json").exists():
            raise NotAnArtifact(f"'{str(name)[:80]}' is not an artifact of this pipeline (its outputs are "
                                "listed by `python pipeline.py dag`)")
        store.contract(name)  # a contract that cannot be read is its own error, naming its file
    run_dir = existing_run(store.catalog, run_id)
    versions = version_store(cfg)
    if versions is None:
        raise RunNotFound("versioning is off or does not track this artifacts root; nothing to restore from")
    lines = []
    with RunLock(store.root):
        for name in names:
            digest = restore(store, versions, run_dir, name)
            lines.append(f"restored {name} from {run_id}: sha256 {digest}")
    return lines


def version_run(cfg, run_dir: Path, status, store) -> tuple[str, str | None]:
    """The versioning step: commit the run's artifacts when every module succeeded."""
    versions = version_store(cfg)
    if versions is None:
        return "off", None
    if not status.modules_ok:
        return "skipped", "not every module succeeded"
    try:
        versions.commit(run_dir)
    except (VersioningError, ArtifactError, OSError) as exc:
        raise StepFailed(str(exc)) from None
    return "success", None


VERSIONING = PostRunHook("versioning", version_run)
