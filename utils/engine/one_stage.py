"""Running one module: load its inputs from the catalog, call its stage function (on the rows not kept
from its last run, for a stage that keeps history: utils/engine/history.py), validate and write its
outputs together with their lineage (`run_stage`, the one way a stage function runs); and, inside a run,
the module with the overwrite policy and its phase status (`run_module`), which both executors call.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from phase_status import OutputStatus, PhaseStatus, StatusRecorder
from utils.engine import history
from utils.engine.lineage import config_value, lineage, stage_params, stale_reason
from utils.engine.stages import (
    ModuleResult,
    ModuleSpec,
    Registry,
    StageOutput,
    one_line,
)
from utils.store.artifacts import (
    ArtifactError,
    ArtifactStore,
    handle_overwrite_policy,
    staged_writes,
)

log = logging.getLogger("mlb.runner")


@dataclass
class RunContext:
    cfg: object
    registry: Registry
    store: ArtifactStore
    recorder: StatusRecorder
    sha: str | None
    on_flow_start: Callable[[], None] | None = None  # called in the flow's own thread (signal handlers)
    replaced_newer: set = field(default_factory=set)  # outputs of a later as-of date this run replaced

    @property
    def run_dir(self) -> Path:
        return self.store.catalog.run_dir(self.recorder.run.run_id)

    def blocked_by(self, module_id: str) -> list[str]:
        """Upstream modules of this run that failed, or were skipped because their own upstream failed."""
        phases = self.recorder.run.phases
        return [u for u in self.registry.upstream(module_id) if u in phases
                and (phases[u].status == "failed" or (phases[u].status == "skipped" and phases[u].error))]

    def phase(self, spec: ModuleSpec, status: str, **fields) -> PhaseStatus:
        phase = PhaseStatus(module=spec.id, name=spec.name, status=status, git_sha=self.sha, **fields)
        self.recorder.update(phase)
        return phase


def release_freed_memory() -> None:
    """Give the memory a finished stage freed back to the system (glibc's heap and Arrow's pool keep it
    otherwise): a night runs eleven stages in one process, and without it each one's freed frames
    stay as fragments under the next one's, raising the night's peak above any single stage's."""
    import ctypes

    try:
        import pyarrow

        pyarrow.default_memory_pool().release_unused()
    except Exception:  # noqa: BLE001 - housekeeping after a stage never replaces the stage's own outcome
        pass
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except Exception:  # noqa: BLE001 - not glibc (macOS, musl): nothing to trim
        pass


def run_module(ctx: RunContext, spec: ModuleSpec) -> PhaseStatus:
    """Apply the overwrite policy, run the stage (`run_stage`), record the outcome. Never raises for
    stage errors: a failure leaves every previous output and its hash as they were."""
    policy = ctx.cfg.run.overwrite_policy
    failed_up = ctx.blocked_by(spec.id)
    if failed_up:
        return ctx.phase(spec, "skipped", error=f"upstream module(s) {', '.join(failed_up)} did not succeed")
    try:
        validators = ",".join(ctx.store.contract(name).validator for name in spec.outputs)
        for name in spec.outputs:
            handle_overwrite_policy(ctx.store.resolve_output_path(name), policy,
                                    newer=policy == "warn" and _written_later(ctx, name), said=ctx.replaced_newer)
        kept = _kept(ctx, spec) if policy == "skip" else None
    except Exception as exc:  # a broken contract, sidecar or stage module fails this stage, as under Prefect
        return ctx.phase(spec, "failed", error=one_line(exc))
    if kept is not None:
        return ctx.phase(spec, "skipped", validator=validators, outputs=kept)
    ctx.phase(spec, "running", validator=validators)
    started = time.perf_counter()
    try:
        result = run_stage(ctx.cfg, spec, store=ctx.store)
    except Exception as exc:  # a module failure is recorded and reported, not swallowed
        log.error("module %s failed: %s", spec.id, one_line(exc), extra={"console": False})
        log.debug("module %s traceback", spec.id, exc_info=True)
        return ctx.phase(spec, "failed", validator=validators, duration_seconds=time.perf_counter() - started,
                         error=one_line(exc))
    finally:
        release_freed_memory()
    outputs = [OutputStatus(**record.as_dict()) for record in result.outputs]
    log.info("module %s done in %.2fs: %s", spec.id, time.perf_counter() - started,
             ", ".join(f"{o.name}({o.rows if o.rows is not None else '-'})" for o in outputs))
    return ctx.phase(spec, "success", validator=validators, duration_seconds=time.perf_counter() - started,
                     outputs=outputs, metrics={k: float(v) for k, v in result.metrics.items()})


def _kept(ctx: RunContext, spec: ModuleSpec) -> list[OutputStatus] | None:
    """Under 'skip': the stage's outputs as they stand when they are up to date (`stale_reason`);
    None, after saying why at INFO, when the stage must run."""
    reason = stale_reason(ctx.cfg, spec, ctx.store) if spec.outputs else "it has no outputs"
    if reason is not None:
        log.info("%s: rebuilding under policy skip: %s", spec.id, reason)
        return None
    metas = {n: ctx.store.meta(n) for n in spec.outputs}
    return [OutputStatus(name=n, path=str(ctx.store.resolve_output_path(n)), sha256=metas[n]["sha256"],
                         rows=metas[n].get("rows"), validator=ctx.store.contract(n).validator)
            for n in spec.outputs]


def _written_later(ctx: RunContext, name: str) -> bool:
    """Whether the present output was written for a later as-of date than this run's."""
    try:
        meta = ctx.store.meta(name) or {}
    except ArtifactError:
        return False
    return ctx.cfg.run.as_of is not None and (meta.get("as_of") or "") > ctx.cfg.run.as_of.isoformat()


def read_appended(store: ArtifactStore, name: str) -> Any:
    """An output the stage extends (the prediction log), or None before its first run. Re-running the
    stage cannot mend a damaged copy, so the error names the restore that can."""
    if not store.resolve_output_path(name).exists():
        return None
    try:
        return store.read(name)
    except ArtifactError as exc:
        from utils.engine.versioning import latest_versioned_run

        run_id = latest_versioned_run(store.root, name) or "RUN_ID"
        problem = str(exc).split("; ")[0]
        raise ArtifactError(f"{problem}; the stage appends to it, so restore the last good copy: "
                            f"`python pipeline.py restore {run_id} {name}`") from None


def stage_outputs(spec: ModuleSpec, result: Any) -> StageOutput:
    """A stage function's return value as outputs by name: a StageOutput, a dict, a tuple in the
    registry's order, or the one output itself."""
    if isinstance(result, StageOutput):
        values = result.values
    elif isinstance(result, dict) and set(result) == set(spec.outputs) and len(spec.outputs) > 1:
        values = result
    elif isinstance(result, tuple) and len(spec.outputs) > 1:
        values = dict(zip(spec.outputs, result))
    else:
        values = {spec.outputs[0]: result} if len(spec.outputs) == 1 else {}
    if set(values) != set(spec.outputs):
        raise TypeError(f"{spec.target} returned {sorted(values) or type(result).__name__}, "
                        f"not the registry's outputs {list(spec.outputs)}")
    return result if isinstance(result, StageOutput) else StageOutput(values)


def _load_input(store: ArtifactStore, spec: ModuleSpec, name: str) -> tuple[Any, str]:
    """An input as the stage reads it (only its `input_columns`, where it names some) and its file's hash."""
    columns = spec.input_columns.get(name)
    return store.load(name, list(columns) if columns else None)


def run_stage(cfg, stage: str | ModuleSpec, registry: Registry | None = None,
              store: ArtifactStore | None = None) -> ModuleResult:
    """The one way a stage runs: load its inputs from the catalog, bind its parameters from the config,
    call its function (`since=` the first changed day, for a stage that keeps history, and put its kept
    rows back), validate and write its outputs together (or none), each with its lineage.
    `stage` is a spec, or an id of `registry`."""
    if not isinstance(stage, ModuleSpec):
        if registry is None:
            raise TypeError(f"run_stage({stage!r}): name the registry the stage id belongs to")
        stage = registry[stage]
    spec = stage
    store = store or ArtifactStore.from_config(cfg)
    arguments, hashes = {}, {}
    for name in spec.inputs:
        arguments[name], hashes[name] = _load_input(store, spec, name)
    for name in spec.appends:
        arguments[name] = read_appended(store, name)
    params = stage_params(cfg, spec)
    arguments.update(params)
    for arg, resource in spec.resources.items():
        kind, _, what = resource.partition(":")
        arguments[arg] = store.cache_dir(what) if kind == "cache" else config_value(cfg, what) \
            if kind == "config" else dict(hashes)
    made = lineage(spec, params, hashes)
    reuse = history.plan(cfg, store, spec, arguments, made) if spec.history else None
    if reuse is not None:
        arguments["since"] = None if reuse.since is None else pd_timestamp(reuse.since)
    result = stage_outputs(spec, spec.load()(**arguments))
    values = dict(result.values)
    if reuse is not None:
        if reuse.since is None:
            log.info("%s: every row built (%s)", spec.id, reuse.reason)
        else:
            for name in spec.inputs:  # the merge reads the first dated input only: free the rest first
                if name != spec.history[0]:
                    arguments[name] = None
            try:
                values = {name: history.merge(reuse.kept(store, name), values[name], arguments[spec.history[0]],
                                              reuse.since, spec.history_key) for name in spec.outputs}
            except ArtifactError as exc:  # kept rows that do not fit tonight's games: build every row instead
                log.warning("%s: %s; building every row", spec.id, exc)
                arguments["since"], reuse.since = None, None
                for name in spec.inputs:
                    arguments[name], digest = _load_input(store, spec, name)
                    if digest != hashes[name]:  # the lineage names the input as first read
                        raise ArtifactError(f"{name} changed while {spec.id} ran; run it again")
                result = stage_outputs(spec, spec.load()(**arguments))
                values = dict(result.values)
            else:
                new = len(result.values[spec.outputs[0]])
                log.info("%s: %d row(s) from %s on built, %d kept (%s)", spec.id, new, reuse.since,
                         len(values[spec.outputs[0]]) - new, reuse.reason)
    with staged_writes() as staging:
        records = [store.write(name, values[name], made) for name in spec.outputs]
        staging.commit()
    if reuse is not None:
        history.record(store, spec, reuse, records)
    return ModuleResult(records, metrics=dict(result.metrics))


def run_alone(cfg, spec: ModuleSpec) -> ModuleResult:
    """A module's `main(cfg)`: its stage run by itself (`run_stage`) under the artifacts root's run lock,
    as a run holds it, so it never writes beside a run (LockHeld, naming the holder, while one runs)."""
    from utils.store.locking import RunLock

    with RunLock(cfg.paths.artifacts):
        return run_stage(cfg, spec)


def pd_timestamp(day: str):
    import pandas as pd

    return pd.Timestamp(day)


