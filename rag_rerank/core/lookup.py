"""One call's pairs against the score cache: which pairs are known, which the model must score
(each distinct key once, so identical pairs in a call share one score), and the logits back in
the caller's order."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from ..errors import NonFiniteScoreError
from .cache import ScoreCache
from .cache_keys import document_key, query_digest

__all__ = ["CacheLookup"]


class CacheLookup:
    """One call's pairs against the cache: which are known, which the model must score (each
    distinct key once), and the logits in input order."""

    def __init__(
        self, queries: Sequence[str], texts: Sequence[str], max_length: int, mode: str
    ) -> None:
        self.queries = queries
        self.texts = texts
        digests: dict[str, hashlib.blake2b] = {}  # each distinct query hashed once
        self.keys = []
        for query, text in zip(queries, texts, strict=True):
            digest = digests.get(query)
            if digest is None:
                digest = digests[query] = query_digest(max_length, mode, query)
            self.keys.append(document_key(digest, text))
        self.logits = np.empty(len(self.keys), dtype=np.float32)
        self.missing: list[int] = []  # first position of each distinct missing key
        self._new: dict[bytes, float] = {}

    def found(self, values: list[float | None]) -> None:
        seen: set[bytes] = set()
        for i, (key, value) in enumerate(zip(self.keys, values, strict=True)):
            if value is not None:
                self.logits[i] = value
            elif key not in seen:
                seen.add(key)
                self.missing.append(i)

    def to_score(self) -> tuple[list[str], list[str]]:
        return [self.queries[i] for i in self.missing], [self.texts[i] for i in self.missing]

    def scored(self, logits: np.ndarray) -> None:
        self._new = {self.keys[i]: float(v) for i, v in zip(self.missing, logits, strict=True)}

    def renumbered(self, exc: NonFiniteScoreError) -> NonFiniteScoreError:
        """The error with the caller's pair index, not the index among the misses."""
        i = self.missing[exc.pair_index]
        return NonFiniteScoreError(i, self.queries[i], self.texts[i], exc.value)

    def finish(self, cache: ScoreCache) -> np.ndarray:
        hits = len(self.keys)
        if self._new:
            for i, key in enumerate(self.keys):
                value = self._new.get(key)
                if value is not None:
                    self.logits[i] = value
                    hits -= 1
            cache.put_many(self._new)
        cache.count(hits=hits, misses=len(self.keys) - hits)
        return self.logits
