"""Contract tests for RagRerank: copies, ordering, top_n, threshold, errors, events, sharing."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest
from llama_index.core.bridge.pydantic import Field
from llama_index.core.callbacks import CallbackManager, CBEventType, LlamaDebugHandler
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events import BaseEvent
from llama_index.core.instrumentation.events.rerank import ReRankEndEvent, ReRankStartEvent
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle, TextNode
from llama_index.postprocessor.rag_rerank import RagRerank

from rag_rerank import Reranker, RerankerOptions, RerankResult
from rag_rerank.errors import InvalidInputError, InvalidInputTypeError, ModelLoadError

QUERY = "what do pandas eat?"
TEXTS = [
    "Giant pandas eat bamboo shoots and leaves.",
    "Paris is the capital of France.",
    "The red panda also likes bamboo.",
    "Rust has no garbage collector.",
    "Pandas sleep a lot between meals.",
    "Jupiter is the largest planet.",
]


def make_nodes() -> list[NodeWithScore]:
    return [
        NodeWithScore(
            node=TextNode(
                id_=f"node-{i}",
                text=text,
                metadata={"source": f"doc{i}.txt", "secret": "not for the model"},
                excluded_embed_metadata_keys=["secret"],
                excluded_llm_metadata_keys=["secret"],
            ),
            score=0.9 - i / 10,
        )
        for i, text in enumerate(TEXTS)
    ]


def embed_texts(nodes: list[NodeWithScore]) -> list[str]:
    return [n.node.get_content(metadata_mode=MetadataMode.EMBED) for n in nodes]


def expected_order(model: str, nodes: list[NodeWithScore]) -> tuple[list[int], list[float]]:
    scores = Reranker.shared(model).score(QUERY, embed_texts(nodes))
    order = sorted(range(len(nodes)), key=lambda i: -scores[i])
    return order, scores


class Collector(BaseEventHandler):
    """Records every instrumentation event it sees."""

    events: list[BaseEvent] = Field(default_factory=list)

    @classmethod
    def class_name(cls) -> str:
        return "Collector"

    def handle(self, event: BaseEvent, **kwargs: Any) -> None:
        self.events.append(event)

    def of(self, kind: type[BaseEvent]) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


@pytest.fixture
def collector() -> Any:
    root = get_dispatcher()
    handler = Collector()
    root.add_event_handler(handler)
    yield handler
    root.event_handlers.remove(handler)


class AsyncOnlyReranker:
    """Any object with the Reranker API will do (e.g. an HTTP client); this one refuses the sync
    path, so it proves the async postprocessor awaits ``arerank``."""

    def __init__(self, inner: Reranker) -> None:
        self.inner = inner
        self.model_name = inner.model_name
        self.async_calls = 0

    def rerank(
        self,
        query: str,
        documents: Sequence[str],
        top_n: int | None = None,
        threshold: float | None = None,
    ) -> list[RerankResult]:
        raise AssertionError("the async postprocessor must not call the sync rerank")

    async def arerank(
        self,
        query: str,
        documents: Sequence[str],
        top_n: int | None = None,
        threshold: float | None = None,
    ) -> list[RerankResult]:
        self.async_calls += 1
        return await self.inner.arerank(query, documents, top_n, threshold)


# -- what is scored and what comes back -------------------------------------------------------


def test_scores_the_text_llamaindex_embeds(bert_dir: str) -> None:
    nodes = make_nodes()
    texts = embed_texts(nodes)
    assert texts[0].startswith("source: doc0.txt") and "secret" not in texts[0]

    out = RagRerank(model=bert_dir, top_n=None).postprocess_nodes(nodes, query_str=QUERY)

    order, scores = expected_order(bert_dir, nodes)
    assert [n.node.node_id for n in out] == [f"node-{i}" for i in order]
    assert [n.score for n in out] == pytest.approx([scores[i] for i in order], abs=1e-6)
    assert all(0.0 <= n.score <= 1.0 for n in out)  # type: ignore[operator]


def test_returns_copies_and_leaves_the_callers_nodes_alone(bert_dir: str) -> None:
    nodes = make_nodes()
    before = [n.model_dump() for n in nodes]

    out = RagRerank(model=bert_dir, top_n=None).postprocess_nodes(nodes, query_str=QUERY)

    assert [n.model_dump() for n in nodes] == before
    by_id = {n.node.node_id: n for n in nodes}
    for item in out:
        original = by_id[item.node.node_id]
        assert item is not original and item.node is not original.node
        assert item.node.metadata is not original.node.metadata
        assert item.node.metadata == {**original.node.metadata, "retrieval_score": original.score}
        # The retrieval score is kept but never reaches the embed or LLM text.
        for mode in (MetadataMode.EMBED, MetadataMode.LLM):
            assert item.node.get_content(metadata_mode=mode) == original.node.get_content(
                metadata_mode=mode
            )
    # Changing a returned node later leaves the caller's node as it was.
    out[0].node.metadata["source"] = "changed"
    out[0].node.excluded_llm_metadata_keys.append("source")
    assert [n.model_dump() for n in nodes] == before


def test_ties_keep_input_order(bert_dir: str) -> None:
    nodes = [
        NodeWithScore(node=TextNode(id_=f"same-{i}", text="Pandas eat bamboo."), score=None)
        for i in range(4)
    ]
    out = RagRerank(model=bert_dir, top_n=None).postprocess_nodes(nodes, query_str=QUERY)
    assert [n.node.node_id for n in out] == [f"same-{i}" for i in range(4)]
    assert len({n.score for n in out}) == 1
    assert all(n.node.metadata["retrieval_score"] is None for n in out)


@pytest.mark.parametrize("top_n", [1, 3, 6, 50])
def test_top_n_keeps_the_best(bert_dir: str, top_n: int) -> None:
    nodes = make_nodes()
    out = RagRerank(model=bert_dir, top_n=top_n).postprocess_nodes(nodes, query_str=QUERY)
    order, _ = expected_order(bert_dir, nodes)
    assert [n.node.node_id for n in out] == [f"node-{i}" for i in order[:top_n]]


def test_default_top_n_is_5(bert_dir: str) -> None:
    out = RagRerank(model=bert_dir).postprocess_nodes(make_nodes(), query_str=QUERY)
    assert len(out) == 5


def test_threshold_drops_low_scores_before_top_n(bert_dir: str) -> None:
    nodes = make_nodes()
    order, scores = expected_order(bert_dir, nodes)
    threshold = (scores[order[1]] + scores[order[2]]) / 2  # keeps exactly two
    out = RagRerank(model=bert_dir, top_n=5, score_threshold=threshold).postprocess_nodes(
        nodes, query_str=QUERY
    )
    assert [n.node.node_id for n in out] == [f"node-{i}" for i in order[:2]]
    assert all(n.score >= threshold for n in out)  # type: ignore[operator]


async def test_threshold_that_removes_all_returns_empty(bert_dir: str, collector: Any) -> None:
    rerank = RagRerank(model=bert_dir, score_threshold=1.0)
    assert rerank.postprocess_nodes(make_nodes(), query_str=QUERY) == []
    assert await rerank.apostprocess_nodes(make_nodes(), query_str=QUERY) == []
    assert [e.nodes for e in collector.of(ReRankEndEvent)] == [[], []]


async def test_empty_input_returns_empty(bert_dir: str, collector: Any) -> None:
    rerank = RagRerank(model=bert_dir)
    assert rerank.postprocess_nodes([], query_str=QUERY) == []
    assert await rerank.apostprocess_nodes([], query_str=QUERY) == []
    assert collector.of(ReRankStartEvent) == []


# -- errors ----------------------------------------------------------------------------------


async def test_missing_query_raises_value_error(bert_dir: str, collector: Any) -> None:
    rerank = RagRerank(model=bert_dir)
    with pytest.raises(ValueError, match="query_bundle") as error:
        rerank.postprocess_nodes(make_nodes())
    assert isinstance(error.value, InvalidInputError) and error.value.field == "query_bundle"
    with pytest.raises(ValueError, match="query_bundle"):
        await rerank.apostprocess_nodes(make_nodes())
    with pytest.raises(ValueError, match="query_bundle"):
        rerank.postprocess_nodes([])
    assert collector.of(ReRankStartEvent) == []


@pytest.mark.parametrize("query", ["", "   "])
async def test_empty_query_raises_value_error(bert_dir: str, collector: Any, query: str) -> None:
    rerank = RagRerank(model=bert_dir)
    with pytest.raises(ValueError, match="query") as error:
        rerank.postprocess_nodes(make_nodes(), query_bundle=QueryBundle(query))
    assert isinstance(error.value, InvalidInputError) and error.value.field == "query"
    with pytest.raises(ValueError, match="query"):
        await rerank.apostprocess_nodes(make_nodes(), query_bundle=QueryBundle(query))
    assert collector.of(ReRankStartEvent) == []


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"top_n": 0}, "top_n"),
        ({"top_n": True}, "top_n"),
        ({"top_n": "5"}, "top_n"),
        ({"score_threshold": 1.5}, "score_threshold"),
        ({"score_threshold": -0.1}, "score_threshold"),
        ({"score_threshold": float("nan")}, "score_threshold"),
        ({"max_length": 8}, "max_length"),
    ],
)
def test_bad_options_name_the_field(bert_dir: str, options: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        RagRerank(model=bert_dir, **options)


def test_unloadable_model_raises_model_load_error(tmp_path: Any) -> None:
    with pytest.raises(ModelLoadError):
        RagRerank(model=str(tmp_path / "no-such-model"))


def test_not_a_reranker_is_refused() -> None:
    with pytest.raises(ValueError, match="reranker"):
        RagRerank(reranker=object())


@pytest.mark.parametrize(
    "option",
    [
        {"device": "cpu"},
        {"dtype": "fp32"},
        {"max_length": 256},
        {"batch_tokens": 64},
        {"long_documents": "truncate"},
        {"options": RerankerOptions()},
    ],
)
def test_load_options_conflict_with_a_given_reranker(bert_dir: str, option: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(option))):
        RagRerank(reranker=Reranker.shared(bert_dir), **option)


def test_model_name_conflicting_with_a_given_reranker(bert_dir: str, xlmr_dir: str) -> None:
    with pytest.raises(ValueError, match="model"):
        RagRerank(model=xlmr_dir, reranker=Reranker.shared(bert_dir))


# -- events ----------------------------------------------------------------------------------


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
async def test_emits_rerank_events(bert_dir: str, collector: Any, use_async: bool) -> None:
    debug = LlamaDebugHandler()
    rerank = RagRerank(model=bert_dir, top_n=3, callback_manager=CallbackManager([debug]))
    nodes = make_nodes()
    bundle = QueryBundle(QUERY)

    if use_async:
        out = await rerank.apostprocess_nodes(nodes, query_bundle=bundle)
    else:
        out = rerank.postprocess_nodes(nodes, query_bundle=bundle)

    (start,) = collector.of(ReRankStartEvent)
    (end,) = collector.of(ReRankEndEvent)
    assert start.query == bundle
    assert start.nodes == nodes
    assert start.top_n == 3
    assert start.model_name == bert_dir
    assert end.nodes == out
    assert collector.events.index(start) < collector.events.index(end)
    # The legacy callback manager sees one RERANKING start/end pair too.
    assert len(debug.get_event_pairs(CBEventType.RERANKING)) == 1


# -- async -----------------------------------------------------------------------------------


async def test_async_path_awaits_arerank(bert_dir: str) -> None:
    inner = Reranker.shared(bert_dir)
    remote_like = AsyncOnlyReranker(inner)
    rerank = RagRerank(reranker=remote_like, top_n=3)
    assert rerank.model == bert_dir  # taken from the reranker's model_name

    out = await rerank.apostprocess_nodes(make_nodes(), query_str=QUERY)

    expected = RagRerank(reranker=inner, top_n=3).postprocess_nodes(make_nodes(), query_str=QUERY)
    assert remote_like.async_calls == 1
    assert [n.node.node_id for n in out] == [n.node.node_id for n in expected]
    assert [n.score for n in out] == pytest.approx([n.score for n in expected], abs=1e-6)


async def test_concurrent_async_calls_match_sync(xlmr_dir: str) -> None:
    rerank = RagRerank(model=xlmr_dir, top_n=4)
    queries = [QUERY, "capital of France", "largest planet", "memory safety", "sleep", "bamboo"]
    results = await asyncio.gather(
        *(rerank.apostprocess_nodes(make_nodes(), query_str=q) for q in queries)
    )
    for query, got in zip(queries, results, strict=True):
        want = rerank.postprocess_nodes(make_nodes(), query_str=query)
        assert [n.node.node_id for n in got] == [n.node.node_id for n in want]
        assert [n.score for n in got] == pytest.approx([n.score for n in want], abs=1e-6)


# -- one model per process, configuration ------------------------------------------------------


def test_postprocessors_share_one_model_instance(bert_dir: str) -> None:
    first = RagRerank(model=bert_dir)
    second = RagRerank(model=bert_dir, top_n=2, score_threshold=0.1)
    # The LangChain compressor gets its reranker from the same Reranker.shared registry.
    assert first.reranker is second.reranker is Reranker.shared(bert_dir)
    # A different window length is a different view on the same loaded model and engine.
    shorter = RagRerank(model=bert_dir, max_length=64)
    assert shorter.reranker is not first.reranker
    assert shorter.reranker.engine is first.reranker.engine  # type: ignore[union-attr]
    assert shorter.reranker.max_length == 64  # type: ignore[union-attr]


def test_an_existing_reranker_is_used_as_is(bert_dir: str) -> None:
    with Reranker(bert_dir) as own:
        rerank = RagRerank(reranker=own)
        assert rerank.reranker is own
        assert rerank.reranker is not Reranker.shared(bert_dir)
        assert rerank.model == bert_dir


def test_serializes_without_the_model_and_reloads_the_shared_one(bert_dir: str) -> None:
    rerank = RagRerank(model=bert_dir, top_n=3, score_threshold=0.25)
    data = rerank.to_dict()
    assert "reranker" not in data
    assert data["class_name"] == RagRerank.class_name() == "RagRerank"
    again = RagRerank.from_dict(data)
    assert (again.model, again.top_n, again.score_threshold) == (bert_dir, 3, 0.25)
    assert again.reranker is rerank.reranker


def test_core_options_reach_the_loaded_reranker(bert_dir: str) -> None:
    # batch_tokens and long_documents were out of reach before the options object.
    rerank = RagRerank(model=bert_dir, batch_tokens=1024, long_documents="truncate", top_n=2)
    assert rerank.options == RerankerOptions(
        model=bert_dir, batch_tokens=1024, long_documents="truncate"
    )
    assert rerank.reranker is Reranker.shared(rerank.options)
    loaded = rerank.reranker.options  # type: ignore[union-attr]
    assert (loaded.batch_tokens, loaded.long_documents) == (1024, "truncate")
    assert len(rerank.postprocess_nodes(make_nodes(), query_str=QUERY)) == 2


def test_options_object_and_keywords(bert_dir: str) -> None:
    options = RerankerOptions(model=bert_dir, max_length=64)
    rerank = RagRerank(options=options)
    assert rerank.model == bert_dir
    assert rerank.reranker is Reranker.shared(bert_dir, max_length=64)
    # A keyword overrides the same option of the object; a mapping works like the object.
    assert RagRerank(options=options, max_length=128).options == options.replace(max_length=128)
    assert RagRerank(options={"model": bert_dir, "max_length": 64}).options == options
    # Serialized with its options, and loaded again into the same shared reranker.
    again = RagRerank.from_json(RagRerank(options=options, long_documents="truncate").to_json())
    assert again.options == options.replace(long_documents="truncate")
    assert again.reranker is Reranker.shared(again.options)


def test_unknown_option_is_named(bert_dir: str) -> None:
    # LlamaIndex components ignore unknown fields by default; this one must not.
    with pytest.raises(ValueError, match="batch_token"):
        RagRerank(model=bert_dir, batch_token=1024)
    with pytest.raises(InvalidInputTypeError, match="devic") as error:
        RagRerank(options={"model": bert_dir, "devic": "cpu"})
    assert error.value.field == "devic"
