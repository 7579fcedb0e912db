"""The one progress bar of a training run (imported when training starts: it needs
transformers)."""

from __future__ import annotations

from typing import Any

from tqdm.auto import tqdm
from transformers import TrainerCallback

__all__ = ["StepBar"]


class StepBar(TrainerCallback):
    """A bar labelled ``training``: steps done of the run's steps, starting at the step a resumed
    run goes on from. It replaces the trainer's own bar and its ``{'loss': ...}`` lines."""

    def __init__(self) -> None:
        self._bar: Any = None

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._bar = tqdm(
            total=state.max_steps, initial=state.global_step, desc="training", unit="step"
        )

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._bar.update(state.global_step - self._bar.n)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._bar.close()
