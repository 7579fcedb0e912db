"""Every training setting, declared once (:class:`TrainingOptions`): its default, its check and
its help text, from which ``rag-rerank train``'s flags are generated. Torch-free, so the command
line builds its parser without loading the trainer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from ..errors import TrainingError
from .checks import check_int, check_positive_number
from .settings import Settings, setting

__all__ = ["LOSSES", "Loss", "TrainingOptions"]

Loss = Literal["bce", "mse", "margin-mse"]
LOSSES: tuple[Loss, ...] = ("bce", "mse", "margin-mse")
"""``bce`` for 1/0 labels; ``mse`` and ``margin-mse`` learn a teacher's logits."""


@dataclass(frozen=True, kw_only=True)
class TrainingOptions(Settings):
    """Every setting of :func:`~rag_rerank.training.train`, declared once.

    The same corpus, base and options (``seed`` included) give the same model. Values are
    checked on construction; a bad one raises :class:`~rag_rerank.errors.TrainingError` whose
    ``option`` names it.

    Example:
        >>> TrainingOptions(steps=120, max_length=64).batch_size
        32
    """

    loss: Loss | None = setting(  # noqa: RUF009 (a dataclasses.field)
        None,
        "Training loss: bce (the default), or with a teacher margin-mse (the default) or mse.",
    )
    steps: int = setting(300, "Optimizer steps.")
    batch_size: int = setting(32, "Pairs per step (at least 2).")
    max_length: int = setting(128, "Tokens per pair (at least 8).")
    learning_rate: float = setting(5e-5, "Peak learning rate.")
    seed: int = setting(0, "Seeds the queries, negatives, head, shuffling and held-out split.")
    device: str | None = setting(
        None, "cpu, cuda, cuda:1...; default: CUDA when available, else the CPU."
    )
    held_out: float = setting(
        0.1, "Share of passages whose queries are kept out for the evaluation, in [0, 1)."
    )
    hard_negatives: int = setting(3, "Nearest passages per query used as negatives.")
    random_negatives: int = setting(1, "Random passages per query used as negatives.")
    checkpoint_every: int | None = setting(
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
            check_int(getattr(self, name), name, least=least, error=_training_error)
        every = self.checkpoint_every
        check_int(every, "checkpoint_every", least=1, optional=True, error=_training_error)
        check_positive_number(self.learning_rate, "learning_rate", error=_training_error)
        share = self.held_out
        if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 <= share < 1:
            raise TrainingError(f"must be in [0, 1), got {share!r}", option="held_out")
        if self.device is not None and (not isinstance(self.device, str) or not self.device):
            raise TrainingError(
                f"must be a device name or None, got {self.device!r}", option="device"
            )

    kind: ClassVar[str] = "training option"

    @classmethod
    def unknown(cls, name: str) -> Exception:
        """A :class:`~rag_rerank.errors.TrainingError` whose ``option`` is ``name``."""
        return TrainingError(
            f"is not a training option; the options are: {', '.join(cls.names())}", option=name
        )

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


def _training_error(field: str, message: str) -> TrainingError:
    return TrainingError(message, option=field)
