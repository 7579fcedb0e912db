"""Context pruning, free of torch: cut each kept passage down to the sentences that answer.

Pruning runs after reranking, on the passages that survived ``threshold`` and ``top_n``; their
rerank scores and order never change. One request goes through four steps:

1. :func:`split_sentences` cuts each passage into sentence spans: ``(start, end)`` character
   offsets into the passage exactly as the caller passed it.
2. :class:`PruneJob` holds the request's passages (one query per passage) and their spans.
3. **The seam**: something gives every sentence a [0, 1] score, as one list per passage in
   sentence order (``list[list[float]]``). Two sources plug in here:

   - *sentence scoring*, which works with any cross-encoder: every ``(query, sentence)`` pair of
     every passage of the job is scored in **one** engine submission
     (:meth:`PruneJob.sentence_pairs` gives the flat pairs, :meth:`PruneJob.unflatten` turns the
     flat scores back into lists). This is ``BaseReranker._sentence_scores``; a reranker that can
     do better overrides it.
   - *a pruning head* (Provence / OpenProvence layout): a model kind whose forward pass yields
     per-token pruning logits beside its rerank logit. It averages them over each span of
     :attr:`PruneJob.spans` and returns the same ``list[list[float]]`` from the override, without
     scoring the sentences again.

   Passages of one sentence need no score: :attr:`PruneJob.to_score` lists the passages that do,
   and only their sentences are in :meth:`PruneJob.sentence_pairs`.
4. :meth:`PruneJob.apply` keeps the sentences :func:`select_sentences` picks (relative to the
   passage's best sentence, plus ``context`` neighbours, plus the first sentence on request; never
   none), joins them as in the original (:func:`join_sentences`) and returns the results with
   ``pruned_text`` and ``kept_spans`` set.

Sentences come from `sentencex <https://pypi.org/project/sentencex/>`_ (Wikimedia's segmenter:
MIT, no dependencies, ~1 MB wheels for every platform, rules for ~300 languages): it keeps
abbreviations (``Dr.``, ``U.S.``, ``e.g.``) and decimals (``3.5``, ``2.0.1``) inside a sentence,
ends sentences at CJK full stops (``。！？``), and its pieces join back to the exact input, so the
offsets are exact. It splits a 400-character passage in ~0.15 ms (pysbd, the pure-Python
alternative, took ~4 ms: more than scoring the sentences). Line breaks also end a sentence (titles,
list items, lines of text without punctuation), and a run of more than :data:`MAX_SENTENCE_CHARS`
characters with no boundary is cut at spaces, so text without any punctuation still prunes.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from ..errors import InvalidInputError, InvalidInputTypeError
from .checks import check_int

if TYPE_CHECKING:
    from .results import RerankResult

__all__ = [
    "MAX_SENTENCE_CHARS",
    "PRUNE_METHODS",
    "PruneJob",
    "PruneMethod",
    "PruneOptions",
    "Span",
    "join_sentences",
    "prune_options",
    "select_sentences",
    "split_sentences",
]

Span = tuple[int, int]

PruneMethod = Literal["auto", "sentences", "head"]
PRUNE_METHODS: tuple[str, ...] = ("auto", "sentences", "head")
"""The values of :attr:`PruneOptions.method`."""
"""``(start, end)`` character offsets of a sentence in its passage: ``passage[start:end]``."""

MAX_SENTENCE_CHARS = 400
"""Longest sentence :func:`split_sentences` returns, in characters; a longer run without a
sentence boundary (text without punctuation) is cut at spaces."""

_LINE_BREAK = re.compile(r"\n")
_SPACE = re.compile(r"\s")


def _field(default: Any, help: str) -> Any:
    # ``help`` is the field's one-line description, for the CLI's --prune-<field> flags.
    return dataclasses.field(default=default, metadata={"help": help})


@dataclass(frozen=True, kw_only=True)
class PruneOptions:
    """How passages are pruned to the sentences that answer the query.

    A sentence is kept when its score reaches ``threshold`` times the best sentence score of its
    passage (and ``min_score``, when set); the best sentence is always kept, so no passage comes
    back empty. Each kept sentence brings ``context`` neighbours on each side, and ``keep_first``
    keeps the passage's first sentence (its title line, when it has one).

    Attributes:
        threshold: Relative cutoff in (0, 1]: keep sentences scoring at least this fraction of
            the passage's best sentence score. ``1.0`` keeps only the best sentence (and ties);
            lower keeps more. Default ``0.5``.
        min_score: Absolute cutoff in [0, 1] on a sentence's score, on top of ``threshold``;
            ``None`` (default) for none. The best sentence is kept even below it.
        context: Neighbouring sentences kept on each side of a kept sentence (>= 0; default 0).
        keep_first: Always keep the passage's first sentence (a title, a heading). Default off.
        language: Language code for the sentence rules (``"en"``, ``"de"``, ``"zh"``, ...);
            default ``"en"``, which also ends sentences at CJK full stops.
        method: Where the sentence scores come from: ``"sentences"`` scores each (query,
            sentence) pair with the reranker; ``"head"`` averages the token logits of a model's
            pruning head from the pass that ranked the passages (no extra pass; a model trained
            with ``rag-rerank train --prune``); ``"auto"`` (default) is the head when the model
            has one, else sentences.

    Raises:
        InvalidInputError: A bad value; ``field`` names it as ``prune.<name>``.

    Example:
        >>> PruneOptions(threshold=0.3, context=1, method="sentences")  # doctest: +ELLIPSIS
        PruneOptions(threshold=0.3, min_score=None, context=1, ..., method='sentences')
    """

    threshold: float = _field(
        0.5, "keep sentences scoring at least this fraction of the passage's best, in (0, 1]"
    )
    min_score: float | None = _field(None, "and at least this score, in [0, 1]")
    context: int = _field(0, "neighbouring sentences kept each side of a kept one")
    keep_first: bool = _field(False, "always keep each passage's first sentence (a title)")
    language: str = _field("en", "language code of the sentence rules")
    method: PruneMethod = _field(  # noqa: RUF009 (a dataclasses.field)
        "auto", "where sentence scores come from: auto, sentences or head (a pruning head)"
    )

    def __post_init__(self) -> None:
        t = self.threshold
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not 0.0 < t <= 1.0:
            raise InvalidInputError(
                "prune.threshold",
                f"must be a number in (0, 1] (a fraction of the best sentence's score), got {t!r}",
            )
        m = self.min_score
        if m is not None and (
            isinstance(m, bool) or not isinstance(m, (int, float)) or not 0.0 <= m <= 1.0
        ):
            raise InvalidInputError("prune.min_score", f"must be in [0, 1] or None, got {m!r}")
        check_int(self.context, "prune.context", least=0)
        if not isinstance(self.keep_first, bool):
            raise InvalidInputError(
                "prune.keep_first", f"must be True or False, got {self.keep_first!r}"
            )
        if self.method not in PRUNE_METHODS:
            raise InvalidInputError(
                "prune.method",
                f"must be one of {', '.join(map(repr, PRUNE_METHODS))}, got {self.method!r}",
            )
        if not isinstance(self.language, str) or not self.language.strip():
            raise InvalidInputError(
                "prune.language", f"must be a language code such as 'en', got {self.language!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        """Every field by name: plain JSON-ready values."""
        return dataclasses.asdict(self)


_PRUNE_FIELDS = tuple(f.name for f in dataclasses.fields(PruneOptions))


def prune_options(prune: object) -> PruneOptions | None:
    """The ``prune`` argument as options: ``None``/``False`` is off, ``True`` the defaults, a
    :class:`PruneOptions` itself, a mapping its fields (JSON bodies).

    Raises:
        InvalidInputTypeError: Another type, or an unknown name in a mapping (``field`` is
            ``prune`` or ``prune.<name>``).
        InvalidInputError: A bad value (``field`` is ``prune.<name>``).
    """
    if prune is None or prune is False:
        return None
    if prune is True:
        return PruneOptions()
    if isinstance(prune, PruneOptions):
        return prune
    if isinstance(prune, Mapping):
        for name in prune:
            if name not in _PRUNE_FIELDS:
                raise InvalidInputTypeError(
                    f"prune.{name}",
                    f"is not a pruning option; the options are: {', '.join(_PRUNE_FIELDS)}",
                )
        return PruneOptions(**prune)
    raise InvalidInputTypeError(
        "prune", f"must be True, False, None or a PruneOptions, got {type(prune).__name__}"
    )


def split_sentences(
    text: str, language: str = "en", *, max_chars: int = MAX_SENTENCE_CHARS
) -> list[Span]:
    """The sentences of ``text`` as ``(start, end)`` offsets, in order, without the whitespace
    around them (``text[start:end]`` is the sentence).

    Sentence ends come from sentencex's rules for ``language`` (abbreviations and decimals stay
    inside a sentence; CJK full stops end one), and every line break ends one too. A piece longer
    than ``max_chars`` characters (text without punctuation) is cut at the last space before the
    limit, or at the limit when there is none. Empty or blank text has no sentences.

    Example:
        >>> text = "Dr. Lee paid $3.50. 熊猫吃竹子。It rained"
        >>> [text[s:e] for s, e in split_sentences(text)]
        ['Dr. Lee paid $3.50.', '熊猫吃竹子。', 'It rained']
    """
    import sentencex  # a compiled extension: loaded when pruning is first used

    spans: list[Span] = []
    start = 0
    for piece in sentencex.segment(language, text):
        end = start + len(piece)
        line_start = start
        for match in _LINE_BREAK.finditer(text, start, end):
            _add_trimmed(text, line_start, match.start(), max_chars, spans)
            line_start = match.end()
        _add_trimmed(text, line_start, end, max_chars, spans)
        start = end
    return spans


def _add_trimmed(text: str, start: int, end: int, max_chars: int, spans: list[Span]) -> None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    while end - start > max_chars:  # no boundary for too long: cut at a space
        cut = start + max_chars
        space = max((m.start() for m in _SPACE.finditer(text, start + 1, cut + 1)), default=None)
        piece_end = space if space is not None else cut
        _add_trimmed(text, start, piece_end, max_chars, spans)
        start = piece_end
        while start < end and text[start].isspace():
            start += 1
    if end > start:
        spans.append((start, end))


def select_sentences(scores: Sequence[float], options: PruneOptions) -> list[int]:
    """Indices (ascending) of the sentences to keep, from their [0, 1] ``scores`` in order.

    Kept: the best sentence (the first of equal bests), every sentence scoring at least
    ``options.threshold`` times the best score and at least ``options.min_score``, then
    ``options.context`` neighbours each side of those, and the first sentence with
    ``options.keep_first``. Never empty for a non-empty ``scores``; NaN scores are never kept
    (unless all are NaN: then the first sentence is the best).
    """
    if not scores:
        return []
    finite = [s if not math.isnan(s) else -math.inf for s in scores]
    best = max(range(len(finite)), key=finite.__getitem__)
    cutoff = options.threshold * finite[best]
    if options.min_score is not None:
        cutoff = max(cutoff, options.min_score)
    passing = {best, *(i for i, s in enumerate(finite) if s >= cutoff and s > -math.inf)}
    kept = set(passing)
    for i in passing:
        kept.update(range(max(0, i - options.context), min(len(scores), i + options.context + 1)))
    if options.keep_first:
        kept.add(0)
    return sorted(kept)


def join_sentences(text: str, spans: Sequence[Span]) -> str:
    """The sentences at ``spans`` (ascending) joined as in ``text``: between two kept sentences,
    the whitespace that follows the first in ``text`` or the one that precedes the second,
    whichever holds more line breaks (the second's on a tie). Neighbours keep exactly their own
    gap; CJK sentences join with none; a title line stays on its own line."""
    parts: list[str] = []
    previous_end = 0
    for start, end in spans:
        if parts:
            after = previous_end
            while after < start and text[after].isspace():
                after += 1
            before = start
            while before > previous_end and text[before - 1].isspace():
                before -= 1
            gap_after, gap_before = text[previous_end:after], text[before:start]
            parts.append(
                gap_after if gap_after.count("\n") > gap_before.count("\n") else gap_before
            )
        parts.append(text[start:end])
        previous_end = end
    return "".join(parts)


@dataclass(frozen=True)
class PruneJob:
    """One request's pruning: the passages to prune, their queries and their sentence spans.

    Built by :meth:`of` from reranked results; a score source (see the module docstring) gives
    each sentence a [0, 1] score, and :meth:`apply` returns the pruned results.

    Attributes:
        queries: The query of each passage.
        passages: The passages (the results' documents, as the caller passed them).
        spans: Each passage's sentence spans (:func:`split_sentences`).
        options: How to select the sentences.
    """

    queries: tuple[str, ...]
    passages: tuple[str, ...]
    spans: tuple[tuple[Span, ...], ...]
    options: PruneOptions

    @classmethod
    def of(
        cls, queries: Sequence[str], results: Sequence[RerankResult], options: PruneOptions
    ) -> PruneJob:
        """The job for ``results`` (each pruned against the query at the same position)."""
        passages = tuple(r.document for r in results)
        spans = tuple(tuple(split_sentences(p, options.language)) for p in passages)
        return cls(tuple(queries), passages, spans, options)

    @property
    def to_score(self) -> tuple[int, ...]:
        """Indices of the passages with more than one sentence: the only ones that need scores."""
        return tuple(i for i, spans in enumerate(self.spans) if len(spans) > 1)

    def sentence_pairs(self) -> tuple[list[str], list[str]]:
        """``(queries, sentences)``: every sentence of the passages in :attr:`to_score`, flat, in
        order, with its passage's query (for one engine submission)."""
        queries: list[str] = []
        sentences: list[str] = []
        for i in self.to_score:
            passage = self.passages[i]
            for start, end in self.spans[i]:
                queries.append(self.queries[i])
                sentences.append(passage[start:end])
        return queries, sentences

    def unflatten(self, scores: Sequence[float]) -> list[list[float]]:
        """Flat scores of :meth:`sentence_pairs` as one list per passage (empty lists for the
        passages that needed none)."""
        per_passage: list[list[float]] = [[] for _ in self.passages]
        at = 0
        for i in self.to_score:
            n = len(self.spans[i])
            per_passage[i] = [float(s) for s in scores[at : at + n]]
            at += n
        if at != len(scores):
            raise ValueError(f"expected {at} sentence scores, got {len(scores)}")
        return per_passage

    def apply(
        self, results: Sequence[RerankResult], scores: Sequence[Sequence[float]]
    ) -> list[RerankResult]:
        """``results`` (those the job was made of, same order) with ``pruned_text`` and
        ``kept_spans`` from the sentence ``scores`` (one list per passage; ignored for the
        passages outside :attr:`to_score`). Score, index, document and order are unchanged."""
        pruned = []
        for i, result in enumerate(results):
            spans = self.spans[i]
            kept = list(spans)
            if len(spans) > 1:
                kept = [spans[k] for k in select_sentences(scores[i], self.options)]
            pruned.append(
                dataclasses.replace(
                    result,
                    pruned_text=join_sentences(result.document, kept),
                    kept_spans=tuple(kept),
                )
            )
        return pruned
