"""Imports point one way: the views in render/ never import the RAG package that draws itself
through them, and no CLI command module imports another (shared helpers live in
cli/options.py and cli/option_flags.py). Read from the source, so lazy and type-only imports
count too."""

from __future__ import annotations

import ast
from pathlib import Path

import rag_rerank

PACKAGE = Path(rag_rerank.__file__).parent
CLI_HELPERS = {"__init__", "__main__", "options", "option_flags", "models", "output"}


def imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports, absolute (``rag_rerank.x.y``), wherever the import is."""
    package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1])
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            module = ".".join(part for part in (base, node.module or "") if part)
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def test_render_never_imports_rag() -> None:
    for path in (PACKAGE / "render").glob("*.py"):
        loops = {m for m in imported_modules(path) if m.startswith("rag_rerank.rag")}
        assert not loops, (path.name, loops)


def test_no_cli_command_module_imports_another() -> None:
    commands = {p.stem for p in (PACKAGE / "cli").glob("*.py")} - CLI_HELPERS
    for path in (PACKAGE / "cli").glob("*.py"):
        if path.stem in CLI_HELPERS:
            continue
        others = {f"rag_rerank.cli.{name}" for name in commands - {path.stem}}
        assert not imported_modules(path) & others, path.name
