"""The package's public names and its namespace-package layout."""

from __future__ import annotations

from pathlib import Path

import llama_index.postprocessor.rag_rerank as package
from llama_index.core.postprocessor.types import BaseNodePostprocessor

ROOT = Path(__file__).resolve().parents[3] / "integrations" / "llama_index"


def test_all() -> None:
    assert sorted(package.__all__) == ["RETRIEVAL_SCORE_KEY", "RagRerank", "SupportsRerank"]
    assert issubclass(package.RagRerank, BaseNodePostprocessor)


def test_namespace_layout() -> None:
    # Like LlamaIndex's own integrations: only the leaf package has an __init__.py.
    assert not (ROOT / "llama_index" / "__init__.py").exists()
    assert not (ROOT / "llama_index" / "postprocessor" / "__init__.py").exists()
    assert (ROOT / "llama_index" / "postprocessor" / "rag_rerank" / "__init__.py").exists()
    assert (ROOT / "llama_index" / "postprocessor" / "rag_rerank" / "py.typed").exists()
