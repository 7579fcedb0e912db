"""``train``: fine-tune or distil a cross-encoder on a corpus with sentence-transformers'
CrossEncoderTrainer, checkpointing as it goes, and evaluate it on held-out queries."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..api.references import check_model_reference
from ..api.training import TrainingOptions
from ..errors import ModelLoadError, TrainingError
from .corpus import load_passages
from .dataset import PassageStore, build_training_data, labelled_queries
from .report import TrainingReport, evaluate_held_out, write_card

__all__ = ["CHECKPOINTS", "last_checkpoint", "train"]

CHECKPOINTS = "checkpoints"
"""The folder under the output folder that holds the checkpoints while training runs."""

_STATE = "trainer_state.json"  # written last in a checkpoint: without it, the save was cut off


def train(
    corpus: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    base: str,
    out: str | os.PathLike[str],
    labels: str | os.PathLike[str] | None = None,
    teacher: str | None = None,
    options: TrainingOptions | None = None,
    resume: bool = True,
    embedding_function: Any = None,
    show_progress: bool = True,
    **settings: Any,
) -> TrainingReport:
    """Train a one-logit cross-encoder reranker on ``corpus`` and save it to ``out``.

    Without ``labels`` the training pairs come from the corpus (see
    :mod:`rag_rerank.training.pairs`); with ``labels`` they are the labelled pairs. With a
    ``teacher`` the student learns the teacher's logits of the same candidates. The same inputs
    and settings (``seed`` included) give the same model.

    Args:
        corpus: A JSONL of ``{"text": ...}`` rows, ``.txt``/``.md`` files or folders, or a Chroma
            index folder (see :func:`~rag_rerank.training.load_passages`).
        base: Any transformer encoder or cross-encoder (hub id or folder); a bi-encoder such as
            all-MiniLM-L6-v2 gets a new one-logit head.
        out: The model folder to write (``Reranker(out)`` loads it); checkpoints go to
            ``out/checkpoints`` while training and are removed when it finishes.
        labels: A JSONL of ``{"query", "document", "label"}`` lines (the calibration format).
        teacher: A reranker to distil (hub id or folder), loaded by :class:`~rag_rerank.Reranker`.
        options: The training settings (default: :class:`~rag_rerank.api.TrainingOptions`'
            defaults).
        resume: Continue from the last complete checkpoint in ``out/checkpoints`` (default).
        embedding_function: The vector store's chromadb embedding function (default: the
            offline all-MiniLM-L6-v2).
        show_progress: Show one progress bar labelled ``training`` (steps done of ``steps``); the
            trainer's own bar and its loss lines stay off either way.
        settings: Settings by name (``steps=50``, ``seed=1``...), applied over ``options``.

    Returns:
        The :class:`~rag_rerank.training.TrainingReport`, also written to ``out`` with a model
        card (``README.md``).

    Raises:
        TrainingError: Bad settings (the option named), a corpus too small for one batch or
            with an empty text, a labels file in another format (file and line named), a base
            that is not a transformer encoder, or a teacher that cannot load.
        KeyboardInterrupt: Ctrl-C; the last complete checkpoint stays in ``out/checkpoints``
            and the next run with ``resume=True`` goes on from it.
    """
    started = time.perf_counter()
    options = TrainingOptions.from_kwargs(options, **settings)
    options = options.replace(loss=options.resolved_loss(bool(teacher)))
    batch_size = options.batch_size
    base = _checked_reference(base, "base")
    teacher = _checked_reference(teacher, "teacher") if teacher else None
    sources = [corpus] if isinstance(corpus, (str, os.PathLike)) else list(corpus)
    passages = [p.text for p in load_passages(sources)]
    if len(passages) < batch_size:
        raise TrainingError(
            f"{len(passages)} passages, fewer than the {batch_size} that a batch of "
            f"{batch_size} pairs needs; add passages or lower batch_size",
            ", ".join(map(str, sources)),
            option="batch_size",
        )
    labelled = labelled_queries(labels, passages) if labels is not None else None
    config = _check_base(base)
    teacher_model = _load_teacher(teacher, options.device) if teacher else None
    store = PassageStore(passages, embedding_function)
    try:
        data = build_training_data(
            passages,
            store,
            labelled=labelled,
            teacher=teacher_model,
            options=options,
        )
        if teacher_model is not None:
            teacher_model.close()
        out = Path(out)
        resumed_from = _fit(
            base, config, data.columns, out, options, resume=resume, show_progress=show_progress
        )
        evaluation = evaluate_held_out(
            out, store, data.held_out, data.relevant, device=options.device or _default_device()
        )
    finally:
        store.close()
    described: dict[str, Any] = {"corpus": ", ".join(map(str, sources))}
    if labels is not None:
        described["labels"] = str(labels)
    if teacher:
        described["teacher"] = teacher
    report = TrainingReport(
        out=str(out),
        base=base,
        data=described,
        passages=len(passages),
        train_queries=len(data.train_queries),
        pairs=len(data.columns["query"]),
        held_out_queries=len(data.held_out),
        options=options,
        resumed_from=resumed_from,
        seconds=time.perf_counter() - started,
        evaluation=evaluation,
    )
    write_card(report)
    return report


def last_checkpoint(out: str | os.PathLike[str]) -> Path | None:
    """The last complete checkpoint under ``out/checkpoints`` (one a Ctrl-C cut off while it
    was being written lacks its trainer state and is skipped), or ``None``."""
    folder = Path(out) / CHECKPOINTS
    complete = [
        path
        for path in folder.glob("checkpoint-*")
        if path.name.split("-")[-1].isdigit() and (path / _STATE).is_file()
    ]
    return max(complete, key=lambda p: int(p.name.split("-")[-1]), default=None)


def _fit(
    base: str,
    config: Any,
    columns: dict[str, list[Any]],
    out: Path,
    options: TrainingOptions,
    *,
    resume: bool,
    show_progress: bool,
) -> int:
    """Run the trainer with ``options`` (its loss resolved); returns the step resumed from (0
    for a fresh start)."""
    from datasets import Dataset
    from sentence_transformers.cross_encoder import (
        CrossEncoder,
        CrossEncoderTrainer,
        CrossEncoderTrainingArguments,
        losses,
    )
    from transformers import PrinterCallback, ProgressCallback, set_seed

    from ..core.loading import quiet_hub
    from .progress import StepBar

    seed, steps, device, loss = options.seed, options.steps, options.device, options.loss
    assert loss is not None, "train() resolves the loss"
    set_seed(seed)  # the new head's initial weights
    with quiet_hub():
        model = CrossEncoder(base, num_labels=1, max_length=options.max_length, device=device)
    objective = {
        "bce": losses.BinaryCrossEntropyLoss,
        "mse": losses.MSELoss,
        "margin-mse": losses.MarginMSELoss,
    }[loss](model)
    checkpoint = last_checkpoint(out) if resume else None
    if not resume:
        shutil.rmtree(out / CHECKPOINTS, ignore_errors=True)
    _drop_incomplete(out / CHECKPOINTS)
    args = CrossEncoderTrainingArguments(
        output_dir=str(out / CHECKPOINTS),
        max_steps=steps,
        per_device_train_batch_size=options.batch_size,
        learning_rate=options.learning_rate,
        warmup_steps=0.1,
        seed=seed,
        data_seed=seed,
        save_strategy="steps",
        save_steps=options.checkpoint_every or max(10, steps // 5),
        save_total_limit=1,
        logging_steps=max(1, steps // 10),
        disable_tqdm=True,
        report_to="none",
        use_cpu=(device or _default_device()) == "cpu",
        dataloader_num_workers=0,
    )
    trainer = CrossEncoderTrainer(
        model=model, args=args, train_dataset=Dataset.from_dict(columns), loss=objective
    )
    for noisy in (PrinterCallback, ProgressCallback):  # the raw {'loss': ...} lines
        trainer.remove_callback(noisy)
    if show_progress:
        trainer.add_callback(StepBar())
    resumed_from = 0
    if checkpoint is not None:
        resumed_from = int(json.loads((checkpoint / _STATE).read_text())["global_step"])
    with quiet_hub():  # no "Writing model shards" bar at each checkpoint
        trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
        model.save_pretrained(str(out))
    shutil.rmtree(out / CHECKPOINTS, ignore_errors=True)
    return resumed_from


def _drop_incomplete(folder: Path) -> None:
    """Remove checkpoints a Ctrl-C cut off mid-save, so the trainer never picks one up."""
    for path in folder.glob("checkpoint-*"):
        if not (path / _STATE).is_file():
            shutil.rmtree(path, ignore_errors=True)


def _default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _checked_reference(model: str, option: str) -> str:
    """The model reference to load (``~`` expanded), checked as ``Reranker`` checks it."""
    try:
        return check_model_reference(model)
    except ModelLoadError as exc:
        raise TrainingError(str(exc), option=option) from None


def _check_base(base: str) -> Any:
    """The base's config, or a :class:`TrainingError` when it is not a transformer encoder."""
    from ..core.loading import load_config

    try:
        config = load_config(base, {})
    except ModelLoadError as exc:
        raise TrainingError(str(exc), option="base") from None
    architectures = getattr(config, "architectures", None) or []
    decoder = getattr(config, "is_decoder", False) or (
        architectures and all(a.endswith(("ForCausalLM", "LMHeadModel")) for a in architectures)
    )
    if decoder or getattr(config, "is_encoder_decoder", False):
        kind = "an encoder-decoder" if getattr(config, "is_encoder_decoder", False) else "a decoder"
        raise TrainingError(
            f"{base!r} is {kind} ({config.model_type}), not a transformer encoder such as "
            "BERT, MiniLM or XLM-RoBERTa",
            option="base",
        )
    return config


def _load_teacher(teacher: str, device: str | None) -> Any:
    from ..core.reranker import Reranker

    try:
        return Reranker(teacher, device=device or _default_device(), dtype="fp32")
    except (ModelLoadError, OSError, ValueError) as exc:
        raise TrainingError(f"cannot load {teacher!r}: {exc}", option="teacher") from None
