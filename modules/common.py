"""Pure helpers shared by the feature modules (C, D, F, G, H).

The as-of rule lives here: every feature is a team's (or pitcher's) state taken with
`as_of_join`, i.e. after the last result known *strictly before* the game's date. Results are
known on their `result_date` (the completion date of a suspended game), so a doubleheader's
second game never sees the first, and training rows are built exactly like the day's predictions.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

# Runs a team scores (and allows) a game, near the league's level since 1990: the prior for a team or
# a starter with few games behind him.
LEAGUE_RUNS = 4.5
# A league rate before a date: the season's games so far, with this many innings (about two weeks of
# games) of last season's rate added, so opening week is not measured against a handful of games.
LEAGUE_PRIOR_IP = 4000.0


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


def from_day(frame: pd.DataFrame, since: pd.Timestamp | None) -> pd.DataFrame:
    """The rows dated on or after `since` (all of them for None): the rows a stage builds when its
    earlier rows are kept (utils/engine/history.py). A row's features are the same either way: they
    read the full history of events, only the rows they are read for are fewer."""
    return frame if since is None else frame[frame["date"] >= since]


def as_of_join(at: pd.DataFrame, events: pd.DataFrame, by: list[str], values: list[str],
               event_time: str = "result_date", at_time: str = "date") -> pd.DataFrame:
    """For each row of `at`, the `values` of the last event of the same `by` keys strictly before `at_time`.

    `events` holds a state *after* each event (e.g. a cumulative sum including that game). Rows of
    `at` with no earlier event get NaN. Returns `at`'s rows in their original order.
    """
    key = by[0]
    if len(at) * 8 < len(events) and at[key].notna().all() and not pd.api.types.is_numeric_dtype(events[key]) \
            and not pd.api.types.is_numeric_dtype(at[key]):
        # a few rows (a night's, when earlier rows are kept): only their keys' events, not all history;
        # compared as the join below compares them, as strings
        events = events[events[key].astype("string").isin(at[key].astype("string").unique())]
    ev = events.dropna(subset=[event_time])[by + [event_time] + values]
    ev = ev.sort_values(by + [event_time], kind="stable").drop_duplicates(by + [event_time], keep="last")
    ev[event_time] = ev[event_time].astype("datetime64[ns]")  # merge_asof needs one time unit on both sides
    left = at[by + [at_time]].reset_index(drop=True)
    left["_row"] = range(len(left))  # positions, not labels: `at` may come in any order
    left[at_time] = left[at_time].astype("datetime64[ns]")
    for key in by:  # text keys as one string dtype on both sides (parquet's "str" and "string" do not merge)
        if not pd.api.types.is_numeric_dtype(left[key]) or not pd.api.types.is_numeric_dtype(ev[key]):
            left[key], ev[key] = left[key].astype("string"), ev[key].astype("string")
        elif left[key].dtype != ev[key].dtype:  # and numbers as one (Int64 from a table, int64 from numpy)
            left[key], ev[key] = left[key].astype("Int64"), ev[key].astype("Int64")
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


def above_league_so_far(season: pd.Series, result_date: pd.Series, played: pd.Series, amount: pd.Series,
                        exposure: pd.Series, prior_exposure: float) -> tuple[pd.Series, pd.Series]:
    """`amount` above the league's rate per unit of `exposure` as known before each row's date: the
    season's games before that date, with `prior_exposure` of the previous season's rate added
    (seasons differ: 2022's home runs fell by an eighth, so a fixed rate would tilt every pitcher
    of a season one way). A row with no rate yet (no earlier game this season nor last) counts nothing."""
    done = pd.DataFrame({"season": season, "day": result_date, "amount": amount, "exposure": exposure})
    done = done[played & exposure.notna() & result_date.notna()]
    daily = done.groupby(["season", "day"])[["amount", "exposure"]].sum()
    before = daily.groupby(level="season").cumsum() - daily  # strictly before each day
    totals = daily.groupby(level="season").sum()
    last = (totals["amount"] / totals["exposure"]).rename(lambda s: s + 1)
    last_rate = before.index.get_level_values("season").map(last).to_numpy(dtype=float)
    weight = np.where(np.isnan(last_rate), 0.0, prior_exposure)
    rate = ((before["amount"] + np.nan_to_num(last_rate) * weight) / (before["exposure"] + weight)).where(
        before["exposure"] + weight > 0)
    at = pd.MultiIndex.from_arrays([season, result_date])
    row_rate = rate.reindex(at).to_numpy(dtype=float)
    above = pd.Series(amount.to_numpy(dtype=float) - row_rate * exposure.to_numpy(dtype=float), index=amount.index)
    counted = above.notna()
    return above.where(counted, 0.0), exposure.where(counted, 0.0)


def lines_of_games(player_games: pd.DataFrame, games: pd.DataFrame) -> pd.DataFrame:
    """Player lines with their game's `game_id`, `result_date`, `played`, `season` and side (`is_home`
    as the games table has it). Matched on date, game number and team as the season's files write it
    (not on Retrosheet's id: the 13 games moved to the other team's park name the park's team as home
    in the event files). Lines of a game the table does not hold are dropped."""
    keys = []
    for side in ("home", "away"):
        keys.append(pd.DataFrame({"date": games["date"].astype("datetime64[ms]"),
                                  "game_number": games["game_number"].astype("Int16"),
                                  "team": games[f"{side}_team_raw"].astype("string"),
                                  "game_id": games["game_id"], "result_date": games["result_date"],
                                  "played": games["played"], "game_season": games["season"],
                                  "side_home": side == "home"}))
    key = pd.concat(keys, ignore_index=True).drop_duplicates(["date", "game_number", "team"], keep=False)
    lines = player_games.astype({"date": "datetime64[ms]", "game_number": "Int16", "team": "string",
                                 "player_id": "string"})
    out = lines.merge(key, on=["date", "game_number", "team"], how="inner", validate="many_to_one")
    return out.drop(columns=["is_home"]).rename(columns={"side_home": "is_home"})


def empty_player_games() -> pd.DataFrame:
    """A player_games table with no line (no play-by-play read): every feature from it is its prior."""
    from utils.sources.events import to_frame

    return to_frame([], 2000)


def pitching_lines(lines: pd.DataFrame) -> pd.DataFrame:
    """Every pitcher's game (from lines_of_games): innings, batters faced and pitches, and his FIP
    and strikeouts-minus-walks above the league's rate known before the game (above_league_so_far)."""
    pitched = lines[lines["p_g"].fillna(0) > 0]
    stat = {c: pitched[c].astype("float64").fillna(0) for c in ("p_out", "p_tbf", "p_hr", "p_bb", "p_ibb", "p_hp",
                                                                   "p_so")}
    walks = stat["p_bb"] - stat["p_ibb"] + stat["p_hp"]
    ip = stat["p_out"] / 3
    when = (pitched["game_season"], pitched["result_date"], pitched["played"])
    fip_above, ip_counted = above_league_so_far(*when, 13 * stat["p_hr"] + 3 * walks - 2 * stat["p_so"], ip,
                                                LEAGUE_PRIOR_IP)
    kbb_above, bf_counted = above_league_so_far(*when, stat["p_so"] - walks, stat["p_tbf"],
                                                LEAGUE_PRIOR_IP * 4.3)
    return pd.DataFrame({"pitcher": pitched["player_id"], "game_id": pitched["game_id"], "is_home": pitched["is_home"],
                         "date": pitched["date"], "result_date": pitched["result_date"],
                         "appear_date": pitched["appear_date"].fillna(pitched["date"]),
                         "season": pitched["game_season"], "played": pitched["played"],
                         "started": pitched["p_gs"].fillna(0).astype(int) > 0, "fip_above": fip_above,
                         "ip": ip_counted, "kbb_above": kbb_above, "bf": bf_counted, "outs": stat["p_out"],
                         "pitches": pitched["p_pitch"].astype("float64"), "saves": pitched["p_sv"].astype("float64")})


DECAY_ORIGIN = pd.Timestamp("2000-01-01")  # days are counted from here: the first season of play-by-play


def decayed_state(events: pd.DataFrame, by: str, values: list[str], halflife_days: float) -> pd.DataFrame:
    """After each event (rows sorted by `by`, then result_date), each of `values` summed over the key's
    events so far, each weighted by 2^(days/halflife): the running state `decayed_at` reads back."""
    scale = np.log(2) / halflife_days
    days = (events["result_date"] - DECAY_ORIGIN).dt.days.to_numpy(dtype=float)
    out = events[[by, "result_date"]].copy()
    for col in values:
        weighted = pd.Series(events[col].to_numpy(dtype=float) * np.exp(days * scale), index=events.index)
        out[f"decayed_{col}"] = weighted.groupby(events[by], sort=False).cumsum()
    return out


def decayed_at(at: pd.DataFrame, state: pd.DataFrame, by: str, values: list[str], halflife_days: float,
               at_time: str = "date") -> pd.DataFrame:
    """For each row of `at`, the sums of `decayed_state` over its key's events strictly before its date,
    each event weighted by one half per `halflife_days` between it and that date (0 with none)."""
    cols = [f"decayed_{c}" for c in values]
    sums = as_of_join(at, state, [by], cols, at_time=at_time)
    days = (at[at_time] - DECAY_ORIGIN).dt.days.to_numpy(dtype=float)
    factor = np.exp(-days * np.log(2) / halflife_days)
    return pd.DataFrame({c: sums[f"decayed_{c}"].fillna(0).to_numpy() * factor for c in values}, index=at.index)
