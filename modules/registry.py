"""The DAG as data: stage id -> its pure function, the artifacts it reads and writes, its parameters.

Like a Kedro node, each entry names a function (`package.module:function`), the artifacts passed to
it by name, the config keys bound to its other arguments and the artifacts it returns. One runner
(`utils.runner.run_stage`) loads the inputs, calls the function, validates and writes the outputs
together, and records what they were made from; the Prefect flow, the legacy executor, the dry run,
the drawings, dvc.yaml, the README's DAG map and the viewer are all drawn from this table. Functions
are imported only when a stage runs, so planning never pays for pandas, LightGBM or Prefect.
"""
from __future__ import annotations

import ast
import hashlib
import importlib
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from utils.artifacts import ArtifactRecord


@dataclass(frozen=True)
class ModuleResult:
    """What a stage did: the artifacts it wrote and numbers worth recording."""

    outputs: list[ArtifactRecord]
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class StageOutput:
    """A stage function's outputs by artifact name, with numbers worth recording (Dagster's Output).
    A function with one output and nothing to record may return the value itself."""

    values: dict[str, Any]
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ModuleSpec:
    id: str
    name: str
    target: str = ""  # "package.module:function", the stage's pure function
    inputs: tuple[str, ...] = ()  # artifacts, passed to the function by name
    outputs: tuple[str, ...] = ()
    description: str = ""
    params: Mapping[str, str] = field(default_factory=dict)  # argument -> dotted config key
    # argument -> something the runner provides that is not data: "cache:<name>" (a cache folder of
    # the catalog), "input_hashes" (the SHA-256 of each input, e.g. for a model version) or
    # "config:<dotted key>" (a setting of how the stage runs, not of what it makes: no part of lineage)
    resources: Mapping[str, str] = field(default_factory=dict)
    reserved: bool = False
    orphan: bool = False
    appends: tuple[str, ...] = ()  # outputs that extend their previous version, passed in as inputs too

    @property
    def module(self) -> str:
        return self.target.partition(":")[0]

    def load(self) -> Callable[..., Any]:
        """The stage's function."""
        path, _, attr = self.target.partition(":")
        function = getattr(importlib.import_module(path), attr, None)
        if not callable(function):
            raise TypeError(f"{self.target}: stage {self.id} names no function")
        return function

    def code_version(self) -> str:
        """SHA-256 (12 hex digits) of the stage's source file and of the project modules it imports
        (`modules.*`, `utils.*`): a change to any makes its outputs stale under the 'skip' policy, as
        dvc.lock's deps and Dagster's code versions do. Found without importing anything."""
        digest = hashlib.sha256()
        for path in _project_sources(self.module):
            digest.update(path.read_bytes())
        return digest.hexdigest()[:12]


def _project_sources(module: str) -> list[Path]:
    """The module's file and those of the project modules it imports directly."""
    origin = Path(importlib.util.find_spec(module).origin)
    names = {module}
    for node in ast.walk(ast.parse(origin.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in PROJECT_PACKAGES:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names if a.name.split(".")[0] in PROJECT_PACKAGES)
    return [Path(importlib.util.find_spec(name).origin) for name in sorted(names)]


PROJECT_PACKAGES = ("modules", "utils")


class Registry:
    def __init__(self, specs: list[ModuleSpec]):
        self.specs = {spec.id: spec for spec in specs}
        self.producer: dict[str, str] = {}
        for spec in specs:
            for out in spec.outputs:
                if out in self.producer:
                    raise ValueError(f"artifact '{out}' is made by both {self.producer[out]} and {spec.id}")
                self.producer[out] = spec.id
        order = list(self.specs)
        for spec in specs:  # the executors and levels rely on registry order being a topological order
            late = [n for n in spec.inputs
                    if n in self.producer and order.index(self.producer[n]) > order.index(spec.id)]
            if late:
                raise ValueError(f"stage {spec.id} reads {late[0]}, made by {self.producer[late[0]]}, which is "
                                 f"registered after it: list producers first")

    def __iter__(self):
        return iter(self.specs.values())

    def __getitem__(self, module_id: str) -> ModuleSpec:
        return self.specs[module_id]

    @property
    def runnable(self) -> list[ModuleSpec]:
        return [spec for spec in self if not spec.reserved]

    def upstream(self, module_id: str) -> list[str]:
        """Modules whose outputs this one reads, in registry order."""
        wanted = {self.producer[name] for name in self.specs[module_id].inputs if name in self.producer}
        return [m for m in self.specs if m in wanted]

    def edges(self) -> list[tuple[str, str, str]]:
        """(producer, consumer, artifact) for every input made by another stage, in registry order."""
        return [(self.producer[name], spec.id, name) for spec in self for name in spec.inputs if name in self.producer]

    def ancestors(self, module_id: str) -> list[str]:
        """The module and every module it depends on, in registry (topological) order."""
        wanted, todo = set(), [module_id]
        while todo:
            current = todo.pop()
            if current not in wanted:
                wanted.add(current)
                todo.extend(self.upstream(current))
        return [m for m in self.specs if m in wanted]

    def levels(self, module_ids: list[str]) -> list[list[str]]:
        """Selected modules grouped so each level depends only on earlier levels."""
        chosen = [m for m in self.specs if m in module_ids]
        depth: dict[str, int] = {}
        for module_id in chosen:  # registry order is a topological order
            ups = [u for u in self.upstream(module_id) if u in depth]
            depth[module_id] = 1 + max((depth[u] for u in ups), default=-1)
        levels: list[list[str]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
        for module_id in chosen:
            levels[depth[module_id]].append(module_id)
        return levels


REGISTRY = Registry([
    ModuleSpec("A", "ingest", "modules.a_ingest:ingest", (),
               ("raw_gamelogs", "quarantine", "lahman_pitching", "lahman_batting", "schedule", "player_games",
                "player_ids"),
               "Retrosheet game logs (161 typed fields) and, for a season not published yet, the Stats API's "
               "completed games; every player's line from the play-by-play or the box scores; Lahman pitching and "
               "batting lines; the as-of date's schedule; the MLBAM-Retrosheet id mapping used",
               params={"as_of": "run.as_of", "retrosheet": "sources.retrosheet", "schedule": "sources.schedule",
                       "live": "sources.live", "data": "data", "train_seasons": "model.train_seasons"},
               resources={"download_cache": "cache:retrosheet", "parse_cache": "cache:parsed",
                          "statsapi_cache": "cache:statsapi", "retry": "config:sources.retry"}),
    ModuleSpec("B", "clean", "modules.b_clean:clean", ("raw_gamelogs", "schedule"), ("games",),
               "one row a game: game_id, franchise-normalised teams, forfeit/suspended/tie/neutral flags",
               params={"franchise_map": "data.franchise_map", "neutral_parks": "data.neutral_parks"}),
    ModuleSpec("C", "context", "modules.c_context:describe_context", ("games",), ("context_features",),
               "ctx_*: park, day/night, rest, doubleheader, travel"),
    ModuleSpec("D", "team_form", "modules.d_team_form:measure_form", ("games",), ("team_form_features",),
               "form_*: rolling and EWM runs, regressed win%, Pythagorean expectation",
               params={"form": "features.form"}),
    ModuleSpec("E", "quality", "modules.e_quality:check_quality",
               ("games", "quarantine", "player_games", "player_ids"),
               ("data_quality_report",),
               "coverage (game logs and play-by-play), duplicates, nulls, quarantined lines, anomalies (read by the "
               "viewer only)",
               orphan=True),
    ModuleSpec("F", "starters", "modules.f_starters:rate_starters",
               ("games", "lahman_pitching", "lahman_batting", "player_games"), ("starter_features",),
               "sp_*: starting pitcher's form from his own lines, rest, Marcel-weighted Lahman line; lu_*: lineup "
               "talent",
               params={"pitchers": "features.pitchers"}),
    ModuleSpec("G", "ratings", "modules.g_ratings:rate_teams", ("games", "starter_features"), ("team_ratings",),
               "elo_*: pre-game team Elo and a starter-adjusted rating (the baseline model)",
               params={"elo": "features.elo"}),
    ModuleSpec("H", "matchup", "modules.h_matchup:describe_matchups", ("games", "player_games"),
               ("matchup_features",), "mu_*: bullpen quality and fatigue from relievers' lines, head-to-head, streaks",
               params={"matchup": "features.matchup"}),
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
                       "drift_config": "monitoring.drift"},
               resources={"cache": "cache:drift"}),
    ModuleSpec("L", "predict_monitor", "modules.l_predict_monitor:predict_and_monitor",
               ("model_table", "win_model", "home_runs_model", "away_runs_model", "model_params", "model_card",
                "drift_baseline", "schedule"),
               ("predictions", "predictions_csv", "predictions_json", "prediction_log", "evaluation", "drift_report",
                "drift_history"),
               "predictions for the as-of date (also as CSV and JSON, with names), evaluation of earlier ones "
               "against their noise, drift scores and the sources' health",
               params={"as_of": "run.as_of"}, resources={"input_hashes": "input_hashes"},
               appends=("prediction_log", "drift_history")),
])
