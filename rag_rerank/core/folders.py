"""Where rag-rerank keeps what it builds: the demo reranker, compiled CPU kernels."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["CACHE_ENV", "cache_folder"]

CACHE_ENV = "RAG_RERANK_CACHE"
"""Environment variable naming the folder :func:`cache_folder` returns."""


def cache_folder() -> Path:
    """``$RAG_RERANK_CACHE``, else ``$XDG_CACHE_HOME/rag-rerank``, else ``~/.cache/rag-rerank``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "rag-rerank"
