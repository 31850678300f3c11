"""D · team form (`form_*`): rolling and EWM runs, regressed season win%, Pythagorean expectation."""
from __future__ import annotations

import numpy as np
import pandas as pd

from modules.common import LEAGUE_RUNS, as_of_join, from_day, side_columns, team_games
from utils.config import FormFeatures
from utils.engine.stages import ModuleResult, StageOutput


def build_team_form(games: pd.DataFrame, window: int, long_window: int, halflife: float, regress_games: float,
                    pythag_exponent: float, since: pd.Timestamp | None = None) -> pd.DataFrame:
    """Per game (dated on or after `since`), each side's form from games whose results were known
    before the game's date."""
    everything = team_games(games)
    done = everything[everything["played"]].copy()
    by_team = done.groupby("team", sort=False)
    for name, source in (("rf", "runs_for"), ("ra", "runs_against")):
        done[f"{name}_{window}"] = by_team[source].transform(lambda s: s.rolling(window, min_periods=1).mean())
        done[f"{name}_{long_window}"] = by_team[source].transform(lambda s: s.rolling(long_window,
                                                                                      min_periods=1).mean())
        done[f"{name}_ewm"] = by_team[source].transform(lambda s: s.ewm(halflife=halflife).mean())
    done[f"win_rate_{window}"] = by_team["win"].transform(lambda s: s.fillna(0.5).rolling(window, min_periods=1).mean())
    by_season = done.groupby(["team", "season"], sort=False)
    done["s_games"] = by_season.cumcount() + 1
    done["s_wins"] = by_season["win"].cumsum()
    done["s_rf"] = by_season["runs_for"].cumsum()
    done["s_ra"] = by_season["runs_against"].cumsum()
    rolling_cols = [c for c in done.columns if c.startswith(("rf_", "ra_", "win_rate"))]
    season_cols = ["s_games", "s_wins", "s_rf", "s_ra"]
    long = from_day(everything, since)
    state = pd.concat([as_of_join(long, done, ["team"], rolling_cols),
                       as_of_join(long, done, ["team", "season"], season_cols)], axis=1)
    feats = pd.DataFrame({"game_id": long["game_id"], "is_home": long["is_home"]})
    for col in rolling_cols:
        feats[col] = state[col].fillna(LEAGUE_RUNS if col.startswith(("rf", "ra")) else 0.5)
    played = state["s_games"].fillna(0)
    feats["season_games"] = played
    # With no games and no regression there is nothing to go on: 0.5, not 0/0.
    feats["win_pct_reg"] = ((state["s_wins"].fillna(0) + 0.5 * regress_games) / (played + regress_games)).fillna(0.5)
    rf = state["s_rf"].fillna(0) + LEAGUE_RUNS * regress_games
    ra = state["s_ra"].fillna(0) + LEAGUE_RUNS * regress_games
    feats["pythag"] = (rf**pythag_exponent / (rf**pythag_exponent + ra**pythag_exponent)).fillna(0.5)
    feats["run_diff_pg"] = (state["s_rf"].fillna(0) - state["s_ra"].fillna(0)) / np.maximum(played, 1)
    out = side_columns(feats, from_day(games, since), "form_")
    for col in ("win_pct_reg", "pythag", f"rf_{window}", f"ra_{window}", "rf_ewm", "ra_ewm"):
        out[f"form_diff_{col}"] = out[f"form_home_{col}"] - out[f"form_away_{col}"]
    return out


def measure_form(games: pd.DataFrame, form: FormFeatures, since: pd.Timestamp | None = None) -> StageOutput:
    feats = build_team_form(games, form.window, form.long_window, form.ewm_halflife, form.regress_games,
                            form.pythag_exponent, since)
    return StageOutput({"team_form_features": feats}, {"columns": feats.shape[1] - 1})


def main(cfg) -> ModuleResult:
    """Stage D through the pipeline's runner, as a run does, holding the artifacts root's run lock."""
    from modules.registry import REGISTRY
    from utils.engine.one_stage import run_alone

    return run_alone(cfg, REGISTRY["D"])
