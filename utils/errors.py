"""The pipeline's own errors and their exit codes: each is one line naming the file, key or row.

2 for bad usage (a plan that cannot run, a run id that names no run); 1 for everything that went
wrong with inputs, artifacts, the lock, the disk or a step. Anything else is a bug, and keeps its
traceback.
"""
from __future__ import annotations


def exit_code_for(exc: BaseException) -> int | None:
    """The exit code of one of the pipeline's own errors; None for anything else."""
    from phase_status import StatusError
    from utils.artifacts import ArtifactError
    from utils.backtest import BacktestError
    from utils.locking import LockError, LockHeld
    from utils.plan import PlanError
    from utils.schema import SchemaError
    from utils.versioning import RunNotFound, VersioningError

    if isinstance(exc, (PlanError, RunNotFound)):
        return 2
    if isinstance(exc, (ArtifactError, BacktestError, LockError, LockHeld, SchemaError, StatusError,
                        VersioningError, OSError)):
        return 1
    return None
