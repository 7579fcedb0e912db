"""Contract tests of RagRerankRetriever, and of RagRerank inside ContextualCompressionRetriever."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from uuid import UUID

import pytest
from langchain_core.callbacks import (
    AsyncCallbackManagerForRetrieverRun,
    BaseCallbackHandler,
    CallbackManagerForRetrieverRun,
)
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnableLambda
from langchain_rag_rerank import RagRerank, RagRerankRetriever
from pydantic import Field, ValidationError

from rag_rerank import InvalidInputError, InvalidInputTypeError, Reranker

QUERY = "What does the panda eat?"


class ListRetriever(BaseRetriever):
    """A base retriever returning fixed documents, with a native async path (no threads)."""

    documents: list[Any]

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Any]:
        return list(self.documents)

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun
    ) -> list[Any]:
        return list(self.documents)


class KwargsRetriever(ListRetriever):
    """Like ListRetriever, and records the per-call keyword arguments it is given."""

    received: list[dict[str, Any]] = Field(default_factory=list)

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Any]:
        self.received.append(kwargs)
        return list(self.documents)

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Any]:
        self.received.append(kwargs)
        return list(self.documents)


class NoThreadsExecutor(ThreadPoolExecutor):
    def submit(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the async path ran sync code in a thread pool")


class RetrieverEvents(BaseCallbackHandler):
    def __init__(self) -> None:
        self.starts: list[tuple[UUID, UUID | None]] = []
        self.ends: dict[UUID, list[Document]] = {}

    def on_retriever_start(self, serialized, query, *, run_id, parent_run_id=None, **kw) -> None:
        self.starts.append((run_id, parent_run_id))

    def on_retriever_end(self, documents, *, run_id, **kw) -> None:
        self.ends[run_id] = list(documents)


def assert_same(got: list[Document], expected: list[Document]) -> None:
    """Same documents in the same order; scores equal up to float noise from batch padding."""
    assert [(d.id, d.page_content) for d in got] == [(d.id, d.page_content) for d in expected]
    scores = [d.metadata.pop("relevance_score") for d in got]
    expected_scores = [d.metadata["relevance_score"] for d in expected]
    assert scores == pytest.approx(expected_scores, abs=1e-5)
    assert [d.metadata for d in got] == [
        {k: v for k, v in d.metadata.items() if k != "relevance_score"} for d in expected
    ]


@pytest.fixture
def candidates(lc_documents) -> list[Document]:
    return lc_documents[:30]


def expected_ids(model: str, documents: list[Document], top_n: int) -> list[str]:
    scores = Reranker.shared(model).score(QUERY, [d.page_content for d in documents])
    order = sorted(range(len(documents)), key=lambda i: -scores[i])
    return [documents[i].id for i in order[:top_n]]


def test_invoke_reranks_the_base_results(bert_dir, candidates) -> None:
    retriever = RagRerankRetriever(
        base_retriever=ListRetriever(documents=candidates), model=bert_dir, top_n=4
    )
    out = retriever.invoke(QUERY)
    assert [d.id for d in out] == expected_ids(bert_dir, candidates, 4)
    assert out == RagRerank(model=bert_dir, top_n=4).compress_documents(candidates, QUERY)
    assert all("relevance_score" not in d.metadata for d in candidates)


async def test_async_batch_and_lcel(bert_dir, candidates) -> None:
    retriever = RagRerankRetriever(
        base_retriever=ListRetriever(documents=candidates), model=bert_dir
    )
    sync = retriever.invoke(QUERY)
    assert len(sync) == 5
    assert await retriever.ainvoke(QUERY) == sync
    # Concurrent queries share engine batches (different padding): equal up to float noise.
    for result in [*retriever.batch([QUERY, QUERY]), *await retriever.abatch([QUERY, QUERY])]:
        assert_same(result, sync)
    chain = retriever | RunnableLambda(lambda docs: [d.id for d in docs])
    assert chain.invoke(QUERY) == [d.id for d in sync]
    assert await chain.ainvoke(QUERY) == [d.id for d in sync]


async def test_async_is_truly_async(bert_dir, candidates) -> None:
    retriever = RagRerankRetriever(
        base_retriever=ListRetriever(documents=candidates), model=bert_dir
    )
    expected = retriever.invoke(QUERY)
    asyncio.get_running_loop().set_default_executor(NoThreadsExecutor(max_workers=1))
    assert await retriever.ainvoke(QUERY) == expected


async def test_inside_contextual_compression_retriever(bert_dir, candidates) -> None:
    retrievers = pytest.importorskip("langchain_classic.retrievers")
    base = ListRetriever(documents=candidates)
    compression = retrievers.ContextualCompressionRetriever(
        base_compressor=RagRerank(model=bert_dir, top_n=3), base_retriever=base
    )
    expected = RagRerankRetriever(base_retriever=base, model=bert_dir, top_n=3).invoke(QUERY)
    assert [d.id for d in expected] == expected_ids(bert_dir, candidates, 3)
    assert compression.invoke(QUERY) == expected
    asyncio.get_running_loop().set_default_executor(NoThreadsExecutor(max_workers=1))
    assert await compression.ainvoke(QUERY) == expected


async def test_callbacks_reach_the_base_retriever(bert_dir, candidates) -> None:
    retriever = RagRerankRetriever(
        base_retriever=ListRetriever(documents=candidates), model=bert_dir, top_n=2
    )
    for run in (retriever.invoke, retriever.ainvoke):
        events = RetrieverEvents()
        out = run(QUERY, config={"callbacks": [events]})
        out = await out if asyncio.iscoroutine(out) else out
        (outer, parent), (inner, inner_parent) = events.starts
        assert parent is None and inner_parent == outer  # the base retriever ran as a child
        assert events.ends[outer] == out
        assert events.ends[inner] == candidates


async def test_empty_base_results(bert_dir) -> None:
    retriever = RagRerankRetriever(base_retriever=ListRetriever(documents=[]), model=bert_dir)
    assert retriever.invoke(QUERY) == []
    assert await retriever.ainvoke(QUERY) == []


def test_threshold_that_removes_everything(bert_dir, candidates) -> None:
    scores = Reranker.shared(bert_dir).score(QUERY, [d.page_content for d in candidates])
    assert max(scores) < 1.0
    retriever = RagRerankRetriever(
        base_retriever=ListRetriever(documents=candidates),
        model=bert_dir,
        score_threshold=min(1.0, max(scores) + 1e-4),
    )
    assert retriever.invoke(QUERY) == []


def test_bad_base_results_and_missing_base_retriever(bert_dir) -> None:
    retriever = RagRerankRetriever(
        base_retriever=ListRetriever(documents=[Document(page_content="a"), 3]), model=bert_dir
    )
    with pytest.raises(InvalidInputTypeError, match=r"documents\[1\]: must be a Document"):
        retriever.invoke(QUERY)
    with pytest.raises(ValidationError, match="base_retriever"):
        RagRerankRetriever(model=bert_dir)


# -- per-call top_n and score_threshold ---------------------------------------------------------


async def test_per_call_top_n(bert_dir, candidates) -> None:
    retriever = RagRerankRetriever(
        base_retriever=ListRetriever(documents=candidates), model=bert_dir, top_n=4
    )
    ranked = expected_ids(bert_dir, candidates, len(candidates))
    assert [d.id for d in retriever.invoke(QUERY, top_n=1)] == ranked[:1]
    assert [d.id for d in await retriever.ainvoke(QUERY, top_n=2)] == ranked[:2]
    assert [d.id for d in retriever.invoke(QUERY, top_n=None)] == ranked  # None keeps all
    for result in retriever.batch([QUERY, QUERY], top_n=3):
        assert [d.id for d in result] == ranked[:3]
    for result in await retriever.abatch([QUERY, QUERY], top_n=1):
        assert [d.id for d in result] == ranked[:1]
    # Bound in a chain, too; the retriever's own field is left as it was.
    assert [d.id for d in retriever.bind(top_n=2).invoke(QUERY)] == ranked[:2]
    assert retriever.top_n == 4
    assert [d.id for d in retriever.invoke(QUERY)] == ranked[:4]


async def test_per_call_score_threshold(bert_dir, candidates) -> None:
    scores = sorted(
        Reranker.shared(bert_dir).score(QUERY, [d.page_content for d in candidates]),
        reverse=True,
    )
    assert scores[2] > scores[3]
    cut = (scores[2] + scores[3]) / 2  # exactly three pass
    retriever = RagRerankRetriever(
        base_retriever=ListRetriever(documents=candidates), model=bert_dir, top_n=None
    )
    ranked = expected_ids(bert_dir, candidates, 3)
    assert [d.id for d in retriever.invoke(QUERY, score_threshold=cut)] == ranked
    assert [d.id for d in await retriever.ainvoke(QUERY, score_threshold=cut)] == ranked
    assert [d.id for d in retriever.invoke(QUERY, score_threshold=cut, top_n=2)] == ranked[:2]
    # A per-call None lifts the field's threshold.
    strict = RagRerankRetriever(
        base_retriever=ListRetriever(documents=candidates), model=bert_dir, score_threshold=1.0
    )
    assert strict.invoke(QUERY) == []
    assert len(strict.invoke(QUERY, score_threshold=None)) == 5


async def test_per_call_selection_is_not_passed_to_the_base_retriever(bert_dir, candidates) -> None:
    base = KwargsRetriever(documents=candidates)
    retriever = RagRerankRetriever(base_retriever=base, model=bert_dir)
    assert len(retriever.invoke(QUERY, top_n=1, score_threshold=0.0, k=7)) == 1
    assert len(await retriever.ainvoke(QUERY, top_n=2, fetch_k=9)) == 2
    # Other keywords still reach the base retriever (e.g. a vector store's k).
    assert base.received == [{"k": 7}, {"fetch_k": 9}]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"top_n": 0}, "top_n"),
        ({"top_n": 2.5}, "top_n"),
        ({"top_n": True}, "top_n"),
        ({"score_threshold": 1.5}, "score_threshold"),
        ({"score_threshold": float("nan")}, "score_threshold"),
        ({"score_threshold": "0.5"}, "score_threshold"),
    ],
)
async def test_bad_per_call_selection_names_the_field(bert_dir, candidates, kwargs, field) -> None:
    base = KwargsRetriever(documents=candidates)
    retriever = RagRerankRetriever(base_retriever=base, model=bert_dir)
    with pytest.raises(InvalidInputError, match=field) as error:
        retriever.invoke(QUERY, **kwargs)
    assert error.value.field == field
    with pytest.raises(InvalidInputError, match=field):
        await retriever.ainvoke(QUERY, **kwargs)
    assert base.received == []  # refused before the base retriever ran
