"""``rag-rerank batch`` and ``rerank_dataset`` on a local Ray instance (started once for the
module): 10,000 pairs in JSONL and in Parquet, a rerun after a crash, rejected rows."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from contextlib import redirect_stderr
from pathlib import Path

import pytest

from rag_rerank import Reranker
from rag_rerank.cli import main

FLAGS = ["--dtype", "fp32", "--device", "cpu", "--cache", "none", "--workers", "2"]
FLAGS += ["--cpus-per-worker", "0.5"]


def run(*argv: str) -> tuple[int, str]:
    stderr = io.StringIO()
    with redirect_stderr(stderr):
        code = main(list(argv))
    return code, stderr.getvalue()


@pytest.fixture(scope="module")
def ray_up() -> Iterator[object]:
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def _lists(n_rows: int = 1000, per_row: int = 10) -> list[dict]:
    return [
        {
            "id": f"r{i}",
            "query": f"question {i % 37} about savings",
            "documents": [
                f"passage {i}-{j} on interest and banks {j * i % 11}" for j in range(per_row)
            ],
            "meta": {"source": "test", "n": i},
        }
        for i in range(n_rows)
    ]


def _write_jsonl(path: Path, rows: list[object]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.mark.slow
def test_jsonl_lists_scored_and_a_rerun_after_a_crash_redoes_only_unfinished_shards(
    ray_up, bert_dir: str, local: Reranker, tmp_path: Path
) -> None:
    rows = _lists()  # 1,000 rows x 10 documents: 10,000 pairs, 10 shards of 100 rows
    source, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    _write_jsonl(source, rows)
    out.mkdir()  # the final merge cannot replace a folder: the job "crashes" at its very end
    (out / "keep").touch()
    code, err = run(
        "batch", str(source), str(out), "--model", bert_dir, *FLAGS, "--shard-rows", "100"
    )
    assert code == 1 and "cannot write it" in err and "out.jsonl.parts" in err
    parts = sorted((tmp_path / "out.jsonl.parts").glob("part-*.jsonl"))
    assert len(parts) == 10
    scored = [row for part in parts for row in _read_jsonl(part)]
    expected = local.score_pairs([(r["query"], d) for r in rows for d in r["documents"]])
    assert [{k: v for k, v in r.items() if k != "scores"} for r in scored] == rows
    assert [s for r in scored for s in r["scores"]] == pytest.approx(expected, abs=1e-5)

    # As after a crash mid-job: shards 3, 4 and 9 never finished; shard 0 did (marked, to tell
    # a reused shard from a recomputed one).
    for shard in (3, 4, 9):
        parts[shard].unlink()
    first = _read_jsonl(parts[0])
    first[0]["scores"][0] = -1.0
    _write_jsonl(parts[0], first)
    (out / "keep").unlink()
    out.rmdir()
    code, err = run(
        "batch", str(source), str(out), "--model", bert_dir, *FLAGS, "--shard-rows", "100"
    )
    assert code == 0, err
    assert "resuming: 7 of 10 shards finished before" in err
    final = _read_jsonl(out)
    assert final[0]["scores"][0] == -1.0  # reused, not recomputed
    final[0]["scores"][0] = expected[0]
    assert [r["id"] for r in final] == [r["id"] for r in rows]
    assert [s for r in final for s in r["scores"]] == pytest.approx(expected, abs=1e-5)
    assert not (tmp_path / "out.jsonl.parts").exists()


@pytest.mark.slow
def test_parquet_pairs_with_rejected_rows_and_rerank_dataset(
    ray_up, bert_dir: str, local: Reranker, tmp_path: Path
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from rag_rerank.cluster import rerank_dataset

    rows = [
        {"id": i, "query": f"query {i % 13}", "document": f"text {i} about rivers {i % 7}"}
        for i in range(10_000)
    ]
    bad = [{"id": -1, "query": None, "document": "x"}, {"id": -2, "query": "q", "document": None}]
    source, out = tmp_path / "pairs.parquet", tmp_path / "scored.parquet"
    pq.write_table(pa.Table.from_pylist(rows[:5] + bad[:1] + rows[5:] + bad[1:]), source)
    code, err = run(
        "batch", str(source), str(out), "--model", bert_dir, *FLAGS, "--on-error", "skip"
    )
    assert code == 0, err
    assert "2 rejected" in err
    rejects = _read_jsonl(tmp_path / "scored.parquet.rejects.jsonl")
    assert [r["row"] for r in rejects] == [6, 10_002]
    assert "query: must be a non-empty string" in rejects[0]["error"]
    assert "document: must be a string" in rejects[1]["error"]
    table = pq.read_table(out).to_pylist()
    assert [r["id"] for r in table] == [r["id"] for r in rows]
    expected = local.score_pairs([(r["query"], r["document"]) for r in rows])
    assert [r["score"] for r in table] == pytest.approx(expected, abs=1e-5)

    # The library call: scores, and the kept documents best first with top_n.
    ds = ray_up.data.from_items(
        [{"q": "which bank pays interest", "docs": ["a bank", "a river", "interest"]}]
    )
    got = rerank_dataset(
        ds,
        bert_dir,
        query_column="q",
        documents_column="docs",
        top_n=2,
        dtype="fp32",
        device="cpu",
        cpus_per_worker=0.5,
    ).take_all()[0]
    ranked = local.rerank("which bank pays interest", ["a bank", "a river", "interest"], top_n=2)
    assert got["scores"] == pytest.approx(
        local.score("which bank pays interest", ["a bank", "a river", "interest"]), abs=1e-5
    )
    assert list(got["top_documents"]) == [r.document for r in ranked]
    assert list(got["top_indices"]) == [r.index for r in ranked]
