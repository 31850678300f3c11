"""K · train, run through its main(cfg) on a synthetic model table (tests/synthetic_table.py)."""
from modules import k_train


def test_the_models_the_card_and_the_time_ordered_split(synthetic_store):
    cfg, store = synthetic_store
    result = k_train.main(cfg)
    card, params = store.read_json("model_card"), store.read_json("model_params")
    # 700 decided games before the as-of date: the newest 15% (105) validate, the 105 before calibrate
    assert card["training_window"]["fit"]["games"] == 700
    assert card["training_window"]["validation"]["games"] == 105 == card["training_window"]["calibration"]["games"]
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
