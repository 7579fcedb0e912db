"""Fixtures the Ray tests share."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from rag_rerank import Reranker


@pytest.fixture(scope="module")
def local(bert_dir: str) -> Iterator[Reranker]:
    """The tiny BERT in this process (CPU, fp32, no cache): the scores Ray's must equal."""
    reranker = Reranker(bert_dir, device="cpu", dtype="fp32", cache=None, show_progress=False)
    yield reranker
    reranker.close()
