"""Several models behind one server: their names, the traffic split and the routing of a request.

A request names a model (the Cohere-shape ``model`` field, or the optional ``model`` of the TEI
shape) or not; one that does not is routed by the split's weights, sticky per caller when it
carries a key (``X-Rerank-Key``: a user or session id, hashed), random otherwise; without a split
it goes to the default model. Pure routing: no torch, no HTTP.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping
from typing import Generic, TypeVar

from ..errors import InvalidInputError, UnknownModelError

__all__ = [
    "KEY_HEADER",
    "MODEL_HEADER",
    "ModelRouter",
    "TrafficSplit",
    "UnknownModelError",
    "parse_split",
]

KEY_HEADER = "X-Rerank-Key"
"""Request header whose value (a user or session id) pins the caller to one side of a split."""

MODEL_HEADER = "X-Rerank-Model"
"""Response header naming the model that served the request."""

T = TypeVar("T")


def parse_split(text: str) -> dict[str, float]:
    """``"default=90,candidate=10"`` as ``{"default": 90.0, "candidate": 10.0}``.

    Raises:
        InvalidInputError: A part is not ``NAME=WEIGHT``, a weight is negative or not a number,
            a name repeats, or every weight is 0 (``field`` is ``split``).
    """
    weights: dict[str, float] = {}
    for part in text.split(","):
        name, sep, weight = part.strip().partition("=")
        if not sep or not name:
            raise InvalidInputError("split", f"expected NAME=WEIGHT, got {part.strip()!r}")
        try:
            value = float(weight)
        except ValueError:
            raise InvalidInputError("split", f"{name}: weight {weight!r} is not a number") from None
        if not value >= 0 or value == float("inf"):
            raise InvalidInputError("split", f"{name}: weight must be a finite number >= 0")
        if name in weights:
            raise InvalidInputError("split", f"{name} is given twice")
        weights[name] = value
    if not sum(weights.values()) > 0:
        raise InvalidInputError("split", "at least one weight must be above 0")
    return weights


class TrafficSplit:
    """Chooses a model by weight: the same key always gets the same model, no key a random one.

    Args:
        weights: Relative weights by model name (``{"default": 90, "candidate": 10}``).
    """

    def __init__(self, weights: Mapping[str, float]) -> None:
        total = sum(weights.values())
        self.weights = {name: weight / total for name, weight in weights.items()}
        self._names = list(self.weights)
        self._bounds: list[float] = []
        running = 0.0
        for name in self._names:
            running += self.weights[name]
            self._bounds.append(running)
        self._random = random.Random()

    def choose(self, key: str | None = None) -> str:
        """The model for a request: by the hash of ``key`` when given, else at random."""
        if key:
            digest = hashlib.sha256(key.encode("utf-8")).digest()
            point = int.from_bytes(digest[:8], "big") / 2**64  # uniform in [0, 1)
        else:
            point = self._random.random()
        for name, bound in zip(self._names, self._bounds, strict=True):
            if point < bound:
                return name
        return self._names[-1]  # rounding: the bounds may end a hair below 1.0


class ModelRouter(Generic[T]):
    """The served models by name, and which one answers each request.

    Args:
        models: What serves each model name (a :class:`~rag_rerank.Reranker` in the server), in
            order; the first is the default unless ``default`` says otherwise.
        default: The model for requests that name none, when there is no split.
        split: Weights by model name for requests that name no model.
        shadow: A model that also scores every request served by another one, off its path.

    Raises:
        InvalidInputError: No models, or ``default``, a split name or ``shadow`` is not served.
    """

    def __init__(
        self,
        models: Mapping[str, T],
        *,
        default: str | None = None,
        split: Mapping[str, float] | None = None,
        shadow: str | None = None,
    ) -> None:
        if not models:
            raise InvalidInputError("models", "serve at least one model")
        self.models = dict(models)
        self.names = list(self.models)
        self.default = self.names[0] if default is None else default
        self._check("default", self.default)
        self.split = None
        if split is not None:
            for name in split:
                self._check("split", name)
            self.split = TrafficSplit(split)
        if shadow is not None:
            self._check("shadow", shadow)
        self.shadow = shadow

    def _check(self, field: str, name: str) -> None:
        if name not in self.models:
            raise InvalidInputError(
                field, f"no model named {name!r}; served: {', '.join(self.names)}"
            )

    def route(self, requested: str | None, key: str | None = None) -> str:
        """The name of the model that serves a request.

        Args:
            requested: The model the request named, if any (one of :attr:`names`; with one model,
                its name is in ``/info``). A request that names none gets the default or the split.
            key: The caller's ``X-Rerank-Key``, for a sticky split.

        Raises:
            UnknownModelError: ``requested`` is not served (with one model or several alike).
        """
        if requested is not None:
            if requested in self.models:
                return requested
            raise UnknownModelError(requested, self.names)
        if self.split is not None:
            return self.split.choose(key)
        return self.default

    def __getitem__(self, name: str) -> T:
        return self.models[name]
