"""What a cached logit is stored under: the model's identity (:func:`model_identity`, the
cache's namespace) and one key per pair (:func:`score_key`), a digest of the window length, the
long-document mode, the query and the document. Imports no torch: the caller passes what
identifies the model."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

__all__ = ["document_key", "folder_digest", "model_identity", "query_digest", "score_key"]

_SMALL_FILE = 1 << 20  # files up to 1 MiB (configs, tokenizers) are digested by content


def folder_digest(folder: str | os.PathLike[str]) -> str:
    """A digest of a model folder's files: names, sizes, modification times, and the content of
    small files (config, tokenizer). Changes when the weights or the tokenizer change."""
    digest = hashlib.sha256()
    root = Path(folder)
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        stat = path.stat()
        digest.update(f"{path.relative_to(root)}\0{stat.st_size}\0".encode())
        if stat.st_size <= _SMALL_FILE:
            digest.update(path.read_bytes())
        else:
            digest.update(str(stat.st_mtime_ns).encode())
    return digest.hexdigest()


def model_identity(
    name: str,
    commit: str | None,
    *,
    dtype: str,
    quantize: str | None,
    device_type: str,
    template: str | None = None,
) -> str | None:
    """What a cached logit is valid for: 24 hex digits, or ``None`` when the weights cannot be
    identified (then the model runs uncached).

    Args:
        name: Hub id or local folder the model was loaded from.
        commit: The hub commit the weights came from (``config._commit_hash``); ignored for a
            local folder, whose files are digested instead (:func:`folder_digest`).
        dtype: Precision of the weights (``"float32"``, ``"bfloat16"``, ...): logits differ.
        quantize: ``"int8"`` or ``None``: logits differ.
        device_type: ``"cpu"``, ``"cuda"``, ...: kernels differ in the last bits.
        template: An LLM reranker's prompt format and instruction: logits differ.
    """
    if Path(name).is_dir():
        weights = "folder:" + folder_digest(name)
    elif commit:
        weights = f"hub:{name}@{commit}"
    else:
        return None
    text = f"{weights}\0{dtype}\0{quantize}\0{device_type}"
    if template is not None:
        text += f"\0{template}"
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def score_key(max_length: int, long_documents: str, query: str, document: str) -> bytes:
    """The 16-byte key of one pair's logit under one model (the model is the cache's namespace).

    The document is the text as scored (after cleaning). Lengths are hashed in, so no two
    different (query, document) splits of the same characters share a key.
    """
    return document_key(query_digest(max_length, long_documents, query), document)


def query_digest(max_length: int, long_documents: str, query: str) -> hashlib.blake2b:
    """The hash state of :func:`score_key` after the query: computed once per query, then
    copied for each of its documents by :func:`document_key` (a 7 MB query is hashed once, not
    once per pair)."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"{max_length}\0{long_documents}\0{len(query)}\0".encode())
    digest.update(query.encode("utf-8", "surrogatepass"))
    digest.update(b"\0")
    return digest


def document_key(query_state: hashlib.blake2b, document: str) -> bytes:
    """:func:`score_key` of one document, from its query's :func:`query_digest`."""
    digest = query_state.copy()
    digest.update(document.encode("utf-8", "surrogatepass"))
    return digest.digest()
