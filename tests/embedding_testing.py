"""A real chromadb embedding function for tests: hashed bag-of-words vectors, deterministic,
offline and instant (the offline MiniLM would cost seconds per test)."""

from __future__ import annotations

import re
import zlib

import numpy as np
from chromadb import Documents, EmbeddingFunction, Embeddings


class BagOfWords(EmbeddingFunction[Documents]):
    """Each word hashed into one of ``dims`` buckets, the counts scaled to unit length."""

    def __init__(self, dims: int = 64) -> None:
        self.dims = dims

    def __call__(self, input: Documents) -> Embeddings:
        vectors = []
        for text in input:
            vector = np.zeros(self.dims, dtype=np.float32)
            for word in re.findall(r"\w+", text.lower()):
                vector[zlib.crc32(word.encode()) % self.dims] += 1.0
            norm = float(np.linalg.norm(vector))
            vectors.append(vector / norm if norm else vector)
        return vectors

    @staticmethod
    def name() -> str:
        return "test_bag_of_words"

    def get_config(self) -> dict[str, object]:
        return {"dims": self.dims}

    @staticmethod
    def build_from_config(config: dict[str, object]) -> BagOfWords:
        dims = config.get("dims", 64)
        return BagOfWords(dims if isinstance(dims, int) else 64)
