"""The process-wide instances of :meth:`Reranker.shared <rag_rerank.Reranker.shared>`: one per
set of options, and one engine (one loaded model) per set of load options, shared by the views
whose other options differ."""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from .engine import Engine

__all__ = ["SharedRerankers"]

R = TypeVar("R")


class SharedRerankers(Generic[R]):
    """Instances by their options' key, and the engines they run on by their load key.
    Thread-safe: one lock, held while a model loads (a second caller waits for the first)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._engines: dict[Hashable, Engine] = {}
        self._instances: dict[Hashable, tuple[R, Engine]] = {}

    def get(
        self,
        engine_key: Hashable,
        key: Hashable,
        load: Callable[[], Engine],
        view: Callable[[Engine], R],
    ) -> R:
        """The instance for ``key``: made on first use by ``view`` on the engine of
        ``engine_key``, which ``load`` makes when there is none or it died (a stalled one may
        recover and is kept)."""
        with self._lock:
            if key in self._instances:
                return self._instances[key][0]
            engine = self._engines.get(engine_key)
            if engine is None or not (engine.alive or engine.stalled):
                engine = self._engines[engine_key] = load()
            instance = view(engine)
            self._instances[key] = (instance, engine)
            return instance

    def forget(self, engine: Engine) -> None:
        """Drop ``engine`` and every instance on it (it is closing)."""
        with self._lock:
            for key, (_, used) in list(self._instances.items()):
                if used is engine:
                    del self._instances[key]
            for key, known in list(self._engines.items()):
                if known is engine:
                    del self._engines[key]
