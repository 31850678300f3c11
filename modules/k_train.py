"""K · train: win probability (LightGBM vs logistic regression vs the Elo baseline) and run models.

Training rows are games whose result was known before the as-of date, from the last
`model.train_seasons` seasons, in time order. The two newest blocks of 15% are hold-outs, each
predicted by candidates fit on every row before it: calibrators (Platt, isotonic) are fit on the
older block and scored on the newer one, the validation. The candidate with the best validation
Brier score is chosen and refit on all training rows, its calibrator refit on both blocks, and the
card says so. LightGBM learns corrections to the logistic model's log-odds (boosting from Elo's
instead measured 0.0003 Brier worse in walk-forward backtests: its trees went on relearning the
starters); the run models are Poisson, validated the same way and refit on all games.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from modules.models import Calibrator, TrainedModels, feature_columns, logistic_logit, raw_probability
from utils.config import DriftConfig, ModelConfig
from utils.engine.stages import ModuleResult, StageOutput, project_sources
from utils.engine.threads import openmp_threads, threads_free
from utils.monitoring import drift
from utils.monitoring.evaluation import calibration_table, prediction_noise, run_metrics, run_noise, win_metrics
from utils.store.cache import ContentCache


def training_rows(table: pd.DataFrame, as_of: dt.date, seasons: int) -> pd.DataFrame:
    """Decided, non-forfeited games whose result was known before `as_of`, newest `seasons` seasons."""
    day = pd.Timestamp(as_of)
    known = table["played"] & (table["result_date"] < day) & table["home_win"].notna() & ~table["is_forfeit"]
    rows = table[known & (table["season"] > as_of.year - 1 - seasons)]
    return rows.sort_values(["date", "game_id"], kind="stable").reset_index(drop=True)


def split_by_time(n: int, holdout: float) -> tuple[slice, slice, slice]:
    val = max(int(n * holdout), 1)
    cal = max(int(n * holdout), 1)
    return slice(0, n - val - cal), slice(n - val - cal, n - val), slice(n - val, n)


def lgbm_params(p, seed: int, objective: str) -> dict:
    """LightGBM's parameters; the thread count is not one of them (utils/engine/threads.py sets it per fit)."""
    return {"objective": objective, "num_leaves": p.num_leaves, "learning_rate": p.learning_rate,
            "min_child_samples": p.min_child_samples, "subsample": p.subsample, "subsample_freq": 1,
            "colsample_bytree": p.colsample_bytree, "reg_lambda": p.reg_lambda, "random_state": seed,
            "deterministic": True, "force_row_wise": True, "verbose": -1}


log = logging.getLogger("mlb.k_train")

CANDIDATES = ("lightgbm", "logistic", "elo")


@dataclass
class Fitter:
    """Fits the candidates and run models on any leading slice of the time-ordered training rows."""

    rows: pd.DataFrame
    features: list[str]
    mcfg: object

    def __post_init__(self):
        self.x = self.rows[self.features].to_numpy(dtype=float)
        self.y = self.rows["home_win"].to_numpy(dtype=float)
        self._binned: dict[tuple[int, int, int], object] = {}  # a slice's Dataset, binned by its first fit

    def _dataset(self, part: slice, label: np.ndarray, settings, init_score: np.ndarray | None = None):
        """A LightGBM Dataset of the rows of `part` for a fit with `settings` (a LightGBMParams). The bins
        LightGBM finds, and the rows binned by them, depend on the rows and the Dataset parameters alone,
        not on the label or the objective. Of the parameters a fit here sets, the only Dataset one is
        min_child_samples (LightGBM drops the features it can never split at construction,
        `feature_pre_filter`), so the fits of a slice with the same min_child_samples (by default the win
        model's and both run models', on the rows before the hold-out's last block and on every row) train
        on the first one's binned Dataset, with their own label and initial scores set on it, instead of
        binning the rows again: the same models, byte for byte (tests/test_model.py). lgb.train returns a
        booster reloaded from its text, holding nothing of the Dataset, so an earlier model is not changed
        by a later fit's label."""
        import lightgbm as lgb

        key = (part.start, part.stop, settings.min_child_samples)
        data = self._binned.get(key)
        if data is None:  # constructed (binned) by the lgb.train it is passed to
            data = self._binned[key] = lgb.Dataset(self.x[part], label[part], init_score=init_score)
        else:
            data.set_label(label[part])
            data.set_field("init_score", init_score)  # None clears the last fit's (set_init_score(None) keeps it)
        return data

    def logistic(self, part: slice) -> dict:
        from sklearn.linear_model import LogisticRegression

        xl = self.rows[list(self.mcfg.logistic_features)].to_numpy(dtype=float)[part]
        mean, scale = xl.mean(axis=0), xl.std(axis=0)
        scale[scale == 0] = 1.0
        lr = LogisticRegression(C=self.mcfg.logistic_c, max_iter=2000).fit((xl - mean) / scale, self.y[part])
        return {"features": list(self.mcfg.logistic_features), "mean": mean.tolist(), "scale": scale.tolist(),
                "coef": lr.coef_[0].tolist(), "intercept": float(lr.intercept_[0])}

    def booster(self, part: slice, logistic: dict):
        import lightgbm as lgb

        init = logistic_logit(self.rows.iloc[part], logistic)
        return lgb.train(lgbm_params(self.mcfg.lightgbm, self.mcfg.seed, "binary"),
                         self._dataset(part, self.y, self.mcfg.lightgbm, init_score=init),
                         num_boost_round=self.mcfg.lightgbm.n_estimators)

    def runs(self, part: slice, side: str):
        import lightgbm as lgb

        target = self.rows[f"{side}_score"].to_numpy(dtype=float)
        params = self.mcfg.runs_lightgbm
        return lgb.train(lgbm_params(params, self.mcfg.seed, "poisson"),
                         self._dataset(part, target, params), num_boost_round=params.n_estimators)

    def holdout_raw(self, blocks: list[slice]) -> dict[str, list[np.ndarray]]:
        """Uncalibrated P(home win) of every candidate on each hold-out block, each block predicted
        by candidates fit on every row before it, as the published model is fit on every row
        before its date: calibrators then learn how a model fit on (nearly) all the history
        behaves on the games after it, not how one fit on 70% of it does."""
        out = {name: [] for name in CANDIDATES}
        for block in blocks:
            before = slice(0, block.start)
            logistic = self.logistic(before)
            booster = self.booster(before, logistic)
            for name in CANDIDATES:
                out[name].append(raw_probability(name, self.rows.iloc[block], self.features, booster, logistic))
        return out


def train_models(table: pd.DataFrame, as_of: dt.date, mcfg, psi_bins: int = 10,
                 lineups: str = "expected") -> TrainedModels:
    """Fit every candidate on the same time-ordered split; publish the best by validation Brier.
    The features are `run.lineups`' (`models.feature_columns`: the confirmed lineup's only in the
    game-time run). OpenMP gets at most `model.num_threads`, fewer on a busy machine (utils/engine/threads.py)."""
    with openmp_threads(mcfg.num_threads):
        return _fit_candidates(table, as_of, mcfg, psi_bins, lineups)


def _fit_candidates(table: pd.DataFrame, as_of: dt.date, mcfg, psi_bins: int, lineups: str) -> TrainedModels:
    rows = training_rows(table, as_of, mcfg.train_seasons)
    if len(rows) < 500:
        raise ValueError(f"model_table: only {len(rows)} decided games before {as_of}; need at least 500 to train")
    missing = [c for c in mcfg.logistic_features if c not in rows.columns]
    if missing:
        raise ValueError(f"model.logistic_features: {missing} are not model_table columns")
    features = feature_columns(rows, lineups)
    _, cal, val = split_by_time(len(rows), mcfg.holdout_fraction)
    fitter = Fitter(rows, features, mcfg)
    y = fitter.y
    raw = fitter.holdout_raw([cal, val])
    holdout = slice(cal.start, len(rows))
    candidates = {}
    calibrators = {}
    p_validation = {}
    kinds = ("platt", "isotonic") if mcfg.calibration == "auto" else (mcfg.calibration,)
    for name in CANDIDATES:
        raw_cal, raw_val = raw[name]
        # Time-ordered validation: calibrators fit on the older block, scored on the newer one.
        options = {"none": Calibrator("none", {})} if name == "elo" else {
            k: Calibrator.fit(k, raw_cal, y[cal]) for k in kinds}
        scored = {k: win_metrics(y[val], c.apply(raw_val)) for k, c in options.items()}
        best = min(scored, key=lambda k: (scored[k]["log_loss"], k))
        p_validation[name] = options[best].apply(raw_val)
        # Published: the same kind refit on both blocks, twice the games.
        calibrators[name] = options[best] if name == "elo" else Calibrator.fit(
            best, np.concatenate([raw_cal, raw_val]), y[holdout])
        candidates[name] = {"calibration": best, "validation": scored[best],
                            "calibration_options": {k: v["log_loss"] for k, v in scored.items()},
                            "calibration_table": calibration_table(y[val], options[best].apply(raw_val))}
    chosen = min(candidates, key=lambda k: (candidates[k]["validation"]["brier"], k))
    # Chosen on the time-ordered split, the candidates are refit on every training row (the newest
    # games are the most informative ones); win_model always holds the LightGBM candidate.
    everything = slice(0, len(rows))
    logistic = fitter.logistic(everything)
    booster = fitter.booster(everything, logistic)
    runs = {}
    boosters = {}
    actual, expected = [], []
    for side in ("home", "away"):
        target = rows[f"{side}_score"].to_numpy(dtype=float)
        actual.append(target[val])
        expected.append(fitter.runs(slice(0, val.start), side).predict(fitter.x[val]))
        runs[side] = run_metrics(actual[-1], expected[-1])
        boosters[side] = fitter.runs(everything, side)
    models = TrainedModels(chosen, calibrators[chosen], features, booster, boosters["home"], boosters["away"],
                           logistic, {}, {})
    p_val = models.p_home_win(rows.iloc[val])
    models.reference = {"features": drift.reference(drift.reference_rows(rows, as_of), features, psi_bins),
                        "p_home_win": drift.reference(pd.DataFrame({"p": p_val}), ["p"], psi_bins)["p"]}
    # What the validation implies for a live window of n games: each metric's spread over single games.
    noise = {**prediction_noise(y[val], p_validation[chosen]),
             "runs": run_noise(np.concatenate(actual), np.concatenate(expected))}
    models.card = model_card(rows, features, (cal, val), candidates, chosen, runs, mcfg, as_of, noise)
    return models


def model_card(rows, features, split, candidates, chosen, runs, mcfg, as_of, noise) -> dict:
    import lightgbm
    import sklearn

    cal, val = split
    window = lambda s: {"first": rows["date"].iloc[s].min().date().isoformat(),  # noqa: E731
                        "last": rows["date"].iloc[s].max().date().isoformat(), "games": int(len(rows.iloc[s]))}
    baseline = candidates["elo"]["validation"]["brier"]
    return {
        "as_of": as_of.isoformat(),
        # fit: the published models' games (all of them); the two hold-out blocks inside it
        "training_window": {"fit": window(slice(0, len(rows))), "calibration": window(cal),
                            "validation": window(val)},
        "features": features,
        "parameters": {"lightgbm": mcfg.lightgbm.model_dump(), "runs_lightgbm": mcfg.runs_lightgbm.model_dump(),
                       "logistic_c": mcfg.logistic_c,
                       "logistic_features": list(mcfg.logistic_features), "lightgbm_init_score": "logistic",
                       "train_seasons": mcfg.train_seasons, "holdout_fraction": mcfg.holdout_fraction,
                       "calibration": mcfg.calibration},
        "seed": mcfg.seed,
        "candidates": candidates,
        "chosen": chosen,
        "why": (f"{chosen} has the lowest validation Brier ({candidates[chosen]['validation']['brier']:.5f}; "
                f"Elo baseline {baseline:.5f}) with {candidates[chosen]['calibration']} calibration; "
                f"then refit on all {len(rows)} training games"),
        "runs": {"validation": runs},
        "validation_noise": noise,
        "versions": {"lightgbm": lightgbm.__version__, "scikit-learn": sklearn.__version__,
                     "numpy": np.__version__, "pandas": pd.__version__},
    }


def model_params(models: TrainedModels) -> dict:
    """What prediction needs beyond the LightGBM files: the choice, calibrator, logistic weights, drift bins."""
    return {"chosen": models.chosen, "calibrator": {"kind": models.calibrator.kind, "params": models.calibrator.params},
            "features": models.features, "logistic": models.logistic, "reference": models.reference}


SEASON_OVER_DAYS = 7  # days without a game after which a season is over (the All-Star break is four)


def fit_day(table: pd.DataFrame, as_of: dt.date, every_days: int) -> dt.date:
    """The day the published models are fit as of: the season's last retrain day on or before `as_of`,
    every `every_days` from its first game, as the walk-forward backtests retrain (so a night publishes
    the models its season's backtest scores). Nights whose training rows cannot differ share one fit:
    before the season's first game, January 1st (the seasons before); more than SEASON_OVER_DAYS after
    its last game (not an All-Star break: the season is over), the day after that game."""
    dates = table.loc[table["season"] == as_of.year, "date"]
    day = pd.Timestamp(as_of)
    if dates.empty or day < dates.min():
        return dt.date(as_of.year, 1, 1)
    first, last = dates.min(), dates.max()
    if (day - last).days > SEASON_OVER_DAYS:
        return (last + pd.Timedelta(days=1)).date()
    return (first + pd.Timedelta(days=(day - first).days // every_days * every_days)).date()


def train(model_table: pd.DataFrame, as_of: dt.date, model: ModelConfig, psi_bins: int, drift_config: DriftConfig,
          cache: Path, fits: Path, keep_fits: bool = True, lineups: str = "expected") -> StageOutput:
    """The published models (LightGBM text files), what prediction needs beside them, the card, and
    each feature's normal drift (learnt once a season, then read from the cache). The models are fit
    as of the season's retrain day (`fit_day`); the nights until the next one read the same fit from
    the cache (`cached_fit`: keyed by its training rows, so a corrected game refits it)."""
    day = fit_day(model_table, as_of, model.retrain_every_days)
    published = cached_fit(model_table, day, model, psi_bins, fits, keep_fits, lineups)
    card = published["model_card"]
    features = published["model_params"]["features"]
    # the fit's thread budget, free cores only: looked at (0.3 s in a process's first look) only to fit one
    baseline = cached_baseline(model_table, features, as_of, drift_config, psi_bins, model.train_seasons, cache,
                               lineups, lambda: threads_free(model.num_threads))
    chosen = card["candidates"][card["chosen"]]["validation"]
    return StageOutput({**published, "drift_baseline": baseline},
                       {"validation_brier": chosen["brier"], "validation_log_loss": chosen["log_loss"],
                        "baseline_brier": card["candidates"]["elo"]["validation"]["brier"],
                        "drift_baseline_nights": baseline["nights"]})


def describe_fit(cfg, store) -> str:
    """For the dry run: the retrain day tonight's models are fit as of (from the model table on disk,
    last night's), and whether a fit and a drift baseline are kept for it and this run's lineup mode.
    A kept fit is read only if its training rows are unchanged (a corrected game refits it), which
    tonight's table alone can tell; nothing is written."""
    as_of, lineups = cfg.run.as_of, cfg.run.lineups
    try:
        table = store.read_frame("model_table", columns=["season", "date"])
    except Exception:  # noqa: BLE001 - no table yet (a first night) or one that does not read
        table = pd.DataFrame({"season": pd.Series(dtype="int64"), "date": pd.Series(dtype="datetime64[ns]")})
    day = fit_day(table, as_of, cfg.model.retrain_every_days)
    fit = sorted(store.catalog.cache_path("models").glob(f"fit-{lineups}-{day.isoformat()}-*.json"))
    baseline = sorted(store.catalog.cache_path("drift").glob(f"drift-baseline-{lineups}-{as_of.year}-*.json"))
    if not getattr(cfg.run, "reuse_history", True):
        said = f"fits its {lineups} models as of {day} (run.reuse_history is false)"
    elif fit:
        said = (f"reads the {lineups} fit kept for {day} ({fit[0].name[:40]}…) if its training rows, settings "
                f"and code are unchanged")
    else:
        said = f"fits its {lineups} models as of {day}: none kept for that day"
    return said + (f"; drift baseline for {as_of.year} kept" if baseline else
                   f"; learns the drift baseline for {as_of.year}")


def fit_outputs(models: TrainedModels) -> dict:
    return {"win_model": models.win_booster.model_to_string().encode(),
            "home_runs_model": models.home_runs_booster.model_to_string().encode(),
            "away_runs_model": models.away_runs_booster.model_to_string().encode(),
            "model_params": json.loads(json.dumps(model_params(models))),
            "model_card": models.card}


FIT_FILES = ("win_model", "home_runs_model", "away_runs_model")


def cached_fit(table: pd.DataFrame, day: dt.date, mcfg: ModelConfig, psi_bins: int, fits: Path,
               keep: bool = True, lineups: str = "expected") -> dict:
    """train_models as of `day`, reused while everything it reads is the same: its training rows (every
    row known before `day`, features and results), the model settings, the drift bins, the code of K and
    what it imports, and the versions of the libraries that fit. One fit a retrain day is kept (a
    backtest's walk reads them too; about 0.4 MB each). `keep=False` (run.reuse_history: false) fits
    again; LightGBM is deterministic, so the bytes are the same. The two lineup modes' fits are kept
    side by side (the morning's and the game-time run's)."""
    import platform

    import lightgbm
    import scipy
    import sklearn

    rows = training_rows(table, day, mcfg.train_seasons)
    store, stem = ContentCache(fits), f"fit-{lineups}-{day.isoformat()}"
    key = ContentCache.key(json.dumps([day.isoformat(), lineups, mcfg.model_dump(mode="json"), psi_bins,
                                       [lightgbm.__version__, sklearn.__version__, scipy.__version__, np.__version__,
                                        pd.__version__, platform.python_version()]]),
                           *(path.read_bytes() for path in project_sources(__name__)),
                           pd.util.hash_pandas_object(rows, index=False).to_numpy().tobytes(),
                           json.dumps([str(c) for c in rows.columns]))
    if keep:
        payload = store.get_keyed(stem, key, ".json")
        if payload is not None:
            try:
                kept = json.loads(payload)
                return {**{name: kept[name].encode() for name in FIT_FILES},
                        "model_params": kept["model_params"], "model_card": kept["model_card"]}
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                log.warning("%s: discarding a kept fit of another shape (%s); fitting again",
                            store.path(f"{stem}-{key}.json"), " ".join(str(exc).split())[:160])
    published = fit_outputs(train_models(table, day, mcfg, psi_bins, lineups))
    document = {**{name: published[name].decode() for name in FIT_FILES},
                "model_params": published["model_params"], "model_card": published["model_card"]}
    try:
        store.publish(stem, key, {".json": json.dumps(document, sort_keys=True).encode()})
    except OSError as exc:
        log.warning("%s: cannot keep the fit (%s); the next night fits again", store.path(f"{stem}-{key}.json"),
                    exc.strerror or exc)
    return published


def cached_baseline(table: pd.DataFrame, features: list[str], as_of: dt.date, cfg: DriftConfig, bins: int,
                    train_seasons: int, cache: Path, lineups: str = "expected",
                    workers: int | Callable[[], int] = 1) -> dict:
    """drift.fit_baseline, reused while the seasons it reads, the features, the settings and the code
    that measures are the same: it reads only seasons before the as-of season, so it is fit on a
    season's first night and read after. The key hashes every row of those seasons (a corrected past
    game refits it) and utils/monitoring/drift.py's source. A cache that cannot be read or written costs a refit
    or a warning, never the night's models. `workers`: the threads to fit it on, or what says them when
    it is fit."""
    before = (table["season"] < as_of.year).to_numpy(dtype=bool)
    digest = hashlib.sha256()
    digest.update(json.dumps([as_of.year, cfg.model_dump(mode="json"), bins, train_seasons, features]).encode())
    digest.update(Path(drift.__file__).read_bytes())
    for column in table.columns:  # column by column: a night holds one column of those seasons, not a copy of them
        digest.update(json.dumps(str(column)).encode())
        digest.update(pd.util.hash_pandas_object(table[column][before], index=False).to_numpy().tobytes())
    # one a lineup mode: the morning's and the game-time run's features differ
    store, stem, key = ContentCache(cache), f"drift-baseline-{lineups}-{as_of.year}", digest.hexdigest()[:16]
    cached = _read_baseline(store, f"{stem}-{key}.json")
    if cached is not None:
        return {**cached, "as_of": as_of.isoformat()}
    baseline = drift.fit_baseline(table[before], features, as_of, cfg, bins, train_seasons,
                                  workers() if callable(workers) else workers)
    try:
        store.publish(stem, key, {".json": json.dumps(baseline, sort_keys=True).encode()})
    except OSError as exc:
        log.warning("%s: cannot keep the drift baseline (%s); the next run fits it again",
                    store.path(f"{stem}-{key}.json"), exc.strerror or exc)
    return baseline


def _read_baseline(store: ContentCache, name: str) -> dict | None:
    """A cached baseline that verifies and has today's shape; None (with a warning if it was there)."""
    payload = store.get(name)
    if payload is None:
        return None
    try:
        baseline = json.loads(payload)
        drift.check_baseline(baseline)
        return baseline
    except (ValueError, KeyError, TypeError) as exc:
        log.warning("%s: discarding a cached drift baseline of another shape (%s); fitting it again", store.path(name),
                    " ".join(str(exc).split())[:160])
        return None


def main(cfg) -> ModuleResult:
    """Stage K through the pipeline's runner, as a run does, holding the artifacts root's run lock."""
    from modules.registry import REGISTRY
    from utils.engine.one_stage import run_alone

    return run_alone(cfg, REGISTRY["K"])
