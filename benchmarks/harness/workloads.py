"""Benchmark inputs: RAG-chunk pair lengths, and queries and passages that tokenize to them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

MAX_LENGTH = 512
"""The peers' window in tokens (they truncate there; rag-rerank scores longer pairs by windows)."""
SEED = 1234


_SYLLABLES = [c + v for c in "bcdfghjklmnprstvwz" for v in "aeiou"] + ["an", "er", "in", "on"]


def pseudo_words(rng: np.random.Generator, n: int) -> list[str]:
    words: set[str] = set()
    while len(words) < n:
        words.add("".join(rng.choice(_SYLLABLES, size=int(rng.integers(1, 4)))))
    return sorted(words)


def sentence(rng: np.random.Generator, words: Sequence[str], n: int) -> str:
    # Zipf-like word frequencies, like natural text.
    ranks = np.minimum(rng.zipf(1.3, size=n), len(words)) - 1
    text = " ".join(words[int(r)] for r in ranks)
    return text[0].upper() + text[1:] + "."


def _word_list(tokenizer: Any, rng: np.random.Generator) -> list[str]:
    vocab = getattr(tokenizer, "vocab", None) or {}
    words = sorted(w for w in vocab if w.isascii() and w.isalpha() and w.islower() and len(w) > 2)
    if len(words) > 1000:
        return words
    return pseudo_words(rng, 6000)


def constant_lengths(length: int, n: int) -> np.ndarray:
    return np.full(n, length)


def pair_token_lengths(
    rng: np.random.Generator, n: int, low: int = 64, high: int = MAX_LENGTH, median: int = 200
) -> np.ndarray:
    """RAG-chunk pair lengths in tokens: the ``n`` quantiles of a log-normal around ``median``
    (sigma 0.5), clipped to [low, high], in random order. Quantiles rather than draws, so even 50
    pairs have the intended median and spread."""
    from statistics import NormalDist

    z = np.array([NormalDist().inv_cdf((i + 0.5) / n) for i in range(n)])
    lengths = np.clip(np.round(median * np.exp(0.5 * z)), low, high).astype(int)
    return rng.permutation(lengths)


@dataclass
class Workload:
    """Queries, their passages, and each pair's token count (capped at the window)."""

    queries: list[str]
    passages: list[list[str]]
    pair_tokens: list[np.ndarray] = field(default_factory=list)

    @property
    def pairs(self) -> int:
        return sum(len(p) for p in self.passages)

    def flat_pairs(self) -> list[tuple[str, str]]:
        return [(q, p) for q, ps in zip(self.queries, self.passages, strict=True) for p in ps]


class TextMaker:
    """Makes queries and passages whose tokenized pair lengths hit given targets."""

    def __init__(self, tokenizer: Any, seed: int = SEED) -> None:
        self.tokenizer = tokenizer
        self.rng = np.random.default_rng(seed)
        self.words = _word_list(tokenizer, self.rng)
        self.specials = tokenizer.num_special_tokens_to_add(pair=True)

    def _tokens(self, text: str) -> Any:
        return self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)

    def text_of(self, n_tokens: int) -> str:
        """A text of exactly (or very nearly) ``n_tokens`` tokens."""
        n_tokens = max(1, n_tokens)
        text = ""
        while True:
            text = (text + " " + sentence(self.rng, self.words, max(8, n_tokens))).strip()
            offsets = self._tokens(text)["offset_mapping"]
            if len(offsets) >= n_tokens:
                return text[: offsets[n_tokens - 1][1]]

    def workload(
        self,
        n_queries: int,
        n_passages: int,
        lengths: Callable[[int], np.ndarray],
        max_length: int = MAX_LENGTH,
    ) -> Workload:
        """``n_queries`` queries of 8-16 tokens, each with ``n_passages`` passages whose pair
        lengths
        (query + passage + special tokens) are drawn by ``lengths(n)``."""
        queries, passages, pair_tokens = [], [], []
        for _ in range(n_queries):
            query = self.text_of(int(self.rng.integers(8, 17)))
            q_len = len(self._tokens(query)["input_ids"])
            docs = [self.text_of(int(t) - q_len - self.specials) for t in lengths(n_passages)]
            queries.append(query)
            passages.append(docs)
            encoded = self.tokenizer(
                [query] * len(docs), docs, truncation="only_second", max_length=max_length
            )
            pair_tokens.append(np.array([len(ids) for ids in encoded["input_ids"]]))
        return Workload(queries, passages, pair_tokens)
