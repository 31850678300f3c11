"""F · starters: the starting pitcher (`sp_*`) and the expected starting nine (`lu_*`).

Game logs have no per-pitcher innings, so a pitcher's previous starts are described by what his
team allowed in them, the decisions and complete games, and his skill in them by the strikeouts
minus walks per batter of the games he started (`game_kbb`, above the league of the season before;
the bullpen's share dilutes it, but it moves with the pitcher within a season, where Lahman cannot
look without leaking). His talent comes from the Lahman lines
of the three seasons before the game's season, each measured against its own league, weighted
5/4/3 (Marcel) and regressed toward the league; a pitcher with no line is taken as DEBUT_PENALTY
runs per nine worse than the league. Lineup talent is the mean Marcel wOBA above the league of the
team's starting nine in its previous game: today's lineup is not known the night before.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from modules.common import LEAGUE_RUNS, above_last_season, as_of_join, rolling_sum, side_columns
from modules.registry import ModuleResult, StageOutput
from utils.config import PitcherFeatures

BATTERS_PER_INNING = 4.3  # league batters faced an inning: turns the prior's innings into batters
LEAGUE_IP_PER_START = 4.5  # innings a start, the prior of a starter's usual length
PRIOR_STARTS = 10  # starts of LEAGUE_IP_PER_START added to his own
IP_PER_START_RANGE = (1, 8)  # an opener's inning to a workhorse's eight
FIP_WEIGHT, ERA_WEIGHT = 0.7, 0.3  # runs saved: FIP predicts next year's runs better than ERA, which adds a little
RECENT_PRIOR_STARTS = 2  # league-average starts added to his last few
# What those prior starts look like: runs allowed, a win, a loss, a complete game, his team winning.
RECENT_PRIORS = {"runs_allowed": LEAGUE_RUNS, "won": 0.3, "lost": 0.3, "complete": 0.0, "team_won": 0.5}
NO_START_REST = 30.0
MARCEL_WEIGHTS = (5, 4, 3)  # seasons S-1, S-2, S-3
DEBUT_PENALTY = 0.4  # runs per nine worse than the league for a pitcher with no Lahman line
DEBUT_KBB = -0.02  # strikeouts minus walks per batter below the league for the same
# Plate appearances of league-average hitting added to each batter. Light: a lineup averages nine
# batters, so their noise mostly cancels, and in walk-forward backtests (2019-2024) a prior of 25
# beat 200 by 0.0001 Brier; a batter with no Lahman line is taken as a little below the league.
LINEUP_PRIOR_PA = 25
UNKNOWN_BATTER = -0.01  # wOBA below the league for a batter with no Lahman line
WOBA = {"bb": 0.69, "hbp": 0.72, "single": 0.89, "doubles": 1.27, "triples": 1.62, "hr": 2.10}


def starts_table(games: pd.DataFrame) -> pd.DataFrame:
    """One row per side per game: the starter and what his team allowed in that game."""
    sides = []
    for side, other in (("home", "away"), ("away", "home")):
        sides.append(pd.DataFrame({
            "game_id": games["game_id"], "date": games["date"], "result_date": games["result_date"],
            "season": games["season"], "played": games["played"], "is_home": side == "home",
            "pitcher": games[f"{side}_starter_id"],
            "runs_allowed": games[f"{other}_score"].astype("float64"),
            "won": (games["winning_pitcher_id"] == games[f"{side}_starter_id"]).fillna(False).astype(float),
            "lost": (games["losing_pitcher_id"] == games[f"{side}_starter_id"]).fillna(False).astype(float),
            "complete": (games[f"{side}_pitchers_used"] == 1).fillna(False).astype(float),
            "team_won": (games["home_win"] == (1 if side == "home" else 0)).fillna(False).astype(float),
            "opp_pa": games[f"{other}_bat_pa"].astype("float64"),
            "opp_kbb": (games[f"{other}_bat_so"] - games[f"{other}_bat_bb"]).astype("float64"),
        }))
    return pd.concat(sides, ignore_index=True)


def game_kbb(starts: pd.DataFrame) -> pd.DataFrame:
    """Strikeouts minus walks of the batters in each start above the previous season's league rate,
    and their plate appearances. A season's own rate would include games after the date; a start
    with no earlier season (or no batting line) counts nothing."""
    above, pa = above_last_season(starts["season"], starts["played"], starts["opp_kbb"], starts["opp_pa"])
    return pd.DataFrame({"kbb_above": above, "kbb_pa": pa})


def _lagged(lines: pd.DataFrame) -> pd.DataFrame:
    """Each season line copied to the three seasons it informs, with its Marcel weight."""
    copies = [lines.assign(target=lines["season"] + lag, weight=w) for lag, w in enumerate(MARCEL_WEIGHTS, start=1)]
    return pd.concat(copies, ignore_index=True)


def marcel_pitching(lahman: pd.DataFrame, regress_ip: float) -> pd.DataFrame:
    """Per (retro_id, target season): FIP and ERA in runs per nine above the league, K-BB per batter
    above the league, and innings per start. Each season's line is measured against its own league
    before the 5/4/3 weighting (Marcel), so the values do not move with the league's run level."""
    lines = lahman.astype({c: "float64" for c in lahman.columns if c != "retro_id"}).fillna(0)
    lines["ip"] = lines["ip_outs"] / 3
    league = lines.groupby("season")[["ip", "er", "hr", "bb", "hbp", "so", "bfp"]].sum()
    ra9 = lines["season"].map(9 * league["er"] / league["ip"])
    fip_raw = (13 * league["hr"] + 3 * (league["bb"] + league["hbp"]) - 2 * league["so"]) / league["ip"]
    lines["fip_above"] = (13 * lines["hr"] + 3 * (lines["bb"] + lines["hbp"]) - 2 * lines["so"]
                          - lines["season"].map(fip_raw) * lines["ip"])
    lines["er_above"] = lines["er"] - ra9 / 9 * lines["ip"]
    lines["kbb_above"] = lines["so"] - lines["bb"] - lines["season"].map(
        (league["so"] - league["bb"]) / league["bfp"]) * lines["bfp"]
    lagged = _lagged(lines)
    cols = ["fip_above", "er_above", "kbb_above", "ip", "bfp", "gs"]
    for col in cols:
        lagged[col] = lagged[col] * lagged["weight"]
    sums = lagged.groupby(["retro_id", "target"])[cols].sum()
    prior_ip = regress_ip * MARCEL_WEIGHTS[0]  # innings of exactly-league pitching added to every line
    out = pd.DataFrame(index=sums.index)
    out["fip"] = 9 * sums["fip_above"] / (sums["ip"] + prior_ip)
    out["era"] = 9 * sums["er_above"] / (sums["ip"] + prior_ip)
    out["kbb"] = sums["kbb_above"] / (sums["bfp"] + prior_ip * BATTERS_PER_INNING)
    out["ip_per_gs"] = ((sums["ip"] + LEAGUE_IP_PER_START * PRIOR_STARTS)
                        / (sums["gs"] + PRIOR_STARTS)).clip(*IP_PER_START_RANGE)
    out["ip"] = sums["ip"] / sum(MARCEL_WEIGHTS)
    return out


def marcel_batting(batting: pd.DataFrame) -> pd.Series:
    """Per (retro_id, target season): Marcel wOBA above each season's league, regressed by LINEUP_PRIOR_PA."""
    lines = batting.astype({c: "float64" for c in batting.columns if c != "retro_id"}).fillna(0)
    lines["single"] = lines["h"] - lines["doubles"] - lines["triples"] - lines["hr"]
    lines["value"] = sum(lines[col] * weight for col, weight in WOBA.items())
    league = lines.groupby("season")[["value", "pa"]].sum()
    lines["above"] = lines["value"] - lines["season"].map(league["value"] / league["pa"]) * lines["pa"]
    lagged = _lagged(lines[["retro_id", "season", "above", "pa"]])
    lagged["above"] *= lagged["weight"]
    lagged["pa"] *= lagged["weight"]
    sums = lagged.groupby(["retro_id", "target"])[["above", "pa"]].sum()
    return sums["above"] / (sums["pa"] + LINEUP_PRIOR_PA * MARCEL_WEIGHTS[0])


def lineup_talent(games: pd.DataFrame, talent: pd.Series) -> pd.DataFrame:
    """Each side's expected lineup (its starting nine in its previous game) as mean wOBA above the league."""
    rows = []
    for side in ("home", "away"):
        ids = games[[f"{side}_lineup_{slot}" for slot in range(1, 10)]]
        season = games["season"].astype("int64")
        values = np.column_stack([
            talent.reindex(pd.MultiIndex.from_arrays([ids[col].astype(object), season])).to_numpy(dtype=float)
            for col in ids.columns])
        values = np.where(np.isnan(values), UNKNOWN_BATTER, values)
        known = ids.notna().all(axis=1).to_numpy()
        rows.append(pd.DataFrame({"game_id": games["game_id"], "date": games["date"],
                                  "result_date": games["result_date"], "played": games["played"] & known,
                                  "team": games[f"{side}_team"], "is_home": side == "home",
                                  "woba": values.mean(axis=1)}))
    long = pd.concat(rows, ignore_index=True)
    previous = as_of_join(long, long[long["played"]], ["team"], ["woba"])
    return pd.DataFrame({"game_id": long["game_id"], "is_home": long["is_home"],
                         "woba": previous["woba"].fillna(0.0)})


def build_starter_features(games: pd.DataFrame, lahman: pd.DataFrame, batting: pd.DataFrame,
                           p: PitcherFeatures) -> pd.DataFrame:
    starts = starts_table(games)
    starts = starts.sort_values(["pitcher", "result_date", "date", "game_id"], kind="stable").reset_index(drop=True)
    starts[["kbb_above", "kbb_pa"]] = game_kbb(starts)
    done = starts[starts["played"] & starts["pitcher"].notna()].copy()
    grouped = done.groupby("pitcher", sort=False)
    done["career_starts"] = grouped.cumcount() + 1
    for col in ("runs_allowed", "won", "lost", "complete", "team_won"):
        done[f"recent_{col}"] = rolling_sum(done, "pitcher", col, p.recent_starts) / done["career_starts"].clip(
            upper=p.recent_starts)
    for col in ("kbb_above", "kbb_pa"):
        done[f"game_{col}"] = rolling_sum(done, "pitcher", col, p.game_starts)
    done["last_start"] = done["date"]
    cols = [c for c in done.columns if c.startswith(("recent_", "game_"))] + ["career_starts", "last_start"]
    known = starts["pitcher"].notna()
    state = as_of_join(starts[known], done, ["pitcher"], cols).reindex(starts.index)
    feats = pd.DataFrame({"game_id": starts["game_id"], "is_home": starts["is_home"]})
    feats["known"] = known.astype(float)
    feats["starts"] = state["career_starts"].fillna(0)
    # Experience: a starter with few starts is worse than his regressed Marcel line says (the
    # pitchers who stay get the starts), by diminishing steps.
    feats["log_starts"] = np.log1p(feats["starts"])
    feats["rest_days"] = (starts["date"] - state["last_start"]).dt.days.astype(float).clip(upper=NO_START_REST)
    feats["rest_days"] = feats["rest_days"].fillna(NO_START_REST)
    feats["long_rest"] = (feats["rest_days"] >= p.long_rest_days).astype(float)
    evidence = state["game_kbb_pa"].fillna(0) + p.game_prior_pa
    feats["game_kbb"] = (state["game_kbb_above"].fillna(0) / evidence).fillna(0)
    n = feats["starts"].clip(upper=p.recent_starts)
    for col in ("runs_allowed", "won", "lost", "complete", "team_won"):
        # Fixed priors: a mean over the table would include results after the game (a leak the tests catch).
        default = RECENT_PRIORS[col]
        feats[f"recent_{col}"] = ((state[f"recent_{col}"].fillna(default) * n + default * RECENT_PRIOR_STARTS)
                                  / (n + RECENT_PRIOR_STARTS))
    prior = marcel_pitching(lahman, p.prior_ip_regress).reindex(
        pd.MultiIndex.from_arrays([starts["pitcher"].astype(object), starts["season"].astype("int64")]))
    feats["prior_ip"] = prior["ip"].fillna(0).to_numpy()
    feats["prior_fip"] = prior["fip"].fillna(DEBUT_PENALTY).to_numpy()
    feats["prior_era"] = prior["era"].fillna(DEBUT_PENALTY).to_numpy()
    feats["prior_kbb"] = prior["kbb"].fillna(DEBUT_KBB).to_numpy()
    feats["prior_ip_per_gs"] = prior["ip_per_gs"].fillna(LEAGUE_IP_PER_START).to_numpy()
    # Runs a start saves against a league-average starter over the innings he usually pitches.
    feats["runs_saved"] = (-(FIP_WEIGHT * feats["prior_fip"] + ERA_WEIGHT * feats["prior_era"]) / 9
                           * feats["prior_ip_per_gs"])
    out = side_columns(feats, games, "sp_")
    for col in ("prior_fip", "prior_era", "prior_kbb", "prior_ip_per_gs", "runs_saved", "recent_runs_allowed",
                "rest_days", "long_rest", "game_kbb", "log_starts"):
        out[f"sp_diff_{col}"] = out[f"sp_home_{col}"] - out[f"sp_away_{col}"]
    lineups = side_columns(lineup_talent(games, marcel_batting(batting)), games, "lu_")
    lineups["lu_diff_woba"] = lineups["lu_home_woba"] - lineups["lu_away_woba"]
    return out.merge(lineups, on="game_id", validate="one_to_one")


def rate_starters(games: pd.DataFrame, lahman_pitching: pd.DataFrame, lahman_batting: pd.DataFrame,
                  pitchers: PitcherFeatures) -> StageOutput:
    feats = build_starter_features(games, lahman_pitching, lahman_batting, pitchers)
    return StageOutput({"starter_features": feats}, {"columns": feats.shape[1] - 1})


def main(cfg) -> ModuleResult:
    """Stage F through the pipeline's runner, as a run does."""
    from utils.runner import run_stage

    return run_stage(cfg, "F")
