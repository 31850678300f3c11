"""The morning view of last night's run: `streamlit run dashboards/dag_viewer.py [-- --config PATH --set k=v]`.

Reads the artifacts root from the pipeline's own config; never writes, never runs DVC or the pipeline.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import altair as alt  # noqa: E402  (streamlit ships altair)
import pandas as pd  # noqa: E402
import streamlit as st  # noqa: E402

from dashboards import viewer_data as data  # noqa: E402
from modules.registry import REGISTRY  # noqa: E402
from phase_status import StatusError  # noqa: E402
from utils.config import ConfigError, load_config  # noqa: E402
from utils.engine.plan import dag_dot  # noqa: E402
from utils.store.artifacts import ArtifactStore  # noqa: E402


def settings():
    """--config / --set after `--` on the streamlit command line; MLB_CONFIG for tests and services."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--config", default=os.environ.get("MLB_CONFIG", str(ROOT / "config.yaml")))
    parser.add_argument("--set", action="append", default=[])
    opts, _ = parser.parse_known_args(sys.argv[1:])
    return load_config(opts.config, opts.set)


st.set_page_config(page_title="MLB pipeline", layout="wide")
st.title("MLB pipeline")
try:
    cfg = settings()
except ConfigError as exc:
    st.error("Config problem: " + "; ".join(exc.problems))
    st.stop()
root = Path(cfg.paths.artifacts)
store = ArtifactStore.from_config(cfg)
try:
    run = data.latest_run(root)
except StatusError as exc:
    st.error(str(exc))
    st.stop()
states = data.module_states(REGISTRY, run)

history = data.run_history(root)
if run is None:
    st.info(f"No runs yet under {root}. Start one with `python pipeline.py run` "
            "(or replay a date: `--as-of YYYY-MM-DD`); this page fills in as modules finish.")
    st.subheader("Pipeline DAG")
    st.graphviz_chart(dag_dot(REGISTRY, statuses={k: v for k, v in states.items() if v != "reserved"}))
    st.caption("J is reserved and skipped on purpose; E (data quality) is an orphan: only this page reads it.")
    st.stop()

finished = run.finished_at.strftime("%Y-%m-%d %H:%M UTC") if run.finished_at else "not finished"
problems = data.run_problems(run)
summary = f"Run {run.run_id} · as of {run.as_of} · {run.executor} executor · {finished}"
if run.interrupted:
    summary += f" · interrupted by {run.interrupted}"
(st.error if problems or run.interrupted else st.success)(summary + (f" · failed: {', '.join(problems)}"
                                                                      if problems else ""))
games = data.tonight(store)
if games is not None and not run.ok:  # say which earlier run made the predictions still served
    source = games[3]
    maker = data.made_by(history, source, (store.meta(source) or {}).get("sha256"))
    if maker is None or maker.run_id != run.run_id:
        st.warning(f"Still in use: the predictions for {games[1]}"
                   + (f", made by run {maker.run_id} (as of {maker.as_of})" if maker else "")
                   + "; the latest run made none.")

if games is None:
    st.subheader("Tonight's games")
    st.info("No predictions yet (module L).")
else:
    table, night, version, _ = games
    st.subheader(f"Games on {night}")
    if table.empty:
        st.info(f"No games scheduled on {night}.")
    else:  # a replayed night's games came from Retrosheet: no gamePk to show
        st.dataframe(table.dropna(axis=1, how="all") if table["gamePk"].isna().all() else table, hide_index=True)
    band = data.brier_band(store)
    posted = (table["lineups"] != "expected").any()
    mode = "game-time run, posted lineups" if posted else "morning run, expected lineups"
    caption = f"Model {version} ({mode}); P(home win) is calibrated, runs are expected runs."
    if band:
        where = "inside" if band["inside"] else "outside"
        caption += (f" Brier over the last 30 days: {band['live']:.4f} on {band['games']} games, expected "
                    f"{band['expected']:.4f} ± {2 * band['standard_error']:.4f} (two standard errors): {where} "
                    "its noise band.")
    st.caption(caption)

tabs = st.tabs(["Pipeline", "Data quality", "Drift", "Backtests"])

with tabs[0]:
    st.subheader("Pipeline DAG")
    st.graphviz_chart(dag_dot(REGISTRY, statuses={k: v for k, v in states.items() if v != "reserved"}))
    st.caption("J is reserved and skipped on purpose; E (data quality) is an orphan: only this page reads it. "
               "'up to date': kept, nothing to do; 'not run': a module it reads failed.")
    choices = [s.id for s in REGISTRY.runnable]
    module_id = st.selectbox("Module", choices, format_func=lambda m: f"{m} {REGISTRY[m].name} ({states[m]})")
    phase = run.phases.get(module_id)
    if phase is None:
        st.info(f"{module_id} did not take part in the latest run.")
    else:
        cols = st.columns(3)
        cols[0].metric("Status", phase.shown)
        cols[1].metric("Seconds", f"{phase.duration_seconds:.2f}" if phase.duration_seconds is not None else "-")
        cols[2].metric("Outputs", len(REGISTRY[module_id].outputs))
        # A module with several outputs has several contracts: too long for a metric, so a caption.
        st.caption(f"Validated against: {(phase.validator or '-').replace(',', ', ')}")
        if phase.error:
            (st.error if phase.status != "skipped" else st.warning)(f"{module_id} error: {phase.error}")
    st.markdown("**Outputs in use** (on disk now, with the run that wrote them)")
    st.dataframe(data.outputs_in_use(store, history, REGISTRY[module_id].outputs), hide_index=True)
    st.markdown("**History**")
    st.dataframe(data.module_history(history, module_id), hide_index=True)

with tabs[1]:
    report = store.read_if_present("data_quality_report")
    if report is None:
        st.info("No data quality report yet (module E).")
    else:
        cols = st.columns(4)
        cols[0].metric("Games", report["games"])
        cols[1].metric("Duplicates", report["duplicates"])
        cols[2].metric("Quarantined lines", report["quarantined"]["lines"])
        cols[3].metric("Lowest coverage", f"{report['coverage']['min']:.3f}" if report["coverage"]["min"] else "-")
        st.markdown("**Anomalies**")
        st.dataframe(pd.DataFrame([report["anomalies"]]), hide_index=True)
        if report["coverage"]["gaps"]:
            st.markdown("**Team-seasons with missing games**")
            st.dataframe(pd.DataFrame(report["coverage"]["gaps"]), hide_index=True)
        st.markdown("**Games per season**")
        st.bar_chart(pd.Series(report["games_per_season"], name="games"))

with tabs[2]:
    report = store.read_if_present("drift_report")
    scores = data.drift_table(report)
    if scores.empty:
        st.info("No drift report yet (module L).")
    else:
        st.markdown(f"**Drift score per feature**: PSI of the last 30 days and tonight's shift, each over its "
                    f"normal (the shaded band: up to {data.THRESHOLDS['normal']:g}, its worst ordinary night in a "
                    f"hundred); a new score above {data.THRESHOLDS['break']:g} pages. "
                    f"{int((scores['level'] == 'break').sum())} above the break line.")
        shown = scores.head(40)
        band = alt.Chart(pd.DataFrame({"lo": [0.0], "hi": [data.THRESHOLDS["normal"]]})).mark_rect(
            opacity=0.15, color="#31a354").encode(x="lo:Q", x2="hi:Q")
        bars = alt.Chart(shown).mark_bar().encode(
            x=alt.X("score:Q", title="score (value / normal)", scale=alt.Scale(type="symlog")),
            y=alt.Y("label:N", sort="-x", title=None),
            color=alt.Color("level:N", scale=alt.Scale(domain=["normal", "above normal", "break"],
                                                       range=["#74c476", "#fdae6b", "#e6550d"])),
            tooltip=["feature", "view", "value", "normal", "score", "recent_max"]).transform_calculate(
            label="datum.feature + ' · ' + datum.view")
        line = alt.Chart(pd.DataFrame({"score": [data.THRESHOLDS["break"]]})).mark_rule(strokeDash=[4, 4]).encode(
            x="score:Q")
        st.altair_chart(band + bars + line, use_container_width=True)
        st.dataframe(scores, hide_index=True)
        st.markdown("**Sources**")
        st.dataframe(data.sources_table(report), hide_index=True)
    quality = data.quality_history(history)
    if len(quality):
        st.markdown("**History over runs**")
        st.line_chart(quality.set_index("as_of")[["max_score"]])
        st.line_chart(quality.set_index("as_of")[["brier_30d", "log_loss_30d"]])
        st.line_chart(quality.set_index("as_of")[["runs_mae_30d", "runs_rmse_30d"]])

with tabs[3]:
    seasons = data.backtests(store)
    if seasons.empty:
        st.info("No backtests yet: `python pipeline.py backtest --season YYYY`.")
    else:
        table = seasons[["season", "lineups", "games", "model_brier", "elo_brier"]].assign(
            gain=lambda f: f["elo_brier"] - f["model_brier"])
        st.markdown("**Brier score per season, model against the Elo baseline** (lineups: the morning's "
                    "models, `expected`, or the game-time run's, `confirmed`)")
        st.dataframe(table, hide_index=True)
        diagram = data.reliability(seasons)
        line = alt.Chart(pd.DataFrame({"x": [0, 1], "y": [0, 1]})).mark_line(strokeDash=[4, 4]).encode(x="x", y="y")
        points = alt.Chart(diagram).mark_circle().encode(
            x=alt.X("mean_prediction:Q", title="mean prediction", scale=alt.Scale(domain=[0.2, 0.8])),
            y=alt.Y("observed_rate:Q", title="observed home-win rate", scale=alt.Scale(domain=[0.2, 0.8])),
            size="n:Q", color="lineups:N")
        st.markdown("**Reliability diagram** (pooled over the backtested seasons, per lineup mode)")
        st.altair_chart(line + points, use_container_width=True)
