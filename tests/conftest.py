"""Shared fixtures: tiny random cross-encoders built once per test run by rag_rerank.testing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rag_rerank.testing import build_all, build_gemma, build_qwen3

# No test may reach a model hub: loading a hub id must fail fast and clearly.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# dtype=None (auto) stays fp32 even on a CPU with native bf16, so parity tests compare exact fp32
# scores everywhere; an environment variable, so CLI runs, uvicorn servers and Ray workers started
# by the tests inherit it. tests/unit/test_dtype.py sets it per test to check both choices.
os.environ.setdefault("RAG_RERANK_CPU_BF16", "0")


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Folders of the tiny ``bert``, ``bert2`` (two labels) and ``xlmr`` cross-encoders."""
    return build_all(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="session")
def bert_dir(tiny_models: dict[str, Path]) -> str:
    return str(tiny_models["bert"])


@pytest.fixture(scope="session")
def xlmr_dir(tiny_models: dict[str, Path]) -> str:
    return str(tiny_models["xlmr"])


@pytest.fixture(scope="session")
def bert2_dir(tiny_models: dict[str, Path]) -> str:
    return str(tiny_models["bert2"])


@pytest.fixture(scope="session")
def qwen3_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A tiny random Qwen3-Reranker (its config names prompt_format "qwen3")."""
    return str(build_qwen3(tmp_path_factory.mktemp("llm") / "qwen3"))


@pytest.fixture(scope="session")
def gemma_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A tiny random bge-reranker-v2-gemma (its config names prompt_format "bge-gemma")."""
    return str(build_gemma(tmp_path_factory.mktemp("llm") / "gemma"))


@pytest.fixture(scope="session")
def trained_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A small reranker trained on the demo corpus (MiniLM, 50 steps of 32 pairs), with logits
    that spread over several units; built once and kept in pytest's cache folder (in a temporary
    one with ``-p no:cacheprovider``)."""
    pytest.importorskip("datasets", reason="training needs the 'train' extra")
    from rag_rerank.training.fixture import build_trained_test_model

    cache = getattr(request.config, "cache", None)
    root = cache.mkdir("rag-rerank-trained") if cache else tmp_path_factory.mktemp("trained")
    return str(build_trained_test_model(root))
