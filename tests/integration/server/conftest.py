"""Fixtures the HTTP service tests share: one tiny-BERT ``Reranker`` per module (``rr``), an
in-process client of ``create_app(rr)`` (``client``) and a slower model for the shutdown tests
(``busy_bert_dir``). A module that needs other settings overrides the fixture by defining its own
of the same name."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from server_testing import client_for

from rag_rerank import Reranker, testing
from rag_rerank.core.loading import quiet_hub
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


@pytest.fixture(scope="session")
def busy_bert_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A random BERT cross-encoder of MiniLM-L6's shape (384 wide, 6 layers, 512 positions): the
    same request costs it about 20x what it costs the tiny model. The shutdown tests need work
    that is still running when the signal comes; on the tiny model, with the compiled CPU
    attention, their "minutes of work" took under 2 s and the drain finished it."""
    tokenizer = testing.bert_tokenizer()
    model = testing.random_cross_encoder(
        "bert",
        tokenizer,
        vocab_size=tokenizer.vocab_size,
        hidden_size=384,
        num_hidden_layers=6,
        num_attention_heads=12,
        intermediate_size=1536,
        max_position_embeddings=512,
    )
    folder = Path(tmp_path_factory.mktemp("models")) / "busy-bert"
    with quiet_hub():  # no "Writing model shards" bar
        model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)
