"""The two executors of a plan: Prefect (each module a task, failed and blocked states told truly) and
the legacy thread pool. Both call `run_module`, so they write the same artifacts and the same status;
they differ only in who schedules.
"""
from __future__ import annotations

import contextlib
import logging
import os
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

from utils.engine.one_stage import RunContext, run_module
from utils.engine.plan import Plan

log = logging.getLogger("mlb.runner")


WAKE_SECONDS = 0.5


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
            # a timeout, not a bare wait: a SIGTERM the kernel hands to a module's thread only sets a flag, and
            # the main thread runs the handler when it wakes (a module of a minute would hold it that long)
            finished, _ = wait(running, timeout=WAKE_SECONDS, return_when=FIRST_COMPLETED)
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


