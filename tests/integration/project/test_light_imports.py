"""Importing rag_rerank is light, and RemoteReranker works in a process that has no torch."""

import json
import subprocess
import sys
import textwrap

import pytest
from server_testing import live_server

from rag_rerank import Reranker
from rag_rerank.server import create_app

HEAVY = ("torch", "transformers", "chromadb", "fastapi")

# Makes torch and transformers unimportable, as where they are not installed.
BLOCK_TORCH = textwrap.dedent(
    """
    import sys

    class _NoTorch:
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] in ("torch", "transformers"):
                raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)")
            return None

    sys.meta_path.insert(0, _NoTorch())
    """
)


def _python(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize(
    "statement",
    [
        "import rag_rerank",
        "from rag_rerank import RerankResult, RerankerOptions, RerankerLike, InvalidInputError",
        "from rag_rerank import RemoteReranker, RemoteRerankError",
        "import rag_rerank.api, rag_rerank.errors, rag_rerank.client",
    ],
)
def test_light_imports_load_no_heavy_dependency(statement):
    loaded = json.loads(
        _python(f"{statement}\nimport sys, json\nprint(json.dumps(sorted(sys.modules)))")
    )
    assert not [name for name in loaded if name.partition(".")[0] in HEAVY]


def test_the_blocker_really_blocks_torch():
    done = subprocess.run(
        [sys.executable, "-c", BLOCK_TORCH + "\nfrom rag_rerank import Reranker"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode != 0 and "blocked by the test" in done.stderr


def test_remote_reranker_without_torch_matches_the_local_reranker(bert_dir):
    query = "what do pandas eat"
    documents = ["Pandas eat bamboo.", "Paris is in France.", "A panda is a bear.", "Rain."]
    with Reranker(bert_dir) as local, live_server(create_app(local)) as url:
        expected = [r.to_dict() for r in local.rerank(query, documents, top_n=3)]
        code = BLOCK_TORCH + textwrap.dedent(
            f"""
            import json, sys
            from rag_rerank import RemoteReranker, RerankResult

            with RemoteReranker({url!r}) as remote:
                results = remote.rerank({query!r}, {documents!r}, top_n=3)
            assert all(isinstance(r, RerankResult) for r in results)
            assert "torch" not in sys.modules
            print(json.dumps([r.to_dict() for r in results]))
            """
        )
        got = json.loads(_python(code))
    assert [r["index"] for r in got] == [r["index"] for r in expected]
    for remote, here in zip(got, expected, strict=True):
        assert remote["document"] == here["document"]
        assert remote["raw_score"] == pytest.approx(here["raw_score"], abs=1e-6)
        assert remote["score"] == pytest.approx(here["score"], abs=1e-6)
