"""LLM reranker prompt templates: which model each fits, how a pair becomes token rows.

Each template follows its model card's reference usage: the same prompt pieces, tokenized and
joined the same way, and the same tokens read at the last position. A row is
``head + document tokens + tail``; a document longer than the room left beside the head and tail
is scored window by window (each window with the same head and tail), the first window being
exactly the model card's truncated input.

Torch-free: the tokenizer is any Hugging Face fast tokenizer.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...errors import InvalidInputError
from ..loading import truncate_queries
from ..windows import DEFAULT_OVERLAP, query_token_limit

__all__ = ["FORMATS", "PromptFormat", "Rows", "shared_prefixes", "split_windows"]

_QWEN3_SYSTEM = (
    "<|im_start|>system\nJudge whether the Document meets the requirements based on the Query "
    'and the Instruct provided. Note that the answer can only be "yes" or "no".<|im_end|>\n'
    "<|im_start|>user\n"
)
_QWEN3_ASSISTANT = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"


@dataclass(frozen=True)
class PromptFormat:
    """One family's template and where it applies.

    Attributes:
        name: The ``prompt_format`` option's value.
        model_types: ``config.model_type`` values the template was trained on.
        id_pattern: Regular expression (case-insensitive) matching the family's hub ids.
        card_max_length: ``max_length`` of the model card's usage code (the default window).
        default_instruction: The task instruction when none is given.
        read: The answer tokens whose logits are read at the last position (``raw_score`` is the
            first minus the second when there are two).
    """

    name: str
    model_types: tuple[str, ...]
    id_pattern: str
    card_max_length: int
    default_instruction: str
    read: tuple[str, ...]

    def texts(self) -> list[str]:
        """The template's fixed text (to train test tokenizers that hold its tokens)."""
        if self.name == "qwen3":
            body = f"<Instruct>: {self.default_instruction}\n<Query>: q\n<Document>: d"
            return [_QWEN3_SYSTEM + body + _QWEN3_ASSISTANT]
        return ["A: q", "B: d", self.default_instruction]

    def answer_ids(self, tokenizer: Any) -> list[int]:
        """Vocabulary rows read, found as the model card finds them."""
        if self.name == "qwen3":  # tokenizer.convert_tokens_to_ids("yes"), ("no")
            ids = [tokenizer.convert_tokens_to_ids(token) for token in self.read]
            if any(i is None or i == tokenizer.unk_token_id for i in ids):
                raise InvalidInputError(
                    "prompt_format",
                    "'qwen3' reads the tokens 'yes' and 'no'; the tokenizer lacks them",
                )
            return [int(i) for i in ids]
        # tokenizer("Yes", add_special_tokens=False)["input_ids"][0]
        return [int(tokenizer(self.read[0], add_special_tokens=False)["input_ids"][0])]

    def rows(
        self,
        tokenizer: Any,
        instruction: str | None,
        queries: Sequence[str],
        documents: Sequence[str],
        max_length: int,
    ) -> list[Rows]:
        """Each pair's head, document tokens, tail and room for document tokens per window."""
        instruction = self.default_instruction if instruction is None else instruction
        if self.name == "qwen3":
            return _qwen3_rows(tokenizer, instruction, queries, documents, max_length)
        return _bge_gemma_rows(tokenizer, instruction, queries, documents, max_length)


FORMATS: dict[str, PromptFormat] = {
    "qwen3": PromptFormat(
        name="qwen3",
        model_types=("qwen3",),
        id_pattern=r"qwen3-reranker",
        card_max_length=8192,
        default_instruction=(
            "Given a web search query, retrieve relevant passages that answer the query"
        ),
        read=("yes", "no"),
    ),
    "bge-gemma": PromptFormat(
        name="bge-gemma",
        model_types=("gemma", "gemma2"),
        id_pattern=r"bge-reranker-v2-gemma",
        card_max_length=1024,
        default_instruction=(
            "Given a query A and a passage B, determine whether the passage contains an answer "
            "to the query by providing a prediction of either 'Yes' or 'No'."
        ),
        read=("Yes",),
    ),
}
"""The templates by ``prompt_format`` name."""


@dataclass(frozen=True)
class Rows:
    """One pair before windowing: every row is ``head + doc[i : i + room] + tail``."""

    head: list[int]
    doc: list[int]
    tail: list[int]
    room: int


def _split_at(offsets: Sequence[tuple[int, int]], start: int) -> int:
    """Tokens that begin before character ``start`` (a token across it stays in the head)."""
    return sum(1 for begin, _ in offsets if begin < start)


def _qwen3_rows(
    tokenizer: Any,
    instruction: str,
    queries: Sequence[str],
    documents: Sequence[str],
    max_length: int,
) -> list[Rows]:
    # Model card: prefix tokens + tokenize(f"<Instruct>: ...\n<Query>: ...\n<Document>: {doc}",
    # truncated to max_length - prefix - suffix) + suffix tokens.
    prefix = tokenizer.encode(_QWEN3_SYSTEM, add_special_tokens=False)
    suffix = tokenizer.encode(_QWEN3_ASSISTANT, add_special_tokens=False)
    cut = truncate_queries(tokenizer, queries, query_token_limit(max_length))
    texts = [
        f"<Instruct>: {instruction}\n<Query>: {query}\n<Document>: {document}"
        for query, document in zip(cut, documents, strict=True)
    ]
    encoded = tokenizer(
        texts, add_special_tokens=False, return_offsets_mapping=True, return_attention_mask=False
    )
    rows = []
    for ids, offsets, text, document in zip(
        encoded["input_ids"], encoded["offset_mapping"], texts, documents, strict=True
    ):
        split = _split_at(offsets, len(text) - len(document))
        head = prefix + ids[:split]
        rows.append(Rows(head, ids[split:], suffix, max_length - len(head) - len(suffix)))
    return _checked(rows, max_length)


def _bge_gemma_rows(
    tokenizer: Any,
    prompt: str,
    queries: Sequence[str],
    documents: Sequence[str],
    max_length: int,
) -> list[Rows]:
    # Model card (get_inputs): [bos] + tokens("A: q") (at most 3/4 of max_length) as the first
    # sequence, "\n" + tokens("B: passage") as the second, truncated so both fit max_length;
    # then "\n" + the prompt's tokens after it (beyond max_length).
    sep = tokenizer("\n", add_special_tokens=False)["input_ids"]
    tail = sep + tokenizer(prompt, add_special_tokens=False)["input_ids"]
    query_ids = tokenizer(
        [f"A: {query}" for query in queries],
        add_special_tokens=False,
        max_length=max_length * 3 // 4,
        truncation=True,
    )["input_ids"]
    passages = [f"B: {document}" for document in documents]
    encoded = tokenizer(
        passages, add_special_tokens=False, return_offsets_mapping=True, return_attention_mask=False
    )
    rows = []
    for query, ids, offsets, passage, document in zip(
        query_ids, encoded["input_ids"], encoded["offset_mapping"], passages, documents, strict=True
    ):
        split = _split_at(offsets, len(passage) - len(document))
        head = [tokenizer.bos_token_id, *query, *sep, *ids[:split]]
        rows.append(Rows(head, ids[split:], tail, max_length - len(head)))
    return _checked(rows, max_length)


def _checked(rows: list[Rows], max_length: int) -> list[Rows]:
    for row in rows:
        if row.room < 1:
            raise InvalidInputError(
                "max_length",
                f"{max_length} tokens leave no room for the document beside the prompt "
                f"({len(row.head) + len(row.tail)} tokens with the instruction and query); "
                "raise max_length or shorten the instruction",
            )
    return rows


def split_windows(rows: Sequence[Rows], windows: bool) -> tuple[list[list[int]], np.ndarray]:
    """Token rows and the pair each belongs to: a document that fits gives one row; a longer one
    its first ``room`` tokens, or with ``windows`` overlapping windows of ``room`` tokens."""
    input_ids: list[list[int]] = []
    owner: list[int] = []
    for pair, row in enumerate(rows):
        room = row.room
        overlap = max(0, min(DEFAULT_OVERLAP, (room - 1) // 2))
        start = 0
        while True:
            input_ids.append(row.head + row.doc[start : start + room] + row.tail)
            owner.append(pair)
            if not windows or start + room >= len(row.doc):
                break
            start += room - overlap
    return input_ids, np.asarray(owner, dtype=np.int64)


def shared_prefixes(input_ids: Sequence[list[int]], groups: Sequence[object]) -> list[int]:
    """For each row, the tokens it shares with every other row of its group (its query): their
    longest common prefix, leaving each row at least its last token. Rows alone share nothing."""
    by_group: dict[object, list[int]] = {}
    for row, group in enumerate(groups):
        by_group.setdefault(group, []).append(row)
    shared = [0] * len(input_ids)
    for rows in by_group.values():
        if len(rows) < 2:
            continue
        members = [input_ids[row] for row in rows]
        common = min(len(ids) for ids in members) - 1  # each row keeps its last token
        first = members[0]
        for ids in members[1:]:
            common = next((i for i in range(common) if ids[i] != first[i]), common)
        for row in rows:
            shared[row] = common
    return shared


def recognise_format(name: str, model_type: str, configured: str | None) -> PromptFormat | None:
    """The template named by the config (``configured``), else by the hub id or folder name."""
    if configured is not None:
        return FORMATS.get(configured)
    leaf = name.rstrip("/\\")
    for fmt in FORMATS.values():
        if re.search(fmt.id_pattern, leaf, re.IGNORECASE) and model_type in fmt.model_types:
            return fmt
    return None
