"""The DAG as data: module id -> inputs, outputs, and where its `main(cfg)` lives.

The Prefect flow, the legacy executor, the dry-run plan, dag_plan.dot, dvc.yaml and the viewer
are all drawn from this table. Targets are imported only when a module runs, so planning
(and the dry run) never pays for pandas, LightGBM or Prefect.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable

from utils.artifacts import ArtifactRecord


@dataclass(frozen=True)
class ModuleResult:
    """What a module did: the artifacts it wrote and numbers worth recording."""

    outputs: list[ArtifactRecord]
    metrics: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ModuleSpec:
    id: str
    name: str
    target: str
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    description: str = ""
    reserved: bool = False
    orphan: bool = False
    appends: tuple[str, ...] = ()  # outputs that extend their previous version rather than replace it

    def load(self) -> Callable[[Any], ModuleResult]:
        """The module's `main` (or `pkg.mod:function` for modules registered by tests)."""
        path, _, attr = self.target.partition(":")
        main = getattr(importlib.import_module(path), attr or "main", None)
        if not callable(main):
            raise TypeError(f"{self.target}: module {self.id} has no main(cfg)")
        return main


class Registry:
    def __init__(self, specs: list[ModuleSpec]):
        self.specs = {spec.id: spec for spec in specs}
        self.producer: dict[str, str] = {}
        for spec in specs:
            for out in spec.outputs:
                if out in self.producer:
                    raise ValueError(f"artifact '{out}' is made by both {self.producer[out]} and {spec.id}")
                self.producer[out] = spec.id

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

    def downstream(self, module_id: str) -> list[str]:
        return [spec.id for spec in self if module_id in self.upstream(spec.id)]

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
    ModuleSpec("A", "ingest", "modules.a_ingest", (),
               ("raw_gamelogs", "quarantine", "lahman_pitching", "lahman_batting", "schedule"),
               "Retrosheet game logs (161 typed fields), Lahman pitching and batting lines, the as-of date's schedule"),
    ModuleSpec("B", "clean", "modules.b_clean", ("raw_gamelogs", "schedule"), ("games",),
               "one row a game: game_id, franchise-normalised teams, forfeit/suspended/tie/neutral flags"),
    ModuleSpec("C", "context", "modules.c_context", ("games",), ("context_features",),
               "ctx_*: park, day/night, rest, doubleheader, travel"),
    ModuleSpec("D", "team_form", "modules.d_team_form", ("games",), ("team_form_features",),
               "form_*: rolling and EWM runs, regressed win%, Pythagorean expectation"),
    ModuleSpec("E", "quality", "modules.e_quality", ("games", "quarantine"), ("data_quality_report",),
               "coverage, duplicates, nulls, quarantined lines, anomalies (read by the viewer only)",
               orphan=True),
    ModuleSpec("F", "starters", "modules.f_starters", ("games", "lahman_pitching", "lahman_batting"),
               ("starter_features",),
               "sp_*: starting pitcher's recent starts, rest, Marcel-weighted Lahman line; lu_*: lineup talent"),
    ModuleSpec("G", "ratings", "modules.g_ratings", ("games", "starter_features"), ("team_ratings",),
               "elo_*: pre-game team Elo and a starter-adjusted rating (the baseline model)"),
    ModuleSpec("H", "matchup", "modules.h_matchup", ("games",), ("matchup_features",),
               "mu_*: bullpen load, head-to-head, streaks"),
    ModuleSpec("I", "assemble", "modules.i_assemble",
               ("games", "context_features", "team_form_features", "starter_features", "team_ratings",
                "matchup_features"),
               ("model_table",), "keys, labels and every namespaced feature; refuses name clashes"),
    ModuleSpec("J", "reserved", "", description="reserved: skipped on purpose", reserved=True),
    ModuleSpec("K", "train", "modules.k_train", ("model_table",),
               ("win_model", "home_runs_model", "away_runs_model", "model_params", "model_card"),
               "LightGBM win classifier + Poisson run models, calibrated; candidates compared in the card"),
    ModuleSpec("L", "monitor", "modules.l_monitor",
               ("model_table", "win_model", "home_runs_model", "away_runs_model", "model_params", "model_card"),
               ("predictions", "prediction_log", "evaluation", "drift_report"),
               "predictions for the as-of date, evaluation of earlier ones, PSI drift report",
               appends=("prediction_log",)),
])
