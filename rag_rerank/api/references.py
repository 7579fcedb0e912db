"""What a model reference names: a local folder or a hub id, checked before anything loads, and
the lines that say how to get a model when the hub is out of reach.

Pure and fast (no network, no torch), so the CLI can refuse ``--model ./typo`` before it imports
torch, and the core can refuse it before transformers turns a missing folder into a hub request.
Whether the hub can be reached is probed in :mod:`rag_rerank.core.hub`.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ModelLoadError

__all__ = [
    "TINY_MODEL_HINT",
    "check_model_reference",
    "local_copy_hint",
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
    :func:`~rag_rerank.core.hub.hub_unreachable`).

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
