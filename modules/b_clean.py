"""B · clean: one row a game (history plus the as-of date's schedule), keyed by a stable game_id."""
from __future__ import annotations

import re

import numpy as np
import pandas as pd

from utils.engine.stages import ModuleResult, StageOutput

# Seven-inning doubleheader games were the rule in 2020 and 2021 only.
SEVEN_INNING_DH_SEASONS = (2020, 2021)
RAW_COLUMNS = ["season", "date", "game_number", "day_of_week", "visiting_team", "visiting_league", "home_team",
               "home_league", "visiting_game_number", "home_game_number", "day_night", "park_id",
               "v_starting_pitcher_id", "h_starting_pitcher_id", "visiting_score", "home_score", "length_outs",
               "completion_info", "forfeit_info", "v_pitchers_used", "h_pitchers_used", "winning_pitcher_id",
               "losing_pitcher_id"] + [f"{side}_player{slot}_{part}" for side in ("v", "h") for slot in range(1, 10)
                                       for part in ("id", "pos")] \
    + [f"{side}_{stat}" for side in ("v", "h") for stat in ("ab", "bb", "ibb", "hbp", "sf", "sh", "so")] \
    + ["visiting_line_score", "home_line_score"]
LATE_INNING = 7  # from the seventh on, the innings a bullpen pitches
CATCHER = 2  # the game log's position number of the catcher
_INNING = re.compile(r"\((\d+)\)|(\d)|(x)")


def game_number(raw: pd.Series) -> pd.Series:
    """Retrosheet's 0/1/2/3, with the three-team doubleheader codes A/B as 1/2."""
    return raw.astype("string").replace({"A": "1", "B": "2"}).astype("Int64")


def late_innings(line_score: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Runs and innings batted from the seventh inning on, from Retrosheet's line score
    ("010000200", "(10)" for a two-digit inning, "x" for a bottom half not played). A missing or
    malformed line score gives NaN: the game just does not count toward bullpen figures."""
    runs = np.full(len(line_score), np.nan)
    innings = np.full(len(line_score), np.nan)
    text = line_score.astype("string")
    # One character an inning (all but ~0.15% of games): summed as bytes, no per-game Python.
    simple = text.str.fullmatch(r"[0-9x]+").fillna(False).to_numpy(dtype=bool)
    if simple.any():
        late = text[simple].str[LATE_INNING - 1:].to_numpy(dtype=str)
        lengths = np.fromiter((len(t) for t in late), dtype=np.int64, count=len(late))
        chars = np.frombuffer("".join(late).encode("ascii"), dtype=np.uint8)
        digit = chars != ord("x")
        owner = np.repeat(np.arange(len(late)), lengths)
        runs[simple] = np.bincount(owner, weights=np.where(digit, chars - ord("0"), 0), minlength=len(late))
        innings[simple] = np.bincount(owner, weights=digit, minlength=len(late))
    for i in np.flatnonzero(~simple & text.notna().to_numpy(dtype=bool)):
        value = text.iloc[i]
        if not value or _INNING.sub("", value):
            continue
        late = [int(two or one) for two, one, skipped in _INNING.findall(value)[LATE_INNING - 1:] if not skipped]
        runs[i], innings[i] = sum(late), len(late)
    return runs, innings


def clean_games(raw: pd.DataFrame, schedule: pd.DataFrame, franchise_map: dict[str, str],
                neutral_parks: list[str]) -> pd.DataFrame:
    """Played history + the day's schedule -> the games table (results null for unplayed games)."""
    sched = schedule.reindex(columns=RAW_COLUMNS)
    frame = pd.concat([raw[RAW_COLUMNS], sched], ignore_index=True) if len(sched) else raw[RAW_COLUMNS].copy()
    number = game_number(frame["game_number"])
    played = frame["home_score"].notna() & frame["visiting_score"].notna()
    out = pd.DataFrame({
        "game_id": frame["home_team"].astype("string") + frame["date"].dt.strftime("%Y%m%d") + number.astype("string"),
        "date": frame["date"],
        "season": frame["season"].astype("Int64"),
        "game_number": number,
        "day_of_week": frame["day_of_week"].astype("string"),
        "home_team": frame["home_team"].astype("string").replace(franchise_map),
        "away_team": frame["visiting_team"].astype("string").replace(franchise_map),
        "home_team_raw": frame["home_team"].astype("string"),
        "away_team_raw": frame["visiting_team"].astype("string"),
        "home_league": frame["home_league"].astype("string"),
        "away_league": frame["visiting_league"].astype("string"),
        "home_team_game": frame["home_game_number"].astype("Int64"),
        "away_team_game": frame["visiting_game_number"].astype("Int64"),
        "park_id": frame["park_id"].astype("string"),
        "day_night": frame["day_night"].astype("string"),
        "home_starter_id": frame["h_starting_pitcher_id"].astype("string"),
        "away_starter_id": frame["v_starting_pitcher_id"].astype("string"),
        "played": played.astype(bool),
        "home_score": frame["home_score"].astype("Int64"),
        "away_score": frame["visiting_score"].astype("Int64"),
        "length_outs": frame["length_outs"].astype("Int64"),
        "home_pitchers_used": frame["h_pitchers_used"].astype("Int64"),
        "away_pitchers_used": frame["v_pitchers_used"].astype("Int64"),
        "winning_pitcher_id": frame["winning_pitcher_id"].astype("string"),
        "losing_pitcher_id": frame["losing_pitcher_id"].astype("string"),
    })
    for side, raw_side in (("home", "h"), ("away", "v")):  # the starting nine, in batting order
        for slot in range(1, 10):
            out[f"{side}_lineup_{slot}"] = frame[f"{raw_side}_player{slot}_id"].astype("string")
    for side, raw_side in (("home", "h"), ("away", "v")):  # its catcher
        catcher = pd.Series(pd.NA, index=frame.index, dtype="string")
        for slot in range(1, 10):
            behind_plate = pd.to_numeric(frame[f"{raw_side}_player{slot}_pos"], errors="coerce") == CATCHER
            catcher = catcher.mask(behind_plate.fillna(False).to_numpy(dtype=bool) & catcher.isna().to_numpy(),
                                   out[f"{side}_lineup_{slot}"])
        out[f"{side}_catcher_id"] = catcher
    for side, raw_side in (("home", "h"), ("away", "v")):  # each side's batting line, for the other's pitchers
        stat = {name: frame[f"{raw_side}_{name}"].astype("Int64")
                for name in ("ab", "bb", "ibb", "hbp", "sf", "sh", "so")}
        out[f"{side}_bat_pa"] = stat["ab"] + stat["bb"] + stat["hbp"] + stat["sf"] + stat["sh"]
        out[f"{side}_bat_so"] = stat["so"]
        out[f"{side}_bat_bb"] = stat["bb"] - stat["ibb"].fillna(0) + stat["hbp"]  # unintentional walks + hit batters
        runs, innings = late_innings(frame[{"h": "home_line_score", "v": "visiting_line_score"}[raw_side]])
        out[f"{side}_bat_late_runs"] = pd.array(runs, dtype="Float64").astype("Int64")
        out[f"{side}_bat_late_innings"] = pd.array(innings, dtype="Float64").astype("Int64")
    completed = pd.to_datetime(frame["completion_info"].astype("string").str.slice(0, 8), format="%Y%m%d",
                               errors="coerce")
    out["is_suspended_completed"] = completed.notna().to_numpy()
    out["result_date"] = completed.fillna(out["date"])
    forfeit = frame["forfeit_info"].astype("string")
    out["forfeit_code"] = forfeit
    out["is_forfeit"] = forfeit.isin(["H", "V", "T"]).fillna(False).astype(bool)
    out["is_tie"] = (played & (out["home_score"] == out["away_score"])).fillna(False).astype(bool)
    out["home_win"] = pd.Series(pd.NA, index=out.index, dtype="Int64")
    decided = played & ~out["is_tie"]
    out.loc[decided, "home_win"] = (out.loc[decided, "home_score"] > out.loc[decided, "away_score"]).astype("Int64")
    # A forfeit awards the game whatever the score at the time.
    out.loc[forfeit == "H", "home_win"] = 1
    out.loc[forfeit == "V", "home_win"] = 0
    out.loc[forfeit == "T", "home_win"] = pd.NA
    out["is_neutral"] = out["park_id"].isin(neutral_parks).fillna(False).astype(bool)
    seven = out["season"].isin(SEVEN_INNING_DH_SEASONS) & (out["game_number"] > 0)
    out["scheduled_innings"] = seven.map({True: 7, False: 9}).astype("Int64")
    out.loc[~played, ["result_date"]] = pd.NaT
    for col in ("date", "result_date"):  # one unit, whatever each source parsed to
        out[col] = out[col].astype("datetime64[ms]")
    return out.sort_values(["date", "game_number", "game_id"], kind="stable").reset_index(drop=True)


def clean(raw_gamelogs: pd.DataFrame, schedule: pd.DataFrame, franchise_map: dict[str, str],
          neutral_parks: list[str]) -> StageOutput:
    games = clean_games(raw_gamelogs, schedule, dict(franchise_map), list(neutral_parks))
    return StageOutput({"games": games}, {"games": int(games["played"].sum()),
                                          "scheduled": int((~games["played"]).sum())})


def main(cfg) -> ModuleResult:
    """Stage B through the pipeline's runner, as a run does, holding the artifacts root's run lock."""
    from modules.registry import REGISTRY
    from utils.engine.one_stage import run_alone

    return run_alone(cfg, REGISTRY["B"])
