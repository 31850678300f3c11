"""K · train, run through its main(cfg) on a synthetic model table (tests/synthetic_table.py)."""
import pandas as pd

from modules import k_train


def test_the_models_the_card_and_the_time_ordered_split(synthetic_store):
    cfg, store = synthetic_store
    result = k_train.main(cfg)
    card, params = store.read_json("model_card"), store.read_json("model_params")
    table = store.read_frame("model_table")
    day = k_train.fit_day(table, cfg.run.as_of, cfg.model.retrain_every_days)
    n = len(k_train.training_rows(table, day, cfg.model.train_seasons))
    # fit as of the season's retrain day: every decided game before it; the newest 15% validate, the 15%
    # before calibrate
    assert card["as_of"] == day.isoformat() and day <= cfg.run.as_of and n > 600
    assert card["training_window"]["fit"]["games"] == n
    assert card["training_window"]["validation"]["games"] == int(n * 0.15) == card["training_window"]["calibration"][
        "games"]
    assert card["chosen"] in card["candidates"] and params["chosen"] == card["chosen"]
    # the home side wins as its Elo edge says, so the logistic weight on elo_diff is positive
    assert params["logistic"]["features"][0] == "elo_diff" and params["logistic"]["coef"][0] > 0
    assert store.read_bytes("win_model").startswith(b"tree")
    assert result.metrics["validation_brier"] == card["candidates"][card["chosen"]]["validation"]["brier"]
    assert store.meta("win_model")["lineage"]["params"]["model"]["num_threads"] == cfg.model.num_threads


def test_models_are_the_same_bytes_on_one_thread_or_two(synthetic_store, monkeypatch):
    """The thread count follows the machine's load (utils/engine/threads.py), so it must not change a model."""
    import lightgbm
    from threadpoolctl import threadpool_info

    from utils.engine import threads

    cfg, store = synthetic_store
    cfg = cfg.model_copy(update={"run": cfg.run.model_copy(update={"reuse_history": False})})  # fit each time
    made, seen = {}, []
    train = lightgbm.train

    def watched(*args, **kwargs):  # OpenMP's thread count while LightGBM trains
        seen.append({lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "openmp"})
        return train(*args, **kwargs)

    monkeypatch.setattr(lightgbm, "train", watched)
    for n in (1, 2):
        monkeypatch.setattr(threads, "threads_free", lambda wanted, n=n: n)
        seen.clear()
        k_train.main(cfg)
        assert seen and all(counts == {n} for counts in seen)  # every fit ran on exactly n threads
        made[n] = [store.read_bytes(name) for name in ("win_model", "home_runs_model", "away_runs_model")]
    assert made[1] == made[2]
    assert b"[num_threads: 0]" in made[1][0]  # no count recorded: OpenMP's limit set it


def test_a_busy_neighbour_takes_a_thread_and_an_idle_machine_gives_them_all():
    import subprocess
    import sys
    import time

    from utils.engine.threads import CpuWatch, threads_free

    assert threads_free(2, cores=2, others=0.0) == 2
    assert threads_free(2, cores=2, others=0.6) == 1  # a core more than half taken is taken
    assert threads_free(2, cores=2, others=1.9) == 1  # never fewer than one
    assert threads_free(4, cores=4, others=1.0) == 3
    watch = CpuWatch()
    watch.others_busy()
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(1.0)
        assert watch.others_busy() >= 0.7  # the busy loop keeps a core
    finally:
        hog.kill()
        hog.wait()


def test_a_night_publishes_the_fit_of_its_season_s_retrain_day_as_the_backtest_does():
    import datetime as dt

    from tests.synthetic_table import model_table
    from utils.flows.backtest import retrain_dates

    table = model_table()
    season = table[table["season"] == 2023]
    grid = retrain_dates(season, 7)
    for day in pd.date_range(grid[0], season["date"].max(), freq="D"):
        assert k_train.fit_day(table, day.date(), 7) == max(d for d in grid if d <= day).date()
    spring = table[(table["season"] != 2023) | (table["date"] >= "2023-03-30")]  # opening day in the spring
    opening = spring.loc[spring["season"] == 2023, "date"].min()
    # no game yet: every winter night shares January 1st's fit (the same training rows)
    for before in (opening - pd.Timedelta(days=1), pd.Timestamp("2023-01-15"), pd.Timestamp("2023-01-01")):
        assert k_train.fit_day(spring, before.date(), 7) == dt.date(2023, 1, 1)
    assert k_train.fit_day(spring, opening.date(), 7) == opening.date()
    january, march = (k_train.training_rows(spring, d, 3) for d in (dt.date(2023, 1, 1), (opening - pd.Timedelta(
        days=1)).date()))
    pd.testing.assert_frame_equal(january, march)
    # after the season's last game, the day after it (all its results, the same rows) holds through the autumn
    ended = table[(table["season"] != 2023) | (table["date"] <= "2023-09-30")]  # the season over by October
    last = ended.loc[ended["season"] == 2023, "date"].max()
    autumn = {k_train.fit_day(ended, (last + pd.Timedelta(days=d)).date(), 7) for d in range(8, 90)}
    assert autumn == {(last + pd.Timedelta(days=1)).date()}
    # a break of a few days mid-season (the table ends at the last game before it) keeps the retrain days
    for d in range(1, 8):
        night = last + pd.Timedelta(days=d)
        assert k_train.fit_day(ended, night.date(), 7) == max(g for g in grid if g <= night).date()


def test_the_nights_until_the_next_retrain_day_read_the_fit_and_a_correction_refits(synthetic_store, monkeypatch):
    import datetime as dt

    from modules.registry import REGISTRY
    from utils.engine.one_stage import run_stage

    cfg, store = synthetic_store
    table = store.read_frame("model_table")
    day = k_train.fit_day(table, cfg.run.as_of, 7)
    k_train.main(cfg)
    first = {n: store.read_bytes(n) for n in ("win_model", "home_runs_model", "away_runs_model", "model_card")}
    fits = []
    train = k_train.train_models
    monkeypatch.setattr(k_train, "train_models", lambda *a, **k: fits.append(a[1]) or train(*a, **k))
    nights = range(1, 7 - (cfg.run.as_of - day).days)  # the nights up to the next retrain day
    assert len(nights) >= 3
    for later in nights:
        run = cfg.run.model_copy(update={"as_of": cfg.run.as_of + dt.timedelta(later)})
        night = cfg.model_copy(update={"run": run})
        run_stage(night, REGISTRY["K"])
        assert {n: store.read_bytes(n) for n in first} == first
    assert fits == []
    # a game before the fit day corrected: its training rows changed, so it is fit again
    table.loc[table.index[10], "home_score"] += 5
    store.write_frame("model_table", table)
    k_train.main(cfg)
    assert fits == [day]
    # and run.reuse_history: false fits whatever is kept
    k_train.main(cfg.model_copy(update={"run": cfg.run.model_copy(update={"reuse_history": False})}))
    assert fits == [day, day]


def test_the_dry_run_says_whether_k_reads_a_kept_fit_or_fits_and_writes_nothing(synthetic_store):
    from modules.registry import REGISTRY
    from utils.engine.plan import Plan, describe_outputs

    cfg, store = synthetic_store
    confirmed = cfg.model_copy(update={"run": cfg.run.model_copy(update={"lineups": "confirmed"})})
    day = k_train.fit_day(store.read_frame("model_table"), cfg.run.as_of, cfg.model.retrain_every_days)
    cache = store.catalog.cache_root / "cache"
    k_train.main(cfg)
    kept = sorted(p.name for p in cache.rglob("*"))
    said = k_train.describe_fit(cfg, store)
    assert said.startswith(f"reads the expected fit kept for {day} (fit-expected-{day}-")
    assert said.endswith(f"drift baseline for {cfg.run.as_of.year} kept")
    # the game-time run's models are kept apart: none yet
    assert k_train.describe_fit(confirmed, store) == (f"fits its confirmed models as of {day}: none kept for that "
                                                      f"day; learns the drift baseline for {cfg.run.as_of.year}")
    # the plan shows it beside K's first output
    plan = Plan(["K"], [["K"]], [])
    effects = describe_outputs(REGISTRY, plan, store, "overwrite", cfg)
    assert effects["win_model"] == f"replace; {said}" and effects["model_card"] == "replace"
    assert sorted(p.name for p in cache.rglob("*")) == kept  # nothing written
