"""Every reranker option, declared once (:class:`RerankerOptions`), and the helpers components use
to accept them as keywords."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from ..errors import InvalidInputError, InvalidInputTypeError
from .checks import check_positive_int
from .settings import Settings, setting

__all__ = [
    "CLEAN_MODES",
    "DEFAULT_MODEL",
    "LONG_DOCUMENTS",
    "PROMPT_FORMATS",
    "CleanMode",
    "LongDocuments",
    "PromptFormatName",
    "RerankerOptions",
    "options_from",
    "split_options",
]

DEFAULT_MODEL = "BAAI/bge-reranker-v2-m3"
"""The cross-encoder loaded when none is named."""

LongDocuments = Literal["windows", "truncate"]
LONG_DOCUMENTS: tuple[LongDocuments, ...] = ("windows", "truncate")
"""What happens to a document longer than the window: ``"windows"`` scores it as its best
overlapping token window; ``"truncate"`` scores its first window only."""

CleanMode = Literal["html"]
CLEAN_MODES: tuple[CleanMode, ...] = ("html",)
"""How documents are cleaned before scoring: ``"html"`` drops tags, scripts, styles and comments
and keeps the text (the caller still gets its original document back)."""

PromptFormatName = Literal["qwen3", "bge-gemma"]
PROMPT_FORMATS: tuple[PromptFormatName, ...] = ("qwen3", "bge-gemma")
"""LLM reranker templates: ``"qwen3"`` (Qwen3-Reranker) and ``"bge-gemma"``
(bge-reranker-v2-gemma)."""

_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def _option(default: Any, help: str, *, view: bool = False) -> Any:
    # ``view`` marks the options a view of a loaded model may change (Reranker.with_options).
    return setting(default, help, view=view)


@dataclass(frozen=True, kw_only=True)
class RerankerOptions(Settings):
    """Every option of a reranker, declared once.

    The load options choose and load the model; instances with equal load options share one
    loaded model (:meth:`Reranker.shared <rag_rerank.Reranker.shared>`). The view options
    (``max_length``, ``long_documents``, ``show_progress``, ``calibration``, ``cache``,
    ``cache_size``, ``cache_ttl``, ``clean``) may differ between views of one model
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
        None,
        "Precision: auto (the default), bf16, fp16 or fp32. Auto picks bf16/fp16 on GPUs, and on "
        "a CPU bf16 where it multiplies bf16 natively (AMX, AVX-512 BF16), else fp32; scores "
        "stay fp32.",
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
        None,
        "Refuse work (OverloadedError) while this many pairs wait, a long document counting "
        "once per ~2,000 characters (its windows); default unbounded.",
    )
    max_length: int | None = _option(
        None,
        "Tokens per (query, document) window, capped by the model; default 512 for "
        "cross-encoders, the model card's for LLM rerankers (Qwen3-Reranker 8192, "
        "bge-reranker-v2-gemma 1024).",
        view=True,
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
    calibration: str | None = _option(
        None,
        "Calibration file from 'rag-rerank calibrate': score becomes the calibrated probability "
        "(raw_score stays the logit) and threshold='calibrated' its recommended cutoff.",
        view=True,
    )
    cache: int | str | None = _option(
        "memory",
        "Score cache: 'memory' (in-process LRU of cache_size entries), a number (an in-process "
        "LRU of that many entries), a redis://host:port/db URL (shared across processes), or "
        "None (off).",
        view=True,
    )
    cache_size: int = _option(
        100_000, "Entries (scored pairs) the in-process score cache keeps.", view=True
    )
    cache_ttl: int | None = _option(
        86_400, "Seconds a score lives in the Redis cache; None keeps it until evicted.", view=True
    )
    clean: CleanMode | None = _option(  # noqa: RUF009 (a dataclasses.field)
        None,
        "Clean documents before scoring: 'html' drops tags, scripts, styles and comments "
        "(results still carry the original documents).",
        view=True,
    )
    prompt_format: PromptFormatName | None = _option(  # noqa: RUF009 (a dataclasses.field)
        None,
        "LLM reranker template: 'qwen3' (Qwen3-Reranker) or 'bge-gemma' "
        "(bge-reranker-v2-gemma); default recognised from the model id or its config.",
    )
    instruction: str | None = _option(
        None,
        "Task instruction of an LLM reranker's prompt; default the model card's (Qwen3: web "
        "search; bge-gemma: its Yes/No prompt).",
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
        if self.dtype is not None and self.dtype.strip().lower() == "auto":
            set_(self, "dtype", None)  # one spelling of "pick for this machine"
        if self.dtype is not None and self.dtype.lower() not in DTYPE_NAMES:
            raise InvalidInputError(
                "dtype", f"expected one of auto, bf16, fp16, fp32, got {self.dtype!r}"
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
        check_positive_int(self.max_length, "max_length", optional=True)
        if self.max_length is not None and self.max_length < 16:
            raise InvalidInputError(
                "max_length", f"must be at least 16 tokens, got {self.max_length}"
            )
        if self.long_documents not in LONG_DOCUMENTS:
            raise InvalidInputError(
                "long_documents",
                f"must be 'windows' or 'truncate', got {self.long_documents!r}",
            )
        if isinstance(self.calibration, os.PathLike):
            set_(self, "calibration", os.fspath(self.calibration))
        if self.calibration is not None and (
            not isinstance(self.calibration, str) or not self.calibration.strip()
        ):
            raise InvalidInputError(
                "calibration", f"must be a calibration file path or None, got {self.calibration!r}"
            )
        self._check_cache()
        if self.prompt_format is not None and self.prompt_format not in PROMPT_FORMATS:
            raise InvalidInputError(
                "prompt_format",
                f"must be None or one of {', '.join(PROMPT_FORMATS)}, got {self.prompt_format!r}",
            )
        if self.instruction is not None and (
            not isinstance(self.instruction, str) or not self.instruction.strip()
        ):
            raise InvalidInputError(
                "instruction", f"must be a non-empty string or None, got {self.instruction!r}"
            )

    def _check_cache(self) -> None:
        # A size given as ``cache`` is stored as cache="memory" with that cache_size: one
        # spelling per meaning, so equal caches compare equal.
        cache = self.cache
        if isinstance(cache, int) and not isinstance(cache, bool):
            if cache < 1:
                raise InvalidInputError(
                    "cache", f"a size must be at least 1 entry (None turns it off), got {cache}"
                )
            object.__setattr__(self, "cache", "memory")
            object.__setattr__(self, "cache_size", cache)
        elif cache is not None and not (
            isinstance(cache, str) and (cache == "memory" or cache.startswith(_REDIS_SCHEMES))
        ):
            raise InvalidInputError(
                "cache",
                "must be None (off), 'memory', a size in entries or a redis://host:port/db URL, "
                f"got {cache!r}",
            )
        check_positive_int(self.cache_size, "cache_size")
        check_positive_int(self.cache_ttl, "cache_ttl", optional=True)
        if self.clean is not None and self.clean not in CLEAN_MODES:
            raise InvalidInputError(
                "clean", f"must be None or one of {', '.join(CLEAN_MODES)}, got {self.clean!r}"
            )

    kind: ClassVar[str] = "reranker option"

    @classmethod
    def view_names(cls) -> tuple[str, ...]:
        """The options a view of a loaded model may change."""
        return tuple(f.name for f in dataclasses.fields(cls) if f.metadata["view"])

    def load_key(self) -> tuple[Any, ...]:
        """The load options as a tuple: equal keys can share one loaded model."""
        return tuple(
            getattr(self, f.name) for f in dataclasses.fields(self) if not f.metadata["view"]
        )


_FIELDS = {f.name: f for f in dataclasses.fields(RerankerOptions)}
DTYPE_NAMES = {
    "float32": "float32",
    "fp32": "float32",
    "float16": "float16",
    "fp16": "float16",
    "half": "float16",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
}
"""Accepted ``dtype`` spellings (lower case) and the torch dtype each names."""


def _model_reference(model: object) -> str:
    if isinstance(model, os.PathLike):
        model = os.fspath(model)
    if not isinstance(model, str) or not model.strip():
        raise InvalidInputError("model", f"must be a hub id or folder path, got {model!r}")
    return os.path.expanduser(model)  # "~/models/bge": a hub id never starts with "~"


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
