"""Progress bars for long work: the first ingest's seasons, a backtest's retrains.

Shown on stderr only when stderr is a terminal (rich, which Typer already brings); under cron or a
pipe there is no bar at all, so the log stays one line per module. Transient: a finished bar is
erased, leaving the log as it was.
"""
from __future__ import annotations

import contextlib
from typing import Callable, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

QUIET = False  # set in a Dask worker: its bars would draw over the caller's, on the same terminal


@contextlib.contextmanager
def progress(description: str, total: int, console: Console | None = None) -> Iterator[Callable[..., None]]:
    """Yields `step(label)`, called as each unit starts: the one before it is done, `label` is underway.
    `step(label, done=True)` instead marks `label` itself done (work that finishes out of order)."""
    console = console or Console(stderr=True)
    if QUIET or not console.is_terminal or total < 2:
        yield lambda label="", done=False: None
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[label]}"),
               TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn())
    # stdout stays the command's own (a season's table goes where the user sent it); log lines on
    # stderr print above the bar
    with Progress(*columns, console=console, transient=True, redirect_stdout=False) as bar:
        task = bar.add_task(description, total=total, label="")
        started = []

        def step(label: str = "", done: bool = False) -> None:
            bar.update(task, advance=1 if started or done else 0, label=label)
            started.append(label)

        yield step
