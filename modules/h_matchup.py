"""H · matchup and situation (`mu_*`): bullpen load and quality, head-to-head this season, streaks.

Bullpen quality is what the line scores say: runs allowed per nine from the seventh inning on
over the team's last `bullpen_games` games, above the league of the season before (a season's own
rate would include games after the date), with `bullpen_prior_innings` of league pitching added.
Where the play-by-play covers the season, relievers' own lines add their FIP (`pen_fip`), their
pitches over the last one and `bullpen_days` days, and whether the closer pitched yesterday.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from modules.common import (
    above_last_season,
    as_of_join,
    empty_player_games,
    from_day,
    lines_of_games,
    pitching_lines,
    rolling_sum,
    side_columns,
    team_games,
)
from utils.config import MatchupFeatures
from utils.engine.stages import ModuleResult, StageOutput


def streaks(win: pd.Series, team: pd.Series) -> pd.Series:
    """Signed run of wins (+) or losses (-) after each game; a tie ends nothing and extends nothing."""
    out = np.zeros(len(win))
    last_team, current = None, 0.0
    for i, (t, w) in enumerate(zip(team.to_numpy(), win.to_numpy())):
        if t != last_team:
            last_team, current = t, 0.0
        if w == 1:
            current = current + 1 if current > 0 else 1
        elif w == 0:
            current = current - 1 if current < 0 else -1
        out[i] = current
    return pd.Series(out, index=win.index)


def late_runs_allowed(long: pd.DataFrame, games: pd.DataFrame) -> pd.DataFrame:
    """Per team-game: runs and innings the other side batted from the seventh on, the runs above
    the previous season's league rate, and the innings that count (none without such a rate)."""
    columns = [f"{batting}_bat_late_{name}" for name in ("runs", "innings") for batting in ("home", "away")]
    by_id = games.set_index("game_id")[columns].reindex(long["game_id"])  # one lookup of the keys, not four
    home = long["is_home"].to_numpy()
    frame = pd.DataFrame({"season": long["season"]}, index=long.index)
    for name in ("runs", "innings"):
        side = {batting: by_id[f"{batting}_bat_late_{name}"].to_numpy(dtype="float64", na_value=np.nan)
                for batting in ("home", "away")}
        frame[name] = np.where(home, side["away"], side["home"])  # what the other side batted
    above, innings = above_last_season(frame["season"], long["played"], frame["runs"], frame["innings"])
    return pd.DataFrame({"late_above": above, "late_innings": innings})


def relief_lines(long: pd.DataFrame, pitched: pd.DataFrame) -> pd.DataFrame:
    """Per team-game (rows of `long`): its relievers' FIP above the league's rate known before the
    game (pitching_lines), the innings that count, and their pitches (0 for a game with no play-by-play)."""
    relief = pitched[~pitched["started"]]
    sums = relief.groupby(["game_id", "is_home"])[["fip_above", "ip", "pitches"]].sum()
    at = pd.MultiIndex.from_arrays([long["game_id"], long["is_home"]])
    out = sums.reindex(at).fillna(0).set_axis(long.index)
    return out.rename(columns={"fip_above": "pen_fip_above", "ip": "pen_ip", "pitches": "pen_pitches"})


def closers(long: pd.DataFrame, pitched: pd.DataFrame) -> pd.DataFrame:
    """After each save, each team's closer: the reliever with the most saves for it this season."""
    team = long.set_index(["game_id", "is_home"])["team"]
    saved = pitched[~pitched["started"] & (pitched["saves"].fillna(0) > 0) & pitched["played"]]
    saved = saved.assign(team=team.reindex(pd.MultiIndex.from_arrays([saved["game_id"], saved["is_home"]])).to_numpy())
    saved = saved.dropna(subset=["team"]).sort_values(["team", "season", "result_date"], kind="stable")
    rows, leader, counts, key = [], None, {}, None
    for t, season, day, pitcher in saved[["team", "season", "result_date", "pitcher"]].itertuples(index=False):
        if (t, season) != key:
            key, counts, leader = (t, season), {}, None
        counts[pitcher] = counts.get(pitcher, 0) + 1
        if leader is None or counts[pitcher] > counts[leader]:
            leader = pitcher
        rows.append((t, season, day, leader))
    return pd.DataFrame(rows, columns=["team", "season", "result_date", "closer"])


def build_matchup(games: pd.DataFrame, m: MatchupFeatures, player_games: pd.DataFrame | None = None,
                  since: pd.Timestamp | None = None) -> pd.DataFrame:
    """Per game (dated on or after `since`), each side's bullpen, streak and head-to-head record."""
    bullpen_days = m.bullpen_days
    long = team_games(games)
    long[["late_above", "late_innings"]] = late_runs_allowed(long, games)
    pitched = pitching_lines(lines_of_games(player_games if player_games is not None else empty_player_games(),
                                            games))
    long[["pen_fip_above", "pen_ip", "pen_pitches"]] = relief_lines(long, pitched)
    done = long[long["played"]].copy()
    for col in ("late_above", "late_innings", "pen_fip_above", "pen_ip"):
        done[f"{col}_sum"] = rolling_sum(done, "team", col, m.bullpen_games)
    done["pen_pitches_cum"] = done.groupby("team")["pen_pitches"].cumsum()
    done["relievers"] = (done["pitchers_used"] - 1).clip(lower=0).fillna(0)
    done["relievers_cum"] = done.groupby("team")["relievers"].cumsum()
    done["streak"] = streaks(done["win"], done["team"])
    at = from_day(long, since)
    feats = pd.DataFrame({"game_id": at["game_id"], "is_home": at["is_home"]})
    now = as_of_join(at, done, ["team"], ["relievers_cum", "streak"])
    pen_now = as_of_join(at, done, ["team"], ["pen_pitches_cum", "pen_fip_above_sum", "pen_ip_sum"])
    for days in sorted({1, bullpen_days}):
        then = as_of_join(at.assign(date=at["date"] - pd.Timedelta(days=days)), done, ["team"],
                          ["relievers_cum", "pen_pitches_cum"])
        feats[f"bullpen_{days}d"] = now["relievers_cum"].fillna(0) - then["relievers_cum"].fillna(0)
        feats[f"pen_pitches_{days}d"] = pen_now["pen_pitches_cum"].fillna(0) - then["pen_pitches_cum"].fillna(0)
    feats["pen_fip"] = (pen_now["pen_fip_above_sum"].fillna(0) / (pen_now["pen_ip_sum"].fillna(0)
                                                                   + m.bullpen_prior_innings)).fillna(0)
    closer = as_of_join(at, closers(long, pitched), ["team", "season"], ["closer"])["closer"]
    # the day he pitched, of a game whose result was known that day (a suspended game's first part is not
    # known until its completion, and a night before that completion cannot see it)
    relief = pitched[pitched["played"] & ~pitched["started"]]
    yesterday = relief[(relief["result_date"] <= relief["appear_date"])
                       & relief["pitcher"].isin(closer.dropna().astype(str).unique().tolist())]  # closers' days only
    pitched_days = set(zip(yesterday["pitcher"], yesterday["appear_date"] + pd.Timedelta(days=1)))
    feats["closer_pitched_1d"] = [float((c, d) in pitched_days) for c, d in zip(closer, at["date"])]
    feats["streak"] = now["streak"].fillna(0)
    late = as_of_join(at, done, ["team"], ["late_above_sum", "late_innings_sum"])
    feats["bullpen_ra9"] = (9 * late["late_above_sum"].fillna(0)
                            / (late["late_innings_sum"].fillna(0) + m.bullpen_prior_innings)).fillna(0)
    h2h = done.assign(h2h_games=done.groupby(["team", "opponent", "season"]).cumcount() + 1,
                      h2h_wins=done.groupby(["team", "opponent", "season"])["win"].cumsum())
    vs = as_of_join(at, h2h, ["team", "opponent", "season"], ["h2h_games", "h2h_wins"])
    out = side_columns(feats, from_day(games, since), "mu_")
    home_rows = at["is_home"].to_numpy()
    home_vs = vs[home_rows].set_axis(at.loc[home_rows, "game_id"]).reindex(out["game_id"])
    out["mu_h2h_games"] = home_vs["h2h_games"].fillna(0).to_numpy()
    out["mu_h2h_home_win_pct"] = ((home_vs["h2h_wins"].fillna(0) + 1) / (home_vs["h2h_games"].fillna(0) + 2)).to_numpy()
    out["mu_bullpen_diff"] = out[f"mu_home_bullpen_{bullpen_days}d"] - out[f"mu_away_bullpen_{bullpen_days}d"]
    out["mu_bullpen_ra9_diff"] = out["mu_home_bullpen_ra9"] - out["mu_away_bullpen_ra9"]
    for col in ("pen_fip", f"pen_pitches_{bullpen_days}d", "pen_pitches_1d", "closer_pitched_1d"):
        out[f"mu_{col}_diff"] = out[f"mu_home_{col}"] - out[f"mu_away_{col}"]
    return out


def describe_matchups(games: pd.DataFrame, player_games: pd.DataFrame, matchup: MatchupFeatures,
                      since: pd.Timestamp | None = None) -> StageOutput:
    feats = build_matchup(games, matchup, player_games, since)
    return StageOutput({"matchup_features": feats}, {"columns": feats.shape[1] - 1})


def main(cfg) -> ModuleResult:
    """Stage H through the pipeline's runner, as a run does, holding the artifacts root's run lock."""
    from modules.registry import REGISTRY
    from utils.engine.one_stage import run_alone

    return run_alone(cfg, REGISTRY["H"])
