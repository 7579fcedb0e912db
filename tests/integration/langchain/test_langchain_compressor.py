"""Contract tests of RagRerank, the document compressor, on tiny random cross-encoders."""

from __future__ import annotations

import asyncio
import copy
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from langchain_core.callbacks import BaseCallbackHandler, CallbackManager
from langchain_core.documents import BaseDocumentCompressor, Document
from langchain_core.runnables import RunnableLambda
from langchain_rag_rerank import RagRerank, RagRerankRetriever
from pydantic import ValidationError

from rag_rerank import (
    InvalidInputError,
    InvalidInputTypeError,
    ModelLoadError,
    Reranker,
    RerankerOptions,
)

QUERY = "What does the giant panda eat?"
TEXTS = [
    "The giant panda eats bamboo almost all day.",
    "Paris is the capital of France.",
    "Pandas are bears native to south central China.",
    "A cross-encoder reads the query and passage together.",
    "Koalas eat eucalyptus leaves.",
    "Bamboo grows quickly in cold mountain forests.",
    "The stock market fell on Tuesday.",
    "Red pandas are not closely related to giant pandas.",
]

NO_DOCS = RunnableLambda(lambda query: [])


def make_docs() -> list[Document]:
    return [
        Document(
            page_content=text,
            metadata={"source": f"s{i}", "tags": ["a", "b"], "n": i},
            id=f"id-{i}",
        )
        for i, text in enumerate(TEXTS)
    ]


def expected_order(model: str, texts: list[str] = TEXTS) -> list[tuple[int, float]]:
    """(index, score) best first from ``Reranker.score``; ties keep input order."""
    scores = Reranker.shared(model).score(QUERY, texts)
    return sorted(enumerate(scores), key=lambda item: -item[1])


class NoThreadsExecutor(ThreadPoolExecutor):
    """A default executor that refuses work: proves an async path never falls back to threads."""

    def submit(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the async path ran sync code in a thread pool")


@pytest.mark.parametrize("model_fixture", ["bert_dir", "xlmr_dir"])
def test_scores_and_order_match_reranker_score(request, model_fixture) -> None:
    model = request.getfixturevalue(model_fixture)
    docs = make_docs()
    out = RagRerank(model=model, top_n=None).compress_documents(docs, QUERY)
    expected = expected_order(model)
    assert [d.id for d in out] == [f"id-{i}" for i, _ in expected]
    assert [d.page_content for d in out] == [TEXTS[i] for i, _ in expected]
    assert [d.metadata["relevance_score"] for d in out] == pytest.approx(
        [score for _, score in expected], abs=1e-6
    )
    assert all(0.0 <= d.metadata["relevance_score"] <= 1.0 for d in out)


def test_returns_copies_and_keeps_metadata_and_ids(bert_dir) -> None:
    docs = make_docs()
    snapshot = copy.deepcopy(docs)
    out = RagRerank(model=bert_dir, top_n=None).compress_documents(docs, QUERY)

    assert docs == snapshot  # the caller's documents are untouched
    assert all("relevance_score" not in d.metadata for d in docs)
    by_id = {d.id: d for d in docs}
    for new in out:
        old = by_id[new.id]
        assert new is not old and new.metadata is not old.metadata
        assert {k: v for k, v in new.metadata.items() if k != "relevance_score"} == old.metadata
        assert new.page_content == old.page_content and new.type == old.type
    # Changing a result (even nested metadata) does not reach back into the caller's documents.
    out[0].metadata["tags"].append("changed")
    assert docs == snapshot


def test_top_n(bert_dir) -> None:
    docs = make_docs()
    expected = [f"id-{i}" for i, _ in expected_order(bert_dir)]
    assert [d.id for d in RagRerank(model=bert_dir, top_n=3).compress_documents(docs, QUERY)] == (
        expected[:3]
    )
    assert len(RagRerank(model=bert_dir).compress_documents(docs, QUERY)) == 5  # default top_n
    assert len(RagRerank(model=bert_dir, top_n=100).compress_documents(docs, QUERY)) == len(docs)
    assert len(RagRerank(model=bert_dir, top_n=None).compress_documents(docs, QUERY)) == len(docs)


def test_score_threshold(bert_dir) -> None:
    docs = make_docs()
    expected = expected_order(bert_dir)
    # Halfway between the 3rd and 4th best score: exactly three pass.
    cut = (expected[2][1] + expected[3][1]) / 2
    assert expected[2][1] > expected[3][1]
    out = RagRerank(model=bert_dir, top_n=None, score_threshold=cut).compress_documents(docs, QUERY)
    assert [d.id for d in out] == [f"id-{i}" for i, _ in expected[:3]]
    assert all(d.metadata["relevance_score"] >= cut for d in out)
    # With top_n below the number passing, top_n wins.
    out = RagRerank(model=bert_dir, top_n=2, score_threshold=cut).compress_documents(docs, QUERY)
    assert [d.id for d in out] == [f"id-{i}" for i, _ in expected[:2]]


def test_threshold_that_removes_everything(bert_dir) -> None:
    best = expected_order(bert_dir)[0][1]
    assert best < 1.0
    compressor = RagRerank(model=bert_dir, score_threshold=min(1.0, best + 1e-4))
    assert compressor.compress_documents(make_docs(), QUERY) == []


def test_threshold_zero_keeps_all(bert_dir) -> None:
    compressor = RagRerank(model=bert_dir, top_n=None, score_threshold=0)
    assert len(compressor.compress_documents(make_docs(), QUERY)) == len(TEXTS)


async def test_empty_input_returns_empty_list(bert_dir) -> None:
    compressor = RagRerank(model=bert_dir)
    assert compressor.compress_documents([], QUERY) == []
    assert await compressor.acompress_documents([], QUERY) == []


async def test_async_equals_sync(bert_dir) -> None:
    compressor = RagRerank(model=bert_dir, top_n=4)
    docs = make_docs()
    sync = compressor.compress_documents(docs, QUERY)
    results = await asyncio.gather(*(compressor.acompress_documents(docs, QUERY) for _ in range(4)))
    for result in results:  # concurrent calls share batches: equal up to float noise
        assert [d.id for d in result] == [d.id for d in sync]
        assert [d.metadata["relevance_score"] for d in result] == pytest.approx(
            [d.metadata["relevance_score"] for d in sync], abs=1e-5
        )


async def test_async_is_truly_async(bert_dir) -> None:
    compressor = RagRerank(model=bert_dir)
    docs = make_docs()
    asyncio.get_running_loop().set_default_executor(NoThreadsExecutor(max_workers=1))
    # The base class's thread shim would hit the refusing executor...
    with pytest.raises(AssertionError, match="thread pool"):
        await BaseDocumentCompressor.acompress_documents(compressor, docs, QUERY)
    # ...the compressor's own async path does not.
    out = await compressor.acompress_documents(docs, QUERY)
    assert [d.id for d in out] == [d.id for d in compressor.compress_documents(docs, QUERY)]


class RecordingHandler(BaseCallbackHandler):
    def __init__(self) -> None:
        self.events: list[str] = []

    def on_retriever_start(self, *args: Any, **kwargs: Any) -> None:
        self.events.append("retriever_start")


async def test_callbacks_accepted(bert_dir) -> None:
    compressor = RagRerank(model=bert_dir)
    docs = make_docs()
    plain = compressor.compress_documents(docs, QUERY)
    handler = RecordingHandler()
    for callbacks in ([handler], CallbackManager(handlers=[handler]), None):
        assert compressor.compress_documents(docs, QUERY, callbacks=callbacks) == plain
        assert await compressor.acompress_documents(docs, QUERY, callbacks=callbacks) == plain


def test_one_shared_model_per_process(bert_dir, xlmr_dir) -> None:
    first = RagRerank(model=bert_dir)
    second = RagRerank(model=bert_dir, top_n=2, score_threshold=0.1)
    retriever = RagRerankRetriever(base_retriever=NO_DOCS, model=bert_dir)
    assert first.reranker is second.reranker is retriever.reranker
    assert first.reranker is Reranker.shared(bert_dir)
    assert isinstance(first.reranker, Reranker)
    other = RagRerank(model=xlmr_dir)
    assert other.reranker is not first.reranker
    assert other.reranker.engine is not first.reranker.engine
    # Same model and device, different window: still one model and one engine in memory.
    assert RagRerank(model=bert_dir, max_length=64).reranker.engine is first.reranker.engine


def test_existing_reranker_is_used(bert_dir) -> None:
    reranker = Reranker.shared(bert_dir, max_length=128)
    compressor = RagRerank(reranker=reranker, top_n=3)
    assert compressor.reranker is reranker
    assert "model" not in compressor.model_fields_set
    out = compressor.compress_documents(make_docs(), QUERY)
    assert [d.metadata["relevance_score"] for d in out] == pytest.approx(
        sorted(reranker.score(QUERY, TEXTS), reverse=True)[:3], abs=1e-6
    )


class DelegatingReranker:
    """Not a rag_rerank.Reranker: an object with the same API (as a remote client would be)."""

    def __init__(self, inner: Reranker) -> None:
        self.inner = inner
        self.calls: list[str] = []

    def rerank(self, query, documents, top_n=None, threshold=None):
        self.calls.append("rerank")
        return self.inner.rerank(query, documents, top_n=top_n, threshold=threshold)

    async def arerank(self, query, documents, top_n=None, threshold=None):
        self.calls.append("arerank")
        return await self.inner.arerank(query, documents, top_n=top_n, threshold=threshold)


async def test_any_object_with_the_reranker_api(bert_dir) -> None:
    remote = DelegatingReranker(Reranker.shared(bert_dir))
    compressor = RagRerank(reranker=remote, top_n=3)
    reference = RagRerank(model=bert_dir, top_n=3).compress_documents(make_docs(), QUERY)
    assert compressor.compress_documents(make_docs(), QUERY) == reference
    assert await compressor.acompress_documents(make_docs(), QUERY) == reference
    assert remote.calls == ["rerank", "arerank"]


@pytest.mark.parametrize(
    "bad",
    [{"top_n": 0}, {"top_n": -1}, {"top_n": 2.5}, {"top_n": "3"}, {"top_n": True}],
)
def test_bad_top_n_fails_at_construction(bert_dir, bad) -> None:
    with pytest.raises(ValidationError, match="top_n"):
        RagRerank(model=bert_dir, **bad)
    with pytest.raises(ValidationError, match="top_n"):
        RagRerankRetriever(base_retriever=NO_DOCS, model=bert_dir, **bad)


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan"), float("inf"), "0.5", True])
def test_bad_score_threshold_fails_at_construction(bert_dir, bad) -> None:
    with pytest.raises(ValidationError, match="score_threshold"):
        RagRerank(model=bert_dir, score_threshold=bad)
    with pytest.raises(ValidationError, match="score_threshold"):
        RagRerankRetriever(base_retriever=NO_DOCS, model=bert_dir, score_threshold=bad)


def test_misspelt_option_is_an_error(bert_dir) -> None:
    with pytest.raises(ValidationError, match="top_k"):
        RagRerank(model=bert_dir, top_k=3)
    with pytest.raises(ValidationError, match="threshold"):
        RagRerankRetriever(base_retriever=NO_DOCS, model=bert_dir, threshold=0.5)


def test_bad_model_options(bert_dir) -> None:
    with pytest.raises(ValidationError, match="max_length"):
        RagRerank(model=bert_dir, max_length=8)
    with pytest.raises(ValidationError, match="dtype"):
        RagRerank(model=bert_dir, dtype="int8")
    with pytest.raises(ValidationError, match="long_documents"):
        RagRerank(model=bert_dir, long_documents="drop")
    with pytest.raises(ModelLoadError, match="no-such-model-folder"):
        RagRerank(model="./no-such-model-folder")


@pytest.mark.parametrize("component", ["compressor", "retriever"])
def test_core_options_reach_the_loaded_reranker(bert_dir, component) -> None:
    extra = {"base_retriever": NO_DOCS} if component == "retriever" else {}
    cls = RagRerankRetriever if component == "retriever" else RagRerank
    built = cls(
        model=bert_dir, batch_tokens=1024, long_documents="truncate", max_length=64, **extra
    )
    assert built.options == RerankerOptions(
        model=bert_dir, batch_tokens=1024, long_documents="truncate", max_length=64
    )
    assert built.reranker is Reranker.shared(built.options)
    loaded = built.reranker.options
    assert (loaded.batch_tokens, loaded.long_documents, loaded.max_length) == (
        1024,
        "truncate",
        64,
    )


def test_options_object_and_keywords(bert_dir) -> None:
    options = RerankerOptions(model=bert_dir, max_length=64)
    assert RagRerank(options=options).reranker is Reranker.shared(bert_dir, max_length=64)
    assert RagRerank(options=options).model == bert_dir
    # A keyword overrides the same option of the object; a mapping works like the object.
    keyword = RagRerank(options=options, max_length=128, long_documents="truncate")
    assert keyword.options == options.replace(max_length=128, long_documents="truncate")
    assert RagRerank(options={"model": bert_dir, "max_length": 64}).options == options
    # Defaults: the options a plain model name loads with.
    assert RagRerank(model=bert_dir).options == RerankerOptions(model=bert_dir)


def test_unknown_option_is_named(bert_dir) -> None:
    with pytest.raises(ValidationError, match="batch_token"):
        RagRerank(model=bert_dir, batch_token=1024)
    with pytest.raises(InvalidInputTypeError, match="devic") as error:
        RagRerank(options={"model": bert_dir, "devic": "cpu"})
    assert error.value.field == "devic"
    with pytest.raises(InvalidInputTypeError, match="options: must be a RerankerOptions") as error:
        RagRerank(options="cpu")
    assert error.value.field == "options"


def test_bad_reranker(bert_dir) -> None:
    with pytest.raises(ValidationError, match=r"reranker[\s\S]*has no rerank\(\) or arerank\(\)"):
        RagRerank(reranker=object())
    with pytest.raises(ValidationError, match="reranker"):
        RagRerank(reranker="BAAI/bge-reranker-v2-m3")
    with pytest.raises(ValidationError, match=r"either reranker= or the model options \['device'"):
        RagRerank(reranker=Reranker.shared(bert_dir), device="cpu")
    with pytest.raises(ValidationError, match=r"model options \['batch_tokens'\]"):
        RagRerank(reranker=Reranker.shared(bert_dir), model=bert_dir, batch_tokens=64)
    with pytest.raises(ValidationError, match=r"model options \['options'\]"):
        RagRerank(reranker=Reranker.shared(bert_dir), options=RerankerOptions(model=bert_dir))


async def test_bad_documents_and_query(bert_dir) -> None:
    compressor = RagRerank(model=bert_dir)
    with pytest.raises(InvalidInputTypeError, match=r"documents\[1\]") as info:
        compressor.compress_documents([Document(page_content="a"), "b"], QUERY)
    assert info.value.field == "documents[1]"
    with pytest.raises(InvalidInputTypeError, match="documents"):
        await compressor.acompress_documents("not a list", QUERY)
    with pytest.raises(InvalidInputError, match="query") as error:
        compressor.compress_documents(make_docs(), "  ")
    assert error.value.field == "query"
    with pytest.raises(InvalidInputError, match="query"):
        await compressor.acompress_documents(make_docs(), "")
