"""The files of a batch job (``rag-rerank batch``): input rows read and checked, output written
in shards so that a rerun skips the finished ones. Pure Python and pyarrow; no Ray."""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

from ..api.checks import find_lone_surrogate
from ..errors import BatchFileError

__all__ = ["SUFFIXES", "BatchFileError", "Rows", "ShardStore", "read_rows"]

SUFFIXES = (".jsonl", ".parquet")
"""File kinds read and written, by suffix."""

RowKind = Literal["documents", "document"]


class Rows:
    """The valid rows of an input file, in order, with their 1-based row numbers."""

    def __init__(self, kind: RowKind, rows: list[dict[str, Any]], numbers: list[int]) -> None:
        self.kind = kind
        self.rows = rows
        self.numbers = numbers
        self.rejected = 0

    @property
    def pairs(self) -> int:
        """(query, document) pairs to score."""
        if self.kind == "document":
            return len(self.rows)
        return sum(len(row["documents"]) for row in self.rows)


def read_rows(path: Path, *, rejects: Path | None = None) -> Rows:
    """Read and check every row of ``path`` (JSONL or Parquet).

    Each row is ``{"query": str, "documents": [str, ...]}`` or ``{"query": str, "document":
    str}`` (one shape per file) with any other fields. Without ``rejects`` the first bad row
    raises; with it, bad rows are written there (``{"row", "error", "input"}`` per line) and
    left out.

    Raises:
        BatchFileError: An unreadable file, or a bad row (its row number given).
    """
    suffix = _suffix(path)
    kind: RowKind | None = None
    rows: list[dict[str, Any]] = []
    numbers: list[int] = []
    rejected = 0
    with _Rejects(rejects) as reject:
        for number, row, text in _raw_rows(path, suffix):
            try:
                if isinstance(row, BatchFileError):
                    raise row
                row_kind = _check_row(path, number, row, kind)
            except BatchFileError as exc:
                if rejects is None:
                    raise
                reject(number, str(exc), text)
                rejected += 1
                continue
            kind = row_kind
            rows.append(row)
            numbers.append(number)
    result = Rows(kind or "documents", rows, numbers)
    result.rejected = rejected
    return result


def _suffix(path: Path) -> str:
    if path.suffix.lower() not in SUFFIXES:
        raise BatchFileError(path, f"expected a {' or '.join(SUFFIXES)} file")
    return path.suffix.lower()


def _raw_rows(path: Path, suffix: str) -> Iterator[tuple[int, Any, str]]:
    """``(row number, parsed row or its BatchFileError, the row as text)``."""
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except (OSError, ValueError) as exc:
            raise BatchFileError(path, f"cannot read it as Parquet ({exc})") from None
        for number, row in enumerate(table.to_pylist(), start=1):
            yield number, row, json.dumps(row, ensure_ascii=False, default=str)
        return
    try:
        with path.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                yield number, _parse(path, number, line), line.rstrip("\n")
    except UnicodeDecodeError:
        raise BatchFileError(path, "not UTF-8 text") from None
    except OSError as exc:
        raise BatchFileError(path, exc.strerror or str(exc)) from None


def _parse(path: Path, number: int, line: str) -> Any:
    """The row on JSONL line ``number``, or the :class:`BatchFileError` that says why not.

    ``NaN`` and ``Infinity`` (which Python's json reads but JSON does not allow) become
    ``null``, so a field passed through is written back as valid JSON.
    """
    try:
        return json.loads(line, parse_constant=lambda _: None)
    except json.JSONDecodeError as exc:
        return BatchFileError(path, f"not valid JSON ({exc.msg})", number)
    except RecursionError:
        return BatchFileError(path, "nested too deeply to read", number)


def _check_row(path: Path, number: int, row: Any, kind: RowKind | None) -> RowKind:
    def bad(message: str) -> BatchFileError:
        return BatchFileError(path, message, number)

    if not isinstance(row, dict):
        raise bad(f"expected an object with query and documents, got {type(row).__name__}")
    where = find_lone_surrogate(row, "")
    if where is not None:  # UTF-8 cannot encode it: not the tokenizer's, nor the output's
        raise bad(f"{where}: contains a lone surrogate (not valid Unicode text)")
    query = row.get("query")
    if not isinstance(query, str) or not query.strip():
        raise bad(f"query: must be a non-empty string, got {query!r}")
    if ("documents" in row) == ("document" in row):
        raise bad("needs 'documents' (a list of strings) or 'document' (a string), not both")
    row_kind: RowKind = "documents" if "documents" in row else "document"
    if kind is not None and row_kind != kind:
        raise bad(f"has '{row_kind}' but the rows before it have '{kind}'; one shape per file")
    if row_kind == "document":
        if not isinstance(row["document"], str):
            raise bad(f"document: must be a string, got {type(row['document']).__name__}")
        return row_kind
    documents = row["documents"]
    if not isinstance(documents, list):
        raise bad(f"documents: must be a list of strings, got {type(documents).__name__}")
    for i, document in enumerate(documents):
        if not isinstance(document, str):
            raise bad(f"documents[{i}]: must be a string, got {type(document).__name__}")
    return row_kind


class _Rejects:
    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.file: Any = None

    def __enter__(self) -> Any:
        return self.write

    def write(self, number: int, error: str, text: str) -> None:
        if self.file is None:
            assert self.path is not None
            self.file = self.path.open("w", encoding="utf-8")
        self.file.write(json.dumps({"row": number, "error": error, "input": text}) + "\n")

    def __exit__(self, *exc_info: object) -> None:
        if self.file is not None:
            self.file.close()


class ShardStore:
    """The output of a batch job, written shard by shard into ``OUTPUT.parts/`` and merged into
    ``OUTPUT`` at the end.

    A shard file appears only once complete (written aside, then renamed), so after a crash a
    rerun of the same job finds the finished shards and skips them. ``job.json`` records what
    the shards were computed from; shards of another job are refused, never mixed in.
    """

    def __init__(self, output: Path, shard_rows: int, job: dict[str, Any]) -> None:
        self.output = output
        self.suffix = _suffix(output)
        self.shard_rows = shard_rows
        self.parts = output.with_name(output.name + ".parts")
        manifest = self.parts / "job.json"
        job = {**job, "shard_rows": shard_rows}
        if manifest.exists():
            before = json.loads(manifest.read_text(encoding="utf-8"))
            if before != job:
                changed = sorted(
                    k for k in job.keys() | before.keys() if job.get(k) != before.get(k)
                )
                raise BatchFileError(
                    self.parts,
                    f"holds shards of another job ({', '.join(changed)} changed); "
                    "delete it to start over",
                )
        else:
            self.parts.mkdir(parents=True, exist_ok=True)
            _write_atomic(manifest, json.dumps(job, indent=1).encode())

    def shards(self, rows: int) -> list[range]:
        """The row ranges of the shards of a job of ``rows`` rows."""
        return [range(s, min(s + self.shard_rows, rows)) for s in range(0, rows, self.shard_rows)]

    def path(self, shard: int) -> Path:
        """The file of shard number ``shard``."""
        return self.parts / f"part-{shard:05d}{self.suffix}"

    def done(self, shard: int) -> bool:
        """Shard ``shard`` was written completely."""
        return self.path(shard).exists()

    def write(self, shard: int, rows: Sequence[dict[str, Any]]) -> None:
        """Write shard ``shard`` (atomically: it exists complete or not at all)."""
        _write_atomic(self.path(shard), _encode(rows, self.suffix))

    def merge(self, count: int) -> None:
        """Join shards ``0 .. count-1`` into the output file and remove the parts folder."""
        tmp = self.output.with_name(self.output.name + ".tmp")
        try:
            self._join(count, tmp)
            os.replace(tmp, self.output)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise BatchFileError(
                self.output,
                f"cannot write it ({exc.strerror or exc}); the shards stay in {self.parts}",
            ) from None
        shutil.rmtree(self.parts)

    def _join(self, count: int, tmp: Path) -> None:
        if self.suffix == ".jsonl":
            with tmp.open("wb") as out:
                for shard in range(count):
                    with self.path(shard).open("rb") as part:
                        shutil.copyfileobj(part, out)
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            tables = [pq.read_table(self.path(shard)) for shard in range(count)]
            table = pa.concat_tables(tables, promote_options="default") if tables else pa.table({})
            pq.write_table(table, tmp)


def _encode(rows: Sequence[dict[str, Any]], suffix: str) -> bytes:
    if suffix == ".jsonl":
        return "".join(_json_line(row) for row in rows).encode()
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pylist(list(rows)), sink)
    return bytes(sink.getvalue())


def _json_line(row: dict[str, Any]) -> str:
    """``row`` as one line of valid JSON: a NaN or infinity (from Parquet) written as null."""
    try:
        return json.dumps(row, ensure_ascii=False, allow_nan=False) + "\n"
    except ValueError:
        return json.dumps(_finite(row), ensure_ascii=False, allow_nan=False) + "\n"


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(inner) for key, inner in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(inner) for inner in value]
    return value


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
