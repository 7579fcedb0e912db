"""What a model reference names: a local folder or a hub id, checked before anything loads.

Torch-free and fast, so the CLI can refuse ``--model ./typo`` before it imports torch, and the
core can refuse it before transformers turns a missing folder into a hub request.
"""

from __future__ import annotations

import functools
import os
import socket
import threading
from pathlib import Path
from urllib.parse import urlsplit

from ..errors import ModelLoadError

__all__ = [
    "TINY_MODEL_HINT",
    "check_hub_model",
    "check_model_reference",
    "hub_offline",
    "hub_unreachable",
    "looks_like_path",
    "no_folder_here",
    "unreachable_message",
]

TINY_MODEL_HINT = (
    "python -m rag_rerank.testing /tmp/rr-models && "
    "RAG_RERANK_MODEL=/tmp/rr-models/xlmr rag-rerank demo"
)
"""The command that runs the demo with a tiny random model built offline."""

_WEIGHTS = ("model.safetensors", "model.safetensors.index.json")
_TOKENIZER = ("tokenizer.json", "tokenizer.model", "sentencepiece.bpe.model", "vocab.txt")
_TRUE = {"1", "on", "yes", "true"}
_PROBE_SECONDS = 3.0


def looks_like_path(model: str) -> bool:
    """Whether ``model`` names a local folder rather than a hub id: it exists, starts with ``.``,
    ``/``, ``~`` (or a Windows drive or separator), or its parent folder (``models/`` in
    ``models/bge``) exists."""
    if model.startswith((".", "/", "~", "\\")) or (len(model) > 1 and model[1] == ":"):
        return True
    path = Path(model)
    if path.exists():
        return True
    return len(path.parts) > 1 and path.parent.is_dir()


def check_model_reference(model: str) -> str:
    """Refuse a path-like ``model`` that is not a model folder, without any network call, and
    return the reference to load: ``~`` expanded to the home folder, anything else as given.

    Every place that names a model (``--model``, ``$RAG_RERANK_MODEL``, ``Reranker(...)``,
    ``train``'s base and teacher) runs this one check. A hub id passes unchecked (see
    :func:`hub_unreachable`).

    Raises:
        ModelLoadError: ``no such folder: ./bge-reranker-v2-m3``, a file where a folder was
            expected, or a folder without ``config.json``, safetensors weights or a tokenizer
            (the message names the missing file).
    """
    if not looks_like_path(model):
        return model
    folder = Path(model).expanduser()
    if not folder.exists():
        raise ModelLoadError(f"no such folder: {model}")
    if not folder.is_dir():
        raise ModelLoadError(f"{model} is a file; --model / model= takes the model's folder")
    present = {p.name for p in folder.iterdir()}
    if "config.json" not in present:
        inside = sorted(p.name for p in folder.iterdir() if (p / "config.json").is_file())
        hint = f" (these folders in it have one: {', '.join(inside[:5])})" if inside else ""
        raise ModelLoadError(f"{model} is not a model folder: it has no config.json{hint}")
    if not present.intersection(_WEIGHTS):
        other = sorted(present.intersection({"pytorch_model.bin", "tf_model.h5", "model.onnx"}))
        found = f" (found {', '.join(other)}; rag-rerank reads safetensors only)" if other else ""
        raise ModelLoadError(
            f"{model} is not a model folder: it has no model.safetensors weights{found}"
        )
    if not present.intersection(_TOKENIZER):
        raise ModelLoadError(
            f"{model} is not a model folder: it has no tokenizer.json (the fast tokenizer)"
        )
    return str(folder)


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


def unreachable_message(model: str, reason: str) -> str:
    """One line: the hub cannot be reached, how to use a local folder, how to try the demo."""
    return (
        f"{reason}, and {model!r} is not in the local Hugging Face cache{no_folder_here(model)}. "
        f"{local_copy_hint(model)} "
        f"To try the demo without a download, use a tiny random test model: `{TINY_MODEL_HINT}`"
    )


def no_folder_here(model: str) -> str:
    """For a hub id that could also name a folder (``models/my-reranker``): that no such folder
    exists here, as a clause to append; ``""`` when the folder exists."""
    if Path(model).expanduser().exists():
        return ""
    return f", and there is no folder {model} here ({Path.cwd()})"


def local_copy_hint(model: str) -> str:
    """How to use a local copy of hub model ``model`` instead (one sentence)."""
    folder = "./" + model.rstrip("/").split("/")[-1]
    return (
        f"Point at a local copy of the model: --model {folder}, RAG_RERANK_MODEL={folder} or "
        f"Reranker({folder!r}) (get it where you have a network: "
        f"`hf download {model} --local-dir {folder}`)."
    )
