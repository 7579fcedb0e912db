"""What reaches the LLM, free of torch: fill a token budget with the best passages, in an order.

:class:`ContextBudget` is checked once from the ``max_context_tokens``, ``tokenizer`` and
``order`` arguments of ``rerank``; :meth:`ContextBudget.apply` takes the reranked (and possibly
pruned) results best first and returns the ones the LLM should read.
"""

from __future__ import annotations

import dataclasses
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal

from ..errors import InvalidInputError, InvalidInputTypeError
from .checks import check_int
from .pruning import join_sentences, split_sentences

if TYPE_CHECKING:
    from .results import RerankResult

__all__ = [
    "CONTEXT_ORDERS",
    "ContextBudget",
    "ContextOrder",
    "TokenCounter",
    "approximate_tokens",
    "edges_order",
    "token_counter",
]

ContextOrder = Literal["score", "edges"]
CONTEXT_ORDERS: tuple[ContextOrder, ...] = ("score", "edges")
"""How the passages handed to the LLM are ordered: ``"score"`` best first; ``"edges"`` the best two
at the two ends and the weakest in the middle (the "lost in the middle" order of LangChain's
``LongContextReorder``, :func:`edges_order`)."""

TokenCounter = Callable[[str], int]
"""Counts the tokens of a text."""

# Word runs (letters, digits), CJK / kana / hangul characters one by one, other visible marks.
_TOKEN_PIECES = re.compile(
    r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]|[^\W_]+|[^\w\s]"
)


def approximate_tokens(text: str) -> int:
    """A fast estimate of an LLM tokenizer's count: a word is one token per 4 characters (rounded
    up), a CJK character or a punctuation mark one. Errs high on English prose (a BPE tokenizer
    keeps most short words whole), so a budget counted this way is not overrun."""
    count = 0
    for match in _TOKEN_PIECES.finditer(text):
        count += (len(match.group()) + 3) // 4
    return count


class _LockedCounter:
    # A fast tokenizer is not thread-safe ("Already borrowed"): one call at a time.
    def __init__(self, encode: Callable[[str], Sequence[Any]]) -> None:
        self._encode = encode
        self._lock = threading.Lock()

    def __call__(self, text: str) -> int:
        with self._lock:
            return len(self._encode(text))


@lru_cache(maxsize=8)
def _load_tokenizer(name: str) -> TokenCounter:
    try:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(name)
    except Exception as exc:  # any failure to load: the caller's name is bad
        raise InvalidInputError(
            "tokenizer",
            f"cannot load the tokenizer {name!r} (a Hugging Face tokenizer id or folder): {exc}",
        ) from exc
    return _LockedCounter(lambda text: tokenizer.encode(text, add_special_tokens=False))


def token_counter(tokenizer: object = None) -> TokenCounter:
    """A token counter for ``tokenizer``: ``None`` for :func:`approximate_tokens`; a Hugging Face
    tokenizer id or local folder (loaded once, then cached); an object with ``encode`` (a
    transformers tokenizer, a tiktoken encoding); or a callable from text to a token count or a
    token list.

    Raises:
        InvalidInputError: A name that cannot be loaded (``field`` is ``tokenizer``).
        InvalidInputTypeError: Any other type (``field`` is ``tokenizer``).
    """
    if tokenizer is None:
        return approximate_tokens
    if isinstance(tokenizer, str):
        if not tokenizer.strip():
            raise InvalidInputError("tokenizer", "must be a tokenizer id or folder, got ''")
        return _load_tokenizer(tokenizer)
    encode = getattr(tokenizer, "encode", None)
    if callable(encode):
        if hasattr(tokenizer, "all_special_ids"):  # transformers: no [CLS] / <s> in the count
            return _LockedCounter(lambda text: encode(text, add_special_tokens=False))
        return _LockedCounter(encode)  # tiktoken and the like
    if callable(tokenizer):
        return _CallableCounter(tokenizer)
    raise InvalidInputTypeError(
        "tokenizer",
        "must be None, a Hugging Face tokenizer id, a tokenizer with encode(), or a callable "
        f"from text to a token count; got {type(tokenizer).__name__}",
    )


@dataclass(frozen=True)
class _CallableCounter:
    function: Callable[[str], Any]

    def __call__(self, text: str) -> int:
        value = self.function(text)
        count = value if isinstance(value, int) and not isinstance(value, bool) else None
        if count is None and isinstance(value, Sequence) and not isinstance(value, str):
            count = len(value)
        if count is None or count < 0:
            raise InvalidInputTypeError(
                "tokenizer",
                f"the callable must return a token count or a token list, got {value!r}",
            )
        return count


def edges_order(results: Sequence[RerankResult]) -> list[RerankResult]:
    """Best-first ``results`` reordered with the best two at the two ends and the weakest in the
    middle, exactly as LangChain's ``LongContextReorder``: 1, 2, 3, 4, 5 become 1, 3, 5, 4, 2
    (and 1, 2, 3, 4 become 2, 4, 3, 1)."""
    reordered: list[RerankResult] = []
    for i, result in enumerate(reversed(results)):
        if i % 2 == 1:
            reordered.append(result)
        else:
            reordered.insert(0, result)
    return reordered


@dataclass(frozen=True)
class ContextBudget:
    """The token budget and order of the passages handed to the LLM.

    Attributes:
        max_tokens: Most tokens of passage text (the pruned text where pruned) in all results
            together; ``None`` for no budget. The prompt around the passages is not counted.
        tokenizer: How tokens are counted: ``None`` (a fast approximate count,
            :func:`approximate_tokens`), a Hugging Face tokenizer id or folder, a tokenizer
            object, or a callable (see :func:`token_counter`).
        order: ``"score"`` (best first, the default) or ``"edges"`` (the best at the two ends).
        language: Sentence rules used to cut a passage at a sentence boundary.
    """

    max_tokens: int | None = None
    tokenizer: object = None
    order: ContextOrder = "score"
    language: str = "en"
    count: TokenCounter = dataclasses.field(
        default=approximate_tokens, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        check_int(self.max_tokens, "max_context_tokens", least=1, optional=True)
        if self.order not in CONTEXT_ORDERS:
            raise InvalidInputError("order", f"must be 'score' or 'edges', got {self.order!r}")
        if self.tokenizer is not None and self.max_tokens is None:
            raise InvalidInputError("tokenizer", "counts tokens for max_context_tokens; set it too")
        object.__setattr__(self, "count", token_counter(self.tokenizer))

    @property
    def is_default(self) -> bool:
        """No budget and best-first order: results pass through unchanged."""
        return self.max_tokens is None and self.order == "score"

    def apply(self, results: Sequence[RerankResult]) -> list[RerankResult]:
        """The best-first ``results`` that fit :attr:`max_tokens`, in :attr:`order`.

        Results are taken in score order while their text (``pruned_text`` where pruned, else
        ``document``) fits what is left. The first one that does not fit is cut to its leading
        whole sentences that do (its ``pruned_text`` and ``kept_spans`` say which), and filling
        stops there: no sentence is ever cut in half, and no weaker passage jumps ahead of a
        better one.
        """
        kept = list(results) if self.max_tokens is None else self._fill(results, self.max_tokens)
        return edges_order(kept) if self.order == "edges" else kept

    def _fill(self, results: Sequence[RerankResult], budget: int) -> list[RerankResult]:
        kept: list[RerankResult] = []
        left = budget
        for result in results:
            tokens = self.count(result.text)
            if tokens <= left:
                kept.append(result)
                left -= tokens
                continue
            cut = self._cut(result, left)
            if cut is not None:
                kept.append(cut)
            break
        return kept

    def _cut(self, result: RerankResult, budget: int) -> RerankResult | None:
        """``result`` cut to its leading whole sentences within ``budget`` tokens, or ``None``
        when not even its first sentence fits."""
        spans = result.kept_spans
        if spans is None:
            spans = tuple(split_sentences(result.document, self.language))
        taken = 0
        for n in range(1, len(spans) + 1):
            if self.count(join_sentences(result.document, spans[:n])) > budget:
                break
            taken = n
        if taken == 0:
            return None
        return dataclasses.replace(
            result,
            pruned_text=join_sentences(result.document, spans[:taken]),
            kept_spans=tuple(spans[:taken]),
        )
