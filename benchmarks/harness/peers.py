"""The rerankers timed side by side, each behind one call: a workload in, logits per query out."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .workloads import MAX_LENGTH, Workload

Scorer = Callable[[Workload], list[np.ndarray]]
"""Scores a workload: one array of relevance logits per query, in passage order."""


@dataclass
class Peer:
    name: str
    score: Scorer
    note: str = ""
    close: Callable[[], None] | None = None


def rag_rerank_peer(
    folder: str,
    device: str,
    dtype: torch.dtype,
    name: str,
    max_padding: int | str | None = "default",
    prepare: Callable[[Any], str] | None = None,
    **options: Any,
) -> Peer:
    from rag_rerank import Reranker

    # cache=None: the timed runs repeat the same pairs, and a figure must measure the model.
    rr = Reranker(folder, device=device, dtype=dtype, show_progress=False, cache=None, **options)
    prepared = prepare(rr) if prepare else ""  # a variant of the core: returns its note
    if max_padding != "default":
        # The settings before the speed work: padded batches, no padding allowance.
        rr.engine.max_padding = max_padding  # type: ignore[assignment]
        rr.engine.model.packed = False

    def score(w: Workload) -> list[np.ndarray]:
        # The user-facing call: rerank (one query) or rerank_many (several), default settings.
        if len(w.queries) == 1:
            ranked = [rr.rerank(w.queries[0], w.passages[0])]
        else:
            ranked = rr.rerank_many(w.queries, w.passages)
        out = []
        for results in ranked:
            logits = np.empty(len(results), dtype=np.float32)
            for r in results:
                logits[r.index] = r.raw_score
            out.append(logits)
        return out

    layout = "padding-free" if rr.engine.model.packed else f"max_padding={rr.engine.max_padding}"
    note = f"batch_tokens={rr.batch_tokens}, {layout}" + "".join(
        f", {k}={v}" for k, v in options.items() if k != "batch_tokens"
    )
    note += f", {prepared}" if prepared else ""
    return Peer(name, score, note, rr.close)


def sentence_transformers_peer(folder: str, device: str, dtype: torch.dtype) -> Peer:
    from sentence_transformers import CrossEncoder

    ce = CrossEncoder(folder, device=device, max_length=MAX_LENGTH, model_kwargs={"dtype": dtype})
    identity = torch.nn.Identity()

    def score(w: Workload) -> list[np.ndarray]:
        flat = ce.predict(w.flat_pairs(), activation_fn=identity, show_progress_bar=False)
        return _split(np.asarray(flat, dtype=np.float32), w)

    return Peer("sentence-transformers CrossEncoder.predict", score, "batch_size=32 (default)")


def flag_reranker_peer(folder: str, device: str) -> Peer | None:
    try:
        from FlagEmbedding import FlagReranker  # type: ignore[import-not-found]
    except ImportError:
        return None
    # FlagEmbedding itself turns fp16 off on the CPU, so there it runs fp32 like the others.
    ranker = FlagReranker(folder, use_fp16=True, devices=[device])

    def score(w: Workload) -> list[np.ndarray]:
        flat = ranker.compute_score(w.flat_pairs(), max_length=MAX_LENGTH, normalize=False)
        return _split(np.asarray(flat, dtype=np.float32).reshape(-1), w)

    precision = "use_fp16=True" if device.startswith("cuda") else "fp32 (its CPU default)"
    return Peer("FlagEmbedding FlagReranker", score, f"{precision}, devices pinned")


def plain_peer(
    folder: str, device: str, dtype: torch.dtype, batch_size: int = 32
) -> tuple[Peer, torch.nn.Module]:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(
        folder, dtype=dtype, attn_implementation="sdpa"
    )
    model.to(device).eval()

    @torch.inference_mode()
    def score(w: Workload) -> list[np.ndarray]:
        pairs = w.flat_pairs()
        logits = []
        for start in range(0, len(pairs), batch_size):
            chunk = pairs[start : start + batch_size]
            inputs = tokenizer(
                [q for q, _ in chunk],
                [p for _, p in chunk],
                padding=True,
                truncation="only_second",
                max_length=MAX_LENGTH,
                return_tensors="pt",
            ).to(device)
            logits.append(model(**inputs).logits[:, 0].float().cpu())
        return _split(torch.cat(logits).numpy(), w)

    peer = Peer("plain transformers forward", score, f"padded, input order, batch {batch_size}")
    return peer, model


def _split(flat: np.ndarray, w: Workload) -> list[np.ndarray]:
    bounds = np.cumsum([0] + [len(p) for p in w.passages])
    return [flat[a:b] for a, b in itertools.pairwise(bounds)]
