"""F · starting pitchers (`sp_*`): the starter's previous starts, rest, and prior-season Lahman line.

Game logs have no per-pitcher innings, so a start is described by what the team allowed in it,
the game's decisions and whether he finished it; the prior season's Lahman line gives ERA, FIP,
K and BB per inning, regressed toward the league by innings so a debutant gets the league mean.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from modules.common import as_of_join, side_columns
from modules.registry import ModuleResult
from utils.artifacts import ArtifactStore

FIP_CONSTANT = 3.10
LEAGUE_RUNS = 4.5  # runs a team allows a game, the prior for a starter with few starts
NO_START_REST = 30.0


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
        }))
    return pd.concat(sides, ignore_index=True)


def prior_season_lines(lahman: pd.DataFrame, regress_ip: float) -> pd.DataFrame:
    """Per (retro_id, season S): the S-1 line as rates, regressed toward that season's league rates."""
    lines = lahman.astype({c: "float64" for c in lahman.columns if c not in ("retro_id", "season")}).fillna(0)
    ip = lines["ip_outs"] / 3
    league = lines.groupby("season")[["ip_outs", "er", "hr", "bb", "hbp", "so"]].sum()
    league_ip = league["ip_outs"] / 3
    rates = {
        "era": 9 * league["er"] / league_ip,
        "fip": (13 * league["hr"] + 3 * (league["bb"] + league["hbp"]) - 2 * league["so"]) / league_ip + FIP_CONSTANT,
        "k_per_ip": league["so"] / league_ip,
        "bb_per_ip": league["bb"] / league_ip,
    }
    raw = {
        "era": 9 * lines["er"] / ip.replace(0, np.nan),
        "fip": (13 * lines["hr"] + 3 * (lines["bb"] + lines["hbp"]) - 2 * lines["so"]) / ip.replace(0, np.nan)
               + FIP_CONSTANT,
        "k_per_ip": lines["so"] / ip.replace(0, np.nan),
        "bb_per_ip": lines["bb"] / ip.replace(0, np.nan),
    }
    out = pd.DataFrame({"retro_id": lines["retro_id"], "season": lines["season"].astype("int64") + 1,
                        "prior_ip": ip})
    for name, value in raw.items():
        mean = lines["season"].map(rates[name])
        out[f"prior_{name}"] = (value.fillna(mean) * ip + mean * regress_ip) / (ip + regress_ip)
    return out, {name: rate for name, rate in rates.items()}


def build_pitcher_features(games: pd.DataFrame, lahman: pd.DataFrame, recent: int, regress_ip: float) -> pd.DataFrame:
    starts = starts_table(games)
    starts = starts.sort_values(["pitcher", "result_date", "date", "game_id"], kind="stable").reset_index(drop=True)
    done = starts[starts["played"] & starts["pitcher"].notna()].copy()
    grouped = done.groupby("pitcher", sort=False)
    for col in ("runs_allowed", "won", "lost", "complete", "team_won"):
        done[f"recent_{col}"] = grouped[col].transform(lambda s: s.rolling(recent, min_periods=1).mean())
    done["career_starts"] = grouped.cumcount() + 1
    done["last_start"] = done["date"]
    cols = [c for c in done.columns if c.startswith("recent_")] + ["career_starts", "last_start"]
    known = starts["pitcher"].notna()
    state = as_of_join(starts[known], done, ["pitcher"], cols)
    state = state.reindex(starts.index)
    feats = pd.DataFrame({"game_id": starts["game_id"], "is_home": starts["is_home"]})
    feats["known"] = known.astype(float)
    feats["starts"] = state["career_starts"].fillna(0)
    feats["rest_days"] = (starts["date"] - state["last_start"]).dt.days.astype(float).clip(upper=NO_START_REST)
    feats["rest_days"] = feats["rest_days"].fillna(NO_START_REST)
    for col in ("runs_allowed", "won", "lost", "complete", "team_won"):
        # Fixed priors: a mean over the table would include results after the game (a leak the tests catch).
        default = {"runs_allowed": LEAGUE_RUNS, "complete": 0.0, "team_won": 0.5}.get(col, 0.3)
        # Few starts: shrink the recent mean toward the default by two pseudo-starts.
        n = feats["starts"].clip(upper=recent)
        feats[f"recent_{col}"] = (state[f"recent_{col}"].fillna(default) * n + default * 2) / (n + 2)
    prior, league_rates = prior_season_lines(lahman, regress_ip)
    merged = starts[["pitcher", "season"]].astype({"season": "int64"}).merge(
        prior, how="left", left_on=["pitcher", "season"], right_on=["retro_id", "season"])
    feats["prior_ip"] = merged["prior_ip"].fillna(0).to_numpy()
    last = max(league_rates["era"].index) if len(league_rates["era"]) else None
    for name, rate in league_rates.items():
        fallback = starts["season"].astype("int64").sub(1).map(rate)
        if last is not None:
            fallback = fallback.fillna(rate[last])
        feats[f"prior_{name}"] = merged[f"prior_{name}"].fillna(pd.Series(fallback.to_numpy())).to_numpy()
    out = side_columns(feats, games, "sp_")
    for col in ("prior_fip", "prior_era", "recent_runs_allowed", "rest_days"):
        out[f"sp_diff_{col}"] = out[f"sp_home_{col}"] - out[f"sp_away_{col}"]
    return out


def main(cfg) -> ModuleResult:
    store = ArtifactStore.from_config(cfg)
    p = cfg.features.pitchers
    feats = build_pitcher_features(store.read_frame("games"), store.read_frame("lahman_pitching"),
                                   p.recent_starts, p.prior_ip_regress)
    return ModuleResult([store.write_frame("pitcher_features", feats)], metrics={"columns": feats.shape[1] - 1})
