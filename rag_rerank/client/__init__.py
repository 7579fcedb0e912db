"""RemoteReranker: the Reranker API over HTTP, against ``rag-rerank serve`` or a TEI server
(:mod:`.remote`; reading the server's answers: :mod:`.wire`).

Many application processes can share one GPU server: each holds a ``RemoteReranker`` where it
would hold a ``Reranker`` (the LangChain compressor and LlamaIndex postprocessor accept either).
Needs ``httpx`` (``pip install "rag-rerank[server]"``).
"""

from __future__ import annotations

from .remote import RemoteReranker, RemoteRerankError

__all__ = ["RemoteRerankError", "RemoteReranker"]
