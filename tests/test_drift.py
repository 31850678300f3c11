"""Drift against each feature's own normal (utils/monitoring/drift.py), K's cached baseline, L's sources' health."""
import datetime as dt
import json
import logging

import numpy as np
import pandas as pd
import pytest

from modules.k_train import cached_baseline
from modules.l_predict_monitor import source_health
from tests.conftest import ROOT
from utils.config import ConfigError, DriftConfig, build_config, load_config
from utils.monitoring import drift
from utils.store.artifacts import write_verified

FEATURES = ["elo_diff", "form_home_rf_10", "ctx_park_factor"]


def league(seasons=range(2019, 2025), games_a_day=15, seed=3) -> pd.DataFrame:
    """April to September, 15 games a day: a normal feature, a skewed one, and a park factor that takes
    one of 30 values (the home park's)."""
    rng = np.random.default_rng(seed)
    days = pd.DatetimeIndex([d for s in seasons for d in pd.date_range(f"{s}-04-01", f"{s}-09-30")])
    dates = days.repeat(games_a_day)
    n = len(dates)
    parks = rng.normal(1.0, 0.05, 30)
    return pd.DataFrame({
        "game_id": [f"G{i:07d}" for i in range(n)], "date": dates, "result_date": dates,
        "season": dates.year, "played": True, "is_forfeit": False,
        "home_win": pd.array(rng.integers(0, 2, n), dtype="Int64"),
        "home_starter_id": "abcd001", "away_starter_id": "efgh001",
        "elo_diff": rng.normal(24, 60, n), "form_home_rf_10": rng.gamma(9, 0.5, n),
        "ctx_park_factor": parks[rng.integers(0, 30, n)],
    })


def config(**kw) -> DriftConfig:
    return DriftConfig(**{"baseline_seasons": 3, "night_every_days": 3, "exclude": {}, **kw})


def night_scores(table, baseline, day):
    rows = table[table["date"] < day]
    ref = drift.reference(drift.reference_rows(rows, day.date()), FEATURES, 10)
    last, tonight = drift.window(table, day.date())
    return drift.score(drift.measure(ref, last, tonight), baseline, len(last))


@pytest.fixture(scope="module")
def table():
    return league()


@pytest.fixture(scope="module")
def baseline(table):
    return drift.fit_baseline(table[table["season"] < 2024], FEATURES, dt.date(2024, 3, 1), config(), 10, 12)


def test_psi_and_shift_by_hand():
    ref = {"edges": [0.0], "shares": [0.5, 0.5], "mean": 0.0, "std": 2.0}
    assert drift.psi(ref, np.array([-1.0, 1.0])) == pytest.approx(0.0)
    # all mass in one bin: (1 - .5) ln(1/.5) + (1e-4 - .5) ln(1e-4/.5)
    assert drift.psi(ref, np.array([1.0, 2.0])) == pytest.approx(0.5 * np.log(2) + (1e-4 - 0.5) * np.log(2e-4))
    assert drift.shift(ref, np.array([1.0, 1.0, 1.0, 1.0])) == pytest.approx(1.0 / (2.0 / 2))  # mean 1, se 1
    assert drift.psi(ref, np.array([])) is None and drift.shift(ref, np.array([])) is None


def test_bins_measure_every_column_at_once_to_the_bits_of_one_column_at_a_time():
    """`Bins` (the baseline's nights, every column at once) against `reference_matrix`, `psi` and `shift`
    column by column: the same floats, bit for bit, for columns with few distinct values (fewer edges than
    bins), a constant one, window sizes on both sides of numpy's summation blocks (8 and 128 values),
    none at all, and columns picked by a mask (not contiguous)."""
    rng = np.random.default_rng(11)
    for rows, nights in ((900, (0, 1, 7, 8, 9, 127, 129, 450)), (40, (3, 16))):
        values = np.column_stack([rng.normal(24, 60, rows), rng.gamma(9, 0.5, rows), rng.integers(0, 3, rows),
                                  np.full(rows, 0.25), rng.integers(0, 40, rows) / 7, rng.normal(0, 1e-9, rows)])
        names = [f"c{i}" for i in range(values.shape[1])]
        one_by_one = drift.reference_matrix(values, names, 10)
        together = drift.Bins(values.T[:, np.ones(rows, dtype=bool)], 10)  # every row, through a fancy index
        assert [len(one_by_one[n]["edges"]) for n in names] == together.widths.tolist()
        assert len(set(together.widths.tolist())) >= 3
        for i, name in enumerate(names):
            assert together.shares[i, :together.widths[i] + 1].tolist() == one_by_one[name]["shares"]
            assert (together.mean[i], together.std[i]) == (one_by_one[name]["mean"], one_by_one[name]["std"])
        for size in nights:
            night = values[rng.integers(0, rows, size)] * rng.choice([1.0, 1.1], values.shape[1])
            picked = night.T[:, np.ones(size, dtype=bool)]  # not contiguous either
            expected_psi = [drift.psi(one_by_one[n], night[:, i]) for i, n in enumerate(names)]
            expected_shift = [None if size == 0 else abs(drift.shift(one_by_one[n], night[:, i]))
                              for i, n in enumerate(names)]
            assert together.psis(picked) == expected_psi and together.shifts(picked) == expected_shift, size


def test_the_baseline_measures_as_a_night_is_measured_column_by_column(table, baseline):
    """fit_baseline against the plain definition: each night's reference and measures taken column by
    column with reference_matrix, psi and shift, compared night by night and then as normals. A column
    with missing values, or one whose spread overflows (its quantile edges would too), is measured by
    itself, and gives what the definition gives."""
    def definition(past: pd.DataFrame, features: list[str], cfg) -> list[dict]:
        seen = []
        for night in drift.baseline_nights(past, dt.date(2024, 3, 1), cfg):
            year, end = night.year, night.day_of_year
            before = past[past["result_date"] < night]
            same = before[before["season"].between(year - 2, year - 1)
                          & (before["date"].dt.day_of_year > end - 30) & (before["date"].dt.day_of_year <= end)]
            rows = before[before["season"] < year] if len(same) < drift.MIN_REFERENCE_ROWS else same
            ref = drift.reference_matrix(rows[features].to_numpy(dtype=float), features, 10)
            last, tonight = drift.window(past[past["season"] == year], night.date())
            stats = {"season": year, "games": len(last)}
            for name in features:
                stats[f"{name}|psi"] = drift.psi(ref[name], last[name].to_numpy(dtype=float))
                moved = drift.shift(ref[name], tonight[name].to_numpy(dtype=float))
                stats[f"{name}|shift"] = None if moved is None else abs(moved)
            seen.append(stats)
        return seen

    past = table[table["season"] < 2024].copy()
    past["gappy"] = past["elo_diff"].where(np.arange(len(past)) % 97 != 0)  # a missing value every 97 games
    features = FEATURES + ["gappy"]
    frame = pd.DataFrame(definition(past, features, config()))
    assert frame["gappy|psi"].notna().all() and frame["gappy|psi"].ne(frame["elo_diff|psi"]).any()
    # every night's every value, not only the normals (a quantile of a few nights' values)
    measured = pd.DataFrame(drift.measure_nights(past, features, dt.date(2024, 3, 1), config(), 10, 12, workers=2))
    assert list(measured.columns) == list(frame.columns) and measured.equals(frame)
    fitted = drift.fit_baseline(past, features, dt.date(2024, 3, 1), config(), 10, 12)
    which = frame["games"].map(lambda g: drift.bucket(g, fitted["window_games_buckets"]))
    for name in features:
        for view in drift.VIEWS:
            expected = [drift._normal(drift._bucket_values(frame, which, f"{name}|{view}", b), view, config().quantile)
                        for b in range(len(fitted["window_games_buckets"]) + 1)]
            assert fitted["features"][name][view] == expected, (name, view)
    assert fitted["features"]["elo_diff"] == baseline["features"]["elo_diff"]


def test_the_baseline_reads_only_seasons_before_the_as_of_season(table, baseline):
    """Rewriting every row of the as-of season and later moves nothing in the baseline K fits."""
    assert baseline["seasons"] == [2021, 2022, 2023] and baseline["nights"] == len(range(0, 3 * 183, 3))
    future = table.copy()
    later = future["season"] >= 2024
    future.loc[later, FEATURES] = future.loc[later, FEATURES] * 50 + 7
    again = drift.fit_baseline(future, FEATURES, dt.date(2024, 3, 1), config(), 10, 12)
    assert json.dumps(again, sort_keys=True) == json.dumps(baseline, sort_keys=True)


def test_ordinary_nights_score_near_one_and_a_shift_scores_far_beyond(table, baseline):
    """Nights of the unseen season stay near 1; one standard deviation of shift scores over 4."""
    days = [pd.Timestamp(2024, m, 15) for m in (5, 6, 7, 8, 9)]
    ordinary = [night_scores(table, baseline, d) for d in days]
    assert max(s[f]["psi_score"] for s in ordinary for f in FEATURES) < 2.0
    shifted = table.copy()
    this = shifted["season"] == 2024
    shifted.loc[this, "elo_diff"] += 60  # one standard deviation, the whole season
    for day in days:
        s = night_scores(shifted, baseline, day)
        assert s["elo_diff"]["psi_score"] > 4 and s["form_home_rf_10"]["psi_score"] < 2


def test_a_unit_change_tonight_shows_in_tonights_shift(table, baseline):
    day = pd.Timestamp(2024, 7, 15)
    broken = table.copy()
    broken.loc[broken["date"] == day, "form_home_rf_10"] *= 9  # per inning read as per nine innings
    s = night_scores(broken, baseline, day)["form_home_rf_10"]
    assert s["shift_score"] > 4 and s["psi_score"] < 4  # one night of thirty barely moves the PSI


def test_small_windows_are_judged_against_small_windows(baseline):
    """Opening week's 30-day window holds a few dozen games: its normal PSI is the early nights' own."""
    psi_normals = baseline["features"]["elo_diff"]["psi"]
    assert baseline["window_games_buckets"] == [100, 200, 300] and psi_normals[0] > psi_normals[-1]
    assert drift.bucket(99, [100, 200, 300]) == 0 and drift.bucket(100, [100, 200, 300]) == 1
    assert drift.bucket(450, [100, 200, 300]) == 3


def test_history_and_the_week_before():
    day = dt.date(2024, 7, 15)
    scores = {"elo_diff": {"psi": 0.2, "psi_normal": 0.1, "psi_score": 2.0,
                           "shift": None, "shift_normal": 2.5, "shift_score": None}}
    history = None
    for back, value in ((9, 7.0), (3, 1.5), (1, 0.5)):
        rows = drift.history_rows(day - dt.timedelta(days=back), {"elo_diff": {**scores["elo_diff"],
                                                                                "psi_score": value}})
        history = drift.append_history(history, rows, day - dt.timedelta(days=back))
    assert len(history) == 3  # no row for a view without games
    assert drift.recent_max(history, day) == {("elo_diff", "psi"): 1.5}  # the 7.0 is 9 nights back
    rerun = drift.append_history(history, drift.history_rows(day - dt.timedelta(days=1), scores),
                                 day - dt.timedelta(days=1))
    assert len(rerun) == 3 and rerun["score"].tolist() == [7.0, 1.5, 2.0]
    assert drift.recent_max(None, day) == {}


def test_the_baseline_is_fit_once_a_season_and_refit_when_a_past_game_changes(table, tmp_path, monkeypatch, caplog):
    past = table[table["season"] < 2024].reset_index(drop=True)
    calls = []
    real = drift.fit_baseline
    monkeypatch.setattr(drift, "fit_baseline", lambda *a: calls.append(a[2]) or real(*a))
    looked = []  # the thread budget is looked at (0.3 s in a process's first look) only to fit one

    def budget():
        looked.append(1)
        return 1

    first = cached_baseline(past, FEATURES, dt.date(2024, 5, 1), config(), 10, 12, tmp_path, workers=budget)
    second = cached_baseline(past, FEATURES, dt.date(2024, 5, 2), config(), 10, 12, tmp_path, workers=budget)
    assert len(calls) == 1 and second["as_of"] == "2024-05-02" and second["features"] == first["features"]
    assert len(looked) == 1
    corrected = past.copy()
    corrected.loc[100, "elo_diff"] += 1.0  # a corrected result of 2019
    cached_baseline(corrected, FEATURES, dt.date(2024, 5, 3), config(), 10, 12, tmp_path)
    assert len(calls) == 2 and len(list(tmp_path.glob("drift-baseline-expected-2024-*.json"))) == 1
    entry = next(tmp_path.glob("drift-baseline-expected-2024-*.json"))
    entry.write_text(entry.read_text().replace("0.", "9.", 1))  # damaged in the cache
    with caplog.at_level(logging.WARNING):
        cached_baseline(corrected, FEATURES, dt.date(2024, 5, 4), config(), 10, 12, tmp_path)
    assert len(calls) == 3 and "does not verify" in caplog.text


def test_an_excluded_feature_needs_its_reason():
    with pytest.raises(ConfigError, match=r"monitoring\.drift\.exclude.*ctx_month: an excluded feature needs"):
        build_config({"monitoring": {"drift": {"exclude": {"ctx_month": " "}}}})
    with pytest.raises(ConfigError, match=r"monitoring\.drift\.window_games_buckets"):
        build_config({"monitoring": {"drift": {"window_games_buckets": [200, 100]}}})
    assert "ctx_day_of_week" in load_config(ROOT / "config.yaml").monitoring.drift.exclude


def test_source_health_counts_unknown_starters_and_missing_results():
    day = pd.Timestamp("2024-07-15")
    ids = [f"G{i}" for i in range(10)]
    yesterday = day - pd.Timedelta(days=1)
    table = pd.DataFrame({
        "game_id": ids, "date": [yesterday] * 6 + [day] * 4, "season": 2024,
        "played": [True] * 4 + [False] * 2 + [False] * 4,  # two of yesterday's six results missing
        # and one that arrives only tonight (a suspended game finished on the as-of date): not known yet
        "result_date": [yesterday] * 3 + [day] + [pd.NaT] * 6,
        "home_starter_id": ["a"] * 6 + [None, "b", "c", "d"],
        "away_starter_id": ["a"] * 10,
        "sp_home_starts": [5.0] * 8 + [0.0, 3.0], "sp_home_prior_ip": [90.0] * 8 + [0.0, 0.0],
        "sp_away_starts": 4.0, "sp_away_prior_ip": 50.0})
    log = pd.DataFrame({"game_id": ids[:6], "predicted_for": yesterday})
    health = source_health(table, 5, table.iloc[6:], log, day.date())
    # tonight: one home starter without an id, one with no start and no Lahman line (G8)
    assert health["starters"] == 8 and health["starters_unknown"] == 2
    assert (health["games_scheduled"], health["games_predicted"]) == (5, 4)
    assert health["results_date"] == "2024-07-14" and (health["results_expected"], health["results_ingested"]) == (6, 3)
    assert source_health(table, 4, table.iloc[6:], None, day.date())["results_expected"] == 0
    # the nightly job without an in-season results source (no game of 2024 known): nothing to judge,
    # rather than every game missing every night
    no_source = table.assign(played=False, result_date=pd.NaT)
    assert source_health(no_source, 5, table.iloc[6:], log, day.date())["results_expected"] == 0


def test_a_short_history_is_not_judged(table):
    """A night is measured only against earlier seasons: with one past season there is no night to
    learn from, the baseline is not ready, and values are reported without scores (no alert)."""
    one = drift.fit_baseline(table[table["season"] == 2023], FEATURES, dt.date(2024, 3, 1), config(), 10, 12)
    assert one["nights"] == 0 and not drift.ready(one)
    two = drift.fit_baseline(table[table["season"].between(2022, 2023)], FEATURES, dt.date(2024, 3, 1), config(),
                             10, 12)
    assert two["seasons"] == [2023] and drift.ready(two)
    scores = night_scores(table, one, pd.Timestamp(2024, 7, 15))
    assert scores["elo_diff"]["psi"] is not None and scores["elo_diff"]["psi_score"] is None
    assert drift.history_rows(dt.date(2024, 7, 15), scores).empty


def test_a_cache_that_cannot_be_written_or_read_costs_a_warning_not_the_models(table, tmp_path, caplog):
    past = table[table["season"] < 2024]
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    with caplog.at_level(logging.WARNING):
        baseline = cached_baseline(past, FEATURES, dt.date(2024, 5, 1), config(), 10, 12, not_a_folder)
    assert drift.ready(baseline) and "cannot keep the drift baseline" in caplog.text
    cache = tmp_path / "cache"
    cache.mkdir()
    cached_baseline(past, FEATURES, dt.date(2024, 5, 1), config(), 10, 12, cache)
    entry = next(cache.glob("drift-baseline-expected-2024-*.json"))
    old_shape = json.loads(entry.read_text())
    old_shape["features"]["elo_diff"]["shift"] = 2.5  # one number: the shape before per-bucket normals
    write_verified(entry, json.dumps(old_shape).encode())
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        again = cached_baseline(past, FEATURES, dt.date(2024, 5, 2), config(), 10, 12, cache)
    assert "of another shape" in caplog.text and len(again["features"]["elo_diff"]["shift"]) == 4


def test_the_opening_nights_share_one_reference_a_season_and_threads_change_nothing(table, baseline, monkeypatch):
    """A season's opening nights (too few games in the same weeks before) fall back to every earlier
    season's rows: the same rows, so their reference is measured once a season; the nights are
    measured on threads, and the baseline is the one measured on one (the fixture's)."""
    sizes = []
    real = drift.Bins.__init__
    monkeypatch.setattr(drift.Bins, "__init__", lambda self, columns, *a: sizes.append(columns.shape[1])
                        or real(self, columns, *a))
    threaded = drift.fit_baseline(table[table["season"] < 2024], FEATURES, dt.date(2024, 3, 1), config(), 10, 12,
                                  workers=2)
    assert threaded == baseline
    earlier = {year: int((table["season"] < year).sum()) for year in (2021, 2022, 2023)}
    fallbacks = [n for n in sizes if n in earlier.values()]
    assert len(fallbacks) == len(set(fallbacks)) >= 2  # one each season that has them, never twice
    assert len(sizes) - len(fallbacks) < threaded["nights"]  # the other nights each measure their own


def test_a_night_that_fails_stops_the_baseline_without_measuring_the_rest(table, monkeypatch):
    """The nights are measured on threads: the first error is raised once the nights already under way
    end, not after every other night of the baseline is measured (Executor.map cancels the nights not
    started when its results are left)."""
    measured = []
    real = drift.Bins.psis

    def failing(self, columns):
        measured.append(1)
        if len(measured) == 1:
            raise ValueError("a night that cannot be measured")
        return real(self, columns)

    monkeypatch.setattr(drift.Bins, "psis", failing)
    with pytest.raises(ValueError, match="a night that cannot be measured"):
        drift.fit_baseline(table[table["season"] < 2024], FEATURES, dt.date(2024, 3, 1), config(), 10, 12, workers=2)
    nights = len(drift.baseline_nights(table[table["season"] < 2024], dt.date(2024, 3, 1), config()))
    # those under way when it failed end (a night takes milliseconds: tens of them); without the cancel, every one
    assert nights > 100 and len(measured) < nights // 4
