"""Tiny stages registered by the tests only, to exercise the orchestration without real data.

Each is a pure function of its inputs, as the real stages are; the runner loads and writes."""
from __future__ import annotations

import os
import signal
import time

import pandas as pd

from utils.engine.stages import ModuleSpec, Registry, StageOutput


def numbers() -> StageOutput:
    return StageOutput({"numbers": pd.DataFrame({"n": [1, 2, 3], "label": ["a", "b", "c"]})}, {"rows": 3})


def doubled(numbers: pd.DataFrame) -> pd.DataFrame:
    return numbers.assign(n=numbers["n"] * 2)


def squared(numbers: pd.DataFrame) -> pd.DataFrame:
    return numbers.assign(n=numbers["n"] ** 2)


def summary(doubled: pd.DataFrame, squared: pd.DataFrame) -> dict:
    return {"total": int(doubled["n"].sum() + squared["n"].sum())}


def broken(numbers: pd.DataFrame) -> pd.DataFrame:
    raise ValueError("numbers.parquet row 2: deliberate failure")


def invalid(numbers: pd.DataFrame) -> pd.DataFrame:
    """A frame that breaks its contract (a negative n)."""
    return pd.DataFrame({"n": [-1], "label": ["x"]})


def pair_then_fail(numbers: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two outputs, the first valid and the second breaking its contract: neither may replace the old one."""
    return pd.DataFrame({"n": [100], "label": ["z"]}), pd.DataFrame({"n": [-100], "label": ["z"]})


def pair(numbers: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    return doubled(numbers), squared(numbers)


def sleepy(numbers: pd.DataFrame) -> pd.DataFrame:
    """Runs for a minute unless the run is stopped (the interrupt tests)."""
    time.sleep(60)
    return doubled(numbers)


def signalled_on_its_thread(numbers: pd.DataFrame) -> pd.DataFrame:
    """A SIGTERM delivered to the module's own thread, not the main one (the kernel may pick any thread
    for a signal sent to the process), then a minute's work."""
    import threading

    signal.pthread_kill(threading.get_ident(), signal.SIGTERM)
    time.sleep(60)
    return doubled(numbers)


def killed(numbers: pd.DataFrame) -> pd.DataFrame:
    os.kill(os.getpid(), signal.SIGKILL)
    raise AssertionError("unreachable")


def pair_registry(target: str = "pair") -> Registry:
    """numbers -> one stage making both doubled and squared -> summary."""
    return Registry([
        ModuleSpec("N", "numbers", "tests.toy_modules:numbers", (), ("numbers",)),
        ModuleSpec("P", "pair", f"tests.toy_modules:{target}", ("numbers",), ("doubled", "squared")),
        ModuleSpec("T", "summary", "tests.toy_modules:summary", ("doubled", "squared"), ("summary",)),
    ])


def toy_registry(middle: str = "doubled") -> Registry:
    """numbers -> (doubled, squared) -> summary; `middle` swaps the doubled step for a failing one."""
    return Registry([
        ModuleSpec("N", "numbers", "tests.toy_modules:numbers", (), ("numbers",)),
        ModuleSpec("D", "doubled", f"tests.toy_modules:{middle}", ("numbers",), ("doubled",)),
        ModuleSpec("S", "squared", "tests.toy_modules:squared", ("numbers",), ("squared",)),
        ModuleSpec("J", "reserved", "", reserved=True),
        ModuleSpec("T", "summary", "tests.toy_modules:summary", ("doubled", "squared"), ("summary",)),
    ])
