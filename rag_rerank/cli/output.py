"""What every command prints the same way: error lines, the model line, the terminal console."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..core import Reranker

__all__ = ["console", "error", "model_line"]


def error(message: str) -> None:
    """Print ``rag-rerank: error: <message>`` on stderr: one line, no traceback."""
    print(f"rag-rerank: error: {message}", file=sys.stderr)


def model_line(reranker: Reranker, *, parameters: bool = False) -> str:
    """``model: <name> on <device> (<dtype>[; CPU bf16 native or not])``, the first line of a
    command's report; with ``parameters``, the model's parameter count after its name."""
    size = f" ({reranker.num_parameters:,} parameters)" if parameters else ""
    return f"model: {reranker.model_name}{size} on {reranker.device} ({reranker.precision})"


def console() -> Any:
    """A ``rich`` console for tables (imported on use: ``--help`` does not load rich)."""
    from rich.console import Console

    return Console(highlight=False)
