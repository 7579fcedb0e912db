"""The BEIR loader: what it keeps, and a clear error naming file and line for each bad input."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from rag_rerank.errors import RerankError
from rag_rerank.evaluation import BeirDocument, DatasetError, load_beir

SAMPLE = Path(__file__).parents[1] / "data" / "beir_sample"


@pytest.fixture()
def dataset_dir(tmp_path: Path) -> Path:
    """A writable copy of the sample dataset, to break."""
    return Path(shutil.copytree(SAMPLE, tmp_path / "sample"))


def test_sample_loads_with_graded_relevance() -> None:
    dataset = load_beir(SAMPLE)
    assert dataset.name == "beir_sample"
    assert dataset.split == "test"
    assert len(dataset.corpus) == 36
    assert dataset.qrels["q1"] == {"d01": 2, "d03": 1, "d02": 1, "d05": 0}
    # Only the judged queries, in qrels order; q11 has no judgements.
    assert list(dataset.queries) == [f"q{i}" for i in range(1, 11)]
    assert dataset.queries["q1"] == "What is the capital of France?"


def test_document_content_is_title_then_text() -> None:
    dataset = load_beir(SAMPLE)
    assert dataset.corpus["d05"] == BeirDocument(
        "d05", "Berlin", "Berlin is the capital and largest city of Germany."
    )
    assert dataset.corpus["d05"].content == (
        "Berlin Berlin is the capital and largest city of Germany."
    )
    assert dataset.corpus["d33"].content == dataset.corpus["d33"].text  # no title


def test_numeric_ids_header_less_qrels_and_blank_lines(tmp_path: Path) -> None:
    (tmp_path / "qrels").mkdir()
    (tmp_path / "corpus.jsonl").write_text(
        '{"_id": 7, "text": "seven"}\n\n{"_id": "8", "text": "eight"}\n'
    )
    (tmp_path / "queries.jsonl").write_text('{"_id": 1, "text": "which number?"}\n')
    (tmp_path / "qrels" / "dev.tsv").write_text("1\t7\t3\n1\t8\t-1\n")
    dataset = load_beir(tmp_path, split="dev")
    assert dataset.qrels == {"1": {"7": 3, "8": -1}}
    assert dataset.corpus["7"].title == ""


def write_line(path: Path, line: int, text: str) -> None:
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[line - 1] = text
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def append(path: Path, text: str) -> int:
    """Append one line; return its line number."""
    lines = path.read_text(encoding="utf-8").splitlines()
    path.write_text("\n".join([*lines, text]) + "\n", encoding="utf-8")
    return len(lines) + 1


def expect_error(folder: Path, file: str, line: int | None, fragment: str, split: str = "test"):
    with pytest.raises(DatasetError) as info:
        load_beir(folder, split=split)
    error = info.value
    assert error.path == folder / file
    assert error.line == line
    assert str(folder / file) in str(error)
    if line is not None:
        assert f"line {line}" in str(error)
    assert fragment in str(error)
    assert isinstance(error, (RerankError, ValueError))
    return error


@pytest.mark.parametrize("file", ["corpus.jsonl", "queries.jsonl", "qrels/test.tsv"])
def test_missing_file(dataset_dir: Path, file: str) -> None:
    (dataset_dir / file).unlink()
    expect_error(dataset_dir, file, None, "missing file")


def test_missing_split_lists_the_splits_there(dataset_dir: Path) -> None:
    expect_error(dataset_dir, "qrels/dev.tsv", None, "found: test", split="dev")


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no such dataset folder"):
        load_beir(tmp_path / "nowhere")


def test_bad_json_line(dataset_dir: Path) -> None:
    write_line(dataset_dir / "corpus.jsonl", 3, '{"_id": "d03", "text": "unterminated}')
    expect_error(dataset_dir, "corpus.jsonl", 3, "bad JSON")


def test_json_line_that_is_not_an_object(dataset_dir: Path) -> None:
    write_line(dataset_dir / "queries.jsonl", 2, '["q2", "a list"]')
    expect_error(dataset_dir, "queries.jsonl", 2, "expected a JSON object, got list")


def test_missing_id(dataset_dir: Path) -> None:
    write_line(dataset_dir / "corpus.jsonl", 5, '{"title": "t", "text": "no id"}')
    expect_error(dataset_dir, "corpus.jsonl", 5, "'_id'")


def test_missing_text(dataset_dir: Path) -> None:
    write_line(dataset_dir / "queries.jsonl", 4, '{"_id": "q4"}')
    expect_error(dataset_dir, "queries.jsonl", 4, "missing 'text'")


def test_empty_query(dataset_dir: Path) -> None:
    write_line(dataset_dir / "queries.jsonl", 4, '{"_id": "q4", "text": "  "}')
    expect_error(dataset_dir, "queries.jsonl", 4, "empty 'text'")


def test_duplicate_id(dataset_dir: Path) -> None:
    line = append(dataset_dir / "corpus.jsonl", '{"_id": "d02", "text": "again"}')
    expect_error(dataset_dir, "corpus.jsonl", line, "duplicate _id 'd02' (first on line 2)")


def test_qrels_naming_an_unknown_query(dataset_dir: Path) -> None:
    line = append(dataset_dir / "qrels" / "test.tsv", "q99\td01\t1")
    expect_error(dataset_dir, "qrels/test.tsv", line, "unknown query id 'q99'")


def test_qrels_naming_an_unknown_document(dataset_dir: Path) -> None:
    write_line(dataset_dir / "qrels" / "test.tsv", 4, "q1\td404\t1")
    expect_error(dataset_dir, "qrels/test.tsv", 4, "unknown document id 'd404'")


def test_qrels_grade_that_is_not_an_integer(dataset_dir: Path) -> None:
    write_line(dataset_dir / "qrels" / "test.tsv", 2, "q1\td01\t0.5")
    expect_error(dataset_dir, "qrels/test.tsv", 2, "integer grade, got '0.5'")


def test_a_fractional_grade_on_the_first_line_is_not_taken_for_a_header(
    dataset_dir: Path,
) -> None:
    write_line(dataset_dir / "qrels" / "test.tsv", 1, "q1\td01\t0.5")
    expect_error(dataset_dir, "qrels/test.tsv", 1, "integer grade, got '0.5'")


def test_qrels_with_the_wrong_columns(dataset_dir: Path) -> None:
    write_line(dataset_dir / "qrels" / "test.tsv", 3, "q1 0 d03 1")
    expect_error(dataset_dir, "qrels/test.tsv", 3, "expected 3 tab-separated columns")


def test_qrels_judging_a_pair_twice(dataset_dir: Path) -> None:
    line = append(dataset_dir / "qrels" / "test.tsv", "q1\td01\t1")
    expect_error(dataset_dir, "qrels/test.tsv", line, "judges document 'd01' twice")


def test_not_utf8(dataset_dir: Path) -> None:
    path = dataset_dir / "queries.jsonl"
    path.write_bytes(path.read_bytes() + b'{"_id": "q12", "text": "caf\xe9"}\n')
    expect_error(dataset_dir, "queries.jsonl", 12, "not UTF-8")


def test_empty_corpus(dataset_dir: Path) -> None:
    (dataset_dir / "corpus.jsonl").write_text("\n")
    expect_error(dataset_dir, "corpus.jsonl", None, "no documents")
