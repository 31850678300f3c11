from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from utils.config import PipelineConfig, build_config

ROOT = Path(__file__).resolve().parent.parent
MIRROR = (ROOT.parent / "shared" / "data" / "retrosheet" / "gamelogs").resolve()
EVENTS = MIRROR.parent / "events"
# The tests' play-by-play: these home teams' event files of each season (a team's file is ~1 s to
# replay, a whole season ~25 s). MIA and MIL hold the 2017 games moved to Milwaukee.
SLIM_TEAMS = ("NYA", "BOS", "MIA", "MIL")
TOY_SCHEMAS = ROOT / "tests" / "data" / "schemas"

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


@pytest.fixture
def toy_cfg(tmp_path) -> PipelineConfig:
    """A config whose artifacts live in tmp_path and whose contracts are the toy schemas."""
    return build_config({"paths": {"artifacts": str(tmp_path / "artifacts"), "schemas": str(TOY_SCHEMAS)},
                         "run": {"as_of": "2024-07-14", "executor": "legacy", "max_workers": 2}})


def session_root(tmp_path_factory) -> Path:
    """The test session's own temporary folder: with pytest-xdist, the one holding every worker's."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="session")
def mirror(tmp_path_factory) -> Path:
    """Retrosheet's folders as the pipeline reads them: `gamelogs/` (links to the real game logs) and,
    beside it, `events/` with four home teams' real event files a season (`slim_events`). Made once a
    session, for every worker: its zips are the same bytes wherever they are made, so the parses the
    workers share (`shared_cache`) are keyed alike."""
    if not (MIRROR / "gl2024.zip").exists() or not (EVENTS / "2024eve.zip").exists():
        pytest.fail(f"the Retrosheet mirror is missing at {MIRROR.parent}: tests read the real data from ../shared")
    from utils.store.cache import ContentCache

    root = session_root(tmp_path_factory) / "retrosheet"
    with ContentCache(session_root(tmp_path_factory)).claim("retrosheet"):  # one worker makes it, the others wait
        if not (root / "done").exists():
            (root / "gamelogs").mkdir(parents=True, exist_ok=True)
            for path in MIRROR.glob("gl*.zip"):
                link = root / "gamelogs" / path.name
                if not link.is_symlink():
                    link.symlink_to(path)
            slim_events(root / "events")
            (root / "done").touch()
    return root / "gamelogs"


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory) -> list[str]:
    """`--set paths.cache_root=<the session's pytest folder>`, which holds every test's artifacts: the runs
    that add it read one cache/ (parsed seasons, drift baselines), as a backtest's seasons share their
    parent's, so a session parses each slice of the mirror once, whichever worker needs it first (the
    cache is content-keyed and claimed while made, across processes). test_real_pipeline's runs keep
    their own cache: the honest cold build."""
    return ["--set", f"paths.cache_root={session_root(tmp_path_factory)}"]


def slim_events(folder: Path, teams: tuple[str, ...] = SLIM_TEAMS) -> Path:
    """`YYYYeve.zip` for every season of the mirror, holding only these home teams' event files (bytes
    unchanged) and every team's roster (the pitchers' hands), so a test replays a few teams' games, not
    a season's. Each member keeps its entry in the real zip (name, date, compression method), deflated
    at zlib's fastest level (0.4 s for the mirror's seasons, not 1.1 s at the default): the same zip
    bytes wherever and whenever it is made."""
    import zipfile

    folder.mkdir(parents=True, exist_ok=True)
    for path in sorted(EVENTS.glob("*eve.zip")):
        with zipfile.ZipFile(path) as real, zipfile.ZipFile(folder / path.name, "w", zipfile.ZIP_DEFLATED) as slim:
            for info in real.infolist():
                name = info.filename
                if (name[4:7] in teams and name.upper().endswith((".EVA", ".EVN"))) or name.upper().endswith(".ROS"):
                    slim.writestr(info, real.read(info), compresslevel=1)
    return folder


def run_pipeline(*args: str, cwd: Path = ROOT, timeout: int = 900) -> subprocess.CompletedProcess:
    """`python pipeline.py ARGS` in a real subprocess, as a user would run it."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, str(ROOT / "pipeline.py"), *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=timeout)


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate, what, seconds=60):
    """Poll `predicate` until it is true; an AssertionError with its last result after `seconds`."""
    deadline = time.monotonic() + seconds
    last = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
            if last:
                return last
        except OSError as exc:
            last = exc
        time.sleep(0.5)
    raise AssertionError(f"timed out after {seconds}s waiting for {what}; last: {last!r}")


def stop(procs: list[subprocess.Popen], grace: float = 10) -> None:
    """Terminate server processes, and kill those still running after `grace` seconds."""
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()


@contextlib.contextmanager
def logged(name: str, level: int = logging.DEBUG):
    """The records one logger emits, caught by a handler on that logger itself: independent of
    propagation (the CLI turns it off) and of handlers Prefect adds to the root logger."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler(level)
    handler.emit = records.append
    logger = logging.getLogger(name)
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(min(level, logger.getEffectiveLevel()))
    try:
        yield records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


@pytest.fixture
def quick_refusal(monkeypatch):
    """A run refused because another holds the lock retries its flock PROBE_RETRIES times (for a reader's
    shared-lock probe to pass) PROBE_WAIT_SECONDS apart: a second in all. The tests that hold the lock
    for the whole refusal keep every retry but wait a millisecond between them: the refusal and its
    message are the same, a second sooner."""
    from utils.store import locking

    monkeypatch.setattr(locking, "PROBE_WAIT_SECONDS", 0.001)


@pytest.fixture(scope="session")
def prefect_api(tmp_path_factory):
    """A real long-lived Prefect server (`prefect server start`, as `make prefect-server` starts it)
    on a free loopback port with its own PREFECT_HOME, shared by every Prefect test of the session:
    one start instead of a temporary server per run. Yields its API URL."""
    home = tmp_path_factory.mktemp("prefect_home")
    port = free_port()
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_SERVER_LOGGING_LEVEL": "WARNING"}
    env.pop("PREFECT_API_URL", None)
    log = (home / "server.log").open("w")
    proc = subprocess.Popen([str(Path(sys.executable).parent / "prefect"), "server", "start", "--host", "127.0.0.1",
                             "--port", str(port), "--no-ui"], env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}/api"
    try:
        from utils.engine.prefect_api import answers

        wait_for(lambda: proc.poll() is None and answers(url) is None, f"the Prefect server at {url}", seconds=180)
        yield url
    finally:
        # this process's runs' last log lines reach the server before it stops: left queued, Prefect's
        # log worker would try to send them to a closed port as the process exits, with retries (over a
        # minute), and print "Error logging to API"
        handlers = sys.modules.get("prefect.logging.handlers")
        if handlers is not None:
            handlers.APILogWorker.drain_all(timeout=10)
        stop([proc], grace=20)
        log.close()


@pytest.fixture
def repo(tmp_path):
    """A DVC repository (no git) whose one stage's outputs are the toy summary and its sidecar."""
    root = tmp_path / "repo"
    root.mkdir()
    for args in (["init", "--no-scm", "-q"], ["remote", "add", "-d", "local", str(tmp_path / "remote"), "-q"]):
        subprocess.run([sys.executable, "-m", "dvc", *args], cwd=root, env={**os.environ, "DVC_NO_ANALYTICS": "1"},
                       check=True)
    (root / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"T_summary": {
        "cmd": "true", "outs": ["artifacts/data/summary.json", "artifacts/data/summary.json.meta.json"]}}}))
    return root


@pytest.fixture(scope="session")
def tiny_catalog(tmp_path_factory, mirror):
    """The tiny league (tests/tiny_league.py) run through A–I by their own main(cfg), once per session
    for every worker (as `mirror`: one worker makes it, under the cache's claim, the others wait for it);
    each per-stage test copies it (`tiny_store`) and runs its own stage again, so no test writes here."""
    import importlib

    from tests.tiny_league import tiny_cfg, write_mirror
    from utils.store.artifacts import staged_writes  # noqa: F401 (main() stages its own writes)
    from utils.store.cache import ContentCache

    base = session_root(tmp_path_factory) / "tiny"
    with ContentCache(session_root(tmp_path_factory)).claim("tiny"):
        if not (base / "done").exists():
            shutil.rmtree(base, ignore_errors=True)  # a worker's half-made one (it failed)
            source = write_mirror(base / "mirror", mirror)
            cfg = tiny_cfg(base / "artifacts", source)
            for name in ("a_ingest", "b_clean", "c_context", "d_team_form", "e_quality", "f_starters", "g_ratings",
                         "h_matchup", "i_assemble"):
                importlib.import_module(f"modules.{name}").main(cfg)
            (base / "done").touch()
    return base


@pytest.fixture
def tiny_store(tiny_catalog, tmp_path):
    """(config, store) over a private copy of the tiny league's catalog."""
    from tests.tiny_league import tiny_cfg
    from utils.store.artifacts import ArtifactStore

    shutil.copytree(tiny_catalog / "artifacts", tmp_path / "artifacts")
    cfg = tiny_cfg(tmp_path / "artifacts", tiny_catalog / "mirror")
    return cfg, ArtifactStore.from_config(cfg)


@pytest.fixture
def synthetic_store(tmp_path):
    """(config, store) with tests/synthetic_table.py's model table written, for K and L."""
    from tests.synthetic_table import AS_OF, model_table, schedule
    from utils.store.artifacts import ArtifactStore

    cfg = build_config({"paths": {"artifacts": str(tmp_path / "artifacts"), "schemas": str(ROOT / "schemas")},
                        "run": {"as_of": AS_OF.date().isoformat(), "executor": "legacy"},
                        "model": {"logistic_features": ["elo_diff", "form_diff_pythag"], "train_seasons": 4},
                        "versioning": {"backend": "none"}})
    store = ArtifactStore.from_config(cfg)
    store.write_frame("model_table", model_table())
    store.write_frame("schedule", schedule(model_table()))
    return cfg, store
