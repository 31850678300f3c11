"""E · data quality report (an orphan by design: nothing downstream reads it; the viewer shows it).

It sits beside the feature modules, reading `games`, `quarantine`, `player_games` (how much of
each season the play-by-play covers, and where it disagrees with the game log) and `player_ids` (the
Stats API's players no Lahman person matched), so a data problem is
visible on the morning after it appears without ever blocking the predictions.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from modules.common import empty_player_games, lines_of_games
from utils.engine.stages import ModuleResult, StageOutput

MAX_PLAUSIBLE_RUNS = 30
FULL_COVERAGE = 0.999  # games seen over the schedule played; below it a team's season has a gap
OUTS_PER_INNING = 6  # both halves
# A game becomes official after five of nine innings (4 short of the schedule; 7-inning games: 3 of 7).
INNINGS_SHORT_OF_OFFICIAL = 4


def play_by_play_coverage(games: pd.DataFrame, player_games: pd.DataFrame) -> dict:
    """Per season with any player line: the games played, those with lines, and those whose lines
    disagree with the game log (runs charged to a side's pitchers against the other side's score);
    and the lines that match no game of the table."""
    played = games[games["played"]]
    lines = lines_of_games(player_games, games)
    # runs charged to each side's pitchers, by the game's row (NaN: no line of that side)
    row = pd.Categorical(lines["game_id"], categories=played["game_id"]).codes  # -1: not a played game
    runs = lines["p_r"].to_numpy(dtype=float, na_value=0.0)
    is_home = lines["is_home"].to_numpy(dtype=bool)
    allowed = {}
    for home in (True, False):
        mine = (is_home == home) & (row >= 0)
        count = np.bincount(row[mine], minlength=len(played))
        allowed[home] = np.where(count > 0, np.bincount(row[mine], weights=runs[mine], minlength=len(played)), np.nan)
    home_allowed, away_allowed = allowed[True], allowed[False]
    covered = ~pd.isna(home_allowed) | ~pd.isna(away_allowed)
    disagree = covered & ((home_allowed != played["away_score"].to_numpy(dtype=float, na_value=float("nan")))
                          | (away_allowed != played["home_score"].to_numpy(dtype=float, na_value=float("nan"))))
    per_season = pd.DataFrame({"season": played["season"].to_numpy(), "covered": covered, "disagree": disagree})
    seasons = {}
    first = int(player_games["season"].min()) if len(player_games) else None
    for season, group in per_season.groupby("season"):
        if first is None or season < first:  # before the play-by-play read: not a gap
            continue
        seasons[str(int(season))] = {
            "games": int(len(group)), "with_lines": int(group["covered"].sum()),
            "coverage": float(group["covered"].mean()) if len(group) else None,
            "disagreeing_with_game_log": int(group["disagree"].sum())}
    return {"lines": int(len(player_games)), "unmatched_lines": int(len(player_games) - len(lines)),
            "seasons": seasons}


def id_mapping(player_ids: pd.DataFrame | None) -> dict:
    """How the Stats API's players were matched to Retrosheet ids; those unmatched are named."""
    if player_ids is None or player_ids.empty:
        return {"players": 0, "unmatched": 0, "by_method": {}, "unmatched_players": []}
    unmatched = player_ids[player_ids["matched_by"] == "unmatched"]
    return {"players": int(len(player_ids)), "unmatched": int(len(unmatched)),
            "by_method": {str(k): int(v) for k, v in player_ids["matched_by"].value_counts().items()},
            "unmatched_players": [{"mlbam_id": int(r.mlbam_id), "id": str(r.retro_id),
                                   "name": None if pd.isna(r.full_name) else str(r.full_name)}
                                  for r in unmatched.head(50).itertuples()]}


def quality_report(games: pd.DataFrame, quarantine: pd.DataFrame, player_games: pd.DataFrame | None = None,
                   player_ids: pd.DataFrame | None = None) -> dict:
    played = games[games["played"]]
    long = pd.concat([
        played[["season", "home_team", "home_team_game"]].set_axis(["season", "team", "team_game"], axis=1),
        played[["season", "away_team", "away_team_game"]].set_axis(["season", "team", "team_game"], axis=1),
    ])
    per_team = long.groupby(["season", "team"]).agg(games=("team", "size"), last_game_number=("team_game", "max"))
    # Team game numbers count every game started, so their maximum is the schedule played so far.
    per_team["coverage"] = per_team["games"] / per_team["last_game_number"]
    gaps = per_team[per_team["coverage"] < FULL_COVERAGE].reset_index()
    official_outs = OUTS_PER_INNING * (played["scheduled_innings"] - INNINGS_SHORT_OF_OFFICIAL)
    completed_early = played["length_outs"] < official_outs
    anomalies = {
        "runs_above_plausible": int(((played["home_score"] > MAX_PLAUSIBLE_RUNS)
                                     | (played["away_score"] > MAX_PLAUSIBLE_RUNS)).sum()),
        "short_games_not_suspended": int((completed_early & ~played["is_suspended_completed"]).fillna(False).sum()),
        "missing_starter": int((played["home_starter_id"].isna() | played["away_starter_id"].isna()).sum()),
    }
    nulls = {col: int(n) for col, n in games.isna().sum().items() if n}
    return {
        "seasons": {"first": int(games["season"].min()), "last": int(games["season"].max())} if len(games) else None,
        "games": int(len(played)),
        "scheduled": int((~games["played"]).sum()),
        "duplicates": int(games["game_id"].duplicated().sum()),
        "flags": {name: int(games[name].sum()) for name in
                  ("is_forfeit", "is_tie", "is_suspended_completed", "is_neutral")},
        "coverage": {
            "team_seasons": int(len(per_team)),
            "min": float(per_team["coverage"].min()) if len(per_team) else None,
            "gaps": [{"season": int(r.season), "team": r.team, "games": int(r.games),
                      "last_game_number": int(r.last_game_number)} for r in gaps.itertuples()],
        },
        "games_per_season": {str(k): int(v) for k, v in played.groupby("season").size().items()},
        "nulls": nulls,
        "quarantined": {
            "lines": int(len(quarantine)),
            "by_reason": {str(k): int(v) for k, v in
                          quarantine["reason"].str.replace(r"'.*'", "'…'", regex=True).value_counts().items()},
            "examples": quarantine.head(20)[["season", "line_number", "reason"]].to_dict("records"),
        },
        "anomalies": anomalies,
        "play_by_play": play_by_play_coverage(games, player_games if player_games is not None
                                              else empty_player_games()),
        "player_ids": id_mapping(player_ids),
    }


def check_quality(games: pd.DataFrame, quarantine: pd.DataFrame, player_games: pd.DataFrame,
                  player_ids: pd.DataFrame) -> StageOutput:
    report = quality_report(games, quarantine, player_games, player_ids)
    return StageOutput({"data_quality_report": report}, {"quarantined": report["quarantined"]["lines"],
                                                         "duplicates": report["duplicates"],
                                                         "unmatched_players": report["player_ids"]["unmatched"]})


def main(cfg) -> ModuleResult:
    """Stage E through the pipeline's runner, as a run does, holding the artifacts root's run lock."""
    from modules.registry import REGISTRY
    from utils.engine.one_stage import run_alone

    return run_alone(cfg, REGISTRY["E"])
