"""The LLM reranker test models: tiny random Qwen3 and Gemma causal LMs in the Qwen3-Reranker
and bge-reranker-v2-gemma shapes and templates, with tokenizers trained here (see
:mod:`rag_rerank.testing`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .encoders import _CORPUS, TINY, _save

__all__ = ["build_gemma", "build_qwen3"]


def _llm_corpus() -> list[str]:
    from ..core.llm import FORMATS

    pieces = [text for fmt in FORMATS.values() for text in fmt.texts()]
    return (_CORPUS + pieces + ["yes", "no", "Yes", "No", "yes no Yes No"] * 8) * 4


def _save_llm(model: Any, tokenizer: Any, path: str | Path, prompt_format: str | None) -> Path:
    if prompt_format is not None:  # a folder that names its family in config.json
        model.config.prompt_format = prompt_format
    return _save(model, tokenizer, path)


def build_qwen3(
    path: str | Path,
    seed: int = 0,
    *,
    prompt_format: str | None = "qwen3",
    seq_cls: bool = False,
    **config: Any,
) -> Path:
    """Write a tiny Qwen3 causal LM in Qwen3-Reranker's shape and template to ``path``.

    Its byte-level BPE tokenizer is trained here on the template text, so ``"yes"``, ``"no"`` and
    the chat tokens (``<|im_start|>``, ``<|im_end|>``, ``<think>``) are single tokens, as in
    Qwen's. Args: ``seed`` for the weights; ``prompt_format`` written to config.json (``None``:
    the folder must be recognised by name or told); ``seq_cls``: save the one-label
    ``Qwen3ForSequenceClassification`` conversion instead (score row = yes row - no row);
    ``**config``: Qwen3Config fields over the tiny ones (e.g. the 0.6B shape for benchmarks).
    """
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen3Config, Qwen3ForCausalLM

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"]
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=700,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    backend.train_from_iterator(_llm_corpus(), trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        model_max_length=32768,
    )
    fields = {
        **TINY,
        "vocab_size": len(tokenizer),
        "head_dim": 16,
        "num_key_value_heads": 1,
        "max_position_embeddings": 32768,
        "tie_word_embeddings": True,
        **config,
    }
    qwen3 = Qwen3Config(
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id, **fields
    )
    torch.manual_seed(seed)
    model: Any = Qwen3ForCausalLM(qwen3)
    if seq_cls:
        model = _seq_cls_conversion(model, tokenizer)
    return _save_llm(model, tokenizer, path, prompt_format)


def _seq_cls_conversion(causal: Any, tokenizer: Any) -> Any:
    """The one-label sequence-classification form of a Qwen3 reranker: the score row is the LM
    head's "yes" row minus its "no" row, so its logit is logit(yes) - logit(no)."""
    import torch
    from transformers import Qwen3ForSequenceClassification

    config = causal.config
    config.num_labels = 1
    config.architectures = ["Qwen3ForSequenceClassification"]
    model = Qwen3ForSequenceClassification(config)
    model.model.load_state_dict(causal.model.state_dict())
    rows = causal.lm_head.weight
    yes, no = (tokenizer.convert_tokens_to_ids(word) for word in ("yes", "no"))
    with torch.no_grad():
        model.score.weight.copy_((rows[yes] - rows[no])[None])
    return model


def build_gemma(
    path: str | Path, seed: int = 0, *, prompt_format: str | None = "bge-gemma"
) -> Path:
    """Write a tiny Gemma causal LM in bge-reranker-v2-gemma's shape and template to ``path``.

    Gemma (the architecture of bge-reranker-v2-gemma, a gemma-2b fine-tune) with a Metaspace BPE
    tokenizer trained here: ``<pad>`` 0, ``<eos>`` 1, ``<bos>`` 2, ``<unk>`` 3, as in Gemma's.
    ``prompt_format`` as for :func:`build_qwen3`.
    """
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GemmaConfig, GemmaForCausalLM, PreTrainedTokenizerFast

    specials = ["<pad>", "<eos>", "<bos>", "<unk>"]
    backend = Tokenizer(models.BPE(unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme="first")
    backend.decoder = decoders.Metaspace(prepend_scheme="first")
    trainer = trainers.BpeTrainer(vocab_size=700, special_tokens=specials)
    backend.train_from_iterator(_llm_corpus(), trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        unk_token="<unk>",
        model_max_length=8192,
    )
    config = GemmaConfig(
        vocab_size=len(tokenizer),
        head_dim=16,
        num_key_value_heads=1,
        max_position_embeddings=8192,
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=2,
        **TINY,
    )
    torch.manual_seed(seed)
    return _save_llm(GemmaForCausalLM(config), tokenizer, path, prompt_format)
