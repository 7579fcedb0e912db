"""Fixtures for the LlamaIndex postprocessor tests: an offline MiniLM embedding model and a
Chroma-backed index of 240 documents persisted in a temp folder."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("llama_index.core", reason="needs llama-index-core")
pytest.importorskip(
    "llama_index.vector_stores.chroma", reason="needs llama-index-vector-stores-chroma"
)

# The integration is tested from the source tree when it is not installed.
_PACKAGE_ROOT = Path(__file__).resolve().parents[3] / "integrations" / "llama_index"
if str(_PACKAGE_ROOT) not in sys.path:
    sys.path.insert(0, str(_PACKAGE_ROOT))

import chromadb  # noqa: E402
from llama_index.core import Document, StorageContext, VectorStoreIndex  # noqa: E402
from llama_index.core.bridge.pydantic import PrivateAttr  # noqa: E402
from llama_index.core.embeddings import BaseEmbedding  # noqa: E402
from llama_index.vector_stores.chroma import ChromaVectorStore  # noqa: E402

from rag_rerank.rag.embeddings import default_embedding_function, embedding_model_path  # noqa: E402

COLLECTION = "llamaindex_docs"

_TOPICS = {
    "animals": [
        "The giant panda eats bamboo for most of the day in the mountain forests of China.",
        "Red pandas sleep in trees and wrap their tails around themselves for warmth.",
        "Snow leopards hunt blue sheep on steep rocky slopes of Central Asia.",
        "African elephants use their trunks to drink, greet and lift heavy branches.",
        "Emperor penguins huddle together through the Antarctic winter to keep warm.",
        "Koalas feed almost only on eucalyptus leaves and rest most of the day.",
        "Sea otters hold hands while sleeping so they do not drift apart.",
        "Wolves live in packs led by a breeding pair and hunt together.",
    ],
    "cities": [
        "Paris is the capital of France and sits on the river Seine.",
        "Tokyo is the largest metropolitan area in the world by population.",
        "Venice is built on more than one hundred small islands in a lagoon.",
        "Reykjavik is the northernmost capital of a sovereign state.",
        "Cairo lies on the Nile near the ancient pyramids of Giza.",
        "Buenos Aires is known for tango and its wide avenues.",
        "Singapore is a city-state at the southern tip of the Malay peninsula.",
        "Istanbul straddles the Bosphorus between Europe and Asia.",
    ],
    "programming": [
        "Python uses indentation to delimit blocks of code.",
        "Rust prevents data races at compile time through ownership and borrowing.",
        "A hash map gives average constant-time lookups by key.",
        "Garbage collectors reclaim memory that a program can no longer reach.",
        "Unit tests check one small piece of behaviour in isolation.",
        "Git records the history of a project as a graph of commits.",
        "SQL joins combine rows from two tables on a shared column.",
        "Async functions let one thread wait on many network requests at once.",
    ],
    "space": [
        "Jupiter is the largest planet in the solar system.",
        "The Moon always shows the same face to the Earth because of tidal locking.",
        "Mars has the tallest volcano known, Olympus Mons.",
        "A light year is the distance light travels in one year.",
        "Black holes bend light so strongly that nothing escapes beyond the event horizon.",
        "Saturn's rings are made mostly of ice particles.",
        "The International Space Station orbits the Earth about every ninety minutes.",
        "Neutron stars are the collapsed cores of massive stars.",
    ],
    "food": [
        "Sourdough bread rises with wild yeast and lactic acid bacteria.",
        "Risotto is cooked by adding hot stock to rice a ladle at a time.",
        "Kimchi is fermented cabbage seasoned with chili and garlic.",
        "Espresso is made by forcing hot water through finely ground coffee.",
        "Dark chocolate contains more cocoa solids than milk chocolate.",
        "Sushi rice is seasoned with vinegar, sugar and salt.",
        "Olive oil is pressed from the fruit of the olive tree.",
        "Miso soup is made from dashi stock and fermented soybean paste.",
    ],
    "sports": [
        "A marathon is a little over forty-two kilometres long.",
        "In tennis a score of zero is called love.",
        "Football teams field eleven players each.",
        "The Tour de France is a three-week bicycle race.",
        "Basketball was invented by James Naismith in 1891.",
        "Cricket matches can last up to five days in the test format.",
        "Swimmers in the butterfly stroke move both arms together.",
        "Chess tournaments use clocks so each player has limited thinking time.",
    ],
}
_FRAMES = [
    "{}",
    "Fact: {}",
    "Did you know? {}",
    "From the encyclopedia: {}",
    "A note for students: {}",
]


def corpus() -> list[Document]:
    """240 short documents on six topics, with a visible ``topic`` and an embed-excluded ``n``."""
    documents = []
    for topic, sentences in _TOPICS.items():
        for frame in _FRAMES:
            for sentence in sentences:
                documents.append(
                    Document(
                        text=frame.format(sentence),
                        metadata={"topic": topic, "n": len(documents)},
                        excluded_embed_metadata_keys=["n"],
                        excluded_llm_metadata_keys=["n"],
                    )
                )
    return documents


class MiniLMEmbedding(BaseEmbedding):
    """The offline all-MiniLM-L6-v2 as a LlamaIndex embedding model (no extra package needed).

    Wraps the chromadb embedding function from ``rag_rerank.rag.embeddings``, which runs
    ``embedding_model_path()`` through sentence-transformers.
    """

    _function: Any = PrivateAttr()

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(model_name=embedding_model_path(), **{"embed_batch_size": 64, **kwargs})
        self._function = default_embedding_function()

    @property
    def chroma_function(self) -> Any:
        """The same model as a chromadb embedding function (one copy in memory for both)."""
        return self._function

    @classmethod
    def class_name(cls) -> str:
        return "MiniLMEmbedding"

    def _get_text_embeddings(self, texts: Sequence[str]) -> list[list[float]]:
        return [[float(x) for x in vector] for vector in self._function(list(texts))]

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._get_text_embeddings([text])[0]

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._get_text_embedding(query)

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._get_query_embedding(query)


@pytest.fixture(scope="session")
def minilm() -> MiniLMEmbedding:
    return MiniLMEmbedding()


@pytest.fixture(scope="session")
def chroma_index(
    tmp_path_factory: pytest.TempPathFactory, minilm: MiniLMEmbedding
) -> VectorStoreIndex:
    """A VectorStoreIndex over a persisted Chroma collection, reopened as a user would."""
    folder = str(tmp_path_factory.mktemp("chroma"))
    collection = chromadb.PersistentClient(path=folder).get_or_create_collection(
        COLLECTION, embedding_function=minilm.chroma_function
    )
    store = ChromaVectorStore(chroma_collection=collection)
    storage = StorageContext.from_defaults(vector_store=store)
    VectorStoreIndex.from_documents(corpus(), storage_context=storage, embed_model=minilm)

    reopened = chromadb.PersistentClient(path=folder).get_collection(
        COLLECTION, embedding_function=minilm.chroma_function
    )
    assert reopened.count() == len(corpus())
    return VectorStoreIndex.from_vector_store(
        ChromaVectorStore(chroma_collection=reopened), embed_model=minilm
    )
