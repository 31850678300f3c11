"""Performance and scale-out: progress bars, season ranges, backtests on a real Dask cluster."""
import hashlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from tests.conftest import ROOT, free_port, run_pipeline, stop, wait_for
from utils.engine.progress import progress


def test_a_progress_bar_only_on_a_terminal():
    shown = io.StringIO()
    with progress("2023 retrains", 3, Console(file=shown, force_terminal=True, width=100)) as step:
        for day in ("2023-03-30", "2023-04-06", "2023-04-13"):
            step(day)
    assert "2023 retrains" in shown.getvalue() and "2023-04-13" in shown.getvalue()
    piped = io.StringIO()
    with progress("2023 retrains", 3, Console(file=piped, force_terminal=False)) as step:
        for day in ("2023-03-30", "2023-04-06", "2023-04-13"):
            step(day)
    assert piped.getvalue() == ""  # cron's log stays one line per module


def test_seasons_on_dask_without_the_dask_extra_is_one_line_naming_the_extra(toy_cfg, monkeypatch):
    import datetime as dt

    from utils.flows.backtest import BacktestError
    from utils.flows.scaleout import backtest_seasons

    monkeypatch.setitem(sys.modules, "distributed", None)  # as on a cron host installed without `.[dask]`
    with pytest.raises(BacktestError, match=r"^several seasons run on Dask, which is not installed: .*'dask' "
                                            r"extra .*--serial$"):
        backtest_seasons(toy_cfg, [2022, 2023], dt.date(2024, 7, 14), serial=False)


def backtest_settings(mirror, root) -> list[str]:
    """Two short backtests: one season of history, a retrain every two months."""
    return ["--set", f"sources.retrosheet.base_url={mirror}", "--set", f"paths.artifacts={root}",
            "--set", "data.first_season=2018", "--set", "model.train_seasons=1", "--set", "model.retrain_every_days=60"]


@pytest.fixture
def dask_cluster(tmp_path):
    """A real `dask scheduler` and two `dask worker` processes on 127.0.0.1, started where the
    pipeline is not (tmp_path) with the pipeline importable, as a cluster's workers are."""
    dask = str(Path(sys.executable).parent / "dask")
    address = f"tcp://127.0.0.1:{free_port()}"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    log = (tmp_path / "dask.log").open("w")
    procs = [subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", address.rsplit(":", 1)[1],
                               "--no-dashboard"], cwd=tmp_path, env=env, stdout=log, stderr=log)]
    try:
        for n in range(2):
            procs.append(subprocess.Popen([dask, "worker", address, "--nthreads", "1", "--no-dashboard",
                                           "--local-directory", str(tmp_path / f"worker{n}")],
                                          cwd=tmp_path, env=env, stdout=log, stderr=log))
        from distributed import Client

        def two_workers():
            with Client(address, timeout="5s") as client:
                return len(client.scheduler_info()["workers"]) == 2

        wait_for(two_workers, "a Dask scheduler with two workers", seconds=90)
        yield address
    finally:
        stop(procs[::-1], grace=3)
        log.close()


@pytest.mark.slow
@pytest.mark.server
def test_seasons_on_a_real_dask_cluster_are_the_serial_run_byte_for_byte(dask_cluster, mirror, tmp_path):
    serial = run_pipeline("backtest", "--season", "2019-2020", "--serial", *backtest_settings(mirror, tmp_path / "s"))
    assert serial.returncode == 0, serial.stderr[-2000:]
    spread = run_pipeline("backtest", "--season", "2019,2020", "--dask-scheduler", dask_cluster,
                          *backtest_settings(mirror, tmp_path / "d"))
    assert spread.returncode == 0, spread.stderr[-2000:]
    for season in (2019, 2020):
        for name in ("backtest.parquet", "backtest_summary.json"):
            made = [(tmp_path / run / "backtest" / str(season) / "data" / name) for run in ("s", "d")]
            assert made[0].read_bytes() == made[1].read_bytes(), made
            sidecars = [json.loads(Path(f"{path}.meta.json").read_text())["sha256"] for path in made]
            assert sidecars[0] == sidecars[1] == hashlib.sha256(made[0].read_bytes()).hexdigest()
        assert f"season {season}: " in spread.stdout
    from distributed import Client

    with Client(dask_cluster, timeout="5s") as client:  # the seasons ran as the cluster's tasks
        keys = client.run_on_scheduler(lambda dask_scheduler: sorted(
            {str(t[0]).rsplit("-", 1)[0] for t in dask_scheduler.transition_log
             if str(t[0]).startswith("backtest-")}))
    assert keys == ["backtest-2019", "backtest-2020"]


def test_season_ranges_and_lists_parse_and_nonsense_is_exit_2(tmp_path, capsys):
    from tests.test_faults import cli
    from utils.flows.scaleout import parse_seasons

    assert parse_seasons(["2016-2018", "2022,2023", "2018"], 2026) == [2016, 2017, 2018, 2022, 2023]
    for bad, why in (("2024-2016", "not a range"), ("20x3", "not a season"), ("2016-20240", "not a season"),
                     ("0000", "outside the seasons there are, 1871-"), ("2020-9999", "outside the seasons")):
        code, _, err = cli(capsys, "backtest", "--season", bad, "--set", f"paths.artifacts={tmp_path}")
        assert code == 2 and why in err and len(err.strip().splitlines()) == 1, err
    code, _, err = cli(capsys, "backtest", "--season", "2022-2023", "--out", str(tmp_path / "x.parquet"),
                       "--set", f"paths.artifacts={tmp_path}")
    assert code == 2 and "--out: one file holds one season's predictions, not 2" in err
    code, _, err = cli(capsys, "backtest", "--season", "2022-2023", "--dask-scheduler", "http://127.0.0.1:1",
                       "--set", f"paths.artifacts={tmp_path}")
    assert code == 1 and err.strip().startswith("error: Dask scheduler http://127.0.0.1:1: ")
    assert len(err.strip().splitlines()) == 1
