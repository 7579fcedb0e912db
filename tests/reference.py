"""An independent reference: score pairs one at a time with a plain transformers forward.

No batching, no padding, no rag_rerank code: what the core's scores must equal.
"""

from __future__ import annotations

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer


class PlainCrossEncoder:
    def __init__(self, folder: str) -> None:
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.model = AutoModelForSequenceClassification.from_pretrained(folder).eval()

    @torch.inference_mode()
    def logit_of_ids(self, input_ids: list[int], token_type_ids: list[int] | None = None) -> float:
        inputs = {"input_ids": torch.tensor([input_ids])}
        if token_type_ids is not None:
            inputs["token_type_ids"] = torch.tensor([token_type_ids])
        logits = self.model(**inputs).logits[0].float()
        return float(logits[0] if logits.numel() == 1 else logits[1] - logits[0])

    def logit(self, query: str, document: str, max_length: int = 512) -> float:
        # Batch form: a single call with document="" would drop the pair's second segment.
        enc = self.tokenizer([query], [document], truncation="only_second", max_length=max_length)
        types = enc.get("token_type_ids")
        return self.logit_of_ids(enc["input_ids"][0], None if types is None else types[0])

    def score(self, query: str, document: str, max_length: int = 512) -> float:
        return float(torch.sigmoid(torch.tensor(self.logit(query, document, max_length))))
