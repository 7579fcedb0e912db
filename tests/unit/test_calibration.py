"""Calibration: fitting (Platt, isotonic), its metrics, the threshold table, the file, the option
in the core reranker, and every bad input the issue names."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from rag_rerank import CalibrationError, InvalidInputError, Reranker, RerankerOptions
from rag_rerank.api import Calibration
from rag_rerank.evaluation.calibration import (
    LabelledPair,
    expected_calibration_error,
    fit_calibration,
    load_labels,
    pair_logits,
    recommend_threshold,
    threshold_table,
)

A, B = 2.0, -0.5  # the known logistic the synthetic labels are drawn from
WORDS = (
    "apple bear city river mountain panda bamboo ocean tree stone light music paper glass "
    "winter summer bank loan money interest"
).split()
QUERY = "what do pandas eat"
DOCS = ["The giant panda eats bamboo.", "Apple released a phone.", "Pandas eat bamboo shoots."]


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))


@pytest.fixture(scope="module")
def rr(bert_dir: str) -> Reranker:
    reranker = Reranker(bert_dir, show_progress=False)
    yield reranker
    reranker.close()


@pytest.fixture(scope="module")
def synthetic(rr: Reranker) -> tuple[np.ndarray, list[LabelledPair]]:
    """2,000 pairs of the tiny model, labelled by a draw from P = sigmoid(A * logit + B)."""
    rng = np.random.default_rng(0)
    pairs = []
    for _ in range(100):
        query = " ".join(rng.choice(WORDS, 3))
        pairs += [LabelledPair(query, " ".join(rng.choice(WORDS, 6)), 0) for _ in range(20)]
    logits = pair_logits(rr, pairs)
    labels = (rng.random(len(pairs)) < _sigmoid(A * logits + B)).astype(int)
    labelled = [
        LabelledPair(p.query, p.document, int(y)) for p, y in zip(pairs, labels, strict=True)
    ]
    return logits, labelled


def fitted_file(tmp_path: Path, model: str, a: float = A, b: float = B, **extra) -> str:
    calibration = Calibration(
        model=model, method="platt", parameters={"a": a, "b": b}, threshold=0.5, **extra
    )
    return str(calibration.save(tmp_path / "calibration.json"))


# -- fitting ------------------------------------------------------------------------------------


def test_platt_recovers_the_known_logistic_and_ece_falls(synthetic, rr) -> None:
    logits, pairs = synthetic
    assert logits.std() > 0.5  # the tiny model's logits spread enough to fit on
    fit = fit_calibration(logits, pairs, reranker=rr, holdout=0.2)
    a, b = fit.calibration.parameters["a"], fit.calibration.parameters["b"]
    assert a == pytest.approx(A, abs=0.3) and b == pytest.approx(B, abs=0.2)
    metrics = fit.calibration.metrics
    assert metrics["ece_after"] < metrics["ece_before"]
    assert metrics["brier_after"] < metrics["brier_before"]
    assert metrics["measured_on"] == "holdout" and 0 < metrics["holdout_pairs"] < len(pairs)
    assert fit.calibration.labels == len(pairs)
    assert fit.calibration.max_length == rr.max_length
    assert fit.calibration.long_documents == "windows"


def test_isotonic_is_monotone_and_calibrates(synthetic, rr) -> None:
    logits, pairs = synthetic
    fit = fit_calibration(logits, pairs, reranker=rr, method="isotonic")
    grid = np.linspace(logits.min() - 1, logits.max() + 1, 500)
    probabilities = fit.calibration.probabilities(grid)
    assert np.all(np.diff(probabilities) >= 0)
    assert probabilities.min() >= 0.0 and probabilities.max() <= 1.0
    assert fit.calibration.metrics["ece_after"] < fit.calibration.metrics["ece_before"]


def test_holdout_is_whole_queries_and_fixed(synthetic, rr) -> None:
    logits, pairs = synthetic
    first = fit_calibration(logits, pairs, reranker=rr)
    again = fit_calibration(logits, pairs, reranker=rr)
    assert first.calibration.parameters == again.calibration.parameters
    assert np.array_equal(first.holdout_labels, again.holdout_labels)


def test_ece_of_a_hand_case() -> None:
    # bins [0.1, 0.2) holds 0.1, 0.1 (labels 0, 1): |0.1 - 0.5| = 0.4, weight 1/2;
    # bin [0.9, 1.0] holds 0.9, 0.9 (labels 1, 1): |0.9 - 1| = 0.1, weight 1/2.
    assert expected_calibration_error([0.1, 0.1, 0.9, 0.9], [0, 1, 1, 1]) == pytest.approx(0.25)


# -- the threshold table ------------------------------------------------------------------------

SCORES = [0.9, 0.6, 0.3, 0.8, 0.2, 0.1]
LABELS = [1, 0, 1, 1, 0, 0]
QUERIES = ["q1", "q1", "q1", "q2", "q2", "q3"]


def test_threshold_table_matches_a_hand_computation() -> None:
    rows = {r.threshold: r for r in threshold_table(SCORES, LABELS, QUERIES, [0.25, 0.5, 0.95])}
    # t=0.25: keeps 0.9(1) 0.6(0) 0.3(1) | 0.8(1) | nothing of q3: 4 kept, 3 hits, 3 positives.
    row = rows[0.25]
    assert row.kept_per_query == pytest.approx(4 / 3)
    assert row.precision == pytest.approx(3 / 4) and row.recall == pytest.approx(1.0)
    assert row.f1 == pytest.approx(2 * 0.75 / 1.75)
    assert row.queries_without_passage == pytest.approx(1 / 3)
    # t=0.5: keeps 0.9(1) 0.6(0) | 0.8(1): 3 kept, 2 hits.
    row = rows[0.5]
    assert (row.kept_per_query, row.precision, row.recall) == pytest.approx((1.0, 2 / 3, 2 / 3))
    assert row.queries_without_passage == pytest.approx(1 / 3)
    # t=0.95: nothing kept.
    row = rows[0.95]
    assert (row.kept_per_query, row.precision, row.recall, row.f1) == (0.0, 0.0, 0.0, 0.0)
    assert row.queries_without_passage == 1.0


def test_recommended_thresholds_meet_their_targets() -> None:
    # F1 by cut: 0.9 -> 0.5, 0.8 -> 0.8, 0.6 -> 0.667, 0.3 -> 0.857, 0.2 -> 0.75, 0.1 -> 0.667
    assert recommend_threshold(SCORES, LABELS, QUERIES, "f1") == 0.3
    assert recommend_threshold(SCORES, LABELS, QUERIES, "recall=0.6") == 0.8
    assert recommend_threshold(SCORES, LABELS, QUERIES, "recall=1") == 0.3
    assert recommend_threshold(SCORES, LABELS, QUERIES, "precision=1") == 0.8
    with pytest.raises(InvalidInputError, match="target"):
        recommend_threshold(SCORES, LABELS, QUERIES, "accuracy")


def test_unreachable_precision_says_so() -> None:
    with pytest.raises(CalibrationError, match="no threshold reaches precision"):
        recommend_threshold([0.9, 0.8], [0, 1], ["q", "q"], "precision=0.9")


# -- bad input ----------------------------------------------------------------------------------


def _write(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "labels.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _row(query: str = "q", document: str = "d", label: object = 1) -> str:
    return json.dumps({"query": query, "document": document, "label": label})


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (_row(label=2), "'label' must be 0 or 1, got 2"),
        (_row(label="1"), "'label' must be 0 or 1"),
        (_row(label=True), "'label' must be 0 or 1"),
        (json.dumps({"query": "q", "label": 1}), "'document' must be a non-empty string"),
        (_row(document=" "), "'document' must be a non-empty string"),
        (_row(query=""), "'query' must be a non-empty string"),
        ("{not json", "not JSON"),
        ("[1, 2]", "expected"),
    ],
)
def test_bad_label_lines_name_file_and_line(tmp_path: Path, bad: str, message: str) -> None:
    path = _write(tmp_path, [_row(), "", bad])
    with pytest.raises(CalibrationError, match=message) as caught:
        load_labels(path)
    assert caught.value.line == 3 and caught.value.path == path
    assert f"{path}, line 3:" in str(caught.value)


def test_unreadable_and_empty_label_files(tmp_path: Path) -> None:
    with pytest.raises(CalibrationError, match="cannot read") as caught:
        load_labels(tmp_path / "missing.jsonl")
    assert "missing.jsonl" in str(caught.value)
    with pytest.raises(CalibrationError, match="no labelled pairs"):
        load_labels(_write(tmp_path, [""]))


def test_one_class_cannot_be_fitted() -> None:
    pairs = [LabelledPair(f"q{i}", "d", 1) for i in range(30)]
    with pytest.raises(CalibrationError, match=r"all 30 labels are 1.*cannot fit"):
        fit_calibration(np.linspace(-1, 1, 30), pairs, model="m")


def test_few_labels_warn_that_the_fit_is_unreliable() -> None:
    pairs = [LabelledPair(f"q{i}", "d", i % 2) for i in range(10)]
    with pytest.warns(UserWarning, match=r"only 10 labelled pairs.*unreliable"):
        fit_calibration(np.linspace(-1, 1, 10), pairs, model="m", holdout=0.0)


def test_bad_calibration_files_name_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text('{\n  "format": "rag-rerank-calibration",\n  oops\n}', encoding="utf-8")
    with pytest.raises(CalibrationError, match="not JSON") as caught:
        Calibration.load(path)
    assert caught.value.line == 3 and str(path) in str(caught.value)
    path.write_text('{"hello": 1}', encoding="utf-8")
    with pytest.raises(CalibrationError, match="not a rag-rerank calibration file"):
        Calibration.load(path)
    good = json.loads(Path(fitted_file(tmp_path, "m")).read_text())
    path.write_text(json.dumps({**good, "parameters": {"a": "x", "b": 0}}), encoding="utf-8")
    with pytest.raises(CalibrationError, match=r"c\.json: parameters\.a must be a finite number"):
        Calibration.load(path)
    with pytest.raises(CalibrationError, match="cannot read"):
        Calibration.load(tmp_path / "nope.json")


# -- the calibrated core reranker ---------------------------------------------------------------


def test_calibrated_reranker_scores_are_the_fitted_logistic(rr, bert_dir, tmp_path) -> None:
    path = fitted_file(tmp_path, bert_dir)
    calibrated = rr.with_options(calibration=path)
    assert calibrated.options.calibration == path and calibrated.calibration is not None
    logits = np.asarray([r.raw_score for r in sorted(rr.rerank(QUERY, DOCS), key=_index)])
    expected = _sigmoid(A * logits + B)
    assert calibrated.score(QUERY, DOCS) == pytest.approx(expected.tolist(), abs=1e-6)
    results = calibrated.rerank(QUERY, DOCS)
    for r in results:
        assert r.raw_score == pytest.approx(logits[r.index], abs=1e-6)  # still the logit
        assert r.score == pytest.approx(expected[r.index], abs=1e-6)
    pairs = [(QUERY, d) for d in DOCS]
    assert calibrated.score_pairs(pairs) == pytest.approx(expected.tolist(), abs=1e-6)
    many = calibrated.rerank_many([QUERY], [DOCS])[0]
    assert [r.score for r in many] == [r.score for r in results]
    # The threshold compares with the calibrated score; "calibrated" is the file's (0.5).
    kept = calibrated.rerank(QUERY, DOCS, threshold="calibrated")
    assert [r.index for r in kept] == [r.index for r in results if r.score >= 0.5]
    assert calibrated.rerank_many([QUERY], [DOCS], threshold="calibrated") == [kept]


async def test_calibrated_async_twins(rr, bert_dir, tmp_path) -> None:
    calibrated = rr.with_options(calibration=fitted_file(tmp_path, bert_dir))
    assert await calibrated.ascore(QUERY, DOCS) == calibrated.score(QUERY, DOCS)
    assert await calibrated.arerank(QUERY, DOCS, threshold="calibrated") == calibrated.rerank(
        QUERY, DOCS, threshold="calibrated"
    )


def test_constructor_option_and_shared(bert_dir, tmp_path) -> None:
    path = fitted_file(tmp_path, bert_dir)
    with Reranker(bert_dir, calibration=path, show_progress=False) as calibrated:
        plain = Reranker.shared(bert_dir, show_progress=False)
        assert calibrated.score(QUERY, DOCS) != plain.score(QUERY, DOCS)
        shared = Reranker.shared(bert_dir, show_progress=False, calibration=path)
        assert shared.engine is plain.engine  # a view: one model in memory
        assert shared.score(QUERY, DOCS) == pytest.approx(calibrated.score(QUERY, DOCS))


def test_calibration_for_another_model_is_refused_naming_both(rr, bert_dir, tmp_path) -> None:
    path = fitted_file(tmp_path, "BAAI/bge-reranker-v2-m3")
    with pytest.raises(CalibrationError) as caught:
        rr.with_options(calibration=path)
    assert "'BAAI/bge-reranker-v2-m3'" in str(caught.value) and bert_dir in str(caught.value)
    path = fitted_file(tmp_path, bert_dir, revision="v1")
    with pytest.raises(CalibrationError, match="revision 'v1', not 'v2'"):
        Reranker(bert_dir, revision="v2", calibration=path)


def test_other_window_settings_warn(rr, bert_dir, tmp_path) -> None:
    path = fitted_file(tmp_path, bert_dir, max_length=64, long_documents="windows")
    with pytest.warns(UserWarning, match="max_length=64"):
        rr.with_options(calibration=path)


def test_calibrated_threshold_needs_a_calibration(rr, bert_dir, tmp_path) -> None:
    with pytest.raises(InvalidInputError, match="'calibrated' needs a calibrated reranker"):
        rr.rerank(QUERY, DOCS, threshold="calibrated")
    with pytest.raises(InvalidInputError, match="'calibrated' needs"):
        rr.rerank(QUERY, [], threshold="calibrated")  # refused even with nothing to rank
    no_threshold = Calibration(model=bert_dir, method="platt", parameters={"a": 1, "b": 0})
    path = no_threshold.save(tmp_path / "none.json")
    with pytest.raises(InvalidInputError, match="recommends no threshold"):
        rr.with_options(calibration=path).rerank(QUERY, DOCS, threshold="calibrated")
    with pytest.raises(InvalidInputError, match="threshold"):
        rr.rerank(QUERY, DOCS, threshold="calibrate")


def test_calibration_option_is_checked() -> None:
    assert RerankerOptions(calibration=Path("c.json")).calibration == "c.json"
    assert "calibration" in RerankerOptions.view_names()
    with pytest.raises(InvalidInputError, match="calibration"):
        RerankerOptions(calibration="  ")
    with pytest.raises(InvalidInputError, match="calibration"):
        RerankerOptions(calibration=3)  # type: ignore[arg-type]


def test_importing_the_package_loads_no_sklearn_or_matplotlib() -> None:
    import subprocess
    import sys

    code = (
        "import sys, rag_rerank, rag_rerank.api, rag_rerank.cli; rag_rerank.cli.build_parser(); "
        "print([m for m in ('torch', 'sklearn', 'matplotlib') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def _index(result) -> int:
    return result.index


def test_platt_saturates_without_overflow() -> None:
    calibration = Calibration(model="m", method="platt", parameters={"a": 10.0, "b": 0.0})
    assert calibration.scores([-1e4, 0.0, 1e4]) == [0.0, 0.5, 1.0]
    assert not any(math.isnan(s) for s in calibration.scores([-1e4, 1e4]))
