"""The import structure: no cycles, and imports flow one way between the layers.

ui -> (runs, run_tags, health, settings, partitions, resources, core); trading_assets ->
(resources, core); resources -> core; core -> nothing of ours. The CLI is the console script's
entry: nothing imports it, and it loads the UI only inside its `ui` command. Both module-level and
function-level imports count (a deferred import is still a dependency).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ROOTS = {"trading_assets", "resources", "ui"}

# What the UI may import besides itself, resources and the core, and why:
UI_MAY_IMPORT = (
    "trading_assets.runs",        # Run now launches and watches runs through the runs layer
    "trading_assets.settings",    # the resources and configuration from the environment
    "trading_assets.partitions",  # the symbols partition list (add / remove a symbol)
    "trading_assets.run_tags",    # what runs cover and who launched them (the last run column)
    "trading_assets.health",      # whether the daemon and the Dagster UI are up (the banner)
)

# Known back-edges, each to be removed by the change named; the test prints them. An entry is
# (importing module or package prefix, imported module). None are left.
ALLOWED_BACK_EDGES: set[tuple[str, str]] = set()


def _within(name: str, prefixes: tuple[str, ...] | set[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for root in ROOTS for path in (ROOT / root).rglob("*.py")}


def _imports(tree: ast.AST, top_level: bool) -> list[tuple[str, ast.AST]]:
    """(module of ours, import node) for each import in `tree`: when it loads, or anywhere."""
    if top_level:  # what runs at import time; `if TYPE_CHECKING:` blocks never do
        nodes = [n for stmt in tree.body if not (isinstance(stmt, ast.If) and "TYPE_CHECKING"
                                                 in ast.unparse(stmt.test))
                 for n in ast.walk(stmt) if not isinstance(stmt, ast.FunctionDef | ast.ClassDef)]
    else:
        nodes = list(ast.walk(tree))
    found = []
    for node in nodes:
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from trading_assets import cli` imports trading_assets.cli; `from x.y import f`
            # imports x.y (f may be a function).
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        found.extend((n, node) for n in names if n.split(".")[0] in ROOTS)
    return found


def _edges(top_level: bool) -> dict[str, set[str]]:
    """Module -> the modules of ours it imports (names that are modules, not functions)."""
    modules = _modules()
    return {name: {m for m, _ in _imports(ast.parse(path.read_text()), top_level)
                   if m in modules and m != name}
            for name, path in modules.items()}


def layer_allows(name: str, target: str) -> bool:
    """Whether module `name` may import module `target` (the rules in the docstring)."""
    if _within(name, ("trading_assets.core",)):
        return _within(target, ("trading_assets.core",))
    if _within(name, ("resources",)):
        return _within(target, ("resources", "trading_assets.core"))
    if _within(name, ("ui",)):
        return _within(target, ("ui", "resources", "trading_assets.core", *UI_MAY_IMPORT))
    if name == "trading_assets.cli":
        return True  # its ui import is checked on its own (only inside the `ui` command)
    return not _within(target, ("ui",))  # the rest of trading_assets: never the UI


def _back_edges() -> list[tuple[str, str]]:
    """(importer, imported module) pairs that go against the layering."""
    modules = _modules()
    bad = []
    for name, path in sorted(modules.items()):
        imported = {m for m, _ in _imports(ast.parse(path.read_text()), top_level=False)}
        # Only modules (`from x.y import f` names f too); the bare package `trading_assets`
        # (its __init__ only filters warnings) is harmless.
        bad += [(name, t) for t in sorted(imported) if t in modules and t not in ROOTS
                and not layer_allows(name, t)]
    return bad


def _allowed(edge: tuple[str, str]) -> bool:
    name, target = edge
    return any(_within(name, (prefix,)) and target == allowed
               for prefix, allowed in ALLOWED_BACK_EDGES)


def test_imports_flow_one_way_between_the_layers() -> None:
    edges = _back_edges()
    allowed = [e for e in edges if _allowed(e)]
    for name, target in allowed:
        print(f"allowed back-edge (to remove): {name} -> {target}")
    assert [e for e in edges if not _allowed(e)] == []
    # Every allow-list entry is still needed; remove it with its back-edge.
    unused = {entry for entry in ALLOWED_BACK_EDGES
              if not any(_within(n, (entry[0],)) and t == entry[1] for n, t in allowed)}
    assert not unused, f"allow-list entries no longer needed: {sorted(unused)}"


def test_the_layer_rules_refuse_each_kind_of_back_edge() -> None:
    assert not layer_allows("trading_assets.core.orders", "trading_assets.settings")
    assert not layer_allows("resources.llm", "trading_assets.prompts")
    assert not layer_allows("resources.migrations", "trading_assets.settings")
    assert not layer_allows("ui.services", "trading_assets.assets.scorecard")
    assert not layer_allows("ui.app", "trading_assets.cli")
    assert not layer_allows("trading_assets.automation.symbols", "ui.services")
    assert layer_allows("resources.llm", "trading_assets.core.redact")
    assert layer_allows("ui.app", "trading_assets.runs")
    assert layer_allows("trading_assets.automation", "resources.app_db")
    # The walk sees function-level imports too (a deferred import is still a dependency).
    tree = ast.parse("def f():\n    from trading_assets.assets.scorecard import x\n"
                     "import resources.app_db\n")
    assert sorted(m for m, _ in _imports(tree, top_level=False)) == [
        "resources.app_db", "trading_assets.assets.scorecard",
        "trading_assets.assets.scorecard.x"]
    assert [m for m, _ in _imports(tree, top_level=True)] == ["resources.app_db"]


def test_nothing_imports_the_cli_and_the_cli_imports_the_ui_only_in_its_ui_command() -> None:
    anywhere = _edges(top_level=False)
    assert [n for n in anywhere if "trading_assets.cli" in anywhere[n]] == []
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'trading-signals = "trading_assets.cli:main"' in pyproject  # the one entry
    tree = ast.parse((ROOT / "trading_assets" / "cli.py").read_text())
    ui_imports = []
    for function in [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]:
        ui_imports += [(function.name, m) for m, _ in _imports(function, top_level=False)
                       if _within(m, ("ui",))]
    all_ui = [m for m, _ in _imports(tree, top_level=False) if _within(m, ("ui",))]
    assert ui_imports and {f for f, _ in ui_imports} == {"cmd_ui"}
    assert len(all_ui) == len(ui_imports)  # none at module level or in another function


def test_no_import_cycles_and_the_ui_goes_through_the_runs_layer() -> None:
    anywhere = _edges(top_level=False)
    ui_imports = {m for n in anywhere if n.startswith("ui") for m in anywhere[n]}
    assert "trading_assets.runs" in ui_imports  # Run now goes through the runs layer
    graph = _edges(top_level=True)

    cycles = []
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert cycles == []
