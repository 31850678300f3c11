"""K and L on small synthetic tables whose answers are known by construction."""
import datetime as dt

import numpy as np
import pandas as pd
import pytest

from modules.k_train import Fitter, split_by_time, train_models, training_rows
from modules.l_predict_monitor import append_log, evaluate
from modules.models import Calibrator, predict
from utils.config import build_config
from utils.engine.threads import openmp_threads
from utils.monitoring.drift import psi
from utils.monitoring.evaluation import brier

LOGISTIC = ["elo_diff", "lu_diff_woba", "sp_diff_prior_fip", "sp_diff_prior_kbb", "sp_diff_prior_ip_per_gs"]
# the walk-forward tests' retrain interval: four retrain days of the synthetic 2022 (Jan 1, May 1, Aug 29,
# Dec 27), each one fit; what they check holds on every retrain day, however many there are
EVERY_DAYS = 120


def synthetic_table(n=4000, seed=0, signal=1.2):
    """Home wins with probability logistic(signal * sp_edge): the pitcher feature carries real signal
    that the Elo column (pure noise around 0.54) does not."""
    rng = np.random.default_rng(seed)
    dates = pd.Timestamp("2015-04-01") + pd.to_timedelta(np.sort(rng.integers(0, 365 * 8, n)), unit="D")
    edge = rng.normal(size=n)
    p = 1 / (1 + np.exp(-(0.15 + signal * edge)))
    win = (rng.random(n) < p).astype(int)
    table = pd.DataFrame({
        "game_id": [f"BOS{d:%Y%m%d}{i % 3}" for i, d in enumerate(dates)], "date": dates, "result_date": dates,
        "season": dates.year, "game_number": 0, "home_team": "BOS", "away_team": "NYA",
        "home_starter_id": "a", "away_starter_id": "b", "played": True, "is_neutral": False,
        "is_forfeit": False, "is_tie": False,
        "home_win": pd.array(win, dtype="Int64"),
        "home_score": pd.array(rng.poisson(4.6 + win), dtype="Int64"),
        "away_score": pd.array(rng.poisson(4.4 + (1 - win)), dtype="Int64"),
        "elo_p_home": np.clip(0.54 + rng.normal(0, 0.01, n), 0.4, 0.7), "elo_diff": rng.normal(0, 30, n),
        "lu_diff_woba": rng.normal(0, 0.01, n), "sp_diff_prior_fip": -edge, "sp_diff_prior_kbb": rng.normal(size=n),
        "sp_diff_prior_ip_per_gs": rng.normal(size=n), "ctx_home_field": 1.0, "form_diff_pythag": rng.normal(size=n),
    })
    return table.drop_duplicates("game_id").reset_index(drop=True)


@pytest.fixture(scope="module")
def mcfg():
    """One LightGBM thread: the tests run on pytest-xdist's workers, one core each, and with two OpenMP
    threads a fit spins against the other worker for its core (utils/engine/threads.py: several times
    slower). The models are the same bytes on any thread count (tests/test_module_k.py)."""
    return build_config({"model": {"train_seasons": 12, "lightgbm": {"n_estimators": 60},
                                   "logistic_features": LOGISTIC, "num_threads": 1}}).model


@pytest.fixture(scope="module")
def trained(mcfg):
    """The models train_models fits on synthetic_table() before 2022-06-01: fit once for the module's
    tests that only read them (each test that needs a fit of its own still makes it)."""
    return train_models(synthetic_table(), dt.date(2022, 6, 1), mcfg)


def test_training_rows_respect_the_as_of_date_and_drop_undecided_games():
    table = synthetic_table(400)
    table.loc[5, "is_forfeit"] = True
    table.loc[6, "home_win"] = pd.NA  # a tie
    table.loc[7, "result_date"] = pd.Timestamp("2030-01-01")  # suspended, finished later
    cut = table["date"].iloc[200].date()
    rows = training_rows(table, cut, 12)
    assert (rows["result_date"] < pd.Timestamp(cut)).all()
    assert not {table.loc[i, "game_id"] for i in (5, 6, 7)} & set(rows["game_id"])
    assert rows["date"].is_monotonic_increasing


def test_model_learns_the_signal_and_beats_the_noise_baseline(trained):
    table = synthetic_table()
    models = trained
    card = models.card
    assert card["chosen"] in ("lightgbm", "logistic")
    validation = {name: c["validation"]["brier"] for name, c in card["candidates"].items()}
    assert validation[card["chosen"]] < validation["elo"] - 0.02
    window = card["training_window"]
    assert window["calibration"]["last"] <= window["validation"]["first"]
    assert window["fit"]["first"] < window["calibration"]["first"]
    assert window["fit"]["last"] == window["validation"]["last"]
    assert "refit on all" in card["why"]
    held_out = table[table["date"] >= "2022-06-01"]
    p = models.p_home_win(held_out)
    y = held_out["home_win"].to_numpy(dtype=float)
    assert brier(y, p) < brier(y, held_out["elo_p_home"].to_numpy()) - 0.02


def test_same_inputs_and_seed_give_byte_identical_models(mcfg, trained):
    a = trained  # fit in its own train_models call, earlier
    b = train_models(synthetic_table(), dt.date(2022, 6, 1), mcfg)
    assert a.win_booster.model_to_string() == b.win_booster.model_to_string()
    assert a.home_runs_booster.model_to_string() == b.home_runs_booster.model_to_string()
    assert a.card == b.card


@pytest.mark.parametrize("runs_min_child", [None, 200])
def test_a_slice_s_fits_sharing_its_bins_are_the_models_each_binning_its_own_would_make(mcfg, trained, monkeypatch,
                                                                                          runs_min_child):
    """Fitter bins a slice of rows once a min_child_samples (`_dataset`; LightGBM's only Dataset parameter a
    fit here sets): the win model and both run models on it train on the first fit's binned Dataset, each
    with its own label and initial scores. Each fit on a Dataset of its own gives the very same models and
    card. Run models with a smaller min_child_samples than the win model's (a Dataset built for the larger
    one refuses it) bin their own."""
    import lightgbm as lgb

    table = synthetic_table()
    if runs_min_child is None:
        shared = trained  # the shared Datasets', as train_models makes them
    else:
        mcfg = mcfg.model_copy(update={"runs_lightgbm": mcfg.runs_lightgbm.model_copy(
            update={"min_child_samples": runs_min_child})})
    made, fits = [], []
    real, real_train = lgb.Dataset, lgb.train

    def counted(*args, **kwargs):
        made.append(1)
        return real(*args, **kwargs)

    def train(params, data, **kwargs):
        fits.append(id(data))
        return real_train(params, data, **kwargs)

    monkeypatch.setattr(lgb, "Dataset", counted)
    monkeypatch.setattr(lgb, "train", train)
    models = train_models(table, dt.date(2022, 6, 1), mcfg)
    if runs_min_child is None:  # three slices binned, seven fits on them
        assert len(made) == 3 and len(fits) == 7 and len(set(fits)) == 3
    else:  # the run models' two slices binned for them apart
        shared = models
        assert len(made) == 5 and len(fits) == 7 and len(set(fits)) == 5
    monkeypatch.setattr(Fitter, "_dataset", lambda self, part, label, settings, init_score=None: real(
        self.x[part], label[part], init_score=init_score))
    own = train_models(table, dt.date(2022, 6, 1), mcfg)
    for booster in ("win_booster", "home_runs_booster", "away_runs_booster"):
        assert getattr(shared, booster).model_to_string() == getattr(own, booster).model_to_string(), booster
    assert shared.card == own.card


def test_each_holdout_block_is_predicted_only_by_models_fit_before_it(mcfg):
    rows = training_rows(synthetic_table(), dt.date(2022, 6, 1), 12)
    features = [c for c in rows.columns if c.startswith(("ctx_", "form_", "sp_", "lu_", "elo_"))]
    _, cal, val = split_by_time(len(rows), mcfg.holdout_fraction)

    def holdout(table: pd.DataFrame) -> dict:
        with openmp_threads(mcfg.num_threads):  # as train_models fits
            return Fitter(table, features, mcfg).holdout_raw([cal, val])

    base = holdout(rows)

    def flipped(block: slice) -> dict:
        changed = rows.copy()
        changed.loc[changed.index[block], "home_win"] = 1 - changed.loc[changed.index[block], "home_win"]
        return holdout(changed)

    later = flipped(val)  # results of the validation block cannot reach either block's predictions
    earlier = flipped(cal)  # results of the calibration block reach the validation block's models only
    for name in ("lightgbm", "logistic"):
        assert np.array_equal(later[name][0], base[name][0]) and np.array_equal(later[name][1], base[name][1])
        assert np.array_equal(earlier[name][0], base[name][0])
        assert not np.allclose(earlier[name][1], base[name][1])


def test_too_little_history_is_a_clear_error(mcfg):
    with pytest.raises(ValueError, match="only 0 decided games before 2010-01-01; need at least 500"):
        train_models(synthetic_table(), dt.date(2010, 1, 1), mcfg)


def test_calibrators():
    rng = np.random.default_rng(1)
    raw = rng.uniform(0.05, 0.95, 5000)
    y = (rng.random(5000) < raw ** 2).astype(float)  # raw overstates the probability
    for kind in ("platt", "isotonic"):
        cal = Calibrator.fit(kind, raw, y)
        fixed = cal.apply(raw)
        assert brier(y, fixed) < brier(y, raw)
        assert np.all(np.diff(cal.apply(np.linspace(0.01, 0.99, 50))) >= 0)  # still monotone
    assert np.array_equal(Calibrator("none", {}).apply(np.array([0.3])), np.array([0.3]))


def test_psi_is_zero_for_the_reference_and_large_for_a_shift():
    rng = np.random.default_rng(2)
    ref = rng.normal(size=20000)
    edges = np.quantile(ref, np.linspace(0, 1, 11)[1:-1])
    bins = {"edges": edges.tolist(), "shares": [0.1] * 10}
    assert psi(bins, rng.normal(size=20000)) < 0.01
    assert psi(bins, rng.normal(1.0, 1, size=20000)) > 0.25
    assert psi(bins, np.array([])) is None


def test_evaluation_by_hand():
    day = pd.Timestamp("2024-07-10")
    log = pd.DataFrame({"game_id": ["A", "B", "C"], "date": [day - pd.Timedelta(days=d) for d in (1, 2, 40)],
                        "p_home_win": [0.8, 0.4, 0.5], "exp_home_runs": [5.0, 4.0, 4.0],
                        "exp_away_runs": [3.0, 4.0, 4.0]})
    table = pd.DataFrame({"game_id": ["A", "B", "C", "D"], "played": [True, True, True, False],
                          "result_date": [day - pd.Timedelta(days=d) for d in (1, 2, 40, 0)],
                          "home_win": pd.array([1, 1, 0, pd.NA], dtype="Int64"), "home_score": [6, 5, 2, 0],
                          "away_score": [3, 4, 3, 0]})
    noise = {"games": 1000, "brier": 0.24, "brier_sd": 0.1, "log_loss": 0.67, "log_loss_sd": 0.2,
             "runs": {"games": 2000, "mae": 2.5, "abs_error_sd": 1.0, "mse": 9.0, "sq_error_sd": 12.0}}
    report = evaluate(log, table, day.date(), noise)
    # Brier: (0.2^2 + 0.6^2 + 0.5^2) / 3 = 0.65 / 3
    assert report["evaluated"] == 3 and report["all"]["brier"] == pytest.approx(0.65 / 3)
    assert report["last_7_days"]["n"] == 2 and report["last_7_days"]["accuracy"] == pytest.approx(0.5)
    # run errors over the two last-7-day games, both sides: |5-6|,|4-5|,|3-3|,|4-4| -> MAE 0.5
    assert report["last_7_days"]["runs"]["mae"] == pytest.approx(0.5)
    # the 30 days against validation: Brier (0.04 + 0.36) / 2 = 0.2 on 2 games, se 0.1 * sqrt(1/2 + 1/1000)
    gap = report["last_30_days"]["vs_validation"]
    assert gap["brier"]["games"] == 2 and gap["brier"]["standard_error"] == pytest.approx(0.1 * (0.5 + 0.001) ** 0.5)
    assert gap["brier"]["z"] == pytest.approx((0.2 - 0.24) / (0.1 * (0.5 + 0.001) ** 0.5))
    # runs rest on team-games: 4 of them, MAE 0.5 against 2.5
    assert gap["runs_mae"]["games"] == 4 and gap["runs_mae"]["z"] == pytest.approx(-2.0 / (0.25 + 0.0005) ** 0.5)
    assert "vs_validation" not in report["all"] and "vs_validation" not in report["last_7_days"]


def test_prediction_log_replaces_a_re_run_date():
    first = pd.DataFrame({"game_id": ["A"], "p_home_win": [0.5]})
    log = append_log(None, first, dt.date(2024, 7, 1))
    log = append_log(log, pd.DataFrame({"game_id": ["B"], "p_home_win": [0.6]}), dt.date(2024, 7, 2))
    log = append_log(log, pd.DataFrame({"game_id": ["B2"], "p_home_win": [0.7]}), dt.date(2024, 7, 2))
    assert log["game_id"].tolist() == ["A", "B2"] and set(log["lineups"]) == {"expected"}
    # the game-time run of the same day is kept beside the morning's, and its own re-run replaces it
    for p in (0.8, 0.9):
        log = append_log(log, pd.DataFrame({"game_id": ["B2"], "p_home_win": [p]}), dt.date(2024, 7, 2), "confirmed")
    assert log[["game_id", "lineups", "p_home_win"]].values.tolist() == [
        ["A", "expected", 0.5], ["B2", "confirmed", 0.9], ["B2", "expected", 0.7]]
    # a game-time run left with nothing to predict (the slate postponed) empties its own rows only
    log = append_log(log, pd.DataFrame({"game_id": pd.Series([], dtype="string"), "p_home_win": []}),
                     dt.date(2024, 7, 2), "confirmed")
    assert log[["game_id", "lineups"]].values.tolist() == [["A", "expected"], ["B2", "expected"]]


def test_off_day_gives_an_empty_prediction_table(trained):
    models = trained
    empty = predict(models, synthetic_table().iloc[:0], "lightgbm-000000000000")
    assert empty.empty and list(empty.columns)[-4:] == ["p_home_win", "exp_home_runs", "exp_away_runs",
                                                        "model_version"]


@pytest.fixture(scope="module")
def tied_walk(mcfg):
    """synthetic_table() with one 2022 game tied (2016 had one: home_win left null), and its 2022 walk
    forward fitting every retrain day: made once for the two tests that read it (each reads a copy)."""
    from utils.flows.backtest import walk_forward

    table = synthetic_table()
    season = table[table["season"] == 2022].index
    table.loc[season[5], ["home_win", "is_tie"]] = [pd.NA, True]
    return table, walk_forward(table, 2022, EVERY_DAYS, mcfg)


def test_walk_forward_keeps_a_tie_as_a_missing_result_and_meets_its_contract(tied_walk):
    """A tied game (2016 had one) left home_win null: the column must stay nullable integers."""
    from tests.conftest import ROOT
    from utils.store.schema import load_contract, validate_frame

    table, out = (frame.copy() for frame in tied_walk)
    season = table[table["season"] == 2022].index
    assert table["is_tie"].sum() == 1
    assert len(out) == len(season) and out["home_win"].dtype == "Int64" and out["home_win"].isna().sum() == 1
    validate_frame(load_contract(ROOT / "schemas", "backtest"), out)


def test_a_walk_forward_reads_kept_fits_and_predicts_the_same(mcfg, tied_walk, tmp_path, monkeypatch):
    """The backtest's retrain days read K's kept fits (the nightly's, or an earlier walk's): the same
    predictions as fitting each (the walk that fit every retrain day: tied_walk's), and no fit the
    second time."""
    from modules import k_train
    from utils.flows import backtest

    table, fitted = (frame.copy() for frame in tied_walk)
    first = backtest.walk_forward(table, 2022, EVERY_DAYS, mcfg, fits=tmp_path)
    calls = []
    monkeypatch.setattr(k_train, "train_models", lambda *a, **k: calls.append(a[1]))
    again = backtest.walk_forward(table, 2022, EVERY_DAYS, mcfg, fits=tmp_path)
    pd.testing.assert_frame_equal(first, fitted, check_exact=True)
    pd.testing.assert_frame_equal(again, fitted, check_exact=True)
    assert calls == [] and len(list(tmp_path.glob("fit-expected-2022-*.json"))) == len(backtest.retrain_dates(
        table[table["season"] == 2022], EVERY_DAYS))
