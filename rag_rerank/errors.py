"""Typed errors raised by rag_rerank.

Every error derives from :class:`RerankError`, and also from the built-in exception a caller would
expect (``ValueError`` for bad values, ``TypeError`` for bad types), so ``except ValueError`` keeps
working.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

__all__ = [
    "BatchFileError",
    "CalibrationError",
    "DatasetError",
    "EngineStalledError",
    "EngineStoppedError",
    "InsufficientMemoryError",
    "InvalidInputError",
    "InvalidInputTypeError",
    "ModelLoadError",
    "NonFiniteScoreError",
    "OverloadedError",
    "RayUnreachableError",
    "RemoteRerankError",
    "RerankError",
    "ScoringError",
    "TrainingError",
    "UnknownModelError",
    "UnreadableFileError",
]

_SHOWN_NAME = 100  # characters of an unknown model's name repeated in UnknownModelError


class RerankError(Exception):
    """Base class of every error raised by rag_rerank."""


class InvalidInputError(RerankError, ValueError):
    """A value the caller passed is not acceptable. ``field`` names the argument."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class InvalidInputTypeError(RerankError, TypeError):
    """An argument has the wrong type. ``field`` names it (``documents[3]`` for one item)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class NonFiniteScoreError(RerankError, ValueError):
    """The model produced NaN or infinity for a pair; it is never returned or sorted."""

    def __init__(self, pair_index: int, query: str, document: str, value: float) -> None:
        super().__init__(
            f"the model returned a non-finite logit ({value}) for pair {pair_index} "
            f"(query {_preview(query)}, document {_preview(document)})"
        )
        self.pair_index = pair_index
        self.value = value


class ModelLoadError(RerankError, OSError):
    """The model or tokenizer could not be loaded, or is not a usable cross-encoder."""


class OverloadedError(RerankError, RuntimeError):
    """The engine's queue is full, or the wait for it too long; the work was refused without
    being queued. ``retry_after``: seconds after which a retry may pass (``None``: unknown)."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class EngineStoppedError(RerankError, RuntimeError):
    """The engine was closed, or its worker died; ``__cause__`` holds the worker's error."""


class EngineStalledError(EngineStoppedError):
    """A forward pass has run past the engine's ``stall_timeout``: the model may be hung. Its
    callers and the queued ones fail with this; new work is refused until the pass returns."""


class ScoringError(RerankError, RuntimeError):
    """The model failed on a batch that held this request's pairs (the engine still runs);
    ``__cause__`` holds the model's error."""


class CalibrationError(RerankError, ValueError):
    """A calibration file or its labels cannot be used: unreadable, malformed, fitted for
    another model, or labels a calibration cannot be fitted on.

    Attributes:
        path: The file at fault, or ``None`` when the fault is not in one file.
        line: 1-based line number in ``path``, or ``None`` when the whole file is at fault.
    """

    def __init__(self, message: str, path: object = None, line: int | None = None) -> None:
        where = (
            "" if path is None else f"{path}, line {line}: " if line is not None else f"{path}: "
        )
        super().__init__(where + message)
        self.path = path
        self.line = line


class TrainingError(RerankError, ValueError):
    """Training cannot start or go on: a corpus, labels file, base or teacher that cannot be used.

    Attributes:
        path: The file at fault, or ``None``.
        line: 1-based line number in ``path``, or ``None``.
        option: The option at fault (``base``, ``teacher``, ``batch_size``...), or ``None``.
    """

    def __init__(
        self,
        message: str,
        path: object = None,
        line: int | None = None,
        *,
        option: str | None = None,
    ) -> None:
        where = f"{option}: " if option else ""
        if path is not None:
            where += f"{path}, line {line}: " if line is not None else f"{path}: "
        super().__init__(where + message)
        self.path = path
        self.line = line
        self.option = option


class UnreadableFileError(RerankError, OSError):
    """A file that cannot be read as text: ``str(error)`` says why (binary, encoding, I/O)."""


class DatasetError(RerankError, ValueError):
    """A dataset file is missing or malformed.

    Attributes:
        path: The file (or folder) at fault.
        line: 1-based line number in ``path``, or ``None`` when the whole file is at fault.
    """

    def __init__(self, path: Path, message: str, line: int | None = None) -> None:
        where = f"{path}, line {line}" if line is not None else str(path)
        super().__init__(f"{where}: {message}")
        self.path = path
        self.line = line


class RemoteRerankError(RerankError, RuntimeError):
    """The server answered with an error the client cannot map to a core error (401, 500, ...).

    Attributes:
        status_code: The HTTP status, or ``None`` when the server could not be reached.
        error_type: The server's ``error_type`` (or TEI's), when it sent one.
    """

    def __init__(self, message: str, status_code: int | None, error_type: str | None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.error_type = error_type


class InsufficientMemoryError(ModelLoadError):
    """The models to serve need more memory than the device has free (or the limit allows)."""


class UnknownModelError(InvalidInputError):
    """A request named a model the server does not serve (``served`` lists those it does)."""

    def __init__(self, name: str, served: Sequence[str]) -> None:
        # The name comes from the request: echo a bounded prefix of it, never all of it.
        shown = name if len(name) <= _SHOWN_NAME else name[:_SHOWN_NAME] + "..."
        super().__init__("model", f"no model named {shown!r}; served: {', '.join(served)}")
        self.name = name
        self.served = tuple(served)


class RayUnreachableError(RerankError, ConnectionError):
    """Nothing answers at the Ray cluster address; ``address`` is the one given."""

    def __init__(self, address: str, reason: str) -> None:
        super().__init__(f"ray address {address}: {reason}")
        self.address = address


class BatchFileError(RerankError, ValueError):
    """A batch input or output file cannot be used: ``path`` is the file, ``row`` the 1-based
    row (the line of a JSONL file) or ``None`` when the whole file is at fault."""

    def __init__(self, path: object, message: str, row: int | None = None) -> None:
        where = f"{path}, row {row}: " if row is not None else f"{path}: "
        super().__init__(where + message)
        self.path = path
        self.row = row


def _preview(text: str, limit: int = 40) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")
