"""The package's imports point one way: a graph of every ``import`` of rag_rerank modules (module
level and inside functions, where a loop is usually dodged) has no cycle."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "rag_rerank"

# Loops being broken on another branch (engineer h28-cli, issue 28 item 4): rag/results.py <->
# render/, and cli/__init__ <-> the command modules (their TYPE_CHECKING import of Subparsers,
# which moves to cli/options.py). Remove each once that branch is merged.
KNOWN_LOOPS = [
    {"rag_rerank.rag.results", "rag_rerank.render"},
    {"rag_rerank.cli"},
]


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


def _is_known_as(component: set[str], loop: set[str]) -> bool:
    """Every module of ``component`` is (in) one of ``loop``'s, and each of those is in it."""
    return all(any(m == k or m.startswith(f"{k}.") for m in component) for k in loop) and all(
        any(m == k or m.startswith(f"{k}.") for k in loop) for m in component
    )


def _is_known(component: set[str]) -> bool:
    return any(_is_known_as(component, loop) for loop in KNOWN_LOOPS)


def test_no_import_cycle_in_the_package() -> None:
    found = cycles(import_graph())
    unknown = [sorted(c) for c in found if not _is_known(c)]
    assert not unknown, f"import cycles: {unknown}"


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


@pytest.mark.parametrize("loop", KNOWN_LOOPS, ids=lambda loop: min(loop))
def test_a_known_loop_is_still_there(loop: set[str]) -> None:
    """Says (xfail) when h28-cli's branch has broken a known loop: then delete it from
    KNOWN_LOOPS."""
    if not any(_is_known_as(c, loop) for c in cycles(import_graph())):
        pytest.xfail(f"the {sorted(loop)} loop is gone: remove it from KNOWN_LOOPS")


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


def test_the_hub_probe_imports_no_torch() -> None:
    """The CLI checks ``--model`` against the hub before it imports torch."""
    code = "import json, sys, rag_rerank.core.hub; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = {name.partition(".")[0] for name in json.loads(done.stdout)}
    assert not {"torch", "transformers"} & loaded
