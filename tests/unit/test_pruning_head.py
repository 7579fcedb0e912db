"""The one-pass pruning head: a cross-encoder whose forward also gives every document token a
logit, loaded like any reranker, and the per-sentence scores averaged from those logits."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from rag_rerank import PruneOptions, Reranker
from rag_rerank.core.head import HEAD_FILE, PruningHeadModel
from rag_rerank.core.token_scores import TokenScores, sentence_scores
from rag_rerank.errors import ModelLoadError
from rag_rerank.testing import build_pruning_head

QUERY = "what do pandas eat"
DOCUMENTS = [
    "Pandas eat bamboo. They live in the mountains of China. The giant panda is a bear.",
    "A short one.",
    "Stock prices fell. Bamboo grows fast.",
]


@pytest.fixture(scope="module")
def head_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_pruning_head(tmp_path_factory.mktemp("head") / "bert-head")


def _reference(folder: Path, document: str) -> tuple[float, np.ndarray, np.ndarray]:
    """The relevance logit, document token logits and offsets from a plain transformers pass."""
    from safetensors.torch import load_file

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    head = load_file(str(folder / HEAD_FILE))
    encoded = tokenizer(QUERY, document, return_tensors="pt", return_offsets_mapping=True)
    offsets = encoded.pop("offset_mapping")[0].numpy()
    document_tokens = np.asarray([s == 1 for s in encoded.sequence_ids(0)])
    with torch.no_grad():
        out = model(**encoded, output_hidden_states=True)
    tokens = (out.hidden_states[-1][0] @ head["weight"][0] + head["bias"][0]).numpy()
    return float(out.logits[0, 0]), tokens[document_tokens], offsets[document_tokens]


@pytest.mark.parametrize("packed", [True, False])
def test_one_pass_gives_the_rerank_logit_and_token_logits(head_dir: Path, packed: bool) -> None:
    with Reranker(head_dir, device="cpu", dtype="fp32") as reranker:
        model = reranker.engine.model
        assert isinstance(model, PruningHeadModel)
        model.packed = packed  # the padded path is the GPU's
        future = reranker.engine.submit([QUERY] * 3, DOCUMENTS, max_length=512)
        logits = future.result()
        outputs = future.row_outputs  # type: ignore[attr-defined]
    assert outputs is not None and [len(windows) for windows in outputs] == [1, 1, 1]
    for i, document in enumerate(DOCUMENTS):
        logit, tokens, offsets = _reference(head_dir, document)
        (scores,) = outputs[i]
        assert logits[i] == pytest.approx(logit, abs=1e-4)
        np.testing.assert_allclose(scores.logits, tokens, atol=1e-4)
        np.testing.assert_array_equal(scores.offsets, offsets)


def test_scores_are_those_of_the_same_weights_without_the_head(
    head_dir: Path, tmp_path: Path
) -> None:
    plain = tmp_path / "plain"
    shutil.copytree(head_dir, plain)
    (plain / HEAD_FILE).unlink()
    config = json.loads((plain / "config.json").read_text())
    del config["reranker_kind"]
    (plain / "config.json").write_text(json.dumps(config))
    with Reranker(head_dir, device="cpu") as with_head, Reranker(plain, device="cpu") as without:
        assert type(without.engine.model).__name__ == "CrossEncoderModel"
        a = with_head.rerank(QUERY, DOCUMENTS)
        b = without.rerank(QUERY, DOCUMENTS)
    assert [r.index for r in a] == [r.index for r in b]
    assert [r.raw_score for r in a] == pytest.approx([r.raw_score for r in b], abs=1e-5)


def test_long_documents_give_one_token_row_per_window(head_dir: Path) -> None:
    long = " ".join(f"Sentence number {i} is about bamboo." for i in range(60))
    with Reranker(head_dir, device="cpu", max_length=64) as reranker:
        future = reranker.engine.submit([QUERY, QUERY], [long, long], max_length=64)
        future.result()
        outputs = future.row_outputs  # type: ignore[attr-defined]
    assert len(outputs) == 2 and len(outputs[0]) > 3  # repeated pairs share one run
    assert all(a is b for a, b in zip(outputs[0], outputs[1], strict=True))
    starts = [int(w.offsets[0, 0]) for w in outputs[0]]
    assert starts == sorted(starts) and starts[0] == 0
    assert outputs[0][-1].offsets[-1, 1] == len(long)


def test_a_missing_head_file_is_a_load_error(head_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(head_dir, broken)
    (broken / HEAD_FILE).unlink()
    with pytest.raises(ModelLoadError, match=r"pruning_head\.safetensors"):
        Reranker(broken, device="cpu")


def test_sentence_scores_average_the_tokens_that_start_inside() -> None:
    #           0123456789012345678901
    # text:    "Aa bb. Cc dd. Ee ff."   sentences (0,6) (7,13) (14,20)
    window = TokenScores(
        offsets=np.asarray([[0, 2], [3, 5], [5, 6], [7, 9], [10, 12], [12, 13]]),
        logits=np.asarray([1.0, 2.0, 3.0, -1.0, -3.0, -2.0], dtype=np.float32),
    )
    scores = sentence_scores([window], [(0, 6), (7, 13), (14, 20)])
    np.testing.assert_allclose(scores[:2], [2.0, -2.0])
    assert scores[2] == -np.inf  # no token: beyond the window
    second = TokenScores(np.asarray([[14, 16]]), np.asarray([4.0], dtype=np.float32))
    both = sentence_scores([window, second], [(0, 6), (7, 13), (14, 20)])
    np.testing.assert_allclose(both, [2.0, -2.0, 4.0])
    assert sentence_scores([], [(0, 6)]).tolist() == [-np.inf]
    assert sentence_scores([window], []).shape == (0,)


def _expected_kept(head_dir: Path, document: str, threshold: float = 0.5) -> list[tuple[int, int]]:
    """The sentences the head's reference token logits keep, selected as pruning selects."""
    from rag_rerank.api.pruning import select_sentences, split_sentences

    _, tokens, offsets = _reference(head_dir, document)
    spans = split_sentences(document)
    means = sentence_scores([TokenScores(offsets, tokens)], spans)
    chosen = select_sentences(
        (1 / (1 + np.exp(-means))).tolist(), PruneOptions(threshold=threshold)
    )
    return [spans[i] for i in chosen]


def test_prune_reads_the_head_of_the_ranking_pass_without_another(head_dir: Path) -> None:
    with Reranker(head_dir, device="cpu", cache=None) as reranker:
        pruned = reranker.rerank(QUERY, DOCUMENTS, prune=True)
        assert reranker.stats().pairs == len(DOCUMENTS)  # the ranking pass alone
        plain = reranker.rerank(QUERY, DOCUMENTS)
        best_only = reranker.rerank(QUERY, DOCUMENTS, prune=PruneOptions(threshold=1.0))
    assert [(r.index, r.raw_score) for r in pruned] == [(r.index, r.raw_score) for r in plain]
    assert all(r.pruned_text is None for r in plain)
    for result in pruned:
        assert result.kept_spans == tuple(_expected_kept(head_dir, result.document))
    long = next(r for r in best_only if r.index == 0)
    assert long.kept_spans == tuple(_expected_kept(head_dir, long.document, threshold=1.0))
    assert long.kept_spans is not None and len(long.kept_spans) == 1


def test_prune_with_the_head_on_every_path_agrees(head_dir: Path) -> None:
    import asyncio

    with Reranker(head_dir, device="cpu") as reranker:
        one = reranker.rerank(QUERY, DOCUMENTS, prune=True)
        many = reranker.rerank_many([QUERY, "bamboo"], [DOCUMENTS, DOCUMENTS], prune=True)
        async_one = asyncio.run(reranker.arerank(QUERY, DOCUMENTS, prune=True))
        # A view shares the score cache, not the token scores: ranked from the cache, the
        # passages to prune run once more, for their tokens.
        view = reranker.with_options(show_progress=False)
        before = reranker.stats().pairs
        from_cache = view.rerank(QUERY, DOCUMENTS, prune=True)
        assert reranker.stats().pairs - before == 2  # the two passages of several sentences
    spans = [r.kept_spans for r in one]
    assert [r.kept_spans for r in many[0]] == spans
    assert [r.kept_spans for r in async_one] == spans
    assert [r.kept_spans for r in from_cache] == spans


def test_method_picks_the_score_source(head_dir: Path, bert_dir: str) -> None:
    from rag_rerank.errors import InvalidInputError

    with Reranker(head_dir, device="cpu", cache=None) as reranker:
        reranker.rerank(QUERY, DOCUMENTS, prune=PruneOptions(method="head"))
        assert reranker.stats().pairs == len(DOCUMENTS)
        reranker.rerank(QUERY, DOCUMENTS, prune={"method": "sentences"})
        assert reranker.stats().pairs == 2 * len(DOCUMENTS) + 3 + 2  # and each sentence
    with Reranker(bert_dir, device="cpu") as plain, pytest.raises(InvalidInputError) as caught:
        plain.rerank(QUERY, DOCUMENTS, prune=PruneOptions(method="head"))
    assert caught.value.field == "prune.method" and "train --prune" in str(caught.value)
    with pytest.raises(InvalidInputError) as caught:
        PruneOptions(method="tokens")  # type: ignore[arg-type]
    assert caught.value.field == "prune.method"


def test_evaluate_pruning_measures_every_method(head_dir: Path) -> None:
    from rag_rerank.evaluation.pruning import evaluate_pruning, load_prune_set, measure_pruning

    examples = load_prune_set()[:6]
    with Reranker(head_dir, device="cpu") as reranker:
        runs = evaluate_pruning(reranker, examples, repeats=1)
        head = reranker.rerank_many(
            [e.question for e in examples], [[e.document] for e in examples], prune=True
        )
    assert [run.method for run in runs] == ["off", "sentences", "head"]
    off, _, one_pass = runs
    assert off.measures.tokens_removed == 0.0 and off.measures.answer_survival == 1.0
    assert one_pass.measures == measure_pruning(examples, [r[0].kept_spans for r in head])
    assert all(run.measures.questions == 6 and run.seconds > 0 for run in runs)
    assert runs[1].to_dict()["method"] == "sentences"


def test_cli_eval_prune_set_prints_every_method(
    head_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from rag_rerank.cli import main

    report = tmp_path / "prune.json"
    args = ["eval", "--prune-set", "--model", str(head_dir), "--device", "cpu"]
    assert main([*args, "--max-queries", "3", "--json", str(report)]) == 0
    out = capsys.readouterr().out
    assert "pruning on the demo set: 3 questions" in out
    for method in ("off", "sentences", "head"):
        assert f"\n{method} " in out
    written = json.loads(report.read_text())["prune_set"]
    assert [run["method"] for run in written] == ["off", "sentences", "head"]
    assert main(["eval", "--model", str(head_dir)]) == 2
    assert "--prune-set" in capsys.readouterr().err
