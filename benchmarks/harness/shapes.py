"""Real rerankers' architectures, built with random weights (speed does not depend on weight
values) through :mod:`rag_rerank.testing`'s builders."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rag_rerank.testing import minilm_folder, random_cross_encoder, train_xlmr_tokenizer

from .workloads import SEED, pseudo_words, sentence


@dataclass(frozen=True)
class Shape:
    """A real reranker's architecture, to be filled with random weights."""

    name: str
    mimics: str
    arch: str  # "bert" or "xlmr"
    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab: int
    max_positions: int

    def config_fields(self) -> dict[str, Any]:
        """The transformers config fields this shape fixes, with one relevance label."""
        return {
            "vocab_size": self.vocab,
            "hidden_size": self.hidden,
            "num_hidden_layers": self.layers,
            "num_attention_heads": self.heads,
            "intermediate_size": self.intermediate,
            "max_position_embeddings": self.max_positions,
            "num_labels": 1,
        }


SHAPES = {
    s.name: s
    for s in (
        Shape(
            "minilm-l6",
            "cross-encoder/ms-marco-MiniLM-L-6-v2",
            "bert",
            384,
            6,
            12,
            1536,
            30522,
            512,
        ),
        Shape("bge-base", "BAAI/bge-reranker-base", "xlmr", 768, 12, 12, 3072, 250002, 514),
        Shape("bge-m3", "BAAI/bge-reranker-v2-m3", "xlmr", 1024, 24, 16, 4096, 250002, 8194),
    )
}


def build_model(shape: Shape, folder: Path) -> Path:
    """Write a random-weight cross-encoder of ``shape`` (weights + fast tokenizer) to ``folder``.

    Reuses the folder when it already holds this shape. Returns the folder.
    """
    folder = Path(folder)
    stamp = folder / "rag_rerank_bench.json"
    if stamp.exists() and json.loads(stamp.read_text()).get("shape") == shape.name:
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    model, tokenizer = _build_bert(shape) if shape.arch == "bert" else _build_xlmr(shape)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    stamp.write_text(json.dumps({"shape": shape.name, "mimics": shape.mimics}))
    return folder


def _build_bert(shape: Shape) -> tuple[Any, Any]:
    from safetensors.torch import load_file
    from transformers import AutoTokenizer

    source = minilm_folder()
    tokenizer = AutoTokenizer.from_pretrained(source)
    model = random_cross_encoder("bert", tokenizer, seed=SEED, **shape.config_fields())
    # Start the encoder from real MiniLM weights where their shape matches: realistic activations
    # make the int8 drift and top-5 checks meaningful. The pooler and the head stay random.
    encoder = load_file(str(source / "model.safetensors"))
    own = model.bert.state_dict()
    matching = {
        k.removeprefix("bert."): v
        for k, v in encoder.items()
        if k.removeprefix("bert.") in own and own[k.removeprefix("bert.")].shape == v.shape
    }
    model.bert.load_state_dict(matching, strict=False)
    torch.nn.init.normal_(model.classifier.weight, std=1.0)
    return model, tokenizer


def _build_xlmr(shape: Shape) -> tuple[Any, Any]:
    # A tokenizer trained on pseudo-words: 8000 tokens in the 250002-row embedding table, enough
    # for realistic token counts per word.
    rng = np.random.default_rng(SEED)
    words = pseudo_words(rng, 6000)
    corpus = (sentence(rng, words, 40) for _ in range(4000))
    tokenizer = train_xlmr_tokenizer(corpus, 8000, model_max_length=shape.max_positions - 2)
    model = random_cross_encoder("xlmr", tokenizer, seed=SEED, **shape.config_fields())
    return model, tokenizer
