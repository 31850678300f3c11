"""What the DAG viewer shows, read from the artifacts root: pure readers, no Streamlit, no writes."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from modules.l_predict_monitor import GAME_FIELDS, printable
from phase_status import RunStatus, StatusError, latest_status, load_status
from utils.engine.stages import Registry
from utils.monitoring.alerts import threshold
from utils.store.artifacts import ArtifactStore
from utils.store.catalog import ArtifactError, Catalog

# The drift score's lines: 1 is the top of a feature's normal band (its worst ordinary night in a hundred);
# above the break's threshold a new drift pages (dashboards/alerts.yml, MlbFeatureDriftBreak).
THRESHOLDS = {"normal": 1.0, "break": threshold("MlbFeatureDriftBreak")}


def latest_run(root: Path) -> RunStatus | None:
    return latest_status(root)


def module_states(registry: Registry, run: RunStatus | None) -> dict[str, str]:
    """Colour key per module: what it did in the latest run, 'never run', or 'reserved'."""
    phases = run.phases if run else {}
    return {spec.id: "reserved" if spec.reserved else (phases[spec.id].shown if spec.id in phases else "never run")
            for spec in registry}


def run_problems(run: RunStatus) -> list[str]:
    """What went wrong in a run, each as 'A' or 'versioning': failed or interrupted modules and steps.
    A run with any of them is never shown as a success."""
    return ([m for m, p in run.phases.items() if p.status in ("failed", "interrupted")]
            + [n for n, s in run.steps.items() if s.status in ("failed", "interrupted")])


def made_by(runs: list[RunStatus], name: str, digest: str | None) -> RunStatus | None:
    """The newest run that wrote or kept these exact bytes of an artifact (None when no kept run did)."""
    return next((r for r in reversed(runs) for p in r.phases.values()
                 for o in p.outputs if o.name == name and o.sha256 == digest), None) if digest else None


def run_history(root: Path) -> list[RunStatus]:
    """Every kept run whose status can be read, oldest first."""
    runs = []
    catalog = Catalog(root)
    for run_id in catalog.run_ids():
        try:
            runs.append(load_status(catalog.run_file(run_id, "status")))
        except (StatusError, ArtifactError):  # one damaged run folder must not hide the others' history
            continue
    return runs


def module_history(runs: list[RunStatus], module_id: str) -> pd.DataFrame:
    rows = [{"run": r.run_id, "as_of": r.as_of, "status": p.shown, "seconds": p.duration_seconds,
             "validator": p.validator, "error": p.error}
            for r in runs if (p := r.phases.get(module_id)) is not None]
    return pd.DataFrame(rows, columns=["run", "as_of", "status", "seconds", "validator", "error"])


OUTPUT_COLUMNS = ["artifact", "as_of", "run", "verified", "sha256", "schema", "rows", "path"]


def outputs_in_use(store: ArtifactStore, runs: list[RunStatus], outputs: tuple[str, ...]) -> pd.DataFrame:
    """Each output of a module as it is on disk now, which is what the next stages and readers use
    (after a failed night, the last good run's): its as-of date, the newest run that wrote or kept
    these exact bytes, whether the file still matches its recorded SHA-256, its contract and rows."""
    rows = []
    for name in outputs:
        try:
            meta = store.meta(name)
        except ArtifactError:
            meta = {"sha256": None}
        if meta is None:
            continue
        digest = meta.get("sha256")
        maker = made_by(runs, name, digest)
        rows.append({"artifact": name, "as_of": meta.get("as_of"), "run": maker.run_id if maker else None,
                     "verified": digest is not None and store.valid_hash(name) == digest, "sha256": digest,
                     "schema": meta.get("validator"), "rows": meta.get("rows"),
                     "path": str(store.resolve_output_path(name))})
    return pd.DataFrame(rows, columns=OUTPUT_COLUMNS)


def drift_table(drift: dict | None) -> pd.DataFrame:
    """One row per watched feature and view (psi: the last 30 days; shift: tonight's games): the value,
    its normal (the top of the band ordinary nights stay in), the score (value over normal), the score
    of the week before and its level (normal, above normal, break), the highest scores first."""
    columns = ["feature", "view", "value", "normal", "score", "recent_max", "level"]
    if not drift:
        return pd.DataFrame(columns=columns)
    rows = [{"feature": name, "view": view, "value": s[view], "normal": s[f"{view}_normal"],
             "score": s[f"{view}_score"], "recent_max": s[f"{view}_recent_max"]}
            for name, s in drift["features"].items() for view in ("psi", "shift") if s[f"{view}_score"] is not None]
    frame = pd.DataFrame(rows, columns=columns[:-1]).sort_values("score", ascending=False, kind="stable")
    frame["level"] = pd.cut(frame["score"], [-1, THRESHOLDS["normal"], THRESHOLDS["break"], float("inf")],
                            labels=["normal", "above normal", "break"]).astype(str)
    return frame.reset_index(drop=True)


def sources_table(drift: dict | None) -> pd.DataFrame:
    """The sources' health as the alerts read it: each check, its value and what it is compared with."""
    if not drift or "sources" not in drift:
        return pd.DataFrame(columns=["check", "value", "of"])
    s = drift["sources"]
    return pd.DataFrame([
        {"check": "tonight's starters with no known id", "value": s["starters_unknown"], "of": s["starters"]},
        {"check": "games predicted", "value": s["games_predicted"], "of": s["games_scheduled"]},
        {"check": f"results arrived for {s['results_date'] or '-'}", "value": s["results_ingested"],
         "of": s["results_expected"]},
    ])


def quality_history(runs: list[RunStatus]) -> pd.DataFrame:
    """Per run with an L phase: its largest drift score, Brier, log loss and run errors it recorded."""
    keys = ["max_score", "brier_30d", "log_loss_30d", "runs_mae_30d", "runs_rmse_30d"]
    rows = [{"as_of": pd.Timestamp(r.as_of) if r.as_of else None, "run": r.run_id,
             **{k: r.phases["L"].metrics.get(k) for k in keys}}
            for r in runs if "L" in r.phases and r.phases["L"].status == "success"]
    return pd.DataFrame(rows, columns=["as_of", "run", *keys])


GAME_COLUMNS = ["away", "away starter", "home", "home starter", "P(home win)", "away runs", "home runs", "gamePk",
                "lineups"]


def published_predictions(store: ArtifactStore) -> tuple[str, dict] | None:
    """(the artifact it came from, the published document): `predictions_json`, or for a root whose latest
    predictions predate it, the same document made from `predictions.parquet` (names where it has them)."""
    published = store.read_if_present("predictions_json")
    if published is not None:
        return "predictions_json", published
    frame, meta = store.read_if_present("predictions"), store.meta_path("predictions")
    if frame is None or not meta.exists():
        return None
    games = frame.reindex(columns=GAME_FIELDS)
    games = games.astype(object).where(games.notna(), None).to_dict("records")
    version = frame["model_version"].iloc[0] if len(frame) else None
    return "predictions", {"as_of": store.meta("predictions")["as_of"], "model_version": version, "games": games}


def lineups_used(game: dict, mode: str) -> str:
    """What a game's prediction knew of the nines: "expected" (the morning run), "posted" (both sides'
    posted lineups, the game-time run), or which side was still on its expected nine."""
    if mode != "confirmed":
        return "expected"
    posted = [side for side in ("away", "home") if game.get(f"{side}_lineup") == "posted"]
    return {2: "posted", 0: "none posted yet"}.get(len(posted), f"{posted[0]} posted only")


def tonight(store: ArtifactStore) -> tuple[pd.DataFrame, str, str | None, str] | None:
    """(the published games in use, their as-of date, the model version, the artifact they came from):
    names where known, else codes, and the lineups each prediction used; None before the first predictions."""
    found = published_predictions(store)
    if found is None:
        return None
    source, published = found

    def named(game: dict, side: str, what: str) -> str:
        name, code = (game[f"{side}_team_name"], game[f"{side}_team"]) if what == "team" else \
            (game[f"{side}_starter_name"], game[f"{side}_starter_id"])
        return printable(name or code or "TBD")  # a source's text, never control characters
    rows = [{"away": named(g, "away", "team"), "away starter": named(g, "away", "starter"),
             "home": named(g, "home", "team"), "home starter": named(g, "home", "starter"),
             "P(home win)": round(g["p_home_win"], 3), "away runs": round(g["exp_away_runs"], 1),
             "home runs": round(g["exp_home_runs"], 1), "gamePk": g["game_pk"],
             "lineups": lineups_used(g, published.get("lineups", "expected"))} for g in published["games"]]
    return pd.DataFrame(rows, columns=GAME_COLUMNS), published["as_of"], published["model_version"], source


def brier_band(store: ArtifactStore) -> dict | None:
    """The last 30 days' Brier score against what validation implies for that many games: the value,
    the expected value, its standard error, the games, and whether it is inside the band (|z| < 2)."""
    evaluation = store.read_if_present("evaluation")
    recent = (evaluation or {}).get("last_30_days") or {}
    versus = (recent.get("vs_validation") or {}).get("brier")
    if not versus:
        return None
    return {**versus, "inside": abs(versus["z"]) < 2}


def backtests(store: ArtifactStore) -> pd.DataFrame:
    """One row per backtested season and lineup mode (the morning's models, `expected`, and the game-time
    run's, `confirmed`) whose summary verifies: model and Elo Brier, with the calibration table."""
    rows = []
    for lineups in ("expected", "confirmed"):
        for season in store.catalog.backtest_seasons(lineups):
            summary = ArtifactStore(store.catalog.backtest(season, lineups).root, store.schema_dir).read_if_present(
                "backtest_summary")
            if summary is None:
                continue
            rows.append({"season": summary["season"], "lineups": lineups, "games": summary["games"],
                         "model_brier": summary["model"]["brier"], "elo_brier": summary["elo"]["brier"],
                         "calibration": summary["model"]["calibration"]})
    return pd.DataFrame(rows, columns=["season", "lineups", "games", "model_brier", "elo_brier", "calibration"])


def reliability(backtest_rows: pd.DataFrame) -> pd.DataFrame:
    """Pooled reliability diagram over the backtested seasons, per lineup mode: mean prediction vs
    observed rate by bin."""
    bins = [{**b, "lineups": mode} for mode, cal in zip(backtest_rows["lineups"], backtest_rows["calibration"])
            for b in cal]
    columns = ["lineups", "bin", "n", "mean_prediction", "observed_rate"]
    if not bins:
        return pd.DataFrame(columns=columns)
    frame = pd.DataFrame(bins)
    frame["pred_sum"] = frame["mean_prediction"] * frame["n"]
    frame["obs_sum"] = frame["observed_rate"] * frame["n"]
    pooled = frame.groupby(["lineups", "bin"])[["n", "pred_sum", "obs_sum"]].sum().reset_index()
    pooled["mean_prediction"] = pooled["pred_sum"] / pooled["n"]
    pooled["observed_rate"] = pooled["obs_sum"] / pooled["n"]
    return pooled[columns]
