"""Agreement of two rankings (shared by ``compare`` and shadow scoring), and the pure parsing
and routing of several models: the split, the ``--model NAME=PATH`` flags, sizes."""

from __future__ import annotations

import argparse
import itertools
import random
import re

import pytest

from rag_rerank import InvalidInputError
from rag_rerank.cli.models import model_specs, parse_size
from rag_rerank.evaluation.agreement import (
    Agreement,
    AgreementSummary,
    agreement,
    kendall_tau,
    top1_agreement,
    top_k_overlap,
)


def _tau_by_pairs(a: list[int], b: list[int]) -> float:
    """Kendall tau from its definition: (concordant - discordant) / pairs."""
    where = {x: i for i, x in enumerate(b)}
    signs = [1 if where[x] < where[y] else -1 for x, y in itertools.combinations(a, 2)]
    return sum(signs) / len(signs)


def test_same_and_reversed_rankings() -> None:
    order = [3, 1, 4, 0, 2, 5]
    assert agreement(order, order) == Agreement(1.0, 1.0, 1.0)
    reverse = order[::-1]
    assert kendall_tau(order, reverse) == -1.0
    assert top1_agreement(order, reverse) == 0.0
    assert top_k_overlap(order, reverse, 5) == pytest.approx(4 / 5)  # 6 documents: 4 shared


@pytest.mark.parametrize("n", [2, 3, 7, 50, 301])
def test_kendall_tau_matches_its_definition(n: int) -> None:
    rng = random.Random(n)
    a = list(range(n))
    for _ in range(5):
        b = a[:]
        rng.shuffle(b)
        assert kendall_tau(a, b) == pytest.approx(_tau_by_pairs(a, b), abs=1e-12)


def test_short_rankings_and_keys_of_any_kind() -> None:
    assert kendall_tau([], []) == kendall_tau(["x"], ["x"]) == 1.0
    assert top_k_overlap([], []) == top1_agreement([], []) == 1.0
    assert top_k_overlap(["a", "b"], ["b", "a"], 5) == 1.0  # fewer than k: out of what exists
    assert top_k_overlap(["a", "b", "c"], ["c", "a", "b"], 1) == 0.0


def test_rankings_of_different_documents_are_refused() -> None:
    with pytest.raises(InvalidInputError, match=r"^b: must rank the same documents as a"):
        kendall_tau([0, 1, 2], [0, 1, 3])
    with pytest.raises(InvalidInputError, match=r"^b: "):
        kendall_tau([0, 0, 1], [0, 1, 0])
    with pytest.raises(InvalidInputError, match=r"^k: must be at least 1"):
        top_k_overlap([0], [0], 0)


def test_summary_means() -> None:
    summary = AgreementSummary()
    assert summary.mean() is None
    summary.add(Agreement(1.0, 1.0, 1.0))
    summary.add(Agreement(0.0, 0.6, -0.2))
    assert summary.count == 2
    assert summary.mean() == pytest.approx(Agreement(0.5, 0.8, 0.4))


# -- the split and the model flags --------------------------------------------------------------


def test_parse_split() -> None:
    from rag_rerank.server.models import parse_split

    assert parse_split("default=90, candidate=10") == {"default": 90.0, "candidate": 10.0}
    for bad, message in (
        ("default", "expected NAME=WEIGHT"),
        ("a=x", "a: weight 'x' is not a number"),
        ("a=-1", "a: weight must be a finite number >= 0"),
        ("a=1,a=2", "a is given twice"),
        ("a=0,b=0", "at least one weight must be above 0"),
    ):
        with pytest.raises(InvalidInputError, match=rf"^split: .*{re.escape(message)}"):
            parse_split(bad)


def test_router_routes_by_name_split_or_default() -> None:
    from rag_rerank.server.models import ModelRouter, UnknownModelError

    router = ModelRouter({"a": 1, "b": 2}, split={"a": 0, "b": 1})
    assert router.route("a") == "a"
    assert {router.route(None, key) for key in ("k1", "k2", None)} == {"b"}
    with pytest.raises(UnknownModelError, match=r"^model: no model named 'c'; served: a, b"):
        router.route("c")
    # One model: its own name reaches it, any other is refused like with several (issue 27).
    assert ModelRouter({"only": 1}).route("only") == "only"
    with pytest.raises(
        UnknownModelError, match=r"no model named 'rerank-english-v3.0'; served: only"
    ):
        ModelRouter({"only": 1}).route("rerank-english-v3.0")


def test_model_specs(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    odd = tmp_path / "a=b"
    odd.mkdir()
    assert model_specs(["default=org/model", "cand=./x", "plain/id", str(odd)]) == {
        "default": "org/model",
        "cand": "./x",
        "plain/id": "plain/id",
        str(odd): str(odd),  # a folder whose name holds "=" is a folder
    }
    monkeypatch.setenv("RAG_RERANK_MODEL", "env/model")
    assert model_specs(None) == {"env/model": "env/model"}
    with pytest.raises(argparse.ArgumentTypeError, match="the name 'a' is given twice"):
        model_specs(["a=x", "a=y"])
    with pytest.raises(argparse.ArgumentTypeError, match="expected NAME=PATH_OR_ID"):
        model_specs(["a="])


def test_parse_size() -> None:
    assert parse_size("512MB") == 512 * 10**6
    assert parse_size("2GiB") == 2 * 2**30
    assert parse_size("1000") == 1000
    with pytest.raises(ValueError, match="expected a size such as 512MB"):
        parse_size("lots")
