"""Fixtures the HTTP service tests share: one tiny-BERT ``Reranker`` per module (``rr``), an
in-process client of ``create_app(rr)`` (``client``) and a slower model for the shutdown tests
(``busy_bert_dir``). A module that needs other settings overrides the fixture by defining its own
of the same name."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from server_testing import client_for

from rag_rerank import Reranker
from rag_rerank.server import create_app

BENCHMARKS = Path(__file__).resolve().parents[3] / "benchmarks"


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


@pytest.fixture(scope="session")
def busy_bert_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The benchmarks' random-weight MiniLM-L6 cross-encoder (``benchmarks/harness``'s
    ``minilm-l6`` shape: 384 wide, 6 layers, 512 positions): the same request costs it about 20x
    what it costs the tiny model. The shutdown tests need work that is still running when the
    signal comes; on the tiny model, with the compiled CPU attention, their "minutes of work"
    took under 2 s and the drain finished it."""
    sys.path.insert(0, str(BENCHMARKS))
    from harness.shapes import SHAPES, build_model

    return str(build_model(SHAPES["minilm-l6"], tmp_path_factory.mktemp("models") / "busy-bert"))
