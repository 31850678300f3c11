"""What an output was made from, and whether it still is: the 'skip' policy's notion of up to date.

Each output's sidecar records its stage's lineage: the SHA-256 of every input, the values of the
config keys bound to the stage, and the stage's code version (the hash of its function's source
file), as `dvc.lock` records deps and params, and Dagster data and code versions. Under 'skip' an
output is kept only when all three still match; the dry run says which changed. A stage that reads
sources outside the root (A: the game logs, the play-by-play, Lahman, the Stats API) is never kept:
it runs, and the stages after it are kept when its outputs come out the same bytes.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from utils.engine.stages import ModuleSpec
from utils.store.artifacts import ArtifactStore


def config_value(cfg, dotted: str) -> Any:
    """The value at a dotted config key, e.g. 'features.form' (a frozen section) or 'run.as_of'."""
    value = cfg
    for part in dotted.split("."):
        value = getattr(value, part)
    return value


def stage_params(cfg, spec: ModuleSpec) -> dict[str, Any]:
    """The stage's parameter arguments, from its bindings."""
    return {arg: config_value(cfg, dotted) for arg, dotted in spec.params.items()}


def plain(value: Any) -> Any:
    """A parameter as JSON can hold it (for the sidecar and for comparing)."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, (dt.date, Path)):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    return value


def lineage(spec: ModuleSpec, params: dict[str, Any], input_hashes: dict[str, str]) -> dict:
    return {"code": spec.code_version(), "params": {k: plain(v) for k, v in sorted(params.items())},
            "inputs": dict(sorted(input_hashes.items()))}


def stale_reason(cfg, spec: ModuleSpec, store: ArtifactStore) -> str | None:
    """Why the stage's present outputs are not up to date, or None when they are (every output
    hash-valid, from one write, and made from today's inputs, parameters and code)."""
    if spec.external:  # re-run, its outputs come out the same bytes when its sources did not change, and
        # the stages after it, whose lineage is those bytes' hashes, are kept
        return f"it reads {', '.join(spec.external)} from outside the artifacts root, which no hash here vouches for"
    metas = {}
    for name in spec.outputs:
        if store.valid_hash(name) is None:
            return f"{name} is missing or does not match its hash"
        metas[name] = store.meta(name)
    if len({m.get("batch") for m in metas.values()}) > 1:
        return "its outputs come from different writes"
    inputs = {}
    for name in spec.inputs:
        inputs[name] = store.valid_hash(name)
        if inputs[name] is None:
            return f"input {name} is missing or does not match its hash"
    now = lineage(spec, stage_params(cfg, spec), inputs)
    made = metas[spec.outputs[0]].get("lineage") or {}
    if not made:
        return "it records no lineage (written before lineage was kept)"
    changed = [f"input {n}" for n in now["inputs"] if made.get("inputs", {}).get(n) != now["inputs"][n]]
    changed += [f"parameter {k}" for k in now["params"] if made.get("params", {}).get(k) != now["params"][k]]
    if made.get("code") != now["code"]:
        changed.append(f"the code of {spec.module}")
    return f"changed since it was made: {', '.join(changed)}" if changed else None
