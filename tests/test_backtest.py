"""The backtest command on the real mirror: walk-forward, and equal to a nightly run at a retrain date."""
import json

import pandas as pd
import pytest

from tests.conftest import ROOT, run_pipeline
from utils.store.artifacts import ArtifactStore

pytestmark = pytest.mark.slow


def settings(mirror, root):
    return ["--set", f"sources.retrosheet.base_url={mirror}", "--set", f"paths.artifacts={root}",
            "--set", "data.first_season=2016", "--set", "model.train_seasons=3"]


@pytest.fixture(scope="module")
def backtest_2020(mirror, tmp_path_factory):
    root = tmp_path_factory.mktemp("bt")
    out = root / "season_2020.parquet"
    proc = run_pipeline("backtest", "--season", "2020", "--out", str(out), *settings(mirror, root))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return root, out, proc


def test_backtest_walks_forward_over_the_whole_season(backtest_2020):
    root, out, proc = backtest_2020
    predictions = pd.read_parquet(out)
    assert len(predictions) == 898 and predictions["game_id"].is_unique
    # every game was predicted by a model trained strictly before its own date
    assert (predictions["trained_through"] <= predictions["date"]).all()
    gap = (predictions["date"] - predictions["trained_through"]).dt.days
    assert gap.max() < 7 and predictions["trained_through"].nunique() >= 9
    summary = json.loads((root / "backtest/2020/data/backtest_summary.json").read_text())
    lines = proc.stdout.splitlines()
    assert lines[0] == "season 2020: 898 decided games, retrained every 7 days, expected lineups"
    assert lines[2].split()[:2] == ["model", f"{summary['model']['brier']:.5f}"]
    assert lines[3].split()[:2] == ["elo", f"{summary['elo']['brier']:.5f}"]
    # the season's catalog parsed its game logs and play-by-play into its parent's cache, for every season to share
    parsed = {p.name.split("-")[0] for p in (root / "cache" / "parsed").glob("*.parquet")}
    assert {"gl2020", "ev2020", "ev2016"} <= parsed and not (root / "backtest" / "2020" / "cache").exists()


def test_backtest_probability_equals_the_nightly_run_at_the_same_retrain_date(backtest_2020, mirror, tmp_path):
    _, out, _ = backtest_2020
    predictions = pd.read_parquet(out)
    second = sorted(predictions["trained_through"].unique())[1]
    day = pd.Timestamp(second).date()
    proc = run_pipeline("run", "--legacy-executor", "--as-of", day.isoformat(), *settings(mirror, tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    nightly = ArtifactStore(tmp_path, ROOT / "schemas").read_frame("predictions").set_index("game_id")
    replay = predictions[predictions["date"] == pd.Timestamp(day)].set_index("game_id").loc[nightly.index]
    assert len(nightly) > 5
    for col in ("p_home_win", "exp_home_runs", "exp_away_runs"):
        assert nightly[col].to_numpy() == pytest.approx(replay[col].to_numpy(), abs=1e-12), col
    assert nightly["model_version"].str.split("-").str[0].tolist() == \
        replay["model_version"].str.split("@").str[0].tolist()


def test_off_day_writes_an_empty_prediction_table_and_exits_0(backtest_2020, tmp_path):
    import shutil

    root, _, _ = backtest_2020
    shutil.copytree(root / "backtest" / "2020", tmp_path / "a")
    # train on the season's table as of a date after the season, then predict a day with no games
    proc = run_pipeline("run", "--legacy-executor", "--modules", "K,L", "--as-of", "2020-12-01",
               "--set", f"paths.artifacts={tmp_path / 'a'}", "--set", "model.train_seasons=3")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "no games scheduled on 2020-12-01: writing an empty predictions table" in proc.stderr
    store = ArtifactStore(tmp_path / "a", ROOT / "schemas")
    assert store.read_frame("predictions").empty
    assert store.read_json("evaluation")["evaluated"] == 0


def test_a_game_time_backtest_walks_the_same_table_with_the_posted_nines(backtest_2020, mirror):
    """`--set run.lineups=confirmed` walks the same games of the season's feature table with models that
    use the posted nines, and writes beside the morning's backtest, which it leaves alone."""
    root, out, _ = backtest_2020
    morning = (root / "backtest/2020/data/backtest.parquet").read_bytes()
    proc = run_pipeline("backtest", "--season", "2020", *settings(mirror, root), "--set", "run.lineups=confirmed")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.splitlines()[0] == "season 2020: 898 decided games, retrained every 7 days, confirmed lineups"
    game_time = ArtifactStore(root / "backtest" / "2020-confirmed", ROOT / "schemas")
    summary = game_time.read_json("backtest_summary")
    assert summary["lineups"] == "confirmed" and summary["games"] == 898
    walked = game_time.read_frame("backtest")
    assert set(walked["game_id"]) == set(pd.read_parquet(out)["game_id"])
    assert (root / "backtest/2020/data/backtest.parquet").read_bytes() == morning
    fits = sorted((root / "cache" / "models").glob("fit-confirmed-*.json"))
    assert fits and any(f.startswith("nine_") for f in json.loads(fits[0].read_text())["model_params"]["features"])
    report = run_pipeline("backtest-report", "--season", "2020", *settings(mirror, root), "--set",
                          "run.lineups=confirmed")
    assert report.returncode == 0 and f"{summary['model']['brier']:.5f}" in report.stdout, report.stderr[-2000:]
