"""Calibration tables, calibration tests and the pooled backtest report, on draws whose truth is known."""
import numpy as np
import pandas as pd
import pytest

from tests.conftest import ROOT, run_pipeline
from utils.flows.backtest import format_report, pooled_report, tolerance_pass_rate
from utils.monitoring.evaluation import brier, calibration_table, calibration_test
from utils.store.artifacts import ArtifactStore


def draws(n, seed, truth=lambda p: p):
    """Predictions spread like MLB's (0.3-0.75) and outcomes drawn from truth(prediction)."""
    rng = np.random.default_rng(seed)
    p = np.clip(rng.normal(0.535, 0.07, n), 0.2, 0.85)
    return (rng.random(n) < truth(p)).astype(float), p


def test_equal_count_deciles_split_the_games_evenly_and_in_order():
    y, p = draws(1003, 1)
    table = calibration_table(y, p, equal_count=True)
    assert sorted(r["n"] for r in table) == [100] * 7 + [101] * 3
    for lower, upper in zip(table, table[1:]):
        assert lower["upper"] <= upper["lower"]
    fixed = calibration_table(y, p)
    assert {r["n"] for r in fixed} != {r["n"] for r in table}  # tenths of [0, 1] are not even
    for r in fixed:
        inside = (p >= r["lower"]) & (p < r["upper"])
        assert r["n"] == inside.sum() and r["mean_prediction"] == pytest.approx(p[inside].mean())


def test_std_error_is_the_noise_a_right_model_shows():
    """Outcomes drawn from the predictions themselves: about 95% of the bin gaps lie within two
    standard errors; outcomes drawn 0.04 off: few do."""
    def within(truth):
        hits = []
        for seed in range(40):
            y, p = draws(20000, seed, truth)
            hits += [abs(r["mean_prediction"] - r["observed_rate"]) <= 2 * r["std_error"]
                     for r in calibration_table(y, p, equal_count=True)]
        return np.mean(hits)

    assert 0.92 <= within(lambda p: p) <= 0.98
    assert within(lambda p: p - 0.04) < 0.2


def test_calibration_tests_reject_a_right_model_one_time_in_twenty_and_a_wrong_one_always():
    def rejections(truth):
        """Each test's rejection rate at 5% over the same 200 draws (one calibration_test a draw gives
        every test's p-value)."""
        results = [calibration_test(*draws(5000, seed, truth)) for seed in range(200)]
        return lambda key: np.mean([result[key] < 0.05 for result in results])

    right = rejections(lambda p: p)
    for key in ("mean_p_value", "spiegelhalter_p_value", "hosmer_lemeshow_p_value"):
        assert 0.02 <= right(key) <= 0.09, key
    # home edge overstated by 4 points: in the large and by decile
    overstated = rejections(lambda p: p - 0.04)
    assert overstated("mean_p_value") > 0.95
    assert overstated("hosmer_lemeshow_p_value") > 0.8
    # truth more extreme than the predictions (a timid model): Spiegelhalter, with z below zero
    timid = lambda p: np.clip(0.5 + 1.8 * (p - 0.5), 0, 1)  # noqa: E731
    assert rejections(timid)("spiegelhalter_p_value") > 0.8
    assert calibration_test(*draws(20000, 0, timid))["spiegelhalter_z"] < -3


def test_tolerance_pass_rate_is_what_a_right_model_scores_on_a_fixed_bar():
    """One bin of 400 games at 0.5: the share of draws within 0.03 is the binomial probability
    P(|wins/400 - 0.5| <= 0.03), about 0.77; a wide bar always passes, a zero-width one never."""
    from scipy.stats import binom

    p = np.full(400, 0.5)
    exact = binom.cdf(212, 400, 0.5) - binom.cdf(187, 400, 0.5)
    assert tolerance_pass_rate(p, 0.03, 100, equal_count=False) == pytest.approx(exact, abs=0.03)
    assert tolerance_pass_rate(p, 0.3, 100, equal_count=False) == 1.0
    assert tolerance_pass_rate(p, 0.0, 100, equal_count=False) < 0.06  # only exactly 200 wins pass (4%)
    assert tolerance_pass_rate(p, 0.03, 401, equal_count=False) == 1.0  # no bin shown, nothing can fail


def season_frame(season, n, seed, tie=False):
    """A backtest table as `backtest --season` writes it (the backtest contract's columns)."""
    rng = np.random.default_rng(seed)
    y, p = draws(n, seed)
    dates = pd.Timestamp(f"{season}-04-01") + pd.to_timedelta(np.arange(n) // 15, unit="D")
    home = [f"T{i % 15:02d}" for i in range(n)]  # fifteen games a day, one per home team
    frame = pd.DataFrame({
        "game_id": [f"{h}{d:%Y%m%d}0" for h, d in zip(home, dates)], "date": dates,
        "game_number": 0, "home_team": home, "away_team": "NYA",
        "home_starter_id": "a", "away_starter_id": "b", "p_home_win": p,
        "exp_home_runs": 4.6, "exp_away_runs": 4.4, "model_version": "logistic@x", "trained_through": dates,
        "home_win": pd.array(y.astype(int), dtype="Int64"),
        "home_score": pd.array(rng.poisson(4.6, n), dtype="Int64"),
        "away_score": pd.array(rng.poisson(4.4, n), dtype="Int64"),
        "elo_p_home": np.clip(p + rng.normal(0, 0.03, n), 0.01, 0.99),
    })
    if tie:
        frame.loc[3, "home_win"] = pd.NA
    return frame


def test_pooled_report_scores_every_decided_game_of_every_season_once():
    seasons = {2022: season_frame(2022, 900, 1, tie=True), 2019: season_frame(2019, 600, 2)}
    report = pooled_report(seasons)
    assert list(report["seasons"]) == [2019, 2022]
    decided = pd.concat(seasons.values()).dropna(subset=["home_win"])
    y = decided["home_win"].to_numpy(float)
    pooled = report["pooled"]
    assert pooled["games"] == 1499 == report["seasons"][2019]["games"] + report["seasons"][2022]["games"]
    assert pooled["model"]["brier"] == pytest.approx(brier(y, decided["p_home_win"].to_numpy()))
    assert pooled["elo"]["brier"] == pytest.approx(brier(y, decided["elo_p_home"].to_numpy()))
    text = format_report(report).splitlines()
    row = text[3].split()
    gain = pooled["elo"]["brier"] - pooled["model"]["brier"]
    assert row[:5] == ["pooled", "1499", f"{pooled['model']['brier']:.5f}", f"{pooled['elo']['brier']:.5f}",
                       f"{gain:.5f}"]
    shown = [line for line in text if line[:1] == " " and "-" in line[:13]]
    big_tenths = [b for b in pooled["model"]["calibration"] if b["n"] >= 100]
    assert len(shown) == len(big_tenths) + 10  # the tenths with 100+ games, then ten deciles


def test_backtest_report_cli_reads_the_seasons_artifacts_and_names_a_missing_one(tmp_path):
    for season, seed in ((2021, 3), (2023, 4)):
        store = ArtifactStore(tmp_path / "backtest" / str(season), ROOT / "schemas")
        store.write_frame("backtest", season_frame(season, 400, seed))
    args = ["--set", f"paths.artifacts={tmp_path}"]
    proc = run_pipeline("backtest-report", "--season", "2021", "--season", "2023", *args)
    assert proc.returncode == 0, proc.stderr
    pooled = [line.split() for line in proc.stdout.splitlines() if line.split()[:1] == ["pooled"]]
    assert pooled and pooled[0][1] == "800"
    assert "Spiegelhalter" in proc.stdout.splitlines()[-1]

    proc = run_pipeline("backtest-report", "--season", "2021", "--season", "2018", *args)
    assert proc.returncode == 1 and proc.stdout == ""
    message = proc.stderr.strip().splitlines()
    assert len(message) == 1 and "backtest/2018/data/backtest.parquet" in message[0]
    assert "backtest --season 2018" in message[0]

    # a season whose file changed after it was written is refused, not silently pooled
    path = tmp_path / "backtest" / "2023" / "data" / "backtest.parquet"
    path.write_bytes(path.read_bytes() + b"x")
    proc = run_pipeline("backtest-report", "--season", "2021", "--season", "2023", *args)
    assert proc.returncode == 1 and "SHA-256 mismatch" in proc.stderr
