"""F · starters: the starting pitcher (`sp_*`), the expected starting nine (`lu_*`) and the game's own
nine where it is known before the first pitch (`nine_*`, the game-time run's: docs/lineups.md).

Game logs have no per-pitcher innings, so a pitcher's previous starts are described by what his
team allowed in them, the decisions and complete games, and his skill in them by the strikeouts
minus walks per batter of the games he started (`game_kbb`, above the league of the season before;
the bullpen's share dilutes it, but it moves with the pitcher within a season, where Lahman cannot
look without leaking). His talent comes from the Lahman lines
of the three seasons before the game's season, each measured against its own league, weighted
5/4/3 (Marcel) and regressed toward the league; a pitcher with no line is taken as DEBUT_PENALTY
runs per nine worse than the league. Lineup talent is the mean Marcel wOBA above the league of the
team's starting nine in its previous game: today's lineup is not known the night before.

Where the play-by-play covers the seasons (`player_games`), each pitcher's and batter's own lines
add his form (`starter_form`) and a rating from every game he played, weighed down by half per
`rating_halflife_days` on his Marcel line (`sp_*_rating_*`, `lu_*_rating`); without lines these
fall back to the Marcel line.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from modules.common import (
    LEAGUE_PRIOR_IP,
    LEAGUE_RUNS,
    above_last_season,
    above_league_so_far,
    as_of_join,
    decayed_at,
    decayed_state,
    empty_player_games,
    from_day,
    lines_of_games,
    pitching_lines,
    rolling_sum,
    side_columns,
)
from utils.config import PitcherFeatures
from utils.engine.stages import ModuleResult, StageOutput

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
REGULAR_GAMES = 10  # a team's recent games behind its regulars: the share of them each of a nine started
REGULAR_STARTS = 3  # starts of those ten that make a batter one of the team's strongest recent nine's candidates
# Where nothing is known, the means of 2016-2019's games: the nine's share of its team's last ten starts
# (0.70), its catcher's (0.52), and the share of a nine with the platoon edge over the starter it faces (0.56).
REGULAR_SHARE, CATCHER_SHARE, PLATOON_SHARE = 0.70, 0.52, 0.56
# each side's nine_{side}_* and their nine_diff_*
NINE_FEATURES = ("woba", "rating", "regulars", "catcher", "platoon", "split", "rest")
DAY_SPAN, GAME_SPAN = 1 << 20, 1 << 20  # key widths: days since 1800 (~82,000) and a team's games (~25,000)
FORM_PRIOR_STARTS = 3  # starts of his Marcel length added to his recent ones
LEAGUE_PITCHES_PER_START = 90.0  # a debutant's "last time out"
WOBA = {"bb": 0.69, "hbp": 0.72, "single": 0.89, "doubles": 1.27, "triples": 1.62, "hr": 2.10}
# A batter's platoon split (wOBA against left-handers less against right-handers) is mostly noise: his
# own is regressed to his side's league split by these plate appearances against left-handers (Tango,
# Lichtman and Dolphin, The Book: about 2,200 for right-handed batters, 1,000 for left-handed ones).
PLATOON_PRIOR_PA = {"R": 2200.0, "L": 1000.0, "B": 2200.0, "?": 2200.0}


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
    out["fip"] = sums["fip_above"] / (sums["ip"] + prior_ip)  # (13 HR + 3 BB - 2 K) / IP: runs a nine, as ERA
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


def woba_value(lines: pd.DataFrame, prefix: str = "b_") -> pd.Series:
    """Each line's wOBA value (WOBA's weights) from its `prefix` counts: b_ all, bl_ against left-handers."""
    stat = {c: lines[f"{prefix}{c}"].astype("float64").fillna(0) for c in ("h", "2b", "3b", "hr", "bb", "ibb", "hp")}
    singles = stat["h"] - stat["2b"] - stat["3b"] - stat["hr"]
    return (WOBA["bb"] * (stat["bb"] - stat["ibb"]) + WOBA["hbp"] * stat["hp"] + WOBA["single"] * singles
            + WOBA["doubles"] * stat["2b"] + WOBA["triples"] * stat["3b"] + WOBA["hr"] * stat["hr"])


def platoon_splits(player_games: pd.DataFrame, bats: pd.Series, targets) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each batter's platoon split for each target season, from every play-by-play season before it
    (a season's lines are all decided before the next begins; a live box score's, with no counts
    against left-handers, are left out): his wOBA value a plate appearance against left-handed
    pitchers less against right-handed ones, regressed to his side's league split by PLATOON_PRIOR_PA
    plate appearances against left-handers. Returns (per (batter, target): `split`, `left_share`: his
    side's share of plate appearances against left-handers; per (side, target): the league's)."""
    targets = sorted({int(t) for t in targets})
    counted = [f"{prefix}{c}" for prefix in ("b_", "bl_") for c in ("pa", "h", "2b", "3b", "hr", "bb", "ibb", "hp")]
    usable = (player_games["bl_pa"].notna() & (player_games["b_pa"].fillna(0) > 0)
              & (player_games["season"] < (max(targets) if targets else 0)))
    batted = player_games.loc[usable, ["season", "player_id", *counted]]  # only what a split reads
    pa, pa_left = batted["b_pa"].astype("float64"), batted["bl_pa"].astype("float64")
    value, value_left = woba_value(batted), woba_value(batted, "bl_")
    per = pd.DataFrame({"batter": batted["player_id"].astype(object), "season": batted["season"].astype("int64"),
                        "pa_l": pa_left, "v_l": value_left, "pa_r": pa - pa_left, "v_r": value - value_left})
    per = per.groupby(["batter", "season"], sort=False).sum().reset_index()
    per["side"] = bats.astype(object).reindex(per["batter"].to_numpy()).fillna("?").to_numpy()
    batters, league = [], []
    for target in targets:
        before = per[per["season"] < target]
        own = before.groupby(["batter", "side"], sort=False)[["pa_l", "v_l", "pa_r", "v_r"]].sum().reset_index()
        sides = own.groupby("side")[["pa_l", "v_l", "pa_r", "v_r"]].sum()
        sides.loc["?"] = own[["pa_l", "v_l", "pa_r", "v_r"]].sum()  # a batter whose side is not known
        lg = pd.DataFrame({"split": sides["v_l"] / sides["pa_l"] - sides["v_r"] / sides["pa_r"],
                           "left_share": sides["pa_l"] / (sides["pa_l"] + sides["pa_r"])}).fillna(0.0)
        league.append(lg.assign(season=target).rename_axis("side").reset_index())
        with np.errstate(divide="ignore", invalid="ignore"):
            observed = own["v_l"] / own["pa_l"] - own["v_r"] / own["pa_r"]
        side = own["side"].astype(object)
        prior = side.map(PLATOON_PRIOR_PA).astype(float).fillna(PLATOON_PRIOR_PA["?"])
        weight = np.where((own["pa_l"] > 0) & (own["pa_r"] > 0), own["pa_l"] / (own["pa_l"] + prior), 0.0)
        mean = side.map(lg["split"]).astype(float).fillna(0.0)
        batters.append(pd.DataFrame({"batter": own["batter"], "season": target,
                                     "split": weight * observed.fillna(0.0) + (1 - weight) * mean,
                                     "left_share": side.map(lg["left_share"]).astype(float).fillna(0.0)}))
    columns = {"batter": object, "season": "int64", "split": float, "left_share": float}
    by_batter = pd.concat(batters, ignore_index=True) if batters else pd.DataFrame(columns=list(columns))
    by_side = pd.concat(league, ignore_index=True) if league else pd.DataFrame(columns=["side", "split", "left_share",
                                                                                         "season"])
    return (by_batter.astype(columns).set_index(["batter", "season"]),
            by_side.astype({"season": "int64"}).set_index(["side", "season"]))


def platoon_gain(ids: pd.DataFrame, season: pd.Series, starter: pd.Series, bats: pd.Series, throws: pd.Series,
                 splits: tuple[pd.DataFrame, pd.DataFrame]) -> np.ndarray:
    """Each row's nine's mean wOBA value a plate appearance against the opposing starter's hand above
    its own overall lines (`platoon_splits`): a batter's line mixes both hands, so against a left-hander
    he gains (1 - left share) x his split and against a right-hander loses left share x it. 0 where the
    starter's hand is not known."""
    by_batter, by_side = splits
    hand = throws.astype(object).reindex(starter.astype(object).to_numpy()).to_numpy(dtype=object)
    year = season.astype("int64").to_numpy()
    gain = np.zeros(ids.shape)
    for j, col in enumerate(ids.columns):
        who = ids[col].astype(object).to_numpy()
        own = by_batter.reindex(pd.MultiIndex.from_arrays([who, year]))
        side = bats.astype(object).reindex(who).fillna("?").to_numpy(dtype=object)
        league = by_side.reindex(pd.MultiIndex.from_arrays([side, year]))
        split, share = (np.nan_to_num(np.where(own[c].isna().to_numpy(), league[c].to_numpy(dtype=float),
                                               own[c].to_numpy(dtype=float))) for c in ("split", "left_share"))
        gain[:, j] = np.where(hand == "L", (1 - share) * split, np.where(hand == "R", -share * split, 0.0))
    return gain.mean(axis=1)


def batting_season(lines: pd.DataFrame) -> pd.DataFrame:
    """Each batter's season so far after each of his games: wOBA value above the league's rate known
    before the game, and plate appearances."""
    batted = lines[lines["played"] & (lines["b_pa"].fillna(0) > 0)]
    above, pa = above_league_so_far(batted["game_season"], batted["result_date"], batted["played"],
                                    woba_value(batted), batted["b_pa"].astype("float64"), LEAGUE_PRIOR_IP * 4.3)
    done = pd.DataFrame({"batter": batted["player_id"], "season": batted["game_season"],
                         "result_date": batted["result_date"], "above": above, "pa": pa})
    done = done.sort_values(["batter", "result_date"], kind="stable")
    done[["season_above", "season_pa"]] = done.groupby(["batter", "season"], sort=False)[["above", "pa"]].cumsum()
    return done


def lineup_talent(games: pd.DataFrame, talent: pd.Series, season_lines: pd.DataFrame | None = None,
                  season_prior_pa: float = 0.0, rating: tuple[float, float] | None = None,
                  since: pd.Timestamp | None = None,
                  hands: tuple[pd.Series, pd.Series] | None = None,
                  splits: tuple[pd.DataFrame, pd.DataFrame] | None = None) -> pd.DataFrame:
    """Each side's expected lineup (its starting nine in its previous game) as mean wOBA above the
    league: each batter's Marcel line, moved by his season so far (`batting_season`, before the
    date) with `season_prior_pa` plate appearances of the Marcel line against his own (`woba`);
    and, with `rating` = (half-life in days, prior plate appearances), moved by every game he batted
    in, each weighed down by half per half-life (`rating`). For the games dated on or after `since`.

    The same of the game's own nine where it is known before the first pitch (a posted lineup; the
    game log's starters for every past game), with how regular it is (`regulars`: the mean share of
    the team's last REGULAR_GAMES games each of the nine started; rested regulars lower it) and its
    catcher's share of those games behind the plate (`catcher`), and with `hands` (batters' sides,
    pitchers' hands by id) its share with the platoon edge over the opposing starter (`platoon`) and, with
    `splits` (platoon_splits), its batters' regressed platoon splits against that starter's hand
    (`split`, platoon_gain), and its rating against its team's strongest recent nine's (`rest`,
    StrongestNine): `nine_*`. A game whose nine is not known takes the expected nine's, each measured as
    of its date and against its starter."""
    rows = []
    lines = season_lines if season_lines is not None and len(season_lines) else None
    history = None if lines is None or rating is None else decayed_state(lines, "batter", ["above", "pa"], rating[0])
    if since is None:
        starts = RecentStarts(games)
    else:
        read = games[_lineups_read(games, since)]
        starts = RecentStarts(games, read["date"].min() if len(read) else since)  # asked from that day on
        games = read
    for side in ("home", "away"):
        ids = games[[f"{side}_lineup_{slot}" for slot in range(1, 10)]]
        season = games["season"].astype("int64")
        values = np.column_stack([
            talent.reindex(pd.MultiIndex.from_arrays([ids[col].astype(object), season])).to_numpy(dtype=float)
            for col in ids.columns])
        values = np.where(np.isnan(values), UNKNOWN_BATTER, values)
        rated = values.copy()
        if lines is not None:
            at = pd.DataFrame({"batter": ids.to_numpy().ravel(), "season": np.repeat(season.to_numpy(), 9),
                               "date": np.repeat(games["date"].to_numpy(), 9)})
            if history is not None:
                decayed = decayed_at(at, history, "batter", ["above", "pa"], rating[0])
                rated = ((values * rating[1] + decayed["above"].to_numpy().reshape(-1, 9))
                         / (rating[1] + decayed["pa"].to_numpy().reshape(-1, 9)))
            so_far = as_of_join(at, lines, ["batter", "season"], ["season_above", "season_pa"])
            above = so_far["season_above"].fillna(0).to_numpy().reshape(-1, 9)
            pa = so_far["season_pa"].fillna(0).to_numpy().reshape(-1, 9)
            values = (values * season_prior_pa + above) / (season_prior_pa + pa) if season_prior_pa > 0 else \
                np.where(pa > 0, above / np.where(pa > 0, pa, 1), values)
        known = ids.notna().all(axis=1).to_numpy()
        team = games[f"{side}_team"]
        other = games["away_starter_id" if side == "home" else "home_starter_id"]
        platoon = platoon_share(ids, other, *hands) if hands is not None else np.full(len(games), PLATOON_SHARE)
        split = platoon_gain(ids, season, other, *hands, splits) if hands is not None and splits is not None \
            else np.zeros(len(games))
        rows.append(pd.DataFrame({"game_id": games["game_id"], "date": games["date"],
                                  "result_date": games["result_date"], "played": games["played"] & known,
                                  "known": known, "team": team, "is_home": side == "home", "opponent_starter": other,
                                  **{f"p{slot}": ids[f"{side}_lineup_{slot}"] for slot in range(1, 10)},
                                  "catcher_id": games[f"{side}_catcher_id"],
                                  "woba": values.mean(axis=1), "rating": rated.mean(axis=1),
                                  "regulars": starts.share(team, ids, games["date"]).mean(axis=1),
                                  "catcher": starts.share(team, games[[f"{side}_catcher_id"]], games["date"],
                                                          catcher=True)[:, 0],
                                  "platoon": platoon, "split": split, "season": season,
                                  "own_starter": games[f"{side}_starter_id"],
                                  **{f"r{slot}": rated[:, slot - 1] for slot in range(1, 10)}}))
    long = pd.concat(rows, ignore_index=True)
    strongest = StrongestNine(long[long["played"]])
    at = from_day(long, since)
    previous = as_of_join(at, long[long["played"]], ["team"], ["woba", "rating"])
    out = pd.DataFrame({"game_id": at["game_id"], "is_home": at["is_home"], "woba": previous["woba"].fillna(0.0)})
    if rating is not None:
        out["rating"] = previous["rating"].fillna(0.0)
    own = at["known"].to_numpy(dtype=bool)
    # a nine not known: the expected one (the previous game's), its woba and rating as lu_*, and how regular
    # it is, its catcher and its platoon edge measured tonight, against tonight's starter
    nine, ratings = [f"p{slot}" for slot in range(1, 10)], [f"r{slot}" for slot in range(1, 10)]
    at = at.assign(rest=strongest.rest(at[nine], at[ratings], at["own_starter"], at["team"], at["date"]))
    stand_in = previous[["woba", "rating"]].assign(regulars=np.nan, catcher=np.nan, platoon=np.nan, split=np.nan,
                                                   rest=np.nan)
    if (~own).any():
        expected_nine = nine
        fill = at[~own]
        who = as_of_join(fill, long[long["played"]], ["team"], expected_nine + ["catcher_id", "own_starter", *ratings])
        stand_in.loc[~own, "rest"] = strongest.rest(who[nine], who[ratings], who["own_starter"], fill["team"],
                                                    fill["date"])
        stand_in.loc[~own, "regulars"] = starts.share(fill["team"], who[expected_nine], fill["date"]).mean(axis=1)
        stand_in.loc[~own, "catcher"] = starts.share(fill["team"], who[["catcher_id"]], fill["date"],
                                                     catcher=True)[:, 0]
        if hands is not None:
            stand_in.loc[~own, "platoon"] = platoon_share(who[expected_nine], fill["opponent_starter"], *hands)
            if splits is not None:
                stand_in.loc[~own, "split"] = platoon_gain(who[expected_nine], fill["season"],
                                                           fill["opponent_starter"], *hands, splits)
    defaults = {"woba": 0.0, "rating": 0.0, "regulars": REGULAR_SHARE, "catcher": CATCHER_SHARE,
                "platoon": PLATOON_SHARE, "split": 0.0, "rest": 0.0}
    for col in defaults:
        out[f"nine_{col}"] = np.where(own, at[col], stand_in[col]).astype(float)
        out[f"nine_{col}"] = out[f"nine_{col}"].fillna(defaults[col])
    return out


def hand_of(lines: pd.DataFrame, column: str) -> pd.Series:
    """retro_id -> a player's side or hand (L, R, B) from A's Lahman lines; empty without the column."""
    if column not in lines.columns:
        return pd.Series(dtype="string")
    known = lines.dropna(subset=[column])
    return known.drop_duplicates("retro_id", keep="last").set_index("retro_id")[column].astype("string")


def platoon_share(ids: pd.DataFrame, starter: pd.Series, bats: pd.Series, throws: pd.Series) -> np.ndarray:
    """Each row's share of its nine with the platoon edge over the opposing starter: a left-handed batter
    against a right-hander, a right-handed one against a left-hander, a switch hitter against either.
    A batter whose side is not known counts half; a starter whose hand is not known gives the mean
    share (PLATOON_SHARE)."""
    def lookup(hand: pd.Series, who: pd.Series) -> np.ndarray:
        return hand.astype(object).reindex(who.astype(object).to_numpy()).to_numpy(dtype=object)

    hand = lookup(throws, starter)
    edge = np.zeros(ids.shape)
    for j, col in enumerate(ids.columns):
        side = lookup(bats, ids[col])
        edge[:, j] = np.where(pd.isna(side), 0.5, (side == "B") | ((side == "L") & (hand == "R"))
                              | ((side == "R") & (hand == "L")))
    return np.where((hand == "L") | (hand == "R"), edge.mean(axis=1), PLATOON_SHARE)


class RecentStarts:
    """Who started each team's recent games: for a player and a day, the share of his team's last
    REGULAR_GAMES games decided before the day that he started (in the lineup, or `catcher`: behind
    the plate). One sorted array of team games and one of starts; each question is a binary search.
    Asked only about days from `first` on, it keeps each team's last REGULAR_GAMES games before it and
    those after (a night's questions need a few weeks of games, not every season's)."""

    def __init__(self, games: pd.DataFrame, first: pd.Timestamp | None = None):
        played = games[games["played"]]
        sides = []
        for side in ("home", "away"):
            sides.append(pd.DataFrame({"team": played[f"{side}_team"].astype("string"),
                                       "result_date": played["result_date"], "date": played["date"],
                                       "game_id": played["game_id"], **{f"p{slot}": played[f"{side}_lineup_{slot}"]
                                                                        for slot in range(1, 10)},
                                       "catcher": played[f"{side}_catcher_id"]}))
        team_games = pd.concat(sides, ignore_index=True)
        if first is not None:
            later = team_games["result_date"] >= first
            earlier = team_games[~later].sort_values(["team", "result_date", "date", "game_id"], kind="stable")
            team_games = pd.concat([earlier.groupby("team", sort=False).tail(REGULAR_GAMES), team_games[later]])
        team_games = team_games.sort_values(["team", "result_date", "date", "game_id"], kind="stable")
        self.teams = pd.Index(team_games["team"].dropna().unique())
        code = self.teams.get_indexer(team_games["team"]).astype("int64")
        self.game_keys = code * DAY_SPAN + _days(team_games["result_date"])
        number = team_games.groupby("team", sort=False).cumcount().to_numpy(dtype="int64")
        slots = [f"p{slot}" for slot in range(1, 10)]
        self.players = pd.Index(pd.concat([team_games[c] for c in [*slots, "catcher"]]).dropna().unique())
        self.start_keys = {}
        for catcher, cols in ((False, slots), (True, ["catcher"])):
            who = np.concatenate([self.players.get_indexer(team_games[c]) for c in cols]).astype("int64")
            mask = who >= 0
            team = np.tile(code, len(cols))[mask]
            self.start_keys[catcher] = np.sort((team * len(self.players) + who[mask]) * GAME_SPAN
                                               + np.tile(number, len(cols))[mask])

    def share(self, team: pd.Series, ids: pd.DataFrame, date: pd.Series, catcher: bool = False) -> np.ndarray:
        """rows x columns of `ids`: each player's share of his team's last REGULAR_GAMES games before `date`
        (NaN where the team has none, or the player is not known)."""
        code = self.teams.get_indexer(team.astype("string")).astype("int64")
        known_team = code >= 0
        code = np.where(known_team, code, 0)
        day = _days(date)
        before = (np.searchsorted(self.game_keys, code * DAY_SPAN + day)
                  - np.searchsorted(self.game_keys, code * DAY_SPAN))
        window = np.minimum(before, REGULAR_GAMES)
        out = np.full(ids.shape, np.nan)
        keys = self.start_keys[catcher]
        for j, col in enumerate(ids.columns):
            named = ids[col].notna().to_numpy()
            who = self.players.get_indexer(ids[col].astype("string")).astype("int64")
            base = (code * len(self.players) + np.maximum(who, 0)) * GAME_SPAN
            count = _search(keys, base + before) - _search(keys, base + before - window)
            # a player the team did not start in those games (or ever): 0, for a known team with games before
            count = np.where(who >= 0, count, 0)
            out[:, j] = np.where(known_team & (before > 0) & named, count / np.maximum(window, 1), np.nan)
        return out


class StrongestNine:
    """A team's strongest recent nine on a day: of the batters who started at least REGULAR_STARTS of its
    last REGULAR_GAMES games decided before the day (its regulars; a starting pitcher who bats starts
    one game in five, so none is one), the best-rated, each by his rating at his latest of those
    starts; fewer candidates than places are filled by the best-rated of its other starters. `rest` is a
    nine's mean rating less that of as many of the strongest as the nine has batters besides its own
    starting pitcher: below 0 where regulars rest.

    `team_games`: lineup_talent's rows of played games with a known nine (team, dates, p1..p9 and their
    ratings r1..r9); asked about a day, it needs the team's last REGULAR_GAMES games before it."""
    CHUNK = 5_000  # questions at a time: each reads up to 90 starts

    def __init__(self, team_games: pd.DataFrame):
        games = team_games.sort_values(["team", "result_date", "date", "game_id"], kind="stable")
        self.teams = pd.Index(games["team"].astype("string").dropna().unique())
        code = self.teams.get_indexer(games["team"].astype("string")).astype("int64")
        self.keys = code * DAY_SPAN + _days(games["result_date"])
        # players as codes (factorized as strings, not as a million Python objects): -1 where not known
        stacked = pd.concat([games[f"p{slot}"].astype("string") for slot in range(1, 10)], ignore_index=True)
        codes, players = pd.factorize(stacked)
        self.players = pd.Index(players)
        self.who = codes.astype("int64").reshape(9, len(games)).T
        self.ratings = games[[f"r{slot}" for slot in range(1, 10)]].to_numpy(dtype=float)

    def mean_of_best(self, team: pd.Series, date: pd.Series, size: np.ndarray) -> np.ndarray:
        """Per question: the mean rating of the `size` strongest (NaN where the team has no game before)."""
        code = self.teams.get_indexer(team.astype("string")).astype("int64")
        known = code >= 0
        code = np.where(known, code, 0)
        end = np.searchsorted(self.keys, code * DAY_SPAN + _days(date))
        start = np.searchsorted(self.keys, code * DAY_SPAN)
        out = np.full(len(code), np.nan)
        if not len(self.keys):
            return out
        recent = np.arange(REGULAR_GAMES)
        for first in range(0, len(code), self.CHUNK):
            part = slice(first, first + self.CHUNK)
            n = len(code[part])
            games = end[part, None] - REGULAR_GAMES + recent  # the last REGULAR_GAMES games, oldest first
            valid = (games >= start[part, None]) & known[part, None]
            games = np.where(valid, games, 0)
            who, rating = self.who[games], self.ratings[games]  # questions x games x slots
            take = np.broadcast_to(valid[:, :, None], who.shape) & (who >= 0)
            question = np.broadcast_to(np.arange(n)[:, None, None], who.shape)[take]
            order = np.broadcast_to(recent[None, :, None], who.shape)[take]
            who, rating = who[take], rating[take]
            if not len(who):
                continue
            # each (question, player): starts, and his rating at the latest (the last of a sorted run)
            by = np.argsort((question * len(self.players) + who) * REGULAR_GAMES + order, kind="stable")  # one key
            question, who, rating = question[by], who[by], rating[by]
            last = np.r_[(question[1:] != question[:-1]) | (who[1:] != who[:-1]), True]
            starts = np.diff(np.r_[-1, np.flatnonzero(last)])
            question, rating = question[last], rating[last]
            regular = starts >= REGULAR_STARTS
            # per question: regulars first, best first (np.lexsort's order, by two stable sorts instead of three)
            by = np.argsort(-rating, kind="stable")
            by = by[np.argsort((question * 2 + ~regular)[by], kind="stable")]
            question, rating = question[by], rating[by]
            rank = np.arange(len(question)) - np.searchsorted(question, question)
            keep = rank < size[part][question]
            total = np.bincount(question[keep], weights=rating[keep], minlength=n)
            count = np.bincount(question[keep], minlength=n)
            out[part] = np.where(count > 0, total / np.maximum(count, 1), np.nan)
        return out

    def rest(self, ids: pd.DataFrame, ratings: pd.DataFrame, own_starter: pd.Series, team: pd.Series,
             date: pd.Series) -> np.ndarray:
        """Each nine's mean rating (without its own starting pitcher, where he bats) less its team's
        strongest recent nine's of the same size; NaN where either is not known."""
        pitcher = pd.Series(own_starter.astype("string").array, index=ids.index)  # row by row, not by label
        batters = np.column_stack([(ids[col].notna() & ids[col].astype("string").ne(pitcher).fillna(True)).to_numpy(
            dtype=bool) for col in ids.columns])
        values = ratings.to_numpy(dtype=float)
        size = batters.sum(axis=1)
        mean = np.where(size > 0, np.where(batters, values, 0.0).sum(axis=1) / np.maximum(size, 1), np.nan)
        return mean - self.mean_of_best(team, date, size)


def _search(keys: np.ndarray, needles: np.ndarray) -> np.ndarray:
    """np.searchsorted(keys, needles), the needles looked up in sorted order: a walk through a million
    keys instead of random jumps, the same positions about three times faster."""
    needles = np.asarray(needles)
    order = np.argsort(needles, kind="stable")
    found = np.empty(len(needles), dtype=np.intp)
    found[order] = np.searchsorted(keys, needles[order])
    return found


def _days(dates: pd.Series) -> np.ndarray:
    """Days since 1800 of a datetime column (a team-game key's time part)."""
    return ((dates.astype("datetime64[ns]") - pd.Timestamp("1800-01-01")).dt.days).to_numpy(dtype="int64")


def _lineups_read(games: pd.DataFrame, since: pd.Timestamp) -> pd.Series:
    """The games whose lineups the rows dated on or after `since` read: those games, the games whose
    results come on or after it, the games of each team's last day before it whose lineup is known
    (its previous game, for a row before any other of these), and each team's last REGULAR_GAMES such
    games (its strongest recent nine's)."""
    events = {}
    for side in ("home", "away"):
        known = games[[f"{side}_lineup_{slot}" for slot in range(1, 10)]].notna().all(axis=1)
        events[side] = games["played"] & known & (games["result_date"] < since)
    before = pd.concat([games.loc[events[side], [f"{side}_team", "result_date", "date", "game_id"]]
                       .set_axis(["team", "result_date", "date", "game_id"], axis=1) for side in events])
    last = before.groupby("team")["result_date"].max()
    need = (games["date"] >= since) | (games["result_date"] >= since)
    for side in events:
        need |= events[side] & (games["result_date"] == games[f"{side}_team"].map(last))
    recent = before.sort_values(["team", "result_date", "date", "game_id"], kind="stable").groupby(
        "team", sort=False).tail(REGULAR_GAMES)
    need |= games["game_id"].isin(recent["game_id"])
    return need.fillna(False)


def starter_form(starts: pd.DataFrame, pitched: pd.DataFrame, prior: pd.DataFrame, p: PitcherFeatures) -> pd.DataFrame:
    """Each start's pitcher's own form from his lines before the date: FIP and K-BB over his last
    `form_starts` starts and this season, shrunk toward his Marcel line by `form_prior_ip` innings;
    his usual length lately, his pitches last time out and the days since he last pitched at all."""
    done = pitched[pitched["played"] & pitched["started"]].sort_values(["pitcher", "result_date", "date"],
                                                                       kind="stable").copy()
    cols = ["fip_above", "ip", "kbb_above", "bf", "outs"]
    for col in cols:
        done[f"last_{col}"] = rolling_sum(done, "pitcher", col, p.form_starts)
        done[f"season_{col}"] = done.groupby(["pitcher", "season"], sort=False)[col].cumsum()
    done["last_pitches"] = done["pitches"]
    done["last_starts"] = done.groupby("pitcher", sort=False).cumcount().clip(upper=p.form_starts - 1) + 1
    known = starts["pitcher"].notna()
    state = as_of_join(starts[known], done, ["pitcher"], [f"last_{c}" for c in cols] + ["last_pitches",
                                                                                          "last_starts"])
    season = as_of_join(starts[known], done, ["pitcher", "season"], [f"season_{c}" for c in cols])
    seen = pitched[pitched["played"]]
    appeared = as_of_join(starts[known], seen.assign(last_day=seen["appear_date"]), ["pitcher"], ["last_day"])
    state, season = state.reindex(starts.index), season.reindex(starts.index)
    appeared = appeared.reindex(starts.index)
    prior_ip, prior_bf = p.form_prior_ip, p.form_prior_ip * BATTERS_PER_INNING
    out = pd.DataFrame(index=starts.index)
    for view, frame in (("form", state), ("season", season)):
        sums = {col: frame[f"{'last' if view == 'form' else 'season'}_{col}"].fillna(0) for col in cols}
        # FIP above the league, in runs a nine innings (the Marcel prior's scale)
        out[f"{view}_fip"] = (sums["fip_above"] + prior["fip"] * prior_ip) / (sums["ip"] + prior_ip)
        out[f"{view}_kbb"] = (sums["kbb_above"] + prior["kbb"] * prior_bf) / (sums["bf"] + prior_bf)
    n = state["last_starts"].fillna(0)
    ip_per_start = state["last_outs"].fillna(0) / 3
    out["form_ip_per_gs"] = ((ip_per_start + prior["ip_per_gs"] * FORM_PRIOR_STARTS)
                             / (n + FORM_PRIOR_STARTS)).clip(*IP_PER_START_RANGE)
    out["form_runs_saved"] = -out["form_fip"] / 9 * out["form_ip_per_gs"]
    # His rating: every game he pitched, each weighted down by half every rating_halflife_days, on his Marcel line
    seen_sorted = seen.sort_values(["pitcher", "result_date"], kind="stable")
    rated = ["fip_above", "ip", "kbb_above", "bf"]
    history = decayed_state(seen_sorted, "pitcher", rated, p.rating_halflife_days)
    decayed = decayed_at(starts[known], history, "pitcher", rated, p.rating_halflife_days).reindex(starts.index)
    rating_ip, rating_bf = p.rating_prior_ip, p.rating_prior_ip * BATTERS_PER_INNING
    out["rating_fip"] = ((decayed["fip_above"].fillna(0) + prior["fip"] * rating_ip)
                         / (decayed["ip"].fillna(0) + rating_ip))
    out["rating_kbb"] = (decayed["kbb_above"].fillna(0) + prior["kbb"] * rating_bf) / (decayed["bf"].fillna(0)
                                                                                         + rating_bf)
    out["last_pitches"] = state["last_pitches"].fillna(LEAGUE_PITCHES_PER_START)
    out["days_since_pitched"] = ((starts["date"] - appeared["last_day"]).dt.days.astype(float)
                                 .clip(upper=NO_START_REST).fillna(NO_START_REST))
    return out


def build_starter_features(games: pd.DataFrame, lahman: pd.DataFrame, batting: pd.DataFrame,
                           p: PitcherFeatures, player_games: pd.DataFrame | None = None,
                           since: pd.Timestamp | None = None) -> pd.DataFrame:
    """Per game (dated on or after `since`), both starters' features, both expected lineups' and both
    nines' (`lineup_talent`)."""
    throws, bats = hand_of(lahman, "throws"), hand_of(batting, "bats")
    lahman, batting = lahman.drop(columns="throws", errors="ignore"), batting.drop(columns="bats", errors="ignore")
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
    at = from_day(starts, since)
    known = at["pitcher"].notna()
    state = as_of_join(at[known], done, ["pitcher"], cols).reindex(at.index)
    feats = pd.DataFrame({"game_id": at["game_id"], "is_home": at["is_home"]})
    feats["known"] = known.astype(float)
    feats["starts"] = state["career_starts"].fillna(0)
    # Experience: a starter with few starts is worse than his regressed Marcel line says (the
    # pitchers who stay get the starts), by diminishing steps.
    feats["log_starts"] = np.log1p(feats["starts"])
    feats["rest_days"] = (at["date"] - state["last_start"]).dt.days.astype(float).clip(upper=NO_START_REST)
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
        pd.MultiIndex.from_arrays([at["pitcher"].astype(object), at["season"].astype("int64")]))
    feats["prior_ip"] = prior["ip"].fillna(0).to_numpy()
    feats["prior_fip"] = prior["fip"].fillna(DEBUT_PENALTY).to_numpy()
    feats["prior_era"] = prior["era"].fillna(DEBUT_PENALTY).to_numpy()
    feats["prior_kbb"] = prior["kbb"].fillna(DEBUT_KBB).to_numpy()
    feats["prior_ip_per_gs"] = prior["ip_per_gs"].fillna(LEAGUE_IP_PER_START).to_numpy()
    # Runs a start saves against a league-average starter over the innings he usually pitches.
    feats["runs_saved"] = (-(FIP_WEIGHT * feats["prior_fip"] + ERA_WEIGHT * feats["prior_era"]) / 9
                           * feats["prior_ip_per_gs"])
    lines = lines_of_games(player_games if player_games is not None else empty_player_games(), games)
    form = starter_form(at, pitching_lines(lines), feats.rename(columns=lambda c: c.removeprefix("prior_")), p)
    feats[form.columns] = form
    rows = from_day(games, since)
    out = side_columns(feats, rows, "sp_")
    for col in ("prior_fip", "prior_era", "prior_kbb", "prior_ip_per_gs", "runs_saved", "recent_runs_allowed",
                "rest_days", "long_rest", "game_kbb", "log_starts", *form.columns):
        out[f"sp_diff_{col}"] = out[f"sp_home_{col}"] - out[f"sp_away_{col}"]
    splits = platoon_splits(player_games if player_games is not None else empty_player_games(), bats,
                            rows["season"].unique())
    lineups = side_columns(lineup_talent(games, marcel_batting(batting), batting_season(lines), p.season_prior_pa,
                                         (p.rating_halflife_days, p.batter_rating_prior_pa), since, (bats, throws),
                                         splits),
                           rows, "lu_")
    lineups["lu_diff_woba"] = lineups["lu_home_woba"] - lineups["lu_away_woba"]
    lineups["lu_diff_rating"] = lineups["lu_home_rating"] - lineups["lu_away_rating"]
    # the game's own nine (the confirmed lineups' features): renamed from lu_{side}_nine_* to nine_{side}_*
    lineups = lineups.rename(columns={f"lu_{side}_nine_{col}": f"nine_{side}_{col}" for side in ("home", "away")
                                      for col in NINE_FEATURES})
    for side in ("home", "away"):  # how far the posted nine is from the expected one
        lineups[f"nine_{side}_rating_change"] = lineups[f"nine_{side}_rating"] - lineups[f"lu_{side}_rating"]
    for col in NINE_FEATURES:
        lineups[f"nine_diff_{col}"] = lineups[f"nine_home_{col}"] - lineups[f"nine_away_{col}"]
    return out.merge(lineups, on="game_id", validate="one_to_one")


def rate_starters(games: pd.DataFrame, lahman_pitching: pd.DataFrame, lahman_batting: pd.DataFrame,
                  player_games: pd.DataFrame, pitchers: PitcherFeatures,
                  since: pd.Timestamp | None = None) -> StageOutput:
    feats = build_starter_features(games, lahman_pitching, lahman_batting, pitchers, player_games, since)
    return StageOutput({"starter_features": feats}, {"columns": feats.shape[1] - 1})


def main(cfg) -> ModuleResult:
    """Stage F through the pipeline's runner, as a run does, holding the artifacts root's run lock."""
    from modules.registry import REGISTRY
    from utils.engine.one_stage import run_alone

    return run_alone(cfg, REGISTRY["F"])
