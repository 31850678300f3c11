"""Feature drift measured against its own normal.

Two views of every feature on a night, each against K's reference (the same 30 calendar days of
the two seasons before, as published with the model):

- `psi`: the population stability index of the last 30 days' games (slow drift: a source that
  degrades over weeks, a league that changes);
- `shift`: how far tonight's games' mean sits from the reference mean, in standard errors
  (a break that starts tonight: a source that returns every starter as unknown, a unit change).

Neither has one threshold that fits every feature: park factors and season counts move far on
ordinary nights, Elo barely. So `fit_baseline` replays ordinary nights of past seasons exactly as
L measures a night, and keeps each feature's high quantile of both, by how many games the window
holds (a 30-day window of 40 games is noisier than one of 450; opening night's counters sit at
zero). A night's *score* is the value over that normal: 1 is the worst of an ordinary night in a
hundred, whatever the feature.
"""
from __future__ import annotations

import datetime as dt
import math
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd

WINDOW_DAYS = 30  # drift compares the last 30 days with the same weeks of earlier seasons
REFERENCE_SEASONS = 2
MIN_REFERENCE_ROWS = 300
MIN_NORMAL = {"psi": 0.02, "shift": 1.0}  # a floor: a feature that never moves still has sampling noise
BUCKET_MIN_NIGHTS = 10  # a window-size bucket with fewer baseline nights borrows the next larger one's normal
VIEWS = ("psi", "shift")
MIN_BASELINE_NIGHTS = 30  # fewer: the normals are the floors, not a measure; nothing is scored


def reference_rows(rows: pd.DataFrame, as_of: dt.date) -> pd.DataFrame:
    """The same 30 calendar days in the last two seasons: features that grow through a season
    (games played, month) then compare like with like. Too few rows (the off-season): every row
    given. Aligning by day of season instead was measured worse: special openers abroad start a
    season days before everyone else."""
    day = rows["date"].dt.day_of_year
    end = pd.Timestamp(as_of).day_of_year
    recent = rows["season"].between(as_of.year - REFERENCE_SEASONS, as_of.year - 1)
    same = rows[recent & (day > end - WINDOW_DAYS) & (day <= end)]
    return same if len(same) >= MIN_REFERENCE_ROWS else rows


def reference(rows: pd.DataFrame, columns: list[str], bins: int) -> dict:
    """Per column: quantile bin edges on the reference rows, the share of rows in each bin, and the
    mean and standard deviation (what tonight's shift is measured in)."""
    return reference_matrix(rows[columns].to_numpy(dtype=float), columns, bins)


def reference_matrix(values: np.ndarray, columns: list[str], bins: int) -> dict:
    """`reference` of a rows x columns matrix."""
    cuts = np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1], axis=0)
    out = {}
    for i, col in enumerate(columns):
        column = values[:, i]
        edges = np.unique(cuts[:, i])
        counts = np.bincount(np.searchsorted(edges, column, side="right"), minlength=len(edges) + 1)
        out[col] = {"edges": edges.tolist(), "shares": (counts / len(column)).tolist(),
                    "mean": float(column.mean()), "std": float(column.std())}
    return out


def psi(ref: dict, values: np.ndarray) -> float | None:
    """Population stability index of `values` against reference bins (None if no values)."""
    if len(values) == 0:
        return None
    counts = np.bincount(np.searchsorted(np.asarray(ref["edges"]), values, side="right"),
                         minlength=len(ref["shares"]))
    actual = np.clip(counts / counts.sum(), 1e-4, None)
    expected = np.clip(np.asarray(ref["shares"]), 1e-4, None)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def shift(ref: dict, values: np.ndarray) -> float | None:
    """Tonight's mean minus the reference mean, in standard errors of a mean of that many games
    (None if no games). A feature constant in the reference gets a tiny spread, so any change of
    it is a large shift."""
    if len(values) == 0:
        return None
    spread = max(ref["std"], 1e-6 * (abs(ref["mean"]) + 1.0))
    return float((values.mean() - ref["mean"]) / (spread / math.sqrt(len(values))))


def window(table: pd.DataFrame, as_of: dt.date) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The games of the last 30 days up to the as-of date, and the as-of date's own games."""
    day = pd.Timestamp(as_of)
    last = table[(table["date"] > day - pd.Timedelta(days=WINDOW_DAYS)) & (table["date"] <= day)]
    return last, last[last["date"] == day]


def measure(ref: dict, last: pd.DataFrame, tonight: pd.DataFrame) -> dict[str, dict]:
    """Per feature of the reference: {"psi": ..., "shift": ...} (None where there are no games)."""
    return {name: {"psi": psi(bins, last[name].to_numpy(dtype=float)),
                   "shift": shift(bins, tonight[name].to_numpy(dtype=float))}
            for name, bins in ref.items() if name in last}


def bucket(games: int, edges: list[int]) -> int:
    """Which window-size bucket `games` falls in (0 below the first edge)."""
    return int(np.searchsorted(np.asarray(edges), games, side="right"))


def baseline_nights(table: pd.DataFrame, as_of: dt.date, cfg) -> list[pd.Timestamp]:
    """Every `night_every_days`-th game date of the `baseline_seasons` seasons before the as-of
    season (those in `skip_seasons` left out): nights whose every result is known before `as_of`."""
    seasons = [s for s in range(as_of.year - cfg.baseline_seasons, as_of.year) if s not in cfg.skip_seasons]
    dates = table.loc[table["season"].isin(seasons), "date"].drop_duplicates().sort_values()
    return list(dates.iloc[::cfg.night_every_days])


class Bins:
    """`reference_matrix` of many columns at once, for columns whose values are all finite, given as a
    columns x rows matrix (each column's values contiguous, summed in the order `column.mean()` sums
    them): each column's distinct quantile edges packed first in its row and padded with +inf (`widths`
    says how many are real), the share of the rows in each bin (padded with zeros), the means and the
    standard deviations. `psis` and `shifts` measure every column of a night at once, to the bits `psi`
    and `shift` give column by column (a test holds them to it): every sum adds the same values in the
    same order."""

    def __init__(self, columns: np.ndarray, bins: int):
        columns = np.ascontiguousarray(columns)  # a fancy-indexed one may not be: its sums would add in another order
        cuts = np.sort(np.quantile(columns, np.linspace(0, 1, bins + 1)[1:-1], axis=1).T, axis=1)
        fresh = np.ones(cuts.shape, dtype=bool)
        fresh[:, 1:] = cuts[:, 1:] != cuts[:, :-1]  # np.unique's distinct values of each column
        self.widths = fresh.sum(axis=1)
        self.edges = np.full(cuts.shape, np.inf)
        self.edges[np.nonzero(fresh)[0], (np.cumsum(fresh, axis=1) - 1)[fresh]] = cuts[fresh]
        self.shares = self._counts(columns) / columns.shape[1]
        self.mean, self.std = columns.mean(axis=1), columns.std(axis=1)

    def _counts(self, columns: np.ndarray) -> np.ndarray:
        """Per column, its values in each bin (`np.searchsorted(edges, value, side="right")` is the bin: the
        edges at or below the value), from how many values reach each edge (none reach the padding)."""
        reach = np.zeros((len(columns), self.edges.shape[1] + 2), dtype=np.int64)
        reach[:, 0] = columns.shape[1]
        for k in range(self.edges.shape[1]):
            reach[:, k + 1] = (columns >= self.edges[:, k:k + 1]).sum(axis=1)
        return reach[:, :-1] - reach[:, 1:]

    def psis(self, columns: np.ndarray) -> list[float | None]:
        """`psi` of each column's values (columns x rows) against its bins."""
        if columns.shape[1] == 0:
            return [None] * len(self.widths)
        actual = np.clip(self._counts(columns) / columns.shape[1], 1e-4, None)
        expected = np.clip(self.shares, 1e-4, None)
        terms = (actual - expected) * np.log(actual / expected)  # zero in the padding
        out = np.empty(len(self.widths))
        for width in np.unique(self.widths):  # each row summed over its own bins, as psi sums them
            same = self.widths == width
            out[same] = np.ascontiguousarray(terms[same, :width + 1]).sum(axis=1)
        return out.tolist()

    def shifts(self, columns: np.ndarray) -> list[float | None]:
        """|`shift`| of each column's values (columns x rows)."""
        if columns.shape[1] == 0:
            return [None] * len(self.widths)
        spread = np.maximum(self.std, 1e-6 * (np.abs(self.mean) + 1.0))
        means = np.ascontiguousarray(columns).mean(axis=1)
        return np.abs((means - self.mean) / (spread / math.sqrt(columns.shape[1]))).tolist()


def fit_baseline(table: pd.DataFrame, features: list[str], as_of: dt.date, cfg, bins: int,
                 train_seasons: int, workers: int = 1) -> dict:
    """Each feature's normal, from ordinary nights of past seasons measured as L measures tonight:
    the `quantile` of its 30-day PSI and of its tonight's |shift|, each per window-size bucket
    (opening week's few games, and its counters at zero, are their own normal). Only seasons before
    the as-of season are read, and a night's reference comes only from seasons before its own."""
    watched = [f for f in features if f not in cfg.exclude]
    frame = pd.DataFrame(measure_nights(table, watched, as_of, cfg, bins, train_seasons, workers))
    edges = list(cfg.window_games_buckets)
    which = frame["games"].map(lambda g: bucket(g, edges)) if len(frame) else pd.Series(dtype=int)
    normals = {name: {view: [_normal(_bucket_values(frame, which, f"{name}|{view}", b), view, cfg.quantile)
                             for b in range(len(edges) + 1)] for view in VIEWS} for name in watched}
    return {"as_of": as_of.isoformat(), "seasons": sorted({int(y) for y in frame.get("season", [])}),
            "nights": len(frame),
            "quantile": cfg.quantile, "window_games_buckets": edges,
            "bucket_nights": [int((which == b).sum()) if len(frame) else 0 for b in range(len(edges) + 1)],
            "features": normals, "excluded": dict(cfg.exclude)}


def measure_nights(table: pd.DataFrame, watched: list[str], as_of: dt.date, cfg, bins: int, train_seasons: int,
                   workers: int = 1) -> list[dict]:
    """`fit_baseline`'s nights, each measured: {"season", "games", "<feature>|psi", "<feature>|shift", ...},
    in the nights' order (a night without reference rows is left out)."""
    columns = np.empty((len(watched), len(table)))  # a feature a row, its values contiguous
    for i, name in enumerate(watched):
        columns[i] = table[name].to_numpy(dtype=float)
    # the columns whose every value is finite, and their spread (so every quantile edge is), are measured all at
    # once (`Bins`), any other one by itself
    finite = np.isfinite(columns).all(axis=1)
    if columns.shape[1]:
        finite &= np.isfinite(np.ptp(columns, axis=1))
    together, alone = np.flatnonzero(finite), np.flatnonzero(~finite)
    values = columns[alone].T  # games x the other columns
    if len(alone):
        columns = columns[together]
    date = table["date"].to_numpy(dtype="datetime64[ns]")
    result = table["result_date"].to_numpy(dtype="datetime64[ns]")  # NaT (unplayed) compares False
    season = table["season"].to_numpy(dtype="int64")
    day_of_year = table["date"].dt.day_of_year.to_numpy()
    known = (table["played"] & table["home_win"].notna() & ~table["is_forfeit"]).to_numpy(dtype=bool)

    def references(rows: np.ndarray) -> tuple[Bins | None, dict]:
        return (Bins(columns.compress(rows, axis=1), bins) if len(together) else None,
                reference_matrix(values[rows], [watched[i] for i in alone], bins) if len(alone) else {})

    # A season's opening nights fall back to the same rows (every earlier season's, ten times a typical
    # night's): their reference is measured once a season, and reused while the rows are the very same.
    fallbacks: dict[int, tuple[np.ndarray, tuple]] = {}
    lock = threading.Lock()

    def fallback_reference(year: int, rows: np.ndarray) -> tuple[Bins | None, dict]:
        with lock:
            kept = fallbacks.get(year)
            if kept is None or not np.array_equal(kept[0], rows):
                kept = fallbacks[year] = (rows, references(rows))
            return kept[1]

    def measured(night: pd.Timestamp) -> dict | None:
        when, year, end = np.datetime64(night, "ns"), night.year, night.day_of_year
        # K's training rows on that date, and of them the reference_rows (the same weeks, two seasons)
        before = known & (result < when) & (season > year - 1 - train_seasons)
        same = before & (season >= year - REFERENCE_SEASONS) & (season <= year - 1) \
            & (day_of_year > end - WINDOW_DAYS) & (day_of_year <= end)
        # Too few (opening weeks): K falls back to every training row; here only earlier seasons' rows,
        # so a night of the table's first season is not compared with games of its own season.
        fallback = same.sum() < MIN_REFERENCE_ROWS
        rows = before & (season < year) if fallback else same
        if not rows.any():
            return None
        grouped, single = fallback_reference(year, rows) if fallback else references(rows)
        in_window = (season == year) & (date > when - np.timedelta64(WINDOW_DAYS, "D")) & (date <= when)
        tonight = date[in_window] == when  # of the window's games
        psis, shifts = [None] * len(watched), [None] * len(watched)
        if grouped is not None:
            last = columns.compress(in_window, axis=1)
            for i, p, s in zip(together, grouped.psis(last), grouped.shifts(last.compress(tonight, axis=1))):
                psis[i], shifts[i] = p, s
        for j, i in enumerate(alone):
            last = values[in_window, j]
            psis[i] = psi(single[watched[i]], last)
            moved = shift(single[watched[i]], last[tonight])
            shifts[i] = None if moved is None else abs(moved)
        night_stats = {"season": year, "games": int(in_window.sum())}
        for name, p, s in zip(watched, psis, shifts):
            night_stats[f"{name}|psi"], night_stats[f"{name}|shift"] = p, s
        return night_stats

    # the nights are independent, and numpy's quantiles and searches let go of the GIL: `workers` threads
    # (K gives the cores free now) measure them in less time, in the same order, to the same bits
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return [stats for stats in pool.map(measured, baseline_nights(table, as_of, cfg)) if stats is not None]


def _bucket_values(frame: pd.DataFrame, which: pd.Series, column: str, b: int) -> pd.Series:
    """The nights of bucket `b`, or, with fewer than BUCKET_MIN_NIGHTS of them, of it and every larger one."""
    if frame.empty:
        return pd.Series(dtype=float)
    here = frame.loc[which == b, column]
    return here if len(here) >= BUCKET_MIN_NIGHTS else frame.loc[which >= b, column]


def _normal(values: pd.Series, kind: str, quantile: float) -> float:
    values = values.dropna()
    high = float(values.quantile(quantile)) if len(values) else 0.0
    return max(high, MIN_NORMAL[kind])


def check_baseline(baseline: dict) -> None:
    """ValueError unless `baseline` has fit_baseline's shape (a normal per view and bucket, all positive)."""
    buckets = len(baseline["window_games_buckets"]) + 1
    for key in ("as_of", "seasons", "nights", "quantile", "bucket_nights", "excluded"):
        baseline[key]  # noqa: B018 - a KeyError names the missing key
    for name, normal in baseline["features"].items():
        for view in VIEWS:
            values = normal[view]
            if len(values) != buckets or not all(isinstance(v, (int, float)) and v > 0 for v in values):
                raise ValueError(f"features.{name}.{view}: {buckets} positive normals expected")


def ready(baseline: dict) -> bool:
    """Whether the baseline rests on enough nights to judge by (a short history has none)."""
    return baseline["nights"] >= MIN_BASELINE_NIGHTS


def score(stats: dict[str, dict], baseline: dict, window_games: int) -> dict[str, dict]:
    """Per watched feature and view: the value, its normal for this many window games and the score
    (value over normal; None where there were no games, or when the baseline is not ready)."""
    b = bucket(window_games, baseline["window_games_buckets"])
    judged = ready(baseline)
    out = {}
    for name, normal in baseline["features"].items():
        if name not in stats:
            continue
        out[name] = {}
        for view in VIEWS:
            value = stats[name][view]
            out[name].update({view: value, f"{view}_normal": normal[view][b],
                              f"{view}_score": abs(value) / normal[view][b] if judged and value is not None
                              else None})
    return out


RECENT_NIGHTS = 7  # a break is new when the feature's score stayed below the line on the runs of the week before


def history_rows(as_of: dt.date, scores: dict[str, dict]) -> pd.DataFrame:
    """Tonight's scores as rows of the drift history (one per feature and view with a value)."""
    rows = [{"as_of": pd.Timestamp(as_of), "feature": name, "view": view, "value": s[view],
             "normal": s[f"{view}_normal"], "score": s[f"{view}_score"]}
            for name, s in scores.items() for view in VIEWS if s[f"{view}_score"] is not None]
    return pd.DataFrame(rows, columns=["as_of", "feature", "view", "value", "normal", "score"]).astype(
        {"as_of": "datetime64[ns]", "feature": "string", "view": "string", "value": "float64",
         "normal": "float64", "score": "float64"})


def recent_max(history: pd.DataFrame | None, as_of: dt.date) -> dict[tuple[str, str], float]:
    """(feature, view) -> the highest score recorded on the RECENT_NIGHTS nights before the as-of date."""
    if history is None or history.empty:
        return {}
    day = pd.Timestamp(as_of)
    week = history[(history["as_of"] < day) & (history["as_of"] >= day - pd.Timedelta(days=RECENT_NIGHTS))]
    return {key: float(v) for key, v in week.groupby(["feature", "view"])["score"].max().items()}


def append_history(previous: pd.DataFrame | None, tonight: pd.DataFrame, as_of: dt.date) -> pd.DataFrame:
    """Every night's scores so far; a re-run for a date replaces that date's rows."""
    if previous is None or previous.empty:
        return tonight.reset_index(drop=True)
    kept = previous[previous["as_of"] != pd.Timestamp(as_of)]
    return pd.concat([kept, tonight], ignore_index=True).sort_values(
        ["as_of", "feature", "view"], kind="stable").reset_index(drop=True)
