"""Walk-forward season backtests with the nightly run's own training and prediction code.

Features in the model table only use results known before each game's date, so one table built
after the season serves every retrain date; at each retrain date R, K's `train_models` sees only
games whose result was known before R, and L's `predict` scores the games until the next retrain.
"""
from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from modules.k_train import calibration_table, run_metrics, train_models, win_metrics
from modules.l_monitor import PREDICTION_COLUMNS, predict


def retrain_dates(season_games: pd.DataFrame, every_days: int) -> list[pd.Timestamp]:
    start, end = season_games["date"].min(), season_games["date"].max()
    return list(pd.date_range(start, end, freq=f"{every_days}D"))


def walk_forward(table: pd.DataFrame, season: int, every_days: int, mcfg, psi_bins: int = 10) -> pd.DataFrame:
    """Every game of the season, each predicted by models trained only on games before its retrain date."""
    games = table[table["season"] == season]
    if games.empty:
        raise ValueError(f"model_table: no games in season {season}")
    dates = retrain_dates(games, every_days)
    parts = []
    for start, end in zip(dates, dates[1:] + [games["date"].max() + pd.Timedelta(days=1)]):
        window = games[(games["date"] >= start) & (games["date"] < end)]
        if window.empty:
            continue
        models = train_models(table, start.date(), mcfg, psi_bins)
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
    model = win_metrics(y, decided["p_home_win"].to_numpy(dtype=float))
    runs = run_metrics(np.concatenate([decided["home_score"].to_numpy(dtype=float),
                                       decided["away_score"].to_numpy(dtype=float)]),
                       np.concatenate([decided["exp_home_runs"].to_numpy(dtype=float),
                                       decided["exp_away_runs"].to_numpy(dtype=float)]))
    return {
        "games": int(len(decided)),
        "model": {**model, "runs": runs, "calibration": calibration_table(y, decided["p_home_win"].to_numpy(float))},
        "elo": win_metrics(y, decided["elo_p_home"].to_numpy(dtype=float)),
        "chosen": decided["model_version"].str.split("@").str[0].value_counts().to_dict(),
    }


def season_as_of(season: int, today: dt.date) -> dt.date:
    """Build the season's table as of the day after its last possible game (or today, mid-season)."""
    return min(dt.date(season, 12, 1), today)
