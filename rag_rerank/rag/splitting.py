"""Split documents into overlapping chunks for the vector store (plain text and Markdown).

Pure functions on strings. A chunk is at most ``chunk_size`` characters; consecutive chunks of one
section share up to ``chunk_overlap`` characters. Text is cut at the coarsest boundary that fits:
blank lines (paragraphs), then line breaks, then sentence ends, then spaces, and only as a last
resort inside a word. Markdown is first cut into sections at its headings (never inside a fenced
code block), so a chunk never spans two sections and carries its heading.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import InvalidInputError, InvalidInputTypeError

__all__ = [
    "DEFAULT_CHUNK_OVERLAP",
    "DEFAULT_CHUNK_SIZE",
    "TextChunk",
    "split_markdown",
    "split_text",
]

DEFAULT_CHUNK_SIZE = 1000
"""Characters per chunk: a few paragraphs, well inside a cross-encoder's 512-token window."""

DEFAULT_CHUNK_OVERLAP = 200
"""Characters shared by consecutive chunks, so a sentence cut at a boundary is whole in one."""

_SEPARATORS = (
    re.compile(r"\n\s*\n"),
    re.compile(r"\n"),
    re.compile(r"(?<=[.!?])\s+"),
    re.compile(r"\s+"),
)
_HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)[ \t#]*$")
_FENCE = re.compile(r"^ {0,3}(```|~~~)")


@dataclass(frozen=True, slots=True)
class TextChunk:
    """One chunk of a document.

    Attributes:
        text: The chunk, stripped of surrounding whitespace.
        start: Character offset of ``text`` in the document.
        heading: The Markdown heading of the section the chunk is in (``""`` for none or for
            plain text).
    """

    text: str
    start: int
    heading: str = ""


def check_chunking(chunk_size: object, chunk_overlap: object) -> None:
    """Raise a typed error naming the bad option unless ``0 <= chunk_overlap < chunk_size``."""
    for field, value in (("chunk_size", chunk_size), ("chunk_overlap", chunk_overlap)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidInputTypeError(field, f"must be an int, got {type(value).__name__}")
    assert isinstance(chunk_size, int) and isinstance(chunk_overlap, int)
    if chunk_size < 1:
        raise InvalidInputError("chunk_size", f"must be at least 1, got {chunk_size}")
    if not 0 <= chunk_overlap < chunk_size:
        raise InvalidInputError(
            "chunk_overlap", f"must be in [0, chunk_size={chunk_size}), got {chunk_overlap}"
        )


def split_text(
    text: str,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    chunk_overlap: int = DEFAULT_CHUNK_OVERLAP,
) -> list[TextChunk]:
    """Cut plain text into chunks of at most ``chunk_size`` characters.

    Args:
        text: The document.
        chunk_size: Most characters in one chunk.
        chunk_overlap: Most characters repeated from the end of one chunk at the start of the next.

    Returns:
        The chunks in document order; ``[]`` for empty or whitespace-only text.

    Example:
        >>> [c.text for c in split_text("One. Two.\\n\\nThree.", chunk_size=10, chunk_overlap=0)]
        ['One. Two.', 'Three.']
    """
    check_chunking(chunk_size, chunk_overlap)
    return _split_span(text, 0, len(text), chunk_size, chunk_overlap, "")


def split_markdown(
    text: str,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    chunk_overlap: int = DEFAULT_CHUNK_OVERLAP,
) -> list[TextChunk]:
    """Cut Markdown into sections at its headings, then each section like :func:`split_text`.

    Each chunk's ``heading`` is the text of the heading its section starts with; the heading line
    itself stays in the chunk text, together with the start of the text under it, so the reranker
    reads both. A heading with no text under it is never a chunk of its own: it goes with the
    section that follows (``# Guide`` then ``## Install``), or, at the end, is dropped.
    """
    check_chunking(chunk_size, chunk_overlap)
    chunks: list[TextChunk] = []
    for start, body, end, heading in _markdown_sections(text):
        chunks.extend(_split_span(text, start, end, chunk_size, chunk_overlap, heading, body))
    return chunks


def _markdown_sections(text: str) -> list[tuple[int, int, int, str]]:
    """``(start, body start, end, heading)`` per section with text under its heading lines."""
    sections: list[tuple[int, int, int, str]] = []
    section_start, body_start, heading, fence = 0, 0, "", None
    offset = 0
    for line in text.splitlines(keepends=True):
        stripped = line.rstrip("\r\n")
        fence_match = _FENCE.match(stripped)
        if fence_match:
            marker = fence_match.group(1)
            fence = None if fence == marker else (fence or marker)
        elif fence is None:
            match = _HEADING.match(stripped)
            if match:
                if text[body_start:offset].strip():
                    sections.append((section_start, body_start, offset, heading))
                    section_start = offset
                elif not heading:  # blank preamble: nothing to keep
                    section_start = offset
                # else: a heading with nothing under it stays with the next section
                heading, body_start = match.group(2).strip(), offset + len(line)
        offset += len(line)
    if text[body_start:].strip():
        sections.append((section_start, body_start, len(text), heading))
    return sections


def _split_span(
    text: str,
    start: int,
    end: int,
    chunk_size: int,
    chunk_overlap: int,
    heading: str,
    body: int | None = None,
) -> list[TextChunk]:
    if body is None or body <= start:
        pieces = _pieces(text, start, end, chunk_size, 0)
    else:
        # The heading lines and the first piece of the text under them are one piece.
        pieces = _pieces(text, body, end, max(1, chunk_size - (body - start)), 0)
        pieces[0] = (start, pieces[0][1])
    chunks: list[TextChunk] = []
    window: list[tuple[int, int]] = []  # pieces in the chunk being built, as (start, end) spans
    for piece in pieces:
        if window and piece[1] - window[0][0] > chunk_size:
            chunks.append(_chunk(text, window[0][0], window[-1][1], heading))
            # Keep trailing pieces for the overlap, while they and the next piece still fit.
            kept: list[tuple[int, int]] = []
            for prev in reversed(window):
                if window[-1][1] - prev[0] > chunk_overlap or piece[1] - prev[0] > chunk_size:
                    break
                kept.insert(0, prev)
            window = kept
        window.append(piece)
    if window:
        chunks.append(_chunk(text, window[0][0], window[-1][1], heading))
    return [c for c in chunks if c.text]


def _chunk(text: str, start: int, end: int, heading: str) -> TextChunk:
    raw = text[start:end]
    stripped = raw.lstrip()
    return TextChunk(stripped.rstrip(), start + len(raw) - len(stripped), heading)


def _pieces(text: str, start: int, end: int, chunk_size: int, level: int) -> list[tuple[int, int]]:
    """Spans covering ``text[start:end]``, each at most ``chunk_size`` long, cut at separators.

    A separator stays with the piece before it, so the pieces tile the span exactly.
    """
    if end - start <= chunk_size:
        return [(start, end)]
    if level == len(_SEPARATORS):
        return [(i, min(i + chunk_size, end)) for i in range(start, end, chunk_size)]
    spans: list[tuple[int, int]] = []
    piece_start = start
    for match in _SEPARATORS[level].finditer(text, start, end):
        if match.end() > piece_start and match.start() > piece_start:
            spans.append((piece_start, match.end()))
            piece_start = match.end()
    if piece_start < end:
        spans.append((piece_start, end))
    pieces: list[tuple[int, int]] = []
    for span in spans:
        pieces.extend(_pieces(text, span[0], span[1], chunk_size, level + 1))
    return pieces
