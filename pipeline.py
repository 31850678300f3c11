"""MLB prediction pipeline: the command line.

    python pipeline.py run [--modules A,B,...] [--as-of YYYY-MM-DD] [--overwrite-policy warn|skip|fail|overwrite]
                           [--dry-run] [--visual] [--legacy-executor] [--max-workers N] [--config PATH] [--set k=v ...]
    python pipeline.py backtest --season YYYY [--out PATH]
    python pipeline.py validate-config | dag | status | cleanup

Exit codes: 0 success; 1 a module failed (or another run holds the lock); 2 bad usage or invalid config.
"""
from __future__ import annotations

import datetime as dt
import logging
import shutil
import subprocess
import sys
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Annotated, Iterator, Optional

import typer
import yaml

from modules.registry import REGISTRY
from utils.artifacts import ArtifactStore
from utils.catalog import Catalog
from utils.config import ConfigError, PipelineConfig, build_config, load_config, load_yaml, today_in
from utils.logging import setup_logging
from utils.plan import Plan, PlanError, ascii_dag, dag_dot, describe_outputs, make_plan, plan_text

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Nightly MLB win probabilities from Retrosheet and Lahman data.")
log = logging.getLogger("mlb.cli")

ConfigOpt = Annotated[Path, typer.Option("--config", help="YAML config file")]
SetOpt = Annotated[Optional[list[str]], typer.Option("--set", help="override a key: dotted.key=value")]


class Policy(str, Enum):
    warn = "warn"
    skip = "skip"
    fail = "fail"
    overwrite = "overwrite"


class DagFormat(str, Enum):
    text = "text"
    dot = "dot"
    svg = "svg"
    png = "png"


def fail(message: str, code: int) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def config_or_exit(path: Path, overrides: list[str] | None) -> PipelineConfig:
    try:
        return load_config(path, overrides)
    except ConfigError as exc:
        for problem in exc.problems:
            typer.echo(f"config error: {problem}", err=True)
        raise typer.Exit(2) from None


def apply_cli(cfg: PipelineConfig, flags: dict[str, object], warn: bool = True) -> PipelineConfig:
    """CLI flags override the config; a flag that contradicts a deliberately set config value warns naming both."""
    defaults = PipelineConfig()
    overrides = []
    for dotted, value in flags.items():
        if value is None:
            continue
        section, key = dotted.split(".")
        current, default = getattr(getattr(cfg, section), key), getattr(getattr(defaults, section), key)
        try:
            typed = load_yaml(value) if isinstance(value, str) else value  # as --set would type it
        except (yaml.YAMLError, ValueError, RecursionError):
            raise fail(f"--{key.replace('_', '-')}: '{value}' is not a valid value", 2) from None
        if warn and current != default and str(current) != str(typed):
            typer.echo(f"warning: command line sets {dotted}={value}, overriding {dotted}={current} from the config",
                       err=True)
        overrides.append(f"{dotted}={value}")
    try:
        return build_config(cfg.model_dump(mode="json"), overrides)
    except ConfigError as exc:
        raise fail(exc.problems[0], 2) from None


def write_visual(selected: list[str], out_dir: Path) -> list[Path]:
    """dag_plan.dot always; dag_plan.svg when graphviz's `dot` is on PATH."""
    dot_path = out_dir / "dag_plan.dot"
    dot_path.write_text(dag_dot(REGISTRY, selected))
    written = [dot_path]
    if shutil.which("dot"):
        svg = out_dir / "dag_plan.svg"
        subprocess.run(["dot", "-Tsvg", str(dot_path), "-o", str(svg)], check=True, timeout=30)
        written.append(svg)
    else:
        typer.echo("note: graphviz 'dot' not found; wrote dag_plan.dot only", err=True)
    return written


@app.command()
def run(
    modules: Annotated[Optional[str], typer.Option("--modules", help="comma-separated ids, e.g. A,B,C")] = None,
    as_of: Annotated[Optional[str], typer.Option("--as-of", help="YYYY-MM-DD; default today (schedule timezone)")] = None,
    overwrite_policy: Annotated[Optional[Policy], typer.Option("--overwrite-policy")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="plan only: write, download and start nothing")] = False,
    visual: Annotated[bool, typer.Option("--visual", help="also write dag_plan.dot/.svg and draw the DAG")] = False,
    legacy_executor: Annotated[bool, typer.Option("--legacy-executor", help="thread pool instead of Prefect")] = False,
    max_workers: Annotated[Optional[int], typer.Option("--max-workers", min=1)] = None,
    config: ConfigOpt = Path("config.yaml"),
    set_: SetOpt = None,
) -> None:
    """Run the pipeline (or, with --dry-run, show what a run would do)."""
    setup_logging()
    cfg = config_or_exit(config, set_)
    if as_of is not None:
        try:
            dt.date.fromisoformat(as_of)
        except ValueError:
            raise fail(f"--as-of: '{as_of}' is not a date YYYY-MM-DD", 2) from None
    cfg = apply_cli(cfg, {
        "run.modules": f"[{modules}]" if modules else None,
        "run.as_of": as_of,
        "run.overwrite_policy": overwrite_policy.value if overwrite_policy else None,
        "run.executor": "legacy" if legacy_executor else None,
        "run.max_workers": max_workers,
    })
    if cfg.run.as_of is None:
        cfg = apply_cli(cfg, {"run.as_of": today_in(cfg.sources.schedule.timezone).isoformat()}, warn=False)
    store = ArtifactStore.from_config(cfg)
    try:
        plan = make_plan(REGISTRY, cfg.run.modules, store)
        for name in {out for m in plan.modules for out in REGISTRY[m].outputs}:
            store.contract(name)
    except (PlanError, ValueError) as exc:
        raise fail(str(exc), 2) from None
    for note in plan.notes:
        typer.echo(f"note: {note}", err=True)
    if dry_run:
        typer.echo(f"dry run: as of {cfg.run.as_of}, executor {cfg.run.executor}, max_workers {cfg.run.max_workers}, "
                   f"overwrite policy {cfg.run.overwrite_policy}, artifacts in {cfg.paths.artifacts}")
        typer.echo(plan_text(REGISTRY, plan, describe_outputs(REGISTRY, plan, store, cfg.run.overwrite_policy, cfg)))
        if visual:
            typer.echo("\n" + ascii_dag(REGISTRY, plan))
            for path in write_visual(plan.modules, Path.cwd()):
                typer.echo(f"wrote {path}")
        return
    if visual:
        write_visual(plan.modules, Path.cwd())
    raise typer.Exit(_execute(cfg, plan, store))


def _execute(cfg: PipelineConfig, plan, store: ArtifactStore) -> int:
    from phase_status import status_table
    from utils.artifacts import ArtifactError
    from utils.locking import LockError, LockHeld
    from utils.runner import run_session

    try:
        status = run_session(cfg, REGISTRY, plan, store)
    except (LockHeld, LockError, ArtifactError) as exc:
        typer.echo(f"error: {exc}", err=True)
        return 1
    except OSError as exc:  # a full or read-only disk under the status, the log or a run folder
        kept = "the previous status is unchanged" if getattr(exc, "status_untouched", False) else \
            "the run's status may be incomplete"
        typer.echo(f"error: {exc.filename or store.root}: {exc.strerror or exc}; {kept}", err=True)
        return 1
    typer.echo(status_table(status))
    for phase in status.phases.values():
        if phase.status == "failed":
            typer.echo(f"error: module {phase.module} ({phase.name}) failed: {phase.error}", err=True)
    for name, step in status.steps.items():
        if step.status == "failed":
            typer.echo(f"error: {name}: {step.error}", err=True)
    return 0 if status.ok else 1


@app.command()
def backtest(
    season: Annotated[int, typer.Option("--season", min=1871, max=2100, help="season to replay, e.g. 2023")],
    out: Annotated[Optional[Path], typer.Option("--out", help="also copy the predictions table here")] = None,
    config: ConfigOpt = Path("config.yaml"),
    set_: SetOpt = None,
) -> None:
    """Walk-forward backtest of one season: retrain every model.retrain_every_days on earlier games only."""
    from utils.backtest import BacktestError, format_season, run_backtest

    cfg = config_or_exit(config, set_)
    try:
        summary, predictions = run_backtest(cfg, season, today_in(cfg.sources.schedule.timezone))
    except BacktestError as exc:
        raise fail(str(exc), 1) from None
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(predictions, out)
    typer.echo(format_season(summary))
    typer.echo(f"predictions: {out or predictions}")


@app.command("backtest-report")
def backtest_report(
    season: Annotated[list[int], typer.Option("--season", help="a backtested season; repeat for each")],
    min_games: Annotated[int, typer.Option("--min-games", min=1, help="show calibration bins with this many games")] = 100,
    tolerance: Annotated[float, typer.Option("--tolerance", min=0.0, max=1.0, help="calibration gap a bin may show")] = 0.02,
    config: ConfigOpt = Path("config.yaml"),
    set_: SetOpt = None,
) -> None:
    """Seasons already backtested, side by side and pooled: Brier against Elo, calibration, its tests."""
    from utils.artifacts import ArtifactError
    from utils.backtest import format_report, pooled_report

    cfg = config_or_exit(config, set_)
    frames = {}
    for year in dict.fromkeys(season):
        store = ArtifactStore(Catalog(cfg.paths.artifacts, cfg.paths.schemas).backtest(year).root, cfg.paths.schemas)
        if not store.resolve_output_path("backtest").exists():
            raise fail(f"{store.resolve_output_path('backtest')}: no backtest of {year}; "
                       f"run `python pipeline.py backtest --season {year}` first", 1)
        try:
            frames[year] = store.read_frame("backtest")
        except ArtifactError as exc:
            raise fail(str(exc), 1) from None
    typer.echo(format_report(pooled_report(frames, tolerance, min_games)))


@app.command("dvc-yaml")
def dvc_yaml_command(
    check: Annotated[bool, typer.Option("--check", help="exit 1 if dvc.yaml differs from the registry")] = False,
) -> None:
    """Write dvc.yaml (one stage per module) from the registry."""
    from utils.versioning import TRACKED_ROOT, dvc_yaml, write_text_if_changed

    text = dvc_yaml(REGISTRY, ArtifactStore(TRACKED_ROOT, Path("schemas")))
    if check:
        current = Path("dvc.yaml").read_text() if Path("dvc.yaml").exists() else ""
        if current != text:
            raise fail("dvc.yaml differs from the registry; run `python pipeline.py dvc-yaml`", 1)
        typer.echo("dvc.yaml matches the registry")
        return
    typer.echo("wrote dvc.yaml" if write_text_if_changed(Path("dvc.yaml"), text) else "dvc.yaml unchanged")


def _run_dir(cfg: PipelineConfig, run_id: str) -> Path:
    """The folder of run `run_id`: an id of the pipeline's own format, inside the artifacts root, no link."""
    from utils.artifacts import ArtifactError
    from utils.catalog import Catalog

    catalog = Catalog(cfg.paths.artifacts, cfg.paths.schemas)
    try:
        run_dir, manifest = catalog.run_dir(run_id), catalog.run_file(run_id, "manifest")
    except ArtifactError as exc:
        code = 2 if "is not a run id" in str(exc) else 1
        raise fail(f"{exc}; see `python pipeline.py status`" if code == 2 else str(exc), code) from None
    if not manifest.is_file():
        raise fail(f"{run_dir}: no such run (see {catalog.runs_dir})", 2)
    return run_dir


@contextmanager
def _locked(root: Path) -> Iterator[None]:
    """Hold the run lock of an artifacts root, as a run does, while a command changes it (restore,
    cleanup); exit 1 naming the holder when a run has it."""
    from utils.locking import LockError, LockHeld, RunLock

    try:
        lock = RunLock(root).acquire()
    except (LockHeld, LockError) as exc:
        raise fail(str(exc), 1) from None
    try:
        yield
    finally:
        lock.release()


@app.command()
def restore(
    run_id: Annotated[str, typer.Argument(help="a folder name under <artifacts>/runs")],
    artifacts: Annotated[list[str], typer.Argument(help="artifact names, e.g. predictions")],
    config: ConfigOpt = Path("config.yaml"),
    set_: SetOpt = None,
) -> None:
    """Put an earlier run's version of artifacts back in place (checked against that run's SHA-256)."""
    from utils.artifacts import ArtifactError
    from utils.schema import SchemaError
    from utils.versioning import VersioningError, restore as restore_artifact, version_store

    cfg = config_or_exit(config, set_)
    run_dir = _run_dir(cfg, run_id)
    versions = version_store(cfg)
    if versions is None:
        raise fail("versioning is off or does not track this artifacts root; nothing to restore from", 2)
    store = ArtifactStore.from_config(cfg)
    with _locked(store.root):
        for name in artifacts:
            try:
                digest = restore_artifact(store, versions, run_dir, name, versions.repo)
            except (VersioningError, ArtifactError, SchemaError, OSError) as exc:
                raise fail(str(exc), 1) from None
            typer.echo(f"restored {name} from {run_id}: sha256 {digest}")


@app.command()
def diff(
    run_a: Annotated[str, typer.Argument()],
    run_b: Annotated[str, typer.Argument()],
    config: ConfigOpt = Path("config.yaml"),
    set_: SetOpt = None,
) -> None:
    """Per artifact: schema version, rows and hash of two runs, and the features whose PSI moved most."""
    from phase_status import StatusError
    from utils.versioning import diff_runs, version_store

    cfg = config_or_exit(config, set_)
    runs = [_run_dir(cfg, r) for r in (run_a, run_b)]
    try:
        typer.echo(diff_runs(ArtifactStore.from_config(cfg), version_store(cfg), runs))
    except StatusError as exc:
        raise fail(str(exc), 1) from None


@app.command("validate-config")
def validate_config(config: ConfigOpt = Path("config.yaml"), set_: SetOpt = None) -> None:
    """Check the config; every problem is printed with its dotted key (exit 2)."""
    cfg = config_or_exit(config, set_)
    typer.echo(f"{config}: valid ({len(cfg.model_dump())} sections)")


@app.command()
def dag(
    fmt: Annotated[DagFormat, typer.Option("--format")] = DagFormat.text,
    out: Annotated[Optional[Path], typer.Option("--out", help="file for svg/png (default dag.<format>)")] = None,
) -> None:
    """Print or render the module DAG from the registry."""
    if fmt is DagFormat.text:
        modules = [s.id for s in REGISTRY.runnable]
        typer.echo(ascii_dag(REGISTRY, Plan(modules, REGISTRY.levels(modules))))
        return
    source = dag_dot(REGISTRY)
    if fmt is DagFormat.dot:
        typer.echo(source, nl=False)
        return
    if not shutil.which("dot"):
        raise fail("graphviz 'dot' is not installed; use --format dot or text", 1)
    target = out or Path(f"dag.{fmt.value}")
    subprocess.run(["dot", f"-T{fmt.value}", "-o", str(target)], input=source, text=True, check=True, timeout=30)
    typer.echo(f"wrote {target}")


@app.command()
def status(config: ConfigOpt = Path("config.yaml"), set_: SetOpt = None) -> None:
    """The last run's phase status as a table."""
    from phase_status import StatusError, read_status, status_table
    from utils.artifacts import ArtifactError
    from utils.locking import RunLock

    cfg = config_or_exit(config, set_)
    try:
        current = read_status(cfg.paths.artifacts, run_alive=RunLock(cfg.paths.artifacts).is_held())
    except (StatusError, ArtifactError) as exc:
        raise fail(str(exc), 1) from None
    if current is None:
        typer.echo(f"no run recorded under {cfg.paths.artifacts}")
        return
    typer.echo(status_table(current))


@app.command()
def runs(
    last: Annotated[int, typer.Option("--last", min=1, help="show this many of the newest runs")] = 20,
    config: ConfigOpt = Path("config.yaml"),
    set_: SetOpt = None,
) -> None:
    """Past runs, newest last: id, as-of date, result, duration, and whether the run was versioned."""
    from phase_status import runs_table

    cfg = config_or_exit(config, set_)
    catalog = Catalog(cfg.paths.artifacts, cfg.paths.schemas)
    typer.echo(runs_table(catalog, last))


@app.command()
def cleanup(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="list what would be removed")] = False,
    config: ConfigOpt = Path("config.yaml"),
    set_: SetOpt = None,
) -> None:
    """Remove run outputs older than retention.days; never the latest good version of an artifact."""
    from utils.artifacts import ArtifactError
    from utils.cleanup import cleanup_runs

    cfg = config_or_exit(config, set_)
    root = Path(cfg.paths.artifacts)
    try:
        with _locked(root):
            removed = cleanup_runs(root, cfg.retention.days, dry_run=dry_run)
    except (ArtifactError, OSError) as exc:
        raise fail(str(exc), 1) from None
    verb = "would remove" if dry_run else "removed"
    for path in removed:
        typer.echo(f"{verb} {path}")
    typer.echo(f"{verb} {len(removed)} run folder(s) older than {cfg.retention.days} days")


def _with_command(args: list[str]) -> list[str]:
    """`pipeline.py --modules ...` (no sub-command) means `run`."""
    if args and args[0].startswith("-") and args[0] not in ("--help", "-h"):
        return ["run", *args]
    return args


def run_cli(args: list[str]) -> int:
    """Run a command in this process and return its exit code (for the Prefect nightly flow)."""
    code = app(args=_with_command(list(args)), prog_name="pipeline.py", standalone_mode=False)
    return code if isinstance(code, int) else 0


def _click_error(name: str) -> type[Exception] | tuple:
    """click's exception class `name` as this typer raises it (newer typers vendor their own click);
    () if this click has no such class, which an except clause then never matches."""
    usage = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")
    return usage if name == "UsageError" else getattr(sys.modules[usage.__module__], name, ())


def main(argv: list[str] | None = None) -> None:
    args = _with_command(list(sys.argv[1:] if argv is None else argv))
    setup_logging()
    try:
        code = app(args=args, prog_name="pipeline.py", standalone_mode=False)
    except _click_error("NoArgsIsHelpError") as exc:
        exc.show()
        code = exc.exit_code
    except _click_error("UsageError") as exc:  # a misspelled option or value: one line, as for every user error
        where = exc.ctx.command_path if exc.ctx else "pipeline.py"
        typer.echo(f"error: {where}: {exc.format_message()} (see {where} --help)", err=True)
        code = exc.exit_code
    except typer.Abort:
        typer.echo("error: interrupted", err=True)
        code = 130
    raise SystemExit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
