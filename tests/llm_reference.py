"""References for the LLM rerankers, written from their model cards' usage code.

Plain transformers, whole vocabulary, the cards' own padding and position reading: what
rag_rerank's scores must equal. Each returns what its card's code returns, one value per pair.
"""

from __future__ import annotations

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

QWEN3_PREFIX = (
    "<|im_start|>system\nJudge whether the Document meets the requirements based on the Query "
    'and the Instruct provided. Note that the answer can only be "yes" or "no".<|im_end|>\n'
    "<|im_start|>user\n"
)
QWEN3_SUFFIX = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
QWEN3_TASK = "Given a web search query, retrieve relevant passages that answer the query"
GEMMA_PROMPT = (
    "Given a query A and a passage B, determine whether the passage contains an answer to the "
    "query by providing a prediction of either 'Yes' or 'No'."
)


@torch.inference_mode()
def qwen3_reference(
    folder: str,
    pairs: list[tuple[str, str]],
    instruction: str | None = None,
    max_length: int = 8192,
) -> list[float]:
    """Qwen3-Reranker's card: left padding, logits[:, -1], log-softmax over (no, yes): the
    probability of "yes" (``score``; its log-odds is ``raw_score``)."""
    tokenizer = AutoTokenizer.from_pretrained(folder, padding_side="left")
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    task = QWEN3_TASK if instruction is None else instruction
    texts = [f"<Instruct>: {task}\n<Query>: {q}\n<Document>: {d}" for q, d in pairs]
    prefix = tokenizer.encode(QWEN3_PREFIX, add_special_tokens=False)
    suffix = tokenizer.encode(QWEN3_SUFFIX, add_special_tokens=False)
    inputs = tokenizer(
        texts,
        padding=False,
        truncation="longest_first",
        return_attention_mask=False,
        max_length=max_length - len(prefix) - len(suffix),
    )
    inputs["input_ids"] = [prefix + ids + suffix for ids in inputs["input_ids"]]
    batch = tokenizer.pad(inputs, padding=True, return_tensors="pt")
    logits = model(**batch).logits[:, -1, :]
    yes = tokenizer.convert_tokens_to_ids("yes")
    no = tokenizer.convert_tokens_to_ids("no")
    pair = torch.nn.functional.log_softmax(torch.stack([logits[:, no], logits[:, yes]], 1), 1)
    return pair[:, 1].exp().tolist()


@torch.inference_mode()
def bge_gemma_reference(
    folder: str,
    pairs: list[tuple[str, str]],
    prompt: str | None = None,
    max_length: int = 1024,
) -> list[float]:
    """bge-reranker-v2-gemma's card (get_inputs): logits[:, -1, id of "Yes"] (``raw_score``)."""
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    prompt = GEMMA_PROMPT if prompt is None else prompt
    sep = tokenizer("\n", add_special_tokens=False)["input_ids"]
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    items = []
    for query, passage in pairs:
        query_ids = tokenizer(
            f"A: {query}", add_special_tokens=False, max_length=max_length * 3 // 4, truncation=True
        )["input_ids"]
        passage_ids = tokenizer(
            f"B: {passage}", add_special_tokens=False, max_length=max_length, truncation=True
        )["input_ids"]
        # The card's tokenizer.prepare_for_model(first, second, truncation="only_second",
        # max_length=max_length, add_special_tokens=False), which transformers 5 no longer has:
        # the second sequence loses its tail until both fit.
        first = [tokenizer.bos_token_id, *query_ids]
        second = (sep + passage_ids)[: max(0, max_length - len(first))]
        input_ids = first + second + sep + prompt_ids
        items.append({"input_ids": input_ids, "attention_mask": [1] * len(input_ids)})
    tokenizer.padding_side = "left"  # the card's Gemma tokenizer pads on the left
    batch = tokenizer.pad(items, padding=True, pad_to_multiple_of=8, return_tensors="pt")
    yes = tokenizer("Yes", add_special_tokens=False)["input_ids"][0]
    return model(**batch).logits[:, -1, yes].float().tolist()
