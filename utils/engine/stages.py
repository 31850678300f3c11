"""The engine's types: a module's spec (its stage function, the artifacts it reads and writes, its
parameters), the registry of modules (a DAG in topological order), what a stage function returns and
what a run records.

Two words, two things. A **module** is a node of the DAG (A-L): an id, a spec (`ModuleSpec`), a phase
status in each run, and `main(cfg) -> ModuleResult` (DESIGN.md's module contract: the artifacts it
wrote). Its **stage function** is the pure function the spec names: artifacts and parameters in, values
out (`StageOutput`), no files. `run_stage` turns one into the other (inputs loaded, the stage function
called, outputs validated and written); `run_module` runs a module inside a run (the overwrite policy,
its phase status).

The project's own table of modules is `modules/registry.py`; the engine is handed it.
"""
from __future__ import annotations

import ast
import hashlib
import importlib
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from utils.store.artifacts import ArtifactRecord


@dataclass(frozen=True)
class ModuleResult:
    """What a module did: the artifacts it wrote and numbers worth recording."""

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
    # dated inputs (a `date` column each): the stage keeps its output rows dated before the first day these
    # changed and computes the rest (`since=`); the first input has one row per output row, matched on
    # `history_key` (utils/engine/history.py)
    history: tuple[str, ...] = ()
    history_key: str = ""
    # "package.module:function" (cfg, store) -> str: what the dry run adds about the stage's work beyond
    # its outputs (K: whether tonight reads a kept fit or fits), told from what is on disk, writing nothing
    plan_note: str = ""
    # input -> the only columns the stage reads of it (a table): loaded alone, so a night holds less (the
    # input's hash and lineage are the whole file's, as for any input)
    input_columns: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # what the stage reads from outside the artifacts root (files, servers): no hash in the root can say
    # they are unchanged, so 'skip' never keeps its outputs (utils/engine/lineage.py)
    external: tuple[str, ...] = ()

    @property
    def module(self) -> str:
        return self.target.partition(":")[0]

    def load(self) -> Callable[..., Any]:
        """The module's stage function."""
        path, _, attr = self.target.partition(":")
        function = getattr(importlib.import_module(path), attr, None)
        if not callable(function):
            raise TypeError(f"{self.target}: stage {self.id} names no function")
        return function

    def code_files(self) -> list[Path]:
        """The module's file and the project modules it imports (what `code_version` hashes)."""
        return _project_sources(self.module)

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
            if importlib.util.find_spec(node.module).submodule_search_locations is not None:
                # `from utils.monitoring import drift` imports the module utils.monitoring.drift
                names.update(f"{node.module}.{a.name}" for a in node.names
                             if importlib.util.find_spec(f"{node.module}.{a.name}") is not None)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names if a.name.split(".")[0] in PROJECT_PACKAGES)
    return [Path(importlib.util.find_spec(name).origin) for name in sorted(names)]


def project_sources(module: str) -> list[Path]:
    """A module's file and those of the project modules it imports (what a code version hashes)."""
    return _project_sources(module)


PROJECT_PACKAGES = ("modules", "utils")
PROJECT_ROOT = Path(__file__).resolve().parents[2]  # the checkout holding modules/, utils/, dashboards/


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
            if spec.history and (not set(spec.history) <= set(spec.inputs) or not spec.history_key):
                raise ValueError(f"stage {spec.id} keeps history by inputs {list(spec.history)}: each must be among "
                                 f"its inputs, and history_key must name the column its rows are matched on")

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


def one_line(exc: BaseException) -> str:
    """An error as one line: the message of the errors that name their file, key or row; the type too otherwise."""
    from utils.store.catalog import ArtifactError

    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if isinstance(exc, (ArtifactError, ValueError, OSError)) else f"{type(exc).__name__}: {text}"


class StepFailed(Exception):
    """A post-run step failed; the message is its one-line reason (it fails the run)."""


@dataclass(frozen=True)
class PostRunHook:
    """A step after the modules (versioning, metrics), recorded in the run's status beside them.
    `run(cfg, run_dir, status, store)` returns the step's final state and a note: ("success", None),
    ("off", None) or ("skipped", why); it raises StepFailed to fail the step and so the run. Hooks run
    in order, each seeing the status as the steps before it left it."""

    name: str
    run: Callable[..., tuple[str, str | None]]
