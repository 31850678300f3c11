"""What a person reads after a night: the Streamlit viewer (every panel with AppTest and in Chromium, on
real runs and on edge cases) and `mlb-pipeline predictions`."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, free_port, run_pipeline
from utils.store.artifacts import ArtifactStore

APP = str(ROOT / "dashboards" / "dag_viewer.py")
pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def viewer_root(mirror, tmp_path_factory, shared_cache):
    """Two nightly runs (two dates, so histories have two points) and one backtest summary."""
    root = tmp_path_factory.mktemp("viewer") / "artifacts"
    for day in ("2024-07-13", "2024-07-14"):
        proc = run_pipeline("run", "--legacy-executor", "--as-of", day, "--set",
                            f"sources.retrosheet.base_url={mirror}",
                            "--set", f"paths.artifacts={root}", "--set", "data.first_season=2021",
                            "--set", "model.train_seasons=2", *shared_cache)
        assert proc.returncode == 0, proc.stderr[-2000:]
    calibration = [{"bin": 4, "lower": 0.4, "upper": 0.5, "n": 900, "mean_prediction": 0.46, "observed_rate": 0.45,
                    "std_error": 0.0166},
                   {"bin": 5, "lower": 0.5, "upper": 0.6, "n": 1200, "mean_prediction": 0.55, "observed_rate": 0.54,
                    "std_error": 0.0144}]
    tests = {"mean_z": 0.4, "mean_p_value": 0.69, "spiegelhalter_z": -0.2, "spiegelhalter_p_value": 0.84,
             "hosmer_lemeshow": 7.1, "hosmer_lemeshow_p_value": 0.72}
    metrics = {"n": 2430, "brier": 0.2436, "log_loss": 0.68, "accuracy": 0.56}
    for folder, brier in (("2023", 0.2436), ("2023-confirmed", 0.2433)):  # the morning's and the game-time models
        ArtifactStore(root / "backtest" / folder, ROOT / "schemas").write_json("backtest_summary", {
            "season": 2023, "retrain_every_days": 7, "games": 2430, "chosen": {"logistic": 2430},
            "model": {**metrics, "brier": brier, "runs": {"mae": 2.47, "rmse": 3.19}, "calibration": calibration,
                      "calibration_deciles": calibration, "calibration_test": tests},
            "elo": {**metrics, "brier": 0.2438}})
    return root


@pytest.fixture(scope="session")
def failed_night_root(viewer_root, tmp_path_factory):
    """The two good nights, then a real third night (2024-07-15) whose A failed: its mirror is empty."""
    root = tmp_path_factory.mktemp("failed") / "artifacts"
    shutil.copytree(viewer_root, root)
    (root.parent / "empty-mirror").mkdir()
    proc = run_pipeline("run", "--legacy-executor", "--as-of", "2024-07-15", "--set",
                        f"sources.retrosheet.base_url={root.parent / 'empty-mirror'}",
                        "--set", f"paths.artifacts={root}", "--set", "data.first_season=2021",
                        "--set", "model.train_seasons=2")
    assert proc.returncode == 1 and "module A (ingest) failed" in proc.stderr, proc.stderr[-2000:]
    return root


def good_run_id(root):
    return yaml.safe_load((root / ".phase_status.yaml").read_text())["run_id"]


def predictions_cli(root, *args):
    return run_pipeline("predictions", "--set", f"paths.artifacts={root}", *args)


def test_the_predictions_command_prints_a_night_as_a_person_or_a_tool_reads_it(viewer_root):
    store = ArtifactStore(viewer_root, ROOT / "schemas")
    latest = predictions_cli(viewer_root, "--format", "csv")
    assert latest.returncode == 0, latest.stderr
    # the latest night, byte for byte what the run published beside the parquet
    assert latest.stdout.encode() == store.read_bytes("predictions_csv")
    as_json = predictions_cli(viewer_root, "--format", "json")
    assert as_json.stdout.encode() == store.read_bytes("predictions_json")
    # an earlier night from the prediction log, with the same columns and its own as-of date
    earlier = predictions_cli(viewer_root, "--date", "2024-07-13", "--format", "json")
    document = json.loads(earlier.stdout)
    assert document["as_of"] == "2024-07-13" and document["games"]
    assert {g["date"] for g in document["games"]} == {"2024-07-13"}
    assert set(document["games"][0]) == set(json.loads(as_json.stdout)["games"][0])
    parquet = store.read_frame("predictions").set_index("game_id")
    table = predictions_cli(viewer_root)
    lines = table.stdout.splitlines()
    assert lines[0].startswith(f"2024-07-14 · {len(parquet)} games · model ")
    assert lines[1].split() == ["away", "(starter)", "home", "(starter)", "P(home)", "runs", "a-h", "gamePk"]
    rows = lines[2:]
    assert len(rows) == len(parquet)
    for game_id, game in parquet.iterrows():  # each game once, named, with its probability to three places
        row = [r for r in rows if r.startswith(f"{game['away_team_name']} ({game['away_starter_name']})")
               and f"{game['home_team_name']} ({game['home_starter_name']})" in r]
        assert len(row) == 1 and f" {game['p_home_win']:.3f} " in row[0], (game_id, rows)
    # a night with no predictions, and a date that is not one: one line each, exit 1 and 2
    none = predictions_cli(viewer_root, "--date", "2024-01-15")
    assert none.returncode == 1 and none.stderr.strip().endswith(
        "no predictions for 2024-01-15 (logged: 2 night(s) from 2024-07-13 to 2024-07-14; an off-day has none)")
    for bad in ("July 14", "20240714", ""):
        assert predictions_cli(viewer_root, "--date", bad).returncode == 2, bad
    assert predictions_cli(viewer_root, "--format", "xml").returncode == 2


def test_a_night_whose_metrics_failed_still_serves_its_own_predictions_and_older_roots_show_theirs(
        viewer_root, tmp_path):
    """A failed step fails the run (never a success) but its modules made tonight's predictions: no
    'still in use' note. A root whose predictions predate the published JSON shows the parquet's games."""
    root = tmp_path / "copy"
    shutil.copytree(viewer_root, root)
    status = yaml.safe_load((root / ".phase_status.yaml").read_text())
    status["steps"]["metrics"] = {"status": "failed", "error": "127.0.0.1:9091: connection refused"}
    (root / ".phase_status.yaml").write_text(yaml.safe_dump(status))
    at = app(root, tmp_path)
    assert not at.success and at.error[0].value.endswith(" · failed: metrics") and not at.warning
    assert at.subheader[0].value == "Games on 2024-07-14" and len(at.dataframe[0].value) == 15
    for suffix in (".json", ".json.meta.json"):
        (root / "data" / f"predictions_json{suffix}").unlink()
    at = app(root, tmp_path)
    assert at.subheader[0].value == "Games on 2024-07-14" and len(at.dataframe[0].value) == 15
    assert at.dataframe[0].value["home"].str.contains(" ").all()  # the parquet carries the names too


@pytest.fixture(autouse=True)
def _mlb_config_restored():
    """`app` points MLB_CONFIG at the test's own config, which the command line also reads: put it
    back after each test, so a later run in this process (the session's `viewer_root`) reads its own."""
    before = os.environ.get("MLB_CONFIG")
    yield
    if before is None:
        os.environ.pop("MLB_CONFIG", None)
    else:
        os.environ["MLB_CONFIG"] = before


def app(root, tmp_path):
    config = tmp_path / "viewer.yaml"
    config.write_text(yaml.safe_dump({"paths": {"artifacts": str(root), "schemas": str(ROOT / "schemas")}}))
    os.environ["MLB_CONFIG"] = str(config)
    # imported here, not at the top: every run collects this module, and a run that selects none of its
    # tests (make test-fast: they are all slow) need not load Streamlit (0.2 s a pytest-xdist worker)
    from streamlit.testing.v1 import AppTest

    return AppTest.from_file(APP, default_timeout=60).run()


def tree(root):
    return {str(p): p.stat().st_mtime_ns for p in root.rglob("*")}


def test_empty_state_on_a_fresh_checkout(tmp_path):
    at = app(tmp_path / "nothing", tmp_path)
    assert not at.exception
    assert at.info[0].value.startswith(f"No runs yet under {tmp_path / 'nothing'}")
    dot = at.get("graphviz_chart")[0].proto.spec
    assert dot.count("never run") == 11 and 'J [label="J (reserved)"' in dot and "(orphan)" in dot
    assert not (tmp_path / "nothing").exists()  # the viewer created nothing


def frame_with(at, column):
    return next(d.value for d in at.dataframe if column in d.value.columns)


def test_every_panel_on_a_real_run(viewer_root, tmp_path):
    before = tree(viewer_root)
    at = app(viewer_root, tmp_path)
    assert not at.exception
    assert "as of 2024-07-14 · legacy executor" in at.success[0].value
    assert not at.warning  # a good night: nothing is said to be left over from an earlier run
    # it opens on tonight's games: names, probabilities, expected runs, starters
    assert at.subheader[0].value == "Games on 2024-07-14"
    games = at.dataframe[0].value
    published = ArtifactStore(viewer_root, ROOT / "schemas").read_json("predictions_json")["games"]
    assert len(games) == len(published) == 15 and "P(home win)" in games.columns
    assert games["home starter"].str.contains(" ").all() and games["home"].str.contains(" ").all()
    assert sorted(games["P(home win)"]) == sorted(round(g["p_home_win"], 3) for g in published)
    # with the last 30 days' Brier against its noise band, from the evaluation the run wrote
    recent = ArtifactStore(viewer_root, ROOT / "schemas").read_json("evaluation")["last_30_days"]
    brier = recent["vs_validation"]["brier"]
    caption = next(c.value for c in at.caption if c.value.startswith("Model "))
    assert f"Brier over the last 30 days: {brier['live']:.4f} on {recent['n']} games" in caption
    assert ("inside" if abs(brier["z"]) < 2 else "outside") + " its noise band" in caption
    dot = at.get("graphviz_chart")[0].proto.spec
    assert dot.count("\\nsuccess") == 11
    # modules: the first module's outputs as they are on disk, each from the run that wrote it, hash verified
    outputs = frame_with(at, "artifact")
    assert set(outputs["artifact"]) == {"raw_gamelogs", "quarantine", "lahman_pitching", "lahman_batting", "schedule",
                                        "player_games", "player_ids"}
    versions = {name: json.loads((ROOT / "schemas" / f"{name}.schema.json").read_text())["schema_version"]
                for name in outputs["artifact"]}
    assert outputs["verified"].all() and set(outputs["run"]) == {good_run_id(viewer_root)}
    assert set(outputs["as_of"]) == {"2024-07-14"}
    assert outputs["schema"].tolist() == [f"{name}@{versions[name]}" for name in outputs["artifact"]]
    assert versions["raw_gamelogs"] == "1.1.0"  # the source column
    history = frame_with(at, "seconds")
    assert history["as_of"].astype(str).tolist() == ["2024-07-13", "2024-07-14"]
    # data quality
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Duplicates"] == "0" and metrics["Quarantined lines"] == "0"
    # drift: each feature's score against its normal band, both views, and the sources' health
    drift_md = [m.value for m in at.markdown if m.value.startswith("**Drift score per feature**")]
    assert drift_md and "above the break line" in drift_md[0]
    scores = next(d.value for d in at.dataframe if "recent_max" in d.value.columns)
    assert set(scores["view"]) == {"psi", "shift"} and scores["score"].is_monotonic_decreasing
    assert (scores["score"] == scores["value"].abs() / scores["normal"]).all()
    assert set(scores["level"]) <= {"normal", "above normal", "break"} and "ctx_month" not in set(scores["feature"])
    sources = next(d.value for d in at.dataframe if "check" in d.value.columns)
    assert sources.loc[sources["check"] == "games predicted", ["value", "of"]].values.tolist() == [[15, 15]]
    # backtests
    seasons = next(d.value for d in at.dataframe if "elo_brier" in d.value.columns)
    assert seasons["season"].tolist() == [2023, 2023] and seasons["lineups"].tolist() == ["expected", "confirmed"]
    assert seasons["gain"].tolist() == pytest.approx([0.0002, 0.0005])
    assert tree(viewer_root) == before  # nothing written, nothing touched


def test_choosing_a_module_shows_its_details(viewer_root, tmp_path):
    at = app(viewer_root, tmp_path)
    at.selectbox[0].select("K").run()
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Status"] == "success" and metrics["Outputs"] == "6"
    outputs = ["win_model", "home_runs_model", "away_runs_model", "model_params", "model_card", "drift_baseline"]
    versions = {n: json.loads((ROOT / "schemas" / f"{n}.schema.json").read_text())["schema_version"] for n in outputs}
    assert [c.value for c in at.caption if c.value.startswith("Validated against")] == [
        "Validated against: " + ", ".join(f"{n}@{versions[n]}" for n in outputs)]
    assert set(frame_with(at, "artifact")["artifact"]) == {"win_model", "home_runs_model", "away_runs_model",
                                                           "model_params", "model_card", "drift_baseline"}


def test_a_failed_night_shows_the_failure_beside_the_outputs_still_in_use(viewer_root, failed_night_root, tmp_path):
    """After a real night whose A failed: the failure, which modules did not run (not 'skipped'), and the
    last good run's outputs and games, which still serve."""
    root = tmp_path / "copy"
    shutil.copytree(failed_night_root, root)
    good = good_run_id(viewer_root)
    path = root / "data" / "games.parquet"
    path.write_bytes(path.read_bytes() + b"tampered")
    at = app(root, tmp_path)
    banner = at.error[0].value
    assert not at.success and " · as of 2024-07-15 · legacy executor · " in banner and banner.endswith(" · failed: A")
    assert at.warning[0].value == (f"Still in use: the predictions for 2024-07-14, made by run {good} "
                                   "(as of 2024-07-14); the latest run made none.")
    assert at.subheader[0].value == "Games on 2024-07-14" and len(at.dataframe[0].value) == 15
    dot = at.get("graphviz_chart")[0].proto.spec
    assert 'A [label="A ingest\\nfailed", fillcolor="#f4a3a3"' in dot
    assert dot.count("\\nnot run") == 10 and "skipped" not in dot and "success" not in dot
    at.selectbox[0].select("A").run()
    assert at.error[1].value.startswith("A error: ") and "empty-mirror" in at.error[1].value
    at.selectbox[0].select("B").run()
    assert {m.label: m.value for m in at.metric}["Status"] == "not run"
    assert at.warning[1].value == "B error: upstream module(s) A did not succeed"
    outputs = frame_with(at, "artifact").set_index("artifact")
    assert outputs.loc["games", "run"] == good and outputs.loc["games", "as_of"] == "2024-07-14"
    assert not outputs.loc["games", "verified"]  # the hash no longer matches the tampered file


def test_up_to_date_and_not_run_are_told_apart():
    import datetime as dt

    from dashboards.viewer_data import module_states, run_problems
    from modules.registry import REGISTRY
    from phase_status import PhaseStatus, RunStatus, StepStatus

    now = dt.datetime(2024, 7, 15, 10, tzinfo=dt.timezone.utc)
    run = RunStatus(run_id="r", executor="legacy", started_at=now, phases={
        "A": PhaseStatus(module="A", name="ingest", status="skipped"),
        "B": PhaseStatus(module="B", name="clean", status="success"),
        "C": PhaseStatus(module="C", name="context", status="skipped", error="upstream module(s) B did not succeed")},
        steps={"versioning": StepStatus(status="failed", error="dvc: disk full")})
    states = module_states(REGISTRY, run)
    assert (states["A"], states["B"], states["C"], states["D"], states["J"]) == (
        "up to date", "success", "not run", "never run", "reserved")
    assert run_problems(run) == ["versioning"] and not run.ok  # a failed step is not a success
    from phase_status import status_table  # the command line's table says the same words

    lines = {line.split()[0]: line.split()[2:4] for line in status_table(run).splitlines()[2:]}
    assert lines["A"] == ["up", "to"] and lines["C"] == ["not", "run"] and lines["B"] == ["success", "-"]


@pytest.mark.server
def test_in_a_real_browser(viewer_root, failed_night_root, tmp_path):
    """Headless Chromium on the real page: a good night opens on its games above the DAG; after the failed
    night the same games still show, beside the failure and the modules that did not run."""
    for tool in ("/usr/bin/chromium", "/usr/bin/chromedriver"):
        if not os.path.exists(tool):
            pytest.fail(f"{tool} is missing: .ci/run installs Debian's chromium and chromium-driver")
    good = page_in_chromium(viewer_root, tmp_path / "good", "as of 2024-07-14")
    assert good["labels"].count("success") == 11
    body = good["body"]
    for text in ("MLB pipeline", "Games on 2024-07-14", "P(home win)", "Brier over the last 30 days", "Pipeline DAG",
                 "Pipeline", "Data quality", "Drift", "Backtests", "J is reserved and skipped on purpose"):
        assert text in body, text
    assert body.index("Games on 2024-07-14") < body.index("Pipeline DAG")  # it opens on the games
    assert "Still in use" not in body
    failed = page_in_chromium(failed_night_root, tmp_path / "failed", "as of 2024-07-15")
    assert failed["labels"].count("not run") == 10 and failed["labels"].count("failed") == 1
    assert "success" not in failed["labels"] and "skipped" not in failed["labels"]
    body = failed["body"]
    assert "failed: A" in body and "Games on 2024-07-14" in body
    assert f"Still in use: the predictions for 2024-07-14, made by run {good_run_id(viewer_root)}" in body


def page_in_chromium(root, folder, wait_for):
    """The viewer served by Streamlit on `root` and read in headless Chromium: the DAG's labels, the page's
    visible text, and a screenshot (copied to $MLB_SCREENSHOT_DIR when set)."""
    import time
    import urllib.request

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    folder.mkdir(parents=True)
    config = folder / "viewer.yaml"
    config.write_text(yaml.safe_dump({"paths": {"artifacts": str(root), "schemas": str(ROOT / "schemas")}}))
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", APP, "--server.port", str(port), "--server.address", "127.0.0.1",
         "--server.headless", "true", "--browser.gatherUsageStats", "false", "--", "--config", str(config)],
        cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    driver = None
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        options = webdriver.ChromeOptions()
        options.binary_location = "/usr/bin/chromium"
        for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--disable-quic", f"--user-data-dir={folder / 'chrome'}", "--window-size=1400,2000"):
            options.add_argument(flag)
        driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
        driver.get(f"http://127.0.0.1:{port}/")
        wait = WebDriverWait(driver, 60)
        node = "//*[name()='svg']//*[name()='text' and contains(., 'ingest')]"
        wait.until(ec.presence_of_element_located((By.XPATH, node)))
        wait.until(lambda d: wait_for in d.find_element(By.TAG_NAME, "body").text)
        labels = [t.text for t in driver.find_elements(By.XPATH, "//*[name()='svg']//*[name()='text']")]
        assert {"A ingest", "L predict_monitor", "J (reserved)", "(orphan)"} <= set(labels)
        body = driver.find_element(By.TAG_NAME, "body").text
        shot = folder / "viewer.png"
        driver.save_screenshot(str(shot))
        assert shot.read_bytes()[:4] == b"\x89PNG" and shot.stat().st_size > 20_000
        if os.environ.get("MLB_SCREENSHOT_DIR"):
            shutil.copy(shot, Path(os.environ["MLB_SCREENSHOT_DIR"]) / f"viewer-{folder.name}.png")
        return {"labels": labels, "body": body}
    finally:
        if driver is not None:
            driver.quit()
        server.terminate()
        server.wait(timeout=20)
