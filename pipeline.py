"""MLB prediction pipeline: the command line. Each command parses its options and calls one function
that lives where its subject lives; utils/errors.py turns the pipeline's errors into one line and an
exit code: 0 success; 1 a module, a step, an input or the disk failed; 2 bad usage or invalid config.
"""
from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from modules.registry import REGISTRY
from utils.config import config_from_cli, today_in
from utils.engine.logging import setup_logging

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Nightly MLB win probabilities from Retrosheet and Lahman data.")
ConfigOpt = Annotated[Path, typer.Option("--config", envvar="MLB_CONFIG", help="the YAML config file")]
SetOpt = Annotated[Optional[list[str]], typer.Option("--set", help="override a config key: dotted.key=value")]
Policy = Enum("Policy", {p: p for p in ("warn", "skip", "fail", "overwrite")}, type=str)
DagFormat = Enum("DagFormat", {f: f for f in ("text", "dot", "mermaid", "markdown", "svg", "png")}, type=str)


def _show_version(asked: bool) -> None:
    if asked:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"mlb-pipeline {version('mlb-pipeline')}")
        except PackageNotFoundError:  # run from a checkout that was never installed
            typer.echo("mlb-pipeline (not installed: `make install`)")
        raise typer.Exit()


@app.callback()
def _root(version: Annotated[bool, typer.Option("--version", callback=_show_version, is_eager=True,
                                                help="print the installed version and exit")] = False) -> None:
    """Nightly MLB win probabilities from Retrosheet and Lahman data."""


@app.command()
def run(
    modules: Annotated[Optional[str], typer.Option("--modules", help="comma-separated ids, e.g. A,B,C")] = None,
    as_of: Annotated[Optional[str], typer.Option("--as-of",
                                                 help="YYYY-MM-DD; default today (schedule timezone)")] = None,
    overwrite_policy: Annotated[Optional[Policy], typer.Option("--overwrite-policy",
                                                               help="what to do with outputs that exist")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="plan only: write, download and start nothing")] = False,
    visual: Annotated[bool, typer.Option("--visual", help="also write dag_plan.dot/.svg and draw the DAG")] = False,
    legacy_executor: Annotated[bool, typer.Option("--legacy-executor", help="thread pool instead of Prefect")] = False,
    max_workers: Annotated[Optional[int], typer.Option("--max-workers", min=1, help="modules run at once")] = None,
    config: ConfigOpt = Path("config.yaml"),
    set_: SetOpt = None,
) -> None:
    """Run the pipeline (or, with --dry-run, show what a run would do)."""
    from utils.config import as_of_flag, with_as_of
    from utils.engine.session import run_command
    from utils.engine.versioning import VERSIONING
    from utils.monitoring.metrics import METRICS

    cfg = with_as_of(config_from_cli(config, set_, {
        "run.modules": modules.split(",") if modules else None, "run.as_of": as_of_flag(as_of),
        "run.overwrite_policy": overwrite_policy.value if overwrite_policy else None,
        "run.executor": "legacy" if legacy_executor else None, "run.max_workers": max_workers}))
    post_run = (VERSIONING, METRICS)  # the steps after the modules, in order: a new one is one PostRunHook
    raise typer.Exit(run_command(cfg, REGISTRY, dry_run, visual, Path.cwd(), _echo, post_run))


@app.command()
def backtest(
    season: Annotated[list[str], typer.Option(
        "--season", help="a season (2023), a range (2016-2024) or a list (2016,2018); repeatable")],
    out: Annotated[Optional[Path], typer.Option("--out", help="also copy the predictions here (one season)")] = None,
    serial: Annotated[bool, typer.Option("--serial", help="one season after another in this process, no Dask")] = False,
    dask_scheduler: Annotated[Optional[str], typer.Option(
        "--dask-scheduler", help="a running Dask scheduler, e.g. tcp://HOST:8786; default: a local cluster")] = None,
    config: ConfigOpt = Path("config.yaml"),
    set_: SetOpt = None,
) -> None:
    """Walk-forward backtests: retrain every model.retrain_every_days on earlier games only; several
    seasons run as tasks on a Dask cluster."""
    from utils.flows.scaleout import backtest_command

    cfg = config_from_cli(config, set_, {"backtest.dask_scheduler": dask_scheduler})
    raise typer.Exit(backtest_command(cfg, season, out, serial, today_in(cfg.sources.schedule.timezone), _echo))


@app.command("backtest-report")
def backtest_report(
    season: Annotated[list[int], typer.Option("--season", help="a backtested season; repeat for each")],
    min_games: Annotated[int, typer.Option("--min-games", min=1,
                                           help="show calibration bins with this many games")] = 100,
    tolerance: Annotated[float, typer.Option("--tolerance", min=0.0, max=1.0,
                                             help="calibration gap a bin may show")] = 0.02,
    config: ConfigOpt = Path("config.yaml"),
    set_: SetOpt = None,
) -> None:
    """Seasons already backtested, side by side and pooled: Brier against Elo, calibration, its tests."""
    from utils.flows.backtest import format_report, load_backtests, pooled_report

    frames = load_backtests(config_from_cli(config, set_), season)
    typer.echo(format_report(pooled_report(frames, tolerance, min_games)))


@app.command("dvc-yaml")
def dvc_yaml_command(
    check: Annotated[bool, typer.Option("--check", help="exit 1 if dvc.yaml differs from the registry")] = False,
) -> None:
    """Write dvc.yaml (one stage per module) from the registry."""
    from utils.engine.versioning import sync_dvc_yaml

    typer.echo(sync_dvc_yaml(REGISTRY, Path("dvc.yaml"), check))


@app.command()
def restore(
    run_id: Annotated[str, typer.Argument(help="a run id, as `pipeline.py runs` lists them")],
    artifacts: Annotated[list[str], typer.Argument(help="artifact names, e.g. predictions")],
    config: ConfigOpt = Path("config.yaml"),
    set_: SetOpt = None,
) -> None:
    """Put an earlier run's version of artifacts back in place (checked against that run's SHA-256)."""
    from utils.engine.versioning import restore_artifacts

    typer.echo("\n".join(restore_artifacts(config_from_cli(config, set_), run_id, artifacts)))


@app.command()
def diff(
    run_a: Annotated[str, typer.Argument(help="the earlier run's id")],
    run_b: Annotated[str, typer.Argument(help="the later run's id")],
    config: ConfigOpt = Path("config.yaml"),
    set_: SetOpt = None,
) -> None:
    """Per artifact: schema version, rows and hash of two runs, and the features whose drift score moved most."""
    from utils.engine.versioning import diff_run_ids

    typer.echo(diff_run_ids(config_from_cli(config, set_), run_a, run_b))


@app.command("validate-config")
def validate_config(config: ConfigOpt = Path("config.yaml"), set_: SetOpt = None) -> None:
    """Check the config; every problem is printed with its dotted key (exit 2)."""
    cfg = config_from_cli(config, set_)
    typer.echo(f"{config}: valid ({len(cfg.model_dump())} sections)")


@app.command()
def dag(
    fmt: Annotated[DagFormat, typer.Option(
        "--format", help="text, dot, mermaid or markdown to stdout; svg or png to a file")] = "text",
    out: Annotated[Optional[Path], typer.Option("--out", help="file for svg/png (default dag.<format>)")] = None,
) -> None:
    """Print or render the module DAG from the registry."""
    from utils.engine.plan import draw

    if out is not None and fmt.value not in ("svg", "png"):
        suffix = {"text": "txt", "mermaid": "mmd", "markdown": "md"}.get(fmt.value, fmt.value)
        raise typer.BadParameter(f"is for svg and png; {fmt.value} prints to stdout (redirect it: > dag.{suffix})",
                                 param_hint="'--out'")
    typer.echo(draw(REGISTRY, fmt.value, out), nl=fmt.value not in ("dot", "mermaid", "markdown"))


@app.command()
def status(config: ConfigOpt = Path("config.yaml"), set_: SetOpt = None) -> None:
    """The last run's phase status as a table."""
    from phase_status import latest_status_text

    typer.echo(latest_status_text(config_from_cli(config, set_).paths.artifacts))


@app.command()
def runs(
    last: Annotated[int, typer.Option("--last", min=1, help="show this many of the newest runs")] = 20,
    config: ConfigOpt = Path("config.yaml"),
    set_: SetOpt = None,
) -> None:
    """Past runs, newest last: id, as-of date, result, duration, and whether the run was versioned."""
    from phase_status import runs_table
    from utils.store.catalog import Catalog

    cfg = config_from_cli(config, set_)
    typer.echo(runs_table(Catalog(cfg.paths.artifacts, cfg.paths.schemas), last))


@app.command()
def cleanup(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="list what would be removed")] = False,
    config: ConfigOpt = Path("config.yaml"),
    set_: SetOpt = None,
) -> None:
    """Remove run outputs older than retention.days, and the derived caches' entries unused as long;
    never the latest good version of an artifact."""
    from utils.engine.cleanup import cleanup_report

    cfg = config_from_cli(config, set_)
    typer.echo(cleanup_report(Path(cfg.paths.artifacts), cfg.retention.days, dry_run,
                              Path(cfg.paths.cache_root) if cfg.paths.cache_root is not None else None))


Format = Enum("Format", {f: f for f in ("table", "csv", "json")}, type=str)
Lineups = Enum("Lineups", {m: m for m in ("expected", "confirmed")}, type=str)


@app.command()
def predictions(
    date: Annotated[Optional[str], typer.Option("--date", help="the night, YYYY-MM-DD (default: the latest run's)")]
    = None,
    fmt: Annotated[Format, typer.Option("--format", help="table for a person; csv and json as published")] = "table",
    lineups: Annotated[Optional[Lineups], typer.Option(
        "--lineups", help="the morning run's (expected) or the game-time run's (confirmed); default: the latest "
        "run's, or for an earlier night the game-time run's where there was one")] = None,
    config: ConfigOpt = Path("config.yaml"),
    set_: SetOpt = None,
) -> None:
    """A night's predictions: teams, starters, home win probability, expected runs, gamePk, lineups used."""
    import datetime as dt
    import re

    from modules.l_predict_monitor import published_night
    from utils.store.artifacts import ArtifactStore

    try:
        if date is not None and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", date):
            raise ValueError(date)
        day = dt.date.fromisoformat(date) if date is not None else None
    except ValueError:
        raise typer.BadParameter(f"'{date}' is not a date (YYYY-MM-DD)", param_hint="--date") from None
    text = published_night(ArtifactStore.from_config(config_from_cli(config, set_)), day, fmt.value,
                           lineups.value if lineups is not None else None)
    typer.echo(text, nl=fmt.value == "table")


def _echo(line: str, err: bool) -> None:
    typer.echo(line, err=err)


def _with_command(args: list[str]) -> list[str]:
    """`pipeline.py --modules ...` (no sub-command) means `run`."""
    return ["run", *args] if args and args[0].startswith("-") and args[0] not in ("--help", "-h", "--version") \
        else args


def run_cli(args: list[str]) -> int:
    """Run a command in this process and return its exit code (for the Prefect nightly flow)."""
    try:
        main(list(args))
    except SystemExit as done:
        return done.code if isinstance(done.code, int) else 0
    return 0


def main(argv: list[str] | None = None) -> None:
    """Run a command; its exit code is raised as SystemExit (a caller in this process may catch it)."""
    from utils.errors import run_app

    setup_logging()
    raise SystemExit(run_app(app, _with_command(list(sys.argv[1:] if argv is None else argv)), "pipeline.py"))


def cli() -> None:
    """The process's entry point (`python pipeline.py`, the `mlb-pipeline` script): `main`, then the exit
    through utils.errors.exit_process, which ends the process once Python's exit work is done (a native
    library's teardown must not turn a finished run's exit code into a crash)."""
    from utils.errors import exit_process

    try:
        main()
    except SystemExit as done:
        exit_process(done.code)
    except Exception:  # a bug: its traceback, as Python prints one, and exit 1
        import traceback

        traceback.print_exc()
        exit_process(1)


if __name__ == "__main__":
    cli()
