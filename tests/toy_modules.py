"""Tiny modules registered by the tests only, to exercise the orchestration without real data."""
from __future__ import annotations

import os
import signal

import pandas as pd

from modules.registry import ModuleResult, ModuleSpec, Registry
from utils.artifacts import ArtifactStore


def numbers(cfg) -> ModuleResult:
    store = ArtifactStore.from_config(cfg)
    frame = pd.DataFrame({"n": [1, 2, 3], "label": ["a", "b", "c"]})
    return ModuleResult([store.write_frame("numbers", frame)], metrics={"rows": 3})


def doubled(cfg) -> ModuleResult:
    store = ArtifactStore.from_config(cfg)
    frame = store.read_frame("numbers")
    return ModuleResult([store.write_frame("doubled", frame.assign(n=frame["n"] * 2))])


def squared(cfg) -> ModuleResult:
    store = ArtifactStore.from_config(cfg)
    frame = store.read_frame("numbers")
    return ModuleResult([store.write_frame("squared", frame.assign(n=frame["n"] ** 2))])


def summary(cfg) -> ModuleResult:
    store = ArtifactStore.from_config(cfg)
    total = int(store.read_frame("doubled")["n"].sum() + store.read_frame("squared")["n"].sum())
    return ModuleResult([store.write_json("summary", {"total": total})])


def broken(cfg) -> ModuleResult:
    raise ValueError("numbers.parquet row 2: deliberate failure")


def invalid(cfg) -> ModuleResult:
    """Writes a frame that breaks its contract (a negative n)."""
    store = ArtifactStore.from_config(cfg)
    return ModuleResult([store.write_frame("doubled", pd.DataFrame({"n": [-1], "label": ["x"]}))])


def pair_then_fail(cfg) -> ModuleResult:
    """Writes both its outputs, then fails: neither may replace the previous one."""
    store = ArtifactStore.from_config(cfg)
    store.write_frame("doubled", pd.DataFrame({"n": [100], "label": ["z"]}))
    store.write_frame("squared", pd.DataFrame({"n": [100], "label": ["z"]}))
    raise ValueError("deliberate failure after writing both outputs")


def pair(cfg) -> ModuleResult:
    store = ArtifactStore.from_config(cfg)
    frame = store.read_frame("numbers")
    return ModuleResult([store.write_frame("doubled", frame.assign(n=frame["n"] * 2)),
                         store.write_frame("squared", frame.assign(n=frame["n"] ** 2))])


def sleepy(cfg) -> ModuleResult:
    """Runs for a minute unless the run is stopped (the interrupt tests)."""
    import time

    time.sleep(60)
    return doubled(cfg)


def killed(cfg) -> ModuleResult:
    os.kill(os.getpid(), signal.SIGKILL)
    raise AssertionError("unreachable")


def pair_registry(target: str = "pair") -> Registry:
    """numbers -> one module making both doubled and squared -> summary."""
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
