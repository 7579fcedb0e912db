"""Every training setting, declared once (:class:`TrainingOptions`): its default, its check and
its help text, from which ``rag-rerank train``'s flags are generated. Torch-free, so the command
line builds its parser without loading the trainer."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from ..errors import TrainingError

__all__ = ["LOSSES", "Loss", "TrainingOptions"]

Loss = Literal["bce", "mse", "margin-mse"]
LOSSES: tuple[Loss, ...] = ("bce", "mse", "margin-mse")
"""``bce`` for 1/0 labels; ``mse`` and ``margin-mse`` learn a teacher's logits."""


def _option(default: Any, help: str) -> Any:
    # ``help`` documents the setting once, for the docs and the ``train`` command's flags.
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True, kw_only=True)
class TrainingOptions:
    """Every setting of :func:`~rag_rerank.training.train`, declared once.

    The same corpus, base and options (``seed`` included) give the same model. Values are
    checked on construction; a bad one raises :class:`~rag_rerank.errors.TrainingError` whose
    ``option`` names it.

    Example:
        >>> TrainingOptions(steps=120, max_length=64).batch_size
        32
    """

    loss: Loss | None = _option(  # noqa: RUF009 (a dataclasses.field)
        None,
        "Training loss: bce (the default), or with a teacher margin-mse (the default) or mse.",
    )
    steps: int = _option(300, "Optimizer steps.")
    batch_size: int = _option(32, "Pairs per step (at least 2).")
    max_length: int = _option(128, "Tokens per pair (at least 8).")
    learning_rate: float = _option(5e-5, "Peak learning rate.")
    seed: int = _option(0, "Seeds the queries, negatives, head, shuffling and held-out split.")
    device: str | None = _option(
        None, "cpu, cuda, cuda:1...; default: CUDA when available, else the CPU."
    )
    held_out: float = _option(
        0.1, "Share of passages whose queries are kept out for the evaluation, in [0, 1)."
    )
    hard_negatives: int = _option(3, "Nearest passages per query used as negatives.")
    random_negatives: int = _option(1, "Random passages per query used as negatives.")
    checkpoint_every: int | None = _option(
        None, "Steps between checkpoints; default a fifth of the steps, at least 10."
    )

    def __post_init__(self) -> None:
        if self.loss is not None and self.loss not in LOSSES:
            raise TrainingError(
                f"must be one of {', '.join(LOSSES)}, got {self.loss!r}", option="loss"
            )
        for name, least in (
            ("steps", 1),
            ("batch_size", 2),
            ("max_length", 8),
            ("seed", None),
            ("hard_negatives", 0),
            ("random_negatives", 0),
        ):
            _check_int(name, getattr(self, name), least)
        if self.checkpoint_every is not None:
            _check_int("checkpoint_every", self.checkpoint_every, 1)
        rate = self.learning_rate
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not rate > 0:
            raise TrainingError(f"must be positive, got {rate!r}", option="learning_rate")
        share = self.held_out
        if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 <= share < 1:
            raise TrainingError(f"must be in [0, 1), got {share!r}", option="held_out")
        if self.device is not None and (not isinstance(self.device, str) or not self.device):
            raise TrainingError(
                f"must be a device name or None, got {self.device!r}", option="device"
            )

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """Every setting's name, in declaration order."""
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def help(cls, name: str) -> str:
        """The one-line description of setting ``name``."""
        return str(_FIELDS[name].metadata["help"])

    @classmethod
    def from_kwargs(cls, base: TrainingOptions | None = None, **options: Any) -> TrainingOptions:
        """``base`` (default: all defaults) with ``options`` changed.

        Raises:
            TrainingError: A name that is not a setting, or a bad value (``option`` names it).
        """
        unknown = sorted(set(options) - set(_FIELDS))
        if unknown:
            raise TrainingError(
                f"is not a training option; the options are: {', '.join(cls.names())}",
                option=unknown[0],
            )
        return dataclasses.replace(base or cls(), **options)

    def replace(self, **changes: Any) -> TrainingOptions:
        """A copy with ``changes`` applied (checked like the constructor's arguments)."""
        return TrainingOptions.from_kwargs(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Every setting by name (JSON-ready)."""
        return dataclasses.asdict(self)

    def resolved_loss(self, teacher: bool) -> Loss:
        """The loss to train with: :attr:`loss`, or its default (``margin-mse`` with a teacher,
        ``bce`` without).

        Raises:
            TrainingError: ``bce`` with a teacher, or a teacher's loss without one.
        """
        loss = self.loss or ("margin-mse" if teacher else "bce")
        if teacher and loss == "bce":
            raise TrainingError("a teacher's logits need 'mse' or 'margin-mse'", option="loss")
        if not teacher and loss != "bce":
            raise TrainingError(
                f"{loss!r} learns a teacher's logits: give a teacher", option="loss"
            )
        return loss


_FIELDS = {f.name: f for f in dataclasses.fields(TrainingOptions)}


def _check_int(name: str, value: object, least: int | None) -> None:
    """Raise :class:`TrainingError` naming ``name`` unless ``value`` is an int (not a bool) of
    at least ``least`` (any int when ``None``)."""
    too_small = least is not None and isinstance(value, int) and value < least
    if isinstance(value, bool) or not isinstance(value, int) or too_small:
        kind = "an integer" if least is None else f"an integer of at least {least}"
        raise TrainingError(f"must be {kind}, got {value!r}", option=name)
