"""LLM rerankers: decoder-only language models that answer "yes" or "no" (Qwen3-Reranker,
bge-reranker-v2-gemma), behind the same engine interface as the cross-encoders."""

from .model import LLMRerankerModel, recognise
from .templates import FORMATS, PromptFormat

__all__ = ["FORMATS", "LLMRerankerModel", "PromptFormat", "recognise"]
