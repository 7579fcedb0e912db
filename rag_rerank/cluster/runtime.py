"""Start a local Ray instance or join a cluster; fail fast on an address nobody answers."""

from __future__ import annotations

import socket
from typing import Any

from ..errors import RayUnreachableError

try:
    import ray
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        'rag_rerank.cluster needs Ray Serve and Ray Data: pip install "rag-rerank[ray]"'
    ) from exc

__all__ = ["RayUnreachableError", "connect"]

CONNECT_TIMEOUT = 5.0
"""Seconds to wait for a cluster's address to answer before giving up."""


def connect(address: str | None = None, *, num_cpus: int | None = None, **init: Any) -> bool:
    """Make sure this process is connected to Ray; returns whether this call started Ray.

    Args:
        address: ``None`` starts a local instance (unless already connected); ``"auto"`` joins
            the cluster this machine belongs to; ``host:port`` (a head node's GCS) or
            ``ray://host:port`` (Ray Client) joins that cluster. A ``host:port`` is checked
            first, so an address nobody answers fails in seconds instead of hanging.
        num_cpus: CPUs of a local instance (default: all of them).
        **init: Further ``ray.init`` keywords.

    Raises:
        RayUnreachableError: Nothing answers at ``address`` within :data:`CONNECT_TIMEOUT`.
    """
    if ray.is_initialized():
        return False
    if address is None:
        ray.init(num_cpus=num_cpus, include_dashboard=False, **init)
        return True
    if address != "auto":
        _check_reachable(address)
    try:
        ray.init(address=address, **init)
    except ConnectionError as exc:
        raise RayUnreachableError(address, str(exc).splitlines()[0]) from exc
    return False


def _check_reachable(address: str) -> None:
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise RayUnreachableError(address, "expected host:port, ray://host:port or auto")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT):
            pass
    except OSError as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else exc.strerror or str(exc)
        raise RayUnreachableError(
            address, f"cannot reach a Ray cluster there ({reason.lower()})"
        ) from None
