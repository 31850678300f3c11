"""C · context (`ctx_*`): home field, park, day/night, weekday, rest, recent load, doubleheader, travel."""
from __future__ import annotations

import pandas as pd

from modules.common import as_of_join, from_day, side_columns, team_games
from utils.engine.stages import ModuleResult, StageOutput

# UTC offset (standard time) of each franchise's home, for time-zone travel; neutral parks have their own.
TEAM_UTC_OFFSET = {
    "ANA": -8, "ARI": -7, "ATL": -5, "BAL": -5, "BOS": -5, "CHA": -6, "CHN": -6, "CIN": -5, "CLE": -5, "COL": -7,
    "DET": -5, "HOU": -6, "KCA": -6, "LAN": -8, "MIA": -5, "MIL": -6, "MIN": -6, "NYA": -5, "NYN": -5, "OAK": -8,
    "PHI": -5, "PIT": -5, "SDN": -8, "SEA": -8, "SFN": -8, "SLN": -6, "TBA": -5, "TEX": -6, "TOR": -5, "WAS": -5,
    "ATH": -8,
}
PARK_UTC_OFFSET = {"TOK01": 9, "SEO01": 9, "SYD01": 10, "LON01": 0, "MNT01": -6, "MEX02": -6, "SJU01": -4}
PARK_PRIOR_GAMES = 200


def park_offsets(games: pd.DataFrame) -> pd.Series:
    team_tz = games["home_team"].map(TEAM_UTC_OFFSET).astype("float64")
    return games["park_id"].map(PARK_UTC_OFFSET).astype("float64").fillna(team_tz)


def park_factor(games: pd.DataFrame) -> pd.Series:
    """Runs at the park over runs expected at the league's rate, over the three seasons before the
    game's season, shrunk toward 1 by PARK_PRIOR_GAMES games (a new park starts at 1)."""
    done = games[games["played"]].assign(runs=lambda g: (g["home_score"] + g["away_score"]).astype(float))
    league = done.groupby("season")["runs"].mean().rename("league")
    park = done.groupby(["park_id", "season"])["runs"].agg(["sum", "count"]).reset_index()
    park = park.merge(league, left_on="season", right_index=True)
    park["expected"] = park["count"] * park["league"]
    targets = games[["park_id", "season"]].drop_duplicates()
    pairs = targets.merge(park, on="park_id", suffixes=("", "_src"))
    pairs = pairs[(pairs["season_src"] < pairs["season"]) & (pairs["season_src"] >= pairs["season"] - 3)]
    agg = pairs.groupby(["park_id", "season"])[["sum", "expected", "count"]].sum()
    prior = PARK_PRIOR_GAMES * agg["expected"] / agg["count"]
    factor = ((agg["sum"] + prior) / (agg["expected"] + prior)).rename("factor").reset_index()
    key = games[["park_id", "season"]].merge(factor, how="left", on=["park_id", "season"])
    return key["factor"].fillna(1.0).set_axis(games.index)


def build_context(games: pd.DataFrame, since: pd.Timestamp | None = None) -> pd.DataFrame:
    """Per game (dated on or after `since`), its context and each side's rest, load and travel."""
    everything = team_games(games)
    everything["utc_offset"] = everything["game_id"].map(pd.Series(park_offsets(games).to_numpy(),
                                                                   index=games["game_id"]))
    # Schedules are public in advance, but the rule is simplest kept uniform: only earlier dates count,
    # counted in date order (a suspended game counts on its first day, however late its result comes).
    by_date = everything.sort_values(["team", "date", "game_number", "game_id"], kind="stable")
    seen = everything.assign(seen_date=everything["date"],
                             games_so_far=by_date.groupby("team").cumcount().reindex(everything.index) + 1)
    long = from_day(everything, since)
    prev = as_of_join(long, seen, ["team"], ["seen_date", "park_id", "utc_offset", "games_so_far"],
                      event_time="date")
    week_ago = long.assign(date=long["date"] - pd.Timedelta(days=6))
    prev_week = as_of_join(week_ago, seen, ["team"], ["games_so_far"], event_time="date")
    rest = (long["date"] - prev["seen_date"]).dt.days
    feats = pd.DataFrame({"game_id": long["game_id"], "is_home": long["is_home"]})
    feats["rest_days"] = rest.clip(upper=10).fillna(10)
    feats["games_last7"] = prev["games_so_far"].fillna(0) - prev_week["games_so_far"].fillna(0)
    feats["park_changed"] = (prev["park_id"].fillna("") != long["park_id"].fillna("")).astype(float)
    feats["tz_shift"] = (long["utc_offset"] - prev["utc_offset"]).abs().fillna(0)
    rows = from_day(games, since)
    out = side_columns(feats, rows, "ctx_")
    out["ctx_home_field"] = (~rows["is_neutral"]).astype(float).to_numpy()
    out["ctx_night"] = (rows["day_night"] == "N").fillna(False).astype(float).to_numpy()
    out["ctx_day_of_week"] = rows["date"].dt.day_of_week.astype(float).to_numpy()
    out["ctx_month"] = rows["date"].dt.month.astype(float).to_numpy()
    out["ctx_doubleheader_game"] = rows["game_number"].astype(float).to_numpy()
    out["ctx_scheduled_innings"] = rows["scheduled_innings"].astype(float).to_numpy()
    out["ctx_park_factor"] = park_factor(games).loc[rows.index].to_numpy()
    out["ctx_interleague"] = (rows["home_league"] != rows["away_league"]).fillna(False).astype(float).to_numpy()
    out["ctx_rest_diff"] = out["ctx_home_rest_days"] - out["ctx_away_rest_days"]
    return out


def describe_context(games: pd.DataFrame, since: pd.Timestamp | None = None) -> StageOutput:
    feats = build_context(games, since)
    return StageOutput({"context_features": feats}, {"columns": feats.shape[1] - 1})


def main(cfg) -> ModuleResult:
    """Stage C through the pipeline's runner, as a run does, holding the artifacts root's run lock."""
    from modules.registry import REGISTRY
    from utils.engine.one_stage import run_alone

    return run_alone(cfg, REGISTRY["C"])
