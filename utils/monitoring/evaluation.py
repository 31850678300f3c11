"""Evaluation of win probabilities and expected runs: Brier, log loss, calibration and its tests, noise.

Used by K (validation), L (evaluation of published predictions), the backtest, the metrics
export and the viewer; it reads no artifact and knows no stage.
"""
from __future__ import annotations

import math

import numpy as np

EPS = 1e-6  # probabilities are clipped this far from 0 and 1 before a log


def brier(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.mean((p - y) ** 2))


def log_loss(y: np.ndarray, p: np.ndarray) -> float:
    p = np.clip(p, EPS, 1 - EPS)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def calibration_bins(p: np.ndarray, bins: int = 10, equal_count: bool = False) -> np.ndarray:
    """Each prediction's bin: its tenth of [0, 1], or (equal_count) its decile among the predictions."""
    if equal_count:
        which = np.empty(len(p), dtype=int)
        which[np.argsort(p, kind="stable")] = np.arange(len(p)) * bins // max(len(p), 1)
        return which
    return np.clip(np.digitize(p, np.linspace(0, 1, bins + 1)[1:-1]), 0, bins - 1)


def calibration_table(y: np.ndarray, p: np.ndarray, bins: int = 10, equal_count: bool = False) -> list[dict]:
    """Mean prediction against the observed rate per bin: fixed-width tenths of [0, 1], or (equal_count)
    deciles of the predictions, each holding a tenth of the games. `std_error` is the observed rate's
    sampling error if the predictions were right, sqrt(m(1-m)/n): a gap of one or two of them is noise."""
    which = calibration_bins(p, bins, equal_count)
    out = []
    for b in range(bins):
        mask = which == b
        if mask.any():
            lower, upper = (float(p[mask].min()), float(p[mask].max())) if equal_count else (b / bins, (b + 1) / bins)
            mean = float(p[mask].mean())
            out.append({"bin": b, "lower": lower, "upper": upper, "n": int(mask.sum()), "mean_prediction": mean,
                        "observed_rate": float(y[mask].mean()),
                        "std_error": float(np.sqrt(mean * (1 - mean) / mask.sum()))})
    return out


def calibration_test(y: np.ndarray, p: np.ndarray, bins: int = 10) -> dict:
    """Whether the outcomes are consistent with the probabilities, as sampling noise would allow.

    - `mean_z`: observed minus expected wins over their standard error (calibration in the large:
      a home edge that is off shows here first, since MLB probabilities sit near 0.5);
    - `spiegelhalter_z`: Brier score against its expectation if the probabilities were right (too
      confident or too timid); needs no bins;
    - Hosmer-Lemeshow over the equal-count deciles: chi-squared with `bins` degrees of freedom, as the
      probabilities were not fit on these games (bins - 2 is for a model scored on its own data).
    Each with a two-sided p-value: below ~0.05 says miscalibrated, above it says within noise."""
    from scipy.stats import chi2

    p = np.clip(p, EPS, 1 - EPS)
    var = p * (1 - p)
    mean_z = float(np.sum(y - p) / math.sqrt(np.sum(var)))
    spiegelhalter_z = float(np.sum((y - p) * (1 - 2 * p)) / math.sqrt(max(np.sum((1 - 2 * p) ** 2 * var), EPS)))
    table = calibration_table(y, p, bins, equal_count=True)
    hl = float(sum(r["n"] * (r["observed_rate"] - r["mean_prediction"]) ** 2
                   / (r["mean_prediction"] * (1 - r["mean_prediction"])) for r in table))
    two_sided = lambda z: math.erfc(abs(z) / math.sqrt(2))  # noqa: E731
    return {"mean_z": mean_z, "mean_p_value": two_sided(mean_z),
            "spiegelhalter_z": spiegelhalter_z, "spiegelhalter_p_value": two_sided(spiegelhalter_z),
            "hosmer_lemeshow": hl, "hosmer_lemeshow_p_value": float(chi2.sf(hl, len(table)))}


def win_metrics(y: np.ndarray, p: np.ndarray) -> dict:
    return {"n": int(len(y)), "brier": brier(y, p), "log_loss": log_loss(y, p),
            "accuracy": float(np.mean((p > 0.5) == (y == 1)))}


def run_metrics(actual: np.ndarray, expected: np.ndarray) -> dict:
    err = expected - actual
    return {"mae": float(np.mean(np.abs(err))), "rmse": float(np.sqrt(np.mean(err**2)))}


def prediction_noise(y: np.ndarray, p: np.ndarray) -> dict:
    """How much single games' Brier and log loss vary: a window of n games has a standard error of
    sd / sqrt(n) around the model's true score."""
    q = np.clip(p, EPS, 1 - EPS)
    loss = -(y * np.log(q) + (1 - y) * np.log(1 - q))
    return {"games": int(len(y)), "brier": float(np.mean((p - y) ** 2)), "brier_sd": float(np.std((p - y) ** 2)),
            "log_loss": float(loss.mean()), "log_loss_sd": float(loss.std())}


def run_noise(actual: np.ndarray, expected: np.ndarray) -> dict:
    """The same for expected runs (one value per team-game): absolute and squared errors."""
    err = expected - actual
    return {"games": int(len(err)), "mae": float(np.mean(np.abs(err))), "abs_error_sd": float(np.std(np.abs(err))),
            "mse": float(np.mean(err**2)), "sq_error_sd": float(np.std(err**2))}


def standard_errors(live: dict, noise: dict) -> dict:
    """Each live metric against what the validation implies for that many games: the gap in standard
    errors (z), the standard error of the gap (the live window's and the validation's, both from the
    validation's per-game spread), and the games it rests on (team-games for runs)."""
    out = {}
    runs = noise["runs"]
    pairs = {"brier": (live["brier"], noise["brier"], noise["brier_sd"], live["n"], noise["games"]),
             "log_loss": (live["log_loss"], noise["log_loss"], noise["log_loss_sd"], live["n"], noise["games"]),
             "runs_mae": (live["runs"]["mae"], runs["mae"], runs["abs_error_sd"], 2 * live["n"], runs["games"]),
             "runs_mse": (live["runs"]["rmse"] ** 2, runs["mse"], runs["sq_error_sd"], 2 * live["n"], runs["games"])}
    for name, (value, expected, sd, n, n_val) in pairs.items():
        se = sd * math.sqrt(1 / n + 1 / n_val)
        out[name] = {"live": value, "expected": expected, "standard_error": se, "games": n,
                     "z": (value - expected) / se if se > 0 else 0.0}
    return out
