"""L · predict and monitor: the as-of date's predictions, the prediction log, the evaluation of
earlier predictions against their noise, and the drift report (each feature against its normal,
the sources' health) with its history."""
from __future__ import annotations

import datetime as dt
import hashlib
import logging

import numpy as np
import pandas as pd

from modules.b_clean import game_number
from modules.models import TrainedModels, predict, trained_models
from utils.engine.stages import ModuleResult, StageOutput
from utils.monitoring import drift
from utils.monitoring.drift import psi
from utils.monitoring.evaluation import calibration_table, calibration_test, run_metrics, standard_errors, win_metrics
from utils.sources.common import posted_nine
from utils.store.artifacts import ArtifactStore, csv_text, json_text
from utils.store.catalog import ArtifactError

log = logging.getLogger("mlb.l_predict_monitor")


def drift_report(models: TrainedModels, baseline: dict, table: pd.DataFrame, as_of: dt.date,
                 history: pd.DataFrame | None) -> tuple[dict, pd.DataFrame]:
    """Each watched feature's 30-day PSI and tonight's shift, each over its normal (utils/monitoring/drift.py),
    with the highest score of the week before (a break is new when that stayed low); the PSI of
    p_home_win against the validation's. Also tonight's rows of the drift history."""
    last, tonight = drift.window(table, as_of)
    scores = drift.score(drift.measure(models.reference["features"], last, tonight), baseline, len(last))
    before = drift.recent_max(history, as_of)
    features = {name: {**s, **{f"{view}_recent_max": before.get((name, view)) for view in drift.VIEWS}}
                for name, s in scores.items()}
    ranked = [(s[f"{view}_score"], name, view) for name, s in features.items() for view in drift.VIEWS
              if s[f"{view}_score"] is not None]
    top = max(ranked, default=(None, None, None))
    prediction = psi(models.reference["p_home_win"], models.p_home_win(last)) if len(last) else None
    report = {
        "as_of": as_of.isoformat(),
        "window": {"first": (pd.Timestamp(as_of) - pd.Timedelta(days=drift.WINDOW_DAYS - 1)).date().isoformat(),
                   "last": as_of.isoformat(), "games": int(len(last)), "tonight_games": int(len(tonight))},
        "baseline": {"as_of": baseline["as_of"], "seasons": baseline["seasons"], "nights": baseline["nights"],
                     "quantile": baseline["quantile"], "ready": drift.ready(baseline)},
        "features": features,
        "excluded": baseline["excluded"],
        "max_score": top[0], "max_feature": top[1], "max_view": top[2],
        "prediction_psi": prediction,
    }
    return report, drift.history_rows(as_of, scores)


def source_health(table: pd.DataFrame, schedule_games: int, predictions: pd.DataFrame,
                  prediction_log: pd.DataFrame | None, as_of: dt.date) -> dict:
    """What a broken source shows before PSI does: tonight's starters with no known id (none given, or
    one with neither a start nor a Lahman line: a debutant, or an id from nowhere), games predicted
    against the schedule's games, and of the games predicted on the last earlier date, those whose
    result arrived before the as-of date (judged once the table holds any result of this season)."""
    day = pd.Timestamp(as_of)
    tonight = table[(table["date"] == day) & ~table["played"]]
    unknown = 0
    for side in ("home", "away"):
        no_id = tonight[f"{side}_starter_id"].isna()
        history = [f"sp_{side}_starts", f"sp_{side}_prior_ip"]
        unseen = (tonight[history] == 0).all(axis=1) if set(history) <= set(tonight.columns) else False
        unknown += int((no_id | unseen).sum())
    health = {"starters": 2 * len(tonight), "starters_unknown": unknown,
              "games_scheduled": int(schedule_games), "games_predicted": int(len(predictions)),
              "results_date": None, "results_expected": 0, "results_ingested": 0}
    known = table["played"] & (table["result_date"] < day)
    # Results of the as-of season arrive only with an in-season source: without one (the nightly job
    # before the season's game log is published) every game would look missing, every night.
    in_season = bool((known & (table["season"] == as_of.year)).any())
    if prediction_log is not None and not prediction_log.empty and in_season:
        earlier = prediction_log[prediction_log["predicted_for"] < day]
        if not earlier.empty:
            last = earlier["predicted_for"].max()
            expected = earlier.loc[earlier["predicted_for"] == last, "game_id"]
            arrived = table.loc[known & table["game_id"].isin(expected), "game_id"]
            health.update({"results_date": last.date().isoformat(), "results_expected": int(expected.nunique()),
                           "results_ingested": int(arrived.nunique())})
    return health


def evaluate(log_table: pd.DataFrame, table: pd.DataFrame, as_of: dt.date, noise: dict) -> dict:
    """Every earlier prediction whose result is known before the as-of date, overall and last 7/30 days;
    the last 30 days also against what the model card's validation implies for that many games."""
    day = pd.Timestamp(as_of)
    results = table.loc[table["played"] & (table["result_date"] < day) & table["home_win"].notna(),
                        ["game_id", "home_win", "home_score", "away_score"]]
    scored = log_table.merge(results, on="game_id", how="inner")
    summary = {"as_of": as_of.isoformat(), "evaluated": int(len(scored))}
    for label, days in (("all", None), ("last_7_days", 7), ("last_30_days", 30)):
        part = scored if days is None else scored[scored["date"] >= day - pd.Timedelta(days=days)]
        if part.empty:
            summary[label] = None
            continue
        y, p = part["home_win"].to_numpy(dtype=float), part["p_home_win"].to_numpy(dtype=float)
        block = win_metrics(y, p)
        block["runs"] = run_metrics(np.concatenate([part["home_score"].to_numpy(dtype=float),
                                                    part["away_score"].to_numpy(dtype=float)]),
                                    np.concatenate([part["exp_home_runs"].to_numpy(dtype=float),
                                                    part["exp_away_runs"].to_numpy(dtype=float)]))
        if label == "all":
            block["calibration"] = calibration_table(y, p)
            block["calibration_deciles"] = calibration_table(y, p, equal_count=True)
            block["calibration_test"] = calibration_test(y, p)
        if label == "last_30_days":
            block["vs_validation"] = standard_errors(block, noise)
        summary[label] = block
    return summary


def with_lineup_modes(log_table: pd.DataFrame) -> pd.DataFrame:
    """A prediction log with its lineup columns: rows logged before there were two runs a day were
    the nightly's, made with the expected nines."""
    out = log_table.copy()
    for col in LINEUP_COLUMNS:
        out[col] = (out[col] if col in out.columns else pd.Series(pd.NA, index=out.index)).astype("string") \
            .fillna("expected")
    return out


def append_log(previous: pd.DataFrame | None, predictions: pd.DataFrame, as_of: dt.date,
               lineups: str = "expected") -> pd.DataFrame:
    """The prediction log: every prediction ever published, a date's morning (expected lineups) and
    game-time (confirmed) runs apart; a re-run of a date in the same mode replaces that run's rows
    (and only those: a game-time run with nothing left to predict keeps the morning's)."""
    new = with_lineup_modes(predictions.assign(predicted_for=pd.Timestamp(as_of), lineups=lineups))
    if previous is None or previous.empty:
        return new.reset_index(drop=True)
    previous = with_lineup_modes(previous)
    kept = previous[(previous["predicted_for"] != pd.Timestamp(as_of)) | (previous["lineups"] != lineups)]
    return pd.concat([kept, new], ignore_index=True).sort_values(["predicted_for", "lineups", "game_id"],
                                                                 kind="stable").reset_index(drop=True)


def with_lineups(predictions: pd.DataFrame, schedule: pd.DataFrame, lineups: str) -> pd.DataFrame:
    """The run's lineup mode, and for each side whether its prediction used the posted nine or the
    expected one (a lineup not posted yet, or a run in the expected mode)."""
    key = schedule_game_ids(schedule)
    out = predictions.copy()
    out["lineups"] = pd.Series([lineups] * len(out), index=out.index, dtype="string")
    for side, prefix in (("away", "v"), ("home", "h")):
        posted = posted_nine(schedule, prefix).to_numpy() & (lineups == "confirmed")
        source = pd.Series(np.where(posted, "posted", "expected"), index=key.to_numpy())
        source = source[~source.index.duplicated()]
        out[f"{side}_lineup"] = out["game_id"].map(source).fillna("expected").astype("string")
    return out


# What a reader of the predictions wants beside the codes: the Stats API's gamePk (null where the game
# came from Retrosheet), the teams' and the starters' names (null where the source has none).
NAME_COLUMNS = ["game_pk", "away_team_name", "home_team_name", "away_starter_name", "home_starter_name"]
# The run's lineup mode and, for each side, the nine its prediction used ("posted" or "expected").
LINEUP_COLUMNS = ["lineups", "away_lineup", "home_lineup"]
# The published table (CSV and JSON, and `mlb-pipeline predictions`): away side first, as a scoreboard reads.
PUBLIC_COLUMNS = ["date", "game_number", "game_pk", "game_id", "away_team", "away_team_name", "away_starter_id",
                  "away_starter_name", "home_team", "home_team_name", "home_starter_id", "home_starter_name",
                  "p_home_win", "exp_away_runs", "exp_home_runs", "as_of", "model_version", *LINEUP_COLUMNS]
# a game's, in the JSON (which gives the as-of date, the model and the lineup mode once)
GAME_FIELDS = [c for c in PUBLIC_COLUMNS if c not in ("as_of", "model_version", "lineups")]


def _named_dtypes(frame: pd.DataFrame) -> pd.DataFrame:
    """gamePk as a nullable integer and the names as strings, also when every value is null."""
    for col in NAME_COLUMNS[1:]:
        frame[col] = frame[col].astype("string")
    frame["game_pk"] = frame["game_pk"].astype("Int64")
    return frame


def schedule_game_ids(schedule: pd.DataFrame) -> pd.Series:
    """Each schedule row's game_id, as B keys the game."""
    return (schedule["home_team"].astype("string") + schedule["date"].dt.strftime("%Y%m%d")
            + game_number(schedule["game_number"]).astype("string"))


def with_names(predictions: pd.DataFrame, schedule: pd.DataFrame) -> pd.DataFrame:
    """The predictions with the schedule's gamePk and names, matched by game_id (B's key)."""
    # a schedule written before these columns existed (a stage run alone after an upgrade) gives nulls
    schedule = schedule.reindex(columns=list(dict.fromkeys([*schedule.columns, "game_pk", "visiting_team_name",
                                                             "home_team_name"])))
    info = pd.DataFrame({
        "game_id": schedule_game_ids(schedule), "game_pk": schedule["game_pk"].astype("Int64"),
        "away_team_name": schedule["visiting_team_name"], "home_team_name": schedule["home_team_name"],
        "away_starter_name": schedule["v_starting_pitcher_name"],
        "home_starter_name": schedule["h_starting_pitcher_name"],
    }).drop_duplicates("game_id")
    return _named_dtypes(predictions.merge(info, on="game_id", how="left", validate="one_to_one"))


def public_table(predictions: pd.DataFrame, as_of: dt.date) -> pd.DataFrame:
    """Predictions (tonight's, or a night's rows of the prediction log) as the published table."""
    out = _named_dtypes(with_lineup_modes(predictions).reindex(columns=[c for c in PUBLIC_COLUMNS if c != "as_of"]))
    out.insert(PUBLIC_COLUMNS.index("as_of"), "as_of", pd.Series(pd.Timestamp(as_of), index=out.index,
                                                                   dtype="datetime64[ns]"))
    return out.sort_values(["date", "game_id"], kind="stable").reset_index(drop=True)


def public_document(table: pd.DataFrame, as_of: dt.date, version: str, lineups: str) -> dict:
    """The published table as one JSON document: the as-of date, the model version and the lineup mode
    once, a game an object (with the nine each side's prediction used)."""
    games = [{k: _plain(v) for k, v in row.items()}
             for row in table.drop(columns=["as_of", "model_version", "lineups"]).to_dict("records")]
    return {"as_of": as_of.isoformat(), "model_version": version, "lineups": lineups, "games": games}


def _plain(value):
    """A cell as JSON has it: null for a missing value, a date as YYYY-MM-DD, numbers as numbers."""
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, pd.Timestamp):
        return value.date().isoformat()
    if isinstance(value, (int, np.integer)):
        return int(value)
    return float(value) if isinstance(value, (float, np.floating)) else str(value)


def published_night(store: ArtifactStore, day: dt.date | None, fmt: str, lineups: str | None = None) -> str:
    """A night's predictions as `fmt` ('table', 'csv' or 'json'), the latest run's night by default; of
    the run in `lineups` mode, by default the latest run's, or for an earlier night the game-time run's
    (confirmed) where there was one. The night and mode the latest run published are printed from its
    published files, byte for byte; another is built from the prediction log, which keeps every run.
    ArtifactError naming the log when there is none."""
    path = store.resolve_output_path("prediction_log")
    latest = store.read_if_present("predictions_json")
    log_table = with_lineup_modes(store.read_frame("prediction_log")) if path.exists() else None
    if latest is None and (log_table is None or log_table.empty):
        raise ArtifactError(f"{path}: no predictions yet; make some with `mlb-pipeline run`")
    if day is None:
        day = dt.date.fromisoformat(latest["as_of"]) if latest else log_table["predicted_for"].max().date()
    if latest and latest["as_of"] == day.isoformat() and lineups in (None, latest.get("lineups", "expected")):
        if fmt in ("csv", "json"):
            return store.read_bytes(f"predictions_{fmt}").decode()
        table = pd.DataFrame(latest["games"], columns=GAME_FIELDS)
        return render(table, day, latest["model_version"], latest.get("lineups", "expected"))
    rows = log_table[log_table["predicted_for"] == pd.Timestamp(day)] if log_table is not None else None
    if rows is not None and not rows.empty:
        modes = set(rows["lineups"])
        mode = lineups or ("confirmed" if "confirmed" in modes else "expected")
        if mode not in modes:
            raise ArtifactError(f"{path}: no {mode}-lineup predictions for {day} (logged: "
                                f"{', '.join(sorted(modes))})")
        rows = rows[rows["lineups"] == mode]
    if rows is None or rows.empty:
        nights = sorted(set(log_table["predicted_for"].dt.date)) if log_table is not None else []
        known = f"{len(nights)} night(s) from {nights[0]} to {nights[-1]}" if nights else "none"
        raise ArtifactError(f"{path}: no predictions for {day} (logged: {known}; an off-day has none)")
    table, version = public_table(rows, day), rows["model_version"].iloc[0]
    if fmt == "csv":
        return csv_text(table)
    if fmt == "json":
        return json_text(public_document(table, day, version, mode))
    return render(table, day, version, mode)


def render(table: pd.DataFrame, day: dt.date, version: str | None, lineups: str = "expected") -> str:
    """The published table for a person: names where known, else codes; P = the home team's win
    probability; in a game-time run, a side marked * was predicted with its expected nine (none posted)."""
    head = f"{day} · {len(table)} game{'s' * (len(table) != 1)} · model {version or '-'} · {lineups} lineups"
    if lineups == "confirmed" and len(table):
        sides = table.reindex(columns=["away_lineup", "home_lineup"]).fillna("expected").to_numpy().ravel()
        posted = int((sides == "posted").sum())
        head += f" ({posted} of {len(sides)} posted" + ("; * expected nine)" if posted < len(sides) else ")")
    if table.empty:
        return head + "\nno games"

    def first(row: dict, *keys: str) -> str:  # the first known of a name, a code, or "TBD"
        return next((printable(row[k]) for k in keys if not pd.isna(row[k])), "TBD")

    def unposted(row: dict, side: str) -> str:
        return "*" if lineups == "confirmed" and row.get(f"{side}_lineup") != "posted" else ""

    lines = [tuple(f"{first(r, f'{side}_team_name', f'{side}_team')}{unposted(r, side)} "
                   f"({first(r, f'{side}_starter_name', f'{side}_starter_id')})" for side in ("away", "home"))
             + (f"{r['p_home_win']:.3f}", f"{r['exp_away_runs']:.1f}-{r['exp_home_runs']:.1f}",
                "" if pd.isna(r["game_pk"]) else str(int(r["game_pk"])))
             for r in table.to_dict("records")]
    header = ("away (starter)", "home (starter)", "P(home)", "runs a-h", "gamePk")
    widths = [max(len(r[i]) for r in [header, *lines]) for i in range(len(header))]
    fmt_line = lambda r: "  ".join(v.ljust(w) if i < 2 else v.rjust(w)  # noqa: E731
                                   for i, (v, w) in enumerate(zip(r, widths))).rstrip()
    return "\n".join([head, fmt_line(header), *map(fmt_line, lines)])


def printable(value) -> str:
    """A name as a terminal may show it: no control characters (a source's text is not trusted)."""
    return "".join(ch if ch.isprintable() else "?" for ch in str(value))


def model_version(chosen: str, input_hashes: dict[str, str]) -> str:
    """The chosen candidate and a digest of the files that define it (the LightGBM model, the params)."""
    digest = hashlib.sha256("".join(input_hashes[n] for n in ("win_model", "model_params")).encode()).hexdigest()
    return f"{chosen}-{digest[:12]}"


def predict_and_monitor(model_table: pd.DataFrame, win_model: bytes, home_runs_model: bytes,
                        away_runs_model: bytes, model_params: dict, model_card: dict, drift_baseline: dict,
                        schedule: pd.DataFrame, prediction_log: pd.DataFrame | None,
                        drift_history: pd.DataFrame | None, as_of: dt.date,
                        input_hashes: dict[str, str], lineups: str = "expected") -> StageOutput:
    """The as-of date's predictions, the log of every prediction so far, the evaluation of those whose
    results are known, the drift report with the sources' health, and the drift history."""
    models = trained_models(win_model, home_runs_model, away_runs_model, model_params, model_card)
    today = model_table[(model_table["date"] == pd.Timestamp(as_of)) & ~model_table["played"]]
    version = model_version(models.chosen, input_hashes)
    predictions = with_lineups(with_names(predict(models, today, version), schedule), schedule, lineups)
    if predictions.empty:
        log.info("no games scheduled on %s: writing an empty predictions table", as_of)
    history = append_log(prediction_log, predictions, as_of, lineups)
    mine = history[history["lineups"] == lineups]  # this mode's runs: the two of a day score apart
    evaluation = evaluate(mine, model_table, as_of, model_card["validation_noise"])
    evaluation["lineups"] = lineups
    report, tonight = drift_report(models, drift_baseline, model_table, as_of, drift_history)
    earlier = None if prediction_log is None else with_lineup_modes(prediction_log)
    report["sources"] = source_health(model_table, len(schedule[schedule["date"] == pd.Timestamp(as_of)]),
                                      predictions, None if earlier is None else earlier[earlier["lineups"] == lineups],
                                      as_of)
    metrics = {"games_predicted": len(predictions), "evaluated": evaluation["evaluated"]}
    for key in ("max_score", "prediction_psi"):
        if report[key] is not None:
            metrics[key] = report[key]
    recent = evaluation["last_30_days"]
    if recent:  # the run's own record of quality, so the viewer can draw its history across runs
        metrics.update({"brier_30d": recent["brier"], "log_loss_30d": recent["log_loss"],
                        "runs_mae_30d": recent["runs"]["mae"], "runs_rmse_30d": recent["runs"]["rmse"]})
    public = public_table(predictions, as_of)
    return StageOutput({"predictions": predictions, "predictions_csv": public,
                        "predictions_json": public_document(public, as_of, version, lineups),
                        "prediction_log": history,
                        "evaluation": evaluation, "drift_report": report,
                        "drift_history": drift.append_history(drift_history, tonight, as_of)},
                       metrics)


def main(cfg) -> ModuleResult:
    """Stage L through the pipeline's runner, as a run does, holding the artifacts root's run lock."""
    from modules.registry import REGISTRY
    from utils.engine.one_stage import run_alone

    return run_alone(cfg, REGISTRY["L"])
