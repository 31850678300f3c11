"""Settled history kept: a feature stage rebuilds only the rows of games on or after the first day its inputs changed.

A game's feature row depends on the results known before the game's date and on the rows of its own
day (the as-of rule, which the leakage tests prove), so the row of a game dated before every change
to the stage's inputs is what a from-scratch build would make again, byte for byte. A stage that
declares `history` (its dated inputs, each with a `date` column; the first has one row per output row,
matched on `history_key`, and gives their order) is run like this:

- Each run records in the cache a manifest of the outputs it wrote (`history-<stage>-<root>-<key>.json`,
  one per stage and artifacts root, keyed by the output's SHA-256): a digest of every day's input rows
  (each row's hash, in the input's order, since the order of a day's rows is the order sums are taken
  in), and a key of everything else the rows are made from: the stage's code version, its parameters,
  the versions of numpy, pandas and pyarrow, the hashes of its undated inputs (Lahman) and the columns
  of its dated ones.
- The next run finds the manifest of the outputs on disk (hash-checked). If the key is the same, the
  first day whose digest differs (a new result, a corrected game, a season the Stats API supplied
  and Retrosheet has now published) is `since`: the stage function computes only the rows of games
  dated on or after it (`since=`), the runner keeps the previous rows of the games before it, and
  puts them in the order of the first dated input's rows. Any other difference, a missing or damaged
  manifest, or `run.reuse_history: false` rebuilds every row.

The kept rows are read from the outputs' own hash-checked files, so nothing is reused that a
from-scratch build would not make again; the tests compare the two, night after night. One thing the
digests assume: rows of different days keep their relative order (sums over lines sharing a result
day, a suspended game's and the day's own, are taken in the input's order). A writes them season by
season, each season in its files' order, so the same rows come in the same order; a season whose
rows change (the Stats API's replaced by Retrosheet's) changes its days' digests from its first day.
"""
from __future__ import annotations

import hashlib
import json
import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from utils.engine.stages import ModuleSpec
from utils.store.artifacts import ArtifactError, ArtifactStore
from utils.store.cache import ContentCache

log = logging.getLogger("mlb.history")

MANIFEST_VERSION = 1
DATE_COLUMN = "date"


def _stem(spec: ModuleSpec, store: ArtifactStore) -> str:
    """One manifest per stage and artifacts root (a backtest's seasons and the tests' roots share a cache)."""
    return f"history-{spec.id}-{ContentCache.key(str(store.root.resolve()))[:8]}"


def day_digests(frame) -> dict[str, str]:
    """Per day of `date`: a digest of that day's rows (each row's hash, in the frame's order)."""
    import numpy as np
    import pandas as pd

    rows = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    days = pd.to_datetime(frame[DATE_COLUMN]).to_numpy(dtype="datetime64[D]")
    if np.isnat(days).any():
        raise ValueError(f"{int(np.isnat(days).sum())} row(s) have no {DATE_COLUMN}")
    order = np.argsort(days, kind="stable")
    days, rows = days[order], rows[order]
    unique, starts = np.unique(days, return_index=True)
    ends = np.r_[starts[1:], len(rows)].astype(int)
    return {str(day): hashlib.sha256(rows[s:e].tobytes()).hexdigest()[:16] for day, s, e in zip(unique, starts, ends)}


_DIGESTS: dict[tuple[str, tuple[str, ...]], dict[str, str]] = {}  # the last few inputs' (file hash, columns)
_DIGESTS_LOCK = threading.Lock()


def input_day_digests(frame, sha256: str | None) -> dict[str, str]:
    """`day_digests` of an input loaded from the file with this SHA-256: computed once a process for the
    same file and columns (C, D, F and H each plan on `games`). A frame whose file hash is not known is
    digested every time."""
    if not sha256:
        return day_digests(frame)
    key = (sha256, tuple(str(c) for c in frame.columns))
    with _DIGESTS_LOCK:
        known = _DIGESTS.get(key)
    if known is None:
        known = day_digests(frame)
        with _DIGESTS_LOCK:
            while len(_DIGESTS) >= 8:  # a run's dated inputs, a few column sets each
                _DIGESTS.pop(next(iter(_DIGESTS)))
            _DIGESTS[key] = known
    return dict(known)


def columns_digest(frame) -> str:
    """The frame's column names and dtypes: a new or retyped column changes every row's meaning."""
    return hashlib.sha256(json.dumps([[str(c), str(t)] for c, t in frame.dtypes.items()]).encode()).hexdigest()[:16]


def first_changed(old: dict[str, dict[str, str]], new: dict[str, dict[str, str]]) -> str | None:
    """The first day (YYYY-MM-DD) on which any dated input's rows differ between two manifests' days;
    None when none does."""
    changed = [day for name in set(old) | set(new)
               for day in set(old.get(name, {})) | set(new.get(name, {}))
               if old.get(name, {}).get(day) != new.get(name, {}).get(day)]
    return min(changed) if changed else None


def libraries() -> dict[str, str]:
    """The versions of the libraries the rows' arithmetic is done by: an upgrade rebuilds every row."""
    from importlib.metadata import version

    return {name: version(name) for name in ("numpy", "pandas", "pyarrow")}


def lineage_key(spec: ModuleSpec, made: dict, frames: dict[str, Any] | None = None) -> dict:
    """What the rows are made from besides the days of the dated inputs (without the dated inputs'
    columns when their frames are not given: the dry run reads no input)."""
    key = {"code": made["code"], "params": made["params"], "libraries": libraries(),
           "inputs": {n: h for n, h in made["inputs"].items() if n not in spec.history}}
    return key if frames is None else {**key, "columns": {n: columns_digest(frames[n]) for n in spec.history}}


def _differences(old: dict, new: dict) -> list[str]:
    said = []
    if old.get("code") != new["code"]:
        said.append("the stage's code")
    said += [f"parameter {k}" for k in new["params"] if old.get("params", {}).get(k) != new["params"][k]]
    said += [f"{n} {old.get('libraries', {}).get(n)} -> {v}" for n, v in new.get("libraries", {}).items()
             if old.get("libraries", {}).get(n) != v]
    said += [f"input {n}" for n in new["inputs"] if old.get("inputs", {}).get(n) != new["inputs"][n]]
    said += [f"the columns of {n}" for n in new["columns"] if old.get("columns", {}).get(n) != new["columns"][n]]
    return said or ["what it is made from"]


@dataclass
class Reuse:
    """What a run keeps of a stage's previous rows."""
    since: str | None  # rebuild the rows of games dated on or after this day; None: every row
    reason: str
    manifest: dict
    outputs: dict[str, str] = field(default_factory=dict)  # the previous outputs' SHA-256: their earlier rows are kept

    def kept(self, store: ArtifactStore, name: str):
        """The previous output `name`, whose rows before `since` are kept: read for the merge, after the stage
        function ran (not held through it: a night's F would carry its 80,000 old rows through its peak), and
        only if it is still the file the record describes (ArtifactError otherwise)."""
        frame, digest = store.load(name)
        if digest != self.outputs[name]:
            raise ArtifactError(f"{name} changed after its record was made")
        return frame


def previous_manifest(store: ArtifactStore, spec: ModuleSpec) -> tuple[dict | None, str]:
    """The manifest recorded for the stage's outputs on disk, or None and why not (no file is parsed)."""
    metas = {}
    for name in spec.outputs:
        try:
            metas[name] = store.meta(name)
        except ArtifactError:
            metas[name] = None
        if not metas[name] or not store.resolve_output_path(name).exists():
            return None, f"{name} has not been built"
    cache = ContentCache(store.cache_dir("history"))
    key = metas[spec.outputs[0]]["sha256"][:16]
    payload = cache.get_keyed(_stem(spec, store), key, ".json")
    if payload is None:
        return None, "no record of the days its rows were built from"
    try:
        manifest = json.loads(payload)
        if manifest.get("version") != MANIFEST_VERSION or manifest.get("outputs") != {
                n: m["sha256"] for n, m in metas.items()}:
            return None, "its record belongs to other outputs"
    except (ValueError, AttributeError, TypeError):
        return None, "its record cannot be read"
    if not isinstance(manifest.get("key"), dict) or not isinstance(manifest.get("days"), dict):
        return None, "its record cannot be read"
    return manifest, ""


def plan(cfg, store: ArtifactStore, spec: ModuleSpec, frames: dict[str, Any], made: dict) -> Reuse:
    """Which rows this run rebuilds (`since`), given the inputs loaded for it and its lineage `made`."""
    manifest = {"version": MANIFEST_VERSION, "stage": spec.id, "key": lineage_key(spec, made, frames),
                "days": {n: input_day_digests(frames[n], made.get("inputs", {}).get(n)) for n in spec.history}}
    if not getattr(cfg.run, "reuse_history", True):
        return Reuse(None, "run.reuse_history is false", manifest)
    old, why = previous_manifest(store, spec)
    if old is None:
        return Reuse(None, why, manifest)
    try:
        if old["key"] != manifest["key"]:
            changed = ", ".join(_differences(old["key"], manifest["key"]))
            return Reuse(None, f"changed since the rows were built: {changed}", manifest)
        since = first_changed(old["days"], manifest["days"])
    except (KeyError, TypeError, AttributeError):
        return Reuse(None, "its record cannot be read", manifest)
    if since is None:  # nothing changed: every row is kept (the function still runs, on no game)
        since = "9999-12-31"
    for name in spec.outputs:  # the very files the record describes: their hash checked now, read for the merge
        try:
            store.verify(name)
        except ArtifactError as exc:
            return Reuse(None, str(exc), manifest)
    return Reuse(since, f"its inputs are unchanged before {since}", manifest, dict(old["outputs"]))


def describe(cfg, store: ArtifactStore, spec: ModuleSpec, made: dict) -> str:
    """For the dry run (before any input is read): whether the stage will keep its settled rows, and if
    not, why. `made` is its lineage with the inputs as they are on disk."""
    if not getattr(cfg.run, "reuse_history", True):
        return "every row rebuilt: run.reuse_history is false"
    old, why = previous_manifest(store, spec)
    if old is None:
        return f"every row rebuilt: {why}"
    now = lineage_key(spec, made)
    changed = [d for d in _differences(old["key"], {**now, "columns": old["key"].get("columns", {})})
               if d != "what it is made from"]
    if changed:
        return f"every row rebuilt: changed since the rows were built: {', '.join(changed)}"
    last = max((day for days in old["days"].values() for day in days), default="none")
    return (f"rows kept up to the first day its inputs change (they were built from games up to {last}), "
            f"the rest rebuilt")


def merge(kept, new, rows, since: str, key: str):
    """The previous rows of the `rows` (the stage's first dated input, one output row each, matched on
    `key`) dated before `since`, then the new rows, in `rows`' order."""
    import pandas as pd

    ids = rows[key].astype(str).to_numpy()
    before = (pd.to_datetime(rows[DATE_COLUMN]) < pd.Timestamp(since)).to_numpy()
    old = kept.set_axis(kept[key].astype(str).to_numpy())
    wanted = pd.Index(ids[before])
    if not old.index.equals(wanted):  # reordered (or rows dropped) only when they are not already so: a copy less
        missing = wanted.difference(old.index)
        if len(missing):
            raise ArtifactError(f"the kept rows lack {key} {list(missing[:3])}")
        old = old.loc[wanted]
    fresh = new.set_axis(new[key].astype(str).to_numpy())
    both = pd.concat([old, fresh.astype(old.dtypes.to_dict())]) if len(fresh) else old
    if both.index.has_duplicates:
        raise ArtifactError(f"{key} {sorted(set(both.index[both.index.duplicated()]))[:3]} built twice")
    return (both if both.index.equals(pd.Index(ids)) else both.loc[ids]).reset_index(drop=True)


def record(store: ArtifactStore, spec: ModuleSpec, reuse: Reuse, records) -> None:
    """Keep the manifest of the outputs just written; a cache that cannot be written costs a full
    rebuild next time, with a warning, never the night."""
    manifest = {**reuse.manifest, "outputs": {r.name: r.sha256 for r in records}}
    cache = ContentCache(store.cache_dir("history"))
    try:
        cache.publish(_stem(spec, store), records[0].sha256[:16],
                      {".json": json.dumps(manifest, sort_keys=True).encode()})
    except (OSError, ValueError) as exc:
        log.warning("%s: cannot keep the record of %s's rows (%s); its next run rebuilds every row",
                    cache.folder, spec.id, getattr(exc, "strerror", None) or exc)
