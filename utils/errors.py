"""The pipeline's own errors and their exit codes: each is one line naming the file, key or row.

2 for bad usage (a plan that cannot run, a run id that names no run, an artifact name that names no
artifact, nothing to restore from); 1 for everything that went wrong with inputs, artifacts, the lock,
the disk or a step. Anything else is a bug, and keeps its traceback.
"""
from __future__ import annotations

from typing import NoReturn

INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a Ctrl-C


USAGE_ERRORS = (("utils.engine.plan", "PlanError"), ("utils.engine.versioning", "RunNotFound"),
                ("utils.engine.versioning", "NotAnArtifact"))
RUN_ERRORS = (("utils.store.catalog", "ArtifactError"), ("utils.flows.backtest", "BacktestError"),
              ("utils.store.locking", "LockError"), ("utils.store.locking", "LockHeld"),
              ("utils.store.schema", "SchemaError"), ("phase_status", "StatusError"),
              ("utils.engine.versioning", "VersioningError"))


def _loaded(classes: tuple[tuple[str, str], ...]) -> tuple[type, ...]:
    """The classes whose modules are imported: an exception of a class (or a subclass of one) from a
    module never imported cannot have been raised, so the check imports nothing (a usage error exits
    without loading pandas for the backtest's error class)."""
    import sys

    return tuple(c for module, name in classes if isinstance(c := getattr(sys.modules.get(module), name, None), type))


def exit_code_for(exc: BaseException) -> int | None:
    """The exit code of one of the pipeline's own errors; None for anything else."""
    if isinstance(exc, _loaded(USAGE_ERRORS)):
        return 2
    if isinstance(exc, (*_loaded(RUN_ERRORS), OSError)):
        return 1
    return None


def _click_error(typer_module, name: str) -> type[Exception] | tuple:
    """click's exception class `name` as this typer raises it (newer typers vendor their own click);
    () if this click has no such class, which an except clause then never matches."""
    import sys

    usage = next(c for c in typer_module.BadParameter.__mro__ if c.__name__ == "UsageError")
    return usage if name == "UsageError" else getattr(sys.modules[usage.__module__], name, ())


def exit_process(code: object = 0) -> NoReturn:
    """End this process with `code` (a SystemExit's: None is 0, text is printed and exits 1) once Python's
    own exit work is done, skipping only the native libraries' teardown after it.

    pyarrow's thread pools may abort a process as C++ destroys them at exit while one of their threads
    is still alive: SIGABRT, "terminate called without an active exception" (apache/arrow#34314, open).
    On a busy machine it ended some commands after their work and their one-line error were done: a
    run that did what it should, reported as killed. So the steps the interpreter takes at exit run
    here, in its order: threading's shutdown (its exit functions: concurrent.futures' executors finish
    their work, Prefect's log and event services drain; then it waits for the non-daemon threads), the
    atexit functions (logging's flush, coverage's save, multiprocessing's and weakref finalizers, a
    temporary Prefect server stopped), the standard streams flushed; then os._exit, which never reaches
    the C++ destructors. As the interpreter does, an error (or a Ctrl-C) in threading's shutdown is
    printed and the atexit functions still run."""
    import atexit
    import os
    import sys
    import threading

    if code is None:
        code = 0
    elif not isinstance(code, int):
        _to_stderr(lambda: sys.stderr.write(f"{code}\n"))
        code = 1
    try:
        shutdown = getattr(threading, "_shutdown", None)  # what Py_FinalizeEx calls first
        if shutdown is not None:
            try:
                shutdown()
            except BaseException:  # noqa: BLE001 - printed and passed over, as the interpreter does
                import traceback

                _to_stderr(lambda: (sys.stderr.write(f"Exception ignored in: {threading!r}\n"),
                                    traceback.print_exc()))
        atexit._run_exitfuncs()  # each one's error is printed and the next runs, as at a normal exit
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                if stream is not None:  # None: the descriptor was closed when the process started
                    stream.flush()
            except Exception:  # noqa: BLE001 - a closed pipe (`| head`) or stream: nothing left to say there
                pass
        # as Python's own exit: the low byte of a code that fits a C long, 255 for one that does not
        os._exit(code & 0xFF if -2**63 <= code < 2**63 else 0xFF)


def _to_stderr(write) -> None:
    """`write()` to stderr on the way out; nothing when stderr is closed (None: its descriptor was closed
    when the process started) or the write fails (a closed pipe): the exit goes on either way."""
    import sys

    if sys.stderr is None:
        return
    try:
        write()
    except Exception:  # noqa: BLE001 - nothing can be said there, and the process must still end
        pass


def run_app(app, args: list[str], prog: str) -> int:
    """Run a Typer app; every user error is one line on stderr and its exit code, never a traceback."""
    import typer

    from utils.config import ConfigError

    try:
        code = app(args=args, prog_name=prog, standalone_mode=False)
        if code == INTERRUPTED:  # typer turns a Ctrl-C outside a run into this code, silently
            typer.echo("error: interrupted", err=True)
    except _click_error(typer, "NoArgsIsHelpError") as exc:
        exc.show()
        code = exc.exit_code
    except _click_error(typer, "UsageError") as exc:  # a misspelled option or value: one line, as for every error
        where = exc.ctx.command_path if exc.ctx else prog
        typer.echo(f"error: {where}: {exc.format_message()} (see {where} --help)", err=True)
        code = exc.exit_code
    except ConfigError as exc:
        typer.echo("\n".join(f"config error: {problem}" for problem in exc.problems), err=True)
        code = 2
    except typer.Abort:  # end of input where a prompt waited
        typer.echo("error: aborted: no more input", err=True)
        code = 1
    except Exception as exc:  # the pipeline's own errors are one line; anything else is a bug: traceback
        code = exit_code_for(exc)
        if code is None:
            raise
        typer.echo(f"error: {' '.join(str(exc).split())}", err=True)
    return code if isinstance(code, int) else 0
