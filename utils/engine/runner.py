"""Running a plan: one module wrapper, two executors (Prefect flow, legacy thread pool).

Both executors call `run_module`, which owns the overwrite policy and the phase status, so
they produce the same artifacts and the same status; they differ only in who schedules.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from phase_status import OutputStatus, PhaseStatus, RunStatus, StatusRecorder
from utils.engine.lineage import config_value, lineage, stage_params, stale_reason
from utils.engine.plan import Plan
from utils.engine.stages import (
    ModuleResult,
    ModuleSpec,
    PostRunHook,
    Registry,
    StageOutput,
    StepFailed,
    one_line,
)
from utils.store.artifacts import (
    COMMIT_LOCK,
    ArtifactError,
    ArtifactStore,
    atomic_write_text,
    handle_overwrite_policy,
    staged_writes,
)

log = logging.getLogger("mlb.runner")


def git_sha() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True,
                             timeout=5, cwd=Path(__file__).resolve().parent.parent)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


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


def run_stage(cfg, stage: str | ModuleSpec, registry: Registry | None = None,
              store: ArtifactStore | None = None) -> ModuleResult:
    """The one way a stage runs: load its inputs from the catalog, bind its parameters from the config,
    call its function, validate and write its outputs together (or none), each with its lineage.
    `stage` is a spec, or an id of `registry`."""
    if not isinstance(stage, ModuleSpec):
        if registry is None:
            raise TypeError(f"run_stage({stage!r}): name the registry the stage id belongs to")
        stage = registry[stage]
    spec = stage
    store = store or ArtifactStore.from_config(cfg)
    arguments, hashes = {}, {}
    for name in spec.inputs:
        arguments[name], hashes[name] = store.load(name)
    for name in spec.appends:
        arguments[name] = read_appended(store, name)
    params = stage_params(cfg, spec)
    arguments.update(params)
    for arg, resource in spec.resources.items():
        kind, _, what = resource.partition(":")
        arguments[arg] = store.cache_dir(what) if kind == "cache" else config_value(cfg, what) \
            if kind == "config" else dict(hashes)
    result = stage_outputs(spec, spec.load()(**arguments))
    made = lineage(spec, params, hashes)
    with staged_writes() as staging:
        records = [store.write(name, result.values[name], made) for name in spec.outputs]
        staging.commit()
    return ModuleResult(records, metrics=dict(result.metrics))


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


def prefect_settings() -> None:
    """The pipeline's own Prefect settings, before Prefect is imported: no telemetry (a cron host has
    no network, and its 'Failed to send telemetry' is logged as an error) and Prefect's own logs at
    WARNING, so a night is one line per module; an operator's environment still wins."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "WARNING")


def run_prefect(ctx: RunContext, plan: Plan, max_workers: int) -> None:
    """A Prefect 3 flow: one task per module, `wait_for` edges from the registry, a thread pool runner.

    Prefect's states say what happened: a failed module is a *Failed* task run carrying its one-line
    error (returned as a state, not raised: no traceback is logged); the modules it blocks never start,
    and stay in Prefect's own "did not run" state, *Pending* named *NotReady*; a module kept because
    its outputs are up to date is *Completed* with that message; the flow run is *Failed* when a
    module failed. The run's outcome (exit code, phase status) is the phase status, exactly as under
    the legacy executor. Each module's `mlb` log lines go to its task run in the Prefect UI."""
    prefect_settings()
    from prefect import flow, task
    from prefect.states import Completed, Failed
    from prefect.task_runners import ThreadPoolTaskRunner

    def body(module_id: str):
        phase = run_module(ctx, ctx.registry[module_id])
        if phase.status == "failed":
            return Failed(message=phase.error)
        return Completed(message="up to date: outputs kept" if phase.status == "skipped" else None,
                         data=phase.status)

    tasks = {m: task(body, name=f"{m}_{ctx.registry[m].name}", retries=0, cache_policy=None) for m in plan.modules}

    @flow(name="mlb-pipeline", task_runner=ThreadPoolTaskRunner(max_workers=max_workers), log_prints=False)
    def mlb_pipeline():
        if ctx.on_flow_start is not None:
            ctx.on_flow_start()
        futures = {}
        for module_id in plan.modules:
            ups = [futures[u] for u in ctx.registry.upstream(module_id) if u in futures]
            futures[module_id] = tasks[module_id].submit(module_id, wait_for=ups)
        for future in futures.values():
            future.wait()
        failed = [f"{p.module} ({p.name})" for p in ctx.recorder.run.phases.values() if p.status == "failed"]
        return Failed(message=f"module(s) {', '.join(failed)} failed") if failed else Completed()

    from utils.engine.prefect_api import prefect_server

    with prefect_server(ctx.cfg.run.prefect_api_url), _logs_to_prefect():
        mlb_pipeline(return_state=True)
    for module_id in plan.modules:  # tasks Prefect never started
        if ctx.recorder.run.phases[module_id].status in ("pending", "running"):
            ctx.phase(ctx.registry[module_id], "skipped",
                      error=f"upstream module(s) {', '.join(ctx.blocked_by(module_id)) or '?'} did not succeed")


@contextlib.contextmanager
def _logs_to_prefect():
    """While the flow runs, the pipeline's `mlb` log lines also go to the Prefect API, each under the
    task run (or flow run) it was logged in. Prefect's own lines about task and flow states ("Task run
    failed with state …") are dropped: the states carry them, and the run prints its one line per
    module and its error itself."""
    from prefect.logging.handlers import APILogHandler

    mine = logging.getLogger("mlb")
    to_api = APILogHandler()
    mine.addHandler(to_api)
    runs = [logging.getLogger(name) for name in ("prefect.task_runs", "prefect.flow_runs")]
    drop = lambda record: False  # noqa: E731 (one filter object, to add and remove)
    for logger in runs:
        logger.addFilter(drop)
    try:
        yield
    finally:
        for logger in runs:
            logger.removeFilter(drop)
        mine.removeHandler(to_api)  # what it queued is sent by Prefect's log worker as the flow ends


def new_run_id() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]


def start_run(cfg, registry: Registry, plan: Plan, store: ArtifactStore, executor: str) -> RunContext:
    """The run's folder and status file, every planned module pending. OSError if they cannot be written."""
    run_id = new_run_id()
    run_dir = store.catalog.run_dir(run_id)
    run_dir.mkdir(parents=True, exist_ok=True)
    status = RunStatus(run_id=run_id, as_of=cfg.run.as_of, executor=executor,
                       started_at=dt.datetime.now(dt.timezone.utc))
    recorder = StatusRecorder(store.root, status, copy_to=store.catalog.run_file(run_id, "status"))
    ctx = RunContext(cfg, registry, store, recorder, git_sha())
    for module_id in plan.modules:
        ctx.phase(registry[module_id], "pending")
    return ctx


def run_plan(ctx: RunContext, plan: Plan, executor: str, max_workers: int) -> None:
    """Every module of the plan, then the run's manifest of artifact hashes."""
    (run_prefect if executor == "prefect" else run_legacy)(ctx, plan, max_workers)
    run = ctx.recorder.run
    manifest = {out.name: out.sha256 for phase in run.phases.values() for out in phase.outputs}
    atomic_write_text(ctx.store.catalog.run_file(run.run_id, "manifest"), json.dumps(
        {"run_id": run.run_id, "as_of": _iso(ctx.cfg.run.as_of), "pid": os.getpid(), "artifacts": manifest}, indent=1))


def execute(cfg, registry: Registry, plan: Plan, store: ArtifactStore, executor: str, max_workers: int,
            interrupts: Interrupts | None = None) -> RunStatus:
    """Run the plan (the caller holds the run lock); returns the final run status (also on disk).
    With `interrupts`, a signal records this run as interrupted."""
    ctx = start_run(cfg, registry, plan, store, executor)
    _run_watched(ctx, plan, executor, max_workers, interrupts)
    return ctx.recorder.finish()


def _run_watched(ctx: RunContext, plan: Plan, executor: str, max_workers: int,
                 interrupts: Interrupts | None) -> None:
    """run_plan, with a signal recording this run as interrupted (also inside a Prefect flow)."""
    if interrupts is not None:
        interrupts.ctx = ctx
        ctx.on_flow_start = interrupts.install
    run_plan(ctx, plan, executor, max_workers)


COMMIT_WAIT_SECONDS = 10


class Interrupts:
    """SIGINT (Ctrl-C) and SIGTERM (cron, systemd) during a run: stop at once, not when the running
    module ends. The handler waits for any module's outputs being renamed into place, marks the
    running modules 'interrupted' (the rest stay 'pending'), releases the run lock, stops child
    processes (Prefect's server, DVC), prints one line and exits 128 + the signal's number."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, lock):
        self.lock = lock
        self.ctx: RunContext | None = None
        self.previous: dict[int, object] = {}

    def install(self) -> None:
        """(Re)install the handlers; only the main thread can, and Prefect swaps SIGTERM during a flow."""
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in self.SIGNALS:
            self.previous.setdefault(sig, signal.getsignal(sig))
            signal.signal(sig, self.handle)

    def __enter__(self) -> Interrupts:
        self.install()
        return self

    def __exit__(self, *exc) -> None:
        if threading.current_thread() is threading.main_thread():
            for sig, handler in self.previous.items():
                signal.signal(sig, handler)

    def handle(self, signum: int, frame) -> None:
        name = signal.Signals(signum).name
        for sig in self.SIGNALS:  # a second Ctrl-C while this one is handled changes nothing
            signal.signal(sig, signal.SIG_IGN)
        # Never leave a stage's outputs half renamed: wait for a commit in progress on another thread
        # (renames take milliseconds; the main thread's own commits block these signals instead).
        COMMIT_LOCK.acquire(timeout=COMMIT_WAIT_SECONDS)
        where = "before any module started"
        try:
            if self.ctx is not None:
                run = self.ctx.recorder.run
                running = [f"{p.module} ({p.name})" for p in run.phases.values() if p.status == "running"]
                running += [f"{n} step" for n, s in run.steps.items() if s.status == "running"]
                where = f"during {', '.join(running) or 'the run'}; run {run.run_id} recorded as interrupted"
                self.ctx.recorder.finish(interrupted=name)
        except OSError as exc:
            where += f" (its status could not be written: {exc.strerror or exc})"
        self.lock.release()
        logging.disable(logging.CRITICAL)  # Prefect's client threads would log the server's end as errors
        stop_children()
        sys.stderr.write(f"error: interrupted by {name} {where}\n")
        sys.stderr.flush()
        os._exit(128 + signum)


def stop_children() -> None:
    """Kill this process's children (Prefect's temporary server, a DVC subprocess) at once: they hold
    nothing the next run needs, and a server asked to stop politely logs its shutdown onto our stderr."""
    import multiprocessing.util

    import psutil

    children = [c for c in psutil.Process().children(recursive=True) if not _is_resource_tracker(c)]
    for child in children:
        try:
            child.kill()
        except psutil.NoSuchProcess:
            continue
    psutil.wait_procs(children, timeout=5)
    for thread in threading.enumerate():  # a process pool's manager, cleaning up after its killed workers:
        if type(thread).__name__ == "_ExecutorManagerThread":  # let it finish unlinking and unregistering
            thread.join(timeout=5)
    # What multiprocessing does at a normal exit, which os._exit skips: its finalizers unlink the
    # worker pools' named semaphores (else left in /dev/shm, and the resource tracker warns of them).
    multiprocessing.util._exit_function()
    time.sleep(0.2)  # a finalizer another thread is running (a pool torn down as its workers died) ends


def _is_resource_tracker(process) -> bool:
    """multiprocessing's resource tracker: it ignores signals and ends when this process does, after
    unlinking whatever is left; killing it would leak what it tracks."""
    import psutil

    try:
        return any("resource_tracker" in part for part in process.cmdline())
    except psutil.Error:
        return False


def post_run(cfg, ctx: RunContext, hooks: tuple[PostRunHook, ...]) -> None:
    """The steps after the modules, in order, each recorded in the run's status; a failed one fails the run."""
    for hook in hooks:
        ctx.recorder.step(hook.name, "running")
        try:
            state, note = hook.run(cfg, ctx.run_dir, ctx.recorder.run, ctx.store)
        except StepFailed as exc:
            ctx.recorder.step(hook.name, "failed", " ".join(str(exc).split()))
        else:
            ctx.recorder.step(hook.name, state, note)


def run_session(cfg, registry: Registry, plan: Plan, store: ArtifactStore,
                hooks: tuple[PostRunHook, ...] = ()) -> RunStatus:
    """A whole run under the artifacts root's lock: modules, then the post-run hooks; interrupts handled.

    Raises LockHeld/LockError when the lock cannot be taken, OSError when the run's status or log
    cannot be written (a full or read-only disk): the previous status is then left as it was."""
    from utils.engine.logging import setup_logging
    from utils.store.locking import RunLock

    lock = RunLock(store.root).acquire()
    try:
        with Interrupts(lock) as interrupts:
            try:
                setup_logging(log_file=store.catalog.log_file(dt.date.today()))
                ctx = start_run(cfg, registry, plan, store, cfg.run.executor)
            except OSError as exc:
                exc.status_untouched = True  # nothing of this run was recorded: the last status stands
                raise
            _run_watched(ctx, plan, cfg.run.executor, cfg.run.max_workers, interrupts)
            post_run(cfg, ctx, hooks)
            return ctx.recorder.finish()
    finally:
        lock.release()


def run_and_report(cfg, registry: Registry, plan: Plan, store: ArtifactStore,
                   hooks: tuple[PostRunHook, ...] = ()) -> tuple[int, str, list[str]]:
    """A whole run as the command line reports it: (exit code, the status table, one line per error)."""
    from phase_status import status_table
    from utils.store.locking import LockHeld

    try:
        status = run_session(cfg, registry, plan, store, hooks)
    except (LockHeld, ArtifactError) as exc:  # another run holds the root; a link inside it
        return 1, "", [str(exc)]
    except OSError as exc:  # a full or read-only disk under the status, the log or a run folder
        if not exc.filename:  # LockError and the like carry their whole message
            return 1, "", [" ".join(str(exc).split())]
        kept = "the previous status is unchanged" if getattr(exc, "status_untouched", False) else \
            "the run's status may be incomplete"
        return 1, "", [f"{exc.filename}: {exc.strerror or exc}; {kept}"]
    errors = [f"module {p.module} ({p.name}) failed: {p.error}" for p in status.phases.values() if p.status == "failed"]
    errors += [f"{name}: {step.error}" for name, step in status.steps.items() if step.status == "failed"]
    return (0 if status.ok else 1), status_table(status), errors


def run_command(cfg, registry: Registry, dry_run: bool, visual: bool, out_dir: Path,
                echo: Callable[[str, bool], None], hooks: tuple[PostRunHook, ...] = ()) -> int:
    """`pipeline.py run`: plan, show the plan (dry run, --visual), and run it unless it is a dry run.
    `echo(text, to_stderr)` prints as it goes, so notes show before a long run; returns the exit code."""
    from utils.engine.plan import ascii_dag, checked_plan, dry_run_text, write_visual

    store = ArtifactStore.from_config(cfg)
    plan = checked_plan(registry, store, cfg.run.modules)
    for note in plan.notes:
        echo(f"note: {note}", True)
    if dry_run:
        echo(dry_run_text(cfg, registry, plan, store), False)
    if visual:
        written, note = write_visual(registry, plan.modules, out_dir)
        if note:
            echo(f"note: {note}", True)
        if dry_run:
            echo("\n" + ascii_dag(registry, plan) + "".join(f"\nwrote {path}" for path in written), False)
    if dry_run:
        return 0
    code, table, errors = run_and_report(cfg, registry, plan, store, hooks)
    if table:
        echo(table, False)
    for error in errors:
        echo(f"error: {error}", True)
    return code
