"""The DAG as data: stage id -> its pure function, the artifacts it reads and writes, its parameters.

Like a Kedro node, each entry names a function (`package.module:function`), the artifacts passed to
it by name, the config keys bound to its other arguments and the artifacts it returns. One runner
(`utils.engine.one_stage.run_stage`) loads the inputs, calls the function, validates and writes the outputs
together, and records what they were made from; the Prefect flow, the legacy executor, the dry run,
the drawings, dvc.yaml, the README's DAG map and the viewer are all drawn from this table. Functions
are imported only when a stage runs, so planning never pays for pandas, LightGBM or Prefect.
"""
from __future__ import annotations

from utils.engine.stages import ModuleSpec, Registry

# The player_games columns F reads (keys, batting lines and those against lefties, the pitching it
# rates): a night loads these alone, about 40% less of the largest input
STARTER_LINE_COLUMNS = ("season", "date", "game_number", "appear_date", "team", "is_home", "player_id",
                        *(f"{prefix}{stat}" for prefix in ("b_", "bl_")
                          for stat in ("pa", "h", "2b", "3b", "hr", "bb", "ibb", "hp")),
                        "p_g", "p_gs", "p_sv", "p_out", "p_tbf", "p_hr", "p_bb", "p_ibb", "p_hp", "p_so", "p_pitch")
# H reads the pitching lines (the relievers' work); E the runs charged to each side's pitchers
RELIEF_LINE_COLUMNS = ("date", "game_number", "appear_date", "team", "is_home", "player_id",
                       "p_g", "p_gs", "p_sv", "p_out", "p_tbf", "p_hr", "p_bb", "p_ibb", "p_hp", "p_so", "p_pitch")
COVERAGE_LINE_COLUMNS = ("season", "date", "game_number", "team", "is_home", "player_id", "p_r")

REGISTRY = Registry([
    ModuleSpec("A", "ingest", "modules.a_ingest:ingest", (),
               ("raw_gamelogs", "quarantine", "lahman_pitching", "lahman_batting", "schedule", "player_games",
                "player_ids"),
               "Retrosheet game logs (161 typed fields) and, for a season not published yet, the Stats API's "
               "completed games; every player's line from the play-by-play or the box scores; Lahman pitching and "
               "batting lines; the as-of date's schedule; the MLBAM-Retrosheet id mapping used",
               params={"as_of": "run.as_of", "retrosheet": "sources.retrosheet", "schedule": "sources.schedule",
                       "live": "sources.live", "data": "data", "train_seasons": "model.train_seasons",
                       "lineups": "run.lineups"},
               resources={"download_cache": "cache:retrosheet", "parse_cache": "cache:parsed",
                          "statsapi_cache": "cache:statsapi", "retry": "config:sources.retry"},
               external=("the game logs", "the play-by-play", "Lahman", "the Stats API")),
    ModuleSpec("B", "clean", "modules.b_clean:clean", ("raw_gamelogs", "schedule"), ("games",),
               "one row a game: game_id, franchise-normalised teams, forfeit/suspended/tie/neutral flags",
               params={"franchise_map": "data.franchise_map", "neutral_parks": "data.neutral_parks"}),
    ModuleSpec("C", "context", "modules.c_context:describe_context", ("games",), ("context_features",),
               "ctx_*: park, day/night, rest, doubleheader, travel", history=("games",), history_key="game_id"),
    ModuleSpec("D", "team_form", "modules.d_team_form:measure_form", ("games",), ("team_form_features",),
               "form_*: rolling and EWM runs, regressed win%, Pythagorean expectation",
               params={"form": "features.form"}, history=("games",), history_key="game_id"),
    ModuleSpec("E", "quality", "modules.e_quality:check_quality",
               ("games", "quarantine", "player_games", "player_ids"),
               ("data_quality_report",),
               "coverage (game logs and play-by-play), duplicates, nulls, quarantined lines, anomalies (read by the "
               "viewer only)",
               orphan=True, input_columns={"player_games": COVERAGE_LINE_COLUMNS}),
    ModuleSpec("F", "starters", "modules.f_starters:rate_starters",
               ("games", "lahman_pitching", "lahman_batting", "player_games"), ("starter_features",),
               "sp_*: starting pitcher's form from his own lines, rest, Marcel-weighted Lahman line; lu_*: lineup "
               "talent; nine_*: the posted nine's talent, regulars, catcher, platoon edge and splits",
               params={"pitchers": "features.pitchers"}, history=("games", "player_games"), history_key="game_id",
               input_columns={"player_games": STARTER_LINE_COLUMNS}),
    ModuleSpec("G", "ratings", "modules.g_ratings:rate_teams", ("games", "starter_features"), ("team_ratings",),
               "elo_*: pre-game team Elo and a starter-adjusted rating (the baseline model)",
               params={"elo": "features.elo"}),
    ModuleSpec("H", "matchup", "modules.h_matchup:describe_matchups", ("games", "player_games"),
               ("matchup_features",), "mu_*: bullpen quality and fatigue from relievers' lines, head-to-head, streaks",
               params={"matchup": "features.matchup"}, history=("games", "player_games"), history_key="game_id",
               input_columns={"player_games": RELIEF_LINE_COLUMNS}),
    ModuleSpec("I", "assemble", "modules.i_assemble:assemble_table",
               ("games", "context_features", "team_form_features", "starter_features", "team_ratings",
                "matchup_features"),
               ("model_table",), "keys, labels and every namespaced feature; refuses name clashes"),
    ModuleSpec("J", "reserved", description="reserved: skipped on purpose", reserved=True),
    ModuleSpec("K", "train", "modules.k_train:train", ("model_table",),
               ("win_model", "home_runs_model", "away_runs_model", "model_params", "model_card", "drift_baseline"),
               "LightGBM win classifier + Poisson run models, calibrated; candidates compared in the card; "
               "each feature's normal drift",
               params={"as_of": "run.as_of", "model": "model", "psi_bins": "monitoring.psi_bins",
                       "drift_config": "monitoring.drift", "lineups": "run.lineups"},
               resources={"cache": "cache:drift", "fits": "cache:models", "keep_fits": "config:run.reuse_history"},
               plan_note="modules.k_train:describe_fit"),
    ModuleSpec("L", "predict_monitor", "modules.l_predict_monitor:predict_and_monitor",
               ("model_table", "win_model", "home_runs_model", "away_runs_model", "model_params", "model_card",
                "drift_baseline", "schedule"),
               ("predictions", "predictions_csv", "predictions_json", "prediction_log", "evaluation", "drift_report",
                "drift_history"),
               "predictions for the as-of date (also as CSV and JSON, with names), evaluation of earlier ones "
               "against their noise, drift scores and the sources' health",
               params={"as_of": "run.as_of", "lineups": "run.lineups"}, resources={"input_hashes": "input_hashes"},
               appends=("prediction_log", "drift_history")),
])
