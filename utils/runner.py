"""Running a plan: one module wrapper, two executors (Prefect flow, legacy thread pool).

Both executors call `run_module`, which owns the overwrite policy and the phase status, so
they produce the same artifacts and the same status; they differ only in who schedules.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import os
import subprocess
import time
import uuid
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from modules.registry import ModuleSpec, Registry
from phase_status import OutputStatus, PhaseStatus, RunStatus, StatusRecorder
from utils.artifacts import ArtifactError, ArtifactStore, atomic_write_text, handle_overwrite_policy
from utils.plan import Plan

log = logging.getLogger("mlb.runner")


def git_sha() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True,
                             timeout=5, cwd=Path(__file__).resolve().parent.parent)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if isinstance(exc, (ArtifactError, ValueError, OSError)) else f"{type(exc).__name__}: {text}"


@dataclass
class RunContext:
    cfg: object
    registry: Registry
    store: ArtifactStore
    recorder: StatusRecorder
    sha: str | None

    def blocked_by(self, module_id: str) -> list[str]:
        """Upstream modules of this run that failed, or were skipped because their own upstream failed."""
        phases = self.recorder.run.phases
        return [u for u in self.registry.upstream(module_id) if u in phases
                and (phases[u].status == "failed" or (phases[u].status == "skipped" and phases[u].error))]

    def phase(self, spec: ModuleSpec, status: str, **fields) -> PhaseStatus:
        phase = PhaseStatus(module=spec.id, name=spec.name, status=status, git_sha=self.sha, **fields)
        self.recorder.update(phase)
        return phase


def run_module(ctx: RunContext, spec: ModuleSpec) -> PhaseStatus:
    """Apply the overwrite policy, run `main(cfg)`, record the outcome. Never raises for module errors."""
    policy = ctx.cfg.run.overwrite_policy
    failed_up = ctx.blocked_by(spec.id)
    if failed_up:
        return ctx.phase(spec, "skipped", error=f"upstream module(s) {', '.join(failed_up)} did not succeed")
    validators = ",".join(ctx.store.contract(name).validator for name in spec.outputs)
    # Under skip, each output is hashed once here and the result reused below.
    hashes = {name: ctx.store.valid_hash(name) for name in spec.outputs} if policy == "skip" else {}
    try:
        decisions = [handle_overwrite_policy(ctx.store.resolve_output_path(name), policy,
                                             valid=hashes[name] is not None if policy == "skip" else None)
                     for name in spec.outputs]
    except ArtifactError as exc:
        return ctx.phase(spec, "failed", validator=validators, error=one_line(exc))
    if spec.outputs and all(d == "skip" for d in decisions):
        metas = {n: ctx.store.meta(n) for n in spec.outputs}
        kept = [OutputStatus(name=n, path=str(ctx.store.resolve_output_path(n)), sha256=hashes[n],
                             rows=metas[n].get("rows"), validator=ctx.store.contract(n).validator)
                for n in spec.outputs]
        stale = [n for n in spec.outputs if metas[n].get("as_of") != _iso(ctx.cfg.run.as_of)]
        if stale:
            log.warning("%s: kept %s under policy skip, though written for another as-of date", spec.id, ", ".join(stale))
        return ctx.phase(spec, "skipped", validator=validators, outputs=kept)
    ctx.phase(spec, "running", validator=validators)
    started = time.perf_counter()
    try:
        result = spec.load()(ctx.cfg)
    except Exception as exc:  # a module failure is recorded and reported, not swallowed
        log.error("module %s failed: %s", spec.id, one_line(exc))
        log.debug("module %s traceback", spec.id, exc_info=True)
        return ctx.phase(spec, "failed", validator=validators, duration_seconds=time.perf_counter() - started,
                         error=one_line(exc))
    outputs = [OutputStatus(**record.as_dict()) for record in result.outputs]
    log.info("module %s done in %.2fs: %s", spec.id, time.perf_counter() - started,
             ", ".join(f"{o.name}({o.rows if o.rows is not None else '-'})" for o in outputs))
    return ctx.phase(spec, "success", validator=validators, duration_seconds=time.perf_counter() - started,
                     outputs=outputs, metrics={k: float(v) for k, v in result.metrics.items()})


def _iso(day: dt.date | None) -> str | None:
    return day.isoformat() if day else None


def run_legacy(ctx: RunContext, plan: Plan, max_workers: int) -> None:
    """concurrent.futures: start each module as soon as everything it reads is done."""
    remaining = list(plan.modules)
    running: dict[Future, str] = {}
    done: set[str] = set()
    with ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="module") as pool:
        while remaining or running:
            for module_id in list(remaining):
                ups = [u for u in ctx.registry.upstream(module_id) if u in plan.modules]
                if all(u in done for u in ups):
                    remaining.remove(module_id)
                    running[pool.submit(run_module, ctx, ctx.registry[module_id])] = module_id
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                done.add(running.pop(future))
                future.result()


def run_prefect(ctx: RunContext, plan: Plan, max_workers: int) -> None:
    """A Prefect 3 flow: one task per module, `wait_for` edges from the registry, a thread pool runner."""
    from prefect import flow, task
    from prefect.task_runners import ThreadPoolTaskRunner

    def body(module_id: str) -> str:
        phase = run_module(ctx, ctx.registry[module_id])
        if phase.status == "failed":
            raise RuntimeError(f"module {module_id} failed: {phase.error}")
        return phase.status

    tasks = {m: task(body, name=f"{m}_{ctx.registry[m].name}", retries=0, cache_policy=None) for m in plan.modules}

    @flow(name="mlb-pipeline", task_runner=ThreadPoolTaskRunner(max_workers=max_workers), log_prints=False)
    def mlb_pipeline() -> None:
        futures = {}
        for module_id in plan.modules:
            ups = [futures[u] for u in ctx.registry.upstream(module_id) if u in futures]
            futures[module_id] = tasks[module_id].submit(module_id, wait_for=ups)
        for future in futures.values():
            future.wait()

    mlb_pipeline(return_state=True)
    for module_id in plan.modules:  # tasks Prefect never started because an upstream failed
        if ctx.recorder.run.phases[module_id].status in ("pending", "running"):
            ctx.phase(ctx.registry[module_id], "skipped",
                      error=f"upstream module(s) {', '.join(ctx.blocked_by(module_id))} did not succeed")


def execute(cfg, registry: Registry, plan: Plan, store: ArtifactStore, executor: str, max_workers: int) -> RunStatus:
    """Run the plan under the run lock; returns the final run status (also on disk)."""
    run_id = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]
    run_dir = store.root / "runs" / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    status = RunStatus(run_id=run_id, as_of=cfg.run.as_of, executor=executor,
                       started_at=dt.datetime.now(dt.timezone.utc))
    recorder = StatusRecorder(store.root, status, copy_to=run_dir / "phase_status.yaml")
    ctx = RunContext(cfg, registry, store, recorder, git_sha())
    for module_id in plan.modules:
        ctx.phase(registry[module_id], "pending")
    (run_prefect if executor == "prefect" else run_legacy)(ctx, plan, max_workers)
    final = recorder.finish()
    manifest = {out.name: out.sha256 for phase in final.phases.values() for out in phase.outputs}
    atomic_write_text(run_dir / "manifest.json", json.dumps({"run_id": run_id, "as_of": _iso(cfg.run.as_of),
                                                             "pid": os.getpid(), "artifacts": manifest}, indent=1))
    return final
