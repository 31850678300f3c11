"""G · team ratings (`elo_*`): pre-game team Elo, and a starter-adjusted version.

The plain Elo (K=4, 24 points home field, margin-of-victory multiplier, a third of the way back
to the mean between seasons) is also the project's baseline model: `elo_p_home`.
Every game on a date is rated from the ratings at the start of that date.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from utils.config import EloConfig
from utils.engine.stages import ModuleResult

MOV_DAMPING, MOV_DIFF_SCALE = 2.2, 0.001  # FiveThirtyEight's constants for the margin-of-victory factor
ELO_POINTS_PER_FIP_RUN = 45.0  # ~two-thirds of a run allowed per game by a starter ~ 6.5 points of win%


def elo_probability(diff: np.ndarray | float) -> np.ndarray | float:
    return 1.0 / (1.0 + 10 ** (-np.asarray(diff) / 400.0))


def mov_multiplier(margin: float, winner_diff: float) -> float:
    """FiveThirtyEight's margin-of-victory factor: log margin, damped when the favourite wins."""
    return math.log(abs(margin) + 1) * MOV_DAMPING / (winner_diff * MOV_DIFF_SCALE + MOV_DAMPING)


def build_ratings(games: pd.DataFrame, k: float, home_advantage: float, reversion: float, initial: float,
                  mov: bool) -> pd.DataFrame:
    """Pre-game Elo of both teams for every game (played or scheduled)."""
    order = games.sort_values(["date", "game_number", "game_id"], kind="stable")
    ratings: dict[str, float] = {}
    season_of: dict[str, int] = {}
    home_pre = np.empty(len(order))
    away_pre = np.empty(len(order))
    dates = order["date"].to_numpy()
    home = order["home_team"].to_numpy()
    away = order["away_team"].to_numpy()
    season = order["season"].to_numpy()
    neutral = order["is_neutral"].to_numpy()
    played = order["played"].to_numpy()
    hs = order["home_score"].to_numpy(dtype="float64", na_value=np.nan)
    as_ = order["away_score"].to_numpy(dtype="float64", na_value=np.nan)
    result_dates = order["result_date"].to_numpy()
    pending: list[tuple[np.datetime64, str, str, float]] = []  # (result date, team, team, points) not yet applied
    next_due = None  # the earliest result date pending: the list is walked only on a day that reaches it
    for i in range(len(order)):
        day = dates[i]
        if next_due is not None and next_due < day:
            due = [p for p in pending if p[0] < day]
            pending = [p for p in pending if p[0] >= day]
            for _, h, a, points in due:  # in the order the games were played, as always
                ratings[h] += points
                ratings[a] -= points
            next_due = min((p[0] for p in pending if not np.isnat(p[0])), default=None)
        for team in (home[i], away[i]):
            if team not in ratings:
                ratings[team], season_of[team] = initial, season[i]
            elif season_of[team] != season[i]:
                ratings[team] -= reversion * (ratings[team] - initial)
                season_of[team] = season[i]
        home_pre[i], away_pre[i] = ratings[home[i]], ratings[away[i]]
        if played[i] and hs[i] != as_[i]:
            diff = home_pre[i] - away_pre[i] + (0.0 if neutral[i] else home_advantage)
            expected = elo_probability(diff)
            outcome = 1.0 if hs[i] > as_[i] else 0.0
            factor = mov_multiplier(hs[i] - as_[i], diff if outcome else -diff) if mov else 1.0
            pending.append((result_dates[i], home[i], away[i], k * factor * (outcome - expected)))
            if not np.isnat(result_dates[i]):  # a result never known is never due (nor was it before)
                next_due = result_dates[i] if next_due is None else min(next_due, result_dates[i])
    out = pd.DataFrame({"game_id": order["game_id"].to_numpy(), "elo_home_pre": home_pre, "elo_away_pre": away_pre},
                       index=order.index).reindex(games.index)
    hfa = np.where(games["is_neutral"].to_numpy(), 0.0, home_advantage)
    out["elo_diff"] = out["elo_home_pre"] - out["elo_away_pre"] + hfa
    out["elo_p_home"] = elo_probability(out["elo_diff"].to_numpy())
    return out.reset_index(drop=True)


def pitcher_adjusted(ratings: pd.DataFrame, pitchers: pd.DataFrame, weight: float) -> pd.DataFrame:
    """Shift the Elo difference by the starters' prior-season FIP gap (lower FIP is better)."""
    merged = ratings.merge(pitchers[["game_id", "sp_home_prior_fip", "sp_away_prior_fip"]], on="game_id", how="left")
    gap = (merged["sp_away_prior_fip"] - merged["sp_home_prior_fip"]).fillna(0)
    out = ratings.copy()
    out["elo_sp_adjustment"] = (weight * ELO_POINTS_PER_FIP_RUN * gap).to_numpy()
    out["elo_sp_diff"] = out["elo_diff"] + out["elo_sp_adjustment"]
    out["elo_sp_p_home"] = elo_probability(out["elo_sp_diff"].to_numpy())
    return out


def rate_teams(games: pd.DataFrame, starter_features: pd.DataFrame, elo: EloConfig) -> pd.DataFrame:
    ratings = build_ratings(games, elo.k, elo.home_advantage, elo.season_reversion, elo.initial, elo.mov)
    return pitcher_adjusted(ratings, starter_features, elo.pitcher_weight)


def main(cfg) -> ModuleResult:
    """Stage G through the pipeline's runner, as a run does, holding the artifacts root's run lock."""
    from modules.registry import REGISTRY
    from utils.engine.one_stage import run_alone

    return run_alone(cfg, REGISTRY["G"])
