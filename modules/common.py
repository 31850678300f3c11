"""Pure helpers shared by the feature modules (C, D, F, G, H).

The as-of rule lives here: every feature is a team's (or pitcher's) state taken with
`as_of_join`, i.e. after the last result known *strictly before* the game's date. Results are
known on their `result_date` (the completion date of a suspended game), so a doubleheader's
second game never sees the first, and training rows are built exactly like the day's predictions.
"""
from __future__ import annotations

import pandas as pd

# Runs a team scores (and allows) a game, near the league's level since 1990: the prior for a team or
# a starter with few games behind him.
LEAGUE_RUNS = 4.5


def team_games(games: pd.DataFrame) -> pd.DataFrame:
    """Two rows a game, one per team: runs for/against, win, pitchers used, park, result date."""
    common = ["game_id", "date", "result_date", "season", "game_number", "park_id", "played", "is_neutral"]
    home = games[common].assign(
        team=games["home_team"], opponent=games["away_team"], is_home=True,
        runs_for=games["home_score"], runs_against=games["away_score"],
        pitchers_used=games["home_pitchers_used"], starter=games["home_starter_id"],
        win=games["home_win"],
    )
    away = games[common].assign(
        team=games["away_team"], opponent=games["home_team"], is_home=False,
        runs_for=games["away_score"], runs_against=games["home_score"],
        pitchers_used=games["away_pitchers_used"], starter=games["away_starter_id"],
        win=1 - games["home_win"],
    )
    long = pd.concat([home, away], ignore_index=True)
    for col in ("runs_for", "runs_against", "pitchers_used", "win"):
        long[col] = long[col].astype("float64")
    return long.sort_values(["team", "result_date", "date", "game_number", "game_id"],
                            kind="stable").reset_index(drop=True)


def as_of_join(at: pd.DataFrame, events: pd.DataFrame, by: list[str], values: list[str],
               event_time: str = "result_date", at_time: str = "date") -> pd.DataFrame:
    """For each row of `at`, the `values` of the last event of the same `by` keys strictly before `at_time`.

    `events` holds a state *after* each event (e.g. a cumulative sum including that game). Rows of
    `at` with no earlier event get NaN. Returns `at`'s rows in their original order.
    """
    ev = events.dropna(subset=[event_time])[by + [event_time] + values]
    ev = ev.sort_values(by + [event_time], kind="stable").drop_duplicates(by + [event_time], keep="last")
    ev[event_time] = ev[event_time].astype("datetime64[ns]")  # merge_asof needs one time unit on both sides
    left = at[by + [at_time]].reset_index(drop=True)
    left["_row"] = range(len(left))  # positions, not labels: `at` may come in any order
    left[at_time] = left[at_time].astype("datetime64[ns]")
    joined = pd.merge_asof(
        left.sort_values(at_time, kind="stable"), ev.sort_values(event_time, kind="stable"),
        left_on=at_time, right_on=event_time, by=by, allow_exact_matches=False, direction="backward",
    )
    return joined.sort_values("_row").set_index("_row")[values].set_axis(at.index)


def side_columns(frame: pd.DataFrame, games: pd.DataFrame, prefix: str) -> pd.DataFrame:
    """Per-team features (indexed like team_games rows) -> home_/away_ columns per game, with a diff."""
    ids = games["game_id"].to_numpy()
    # One reindex per side, not per column: matching ~80,000 string keys is the costly part.
    home = frame[frame["is_home"]].set_index("game_id").drop(columns="is_home").reindex(ids)
    away = frame[~frame["is_home"]].set_index("game_id").drop(columns="is_home").reindex(ids)
    columns = {"game_id": ids}
    for col in home.columns:
        columns[f"{prefix}home_{col}"] = home[col].to_numpy()
        columns[f"{prefix}away_{col}"] = away[col].to_numpy()
    return pd.DataFrame(columns)


def rolling_sum(frame: pd.DataFrame, key: str, col: str, n: int) -> pd.Series:
    """Sum of `col` over each `key`'s last n rows (rows sorted by key, then time): a running total
    less the total n rows back. One pass, where a rolling() per pitcher takes seconds."""
    total = frame.groupby(key, sort=False)[col].cumsum()
    return total - total.groupby(frame[key], sort=False).shift(n).fillna(0.0)


def above_last_season(season: pd.Series, played: pd.Series, amount: pd.Series,
                      exposure: pd.Series) -> tuple[pd.Series, pd.Series]:
    """`amount` above the league's rate per unit of `exposure` in the season before each row's
    (a season's own rate would include games after the date), and the exposure that counts.
    A row with no earlier season, or missing figures, counts nothing: (0, 0)."""
    done = pd.DataFrame({"season": season, "amount": amount, "exposure": exposure})[played & exposure.notna()]
    sums = done.groupby("season")[["amount", "exposure"]].sum()
    rate = season.map((sums["amount"] / sums["exposure"]).rename(lambda previous: previous + 1)).astype("float64")
    above = amount - rate * exposure
    counted = above.notna()
    return above.where(counted, 0.0), exposure.where(counted, 0.0)
