"""Turning a module selection into a checked plan, the dry run's text, and the DAG's drawings
(text, dot, mermaid, the README's markdown, svg/png through graphviz)."""
from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from utils.engine.lineage import lineage, stage_params, stale_reason
from utils.engine.stages import Registry
from utils.store.artifacts import ArtifactError, ArtifactStore, atomic_write_bytes


class PlanError(ValueError):
    """The selection cannot run (unknown id, missing input); exit 2."""


@dataclass(frozen=True)
class Plan:
    modules: list[str]
    levels: list[list[str]]
    notes: list[str] = field(default_factory=list)


def make_plan(registry: Registry, requested: list[str] | None, store: ArtifactStore) -> Plan:
    """Validate the selection and that every input is made upstream or present and hash-valid."""
    notes: list[str] = []
    wanted = [m.strip().upper() for m in requested] if requested else [s.id for s in registry]
    unknown = [m for m in wanted if m not in registry.specs]
    if unknown:
        raise PlanError(f"--modules: unknown module id(s) {', '.join(unknown)}; known: {', '.join(registry.specs)}")
    for module_id in wanted if requested else []:  # a note only for a reserved id asked for by name
        if registry[module_id].reserved:
            notes.append(f"{module_id} is reserved and skipped on purpose")
    selected = [s.id for s in registry if s.id in wanted and not s.reserved]
    made = {out for m in selected for out in registry[m].outputs}
    problems = []
    for module_id in selected:
        for name in registry[module_id].inputs:
            if name in made:
                continue
            try:
                store.verify(name)
            except ArtifactError as exc:
                producer = registry.producer.get(name, "?")
                problems.append(f"module {module_id} needs '{name}' (made by {producer}), which is not selected "
                                f"and not usable on disk: {exc}")
    if problems:
        raise PlanError(problems[0] if len(problems) == 1 else "; ".join(problems))
    return Plan(selected, registry.levels(selected), notes)


def describe_outputs(registry: Registry, plan: Plan, store: ArtifactStore, policy: str, cfg=None) -> dict[str, str]:
    """What the overwrite policy would do to each output of the plan (no file is touched). Under 'skip'
    (given the config) it says whether the stage's outputs are up to date, and if not, why."""
    effects = {}
    for module_id in plan.modules:
        spec = registry[module_id]
        reason = None
        if policy == "skip" and cfg is not None and spec.outputs:
            try:
                reason = stale_reason(cfg, spec, store)
            except Exception as exc:  # a dry run describes; the run itself records the failure
                reason = f"cannot tell ({' '.join(str(exc).split())[:160]})"
        for name in spec.outputs:
            if not store.resolve_output_path(name).exists():
                effects[name] = "new"
            elif policy == "fail":
                effects[name] = "ERROR: exists and policy is fail"
            elif policy == "skip":
                effects[name] = "keep (up to date; module skipped)" if reason is None else f"rebuild: {reason}"
            else:
                effects[name] = "append" if name in spec.appends else "replace"
                if spec.history and cfg is not None:
                    effects[name] += f"; {_history(cfg, spec, store)}"
        skipped = policy == "skip" and reason is None  # up to date: the stage does not run
        if spec.plan_note and cfg is not None and spec.outputs and policy != "fail" and not skipped:
            first = spec.outputs[0]
            effects[first] += f"; {_plan_note(cfg, spec, store)}"
    return effects


def _plan_note(cfg, spec, store: ArtifactStore) -> str:
    """The stage's own word on tonight's work (ModuleSpec.plan_note); a dry run never fails on it."""
    import importlib

    path, _, attr = spec.plan_note.partition(":")
    try:
        return getattr(importlib.import_module(path), attr)(cfg, store)
    except Exception as exc:  # noqa: BLE001 - a dry run describes; the run itself records any failure
        return f"cannot tell ({' '.join(str(exc).split())[:160]})"


def _history(cfg, spec, store: ArtifactStore) -> str:
    """What the stage keeps of its settled rows (utils/engine/history.py), as far as can be told before
    its inputs are made: its code, parameters and undated inputs as they are now."""
    from utils.engine import history

    try:
        hashes = {n: store.valid_hash(n) for n in spec.inputs if n not in spec.history}
        return history.describe(cfg, store, spec, lineage(spec, stage_params(cfg, spec), hashes))
    except Exception as exc:  # a dry run describes; the run itself records the failure
        return f"cannot tell what is kept ({' '.join(str(exc).split())[:160]})"


def plan_text(registry: Registry, plan: Plan, effects: dict[str, str]) -> str:
    lines = []
    for depth, level in enumerate(plan.levels):
        lines.append(f"level {depth} (parallel): {', '.join(level)}")
        for module_id in level:
            spec = registry[module_id]
            lines.append(f"  {module_id} {spec.name}: {spec.description}")
            lines.append(f"      reads:  {', '.join(spec.inputs) or '(sources)'}")
            for name in spec.outputs:
                lines.append(f"      writes: {name}  [{effects.get(name, 'new')}]")
    lines.extend(f"note: {note}" for note in plan.notes)
    return "\n".join(lines)


def ascii_dag(registry: Registry, plan: Plan) -> str:
    """The DAG by level, each box listing the modules it waits for."""
    lines = []
    for depth, level in enumerate(plan.levels):
        boxes = []
        for module_id in level:
            ups = [u for u in registry.upstream(module_id) if u in plan.modules]
            boxes.append(f"[{module_id} {registry[module_id].name}{' <- ' + ','.join(ups) if ups else ''}]")
        if depth:
            lines.append("   |")
            lines.append("   v")
        lines.append("  ".join(boxes))
    reserved = [s.id for s in registry if s.reserved]
    if reserved:
        lines.append(f"({', '.join(reserved)} reserved, not run)")
    return "\n".join(lines)


STATUS_COLOURS = {
    "success": "#b7e4c7", "failed": "#f4a3a3", "skipped": "#e9ecef", "running": "#ffe08a",
    "pending": "#ffffff", "never run": "#ffffff", "reserved": "#f8f9fa", "interrupted": "#f4c28a",
    "up to date": "#d8f3dc", "not run": "#e9ecef",  # the viewer's two kinds of 'skipped'
}


def dag_dot(registry: Registry, selected: list[str] | None = None, statuses: dict[str, str] | None = None) -> str:
    """Graphviz source: module nodes, artifact edges; J dashed as reserved, orphans marked."""
    selected = selected if selected is not None else [s.id for s in registry.runnable]
    lines = ["digraph mlb_pipeline {", '  rankdir=LR;',
             '  node [shape=box, style="rounded,filled", fontname="Helvetica"];']
    for spec in registry:
        if spec.reserved:
            label, colour, style = f"{spec.id} (reserved)", STATUS_COLOURS["reserved"], "dashed,rounded,filled"
        else:
            state = (statuses or {}).get(spec.id, "never run" if statuses is not None else "pending")
            label = f"{spec.id} {spec.name}" + ("\\n(orphan)" if spec.orphan else "")
            label += f"\\n{state}" if statuses is not None else ""
            colour = STATUS_COLOURS.get(state, "#ffffff")
            style = "rounded,filled" if spec.id in selected else "rounded,filled,dotted"
        lines.append(f'  {spec.id} [label="{label}", fillcolor="{colour}", style="{style}"];')
    lines += [f'  {producer} -> {consumer} [label="{name}", fontsize=9];'
              for producer, consumer, name in registry.edges()]
    lines.append("}")
    return "\n".join(lines) + "\n"


def checked_plan(registry: Registry, store: ArtifactStore, requested: list[str] | None) -> Plan:
    """make_plan, and every output's contract loaded: a run that could not write its outputs never starts.
    PlanError (exit 2) for either."""
    plan = make_plan(registry, requested, store)
    try:
        for name in {out for m in plan.modules for out in registry[m].outputs}:
            store.contract(name)
    except ValueError as exc:  # SchemaError
        raise PlanError(str(exc)) from None
    return plan


def dry_run_text(cfg, registry: Registry, plan: Plan, store: ArtifactStore) -> str:
    """What `run --dry-run` prints: the settings, then the plan by level with each output's fate."""
    head = (f"dry run: as of {cfg.run.as_of}, executor {cfg.run.executor}, max_workers {cfg.run.max_workers}, "
            f"overwrite policy {cfg.run.overwrite_policy}, artifacts in {cfg.paths.artifacts}")
    effects = describe_outputs(registry, plan, store, cfg.run.overwrite_policy, cfg)
    return head + "\n" + plan_text(registry, plan, effects)


def render(source: str, fmt: str, target: Path) -> Path:
    """Graphviz source drawn by `dot` into `target` (svg, png); PlanError when dot is not installed."""
    import subprocess

    if not shutil.which("dot"):
        raise PlanError(f"graphviz 'dot' is not installed; cannot write {target} (use --format dot or text)")
    try:
        drawn = subprocess.run(["dot", f"-T{fmt}"], input=source.encode(), check=True, timeout=30,
                               capture_output=True).stdout
    except subprocess.CalledProcessError as exc:
        raise PlanError(f"{target}: dot failed ({' '.join(exc.stderr.decode(errors='replace').split())[:160]})") \
            from None
    except subprocess.TimeoutExpired:
        raise PlanError(f"{target}: dot took more than 30 s") from None
    write_file(target, drawn)
    return target


def write_file(path: Path, payload: bytes) -> None:
    """Atomically, as every artifact: a link planted at `path` is replaced, never written through."""
    try:
        atomic_write_bytes(path, payload)
    except OSError as exc:
        raise PlanError(f"{path}: cannot write ({exc.strerror or exc})") from None


def write_visual(registry: Registry, selected: list[str], out_dir: Path) -> tuple[list[Path], str | None]:
    """dag_plan.dot always, dag_plan.svg when graphviz's `dot` is on PATH; (written, a note if not)."""
    dot_path = out_dir / "dag_plan.dot"
    source = dag_dot(registry, selected)
    write_file(dot_path, source.encode())
    if not shutil.which("dot"):
        return [dot_path], "graphviz 'dot' not found; wrote dag_plan.dot only"
    return [dot_path, render(source, "svg", out_dir / "dag_plan.svg")], None


def mermaid(registry: Registry) -> str:
    """The DAG as a mermaid flowchart (the README's map): modules as nodes, artifacts on the edges."""
    lines = ["flowchart LR"]
    for spec in registry:
        label = f"{spec.id} (reserved)" if spec.reserved else \
            f"{spec.id} {spec.name}" + (" (orphan)" if spec.orphan else "")
        lines.append(f'    {spec.id}["{label}"]')
    lines += [f"    {producer} -->|{name}| {consumer}" for producer, consumer, name in registry.edges()]
    return "\n".join(lines) + "\n"


def module_matrix(registry: Registry) -> str:
    """The registry as a markdown table: id, stage function, inputs, outputs, parameters (config keys)."""
    rows = ["| id | name | function | inputs | outputs | parameters |", "|---|---|---|---|---|---|"]
    for spec in registry:
        if spec.reserved:
            rows.append(f"| {spec.id} | — | reserved, skipped on purpose | — | — | — |")
            continue
        params = ", ".join(f"`{arg}` = `{key}`" for arg, key in spec.params.items()) or "—"
        rows.append(f"| {spec.id} | {spec.name} | `{spec.target}` | {', '.join(spec.inputs) or '(sources)'} | "
                    f"{', '.join(spec.outputs)} | {params} |")
    return "\n".join(rows) + "\n"


def markdown(registry: Registry) -> str:
    """The README's DAG map: a mermaid flowchart and the module matrix, both drawn from the registry."""
    return f"```mermaid\n{mermaid(registry)}```\n\n{module_matrix(registry)}"


def draw(registry: Registry, fmt: str, out: Path | None = None) -> str:
    """The whole DAG as text, dot, mermaid or the README's markdown; or rendered to an svg/png file
    (returns 'wrote PATH')."""
    if fmt == "markdown":
        return markdown(registry)
    if fmt == "text":
        modules = [s.id for s in registry.runnable]
        return ascii_dag(registry, Plan(modules, registry.levels(modules)))
    if fmt == "mermaid":
        return mermaid(registry)
    if fmt == "dot":
        return dag_dot(registry)
    return f"wrote {render(dag_dot(registry), fmt, out or Path(f'dag.{fmt}'))}"
