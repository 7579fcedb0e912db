"""The LangChain compressor and the LlamaIndex postprocessor share one loaded model."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from rag_rerank import Reranker, RerankerOptions

pytest.importorskip("langchain_core", reason="needs langchain-core")
pytest.importorskip("llama_index.core", reason="needs llama-index-core")

_ROOT = Path(__file__).resolve().parents[3] / "integrations"
for package in ("langchain", "llama_index"):
    if str(_ROOT / package) not in sys.path:
        sys.path.insert(0, str(_ROOT / package))

from langchain_core.documents import Document  # noqa: E402
from langchain_rag_rerank import RagRerank as LangChainRagRerank  # noqa: E402
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode  # noqa: E402
from llama_index.postprocessor.rag_rerank import RagRerank as LlamaIndexRagRerank  # noqa: E402


def test_one_model_instance_serves_both_frameworks(xlmr_dir):
    compressor = LangChainRagRerank(model=xlmr_dir, top_n=3)
    postprocessor = LlamaIndexRagRerank(model=xlmr_dir, top_n=3)
    shared = Reranker.shared(xlmr_dir)
    assert compressor.reranker is shared
    assert postprocessor.reranker is shared

    texts = ["Pandas eat bamboo.", "Paris is in France.", "Apples are fruit.", "Bears sleep."]
    query = "what do pandas eat"
    documents = compressor.compress_documents([Document(page_content=t) for t in texts], query)
    nodes = postprocessor.postprocess_nodes(
        [NodeWithScore(node=TextNode(text=t), score=0.5) for t in texts],
        QueryBundle(query_str=query),
    )
    assert [d.page_content for d in documents] == [n.node.get_content() for n in nodes]
    assert [d.metadata["relevance_score"] for d in documents] == pytest.approx(
        [n.score for n in nodes], abs=1e-6
    )


def _non_default_options(model: str) -> dict[str, object]:
    """A value other than the default for every reranker option."""
    values = {
        "model": model,
        "revision": "main",
        "device": "cpu",
        "dtype": "fp32",
        "trust_remote_code": True,
        "quantize": "int8",
        "batch_tokens": 512,
        "max_queue_pairs": 64,
        "max_length": 64,
        "long_documents": "truncate",
        "show_progress": False,
        "calibration": "calibration.json",  # never read: Reranker.shared is stubbed below
        "cache": "redis://127.0.0.1:6379/0",
        "cache_size": 10,
        "cache_ttl": 60,
        "clean": "html",
        "prompt_format": "qwen3",
        "instruction": "Find the passage that answers the question.",
    }
    # A new option must be added here, and so is checked to reach both frameworks.
    assert sorted(values) == sorted(RerankerOptions.names())
    defaults = RerankerOptions()
    assert all(getattr(defaults, name) != value for name, value in values.items())
    return values


@pytest.mark.parametrize("framework", ["langchain", "llama_index"])
def test_every_reranker_option_reaches_reranker_shared(bert_dir, monkeypatch, framework):
    # Reranker.shared stands in so that no int8 or remote-code model is loaded: what is checked
    # is that each option, passed as a keyword, arrives in the options the adapter loads with.
    loaded = Reranker.shared(bert_dir)
    received: list[RerankerOptions] = []

    def shared(options):
        received.append(options)
        return loaded

    monkeypatch.setattr(Reranker, "shared", shared)
    component = LangChainRagRerank if framework == "langchain" else LlamaIndexRagRerank
    values = _non_default_options(bert_dir)
    for name, value in values.items():
        built = component(**{"model": bert_dir, name: value})
        assert getattr(received[-1], name) == value, name
        assert built.options == received[-1] and built.reranker is loaded
    everything = component(**values)
    assert received[-1] == RerankerOptions(**values) == everything.options


def test_both_frameworks_accept_a_remote_reranker(bert_dir):
    from server_testing import live_server

    from rag_rerank import RemoteReranker
    from rag_rerank.server import create_app

    local = Reranker(bert_dir)
    texts = ["Pandas eat bamboo.", "Paris is in France.", "Apples are fruit.", "Bears sleep."]
    query = "what do pandas eat"
    expected = local.rerank(query, texts, top_n=3)
    with live_server(create_app(local)) as url:
        remote = RemoteReranker(url)
        compressor = LangChainRagRerank(reranker=remote, top_n=3)
        postprocessor = LlamaIndexRagRerank(reranker=remote, top_n=3)
        documents = compressor.compress_documents([Document(page_content=t) for t in texts], query)
        nodes = postprocessor.postprocess_nodes(
            [NodeWithScore(node=TextNode(text=t), score=0.5) for t in texts],
            QueryBundle(query_str=query),
        )
    assert [d.page_content for d in documents] == [r.document for r in expected]
    assert [n.node.get_content() for n in nodes] == [r.document for r in expected]
    assert [d.metadata["relevance_score"] for d in documents] == pytest.approx(
        [r.score for r in expected], abs=1e-5
    )
    local.close()


_WITHOUT_TORCH = textwrap.dedent(
    """
    import sys

    class Block:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("torch", "transformers"):
                raise ImportError(f"{name} is blocked")

    sys.meta_path.insert(0, Block())
    from langchain_core.runnables import RunnableLambda
    from langchain_rag_rerank import RagRerank, RagRerankRetriever
    from llama_index.postprocessor.rag_rerank import RagRerank as Postprocessor

    from rag_rerank import RemoteReranker

    remote = RemoteReranker("http://127.0.0.1:9")  # never called: nothing is reranked
    RagRerank(reranker=remote, top_n=3)
    retriever = RagRerankRetriever(base_retriever=RunnableLambda(lambda q: []), reranker=remote)
    assert retriever.invoke("q", top_n=1) == []
    Postprocessor(reranker=remote, top_n=3)
    assert "torch" not in sys.modules
    """
)


def test_both_frameworks_work_with_a_remote_reranker_without_torch():
    # The adapters import Reranker (torch) only when they load a model themselves.
    paths = [_ROOT.parent, _ROOT / "langchain", _ROOT / "llama_index"]
    path = os.pathsep.join([*map(str, paths), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path}
    done = subprocess.run(
        [sys.executable, "-c", _WITHOUT_TORCH], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
