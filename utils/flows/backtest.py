"""Walk-forward season backtests with the nightly run's own training and prediction code.

Features in the model table only use results known before each game's date, so one table built
after the season serves every retrain date; at each retrain date R, K's `train_models` sees only
games whose result was known before R, and L's `predict` scores the games until the next retrain.
`pooled_report` puts several seasons' backtests side by side and pooled, as `backtest-report` prints.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd

from modules.k_train import cached_fit, train_models
from modules.models import PREDICTION_COLUMNS, predict, trained_models
from utils.engine.progress import progress
from utils.monitoring.evaluation import calibration_bins, calibration_table, calibration_test, run_metrics, win_metrics


def retrain_dates(season_games: pd.DataFrame, every_days: int) -> list[pd.Timestamp]:
    start, end = season_games["date"].min(), season_games["date"].max()
    return list(pd.date_range(start, end, freq=f"{every_days}D"))


def walk_forward(table: pd.DataFrame, season: int, every_days: int, mcfg, psi_bins: int = 10,
                 on_retrain=None, fits: Path | None = None, lineups: str = "expected") -> pd.DataFrame:
    """Every game of the season, each predicted by models trained only on games before its retrain date.
    `on_retrain(date, models)` sees each retrain's models (bench/bench_alerts.py keeps their cards).
    With `fits` (a cache folder), each retrain day's models are K's kept fit of that day when its
    training rows are the same (`k_train.cached_fit`): the nightly runs' fits, or an earlier backtest's.
    `lineups` "confirmed" scores the game-time run: its models use each game's posted nine (the game log's)."""
    games = table[table["season"] == season]
    if games.empty:
        raise ValueError(f"model_table: no games in season {season}")
    dates = retrain_dates(games, every_days)
    parts = []
    with progress(f"{season} retrains", len(dates)) as step:
        for start, end in zip(dates, dates[1:] + [games["date"].max() + pd.Timedelta(days=1)]):
            step(start.date().isoformat())
            window = games[(games["date"] >= start) & (games["date"] < end)]
            if window.empty:
                continue
            models = train_models(table, start.date(), mcfg, psi_bins, lineups) if fits is None else trained_models(
                **cached_fit(table, start.date(), mcfg, psi_bins, fits, lineups=lineups))
            if on_retrain is not None:
                on_retrain(start, models)
            scored = predict(models, window, f"{models.chosen}@{start.date().isoformat()}")
            # .array keeps the nullable integers: a tie's missing home_win must not turn the column to floats
            parts.append(scored.assign(trained_through=start, home_win=window["home_win"].array,
                                       home_score=window["home_score"].array, away_score=window["away_score"].array,
                                       elo_p_home=window["elo_p_home"].to_numpy()))
    out = pd.concat(parts, ignore_index=True)
    return out[PREDICTION_COLUMNS + ["trained_through", "home_win", "home_score", "away_score", "elo_p_home"]]


def summarize(predictions: pd.DataFrame) -> dict:
    """Model and Elo baseline on the same decided games: Brier, log loss, accuracy, calibration, run errors."""
    decided = predictions[predictions["home_win"].notna()]
    y = decided["home_win"].to_numpy(dtype=float)
    p = decided["p_home_win"].to_numpy(dtype=float)
    runs = run_metrics(np.concatenate([decided["home_score"].to_numpy(dtype=float),
                                       decided["away_score"].to_numpy(dtype=float)]),
                       np.concatenate([decided["exp_home_runs"].to_numpy(dtype=float),
                                       decided["exp_away_runs"].to_numpy(dtype=float)]))
    return {
        "games": int(len(decided)),
        "model": {**win_metrics(y, p), "runs": runs, "calibration": calibration_table(y, p),
                  "calibration_deciles": calibration_table(y, p, equal_count=True),
                  "calibration_test": calibration_test(y, p)},
        "elo": win_metrics(y, decided["elo_p_home"].to_numpy(dtype=float)),
        "chosen": decided["model_version"].str.split("@").str[0].value_counts().to_dict(),
    }


def pooled_report(seasons: dict[int, pd.DataFrame], tolerance: float = 0.02, min_games: int = 100) -> dict:
    """Several seasons' backtests side by side and pooled (every decided game once), as the quality
    bar is stated: per-season summaries, then the pooled model and Elo metrics and calibration, and
    how often a perfectly calibrated model would keep every bin within `tolerance`."""
    per_season = {season: summarize(frame) for season, frame in sorted(seasons.items())}
    pooled = pd.concat(list(seasons.values()), ignore_index=True)
    p = pooled.loc[pooled["home_win"].notna(), "p_home_win"].to_numpy(dtype=float)
    chance = {kind: tolerance_pass_rate(p, tolerance, min_games, kind == "deciles") for kind in ("tenths", "deciles")}
    return {"seasons": per_season, "pooled": summarize(pooled),
            "right_model_pass_rate": {"tolerance": tolerance, "min_games": min_games, **chance}}


def tolerance_pass_rate(p: np.ndarray, tolerance: float, min_games: int, equal_count: bool, draws: int = 2000,
                        seed: int = 0) -> float:
    """Share of draws in which outcomes drawn from the probabilities themselves put every bin with
    `min_games` or more within `tolerance` of its mean prediction: the score of a perfectly
    calibrated model on that bar, so what a miss (or a pass) of it is worth."""
    which = calibration_bins(p, 10, equal_count)
    counts = np.bincount(which, minlength=10)
    shown = counts >= min_games
    mean = np.bincount(which, weights=p, minlength=10)[shown] / counts[shown]
    rng = np.random.default_rng(seed)
    passed = 0
    for _ in range(draws):
        observed = np.bincount(which, weights=rng.random(len(p)) < p, minlength=10)[shown] / counts[shown]
        passed += bool(np.all(np.abs(mean - observed) <= tolerance + 1e-12))  # 0.53 - 0.5 is not 0.03 in floats
    return passed / draws


def format_report(report: dict) -> str:
    """The report as the terminal shows it: a per-season table, then calibration with standard errors."""
    lines = [f"{'season':>7s}{'games':>7s}{'model':>9s}{'elo':>9s}{'gain':>9s}{'log_loss':>10s}{'elo_ll':>9s}"
             f"{'run_mae':>9s}{'run_rmse':>10s}"]
    rows = [*report["seasons"].items(), ("pooled", report["pooled"])]
    for label, s in rows:
        m, e = s["model"], s["elo"]
        lines.append(f"{label!s:>7s}{s['games']:7d}{m['brier']:9.5f}{e['brier']:9.5f}{e['brier'] - m['brier']:9.5f}"
                     f"{m['log_loss']:10.5f}{e['log_loss']:9.5f}{m['runs']['mae']:9.3f}{m['runs']['rmse']:10.3f}")
    pooled, min_games = report["pooled"]["model"], report["right_model_pass_rate"]["min_games"]
    for title, key in (("fixed-width tenths", "calibration"), ("equal-count deciles", "calibration_deciles")):
        lines.append(f"pooled calibration, {title} (bins with at least {min_games} games):")
        lines.append(f"{'bin':>13s}{'games':>7s}{'predicted':>11s}{'observed':>10s}{'gap':>8s}{'std_err':>9s}")
        for b in pooled[key]:
            if b["n"] >= min_games:
                gap = b["mean_prediction"] - b["observed_rate"]
                lines.append(f"{b['lower']:6.3f}-{b['upper']:<6.3f}{b['n']:7d}{b['mean_prediction']:11.4f}"
                             f"{b['observed_rate']:10.4f}{gap:+8.4f}{b['std_error']:9.4f}")
    chance = report["right_model_pass_rate"]
    lines.append(f"outcomes drawn from these probabilities put every bin shown within {chance['tolerance']} in "
                 f"{chance['tenths']:.0%} of draws (tenths), {chance['deciles']:.0%} (deciles)")
    t = pooled["calibration_test"]
    lines.append(f"calibration tests: in the large z={t['mean_z']:+.2f} (p={t['mean_p_value']:.2f}), "
                 f"Spiegelhalter z={t['spiegelhalter_z']:+.2f} (p={t['spiegelhalter_p_value']:.2f}), "
                 f"Hosmer-Lemeshow {t['hosmer_lemeshow']:.2f} (p={t['hosmer_lemeshow_p_value']:.2f})")
    return "\n".join(lines)


def season_as_of(season: int, today: dt.date) -> dt.date:
    """Build the season's table as of the day after its last possible game (or today, mid-season)."""
    return min(dt.date(season, 12, 1), today)


class BacktestError(RuntimeError):
    """A backtest that cannot run or finish; the message is one line naming the cause (exit 1)."""


def run_backtest(base, season: int, today: dt.date) -> tuple[dict, Path]:
    """Build the season's model table under `<artifacts>/backtest/<season>/` with the stages that make
    it (under that root's own lock), walk forward through the season, and write the predictions and
    their summary together. Returns (summary, path of the predictions table)."""
    from modules.registry import REGISTRY
    from utils.config import build_config
    from utils.engine.plan import make_plan
    from utils.engine.session import Interrupts, execute
    from utils.store.artifacts import ArtifactError, ArtifactStore, staged_writes
    from utils.store.catalog import Catalog
    from utils.store.locking import LockError, LockHeld, RunLock

    as_of = season_as_of(season, today)
    stages = REGISTRY.ancestors(REGISTRY.producer["model_table"])
    try:
        catalog = Catalog(base.paths.artifacts, base.paths.schemas)
        root = catalog.backtest(season).root
        # the features are the same in both lineup modes (every past game has its posted nine): one table
        cfg = build_config(base.model_dump(mode="json"), [
            f"paths.artifacts={root}", f"paths.cache_root={base.paths.cache_root or base.paths.artifacts}",
            f"run.as_of={as_of.isoformat()}", "run.executor=legacy", f"run.modules=[{','.join(stages)}]",
            "run.lineups=expected"])
        store = ArtifactStore.from_config(cfg)
        lineups = base.run.lineups
        out = store if lineups == "expected" else ArtifactStore(catalog.backtest(season, lineups).root,
                                                                base.paths.schemas, as_of, cfg.paths.cache_root)
        lock = RunLock(root).acquire()
    except (ArtifactError, LockHeld, LockError) as exc:
        raise BacktestError(str(exc)) from None
    try:
        with Interrupts(lock) as interrupts:
            status = execute(cfg, REGISTRY, make_plan(REGISTRY, stages, store), store, "legacy",
                             cfg.run.max_workers, interrupts)
            failed = [p for p in status.phases.values() if p.status == "failed"]
            if failed:
                raise BacktestError(f"module {failed[0].module} ({failed[0].name}) failed: {failed[0].error}")
            predictions = walk_forward(store.read_frame("model_table"), season, cfg.model.retrain_every_days,
                                       cfg.model, cfg.monitoring.psi_bins, fits=store.cache_dir("models")
                                       if cfg.run.reuse_history else None, lineups=lineups)
            summary = {"season": season, "lineups": lineups, "retrain_every_days": cfg.model.retrain_every_days,
                       **summarize(predictions)}
            with staged_writes() as staging:  # the season's table and its summary, together or not at all
                record = out.write_frame("backtest", predictions)
                out.write_json("backtest_summary", summary)
                staging.commit()
    except (ValueError, ArtifactError, OSError) as exc:
        raise BacktestError(" ".join(str(exc).split())) from None
    finally:
        lock.release()
    return summary, Path(record.path)


def format_season(summary: dict) -> str:
    """What `pipeline.py backtest` prints: the season's model against Elo."""
    model, elo = summary["model"], summary["elo"]
    return "\n".join([
        f"season {summary['season']}: {summary['games']} decided games, "
        f"retrained every {summary['retrain_every_days']} days, {summary.get('lineups', 'expected')} lineups",
        f"{'':8s}{'brier':>9s}{'log_loss':>10s}{'accuracy':>10s}{'run_mae':>9s}{'run_rmse':>10s}",
        f"{'model':8s}{model['brier']:9.5f}{model['log_loss']:10.5f}{model['accuracy']:10.4f}"
        f"{model['runs']['mae']:9.3f}{model['runs']['rmse']:10.3f}",
        f"{'elo':8s}{elo['brier']:9.5f}{elo['log_loss']:10.5f}{elo['accuracy']:10.4f}{'-':>9s}{'-':>10s}",
    ])


def load_backtests(cfg, seasons: list[int]) -> dict[int, pd.DataFrame]:
    """Each season's backtest predictions, hash-checked; BacktestError naming a season never backtested."""
    from utils.store.artifacts import ArtifactError, ArtifactStore
    from utils.store.catalog import Catalog

    frames = {}
    for year in dict.fromkeys(seasons):
        try:
            lineups = cfg.run.lineups
            store = ArtifactStore(Catalog(cfg.paths.artifacts, cfg.paths.schemas).backtest(year, lineups).root,
                                  cfg.paths.schemas)
            if not store.resolve_output_path("backtest").exists():
                mode = "" if lineups == "expected" else f" --set run.lineups={lineups}"
                raise BacktestError(f"{store.resolve_output_path('backtest')}: no backtest of {year}"
                                    f"{' with ' + lineups + ' lineups' if mode else ''}; "
                                    f"run `python pipeline.py backtest --season {year}{mode}` first")
            frames[year] = store.read_frame("backtest")
        except ArtifactError as exc:
            raise BacktestError(str(exc)) from None
    return frames
