"""Input checks: each raises a typed error naming the bad field (``documents[3]``, ``top_n``)."""

from __future__ import annotations

import math
import re
from collections import deque
from collections.abc import Callable, Sequence

from ..errors import InvalidInputError, InvalidInputTypeError

__all__ = [
    "FieldError",
    "check_documents",
    "check_int",
    "check_pairs",
    "check_positive_int",
    "check_positive_number",
    "check_query",
    "check_reranker",
    "check_selection",
    "check_selection_field",
    "find_lone_surrogate",
]


_SURROGATE = re.compile("[\ud800-\udfff]")


def _check_encodable(text: str, field: str) -> None:
    # A lone surrogate cannot be encoded as UTF-8, so the tokenizer would fail with an untyped
    # TypeError. ASCII (most text) is known good without a scan.
    if not text.isascii() and _SURROGATE.search(text) is not None:
        raise InvalidInputError(field, "contains a lone surrogate (not valid Unicode text)")


def find_lone_surrogate(value: object, field: str) -> str | None:
    """Where the first lone surrogate in ``value`` is: a string, or the strings and keys of nested
    dicts and lists (walked without recursion, so any depth is safe), as a path such as
    ``field.meta[2]``; ``None`` when every string is valid Unicode.

    A JSON file may hold ``"\\ud800"``: ``json.loads`` accepts it, UTF-8 cannot encode it.
    """
    pending: deque[tuple[str, object]] = deque([(field, value)])
    while pending:
        where, item = pending.popleft()
        if isinstance(item, str):
            if not item.isascii() and _SURROGATE.search(item) is not None:
                return where
        elif isinstance(item, dict):
            for key, inner in item.items():
                if isinstance(key, str) and not key.isascii() and _SURROGATE.search(key):
                    return f"{where} (a key)" if where else "a key"
                pending.append((f"{where}.{key}" if where else str(key), inner))
        elif isinstance(item, (list, tuple)):
            pending.extend((f"{where}[{i}]", inner) for i, inner in enumerate(item))
    return None


FieldError = Callable[[str, str], Exception]
"""Makes the error for a bad field from its name and a message (``InvalidInputError`` by
default; ``TrainingOptions`` makes a ``TrainingError``)."""


def check_int(
    value: object,
    field: str,
    *,
    least: int | None = None,
    optional: bool = False,
    error: FieldError = InvalidInputError,
) -> None:
    """Raise ``error(field, message)`` unless ``value`` is an int of at least ``least`` (any int
    when ``None``), or ``None`` with ``optional``. ``True`` and ``1.0`` are refused."""
    if value is None and optional:
        return
    too_small = least is not None and isinstance(value, int) and value < least
    if isinstance(value, bool) or not isinstance(value, int) or too_small:
        kind = "an integer" if least is None else f"an integer of at least {least}"
        raise error(field, f"must be {kind}, got {value!r}")


def check_positive_int(value: object, field: str, *, optional: bool = False) -> None:
    """Raise :class:`InvalidInputError` naming ``field`` unless ``value`` is an int >= 1 (or
    ``None`` with ``optional``). ``True`` and ``1.0`` are refused."""
    check_int(value, field, least=1, optional=optional)


def check_positive_number(
    value: object, field: str, *, optional: bool = False, error: FieldError = InvalidInputError
) -> None:
    """Raise ``error(field, message)`` (:class:`InvalidInputError` by default) unless ``value``
    is an int or float > 0 (or ``None`` with ``optional``). ``True`` and NaN are refused."""
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise error(field, f"must be a positive number, got {value!r}")


def check_query(query: object, field: str = "query") -> str:
    """A non-empty query string, or :class:`InvalidInputError` naming ``field``."""
    if not isinstance(query, str):
        raise InvalidInputError(field, f"must be a string, got {type(query).__name__}")
    if not query.strip():
        raise InvalidInputError(field, "must not be empty")
    _check_encodable(query, field)
    return query


def check_documents(documents: object, field: str = "documents") -> list[str]:
    """The documents as a new list of strings, or :class:`InvalidInputTypeError` naming the
    field (``documents[3]`` for one bad item); :class:`InvalidInputError` for a text that is not
    valid Unicode (a lone surrogate)."""
    if isinstance(documents, (str, bytes)) or not isinstance(documents, Sequence):
        raise InvalidInputTypeError(
            field, f"must be a list of strings, got {type(documents).__name__}"
        )
    for i, document in enumerate(documents):
        if not isinstance(document, str):
            raise InvalidInputTypeError(
                f"{field}[{i}]", f"must be a string, got {type(document).__name__}"
            )
        _check_encodable(document, f"{field}[{i}]")
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
        _check_encodable(document, f"pairs[{i}][1]")
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
    ``threshold`` is ``None``, a number in [0, 1] or ``"calibrated"`` (the recommended threshold
    of the reranker's calibration)."""
    if top_n is not None and (isinstance(top_n, bool) or not isinstance(top_n, int) or top_n < 1):
        raise InvalidInputError(top_n_field, f"must be an integer >= 1 or None, got {top_n!r}")
    if threshold is not None and threshold != "calibrated":
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
            raise InvalidInputError(
                threshold_field, f"must be a number in [0, 1] or 'calibrated', got {threshold!r}"
            )
        if math.isnan(threshold) or not 0.0 <= threshold <= 1.0:
            raise InvalidInputError(threshold_field, f"must be in [0, 1], got {threshold!r}")


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
