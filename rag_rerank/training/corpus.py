"""The passages a reranker is trained on: a JSONL of ``{"text": ...}`` rows (the demo corpus's
format), text and Markdown files and folders chunked the way ``rag-rerank index`` chunks them, or
an existing Chroma index folder made by ``rag-rerank index``."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import TrainingError
from ..evaluation.labels import json_objects

__all__ = ["Passage", "is_index_folder", "load_passages"]


@dataclass(frozen=True, slots=True)
class Passage:
    """One passage: ``id`` (the JSONL row's ``id``, ``file#chunk``, or the index's chunk id)."""

    id: str
    text: str


def is_index_folder(path: Path) -> bool:
    """Whether ``path`` is a persistent Chroma folder (``rag-rerank index --db``)."""
    return path.is_dir() and (path / "chroma.sqlite3").is_file()


def load_passages(
    sources: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    collection: str | None = None,
) -> list[Passage]:
    """Read the passages of one or more sources, in order, without duplicate texts.

    Args:
        sources: JSONL files (``.jsonl``: one ``{"text": ..., "id": ...}`` object a line, ``id``
            optional), ``.txt``/``.md`` files and folders of them, or one Chroma index folder.
        collection: The collection of an index folder (default: ``rag-rerank index``'s).

    Raises:
        TrainingError: A source does not exist, a JSONL line is not an object with a non-empty
            ``"text"`` string (file and line named), or the sources hold no text at all.
    """
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    passages: list[Passage] = []
    for source in map(Path, sources):
        if is_index_folder(source):
            passages.extend(_read_index(source, collection))
        elif source.is_file() and source.suffix.lower() == ".jsonl":
            passages.extend(_read_jsonl(source))
        elif source.exists():
            passages.extend(_read_files(source))
        else:
            raise TrainingError("no such file or directory", source, option="corpus")
    seen: set[str] = set()
    unique = [p for p in passages if not (p.text in seen or seen.add(p.text))]  # type: ignore[func-returns-value]
    if not unique:
        raise TrainingError("no passages with text", ", ".join(map(str, sources)), option="corpus")
    return unique


def _read_jsonl(source: Path) -> list[Passage]:
    try:
        text = source.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TrainingError(f"cannot read it: {exc}", source, option="corpus") from None
    passages = []
    expected = 'expected an object {"text": ...}'
    for number, row in json_objects(text, lambda m, n: TrainingError(m, source, n), expected):
        value = row.get("text")
        if not isinstance(value, str) or not value.strip():
            raise TrainingError(f"'text' must be a non-empty string, got {value!r}", source, number)
        passages.append(Passage(str(row.get("id", f"{source.name}:{number}")), value.strip()))
    return passages


def _read_files(source: Path) -> list[Passage]:
    from ..rag.splitting import split_markdown, split_text
    from ..rag.store import UnreadableFileError, expand_path, read_text

    files, _ = expand_path(source, "corpus", None)
    passages = []
    for file in files:
        try:
            text = read_text(file)
        except UnreadableFileError as exc:
            raise TrainingError(str(exc), file, option="corpus") from None
        split = split_markdown if file.suffix.lower() in (".md", ".markdown") else split_text
        for number, chunk in enumerate(split(text)):
            if chunk.text.strip():
                passages.append(Passage(f"{file.name}#{number}", chunk.text.strip()))
    return passages


def _read_index(source: Path, collection: str | None) -> list[Passage]:
    from ..rag.store import DEFAULT_COLLECTION, open_client

    client = open_client(source)
    name = collection or DEFAULT_COLLECTION
    names = [c if isinstance(c, str) else c.name for c in client.list_collections()]
    if name not in names:
        raise TrainingError(
            f"no collection {name!r} in this index (it has {', '.join(names) or 'none'})",
            source,
            option="collection",
        )
    found = client.get_collection(name).get(include=["documents"])
    return [
        Passage(str(i), (text or "").strip())
        for i, text in zip(found["ids"], found["documents"] or [], strict=True)
        if (text or "").strip()
    ]
