"""The design's code rules, checked on the source: dot access to config, real config paths, main(cfg)."""
import ast
import importlib
import inspect
from pathlib import Path

import pytest
from pydantic import BaseModel

from modules.registry import REGISTRY
from tests.conftest import ROOT
from utils.config import PipelineConfig

SOURCES = [ROOT / "pipeline.py", ROOT / "phase_status.py", *sorted((ROOT / "modules").glob("*.py")),
           *sorted((ROOT / "utils").rglob("*.py")), *sorted((ROOT / "dashboards").glob("*.py"))]
CONFIG_NAMES = {"cfg", "config"}


def chain(node: ast.AST) -> list[str] | None:
    """`cfg.a.b` -> ['cfg', 'a', 'b']; None if the expression is not rooted at a config name."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name) and node.id in CONFIG_NAMES:
        return [node.id, *reversed(parts)]
    return None


def violations(source: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Subscript) and chain(node.value):
            found.append(f"line {node.lineno}: subscript on config {'.'.join(chain(node.value))}[...]")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get" \
                and chain(node.func.value):
            found.append(f"line {node.lineno}: .get() on config {'.'.join(chain(node.func.value))}")
    return found


def test_the_checker_catches_what_it_should():
    bad = "def f(cfg):\n    a = cfg['x']\n    b = cfg.run.get('y')\n    c = config.paths['z']\n"
    assert len(violations(bad)) == 3
    assert violations("def f(cfg):\n    return cfg.run.as_of, other['x'], d.get('y')\n") == []


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_subscript_or_get_on_config(path):
    assert violations(path.read_text()) == []


def config_chains(path: Path) -> list[tuple[int, list[str]]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Attribute):  # inner prefixes of a chain are visited too; all must resolve
            parts = chain(node)
            if parts and len(parts) > 1:
                out.append((node.lineno, parts[1:]))
    return out


def resolves(parts: list[str]) -> bool:
    model: type[BaseModel] = PipelineConfig
    for i, part in enumerate(parts):
        if part in model.model_fields:
            annotation = model.model_fields[part].annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                model = annotation
                continue
            return True  # a leaf value; what follows is a method of the value (e.g. .year)
        if isinstance(getattr(model, part, None), property) or part.startswith("model_"):
            return True
        return False
    return True


@pytest.mark.parametrize("path", sorted((ROOT / "modules").glob("*.py")), ids=lambda p: p.name)
def test_every_config_chain_in_modules_names_a_real_field(path):
    bad = [f"line {line}: cfg.{'.'.join(parts)}" for line, parts in config_chains(path) if not resolves(parts)]
    assert bad == []


def test_chain_resolution_rejects_a_misspelling():
    assert resolves(["features", "form", "window"])
    assert not resolves(["features", "form", "windwo"])
    assert resolves(["run", "as_of", "year"])  # a leaf, then a method of its value


@pytest.mark.parametrize("spec", [s for s in REGISTRY if not s.reserved], ids=lambda s: s.id)
def test_every_stage_is_a_function_of_its_inputs_and_parameters_and_keeps_main_cfg(spec):
    function = spec.load()
    arguments = set(inspect.signature(function).parameters)
    # every input, appended output, parameter and resource is an argument, and nothing else is; a stage
    # that keeps its settled rows also takes `since`, defaulting to every row
    assert arguments == {*spec.inputs, *spec.appends, *spec.params, *spec.resources, *(("since",) if spec.history
                                                                                       else ())}
    if spec.history:
        assert inspect.signature(function).parameters["since"].default is None
    assert "cfg" not in arguments
    module = importlib.import_module(spec.module)
    assert list(inspect.signature(module.main).parameters) == ["cfg"]  # the contract users script against
    assert spec.module == f"modules.{spec.id.lower()}_{spec.name}"
    assert all(resolves(dotted.split(".")) for dotted in spec.params.values())


def test_modules_never_open_the_yaml_or_build_artifact_paths():
    for path in sorted((ROOT / "modules").glob("*.py")):
        text = path.read_text()
        assert "import yaml" not in text and "config.yaml" not in text, path.name
        assert "\"artifacts" not in text and "/ \"data\"" not in text, path.name


LAYOUT = {"data", "runs", "backtest", "cache", "metrics", "logs"}
LAYOUT_FILES = {".phase_status.yaml", ".run.lock", "phase_status.yaml", "manifest.json", "mlb_pipeline.prom",
                "last_success_timestamp"}


def layout_joins(source: str) -> list[str]:
    """Places that join a folder or file of the artifacts root's layout themselves (`x / "runs"`)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div) and isinstance(node.right, ast.Constant) \
                and node.right.value in LAYOUT | LAYOUT_FILES:
            found.append(f"line {node.lineno}: / {node.right.value!r}")
        if isinstance(node, ast.Constant) and node.value in LAYOUT_FILES:
            found.append(f"line {node.lineno}: {node.value!r}")
    return sorted(set(found))


def test_the_layout_checker_catches_what_it_should():
    # what module A did on cab14e4: it built its cache paths itself
    assert layout_joins('source = RetrosheetSource(url, store.root / "cache" / "retrosheet")\n') == [
        "line 1: / 'cache'"]
    assert layout_joins('runs = Path(root) / "runs"\nx = "manifest.json"\n') == [
        "line 1: / 'runs'", "line 2: 'manifest.json'"]
    assert layout_joins('store.catalog.cache("retrosheet")\n') == []


@pytest.mark.parametrize("path", [p for p in SOURCES if p.name != "catalog.py"], ids=lambda p: str(p.relative_to(ROOT)))
def test_only_the_catalog_knows_the_artifacts_root_s_layout(path):
    assert layout_joins(path.read_text()) == []


def test_the_readme_dag_map_is_the_registry_s():
    from utils.engine.plan import markdown

    readme = (ROOT / "README.md").read_text()
    copy = readme[readme.index("<!-- dag:begin -->\n") + len("<!-- dag:begin -->\n"):readme.index("<!-- dag:end -->")]
    assert copy == markdown(REGISTRY), "the README's DAG map is stale: `python pipeline.py dag --format markdown`"


# What each part of the project may import of the project (besides itself): the layers run one way.
# utils/ never imports modules/ (the engine is handed the registry and its post-run hooks), with the one
# exception below; nothing imports the viewer.
MAY_IMPORT = {
    "utils.store": (),
    "utils.engine": ("utils.store", "phase_status"),
    "utils.sources": ("utils.store", "utils.engine.progress"),
    "utils.monitoring": ("utils.store", "utils.engine.stages", "phase_status"),
    "utils.flows": ("utils", "phase_status", "pipeline"),
    "utils.config": (),
    "utils.errors": ("utils", "phase_status"),
    "phase_status": ("utils.store",),
    "modules": ("modules", "utils.store", "utils.engine.stages", "utils.engine.progress", "utils.engine.threads",
                "utils.engine.one_stage", "utils.sources", "utils.monitoring", "utils.config"),
}
ALLOWED_EXCEPTIONS = {  # (importer, imported): why
    ("utils.flows.backtest", "modules.k_train"): "a backtest retrains the stage's models at each retrain date",
    ("utils.flows.backtest", "modules.models"): "a backtest predicts with them as L does",
    ("utils.flows.backtest", "modules.registry"): "a backtest runs A-I of the project's registry",
}


def project_imports(root: Path = ROOT) -> dict[str, set[str]]:
    """Every project module (utils, modules, phase_status) -> the project modules it imports, anywhere in
    its file (a lazy import inside a function counts: it is still an arrow)."""
    files = [*root.glob("utils/**/*.py"), *root.glob("modules/*.py"), root / "phase_status.py"]
    names = {".".join(p.relative_to(root).with_suffix("").parts).removesuffix(".__init__"): p for p in files}
    known = set(names) | {"pipeline", "dashboards"}

    def resolve(name: str) -> str | None:
        while name and name not in known:
            name = name.rpartition(".")[0]
        return name or None

    graph = {}
    for name, path in names.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.update(resolve(f"{node.module}.{a.name}") or resolve(node.module) for a in node.names)
            elif isinstance(node, ast.Import):
                found.update(resolve(a.name) for a in node.names)
        graph[name] = {f for f in found if f and f != name}
    return graph


def layer(name: str) -> str | None:
    return max((key for key in MAY_IMPORT if name == key or name.startswith(key + ".")), key=len, default=None)


def wrong_arrows(graph: dict[str, set[str]]) -> list[str]:
    bad = []
    for importer, imported in sorted(graph.items()):
        own = layer(importer)
        for target in sorted(imported):
            allowed = own is None or layer(target) == own or any(
                target == ok or target.startswith(ok + ".") for ok in MAY_IMPORT[own])
            if not allowed and (importer, target) not in ALLOWED_EXCEPTIONS:
                bad.append(f"{importer} imports {target}")
    return bad


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    cycles, state, stack = [], {}, []

    def visit(node: str) -> None:
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return cycles


def test_the_import_rules_catch_what_they_should():
    graph = {"utils.store.catalog": {"utils.engine.session"}, "utils.engine.session": {"modules.registry"},
             "utils.sources.events": {"modules.a_ingest"}, "modules.a_ingest": {"utils.sources.events"},
             "utils.flows.backtest": {"modules.k_train"}}
    assert wrong_arrows(graph) == ["utils.engine.session imports modules.registry",
                                   "utils.sources.events imports modules.a_ingest",
                                   "utils.store.catalog imports utils.engine.session"]
    assert import_cycles(graph) == [["modules.a_ingest", "utils.sources.events", "modules.a_ingest"]]


def test_imports_run_one_way_and_never_in_a_circle():
    graph = project_imports()
    assert {"utils.store.artifacts", "utils.engine.session", "utils.sources.statsapi", "modules.a_ingest"} <= set(graph)
    assert wrong_arrows(graph) == []
    assert import_cycles(graph) == []
    # the exceptions are still needed, or they go
    assert all(target in graph[importer] for importer, target in ALLOWED_EXCEPTIONS)


def test_every_part_of_utils_says_what_it_owns_and_may_import():
    for package in sorted(p.parent for p in (ROOT / "utils").glob("*/__init__.py")):
        doc = ast.get_docstring(ast.parse((package / "__init__.py").read_text())) or ""
        assert "May import" in doc, package.name
