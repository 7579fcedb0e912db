"""The Chroma side of the pipeline: opening a client and a collection, writing chunks, retrieving
candidates, and reading the files and metadata a caller hands in.

Both :class:`~rag_rerank.rag.RerankPipeline` and :mod:`rag_rerank.evaluation` store and retrieve
through these functions. The default embedding function lives in :mod:`.embeddings`; a collection
opened here without one gets it, because chromadb's own default downloads a model on first use.
Needs the ``chroma`` extra (``pip install 'rag-rerank[chroma]'``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from ..api import check_positive_int, check_query
from ..errors import InvalidInputError, InvalidInputTypeError, UnreadableFileError

__all__ = [
    "DEFAULT_COLLECTION",
    "MARKDOWN_SUFFIXES",
    "RESERVED_METADATA",
    "TEXT_SUFFIXES",
    "WRITE_BATCH",
    "MetadataValue",
    "Retrieved",
    "UnreadableFileError",
    "as_document_list",
    "check_metadata",
    "expand_path",
    "open_client",
    "open_collection",
    "per_document",
    "read_text",
    "resolve_embedding_function",
    "retrieve",
    "stored_metadata",
    "write_chunks",
]

DEFAULT_COLLECTION = "rag_rerank"
"""Name of the Chroma collection a pipeline uses unless told otherwise."""

TEXT_SUFFIXES = (".txt", ".text", ".md", ".markdown")
"""File suffixes picked up when a directory is added. Files named one by one may have any suffix."""

MARKDOWN_SUFFIXES = (".md", ".markdown")
"""Files split at their Markdown headings first."""

RESERVED_METADATA = ("doc_id", "chunk", "content_hash")
"""Metadata keys the pipeline sets on every chunk; callers may not pass them."""

WRITE_BATCH = 128
"""Chunks embedded and written per Chroma call (also the progress bar's step)."""

MetadataValue = str | int | float | bool


# -- client and collection ----------------------------------------------------------------------


def _chromadb() -> Any:
    try:
        import chromadb
    except ImportError as exc:
        raise ImportError(
            "the Chroma store needs the 'chroma' extra: pip install 'rag-rerank[chroma]'"
        ) from exc
    return chromadb


def open_client(
    path: str | Path | None = None, *, host: str | None = None, port: int = 8000
) -> Any:
    """A chromadb client: a server at ``host:port``, a persistent folder ``path`` (created if
    missing), or, with neither, an in-memory store for this process.

    Raises:
        InvalidInputError: Both ``path`` and ``host`` given (``field`` is ``host``).
    """
    if path is not None and host is not None:
        raise InvalidInputError("host", "give either a local path or a server host, not both")
    chromadb = _chromadb()
    if host is not None:
        return chromadb.HttpClient(host=host, port=port)
    if path is not None:
        # Absolute: chromadb keeps one client per path string in a process, so a relative
        # "./index" opened again from another working directory would reach the first one.
        return chromadb.PersistentClient(path=str(Path(path).expanduser().resolve()))
    return chromadb.EphemeralClient()


def resolve_embedding_function(embedding_function: Any = None) -> Any:
    """``embedding_function``, or when ``None`` the offline all-MiniLM-L6-v2 default
    (:func:`~rag_rerank.rag.embeddings.default_embedding_function`)."""
    if embedding_function is not None:
        return embedding_function
    from .embeddings import default_embedding_function

    return default_embedding_function()


def open_collection(
    client: Any,
    name: str = DEFAULT_COLLECTION,
    embedding_function: Any = None,
    *,
    metadata: Mapping[str, Any] | None = None,
) -> Any:
    """Get or create collection ``name`` in ``client``.

    Args:
        client: From :func:`open_client` (or any chromadb client).
        name: 3-512 characters: letters, digits, ``.``, ``_``, ``-``.
        embedding_function: A chromadb embedding function (``None``: the offline default). A
            collection keeps the one it was created with; a different one is refused.
        metadata: Collection metadata, set only when the collection is created.

    Raises:
        InvalidInputError: A bad name (``field`` is ``collection``) or an embedding function that
            differs from the stored one (``field`` is ``embedding_function``).
    """
    if not isinstance(name, str) or not 3 <= len(name) <= 512:
        raise InvalidInputError("collection", f"must be a name of 3-512 characters, got {name!r}")
    try:
        return client.get_or_create_collection(
            name,
            embedding_function=resolve_embedding_function(embedding_function),
            metadata=dict(metadata) if metadata else None,
        )
    except ValueError as exc:
        # Chroma refuses bad names and an embedding function that differs from the stored one.
        field_name = "embedding_function" if "embedding function" in str(exc) else "collection"
        raise InvalidInputError(field_name, str(exc)) from exc


# -- writing and reading back -------------------------------------------------------------------


def write_chunks(
    collection: Any,
    rows: Sequence[tuple[str, str, Mapping[str, MetadataValue] | None]],
    *,
    show_progress: bool = False,
    desc: str = "Indexing",
    unit: str = "chunk",
    on_write: Callable[[int], None] | None = None,
) -> None:
    """Embed and upsert ``(id, text, metadata)`` rows, :data:`WRITE_BATCH` per Chroma call.

    Args:
        collection: The collection to write to.
        rows: One ``(id, text, metadata)`` per entry; ``None`` metadata stores none.
        show_progress: Show a progress bar over the rows (default off).
        desc: The progress bar's label.
        unit: The progress bar's unit.
        on_write: Called with the number of rows after each Chroma call (to count what was
            written before an interruption).
    """
    if not rows:
        return  # no empty "0chunk" bar
    with tqdm(total=len(rows), unit=unit, desc=desc, disable=not show_progress) as bar:
        for start in range(0, len(rows), WRITE_BATCH):
            batch = rows[start : start + WRITE_BATCH]
            metadatas = [dict(row[2]) if row[2] else None for row in batch]
            collection.upsert(
                ids=[row[0] for row in batch],
                documents=[row[1] for row in batch],
                **({"metadatas": metadatas} if any(metadatas) else {}),
            )
            bar.update(len(batch))
            if on_write is not None:
                on_write(len(batch))


def stored_metadata(collection: Any, doc_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Metadata by chunk id of every stored chunk whose ``doc_id`` is one of ``doc_ids``."""
    stored: dict[str, dict[str, Any]] = {}
    # Chroma limits the size of an $in list; ask in slices.
    for start in range(0, len(doc_ids), WRITE_BATCH):
        where: Any = {"doc_id": {"$in": list(doc_ids[start : start + WRITE_BATCH])}}
        got = collection.get(where=where, include=["metadatas"])
        for chunk_id, meta in zip(got["ids"], got["metadatas"] or [], strict=True):
            stored[chunk_id] = dict(meta or {})
    return stored


@dataclass(frozen=True, slots=True)
class Retrieved:
    """The vector store's candidates for one question, nearest first.

    Attributes:
        query: The question.
        k: Candidates asked for (fewer come back from a small collection).
        ids: Entry ids.
        documents: Entry texts, aligned with ``ids``.
        metadatas: Copies of the entries' metadata (``{}`` for none), aligned with ``ids``.
        distances: Distances to the question (cosine distance by default; NaN when Chroma
            returns none), aligned with ``ids``.
    """

    query: str
    k: int
    ids: tuple[str, ...]
    documents: tuple[str, ...]
    metadatas: tuple[dict[str, Any], ...]
    distances: tuple[float, ...]

    def __len__(self) -> int:
        return len(self.ids)


def retrieve(
    collection: Any, query: str, k: int = 50, where: Mapping[str, Any] | None = None
) -> Retrieved:
    """The ``k`` entries of ``collection`` nearest to ``query``.

    Args:
        collection: A chromadb collection with an embedding function.
        query: The question (non-empty).
        k: Candidates to retrieve (default 50; fewer when the collection is smaller).
        where: A Chroma metadata filter, e.g. ``{"source": "a.md"}``.

    Raises:
        InvalidInputError: An empty ``query`` or a ``k`` below 1.
    """
    check_query(query, "question")
    check_positive_int(k, "k")
    found = collection.query(
        query_texts=[query],
        n_results=k,
        where=dict(where) if where else None,
        include=["documents", "metadatas", "distances"],
    )
    ids = found["ids"][0]
    documents = (found["documents"] or [[]])[0]
    metadatas = found["metadatas"][0] if found["metadatas"] else [None] * len(ids)
    distances = (found["distances"] or [[math.nan] * len(ids)])[0]
    return Retrieved(
        query=query,
        k=k,
        ids=tuple(ids),
        documents=tuple(text or "" for text in documents),
        metadatas=tuple(dict(meta or {}) for meta in metadatas),
        distances=tuple(float(d) for d in distances),
    )


# -- the caller's input -------------------------------------------------------------------------


def as_document_list(documents: object) -> list[object]:
    """``documents`` as a list: one ``str``/``Path`` becomes a list of one."""
    if isinstance(documents, (str, Path)):
        return [documents]
    if isinstance(documents, bytes) or not isinstance(documents, Sequence):
        raise InvalidInputTypeError(
            "documents",
            f"must be a str, a pathlib.Path or a list of them, got {type(documents).__name__}",
        )
    return list(documents)


def per_document(values: object, n: int, field_name: str) -> list[Any]:
    """One entry per document from ``values`` (``None``: ``n`` Nones), checking the count."""
    if values is None:
        return [None] * n
    if isinstance(values, (str, bytes, Mapping)) or not isinstance(values, Sequence):
        raise InvalidInputTypeError(
            field_name, f"must be a list with one entry per document, got {type(values).__name__}"
        )
    if len(values) != n:
        raise InvalidInputError(field_name, f"has {len(values)} entries for {n} documents")
    return list(values)


def check_metadata(metadata: object, field_name: str) -> dict[str, MetadataValue]:
    """A checked copy of a caller's chunk metadata (``None``: ``{}``)."""
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
        if key in RESERVED_METADATA:
            raise InvalidInputError(f"{field_name}[{key!r}]", "is set by the pipeline; rename it")
        if not isinstance(value, (str, int, float, bool)):
            raise InvalidInputTypeError(
                f"{field_name}[{key!r}]",
                f"must be a str, int, float or bool, got {type(value).__name__}",
            )
        checked[key] = value
    return checked


def expand_path(path: Path, field_name: str, db: Path | None) -> tuple[list[Path], list[str]]:
    """The files to read for ``path`` and the files passed over for their suffix.

    Hidden files and folders (``.git``) and the pipeline's own database folder ``db`` are not
    documents and are not listed.
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


BINARY_FILE = "a binary file, not text"
"""Why :func:`read_text` skips a file holding NUL bytes (no encoding would read it)."""


def read_text(file: Path, encoding: str = "utf-8") -> str:
    """The text of ``file`` in ``encoding``.

    Raises:
        UnreadableFileError: It cannot be read, holds NUL bytes (a binary file), or is not text
            in ``encoding``; the message says which.
    """
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise UnreadableFileError(f"cannot read it ({exc.strerror})") from exc
    if b"\0" in data[:8192] and not encoding.lower().replace("-", "").startswith("utf16"):
        raise UnreadableFileError(BINARY_FILE)
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise UnreadableFileError(
            f"not {encoding} text (byte {exc.start}: {exc.reason}); give its encoding to read it"
        ) from exc
