"""The reranking contract, free of torch: results, the reranker protocol, options and input checks.

Everything that talks to a reranker (the local :class:`~rag_rerank.Reranker`, the HTTP
:class:`~rag_rerank.RemoteReranker`, the RAG pipeline, the server, the LangChain and LlamaIndex
packages) uses these definitions, each written once here. Importing this module loads numpy and
the standard library only.
"""

from __future__ import annotations

import abc
import dataclasses
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

from .errors import InvalidInputError, InvalidInputTypeError

__all__ = [
    "DEFAULT_MODEL",
    "LONG_DOCUMENTS",
    "BaseReranker",
    "Health",
    "LongDocuments",
    "RerankResult",
    "RerankerLike",
    "RerankerOptions",
    "RerankerStats",
    "check_documents",
    "check_pairs",
    "check_positive_int",
    "check_query",
    "check_reranker",
    "check_selection",
    "check_selection_field",
    "options_from",
    "select",
    "sigmoid",
    "split_options",
]

DEFAULT_MODEL = "BAAI/bge-reranker-v2-m3"
"""The cross-encoder loaded when none is named."""

LongDocuments = Literal["windows", "truncate"]
LONG_DOCUMENTS: tuple[LongDocuments, ...] = ("windows", "truncate")
"""What happens to a document longer than the window: ``"windows"`` scores it as its best
overlapping token window; ``"truncate"`` scores its first window only."""


# -- results ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RerankResult:
    """One reranked document.

    Attributes:
        index: Position of the document in the caller's input list.
        score: Relevance in [0, 1]: sigmoid of ``raw_score``, computed in fp32.
        raw_score: The model's relevance logit in fp32 (for two-label models the log-odds of the
            positive class, ``logit[1] - logit[0]``), so ``score == sigmoid(raw_score)``.
        document: The document text, exactly as the caller passed it.
    """

    index: int
    score: float
    raw_score: float
    document: str

    def to_dict(self) -> dict[str, Any]:
        """``{"index", "score", "raw_score", "document"}``: plain JSON-ready values."""
        return dataclasses.asdict(self)


# -- the protocol -------------------------------------------------------------------------------


@runtime_checkable
class RerankerLike(Protocol):
    """What every reranker offers: :class:`~rag_rerank.Reranker` (in process) and
    :class:`~rag_rerank.RemoteReranker` (over HTTP) both satisfy it, and so may a user's own.

    ``rerank`` returns results best first, each with the document's input ``index``, its
    ``score`` in [0, 1] and its ``raw_score`` logit, after ``threshold`` (on ``score``) and then
    ``top_n`` are applied; ties keep input order. ``score`` returns [0, 1] scores in input order.
    The async twins await the work without blocking the event loop.
    """

    def score(self, query: str, documents: Sequence[str]) -> list[float]:
        """Relevance of each document to ``query`` in [0, 1], in input order."""
        ...

    def rerank(
        self,
        query: str,
        documents: Sequence[str],
        top_n: int | None = None,
        threshold: float | None = None,
    ) -> list[RerankResult]:
        """Documents best first, at most ``top_n``, none scoring below ``threshold``."""
        ...

    async def ascore(self, query: str, documents: Sequence[str]) -> list[float]:
        """Async :meth:`score`."""
        ...

    async def arerank(
        self,
        query: str,
        documents: Sequence[str],
        top_n: int | None = None,
        threshold: float | None = None,
    ) -> list[RerankResult]:
        """Async :meth:`rerank`."""
        ...


class BaseReranker(abc.ABC):
    """:class:`RerankerLike` implemented once, on top of one primitive: fp32 relevance logits.

    A reranker subclasses this and writes :meth:`_logits` and :meth:`_alogits`; ``score``,
    ``rerank`` and their async twins (input checks, the [0, 1] scores, threshold, top-n, order)
    come from here, so every reranker behaves the same.
    """

    @abc.abstractmethod
    def _logits(self, query: str, documents: list[str]) -> np.ndarray:
        """fp32 relevance logits of ``documents`` (checked, non-empty) for ``query``, in order."""

    @abc.abstractmethod
    async def _alogits(self, query: str, documents: list[str]) -> np.ndarray:
        """Async :meth:`_logits`; must not block the event loop."""

    def score(self, query: str, documents: Sequence[str]) -> list[float]:
        """Relevance of each document to ``query`` in [0, 1], in input order.

        Raises:
            InvalidInputError: An empty or non-string query.
            InvalidInputTypeError: ``documents`` is not a list of strings (the bad item named).
        """
        docs = _checked(query, documents)
        return sigmoid(self._logits(query, docs)) if docs else []

    def rerank(
        self,
        query: str,
        documents: Sequence[str],
        top_n: int | None = None,
        threshold: float | None = None,
    ) -> list[RerankResult]:
        """Documents best first, each with its input ``index``, ``score`` and ``raw_score``.

        Args:
            query: The question.
            documents: Candidate passages.
            top_n: Keep at most this many results (after the threshold). ``None`` keeps all.
            threshold: Drop results whose ``score`` (in [0, 1]) is below this.

        Ties keep input order. An empty ``documents`` list returns ``[]``.

        Raises:
            InvalidInputError: An empty query, a bad ``top_n`` or ``threshold``.
            InvalidInputTypeError: ``documents`` is not a list of strings (the bad item named).
        """
        check_selection(top_n, threshold)
        docs = _checked(query, documents)
        return select(self._logits(query, docs), docs, top_n, threshold) if docs else []

    async def ascore(self, query: str, documents: Sequence[str]) -> list[float]:
        """Async :meth:`score`: awaits the work without blocking the event loop."""
        docs = _checked(query, documents)
        return sigmoid(await self._alogits(query, docs)) if docs else []

    async def arerank(
        self,
        query: str,
        documents: Sequence[str],
        top_n: int | None = None,
        threshold: float | None = None,
    ) -> list[RerankResult]:
        """Async :meth:`rerank`: awaits the work without blocking the event loop."""
        check_selection(top_n, threshold)
        docs = _checked(query, documents)
        return select(await self._alogits(query, docs), docs, top_n, threshold) if docs else []


def _checked(query: object, documents: object) -> list[str]:
    check_query(query)
    return check_documents(documents)


# -- options ------------------------------------------------------------------------------------


def _option(default: Any, help: str, *, view: bool = False) -> Any:
    # ``help`` documents the option once, for docstrings and the CLI's flags; ``view`` marks the
    # options a view of a loaded model may change (Reranker.with_options).
    return field(default=default, metadata={"help": help, "view": view})


@dataclass(frozen=True, kw_only=True)
class RerankerOptions:
    """Every option of a reranker, declared once.

    The load options choose and load the model; instances with equal load options share one
    loaded model (:meth:`Reranker.shared <rag_rerank.Reranker.shared>`). The view options
    (``max_length``, ``long_documents``, ``show_progress``) may differ between views of one model
    (:meth:`Reranker.with_options <rag_rerank.Reranker.with_options>`).

    Values are checked on construction; a bad one raises :class:`~rag_rerank.InvalidInputError`
    naming the field. ``torch.device`` and ``torch.dtype`` values are accepted and stored as
    their names.

    Example:
        >>> RerankerOptions(model="./bge-reranker-v2-m3", device="cpu", max_length=256)
        RerankerOptions(model='./bge-reranker-v2-m3', revision=None, device='cpu', ...)
    """

    model: str = _option(DEFAULT_MODEL, "Hugging Face hub id or local folder of the cross-encoder.")
    revision: str | None = _option(None, "Hub revision (branch, tag or commit) of the model.")
    device: str | None = _option(
        None, "Device: cuda, cuda:1, mps or cpu; default picks cuda > mps > cpu."
    )
    dtype: str | None = _option(
        None, "Precision: bf16, fp16 or fp32; default picks bf16/fp16 on GPUs, fp32 on CPU."
    )
    trust_remote_code: bool = _option(
        False, "Allow the model's own Python code from the hub (off unless asked for)."
    )
    quantize: Literal["int8"] | None = _option(
        None, "int8: dynamic int8 Linear layers on the CPU (faster, scores move slightly)."
    )
    batch_tokens: int | None = _option(
        None, "Tokens per forward pass; default per device (65536 on CUDA, 2048 on CPU)."
    )
    max_queue_pairs: int | None = _option(
        None, "Refuse work (OverloadedError) while this many pairs wait; default unbounded."
    )
    max_length: int = _option(
        512, "Tokens per (query, document) window, capped by the model.", view=True
    )
    long_documents: LongDocuments = _option(  # noqa: RUF009 (a dataclasses.field)
        "windows",
        "Documents over the window: 'windows' scores the best overlapping window, "
        "'truncate' the first window only.",
        view=True,
    )
    show_progress: bool | None = _option(
        None, "Progress bar: on, off, or (default) only for large jobs.", view=True
    )

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: normalise in place once, at construction
        set_(self, "model", _model_reference(self.model))
        for name in ("revision", "device", "dtype"):
            value = getattr(self, name)
            if value is None:
                continue
            if type(value).__name__ in ("device", "dtype") and not isinstance(value, str):
                value = str(value).removeprefix("torch.")  # torch objects, by name
                set_(self, name, value)
            if not isinstance(value, str) or not value.strip():
                raise InvalidInputError(name, f"must be a non-empty string or None, got {value!r}")
        if self.dtype is not None and self.dtype.lower() not in _DTYPE_NAMES:
            raise InvalidInputError(
                "dtype", f"expected one of bf16, fp16, fp32, got {self.dtype!r}"
            )
        for name in ("trust_remote_code",):
            if not isinstance(getattr(self, name), bool):
                raise InvalidInputError(name, f"must be True or False, got {getattr(self, name)!r}")
        if self.show_progress is not None and not isinstance(self.show_progress, bool):
            raise InvalidInputError(
                "show_progress", f"must be True, False or None, got {self.show_progress!r}"
            )
        if self.quantize is not None and self.quantize != "int8":
            raise InvalidInputError("quantize", f"must be None or 'int8', got {self.quantize!r}")
        check_positive_int(self.batch_tokens, "batch_tokens", optional=True)
        check_positive_int(self.max_queue_pairs, "max_queue_pairs", optional=True)
        check_positive_int(self.max_length, "max_length")
        if self.max_length < 16:
            raise InvalidInputError(
                "max_length", f"must be at least 16 tokens, got {self.max_length}"
            )
        if self.long_documents not in LONG_DOCUMENTS:
            raise InvalidInputError(
                "long_documents",
                f"must be 'windows' or 'truncate', got {self.long_documents!r}",
            )

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """Every option's name, in declaration order."""
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def view_names(cls) -> tuple[str, ...]:
        """The options a view of a loaded model may change."""
        return tuple(f.name for f in dataclasses.fields(cls) if f.metadata["view"])

    @classmethod
    def help(cls, name: str) -> str:
        """The one-line description of option ``name``."""
        return str(_FIELDS[name].metadata["help"])

    @classmethod
    def from_kwargs(cls, base: RerankerOptions | None = None, **options: Any) -> RerankerOptions:
        """``base`` (default: all defaults) with ``options`` changed; unknown names are refused.

        Raises:
            InvalidInputTypeError: A name that is not an option (``field`` is that name).
            InvalidInputError: A value that is not acceptable.
        """
        unknown = sorted(set(options) - set(_FIELDS))
        if unknown:
            raise InvalidInputTypeError(
                unknown[0],
                f"is not a reranker option; the options are: {', '.join(cls.names())}",
            )
        return dataclasses.replace(base or cls(), **options)

    def replace(self, **changes: Any) -> RerankerOptions:
        """A copy with ``changes`` applied (checked like the constructor's arguments)."""
        return RerankerOptions.from_kwargs(self, **changes)

    def load_key(self) -> tuple[Any, ...]:
        """The load options as a tuple: equal keys can share one loaded model."""
        return tuple(
            getattr(self, f.name) for f in dataclasses.fields(self) if not f.metadata["view"]
        )

    def to_dict(self) -> dict[str, Any]:
        """Every option by name."""
        return dataclasses.asdict(self)


_FIELDS = {f.name: f for f in dataclasses.fields(RerankerOptions)}
_DTYPE_NAMES = frozenset({"float32", "fp32", "float16", "fp16", "half", "bfloat16", "bf16"})


def _model_reference(model: object) -> str:
    if isinstance(model, os.PathLike):
        model = os.fspath(model)
    if not isinstance(model, str) or not model.strip():
        raise InvalidInputError("model", f"must be a hub id or folder path, got {model!r}")
    return model


# -- health and statistics ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Health:
    """A reranker's state at one moment.

    Attributes:
        alive: The worker that runs the model is running.
        last_forward_ok: Whether the last forward pass succeeded; ``None`` before the first.
    """

    alive: bool
    last_forward_ok: bool | None

    @property
    def ready(self) -> bool:
        """Alive, and the last forward pass (if any) succeeded."""
        return self.alive and self.last_forward_ok is not False

    @property
    def reason(self) -> str | None:
        """Why it is not ready, in words; ``None`` when it is."""
        if not self.alive:
            return "the reranker worker is not running"
        if self.last_forward_ok is False:
            return "the last forward pass failed"
        return None


@dataclass(frozen=True, slots=True)
class RerankerStats:
    """Counters since a reranker's model was loaded, and its current limits (a snapshot).

    Attributes:
        batches: Forward passes run.
        pairs: (query, document) pairs scored.
        windows: Token windows (rows) in all batches; more than ``pairs`` with long documents.
        real_tokens: Tokens of real text in all batches.
        padded_tokens: Tokens computed, padding included.
        oom_splits: Batches split after an out-of-memory error.
        queued_pairs: Pairs submitted and not yet started.
        max_queue_pairs: The queue's limit; ``None`` when unbounded.
        batch_tokens: The current token budget per forward pass (lowered after out of memory).
    """

    batches: int
    pairs: int
    windows: int
    real_tokens: int
    padded_tokens: int
    oom_splits: int
    queued_pairs: int
    max_queue_pairs: int | None
    batch_tokens: int


# -- input checks -------------------------------------------------------------------------------


def check_positive_int(value: object, field: str, *, optional: bool = False) -> None:
    """Raise :class:`InvalidInputError` naming ``field`` unless ``value`` is an int >= 1 (or
    ``None`` with ``optional``). ``True`` and ``1.0`` are refused."""
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInputError(field, f"must be a positive integer, got {value!r}")


def check_query(query: object, field: str = "query") -> str:
    """A non-empty query string, or :class:`InvalidInputError` naming ``field``."""
    if not isinstance(query, str):
        raise InvalidInputError(field, f"must be a string, got {type(query).__name__}")
    if not query.strip():
        raise InvalidInputError(field, "must not be empty")
    return query


def check_documents(documents: object, field: str = "documents") -> list[str]:
    """The documents as a new list of strings, or :class:`InvalidInputTypeError` naming the
    field (``documents[3]`` for one bad item)."""
    if isinstance(documents, (str, bytes)) or not isinstance(documents, Sequence):
        raise InvalidInputTypeError(
            field, f"must be a list of strings, got {type(documents).__name__}"
        )
    for i, document in enumerate(documents):
        if not isinstance(document, str):
            raise InvalidInputTypeError(
                f"{field}[{i}]", f"must be a string, got {type(document).__name__}"
            )
    return list(documents)


def check_pairs(pairs: object) -> tuple[list[str], list[str]]:
    """``(queries, documents)`` from a list of ``(query, document)`` pairs, each checked."""
    if isinstance(pairs, (str, bytes)) or not isinstance(pairs, Sequence):
        raise InvalidInputTypeError("pairs", "must be a list of (query, document) tuples")
    queries: list[str] = []
    documents: list[str] = []
    for i, pair in enumerate(pairs):
        if isinstance(pair, (str, bytes)) or not isinstance(pair, Sequence) or len(pair) != 2:
            raise InvalidInputTypeError(f"pairs[{i}]", "must be a (query, document) tuple")
        query, document = pair
        queries.append(check_query(query, f"pairs[{i}][0]"))
        if not isinstance(document, str):
            raise InvalidInputTypeError(
                f"pairs[{i}][1]", f"must be a string, got {type(document).__name__}"
            )
        documents.append(document)
    return queries, documents


def check_selection(
    top_n: object,
    threshold: object,
    *,
    top_n_field: str = "top_n",
    threshold_field: str = "threshold",
) -> None:
    """Raise :class:`InvalidInputError` unless ``top_n`` is ``None`` or an int >= 1 and
    ``threshold`` is ``None`` or a number in [0, 1]."""
    if top_n is not None and (isinstance(top_n, bool) or not isinstance(top_n, int) or top_n < 1):
        raise InvalidInputError(top_n_field, f"must be an integer >= 1 or None, got {top_n!r}")
    if threshold is not None:
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
            raise InvalidInputError(
                threshold_field, f"must be a number in [0, 1], got {threshold!r}"
            )
        if math.isnan(threshold) or not 0.0 <= threshold <= 1.0:
            raise InvalidInputError(threshold_field, f"must be in [0, 1], got {threshold!r}")


# -- scores and selection -----------------------------------------------------------------------


def sigmoid(logits: Sequence[float] | np.ndarray) -> list[float]:
    """[0, 1] scores of relevance logits, rounded to fp32 (never computed in half precision,
    which saturates and creates false ties)."""
    x = np.asarray(logits, dtype=np.float64)
    with np.errstate(over="ignore"):
        scores = 1.0 / (1.0 + np.exp(-x))
    return scores.astype(np.float32).tolist()


def select(
    logits: Sequence[float] | np.ndarray,
    documents: Sequence[str],
    top_n: int | None = None,
    threshold: float | None = None,
) -> list[RerankResult]:
    """Rank ``documents`` by their ``logits``: best first, ``threshold`` on the [0, 1] score,
    then at most ``top_n``. Ties keep input order. Arguments are assumed checked."""
    raw = np.asarray(logits, dtype=np.float32)
    scores = sigmoid(raw)
    # Sort on the logit: it orders exactly like the score but does not saturate. Stable: ties
    # keep input order.
    results = []
    for i in np.argsort(-raw, kind="stable").tolist():
        if threshold is not None and scores[i] < threshold:
            continue
        results.append(RerankResult(i, scores[i], float(raw[i]), documents[i]))
        if top_n is not None and len(results) == top_n:
            break
    return results


def options_from(mapping: Mapping[str, Any]) -> dict[str, Any]:
    """The entries of ``mapping`` that name reranker options (for adapters that forward them)."""
    return {name: value for name, value in mapping.items() if name in _FIELDS}


def split_options(
    arguments: Mapping[str, Any],
) -> tuple[dict[str, Any], RerankerOptions, list[str]]:
    """For components that take reranker options beside their own arguments (the LangChain and
    LlamaIndex adapters): ``(own arguments, options, names given)``.

    The options are ``arguments["options"]`` (a :class:`RerankerOptions`, a mapping of option
    names, or ``None`` for the defaults) with every option keyword in ``arguments`` applied over
    it, checked by :class:`RerankerOptions`. The names given list those option keywords, plus
    ``"options"`` when it was given, so a component can refuse them next to a loaded reranker.

    Raises:
        InvalidInputTypeError: ``options`` of another type, or an unknown name inside it.
        InvalidInputError: A bad option value (``field`` names it).
    """
    keywords = options_from(arguments)
    own = {k: v for k, v in arguments.items() if k not in keywords and k != "options"}
    base = arguments.get("options")
    given = sorted(keywords) + (["options"] if base is not None else [])
    if isinstance(base, Mapping):
        base = RerankerOptions.from_kwargs(**base)
    elif base is not None and not isinstance(base, RerankerOptions):
        raise InvalidInputTypeError(
            "options", f"must be a RerankerOptions or a mapping, got {type(base).__name__}"
        )
    return own, RerankerOptions.from_kwargs(base, **keywords), given


def check_selection_field(field: str, value: object) -> None:
    """:func:`check_selection` for one field: ``top_n``, or a threshold called ``field``."""
    if field == "top_n":
        check_selection(value, None)
    else:
        check_selection(None, value, threshold_field=field)


def check_reranker(value: object, field: str = "reranker") -> None:
    """Raise :class:`InvalidInputError` naming ``field`` unless ``value`` has callable ``rerank``
    and ``arerank`` methods (what the adapters call; a minimal stand-in will do)."""
    missing = [name for name in ("rerank", "arerank") if not callable(getattr(value, name, None))]
    if missing:
        raise InvalidInputError(
            field,
            "must be a rag_rerank.Reranker, a RemoteReranker or an object with their rerank() and "
            f"arerank() methods; {type(value).__name__} has no "
            f"{' or '.join(m + '()' for m in missing)}",
        )
