"""The package's imports point one way: a graph of every ``import`` of rag_rerank modules (module
level, inside functions, where a loop is usually dodged, and type-only) has no cycle, no arrow
back up a layer, and no command module of the CLI importing another."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "rag_rerank"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Each rag_rerank module and the rag_rerank modules it imports anywhere in its code
    (``from x import name`` points at ``x.name`` when that is a module, else at ``x``)."""
    files = {_module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets.update(a.name for a in node.names if a.name.startswith("rag_rerank"))
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, *([base] if base else [])])
                if not base.startswith("rag_rerank"):
                    continue
                for alias in node.names:
                    submodule = f"{base}.{alias.name}"
                    targets.add(submodule if submodule in files else base)
        graph[name] = {t for t in targets if t in files and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(component)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycle_in_the_package() -> None:
    found = [sorted(c) for c in cycles(import_graph())]
    assert not found, f"import cycles: {found}"


@pytest.mark.parametrize(
    ("layer", "below"),
    [
        ("rag_rerank.errors", ()),
        ("rag_rerank.api", ("rag_rerank.errors",)),
        ("rag_rerank.core", ("rag_rerank.api", "rag_rerank.errors")),
    ],
)
def test_no_arrow_back_up(layer: str, below: tuple[str, ...]) -> None:
    """errors <- api <- core: each imports only itself and the layers below it."""
    allowed = (layer, *below)
    upward = {
        f"{module} -> {target}"
        for module, targets in import_graph().items()
        if module == layer or module.startswith(f"{layer}.")
        for target in targets
        if not any(target == a or target.startswith(f"{a}.") for a in allowed)
    }
    assert not upward


def test_core_imports_its_own_modules_at_module_level() -> None:
    """No import inside a function in core/ dodges a loop between core modules."""
    dodging = []
    for path in (PACKAGE / "core").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for function in ast.walk(tree):
            if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(function):
                if isinstance(node, ast.ImportFrom) and (
                    node.level or (node.module or "").startswith("rag_rerank")
                ):
                    dodging.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert not dodging


def test_render_never_imports_rag() -> None:
    """rag/ draws its results through render/, so render/ must not import rag/."""
    graph = import_graph()
    back = {
        f"{module} -> {target}"
        for module, targets in graph.items()
        if module.startswith("rag_rerank.render")
        for target in targets
        if target.startswith("rag_rerank.rag")
    }
    assert not back


def test_no_cli_command_module_imports_another() -> None:
    """Shared CLI helpers live in cli/options.py and cli/option_flags.py, not in commands."""
    helpers = {"__init__", "__main__", "options", "option_flags", "models", "output"}
    commands = {f"rag_rerank.cli.{p.stem}" for p in (PACKAGE / "cli").glob("*.py")}
    commands -= {f"rag_rerank.cli.{name}" for name in helpers}
    graph = import_graph()
    crossing = {f"{m} -> {t}" for m in commands for t in graph[m] & commands if t != m}
    assert not crossing


def test_the_hub_probe_imports_no_torch() -> None:
    """The CLI checks ``--model`` against the hub before it imports torch."""
    code = "import json, sys, rag_rerank.core.hub; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = {name.partition(".")[0] for name in json.loads(done.stdout)}
    assert not {"torch", "transformers"} & loaded
