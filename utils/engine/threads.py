"""LightGBM's threads on a machine it shares.

OpenMP's threads spin while they wait for each other. On this 2-core machine, with one other busy
process, two spinning LightGBM threads fight that process for the cores: a 200-tree fit went from
1.9 s to 6.4 s (and to 39 s with a longer spin), the 2023 backtest from 129 s to 345 s
(bench/probe_openmp.py, bench/bench_threads.py). Waiting passively (OMP_WAIT_POLICY=PASSIVE)
avoids the fight but makes every idle fit slower (3.1 s instead of 1.9 s).

So the thread count is chosen at each fit from what the machine has free: `model.num_threads` at
most, fewer when other processes keep cores busy (measured from the system's and this process's
CPU times since the last fit), never fewer than one. It is applied through threadpoolctl as an
OpenMP limit, not as LightGBM's `num_threads` parameter, so the saved models do not record it:
with `deterministic` and `force_row_wise`, LightGBM grows the same trees on any number of threads
(tests/test_module_k.py), and the models stay byte-identical whatever the load.
"""
from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from typing import Iterator

import psutil

log = logging.getLogger("mlb.threads")
FIRST_LOOK_S = 0.3  # the first fit of a process looks at the machine this long
MIN_WINDOW_S = 0.2  # a shorter window since the last look says too little; the last estimate stands
BUSY_ROUNDING = 0.5  # a core counts as taken when other processes keep it at least half busy


def _busy_seconds() -> float:
    times = psutil.cpu_times()
    return sum(getattr(times, name, 0.0) for name in ("user", "nice", "system", "irq", "softirq", "steal"))


def _own_seconds() -> float:
    times = psutil.Process().cpu_times()
    return times.user + times.system


class CpuWatch:
    """Cores other processes kept busy since the last look (this process's own threads excluded)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._last: tuple[float, float, float] | None = None
        self._estimate = 0.0

    def others_busy(self) -> float:
        with self._lock:
            if self._last is None:
                self._last = (time.monotonic(), _busy_seconds(), _own_seconds())
                time.sleep(FIRST_LOOK_S)
            now = (time.monotonic(), _busy_seconds(), _own_seconds())
            wall = now[0] - self._last[0]
            if wall >= MIN_WINDOW_S:
                self._estimate = max(0.0, ((now[1] - self._last[1]) - (now[2] - self._last[2])) / wall)
                self._last = now
            return self._estimate


WATCH = CpuWatch()


def usable_cores() -> int:
    """The cores this process may run on (its affinity: a container's or taskset's limit)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def threads_free(wanted: int, cores: int | None = None, others: float | None = None) -> int:
    """At most `wanted`, at least 1: the cores no other process keeps busy."""
    cores = cores or usable_cores()
    others = WATCH.others_busy() if others is None else others
    return max(1, min(wanted, int(cores - others + BUSY_ROUNDING)))


@contextlib.contextmanager
def openmp_threads(wanted: int) -> Iterator[int]:
    """OpenMP limited, in this thread, to the threads free now; yields the count."""
    import lightgbm  # noqa: F401 (threadpoolctl limits only the OpenMP libraries already loaded)
    import sklearn.linear_model  # noqa: F401
    from threadpoolctl import threadpool_limits

    threads = threads_free(wanted)
    if threads < wanted:
        log.debug("other processes keep cores busy: %d of %d OpenMP threads", threads, wanted)
    with threadpool_limits(limits=threads, user_api="openmp"):
        yield threads
