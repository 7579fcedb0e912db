"""How much two rankings of the same documents agree: top-1 agreement, top-k overlap and Kendall
tau. Pure functions on rankings (document keys, best first); shared by ``rag-rerank compare``
(offline, on labelled data) and the server's shadow scoring (online, on live traffic).

>>> agreement([2, 0, 1, 3], [2, 1, 0, 3])
Agreement(top1=1.0, top5_overlap=1.0, kendall_tau=0.6666666666666667)
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

from ..errors import InvalidInputError

__all__ = [
    "Agreement",
    "AgreementSummary",
    "agreement",
    "kendall_tau",
    "top1_agreement",
    "top_k_overlap",
]


def top1_agreement(a: Sequence[Hashable], b: Sequence[Hashable]) -> float:
    """1.0 when both rankings put the same document first, else 0.0 (1.0 for two empty ones)."""
    if not a or not b:
        return float(len(a) == len(b))
    return float(a[0] == b[0])


def top_k_overlap(a: Sequence[Hashable], b: Sequence[Hashable], k: int = 5) -> float:
    """Share of the top ``k`` documents the rankings have in common: ``|A@k & B@k| / min(k, n)``,
    where ``n`` is the longer ranking's length (1.0 for two empty rankings)."""
    if k < 1:
        raise InvalidInputError("k", f"must be at least 1, got {k}")
    depth = min(k, max(len(a), len(b)))
    if depth == 0:
        return 1.0
    return len(set(a[:k]) & set(b[:k])) / depth


def kendall_tau(a: Sequence[Hashable], b: Sequence[Hashable]) -> float:
    """Kendall rank correlation of two orderings of the same documents, in [-1, 1].

    1.0 for the same order, -1.0 for the reverse; 1.0 for fewer than two documents. Counts
    discordant pairs by merge sort (O(n log n)), so a thousand documents cost a few milliseconds.

    Raises:
        InvalidInputError: The rankings do not hold the same documents, or name one twice
            (``field`` is ``b``).
    """
    position = {key: i for i, key in enumerate(a)}
    if len(position) != len(a) or len(b) != len(a) or set(b) != position.keys():
        raise InvalidInputError("b", "must rank the same documents as a, each once")
    n = len(a)
    if n < 2:
        return 1.0
    discordant = _inversions([position[key] for key in b])
    pairs = n * (n - 1) // 2
    return 1.0 - 2.0 * discordant / pairs


def _inversions(values: list[int]) -> int:
    """Pairs ``i < j`` with ``values[i] > values[j]`` (bottom-up merge sort)."""
    count = 0
    width = 1
    items = list(values)
    n = len(items)
    while width < n:
        merged: list[int] = []
        for start in range(0, n, 2 * width):
            left = items[start : start + width]
            right = items[start + width : start + 2 * width]
            i = j = 0
            while i < len(left) and j < len(right):
                if left[i] <= right[j]:
                    merged.append(left[i])
                    i += 1
                else:
                    merged.append(right[j])
                    count += len(left) - i  # every left item still waiting is greater
                    j += 1
            merged += left[i:]
            merged += right[j:]
        items = merged
        width *= 2
    return count


@dataclass(frozen=True, slots=True)
class Agreement:
    """The agreement of two rankings of one query.

    Attributes:
        top1: 1.0 when both put the same document first, else 0.0.
        top5_overlap: Share of the top 5 in common.
        kendall_tau: Rank correlation of the full orderings, in [-1, 1].
    """

    top1: float
    top5_overlap: float
    kendall_tau: float


def agreement(a: Sequence[Hashable], b: Sequence[Hashable]) -> Agreement:
    """:func:`top1_agreement`, :func:`top_k_overlap` at 5 and :func:`kendall_tau` of two full
    rankings of the same documents."""
    return Agreement(top1_agreement(a, b), top_k_overlap(a, b, 5), kendall_tau(a, b))


class AgreementSummary:
    """Running means of :class:`Agreement` over queries (not thread-safe: the caller locks)."""

    def __init__(self) -> None:
        self.count = 0
        self._sums = [0.0, 0.0, 0.0]

    def add(self, value: Agreement) -> None:
        """Count one query's agreement."""
        self.count += 1
        for i, x in enumerate((value.top1, value.top5_overlap, value.kendall_tau)):
            self._sums[i] += x

    def mean(self) -> Agreement | None:
        """The mean over the queries added so far; ``None`` before the first."""
        if not self.count:
            return None
        top1, top5, tau = (total / self.count for total in self._sums)
        return Agreement(top1, top5, tau)
