"""Feature builders on tiny hand-made games; each expected value is worked out in a comment."""
import math
import re

import numpy as np
import pandas as pd
import pytest

from modules.b_clean import game_number, late_innings
from modules.c_context import build_context
from modules.common import LEAGUE_RUNS, as_of_join
from modules.d_team_form import build_team_form
from modules.f_starters import game_kbb
from modules.g_ratings import build_ratings, elo_probability, mov_multiplier
from modules.h_matchup import build_matchup, streaks
from modules.i_assemble import AssemblyError, assemble
from utils.config import MatchupFeatures, PitcherFeatures


def games_frame(rows):
    """rows: (date, game_number, home, away, home_score, away_score) -> a minimal games table."""
    out = []
    for date, number, home, away, hs, as_ in rows:
        played = hs is not None
        out.append({
            "game_id": f"{home}{date.replace('-', '')}{number}", "date": pd.Timestamp(date),
            "result_date": pd.Timestamp(date) if played else pd.NaT, "season": int(date[:4]),
            "game_number": number, "home_team": home, "away_team": away, "park_id": f"{home}01",
            "home_team_raw": home, "away_team_raw": away,
            "played": played, "is_neutral": False, "home_score": hs, "away_score": as_,
            "home_win": None if not played else int(hs > as_), "home_pitchers_used": 3 if played else None,
            "away_pitchers_used": 4 if played else None, "home_starter_id": f"{home.lower()}p", "away_starter_id":
            f"{away.lower()}p", "day_night": "N", "scheduled_innings": 9, "home_league": "AL", "away_league": "AL",
            # half of each side's runs came from the seventh inning on, in three innings batted
            "home_bat_late_runs": hs // 2 if played else None, "away_bat_late_runs": as_ // 2 if played else None,
            "home_bat_late_innings": 3 if played else None, "away_bat_late_innings": 3 if played else None,
        })
    frame = pd.DataFrame(out)
    for col in ("home_score", "away_score", "home_win", "home_pitchers_used", "away_pitchers_used",
                "home_bat_late_runs", "away_bat_late_runs", "home_bat_late_innings", "away_bat_late_innings"):
        frame[col] = frame[col].astype("Int64")
    frame["season"] = frame["season"].astype("Int64")
    frame["game_number"] = frame["game_number"].astype("Int64")
    return frame


def test_as_of_join_takes_the_last_state_strictly_before_the_date():
    events = pd.DataFrame({"team": ["A", "A", "A"], "result_date": pd.to_datetime(["2024-05-01", "2024-05-02",
                                                                                    "2024-05-02"]),
                           "total": [1, 2, 3]})
    at = pd.DataFrame({"team": ["A", "A", "A", "B"], "date": pd.to_datetime(["2024-05-01", "2024-05-02",
                                                                              "2024-05-03", "2024-05-03"])})
    got = as_of_join(at, events, ["team"], ["total"])["total"].tolist()
    # 05-01: nothing before; 05-02: the 05-01 state; 05-03: the last of the two 05-02 events; B: nothing
    assert got[1:3] == [1, 3] and math.isnan(got[0]) and math.isnan(got[3])


def test_as_of_join_keeps_rows_of_a_frame_in_any_index_order():
    """A caller that sorted its frame (index labels out of order) gets each row its own state back."""
    events = pd.DataFrame({"team": ["A", "B"], "result_date": pd.to_datetime(["2024-05-01", "2024-05-01"]),
                           "total": [10, 20]})
    at = pd.DataFrame({"team": ["A", "B", "A"], "date": pd.to_datetime(["2024-05-02"] * 3)},
                      index=[7, 3, 5])
    got = as_of_join(at, events, ["team"], ["total"])
    assert got.index.tolist() == [7, 3, 5] and got["total"].tolist() == [10, 20, 10]


def test_doubleheader_second_game_does_not_see_the_first():
    games = games_frame([("2024-05-01", 0, "BOS", "NYA", 5, 1),
                         ("2024-05-02", 1, "BOS", "NYA", 10, 0),
                         ("2024-05-02", 2, "BOS", "NYA", None, None)])
    form = build_team_form(games, window=10, long_window=30, halflife=8, regress_games=0, pythag_exponent=2)
    by_id = form.set_index("game_id")
    # both games on 05-02 see only the 05-01 game: BOS scored 5, allowed 1
    assert by_id.loc["BOS202405021", "form_home_rf_10"] == by_id.loc["BOS202405022", "form_home_rf_10"] == 5
    assert by_id.loc["BOS202405022", "form_home_win_pct_reg"] == 1.0
    # the season's first game has no earlier game: the league prior
    assert by_id.loc["BOS202405010", "form_home_rf_10"] == LEAGUE_RUNS
    assert by_id.loc["BOS202405010", "form_home_pythag"] == pytest.approx(0.5)


def test_season_stats_restart_but_rolling_form_carries_over():
    games = games_frame([("2023-09-30", 0, "BOS", "NYA", 8, 0), ("2024-04-01", 0, "BOS", "NYA", None, None)])
    row = build_team_form(games, 10, 30, 8, 25, 2).set_index("game_id").loc["BOS202404010"]
    assert row["form_home_season_games"] == 0 and row["form_home_win_pct_reg"] == 0.5  # new season, prior only
    assert row["form_home_rf_10"] == 8  # rolling form reaches back into earlier seasons


def test_elo_by_hand():
    games = games_frame([("2024-04-01", 0, "BOS", "NYA", 3, 2), ("2024-04-02", 0, "BOS", "NYA", None, None)])
    games["is_neutral"] = False
    ratings = build_ratings(games, k=4, home_advantage=24, reversion=1 / 3, initial=1500, mov=True).set_index("game_id")
    # both start at 1500; home wins by 1 with a 24-point edge:
    expected = 1 / (1 + 10 ** (-24 / 400))
    shift = 4 * math.log(2) * 2.2 / (24 * 0.001 + 2.2) * (1 - expected)
    assert ratings.loc["BOS202404010", "elo_p_home"] == pytest.approx(expected)
    assert ratings.loc["BOS202404020", "elo_home_pre"] == pytest.approx(1500 + shift)
    assert ratings.loc["BOS202404020", "elo_away_pre"] == pytest.approx(1500 - shift)
    assert mov_multiplier(1, 0) == pytest.approx(math.log(2))
    assert elo_probability(0) == 0.5


def test_elo_reverts_a_third_between_seasons():
    games = games_frame([("2023-04-01", 0, "BOS", "NYA", 10, 0), ("2024-04-01", 0, "BOS", "NYA", None, None)])
    r = build_ratings(games, k=4, home_advantage=0, reversion=1 / 3, initial=1500, mov=False).set_index("game_id")
    gain = 4 * 0.5  # even match, no margin factor
    assert r.loc["BOS202404010", "elo_home_pre"] == pytest.approx(1500 + gain * 2 / 3)


def test_streaks_signed_and_reset_by_team():
    win = pd.Series([1, 1, 0, np.nan, 0, 1])
    team = pd.Series(["A", "A", "A", "A", "A", "B"])
    assert streaks(win, team).tolist() == [1, 2, -1, -1, -2, 1]


def test_bullpen_and_head_to_head():
    games = games_frame([("2024-05-01", 0, "BOS", "NYA", 5, 1), ("2024-05-02", 0, "BOS", "NYA", 1, 2),
                         ("2024-05-05", 0, "BOS", "NYA", None, None)])
    mu = build_matchup(games, MatchupFeatures(bullpen_days=3)).set_index("game_id").loc["BOS202405050"]
    # relievers = pitchers used - 1: BOS used 3 (2 relievers) on 05-02, inside the 3 days before 05-05;
    # the 05-01 game is 4 days back
    assert mu["mu_home_bullpen_3d"] == 2 and mu["mu_home_bullpen_1d"] == 0
    assert mu["mu_h2h_games"] == 2 and mu["mu_h2h_home_win_pct"] == pytest.approx((1 + 1) / (2 + 2))
    assert mu["mu_home_streak"] == -1 and mu["mu_away_streak"] == 1


def test_bullpen_quality_uses_late_innings_before_the_date_against_last_seasons_league():
    games = games_frame([("2023-09-01", 0, "BOS", "NYA", 8, 2), ("2023-09-02", 0, "NYA", "BOS", 4, 6),
                         ("2024-05-01", 0, "BOS", "NYA", 3, 6), ("2024-05-02", 0, "BOS", "NYA", 9, 0),
                         ("2024-05-03", 0, "BOS", "NYA", None, None)])
    mu = build_matchup(games, MatchupFeatures(bullpen_games=160, bullpen_prior_innings=0.0)).set_index("game_id")
    rate_2023 = (4 + 1 + 2 + 3) / 12  # late runs / late innings of the four 2023 sides
    # 2023 has no earlier league to measure against: nobody's bullpen has a figure before 2024's games
    assert mu.loc["BOS202405010", "mu_home_bullpen_ra9"] == 0
    # BOS allowed NYA's late runs: 3 on 05-01 (the 05-02 game is not known before 05-02)
    assert mu.loc["BOS202405020", "mu_home_bullpen_ra9"] == pytest.approx(9 * (3 - 3 * rate_2023) / 3)
    # By 05-03 both 2024 games count: 3 + 0 late runs against BOS in six innings; NYA allowed 1 + 4
    at = mu.loc["BOS202405030"]
    assert at["mu_home_bullpen_ra9"] == pytest.approx(9 * (3 - 6 * rate_2023) / 6)
    assert at["mu_away_bullpen_ra9"] == pytest.approx(9 * (5 - 6 * rate_2023) / 6)
    assert at["mu_bullpen_ra9_diff"] == pytest.approx(at["mu_home_bullpen_ra9"] - at["mu_away_bullpen_ra9"])


def test_line_score_late_innings():
    runs, innings = late_innings(pd.Series(["010000200", "00024000x", "000000001(10)0", "0100", "01a", None]))
    assert runs[:4].tolist() == [2, 0, 11, 0] and innings[:4].tolist() == [3, 2, 5, 0]
    assert np.isnan(runs[4:]).all() and np.isnan(innings[4:]).all()  # malformed or missing: not counted


def test_late_innings_fast_path_agrees_with_reading_each_inning_in_turn():
    """Mixed one-digit, two-digit "(10)", "x" and broken line scores, in random order: every game's
    late runs and innings are what walking its innings from the seventh on gives."""
    rng = np.random.default_rng(5)
    tokens = ["0"] * 12 + ["1", "2", "3", "9", "(10)", "(12)", "x"]
    texts = ["".join(rng.choice(tokens, rng.integers(0, 13))) for _ in range(3000)] + ["", "12a4", "(x)", None]
    runs, innings = late_innings(pd.Series(texts, dtype="string"))
    for text, r, n in zip(texts, runs, innings):
        if text is None or text == "" or text in ("12a4", "(x)"):
            assert np.isnan(r) and np.isnan(n), text
            continue
        late = re.findall(r"\((\d+)\)|(\d)|(x)", text)[6:]
        assert (r, n) == (sum(int(a or b) for a, b, x in late if not x), sum(not x for _, _, x in late)), text


def test_game_kbb_measures_each_start_against_the_previous_seasons_league():
    starts = pd.DataFrame({"season": pd.array([2023, 2023, 2024, 2024], dtype="Int64"),
                           "played": [True, True, True, False], "opp_pa": [40.0, 38.0, 40.0, np.nan],
                           "opp_kbb": [6.0, 4.0, 10.0, np.nan]})
    got = game_kbb(starts)
    # 2023 has no earlier league: its starts count nothing; 2024 is measured against 2023's 10/78;
    # a game not played yet counts nothing either
    assert got["kbb_pa"].tolist() == [0, 0, 40, 0] and got["kbb_above"].iloc[[0, 1, 3]].tolist() == [0, 0, 0]
    assert got["kbb_above"].iloc[2] == pytest.approx(10 - 40 * 10 / 78)


def test_context_rest_and_load():
    games = games_frame([("2024-05-01", 0, "BOS", "NYA", 5, 1), ("2024-05-02", 0, "NYA", "BOS", 1, 2),
                         ("2024-05-06", 0, "BOS", "NYA", None, None)])
    ctx = build_context(games).set_index("game_id").loc["BOS202405060"]
    assert ctx["ctx_home_rest_days"] == 4 and ctx["ctx_home_games_last7"] == 2
    assert ctx["ctx_home_park_changed"] == 1  # last game was at NYA01
    assert ctx["ctx_home_tz_shift"] == 0 and ctx["ctx_home_field"] == 1


def test_three_team_doubleheader_codes():
    assert game_number(pd.Series(["0", "1", "2", "A", "B"])).tolist() == [0, 1, 2, 1, 2]


def test_assembly_refuses_a_column_made_twice_or_outside_its_prefix():
    games = games_frame([("2024-05-01", 0, "BOS", "NYA", 5, 1)])
    games = games.assign(is_forfeit=False, is_tie=False)
    ctx = pd.DataFrame({"game_id": games["game_id"], "ctx_rest": [1.0]})
    with pytest.raises(AssemblyError, match="column 'ctx_rest' is made by both context_features and matchup_features"):
        assemble(games, {"context_features": ctx, "matchup_features": ctx})
    with pytest.raises(AssemblyError, match="matchup_features: column 'ctx_rest' lacks the module's prefix 'mu_'"):
        assemble(games, {"matchup_features": ctx})
    with pytest.raises(AssemblyError, match="no row for 1 game"):
        assemble(games, {"context_features": ctx.iloc[:0]})
    table = assemble(games, {"context_features": ctx})
    assert table.loc[0, "ctx_rest"] == 1.0 and table.loc[0, "home_win"] == 1


def player_lines(rows):
    """rows: (date, team, opponent, is_home, player, started, outs, batters, strikeouts, walks, home runs,
    pitches, saves) -> player_games rows (pitchers only)."""
    from utils.sources.events import COLUMNS, COUNTS, VS_LEFT

    out = []
    for date, team, opp, home, player, gs, outs, tbf, so, bb, hr, pitches, sv in rows:
        row = {c: 0 for c in [*COUNTS.values(), *VS_LEFT.values()]}
        row.update(season=int(date[:4]), event_game_id=f"{team if home else opp}{date.replace('-', '')}0",
                   date=pd.Timestamp(date), game_number=0, appear_date=pd.Timestamp(date), team=team, opponent=opp,
                   is_home=home, player_id=player, slot=0, seq=1, p_g=1, p_gs=gs, p_out=outs, p_tbf=tbf, p_so=so,
                   p_bb=bb, p_hr=hr, p_pitch=pitches, p_sv=sv)
        out.append(row)
    frame = pd.DataFrame(out)[COLUMNS]
    return frame.astype({c: "Int16" for c in ["season", "game_number", "slot", "seq", *COUNTS.values(),
                                              *VS_LEFT.values()]}).astype(
        {"date": "datetime64[ms]", "appear_date": "datetime64[ms]"})


def test_a_starter_s_form_moves_from_his_prior_by_his_own_earlier_starts():
    from modules.common import lines_of_games, pitching_lines
    from modules.f_starters import starter_form

    dates = ["2024-05-01", "2024-05-06", "2024-05-11"]
    games = games_frame([(d, 0, "BOS", "NYA", 3, 2) for d in dates] + [("2024-05-16", 0, "BOS", "NYA", None, None)])
    # BOS's starter strikes out ten of 24 a start; NYA's walks three and gives up two home runs
    lines = player_lines([(d, "BOS", "NYA", True, "bosp", 1, 18, 24, 10, 0, 0, 95, 0) for d in dates]
                         + [(d, "NYA", "BOS", False, "nyap", 1, 15, 24, 2, 3, 2, 101, 0) for d in dates])
    pitched = pitching_lines(lines_of_games(lines, games))
    starts = games[["date", "season"]].assign(pitcher="bosp")
    starts = pd.concat([starts, games[["date", "season"]].assign(pitcher="nyap")], ignore_index=True)
    prior = pd.DataFrame({"fip": 0.0, "kbb": 0.0, "ip_per_gs": 4.5}, index=starts.index)
    form = starter_form(starts, pitched, prior, PitcherFeatures(form_prior_ip=30.0))
    home, away = form.iloc[:4], form.iloc[4:].set_axis(range(4))
    # the first game: no earlier start, his prior; afterwards, his own lines pull him apart from the other
    assert home.loc[0, "form_kbb"] == 0 and home.loc[0, "form_fip"] == 0 and home.loc[0, "last_pitches"] == 90
    assert (home.loc[2:, "form_kbb"] > 0).all() and (away.loc[2:, "form_kbb"] < 0).all()
    assert (home.loc[2:, "form_fip"] < away.loc[2:, "form_fip"]).all()
    # each takes only starts before his date: the third game knows two starts, the fourth three
    assert abs(home.loc[3, "form_kbb"]) > abs(home.loc[2, "form_kbb"])
    assert home.loc[3, "last_pitches"] == 95 and home.loc[3, "days_since_pitched"] == 5
    assert home.loc[3, "form_ip_per_gs"] > 4.5  # six innings a start, above his prior's 4.5


def test_bullpen_fatigue_and_the_closer_from_relievers_lines():
    games = games_frame([("2024-05-01", 0, "BOS", "NYA", 3, 2), ("2024-05-02", 0, "BOS", "NYA", 4, 1),
                         ("2024-05-03", 0, "BOS", "NYA", None, None), ("2024-05-05", 0, "BOS", "NYA", None, None)])
    lines = player_lines([
        ("2024-05-01", "BOS", "NYA", True, "bosc", 0, 3, 4, 2, 0, 0, 15, 1),   # the closer saves the first
        ("2024-05-02", "BOS", "NYA", True, "bosc", 0, 3, 3, 1, 0, 0, 12, 1),   # and the second
        ("2024-05-02", "BOS", "NYA", True, "bosm", 0, 6, 9, 1, 2, 1, 40, 0),   # a middle man's 40 pitches
        ("2024-05-02", "NYA", "BOS", False, "nyar", 0, 6, 8, 2, 1, 0, 30, 0),
    ])
    mu = build_matchup(games, MatchupFeatures(bullpen_days=3), lines).set_index("game_id")
    third, fifth = mu.loc["BOS202405030"], mu.loc["BOS202405050"]
    assert third["mu_home_pen_pitches_1d"] == 52 and third["mu_away_pen_pitches_1d"] == 30
    assert third["mu_home_pen_pitches_3d"] == 67
    assert third["mu_home_closer_pitched_1d"] == 1 and third["mu_away_closer_pitched_1d"] == 0
    assert fifth["mu_home_pen_pitches_1d"] == 0 and fifth["mu_home_closer_pitched_1d"] == 0
    assert fifth["mu_home_pen_pitches_3d"] == 52  # 05-02 is inside the three days before 05-05


def test_the_closer_s_day_before_ignores_a_game_whose_result_comes_later():
    """A game suspended on 05-02 and completed on 05-03: the closer pitched on 05-02, but a night of
    05-03 cannot know it (that game's lines arrive with its result), so neither may its training row."""
    games = games_frame([("2024-05-01", 0, "BOS", "NYA", 3, 2), ("2024-05-02", 0, "BOS", "NYA", 4, 1),
                         ("2024-05-03", 0, "BOS", "NYA", None, None)])
    games.loc[games["game_id"] == "BOS202405020", "result_date"] = pd.Timestamp("2024-05-03")
    lines = player_lines([("2024-05-01", "BOS", "NYA", True, "bosc", 0, 3, 4, 2, 0, 0, 15, 1),
                          ("2024-05-02", "BOS", "NYA", True, "bosc", 0, 3, 3, 1, 0, 0, 12, 0)])
    mu = build_matchup(games, MatchupFeatures(), lines).set_index("game_id")
    assert mu.loc["BOS202405030", "mu_home_closer_pitched_1d"] == 0
    games.loc[games["game_id"] == "BOS202405020", "result_date"] = pd.Timestamp("2024-05-02")  # an ordinary game
    assert build_matchup(games, MatchupFeatures(), lines).set_index("game_id").loc[
        "BOS202405030", "mu_home_closer_pitched_1d"] == 1


def test_the_marcel_prior_puts_fip_and_era_on_the_same_runs_a_nine_scale():
    from modules.f_starters import marcel_pitching

    # One season, two pitchers of 90 innings: the league's FIP part is (13*20 + 3*60 - 2*160) / 180 = 0.6667.
    # "ace": 5 HR, 20 BB, 100 SO: (65 + 60 - 200) / 90 = -0.8333, 1.5 runs a nine better than the league.
    # His ERA: 20 ER in 90 innings is 2.0 against the league's 60 in 180 (3.0): 1.0 better.
    lahman = pd.DataFrame({"retro_id": ["ace", "bum"], "season": [2023, 2023], "ip_outs": [270, 270],
                           "er": [20, 40], "hr": [5, 15], "bb": [20, 40], "hbp": [0, 0], "so": [100, 60],
                           "bfp": [360, 400], "gs": [15, 15]})
    prior = marcel_pitching(lahman, regress_ip=0.0).loc[("ace", 2024)]
    assert prior["fip"] == pytest.approx(-1.5)  # not nine times it: runs_saved weighs FIP 0.7 to ERA's 0.3
    assert prior["era"] == pytest.approx(-1.0)
    # his innings count 5 times (the last season's weight), and so do the league's added: 90 more halve both
    regressed = marcel_pitching(lahman, regress_ip=90.0).loc[("ace", 2024)]
    assert regressed["fip"] == pytest.approx(-0.75) and regressed["era"] == pytest.approx(-0.5)


def test_the_platoon_share_counts_the_batters_with_the_edge_over_the_starter_they_face():
    from modules.f_starters import PLATOON_SHARE, platoon_share

    bats = pd.Series({"l1": "L", "l2": "L", "r1": "R", "s1": "B"}, dtype="string")
    throws = pd.Series({"lefty": "L", "righty": "R"}, dtype="string")
    nine = ["l1", "l2", "r1", "s1", "r1", "r1", "l1", "l2", "nobody"]  # 4 L, 3 R, a switch hitter, one unknown
    ids = pd.DataFrame([nine, nine, nine], columns=[f"home_lineup_{s}" for s in range(1, 10)], dtype="string")
    share = platoon_share(ids, pd.Series(["righty", "lefty", "debutant"], dtype="string"), bats, throws)
    # a right-hander: the four lefties and the switch hitter have the edge, the unknown counts half
    assert share[0] == pytest.approx(5.5 / 9)
    # a left-hander: the three righties and the switch hitter
    assert share[1] == pytest.approx(4.5 / 9)
    # a starter whose hand is not known: the league's share
    assert share[2] == PLATOON_SHARE


def test_a_batter_s_platoon_split_is_his_own_regressed_to_his_side_s_from_seasons_before_the_target():
    from modules.f_starters import PLATOON_PRIOR_PA, WOBA, platoon_gain, platoon_splits
    from utils.sources.events import COLUMNS

    def line(season, player, pa, pa_left, hr, hr_left):
        row = dict.fromkeys(COLUMNS[1:], 0)
        row.update(season=season, player_id=player, b_pa=pa, b_h=hr, b_hr=hr, bl_pa=pa_left, bl_h=hr_left,
                   bl_hr=hr_left)
        return row

    # "righty" (bats R) homers in 30 of 100 plate appearances against lefties and 30 of 300 against
    # righties over 2020-2021; "lefty" (bats L) in 10 of 50 against lefties and 60 of 200 against righties
    rows = [line(2020, "righty", 200, 50, 30, 15), line(2021, "righty", 200, 50, 30, 15),
            line(2021, "lefty", 250, 50, 70, 10),
            line(2022, "righty", 500, 500, 0, 0)]  # his 2022 says nothing about 2022's split
    player_games = pd.DataFrame(rows)
    player_games.loc[len(player_games)] = {**line(2021, "boxed", 100, 0, 5, 0), "bl_pa": None}  # a live box score
    bats = pd.Series({"righty": "R", "lefty": "L"})
    by_batter, by_side = platoon_splits(player_games, bats, [2021, 2022])
    hr = WOBA["hr"]
    # the league's splits before 2022: right-handed batters 0.30 - 0.10, left-handed 0.20 - 0.30 homers a PA
    assert by_side.loc[("R", 2022), "split"] == pytest.approx(hr * (0.30 - 0.10))
    assert by_side.loc[("L", 2022), "split"] == pytest.approx(hr * (0.20 - 0.30))
    assert by_side.loc[("R", 2022), "left_share"] == pytest.approx(100 / 400)
    # his own split equals his side's here, so regressing leaves it; "lefty" likewise
    assert by_batter.loc[("righty", 2022), "split"] == pytest.approx(hr * 0.20)
    # before 2021 only 2020 counts: 15 of 50 against lefties, 15 of 150 against righties
    assert by_batter.loc[("righty", 2021), "split"] == pytest.approx(hr * (0.30 - 0.10))
    assert ("lefty", 2021) not in by_batter.index and ("boxed", 2022) not in by_batter.index
    # a batter whose split differs from his side's is pulled toward it by PLATOON_PRIOR_PA against lefties
    skewed = pd.concat([player_games, pd.DataFrame([line(2021, "odd", 400, 100, 0, 0)])], ignore_index=True)
    split = platoon_splits(skewed, pd.concat([bats, pd.Series({"odd": "R"})]), [2022])[0].loc[("odd", 2022), "split"]
    league = platoon_splits(skewed, pd.concat([bats, pd.Series({"odd": "R"})]), [2022])[1].loc[("R", 2022), "split"]
    weight = 100 / (100 + PLATOON_PRIOR_PA["R"])
    assert split == pytest.approx(weight * 0.0 + (1 - weight) * league)
    # against a left-handed starter the nine gains (1 - left share) x its splits, against a right-hander
    # it loses left share x them; a batter with no history takes his side's league split
    nine = pd.DataFrame([["righty"] * 8 + ["rookie"]] * 3, columns=[f"p{s}" for s in range(1, 10)])
    throws = pd.Series({"lhp": "L", "rhp": "R"})
    gain = platoon_gain(nine, pd.Series([2022] * 3), pd.Series(["lhp", "rhp", "unknown"]),
                        pd.concat([bats, pd.Series({"rookie": "L"})]), throws, (by_batter, by_side))
    share_r, share_l = by_side.loc[("R", 2022), "left_share"], by_side.loc[("L", 2022), "left_share"]
    assert gain[0] == pytest.approx((8 * (1 - share_r) * hr * 0.2 + (1 - share_l) * hr * -0.1) / 9)
    assert gain[1] == pytest.approx((8 * -share_r * hr * 0.2 + -share_l * hr * -0.1) / 9)
    assert gain[2] == 0.0


def test_looking_up_needles_in_sorted_order_finds_what_searchsorted_finds():
    from modules.f_starters import _search

    rng = np.random.default_rng(7)
    keys = np.sort(rng.integers(0, 500, 2_000))  # many ties: each needle's leftmost position
    needles = rng.integers(-10, 510, 5_000)
    assert np.array_equal(_search(keys, needles), np.searchsorted(keys, needles))
    assert _search(keys, needles[:0]).shape == (0,)


def test_the_strongest_recent_nine_is_the_best_rated_of_the_regulars_and_a_rested_star_lowers_rest():
    from modules.f_starters import REGULAR_GAMES, StrongestNine

    regulars = [f"b{i}" for i in range(1, 10)]  # b1 rated 0.09 ... b9 0.01; "star" 0.20 starts 3 of the last 10
    rating = {f"b{i}": (10 - i) / 100 for i in range(1, 10)} | {"star": 0.20, "sub": -0.05, "pitcher": -0.30}
    rows = []
    for day in range(1, 13):  # twelve games; the star plays games 10-12 instead of b9, the sub once instead of b8
        nine = regulars.copy()
        if day >= 10:
            nine[8] = "star"
        if day == 5:
            nine[7] = "sub"
        rows.append({"team": "BOS", "game_id": f"g{day}", "date": pd.Timestamp(2024, 5, day),
                     "result_date": pd.Timestamp(2024, 5, day),
                     **{f"p{s}": nine[s - 1] for s in range(1, 10)},
                     **{f"r{s}": rating[nine[s - 1]] for s in range(1, 10)}})
    strongest = StrongestNine(pd.DataFrame(rows))
    ask = pd.DataFrame([regulars[:8] + ["sub"], regulars[:8] + ["pitcher"], regulars[:8] + ["star"]],
                       columns=[f"p{s}" for s in range(1, 10)])
    ratings = ask.apply(lambda col: col.map(rating)).set_axis([f"r{s}" for s in range(1, 10)], axis=1)
    on = pd.Series([pd.Timestamp(2024, 5, 13)] * 3)
    rest = strongest.rest(ask, ratings, pd.Series([None, "pitcher", None], dtype="string"),
                          pd.Series(["BOS"] * 3), on)
    # the last ten games (3-12): the star started 3 (a regular), b9 seven, the sub one (not one)
    best = sorted([rating["star"]] + [rating[b] for b in regulars], reverse=True)
    assert REGULAR_GAMES == 10
    assert rest[0] == pytest.approx((sum(rating[b] for b in regulars[:8]) + rating["sub"]) / 9 - sum(best[:9]) / 9)
    # a batting starting pitcher is left out of both: eight of the nine against the strongest eight
    assert rest[1] == pytest.approx(sum(rating[b] for b in regulars[:8]) / 8 - sum(best[:8]) / 8)
    # the strongest nine itself rests nobody
    assert rest[2] == pytest.approx(0.0)
    # before game 12 the star has started two of the last ten: not yet a regular, b9 is
    early = strongest.rest(ask.iloc[[2]], ratings.iloc[[2]], pd.Series([None], dtype="string"), pd.Series(["BOS"]),
                           pd.Series([pd.Timestamp(2024, 5, 12)]))
    assert early[0] == pytest.approx(rating["star"] / 9 - rating["b9"] / 9)
    # a team with no game before the day: not known
    assert np.isnan(strongest.rest(ask.iloc[[0]], ratings.iloc[[0]], pd.Series([None], dtype="string"),
                                   pd.Series(["NYA"]), on.iloc[[0]])[0])
