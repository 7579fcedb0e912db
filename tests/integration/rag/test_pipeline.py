"""RerankPipeline on a real persistent Chroma folder, with a tiny random cross-encoder.

Most tests embed with a small deterministic bag-of-words embedding function (a real chromadb
embedding function, just cheap); one test uses the package's default all-MiniLM-L6-v2.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from embedding_testing import BagOfWords

from rag_rerank import InvalidInputError, InvalidInputTypeError, Reranker
from rag_rerank.rag import PipelineResult, PipelineResults, RerankPipeline

TEXTS = [
    "Apple released a new iPhone with a faster chip.",
    "Apples are a fruit rich in fibre and vitamin C.",
    "The giant panda is a bear that eats bamboo.",
    "Python is a programming language with readable syntax.",
    "Pythons are snakes that kill their prey by constriction.",
    "Paris is the capital and largest city of France.",
    "Mercury is the planet closest to the Sun.",
    "A cross-encoder scores a query and a passage together.",
]


@pytest.fixture(scope="module")
def reranker(xlmr_dir: str) -> Reranker:
    return Reranker.shared(xlmr_dir, device="cpu")


def open_pipeline(path: Path, reranker: Reranker, **options: object) -> RerankPipeline:
    return RerankPipeline(path, reranker=reranker, embedding_function=BagOfWords(), **options)


def test_query_returns_reranked_candidates_with_retrieval_details(
    tmp_path: Path, reranker: Reranker
) -> None:
    pipe = open_pipeline(tmp_path / "db", reranker)
    summary = pipe.add(TEXTS, metadatas=[{"n": i} for i in range(len(TEXTS))])
    assert (summary.documents, summary.added, summary.unchanged) == (len(TEXTS), len(TEXTS), 0)

    results = pipe.query("which fruit has fibre?", k=6, top_n=3)
    assert isinstance(results, PipelineResults)
    assert len(results.candidates) == 6 and len(results) == 3
    assert list(results) == list(results.candidates[:3])
    assert all(isinstance(r, PipelineResult) for r in results)

    # Scores are the reranker's own scores on the same texts; order is best first.
    texts = [c.document for c in results.candidates]
    assert [c.score for c in results.candidates] == pytest.approx(
        reranker.score("which fruit has fibre?", texts), abs=1e-6
    )
    scores = [c.score for c in results.candidates]
    assert scores == sorted(scores, reverse=True)
    assert [c.rank for c in results.candidates] == list(range(1, 7))
    assert sorted(c.retrieval_rank for c in results.candidates) == list(range(1, 7))
    by_retrieval = sorted(results.candidates, key=lambda c: c.retrieval_rank)
    distances = [c.distance for c in by_retrieval]
    assert distances == sorted(distances)
    for c in results.candidates:
        assert c.score == pytest.approx(1 / (1 + np.exp(-c.raw_score)), abs=1e-6)
        assert c.document in TEXTS
        assert c.metadata["n"] == TEXTS.index(c.document)
        assert c.id == f"{c.metadata['doc_id']}#0"
        assert c.rank_change == c.retrieval_rank - c.rank
    assert results.documents == [r.document for r in results]
    assert results.to_dict()["results"][0]["id"] == results[0].id


def test_reopen_and_query_again(tmp_path: Path, reranker: Reranker) -> None:
    first = open_pipeline(tmp_path / "db", reranker)
    first.add(TEXTS)
    before = first.query("snakes and constriction", k=5, top_n=5)
    del first

    reopened = open_pipeline(tmp_path / "db", reranker)
    assert reopened.count() == len(TEXTS)
    after = reopened.query("snakes and constriction", k=5, top_n=5)
    assert [(r.id, r.retrieval_rank) for r in after] == [(r.id, r.retrieval_rank) for r in before]
    assert [r.score for r in after] == pytest.approx([r.score for r in before], abs=1e-6)


def test_a_relative_folder_is_the_one_in_the_current_directory(
    tmp_path: Path, reranker: Reranker, monkeypatch: pytest.MonkeyPatch
) -> None:
    # chromadb keeps one client per path string: "./db" opened from a second directory used
    # to reach the first directory's database (and fail once that one was gone).
    for name, texts in (("a", TEXTS[:3]), ("b", TEXTS[:5])):
        (tmp_path / name).mkdir()
        monkeypatch.chdir(tmp_path / name)
        pipeline = open_pipeline(Path("db"), reranker)
        pipeline.add(texts)
        assert pipeline.count() == len(texts)
        assert (tmp_path / name / "db").is_dir()


def test_re_adding_texts_and_files_is_idempotent(tmp_path: Path, reranker: Reranker) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "notes.txt").write_text("Pandas eat bamboo.\n\nThey live in China.", encoding="utf-8")
    (docs / "guide.md").write_text(
        "# Guide\nIntro.\n\n## Install\npip install it.\n\n## Use\nCall it.", encoding="utf-8"
    )
    pipe = open_pipeline(tmp_path / "db", reranker)
    first = pipe.add([docs, *TEXTS[:3]])
    count = pipe.count()
    assert first.added == count and first.unchanged == 0

    again = pipe.add([docs, *TEXTS[:3]])
    assert (again.added, again.unchanged, again.removed) == (0, count, 0)
    assert pipe.count() == count

    # A single file added by path gets the same id as through its folder: no duplicate.
    pipe.add(docs / "notes.txt")
    assert pipe.count() == count


def test_changed_file_replaces_its_chunks(tmp_path: Path, reranker: Reranker) -> None:
    path = tmp_path / "story.txt"
    path.write_text("\n\n".join(f"Paragraph {i} about the sea." for i in range(6)), "utf-8")
    pipe = open_pipeline(tmp_path / "db", reranker, chunk_size=40, chunk_overlap=0)
    added = pipe.add(path).added
    assert added == 6 == pipe.count()

    path.write_text("Paragraph 0 about the sea.\n\nA new ending.", encoding="utf-8")
    summary = pipe.add(path)
    assert (summary.unchanged, summary.added, summary.removed) == (1, 1, 4)
    assert pipe.count() == 2
    texts = sorted(r.document for r in pipe.query("sea", k=10, top_n=None))
    assert texts == ["A new ending.", "Paragraph 0 about the sea."]


def test_files_are_chunked_with_source_and_heading(tmp_path: Path, reranker: Reranker) -> None:
    md = tmp_path / "doc.md"
    md.write_text(
        "# Fruit\n" + "Apples are sweet. " * 10 + "\n\n# Snakes\nPythons squeeze.", "utf-8"
    )
    pipe = open_pipeline(tmp_path / "db", reranker, chunk_size=80, chunk_overlap=20)
    pipe.add(md, metadatas=[{"lang": "en"}])
    got = pipe.collection.get(include=["documents", "metadatas"])
    assert len(got["ids"]) > 2
    for chunk_id, text, meta in zip(got["ids"], got["documents"], got["metadatas"], strict=True):
        assert len(text) <= 80
        assert meta["source"] == str(md.resolve()) and meta["lang"] == "en"
        assert chunk_id == f"{md.resolve()}#{meta['chunk']}"
        assert md.read_text("utf-8")[meta["start"] :].startswith(text)
    headings = {m["heading"] for m in got["metadatas"]}
    assert headings == {"Fruit", "Snakes"}


def test_directory_reports_files_it_passed_over(tmp_path: Path, reranker: Reranker) -> None:
    (tmp_path / "a.txt").write_text("Text file.", "utf-8")
    (tmp_path / "b.pdf").write_bytes(b"%PDF-1.4")
    pipe = open_pipeline(tmp_path / "db", reranker)
    summary = pipe.add(Path(tmp_path))
    assert summary.documents == 1
    assert summary.skipped == (str(tmp_path / "b.pdf"),)


def test_k_larger_than_collection(tmp_path: Path, reranker: Reranker) -> None:
    pipe = open_pipeline(tmp_path / "db", reranker)
    pipe.add(TEXTS[:4])
    results = pipe.query("a question", k=50, top_n=10)
    assert len(results.candidates) == 4 and len(results) == 4
    assert results.k == 50


def test_threshold_that_removes_everything(tmp_path: Path, reranker: Reranker) -> None:
    pipe = open_pipeline(tmp_path / "db", reranker)
    pipe.add(TEXTS)
    results = pipe.query("capital of France", k=8, top_n=5, threshold=1.0)
    assert len(results) == 0 and list(results) == []
    assert len(results.candidates) == 8
    assert results.threshold == 1.0


def test_threshold_keeps_exactly_the_scores_above_it(tmp_path: Path, reranker: Reranker) -> None:
    pipe = open_pipeline(tmp_path / "db", reranker)
    pipe.add(TEXTS)
    everything = pipe.query("capital of France", k=8, top_n=None)
    cut = sorted(c.score for c in everything.candidates)[4]  # keeps the best four
    kept = pipe.query("capital of France", k=8, top_n=None, threshold=cut)
    assert [r.id for r in kept] == [c.id for c in everything.candidates if c.score >= cut]
    assert all(r.score >= cut for r in kept)


def test_empty_collection_returns_nothing(tmp_path: Path, reranker: Reranker) -> None:
    results = open_pipeline(tmp_path / "db", reranker).query("anything", k=5)
    assert len(results) == 0 and results.candidates == ()


def test_where_filter_limits_retrieval(tmp_path: Path, reranker: Reranker) -> None:
    pipe = open_pipeline(tmp_path / "db", reranker)
    pipe.add(TEXTS, metadatas=[{"even": i % 2 == 0} for i in range(len(TEXTS))])
    results = pipe.query("anything at all", k=50, top_n=None, where={"even": True})
    assert len(results) == 4 and all(r.metadata["even"] for r in results)


def test_delete_removes_a_document(tmp_path: Path, reranker: Reranker) -> None:
    pipe = open_pipeline(tmp_path / "db", reranker)
    pipe.add(TEXTS[:3], ids=["a", "b", "c"])
    assert pipe.delete(["b"]) == 1
    assert sorted(pipe.collection.get()["ids"]) == ["a#0", "c#0"]


def test_callers_metadata_is_not_mutated(tmp_path: Path, reranker: Reranker) -> None:
    metadata = {"topic": "fruit"}
    pipe = open_pipeline(tmp_path / "db", reranker)
    pipe.add([TEXTS[1]], metadatas=[metadata])
    assert metadata == {"topic": "fruit"}
    result = pipe.query("fruit", k=1)[0]
    result.metadata["topic"] = "changed"
    assert pipe.query("fruit", k=1)[0].metadata["topic"] == "fruit"


def test_default_embedding_function_retrieves_by_meaning(
    tmp_path: Path, reranker: Reranker
) -> None:
    pipe = RerankPipeline(tmp_path / "db", reranker=reranker)
    pipe.add(TEXTS)
    results = pipe.query("Which snake squeezes its prey to death?", k=3, top_n=3)
    nearest = min(results.candidates, key=lambda c: c.retrieval_rank)
    assert nearest.document == TEXTS[4]
    # A different embedding function cannot silently reuse the collection.
    with pytest.raises(InvalidInputError) as err:
        RerankPipeline(tmp_path / "db", reranker=reranker, embedding_function=BagOfWords())
    assert err.value.field == "embedding_function"


def test_model_is_loaded_lazily_through_shared(tmp_path: Path, xlmr_dir: str) -> None:
    pipe = RerankPipeline(
        tmp_path / "db", model=xlmr_dir, device="cpu", embedding_function=BagOfWords()
    )
    pipe.add(TEXTS[:2])
    assert pipe.reranker is Reranker.shared(xlmr_dir, device="cpu")
    assert len(pipe.query("fruit", k=2)) == 2


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_chroma_server_through_host(tmp_path: Path, reranker: Reranker) -> None:
    import chromadb

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-c", "from chromadb.cli.cli import app; app()", "run",
         "--path", str(tmp_path / "server"), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                chromadb.HttpClient(host="127.0.0.1", port=port).heartbeat()
                break
            except Exception:
                assert server.poll() is None, "the chroma server exited"
                assert time.monotonic() < deadline, "the chroma server did not start"
                time.sleep(0.2)
        pipe = RerankPipeline(
            host="127.0.0.1", port=port, reranker=reranker, embedding_function=BagOfWords()
        )
        pipe.add(TEXTS)
        results = pipe.query("capital of France", k=4, top_n=2)
        assert len(results) == 2 and len(results.candidates) == 4
        texts = [c.document for c in results.candidates]
        assert [c.score for c in results.candidates] == pytest.approx(
            reranker.score("capital of France", texts), abs=1e-6
        )
    finally:
        server.terminate()
        server.wait(timeout=30)


# -- bad input: each gets a typed error naming the field ----------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "field"),
    [
        ({"question": ""}, InvalidInputError, "question"),
        ({"question": "   "}, InvalidInputError, "question"),
        # The pipeline checks through rag_rerank.api, as Reranker.rerank does: same types.
        ({"question": 42}, InvalidInputError, "question"),
        ({"k": 0}, InvalidInputError, "k"),
        ({"k": 2.5}, InvalidInputError, "k"),
        ({"k": True}, InvalidInputError, "k"),
        ({"top_n": 0}, InvalidInputError, "top_n"),
        ({"threshold": 1.5}, InvalidInputError, "threshold"),
        ({"threshold": -0.1}, InvalidInputError, "threshold"),
        ({"threshold": float("nan")}, InvalidInputError, "threshold"),
        ({"threshold": "high"}, InvalidInputError, "threshold"),
    ],
)
def test_bad_query_arguments(
    tmp_path: Path, reranker: Reranker, kwargs: dict, error: type, field: str
) -> None:
    pipe = open_pipeline(tmp_path / "db", reranker)
    arguments = {"question": "a question", **kwargs}
    with pytest.raises(error) as err:
        pipe.query(**arguments)
    assert err.value.field == field


def test_bad_add_arguments(tmp_path: Path, reranker: Reranker) -> None:
    pipe = open_pipeline(tmp_path / "db", reranker)
    missing = tmp_path / "missing.txt"
    cases: list[tuple[tuple, dict, type, str]] = [
        ((123,), {}, InvalidInputTypeError, "documents"),
        (([b"bytes"],), {}, InvalidInputTypeError, "documents[0]"),
        ((["a", "b"],), {"metadatas": [{}]}, InvalidInputError, "metadatas"),
        ((["a"],), {"metadatas": {"k": "v"}}, InvalidInputTypeError, "metadatas"),
        ((["a"],), {"metadatas": [{"k": [1]}]}, InvalidInputTypeError, "metadatas[0]['k']"),
        ((["a"],), {"metadatas": [{"doc_id": "x"}]}, InvalidInputError, "metadatas[0]['doc_id']"),
        ((["a"],), {"ids": [""]}, InvalidInputError, "ids[0]"),
        ((["a", "b"],), {"ids": ["x", "x"]}, InvalidInputError, "ids"),
        ((["same", "same"],), {}, InvalidInputError, "ids"),
        ((missing,), {}, InvalidInputError, "documents[0]"),
    ]
    for args, kwargs, error, field in cases:
        with pytest.raises(error) as err:
            pipe.add(*args, **kwargs)
        assert err.value.field == field
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("caf\xe9 au lait".encode("latin-1"))
    summary = pipe.add(latin1)  # skipped and reported, not an error that stops a whole folder
    assert summary.documents == 0 and pipe.count() == 0
    assert summary.unreadable == ((str(latin1.resolve()), summary.unreadable[0][1]),)
    assert summary.unreadable[0][1].startswith("not utf-8 text (byte 3")
    assert pipe.add(latin1, encoding="latin-1").added == 1
    with pytest.raises(InvalidInputError) as err:
        pipe.add(latin1, encoding="klingon")
    assert err.value.field == "encoding"


def test_bad_constructor_arguments(tmp_path: Path, reranker: Reranker) -> None:
    ef = BagOfWords()
    cases = [
        ({"chunk_size": 0}, InvalidInputError, "chunk_size"),
        ({"chunk_size": 100, "chunk_overlap": 100}, InvalidInputError, "chunk_overlap"),
        ({"chunk_overlap": -1}, InvalidInputError, "chunk_overlap"),
        ({"chunk_size": "big"}, InvalidInputTypeError, "chunk_size"),
        ({"reranker": "a model name"}, InvalidInputTypeError, "reranker"),
        ({"model": ""}, InvalidInputError, "model"),
        ({"collection": "ab"}, InvalidInputError, "collection"),
        ({"host": "localhost"}, InvalidInputError, "host"),
    ]
    for options, error, field in cases:
        with pytest.raises(error) as err:
            RerankPipeline(tmp_path / "db", embedding_function=ef, **options)  # type: ignore[arg-type]
        assert err.value.field == field


# -- any reranker, every option, the same checks as the core -------------------------------------


@pytest.mark.parametrize("threshold", [1.5, -0.1, float("nan"), "high", True])
def test_bad_threshold_raises_what_the_core_raises(
    tmp_path: Path, reranker: Reranker, threshold: object
) -> None:
    pipe = open_pipeline(tmp_path / "db", reranker)
    with pytest.raises(InvalidInputError) as core:
        reranker.rerank("a question", TEXTS, threshold=threshold)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError) as pipeline:
        pipe.query("a question", threshold=threshold)  # type: ignore[arg-type]
    assert type(pipeline.value) is type(core.value)
    assert pipeline.value.field == core.value.field == "threshold"


def test_pipeline_over_a_remote_reranker(tmp_path: Path, reranker: Reranker) -> None:
    from server_testing import live_server

    from rag_rerank import RemoteReranker, RerankerLike
    from rag_rerank.server import create_app

    question = "capital of France"
    with (
        live_server(create_app(reranker, api_key="pipeline-key")) as url,
        RemoteReranker(url, api_key="pipeline-key") as remote,
    ):
        assert isinstance(remote, RerankerLike)
        pipe = RerankPipeline(tmp_path / "db", reranker=remote, embedding_function=BagOfWords())
        pipe.add(TEXTS)
        results = pipe.query(question, k=6, top_n=3)
        assert pipe.reranker is remote
        local = open_pipeline(tmp_path / "db", reranker).query(question, k=6, top_n=3)
        assert [r.id for r in results.candidates] == [r.id for r in local.candidates]
        assert [r.score for r in results.candidates] == pytest.approx(
            [r.score for r in local.candidates], abs=1e-6
        )
        assert len(results) == 3 and results.documents == local.documents
        with pytest.raises(InvalidInputError) as err:
            pipe.query(question, threshold=2.0)
        assert err.value.field == "threshold"


def test_retrieve_then_rerank_is_query(tmp_path: Path, reranker: Reranker) -> None:
    pipe = open_pipeline(tmp_path / "db", reranker)
    pipe.add(TEXTS, metadatas=[{"n": i} for i in range(len(TEXTS))])
    retrieved = pipe.retrieve("snakes", k=5)
    assert len(retrieved) == 5 and retrieved.query == "snakes" and retrieved.k == 5
    assert list(retrieved.distances) == sorted(retrieved.distances)
    assert all(
        TEXTS[m["n"]] == d for m, d in zip(retrieved.metadatas, retrieved.documents, strict=True)
    )
    reranked = pipe.rerank(retrieved, top_n=2, threshold=0.0)
    assert reranked == pipe.query("snakes", k=5, top_n=2, threshold=0.0)
    assert [c.id for c in sorted(reranked.candidates, key=lambda c: c.retrieval_rank)] == list(
        retrieved.ids
    )


def test_pipeline_over_an_open_collection(tmp_path: Path, reranker: Reranker) -> None:
    first = open_pipeline(tmp_path / "db", reranker)
    first.add(TEXTS)
    pipe = RerankPipeline(collection=first.collection, reranker=reranker)
    assert pipe.collection is first.collection and pipe.count() == len(TEXTS)
    assert pipe.query("fruit", k=3) == first.query("fruit", k=3)
    with pytest.raises(InvalidInputError) as err:
        RerankPipeline(tmp_path / "db", collection=first.collection, reranker=reranker)
    assert err.value.field == "collection"


def test_every_reranker_option_reaches_the_lazy_reranker(tmp_path: Path, xlmr_dir: str) -> None:
    from rag_rerank import RerankerOptions

    options = RerankerOptions(model=xlmr_dir, device="cpu", max_length=64)
    pipe = RerankPipeline(
        tmp_path / "db",
        options=options,
        long_documents="truncate",
        show_progress=False,  # the indexing bar; the reranker's own is options.show_progress
        embedding_function=BagOfWords(),
    )
    assert pipe.options == options.replace(long_documents="truncate")
    pipe.add(TEXTS[:3])
    assert len(pipe.query("fruit", k=3)) == 3
    expected = Reranker.shared(xlmr_dir, device="cpu", max_length=64, long_documents="truncate")
    assert pipe.reranker is expected
    assert (expected.max_length, expected.long_documents) == (64, "truncate")


def test_bad_reranker_options(tmp_path: Path, reranker: Reranker) -> None:
    from rag_rerank import RerankerOptions

    ef = BagOfWords()
    cases: list[tuple[dict, type, str]] = [
        ({"batch_size": 8}, InvalidInputTypeError, "batch_size"),  # not an option
        ({"max_length": 0}, InvalidInputError, "max_length"),
        ({"long_documents": "chunk"}, InvalidInputError, "long_documents"),
        ({"options": {"model": "x"}}, InvalidInputTypeError, "options"),
        ({"reranker": reranker, "device": "cpu"}, InvalidInputError, "reranker"),
        ({"reranker": reranker, "options": RerankerOptions()}, InvalidInputError, "reranker"),
    ]
    for options, error, field in cases:
        with pytest.raises(error) as err:
            RerankPipeline(tmp_path / "db", embedding_function=ef, **options)
        assert err.value.field == field


def test_importing_the_pipeline_loads_no_torch() -> None:
    code = (
        "import sys, rag_rerank.rag, rag_rerank.rag.demo, rag_rerank.evaluation, rag_rerank.render;"
        "assert 'torch' not in sys.modules, 'torch was imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_markdown_headings_stay_with_their_text() -> None:
    from rag_rerank.rag.splitting import split_markdown

    text = "# Guide\n\n## Install\n\nRun pip install.\n\n## Use\n" + "word " * 60 + "\n\n# End\n"
    chunks = split_markdown(text, chunk_size=120, chunk_overlap=0)
    assert chunks[0].text == "# Guide\n\n## Install\n\nRun pip install." and chunks[0].start == 0
    assert chunks[0].heading == "Install"
    assert chunks[1].text.startswith("## Use\nword word")  # heading with the start of its text
    assert all(c.text.strip("# \n") not in ("Guide", "Use", "End") for c in chunks)
    assert all(len(c.text) <= 120 for c in chunks)
    assert split_markdown("# Only a heading\n") == []
    for chunk in chunks:
        assert text[chunk.start :].startswith(chunk.text)
