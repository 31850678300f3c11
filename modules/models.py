"""The trained models as every stage that predicts sees them (L, the backtest): the calibrator, the
candidates' raw probabilities, loading K's artifacts, and the prediction table itself."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from utils.monitoring.evaluation import EPS

FEATURE_PREFIXES = ("ctx_", "form_", "sp_", "lu_", "elo_", "mu_", "nine_")
# Features only a known lineup carries (the game's own nine): the game-time run's models use them, the
# nightly's do not (its lineups are not posted yet). Every past game has them, from the game log.
CONFIRMED_PREFIXES = ("nine_",)

BASELINE = "elo_p_home"


def feature_columns(table: pd.DataFrame, lineups: str = "expected") -> list[str]:
    """The model's features for `run.lineups`: with "expected", none of the confirmed lineup's."""
    return [c for c in table.columns if c.startswith(FEATURE_PREFIXES)
            and (lineups == "confirmed" or not c.startswith(CONFIRMED_PREFIXES))]


@dataclass(frozen=True)
class Calibrator:
    """Platt (a, b on the logit) or isotonic (piecewise-linear x -> y)."""

    kind: str
    params: dict

    def apply(self, p: np.ndarray) -> np.ndarray:
        p = np.clip(np.asarray(p, dtype=float), EPS, 1 - EPS)
        if self.kind == "platt":
            z = self.params["a"] * np.log(p / (1 - p)) + self.params["b"]
            return 1 / (1 + np.exp(-z))
        if self.kind == "isotonic":
            return np.interp(p, self.params["x"], self.params["y"])
        return p

    @staticmethod
    def fit(kind: str, raw: np.ndarray, y: np.ndarray) -> Calibrator:
        from sklearn.isotonic import IsotonicRegression
        from sklearn.linear_model import LogisticRegression

        raw = np.clip(raw, EPS, 1 - EPS)
        if kind == "platt":
            lr = LogisticRegression(C=1e6).fit(np.log(raw / (1 - raw)).reshape(-1, 1), y)
            return Calibrator("platt", {"a": float(lr.coef_[0, 0]), "b": float(lr.intercept_[0])})
        iso = IsotonicRegression(out_of_bounds="clip", y_min=0.02, y_max=0.98).fit(raw, y)
        return Calibrator("isotonic", {"x": [float(v) for v in iso.X_thresholds_],
                                       "y": [float(v) for v in iso.y_thresholds_]})


@dataclass
class TrainedModels:
    """Everything a prediction needs, plus the card's numbers."""

    chosen: str
    calibrator: Calibrator
    features: list[str]
    win_booster: object
    home_runs_booster: object
    away_runs_booster: object
    logistic: dict
    card: dict
    reference: dict

    def p_home_win(self, table: pd.DataFrame) -> np.ndarray:
        return self.calibrator.apply(raw_probability(self.chosen, table, self.features, self.win_booster,
                                                     self.logistic))

    def expected_runs(self, table: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        x = table[self.features].to_numpy(dtype=float)
        return self.home_runs_booster.predict(x), self.away_runs_booster.predict(x)


def logistic_logit(table: pd.DataFrame, logistic: dict) -> np.ndarray:
    x = table[logistic["features"]].to_numpy(dtype=float)
    return ((x - np.array(logistic["mean"])) / np.array(logistic["scale"])) @ np.array(logistic["coef"]) \
        + logistic["intercept"]


def raw_probability(kind: str, table: pd.DataFrame, features: list[str], booster, logistic: dict) -> np.ndarray:
    """Uncalibrated P(home win): Elo as is; logistic on its columns; LightGBM as corrections to the logistic."""
    if kind == "elo":
        return table[BASELINE].to_numpy(dtype=float)
    z = logistic_logit(table, logistic)
    if kind == "lightgbm":
        z = z + booster.predict(table[features].to_numpy(dtype=float), raw_score=True)
    return 1 / (1 + np.exp(-z))


def trained_models(win_model: bytes, home_runs_model: bytes, away_runs_model: bytes, model_params: dict,
                   model_card: dict) -> TrainedModels:
    """K's artifacts as the models they are."""
    import lightgbm as lgb

    boosters = [lgb.Booster(model_str=text.decode()) for text in (win_model, home_runs_model, away_runs_model)]
    calibrator = Calibrator(model_params["calibrator"]["kind"], model_params["calibrator"]["params"])
    return TrainedModels(model_params["chosen"], calibrator, model_params["features"], *boosters,
                         model_params["logistic"], model_card, model_params["reference"])


PREDICTION_COLUMNS = ["game_id", "date", "game_number", "home_team", "away_team", "home_starter_id",
                      "away_starter_id", "p_home_win", "exp_home_runs", "exp_away_runs", "model_version"]


def predict(models: TrainedModels, games: pd.DataFrame, version: str) -> pd.DataFrame:
    """Predictions for the given model-table rows (columns of DESIGN.md's prediction tables)."""
    out = games[PREDICTION_COLUMNS[:7]].copy().reset_index(drop=True)
    if len(games):
        home, away = models.expected_runs(games)
        out["p_home_win"] = models.p_home_win(games)
        out["exp_home_runs"], out["exp_away_runs"] = home, away
    else:
        out["p_home_win"] = out["exp_home_runs"] = out["exp_away_runs"] = pd.Series(dtype="float64")
    out["model_version"] = pd.Series([version] * len(out), dtype="string")
    return out
