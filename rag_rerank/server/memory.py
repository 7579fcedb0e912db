"""Will every model fit? The start-up memory check of a server that loads several models.

Each model's need is estimated before it loads, from its safetensors headers (parameter count x
bytes per parameter at the serving dtype) plus a working margin for activations and the
allocator; the device's free memory (:func:`rag_rerank.core.device.free_memory`) or an explicit
limit must cover the sum. A server that cannot fit them all stops with a message
saying how much each needs, instead of dying of out-of-memory on its first requests.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Mapping
from pathlib import Path

from ..errors import InsufficientMemoryError

__all__ = [
    "WORKING_MARGIN",
    "InsufficientMemoryError",
    "check_memory",
    "model_need",
    "weight_bytes",
]

WORKING_MARGIN = 0.25
"""Share added to the weights for activations, the tokenizer and the allocator's slack."""

_DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}


def weight_bytes(folder: str | os.PathLike[str], dtype: str) -> int | None:
    """Bytes of the model's weights at ``dtype`` (``float32``, ``float16``, ``bfloat16``), from the
    headers of the folder's ``*.safetensors`` files; ``None`` when it has none."""
    files = sorted(Path(folder).glob("*.safetensors"))
    if not files:
        return None
    parameters = 0
    for path in files:
        with path.open("rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
            header = json.loads(handle.read(length))
        for name, tensor in header.items():
            if name == "__metadata__":
                continue
            count = 1
            for size in tensor["shape"]:
                count *= size
            parameters += count
    return parameters * _DTYPE_BYTES.get(dtype, 4)


def local_folder(reference: str, revision: str | None = None) -> str | None:
    """The folder holding ``reference``'s files: itself when it is a folder, else the hub
    cache's snapshot (never downloads); ``None`` when neither is on disk."""
    if os.path.isdir(reference):
        return reference
    try:
        from huggingface_hub import snapshot_download

        return str(
            snapshot_download(
                reference,
                revision=revision,
                local_files_only=True,
                allow_patterns=["*.safetensors", "*.json"],
            )
        )
    except Exception:  # not cached, or not a hub id: the load itself will say why
        return None


def check_memory(needs: Mapping[str, int | None], available: int | None, where: str) -> None:
    """Raise unless ``available`` bytes cover every model's need.

    Args:
        needs: Bytes each model needs, by model name (``None``: unknown, not counted).
        available: Bytes free (or the limit); ``None`` skips the check.
        where: The device or limit, for the message.

    Raises:
        InsufficientMemoryError: The known needs add up to more than ``available``; the
            message lists each model's need.
    """
    known = {name: need for name, need in needs.items() if need is not None}
    total = sum(known.values())
    if available is None or total <= available:
        return
    each = ", ".join(f"{name} needs {_mib(need)}" for name, need in known.items())
    raise InsufficientMemoryError(
        f"the models do not fit in {where}: {each}; {_mib(total)} in all, {_mib(available)} "
        "available. Serve fewer models, a lower --dtype, or another device."
    )


def model_need(reference: str, revision: str | None, dtype: str) -> int | None:
    """Estimated bytes to serve one model: its weights at ``dtype`` plus :data:`WORKING_MARGIN`;
    ``None`` when its weights are not on disk yet."""
    folder = local_folder(reference, revision)
    weights = None if folder is None else weight_bytes(folder, dtype)
    return None if weights is None else int(weights * (1 + WORKING_MARGIN))


def _mib(size: int) -> str:
    return f"{size / 2**20:.1f} MiB"
