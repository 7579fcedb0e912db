"""The files of ``rag-rerank batch`` (no Ray): rows that cannot be scored are rejected one by one,
naming their line, and what is written back is valid JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag_rerank.cluster.files import BatchFileError, ShardStore, read_rows


def _strict(line: str) -> object:
    def refuse(constant: str) -> object:
        raise AssertionError(f"{constant} is not JSON")

    return json.loads(line, parse_constant=refuse)


def test_a_surrogate_and_a_deep_row_are_one_rejected_row_each(tmp_path: Path) -> None:
    good = json.dumps({"query": "q", "documents": ["a", "b"]})
    lines = [
        good,
        '{"query": "q", "documents": ["fine", "bad \\ud800 text"]}',  # a lone surrogate
        '{"query": "q", "documents": ["a"], "meta": ' + "[" * 100_000 + "]" * 100_000 + "}",
        good,
    ]
    source, rejects = tmp_path / "in.jsonl", tmp_path / "rejects.jsonl"
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    rows = read_rows(source, rejects=rejects)
    assert rows.numbers == [1, 4] and rows.rejected == 2
    rejected = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert [r["row"] for r in rejected] == [2, 3]
    assert "row 2: documents[1]: contains a lone surrogate" in rejected[0]["error"]
    assert "row 3: nested too deeply" in rejected[1]["error"]
    with pytest.raises(BatchFileError, match=r"row 2: documents\[1\]: contains a lone surrogate"):
        read_rows(source)  # without --on-error skip: the first bad row stops the job


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_nan_in_a_passed_through_field_is_written_as_null(tmp_path: Path, suffix: str) -> None:
    source = tmp_path / f"in{suffix}"
    if suffix == ".jsonl":
        source.write_text('{"query": "q", "document": "d", "weight": NaN, "x": [Infinity]}\n')
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = [{"query": "q", "document": "d", "weight": float("nan"), "x": [float("inf")]}]
        pq.write_table(pa.Table.from_pylist(table), source)
    rows = read_rows(source).rows
    out = tmp_path / "out.jsonl"
    store = ShardStore(out, shard_rows=10, job={"input": str(source)})
    store.write(0, [{**row, "score": 0.5} for row in rows])
    store.merge(1)
    written = [_strict(line) for line in out.read_text().splitlines()]
    assert written == [{"query": "q", "document": "d", "weight": None, "x": [None], "score": 0.5}]
