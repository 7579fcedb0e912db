"""CPU work of one request off the event loop: cleaning, cache keys and JSON parsing of large
inputs run on one small, bounded thread pool, so that other clients' requests go on meanwhile.

Small inputs run inline: below :data:`OFF_LOOP_CHARS` a hop to a thread costs more than the
work. The pool has at most :data:`POOL_THREADS` threads whatever the number of requests (more
wait their turn in its queue). Imports no torch.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

__all__ = ["OFF_LOOP_CHARS", "POOL_THREADS", "run_off_loop"]

T = TypeVar("T")

OFF_LOOP_CHARS = 64 * 1024
"""Inputs of at least this many characters (or bytes) are worked on in the pool."""

POOL_THREADS = min(4, os.cpu_count() or 1)
"""Threads of the pool: a few, so that CPU work never takes every core from the model."""

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _the_pool() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(POOL_THREADS, thread_name_prefix="rag-rerank-cpu")
        return _pool


async def run_off_loop(size: int, function: Callable[..., T], *args: object) -> T:
    """``function(*args)``: in the pool when ``size`` (characters or bytes of the input) is at
    least :data:`OFF_LOOP_CHARS`, else inline. Cancelling the caller leaves the pool's work to
    finish (it is bounded by the input) and drops its result."""
    if size < OFF_LOOP_CHARS:
        return function(*args)
    return await asyncio.get_running_loop().run_in_executor(_the_pool(), function, *args)
