"""Alerts over replayed seasons (issue 15): false alerts on ordinary nights, and real breaks detected.

    PYTHONPATH=. .venv/bin/python bench/bench_alerts.py [--seasons 2019,2021-2024] [--every 1]
        [--root /tmp/mlb-bench-alerts] [--set k=v ...]

1. One model table for every season up to the last replayed one (modules A-I, as of its December 1;
   features of day D use nothing from D on, so one table serves every night).
2. Per replayed season: the walk-forward backtest (weekly retrains, as `pipeline.py backtest`), keeping
   each retrain's model card (validation noise) and reference of predicted probabilities; the drift
   baseline fit only on seasons before it (K's own `cached_baseline` code).
3. Every `--every`-th game day of the season goes through L's monitoring code: the drift report
   against tonight's reference (the same weeks of the two seasons before, as K builds it each night),
   the sources' health with the nights before as the prediction log, the evaluation of the published
   predictions against the retrain's validation noise; then the run's gauges
   (`utils.monitoring.metrics.monitoring_registry`) and the rules (`utils.monitoring.alerts`, tested to
   agree with promtool).
   Nights are replayed in order, so a night's drift history holds the nights before it.
4. Breaks injected on the 15th (or the next game day) of May-September of the last two replayed
   seasons, each on top of the clean history: a feature shifted by one reference standard deviation
   (in this season's rows, and in tonight's games only), every starter unknown (ids dropped from the
   games, F, G and I rebuilt), half of the last game day's results missing (C-I rebuilt), and the runs
   features in another unit (x9: per nine innings instead of per game) in this season's rows.

Prints per season: nights replayed, critical nights and warning-only nights (with the alerts of each
critical night), the warning-only nights a week, and what the warnings would send through
dashboards/alertmanager.yml (its inhibition applied): the daily digests (one a night with a warning
firing) against a notification for each warning each night, and how many warnings started (fired on a
night but not the night before); then per break and date which alerts fired.
Writes the whole result as JSON to `<root>/alerts-bench.json`.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from modules import l_predict_monitor as lpm  # noqa: E402
from modules.k_train import cached_baseline, training_rows  # noqa: E402
from modules.models import PREDICTION_COLUMNS, feature_columns  # noqa: E402
from modules.registry import REGISTRY  # noqa: E402
from utils.config import load_config  # noqa: E402
from utils.engine.lineage import stage_params  # noqa: E402
from utils.engine.one_stage import stage_outputs  # noqa: E402
from utils.flows.backtest import walk_forward  # noqa: E402
from utils.flows.scaleout import parse_seasons  # noqa: E402
from utils.monitoring import drift  # noqa: E402
from utils.monitoring.alerts import critical, evaluate, notified  # noqa: E402
from utils.monitoring.metrics import monitoring_registry  # noqa: E402

SHIFTED = ["elo_diff", "sp_diff_prior_fip", "lu_diff_woba", "form_diff_pythag", "mu_bullpen_ra9_diff"]
RUNS_FEATURES = ("form_home_rf", "form_away_rf", "form_home_ra", "form_away_ra")


def build_table(cfg_args: list[str], root: Path, last_season: int) -> Path:
    table_root = root / "table"
    path = table_root / "data" / "model_table.parquet"
    if not path.exists():
        subprocess.run([sys.executable, "pipeline.py", "run", "--modules", "A,B,C,D,E,F,G,H,I", "--legacy-executor",
                        "--as-of", f"{last_season}-12-01", "--set", f"paths.artifacts={table_root}",
                        "--set", "versioning.backend=none", *cfg_args], cwd=ROOT, check=True)
    return table_root


class Replay:
    """One season's walk-forward and the retrains' cards, cached under the bench root."""

    def __init__(self, cfg, table: pd.DataFrame, season: int, root: Path):
        self.cards: dict[pd.Timestamp, dict] = {}
        self.p_reference: dict[pd.Timestamp, dict] = {}
        pred_path, card_path = root / f"walk-{season}.parquet", root / f"walk-{season}.json"
        if pred_path.exists() and card_path.exists():
            self.predictions = pd.read_parquet(pred_path)
            kept = json.loads(card_path.read_text())
        else:
            def keep(start, models):
                self.cards[start] = models.card
                self.p_reference[start] = models.reference["p_home_win"]

            self.predictions = walk_forward(table, season, cfg.model.retrain_every_days, cfg.model,
                                            cfg.monitoring.psi_bins, on_retrain=keep)
            kept = {k.date().isoformat(): {"card": self.cards[k], "p": self.p_reference[k]} for k in self.cards}
            self.predictions.to_parquet(pred_path)
            card_path.write_text(json.dumps(kept))
        self.retrains = {pd.Timestamp(k): v for k, v in kept.items()}
        self.p = self.predictions.set_index("game_id")["p_home_win"]

    def retrain_for(self, day: pd.Timestamp) -> dict:
        return self.retrains[max(k for k in self.retrains if k <= day)]


def night(cfg, table: pd.DataFrame, replay: Replay, baseline: dict, day: pd.Timestamp,
          history: pd.DataFrame | None, features: list[str]) -> tuple[list, pd.DataFrame, dict]:
    """One night through L's monitoring code; returns (alerts, tonight's drift history rows, report)."""
    as_of = day.date()
    rows = training_rows(table, as_of, cfg.model.train_seasons)
    retrain = replay.retrain_for(day)
    models = SimpleNamespace(
        reference={"features": drift.reference(drift.reference_rows(rows, as_of), features, cfg.monitoring.psi_bins),
                   "p_home_win": retrain["p"]},
        p_home_win=lambda frame: replay.p.reindex(frame["game_id"]).to_numpy(dtype=float))
    # What the nightly table holds on that date: tonight's games are not played yet.
    visible = table[table["date"] <= day].copy()
    tonight_mask = visible["date"] == day
    visible.loc[tonight_mask, "played"] = False
    report, tonight_rows = lpm.drift_report(models, baseline, visible, as_of, history)
    published = replay.predictions.loc[replay.predictions["date"] < day, PREDICTION_COLUMNS].assign(
        predicted_for=lambda f: f["date"])
    tonight = visible[tonight_mask]
    report["sources"] = lpm.source_health(visible, int(tonight_mask.sum()), tonight, published, as_of)
    evaluation = lpm.evaluate(published, visible.assign(played=visible["played"] & ~tonight_mask), as_of,
                              retrain["card"]["validation_noise"])
    registry = monitoring_registry(evaluation, report, retrain["card"], games_predicted=len(tonight),
                                   run_id=f"replay-{as_of}")
    return evaluate(registry), tonight_rows, report, evaluation


def rebuild(cfg, artifacts: dict[str, pd.DataFrame], games: pd.DataFrame, modules: str) -> pd.DataFrame:
    """Rerun stages `modules` (of C-I) in-process on modified games; the model table."""
    values = {**artifacts, "games": games}
    for module in modules:
        spec = REGISTRY[module]
        args = {name: values[name] for name in spec.inputs}
        values.update(stage_outputs(spec, spec.load()(**args, **stage_params(cfg, spec))).values)
    return values["model_table"]


def injected_nights(season_days: list[pd.Timestamp], season: int) -> list[pd.Timestamp]:
    out = []
    for month in range(5, 10):
        later = [d for d in season_days if d >= pd.Timestamp(season, month, 15)]
        if later:
            out.append(later[0])
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seasons", default="2019,2021-2024")
    parser.add_argument("--every", type=int, default=1)
    parser.add_argument("--root", type=Path, default=Path("/tmp/mlb-bench-alerts"))
    parser.add_argument("--set", action="append", default=[], dest="overrides")
    args = parser.parse_args()
    seasons = parse_seasons([args.seasons], dt.date.today().year)
    overrides = ["sources.retrosheet.base_url=../shared/data/retrosheet/gamelogs", *args.overrides]
    cfg = load_config(ROOT / "config.yaml", overrides)
    args.root.mkdir(parents=True, exist_ok=True)
    table_root = build_table([x for o in overrides for x in ("--set", o)], args.root, max(seasons))
    load = lambda name: pd.read_parquet(table_root / "data" / f"{name}.parquet")  # noqa: E731
    table = load("model_table")
    features = feature_columns(table)
    result = {"seasons": {}, "breaks": [], "every": args.every}
    histories: dict[int, pd.DataFrame] = {}
    replays, baselines = {}, {}
    for season in seasons:
        t0 = time.time()
        replays[season] = replay = Replay(cfg, table, season, args.root)
        baselines[season] = baseline = cached_baseline(table, features, dt.date(season, 3, 1), cfg.monitoring.drift,
                                                       cfg.monitoring.psi_bins, cfg.model.train_seasons,
                                                       args.root / "cache")
        days = sorted(table.loc[table["season"] == season, "date"].unique())[::args.every]
        history = None
        crit_nights, warn_nights, z_brier = [], [], []
        digests, notices, started, warned_before, warned_nights = 0, 0, 0, set(), []
        for day in days:
            day = pd.Timestamp(day)
            alerts, rows, _, quality = night(cfg, table, replay, baseline, day, history, features)
            recent = quality.get("last_30_days")
            if recent and recent["n"] >= 50:
                z_brier.append(recent["vs_validation"]["brier"]["z"])
            history = drift.append_history(history, rows, day.date())
            if critical(alerts):
                crit_nights.append({"night": day.date().isoformat(),
                                    "alerts": [a.describe() for a in critical(alerts)]})
            elif alerts:
                warn_nights.append({"night": day.date().isoformat(), "alerts": [a.describe() for a in alerts]})
            warned = {a.describe() for a in notified(alerts) if a.severity == "warning"}
            if warned:
                warned_nights.append({"night": day.date().isoformat(), "warnings": sorted(warned)})
            digests += bool(warned)
            notices += len(warned)
            started += len(warned - warned_before)
            warned_before = warned
        histories[season] = history
        sweep = {}
        for line in (2.0, 2.5, 3.0, 4.0, 6.0):  # MlbFeatureDriftBreak's line, replayed from the history
            scores = history.pivot_table(index="as_of", columns=["feature", "view"], values="score")
            before = scores.rolling(f"{drift.RECENT_NIGHTS}D", closed="left").max()
            new = (scores > line) & (before.fillna(0) <= line)
            sweep[line] = int(new.any(axis=1).sum())
        months = (pd.Timestamp(days[-1]) - pd.Timestamp(days[0])).days / 30.4
        weeks = ((pd.Timestamp(days[-1]) - pd.Timestamp(days[0])).days + 1) / 7
        result["seasons"][season] = {"nights": len(days), "months": round(months, 1), "weeks": round(weeks, 1),
                                     "warning_only_per_week": round(len(warn_nights) / weeks, 2),
                                     "warning_digests": digests, "warning_notices": notices,
                                     "warnings_started": started, "notified_warnings": warned_nights,
                                     "critical_nights": crit_nights,
                                     "warning_nights": warn_nights, "seconds": round(time.time() - t0, 1),
                                     "baseline_nights": baseline["nights"], "break_line_nights": sweep,
                                     "brier_z": {"nights": len(z_brier),
                                                 "mean": round(float(np.mean(z_brier)), 2) if z_brier else None,
                                                 "max": round(float(np.max(z_brier)), 2) if z_brier else None,
                                                 "over_2": int(np.sum(np.array(z_brier) > 2))}}
        print(f"{season}: {len(days)} nights, {len(crit_nights)} critical, {len(warn_nights)} warning only "
              f"({len(warn_nights) / weeks:.2f} a week over {weeks:.1f} weeks); warnings: {digests} daily digests "
              f"instead of {notices} notices, one a warning a night ({started} started) ({time.time() - t0:.0f} s); "
              f"drift-break nights by line {sweep}; 30-day Brier z "
              f"{result['seasons'][season]['brier_z']}", flush=True)
        for c in crit_nights:
            print(f"   critical {c['night']}: {'; '.join(c['alerts'][:4])}", flush=True)

    rebuilt = "CDFGHI"  # every input of the stages a break rebuilds, as the table's run wrote it
    artifacts = {name: load(name) for name in sorted({n for m in rebuilt for n in REGISTRY[m].inputs})}
    for season in seasons[-2:]:
        days = [pd.Timestamp(d) for d in sorted(table.loc[table["season"] == season, "date"].unique())]
        for i, day in enumerate(injected_nights(days, season)):
            history = histories[season]
            history = history[history["as_of"] < day] if history is not None else None
            replay, baseline = replays[season], baselines[season]
            this_season = table["season"] == season
            breaks = {}
            feature = SHIFTED[i % len(SHIFTED)]
            sd = drift.reference(drift.reference_rows(training_rows(table, day.date(), cfg.model.train_seasons),
                                                      day.date()), [feature], cfg.monitoring.psi_bins)[feature]["std"]
            shifted = table.copy()
            shifted.loc[this_season, feature] += sd
            breaks[f"{feature} +1 sd (season)"] = shifted
            tonight_only = table.copy()
            tonight_only.loc[table["date"] == day, feature] += sd
            breaks[f"{feature} +1 sd (tonight)"] = tonight_only
            games = artifacts["games"].copy()
            games.loc[games["date"] == day, ["home_starter_id", "away_starter_id"]] = None
            breaks["every starter unknown"] = rebuild(cfg, artifacts, games, "FGI")
            last_day = max(d for d in days if d < day)
            yesterday = artifacts["games"][artifacts["games"]["date"] == last_day]
            games = artifacts["games"].drop(yesterday.index[::2])
            breaks["half of the last game day's results missing"] = rebuild(cfg, artifacts, games, "CDFGHI")
            scaled = table.copy()
            runs = [c for c in features if c.startswith(RUNS_FEATURES)]
            scaled.loc[this_season, runs] *= 9
            breaks["runs features x9 (season)"] = scaled
            own = {f"{feature} +1 sd (season)": lambda a: dict(a.labels).get("feature") == feature,
                   f"{feature} +1 sd (tonight)": lambda a: dict(a.labels).get("feature") == feature,
                   "every starter unknown": lambda a: a.name == "MlbStartersUnknown",
                   "half of the last game day's results missing": lambda a: a.name == "MlbResultsMissing",
                   "runs features x9 (season)": lambda a: dict(a.labels).get("feature") in runs}
            for name, broken in breaks.items():
                alerts, _, report, _ = night(cfg, broken, replay, baseline, day, history, features)
                fired = critical(alerts)
                # detected: a critical alert that names the break itself (not the night's own alerts)
                row = {"night": day.date().isoformat(), "break": name, "critical": bool(fired),
                       "detected": any(own[name](a) for a in fired),
                       "alerts": sorted({a.name for a in (fired or alerts)}),
                       "top": sorted(((s[f"{v}_score"] or 0, f"{f}/{v}") for f, s in report["features"].items()
                                      for v in drift.VIEWS), reverse=True)[:3]}
                if name.startswith(feature):
                    row["feature"] = {k: report["features"][feature][k] for k in ("psi_score", "shift_score")}
                result["breaks"].append(row)
                print(f"{row['night']} {name:45s} {'DETECTED' if row['detected'] else 'not detected'} "
                      f"{'CRITICAL' if fired else 'no critical'}: "
                      f"{', '.join(row['alerts'])} {row.get('feature', '')} top {row['top'][:2]}", flush=True)
    (args.root / "alerts-bench.json").write_text(json.dumps(result, indent=1, default=str))
    detected: dict[str, list[bool]] = {}
    for row in result["breaks"]:
        detected.setdefault(row["break"].replace(row["break"].split(" +1 sd")[0], "feature")
                            if " +1 sd" in row["break"] else row["break"], []).append(row["detected"])
    for name, hits in detected.items():
        print(f"{name:45s} detected in that run: {sum(hits)} of {len(hits)}")
    print(f"{'season':>7s}{'nights':>8s}{'weeks':>7s}{'critical':>10s}{'warning-only':>14s}{'a week':>8s}"
          f"{'digests':>9s}{'notices':>9s}{'started':>9s}")
    for season, r in result["seasons"].items():
        print(f"{season:>7d}{r['nights']:>8d}{r['weeks']:>7.1f}{len(r['critical_nights']):>10d}"
              f"{len(r['warning_nights']):>14d}{r['warning_only_per_week']:>8.2f}{r['warning_digests']:>9d}"
              f"{r['warning_notices']:>9d}{r['warnings_started']:>9d}")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
