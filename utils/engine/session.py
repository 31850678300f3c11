"""A run as a whole: its id and status, the artifacts root's lock, signals (Ctrl-C, SIGTERM) and
the worker processes they stop, the plan on an executor, then the post-run hooks it is handed; and
the command line's `run` (plan, dry run, report).
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
from pathlib import Path
from typing import Callable

from phase_status import RunStatus, StatusRecorder
from utils.engine.executors import run_legacy, run_prefect
from utils.engine.one_stage import RunContext
from utils.engine.plan import Plan
from utils.engine.stages import (
    PROJECT_ROOT,
    PostRunHook,
    Registry,
    StepFailed,
)
from utils.store.artifacts import (
    COMMIT_LOCK,
    ArtifactError,
    ArtifactStore,
    atomic_write_text,
)

log = logging.getLogger("mlb.runner")


def git_sha() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True,
                             timeout=5, cwd=PROJECT_ROOT)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def _iso(day: dt.date | None) -> str | None:
    return day.isoformat() if day else None


def new_run_id() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]


def start_run(cfg, registry: Registry, plan: Plan, store: ArtifactStore, executor: str) -> RunContext:
    """The run's folder and status file, every planned module pending. OSError if they cannot be written."""
    run_id = new_run_id()
    run_dir = store.catalog.run_dir(run_id)
    run_dir.mkdir(parents=True, exist_ok=True)
    status = RunStatus(run_id=run_id, as_of=cfg.run.as_of, executor=executor,
                       started_at=dt.datetime.now(dt.timezone.utc))
    try:
        recorder = StatusRecorder(store.root, status, copy_to=store.catalog.run_file(run_id, "status"))
        ctx = RunContext(cfg, registry, store, recorder, git_sha())
        for module_id in plan.modules:
            ctx.phase(registry[module_id], "pending")
    except BaseException:  # refused before it started (the status file is a link, the disk is full): no
        with contextlib.suppress(OSError):  # run folder left empty for `runs` to list as unreadable forever
            run_dir.rmdir()
        raise
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
