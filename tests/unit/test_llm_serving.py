"""An LLM reranker through every front end: LangChain, LlamaIndex, the HTTP server, the CLI."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import httpx
import pytest

from rag_rerank import Reranker
from rag_rerank.cli import main
from rag_rerank.server import create_app

pytest.importorskip("langchain_core", reason="needs langchain-core")
pytest.importorskip("llama_index.core", reason="needs llama-index-core")

_ROOT = Path(__file__).resolve().parents[2] / "integrations"
for package in ("langchain", "llama_index"):
    if str(_ROOT / package) not in sys.path:
        sys.path.insert(0, str(_ROOT / package))

from langchain_core.documents import Document  # noqa: E402
from langchain_rag_rerank import RagRerank as LangChainRagRerank  # noqa: E402
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode  # noqa: E402
from llama_index.postprocessor.rag_rerank import RagRerank as LlamaIndexRagRerank  # noqa: E402

QUERY = "what do pandas eat"
TEXTS = ["Pandas eat bamboo.", "Paris is in France.", "Apples are fruit.", "Bears sleep."]
TASK = "Given a question about animals, find the passage that answers it"


@pytest.fixture(scope="module")
def unnamed(qwen3_dir: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The tiny Qwen3 reranker in a folder whose config does not name its template."""
    folder = tmp_path_factory.mktemp("llm-serving") / "decoder"
    shutil.copytree(qwen3_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    del config["prompt_format"]
    (folder / "config.json").write_text(json.dumps(config))
    return str(folder)


def test_both_frameworks_pass_prompt_format_and_instruction(unnamed):
    options = {"prompt_format": "qwen3", "instruction": TASK, "device": "cpu"}
    expected = Reranker.shared(unnamed, **options).rerank(QUERY, TEXTS, top_n=3)
    compressor = LangChainRagRerank(model=unnamed, top_n=3, **options)
    postprocessor = LlamaIndexRagRerank(model=unnamed, top_n=3, **options)
    assert compressor.reranker is postprocessor.reranker
    documents = compressor.compress_documents([Document(page_content=t) for t in TEXTS], QUERY)
    nodes = postprocessor.postprocess_nodes(
        [NodeWithScore(node=TextNode(text=t), score=0.5) for t in TEXTS],
        QueryBundle(query_str=QUERY),
    )
    assert [d.page_content for d in documents] == [r.document for r in expected]
    assert [n.node.get_content() for n in nodes] == [r.document for r in expected]
    scores = [r.score for r in expected]
    assert [d.metadata["relevance_score"] for d in documents] == pytest.approx(scores, abs=1e-6)
    assert [n.score for n in nodes] == pytest.approx(scores, abs=1e-6)


async def test_the_server_returns_the_in_process_scores(qwen3_dir):
    rr = Reranker(qwen3_dir, device="cpu", show_progress=False)
    expected = rr.rerank(QUERY, TEXTS)
    transport = httpx.ASGITransport(app=create_app(rr))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        response = await client.post("/rerank", json={"query": QUERY, "texts": TEXTS})
    assert response.status_code == 200
    body = response.json()
    assert [r["index"] for r in body] == [r.index for r in expected]
    assert [r["score"] for r in body] == pytest.approx([r.score for r in expected], abs=1e-6)
    rr.close()


def test_the_cli_takes_prompt_format_and_instruction(unnamed, capsys):
    argv = ["score", "--query", QUERY, "--json", "--model", unnamed, "--device", "cpu"]
    code = main([*argv, "--prompt-format", "qwen3", "--instruction", TASK, *TEXTS])
    out, _ = capsys.readouterr()
    assert code == 0
    expected = Reranker.shared(unnamed, device="cpu", prompt_format="qwen3", instruction=TASK)
    want = expected.rerank(QUERY, TEXTS)
    rows = json.loads(out)
    assert [r["index"] for r in rows] == [r.index for r in want]
    assert [r["score"] for r in rows] == pytest.approx([r.score for r in want], abs=1e-6)

    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--prompt-format", "llama", *TEXTS])
    assert exit_info.value.code == 2
    assert "--prompt-format" in capsys.readouterr().err
