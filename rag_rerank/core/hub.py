"""Whether the Hugging Face hub can be reached: one TCP probe per process and endpoint, so loading
a hub id out of reach fails at once with one line instead of transformers' retries.

Torch-free (sockets and the standard library only), like the package :mod:`rag_rerank.core` is
to import: the CLI checks ``--model`` with it before it imports torch.
"""

from __future__ import annotations

import functools
import os
import socket
import threading
from urllib.parse import urlsplit

from ..api.references import looks_like_path, unreachable_message
from ..errors import ModelLoadError

__all__ = ["check_hub_model", "hub_endpoint", "hub_offline", "hub_unreachable"]

_TRUE = {"1", "on", "yes", "true"}
_PROBE_SECONDS = 3.0


def hub_offline() -> bool:
    """Whether ``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) asks for no hub calls."""
    return any(
        os.environ.get(name, "").strip().lower() in _TRUE
        for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def hub_endpoint() -> str:
    """The hub's address: ``$HF_ENDPOINT``, else https://huggingface.co."""
    return os.environ.get("HF_ENDPOINT", "").rstrip("/") or "https://huggingface.co"


@functools.lru_cache(maxsize=8)
def _probe(endpoint: str) -> str | None:
    parts = urlsplit(endpoint)
    host = parts.hostname or ""
    port = parts.port or (80 if parts.scheme == "http" else 443)
    outcome: list[str | None] = []

    def connect() -> None:  # getaddrinfo has no timeout of its own: run it in a thread
        try:
            socket.create_connection((host, port), timeout=_PROBE_SECONDS).close()
            outcome.append(None)
        except OSError as exc:
            outcome.append(exc.strerror or str(exc) or type(exc).__name__)

    thread = threading.Thread(target=connect, daemon=True, name="rag-rerank-hub-probe")
    thread.start()
    thread.join(_PROBE_SECONDS + 0.5)
    return outcome[0] if outcome else f"no answer in {_PROBE_SECONDS:.0f} s"


def hub_unreachable() -> str | None:
    """Why the hub cannot be reached, or ``None`` when it can.

    One TCP connection to the hub's host, at most a few seconds, probed once per process and
    endpoint; ``HF_HUB_OFFLINE`` answers without a probe. Loading then uses the local cache only,
    instead of transformers' five retries with backoff (about 30 s).
    """
    if hub_offline():
        return "HF_HUB_OFFLINE is set"
    reason = _probe(hub_endpoint())
    return None if reason is None else f"cannot reach {hub_endpoint()} ({reason})"


def check_hub_model(model: str, revision: str | None = None) -> None:
    """Refuse a hub id at once when the hub cannot be reached (or ``HF_HUB_OFFLINE`` is set) and
    the model is not in the local Hugging Face cache; otherwise do nothing.

    Raises:
        ModelLoadError: One line: why the hub is out of reach, how to use a local folder and
            how to try the demo with the tiny test model.
    """
    if looks_like_path(model):
        return
    reason = hub_unreachable()
    if reason is None:
        return
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(model, "config.json", revision=revision)
    except Exception:  # a malformed id: let the loader say what is wrong with it
        return
    if not isinstance(cached, str):
        raise ModelLoadError(unreachable_message(model, reason))
