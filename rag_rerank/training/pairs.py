"""Training queries made from the corpus itself, and their negatives (pure functions).

Two kinds of query per passage, the passage being the positive:

- content words: 2-4 of its words that are not stop words, as a keyword search would be typed;
- inverse cloze: one of its sentences, with that sentence taken out of the positive, so the model
  learns to match a statement to the context around it rather than to itself.

Negatives are the passages the vector store puts nearest the query (hard: they share its words
and topic) plus a few drawn at random (easy: they keep the scale of the logits honest).
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "TrainingQuery",
    "content_word_query",
    "inverse_cloze_query",
    "make_queries",
    "pick_negatives",
    "split_held_out",
]

_WORD = re.compile(r"[^\W\d_][\w'-]*[^\W_]|[^\W\d_]", re.UNICODE)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=\S)")
_STOP_WORDS = frozenset(
    """a about above after again against all also am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for from
    further had has have having he her here hers herself him himself his how i if in into is it its
    itself just may me might more most must my myself no nor not now of off on once only or other
    our ours ourselves out over own same she should so some such than that the their theirs them
    themselves then there these they this those through to too under until up very was we were
    what when where which while who whom why will with would you your yours yourself yourselves
    one two three many much often used use uses called known well like""".split()
)


@dataclass(frozen=True, slots=True)
class TrainingQuery:
    """A generated query and its positive.

    Attributes:
        query: The query text.
        passage: Index of the passage it was made from (its relevant passage).
        positive: The positive text (the passage, without the query's sentence for inverse cloze).
        kind: ``"words"`` or ``"cloze"`` (or ``"labels"`` for a labelled query).
    """

    query: str
    passage: int
    positive: str
    kind: str


def content_word_query(text: str, rng: random.Random) -> str | None:
    """2-4 distinct content words of ``text``, in text order; ``None`` when it has fewer than 2."""
    words: list[str] = []
    for match in _WORD.finditer(text):
        word = match.group().lower()
        if len(word) > 2 and word not in _STOP_WORDS and word not in words:
            words.append(word)
    if len(words) < 2:
        return None
    chosen = sorted(rng.sample(range(len(words)), rng.randint(2, min(4, len(words)))))
    return " ".join(words[i] for i in chosen)


def inverse_cloze_query(text: str, rng: random.Random) -> tuple[str, str] | None:
    """One sentence of ``text`` and the text without it; ``None`` for a single sentence."""
    sentences: list[str] = []
    for piece in _SENTENCE_END.split(text.strip()):
        # "Apple Inc. designs ...": a piece of fewer than 4 words ends an abbreviation, not a
        # sentence; it joins the next piece.
        if sentences and len(sentences[-1].split()) < 4:
            sentences[-1] += " " + piece
        else:
            sentences.append(piece)
    if len(sentences) > 1 and len(sentences[-1].split()) < 4:
        sentences[-2] += " " + sentences.pop()
    if len(sentences) < 2:
        return None
    i = rng.randrange(len(sentences))
    return sentences[i], " ".join(sentences[:i] + sentences[i + 1 :])


def make_queries(passages: Sequence[str], seed: int = 0) -> list[TrainingQuery]:
    """A content-word query and an inverse-cloze query for each passage that allows them,
    in passage order; the same ``seed`` gives the same queries."""
    rng = random.Random(seed)
    queries = []
    for i, text in enumerate(passages):
        words = content_word_query(text, rng)
        if words:
            queries.append(TrainingQuery(words, i, text, "words"))
        cloze = inverse_cloze_query(text, rng)
        if cloze:
            queries.append(TrainingQuery(cloze[0], i, cloze[1], "cloze"))
    return queries


def split_held_out(
    queries: Sequence[TrainingQuery], share: float, seed: int = 0
) -> tuple[list[TrainingQuery], list[TrainingQuery]]:
    """``(train, held_out)``: about ``share`` of the passages hold out every query made from them,
    so no held-out query has a sibling query in training. At least one passage is held out when
    ``share > 0`` and at least one stays for training."""
    passages = sorted({q.passage for q in queries})
    count = min(len(passages) - 1, max(1, round(share * len(passages)))) if share > 0 else 0
    held = set(random.Random(seed).sample(passages, count)) if count > 0 else set()
    return [q for q in queries if q.passage not in held], [q for q in queries if q.passage in held]


def pick_negatives(
    positive: int,
    nearest: Sequence[int],
    n_passages: int,
    *,
    hard: int,
    easy: int,
    rng: random.Random,
) -> list[int]:
    """Indices of ``hard`` nearest passages (in the store's order, the positive left out) and
    ``easy`` other passages drawn at random, with no repeats."""
    chosen = [i for i in nearest if i != positive][:hard]
    taken = {positive, *chosen}
    others = [i for i in range(n_passages) if i not in taken]
    return chosen + rng.sample(others, min(easy, len(others)))
