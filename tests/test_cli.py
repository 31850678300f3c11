import os
import shutil

import pytest
from typer.testing import CliRunner

import pipeline
from tests.conftest import ROOT, run_pipeline
from tests.toy_modules import toy_registry

BOOKMARK = ["--modules", "A,B,C,D,E,F,G,H,I,K,L", "--overwrite-policy", "warn", "--dry-run", "--visual"]


@pytest.mark.parametrize("prefix", [[], ["run"]])
def test_bookmark_dry_run_with_and_without_run(tmp_path, prefix):
    artifacts = tmp_path / "artifacts"
    proc = run_pipeline(*prefix, *BOOKMARK, "--config", str(ROOT / "config.yaml"), "--set",
                        f"paths.artifacts={artifacts}",
               "--set", f"paths.schemas={ROOT / 'schemas'}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "level 2 (parallel): C, D, E, F, H" in proc.stdout
    assert "[L predict_monitor <- A,I,K]" in proc.stdout  # the terminal drawing
    assert (tmp_path / "dag_plan.dot").read_text().startswith("digraph mlb_pipeline")
    assert not artifacts.exists()  # a dry run writes no artifact


@pytest.mark.parametrize("name", ["dag_plan.dot", "dag_plan.svg"])
def test_visual_never_writes_through_a_planted_link(tmp_path, name):
    """A link planted where --visual writes is replaced by the drawing; the file it pointed at stays."""
    if name.endswith(".svg") and not shutil.which("dot"):
        pytest.skip("graphviz's dot is not installed (make test installs it)")
    outside = tmp_path / "outside.txt"
    outside.write_text("keep me")
    work = tmp_path / "work"
    work.mkdir()
    (work / name).symlink_to(outside)
    proc = run_pipeline(*BOOKMARK, "--config", str(ROOT / "config.yaml"), "--set",
                        f"paths.artifacts={work / 'artifacts'}", "--set", f"paths.schemas={ROOT / 'schemas'}", cwd=work)
    assert proc.returncode == 0, proc.stderr
    assert outside.read_text() == "keep me"
    assert not (work / name).is_symlink() and (work / name).stat().st_size > 100
    drawn = (work / name).read_text().lstrip()
    assert drawn.startswith("<?xml" if name.endswith(".svg") else "digraph mlb_pipeline")  # the svg dot drew


def test_unknown_module_and_bad_date_exit_2():
    proc = run_pipeline("run", "--modules", "A,Z", "--dry-run")
    assert proc.returncode == 2 and proc.stderr.strip() == (
        "error: --modules: unknown module id(s) Z; known: A, B, C, D, E, F, G, H, I, J, K, L")
    proc = run_pipeline("run", "--as-of", "2024-13-01", "--dry-run")
    assert proc.returncode == 2 and "--as-of: '2024-13-01' is not a date" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_each_error_class_named_for_an_exit_code_exists_and_gives_its_code():
    """exit_code_for checks only the error classes already imported (a usage error exits without loading
    pandas for the backtest's): each name it lists is a real exception class, mapped to its code."""
    import importlib

    from utils.errors import RUN_ERRORS, USAGE_ERRORS, exit_code_for

    for classes, code in ((USAGE_ERRORS, 2), (RUN_ERRORS, 1)):
        for module, name in classes:
            cls = getattr(importlib.import_module(module), name)
            assert issubclass(cls, Exception) and exit_code_for(cls.__new__(cls)) == code, name
    assert exit_code_for(FileNotFoundError("x")) == 1 and exit_code_for(ValueError("x")) is None


@pytest.mark.parametrize("args, names", [
    (["run", "--overwrite-policy", "maybe"], "'--overwrite-policy'"),
    (["run", "--dry-runn"], "--dry-runn (Possible options: --dry-run)"),
    (["backtest"], "'--season'"),
    (["backtest-report", "--season", "2019", "--tolerance", "-1"], "'--tolerance'"),
    (["nightly-run"], "'nightly-run'"),
])
def test_a_misspelled_option_or_value_is_one_line_naming_it(args, names):
    proc = run_pipeline(*args)
    assert proc.returncode == 2 and proc.stdout == ""
    assert len(proc.stderr.splitlines()) == 1 and proc.stderr.startswith("error: pipeline.py")
    assert names in proc.stderr


def test_naming_j_is_reported(tmp_path):
    proc = run_pipeline("run", "--modules", "A,J", "--dry-run", "--set", f"paths.artifacts={tmp_path}")
    assert proc.returncode == 0 and "note: J is reserved and skipped on purpose" in proc.stderr


def test_validate_config_reports_every_problem_with_its_key(tmp_path):
    bad = tmp_path / "c.yaml"
    bad.write_text("run:\n  max_wokers: 2\n  overwrite_policy: maybe\n")
    proc = run_pipeline("validate-config", "--config", str(bad))
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        "config error: run.overwrite_policy: Input should be 'warn', 'skip', 'fail' or 'overwrite'",
        "config error: run.max_wokers: unknown key; did you mean 'run.max_workers'? (keys are case-sensitive)",
    ]
    assert run_pipeline("validate-config").returncode == 0


def test_cli_flag_against_config_value_warns_naming_both(tmp_path, capsys):
    def dry_run(*args):
        with pytest.raises(SystemExit) as done:
            pipeline.main(["run", "--dry-run", *args, "--set", f"paths.artifacts={tmp_path}"])
        return (done.value.code, *capsys.readouterr())

    code, out, err = dry_run("--legacy-executor", "--max-workers", "3", "--set", "run.executor=prefect",
                             "--set", "run.max_workers=2")
    assert code == 0
    assert "command line sets run.max_workers=3, overriding run.max_workers=2 from the config" in err
    assert "executor legacy, max_workers 3" in out
    code, _, err = dry_run("--as-of", "2024-07-14", "--set", "run.as_of=2024-07-14")
    assert code == 0 and "warning" not in err  # agreeing values are no collision


def test_dag_formats(tmp_path):
    dag = lambda *fmt: CliRunner().invoke(pipeline.app, ["dag", *fmt]).stdout  # noqa: E731
    assert dag().splitlines()[0] == "[A ingest]"
    dot = dag("--format", "dot")
    assert 'F -> G [label="starter_features"' in dot and "J (reserved)" in dot and "(orphan)" in dot
    mermaid = dag("--format", "mermaid")
    assert mermaid.startswith("flowchart LR\n") and "    F -->|starter_features| G" in mermaid


@pytest.mark.skipif(not shutil.which("dot"), reason="graphviz's dot is not installed (make test installs it)")
def test_dag_renders_a_png(tmp_path):
    proc = run_pipeline("dag", "--format", "png", "--out", str(tmp_path / "d.png"))
    assert proc.returncode == 0 and (tmp_path / "d.png").read_bytes()[:4] == b"\x89PNG"


def test_run_and_status_on_a_toy_registry(tmp_path, monkeypatch):
    """The real `run` command end to end, with the registry swapped for the toy one."""
    monkeypatch.setattr(pipeline, "REGISTRY", toy_registry())
    runner = CliRunner()
    args = ["--set", f"paths.artifacts={tmp_path}", "--set", f"paths.schemas={ROOT / 'tests/data/schemas'}"]
    result = runner.invoke(pipeline.app, ["run", "--legacy-executor", "--as-of", "2024-07-14", *args])
    assert result.exit_code == 0, result.output
    result = runner.invoke(pipeline.app, ["status", *args])
    assert "T   summary    success" in result.output
    monkeypatch.setattr(pipeline, "REGISTRY", toy_registry(middle="broken"))
    result = runner.invoke(pipeline.app, ["run", "--legacy-executor", "--as-of", "2024-07-14", *args])
    assert result.exit_code == 1
    assert "error: module D (doubled) failed: numbers.parquet row 2: deliberate failure" in result.output


def test_second_run_while_one_holds_the_lock_exits_1(tmp_path, monkeypatch, quick_refusal):
    from utils.store.locking import RunLock

    monkeypatch.setattr(pipeline, "REGISTRY", toy_registry())
    with RunLock(tmp_path):
        result = CliRunner().invoke(pipeline.app, ["run", "--legacy-executor", "--set", f"paths.artifacts={tmp_path}",
                                                   "--set", f"paths.schemas={ROOT / 'tests/data/schemas'}"])
    assert result.exit_code == 1 and f"(pid {os.getpid()} on" in result.output


def test_status_with_no_run(tmp_path):
    result = CliRunner().invoke(pipeline.app, ["status", "--set", f"paths.artifacts={tmp_path}"])
    assert result.exit_code == 0 and "no run recorded" in result.output


def test_version_and_the_config_from_mlb_config(tmp_path, monkeypatch, capsys):
    from importlib.metadata import version

    def command(*args):
        with pytest.raises(SystemExit) as done:
            pipeline.main(list(args))
        return (done.value.code, *capsys.readouterr())

    code, out, _ = command("--version")
    assert code == 0 and out.strip() == f"mlb-pipeline {version('mlb-pipeline')}"
    config = tmp_path / "elsewhere.yaml"
    config.write_text("run:\n  max_workers: 3\n")
    monkeypatch.setenv("MLB_CONFIG", str(config))
    code, out, err = command("validate-config")  # no --config: MLB_CONFIG names the file, as the viewer reads it
    assert code == 0 and out.startswith(str(config)), out + err
    monkeypatch.setenv("MLB_CONFIG", str(tmp_path / "missing.yaml"))
    code, _, err = command("validate-config")
    assert code == 2 and "missing.yaml: config file not found" in err


EXIT_PROBE = """
import atexit, os, runpy, sys, threading
fd = os.open({log!r}, os.O_WRONLY | os.O_APPEND)
class Finalized:  # collected only when the interpreter itself finalizes
    def __del__(self, write=os.write, fd=fd):
        write(fd, b"finalized\\n")
keep = Finalized()
{setup}
atexit.register(lambda: os.write(fd, b"atexit\\n"))
sys.argv = ["pipeline.py", "run", "--modules", "Z"]
{end}
"""
# a thread still running when the command ends, let go only by threading's own shutdown at exit: it
# writes only if the exit runs that shutdown, and before the atexit functions only if it is waited for
THREAD = """released = threading.Event()
threading._register_atexit(released.set)
threading.Thread(target=lambda: (released.wait(), os.write(fd, b"thread\\n"))).start()"""
PIPELINE_PY = "runpy.run_path({pipeline!r}, run_name='__main__')"  # python pipeline.py ...


@pytest.mark.parametrize("setup, end, code, said, logged", [
    (THREAD, PIPELINE_PY, 2, "unknown module id(s) Z", ["thread", "atexit"]),
    (THREAD, "import pipeline; pipeline.main = lambda: 1 / 0; pipeline.cli()", 1, "ZeroDivisionError",
     ["thread", "atexit"]),  # a bug: its traceback and 1
    (THREAD + "\nsys.stdout = None", PIPELINE_PY, 2, "unknown module id(s) Z", ["thread", "atexit"]),  # 1>&-
    ("threading._register_atexit(lambda: 1 / 0)", PIPELINE_PY, 2, "Exception ignored in: <module 'threading'",
     ["atexit"]),  # an exit function of threading's fails: printed, and the atexit functions still run
    ("sys.stderr = None\nthreading._register_atexit(lambda: 1 / 0)", PIPELINE_PY, 2, "", ["atexit"]),  # 2>&-
    (THREAD, "import pipeline; pipeline.main()", 2, "unknown module id(s) Z",
     ["thread", "atexit", "finalized"]),  # main's SystemExit left to Python's own exit: the control
])
def test_the_command_line_exits_with_its_code_after_python_s_exit_work_but_not_the_native_teardown(
        tmp_path, setup, end, code, said, logged):
    """`python pipeline.py` ends through utils.errors.exit_process: the interpreter's exit steps in its
    order (threading's shutdown, which lets the thread go and waits for it, then the atexit functions),
    the command's exit code (a bug's traceback and 1), and never the interpreter's finalization, after
    which pyarrow's thread pools are torn down (a SIGABRT now and then). The control, main() left to
    Python's own exit, finalizes."""
    import subprocess
    import sys

    log = tmp_path / "exit.log"
    log.touch()
    script = EXIT_PROBE.format(log=str(log), setup=setup, end=end.format(pipeline=str(ROOT / "pipeline.py")))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=60)
    assert proc.returncode == code and said in proc.stderr, proc.stderr
    assert ("Traceback" in proc.stderr) == (code == 1 or "ignored" in said)
    assert log.read_text().splitlines() == logged


@pytest.mark.parametrize("code", ["3", "256 + 7", "-1", "2**63 - 1", "-2**63", "2**63", "-2**63 - 1", "2**64 + 3",
                                  "None", "True", "'text'"])
def test_the_command_line_exits_with_the_status_python_gives_the_same_code(code):
    """exit_process turns a SystemExit's code into the process's status as Python's own exit does: the
    low byte of an integer that fits a C long, 255 for one that does not, 0 for None, 1 for text."""
    import subprocess
    import sys

    run = lambda end: subprocess.run([sys.executable, "-c", f"import sys; {end}"],  # noqa: E731
                                     capture_output=True, text=True, cwd=ROOT, timeout=60,
                                     env={**os.environ, "PYTHONPATH": str(ROOT)})
    python = run(f"sys.exit({code})")
    ours = run(f"from utils.errors import exit_process; exit_process({code})")  # what pipeline.cli() ends with
    assert (ours.returncode, ours.stderr) == (python.returncode, python.stderr)
