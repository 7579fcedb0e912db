"""The engine's stall watchdog: a forward pass that runs past its time limit (a hung model) fails
its callers and the queued ones, since the worker, stuck inside the model, cannot."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from ..errors import EngineStalledError
from .jobs import EngineStats
from .passes import ForwardPasses

__all__ = ["DEFAULT_STALL_SECONDS", "StallWatchdog"]

logger = logging.getLogger(__name__)

DEFAULT_STALL_SECONDS = 60.0
"""A forward pass running longer than this (seconds) means the model is taken for hung."""

_WATCH_EVERY = 0.25  # seconds between the stall watchdog's looks


class StallWatchdog:
    """Watches ``passes``: once per pass that runs longer than :attr:`timeout` seconds, counts
    it in ``stats`` and calls ``fail`` with an :class:`~rag_rerank.errors.EngineStalledError`.

    Attributes:
        timeout: Seconds one forward pass may run; ``None`` never counts as stalled.
    """

    def __init__(
        self,
        passes: ForwardPasses,
        stats: EngineStats,
        timeout: float | None,
        fail: Callable[[EngineStalledError], None],
    ) -> None:
        self.timeout = timeout
        self._passes = passes
        self._stats = stats
        self._stopped = threading.Event()
        # ``fail`` (the engine's) goes to the thread, which drops it when it ends: nothing here
        # keeps a stopped engine alive.
        self._thread = threading.Thread(
            target=self._watch, args=(fail,), name="rag-rerank-engine-watchdog", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop watching (the engine's worker has stopped, or is stopping)."""
        self._stopped.set()

    @property
    def stalled(self) -> bool:
        """A forward pass has run longer than :attr:`timeout` seconds (and still runs)."""
        started = self._passes.started
        limit = self.timeout
        return started is not None and limit is not None and time.monotonic() - started > limit

    def message(self) -> str:
        return f"the model has been running one batch for over {self.timeout:g} s; it may be hung"

    def _watch(self, fail: Callable[[EngineStalledError], None]) -> None:
        failed_pass: float | None = None
        while not self._stopped.wait(_WATCH_EVERY):
            started = self._passes.started
            if started is None or started == failed_pass or not self.stalled:
                continue
            failed_pass = started
            self._stats.stalls += 1
            logger.error(self.message())
            fail(EngineStalledError(self.message()))
