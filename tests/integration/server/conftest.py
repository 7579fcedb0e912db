"""Fixtures the HTTP service tests share: one tiny-BERT ``Reranker`` per module (``rr``) and an
in-process client of ``create_app(rr)`` (``client``). A module that needs other settings
overrides the fixture by defining its own of the same name."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from server_testing import client_for

from rag_rerank import Reranker
from rag_rerank.server import create_app


@pytest.fixture(scope="module")
def rr(bert_dir: str) -> Iterator[Reranker]:
    """The tiny BERT cross-encoder with default settings, closed after the module."""
    reranker = Reranker(bert_dir, show_progress=False)
    yield reranker
    reranker.close()


@pytest.fixture
async def client(rr: Reranker) -> AsyncIterator[httpx.AsyncClient]:
    """``create_app(rr)`` through ASGI (no socket)."""
    async with client_for(create_app(rr)) as c:
        yield c
