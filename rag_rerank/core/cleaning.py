"""Clean documents before scoring (``clean="html"``): the text a reader sees, not the markup.

Web-loaded documents carry tags, scripts, styles and comments that cost tokens and move scores.
The cleaning runs on Python's own HTML parser (:mod:`html.parser`, maintained with CPython and
tolerant of broken markup, as browsers are), never on regular expressions. Only the scored text is
cleaned: results carry the caller's original document. Imports no torch.

The parser looks for the end of every markup construct it meets; one that never ends (``<a``
with no ``>`` after it) it rescans at each later ``<``, which made 40 kB of ``<a `` cost 14 s
(quadratic and worse). :func:`clean_html` first turns the ``<`` of every construct that cannot
end into text (``&lt;``, which the parser reads back as ``<``), so the parser meets only
constructs it can finish: linear in the input, with the same text out.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from html.parser import HTMLParser

from ..api import CleanMode

__all__ = ["BLOCK_ELEMENTS", "clean_documents", "clean_html"]

BLOCK_ELEMENTS = frozenset(
    {
        "address", "article", "aside", "blockquote", "br", "caption", "dd", "details", "div",
        "dl", "dt", "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4",
        "h5", "h6", "header", "hr", "li", "main", "nav", "ol", "p", "pre", "section", "summary",
        "table", "tbody", "td", "tfoot", "th", "thead", "title", "tr", "ul",
    }
)  # fmt: skip
"""Elements that start a new line of text (their start and end tags become line breaks)."""

_COMMENT_END = re.compile(r"--\s*>")  # what ends a comment for html.parser (its own pattern)

_DROPPED = frozenset({"script", "style", "noscript", "template", "head", "iframe", "svg"})
# Whitespace runs inside a line; line breaks are handled apart. (Used on parsed text only, never
# to parse markup.)
_SPACES = re.compile(r"[^\S\n]+")


class _TextExtractor(HTMLParser):
    """Collects the visible text; ``convert_charrefs`` unescapes entities (``&amp;`` -> ``&``)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._dropped = 0  # depth inside script/style/... whose content is not text

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _DROPPED:
            self._dropped += 1
        elif tag in BLOCK_ELEMENTS:
            self.parts.append("\n")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in BLOCK_ELEMENTS:  # <br/>, <hr/>
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _DROPPED:
            self._dropped = max(0, self._dropped - 1)
        elif tag in BLOCK_ELEMENTS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._dropped:
            self.parts.append(data)

    # Comments, doctypes, processing instructions: not text (the base class ignores them).


def clean_html(text: str) -> str:
    """The visible text of an HTML document or fragment.

    Drops tags, the contents of ``script``, ``style``, ``noscript``, ``template``, ``head``,
    ``iframe`` and ``svg``, comments and doctypes; unescapes entities; turns block elements
    (paragraphs, headings, list items, table cells, ``<br>``, ...) into line breaks; collapses
    runs of spaces and blank lines. Plain text comes back with its whitespace collapsed.

    Example:
        >>> clean_html("<p>Pandas &amp; bears</p><script>track()</script><p>eat bamboo</p>")
        'Pandas & bears\\neat bamboo'
    """
    parser = _TextExtractor()
    parser.feed(_endable(text))
    parser.close()
    lines = (_SPACES.sub(" ", line).strip() for line in "".join(parser.parts).split("\n"))
    return "\n".join(line for line in lines if line)


def _endable(text: str) -> str:
    """``text`` with the ``<`` of every construct that can never end escaped as ``&lt;``.

    After the last ``>`` no tag, comment or declaration can end; after the last comment end no
    comment can. A marked section (``<![``) becomes a bogus comment, as browsers read it (the
    parser's own reading can fail on a malformed one). Each step is one pass over ``text``.
    """
    last_gt = text.rfind(">")
    head, tail = text[: last_gt + 1], text[last_gt + 1 :].replace("<", "&lt;")
    head = head.replace("<![", "<!-[")  # a bogus comment up to the next ">"
    last_comment_end = -1
    for match in _COMMENT_END.finditer(head):
        last_comment_end = match.start()
    unended = head.find("<!--", last_comment_end + 1)
    if unended >= 0:
        head = head[:unended] + head[unended:].replace("<!--", "&lt;!--")
    return head + tail


def clean_documents(documents: Sequence[str], mode: CleanMode | None) -> list[str]:
    """``documents`` as they are scored under ``clean=mode`` (a new list; ``None``: unchanged)."""
    if mode is None:
        return list(documents)
    return [clean_html(document) for document in documents]
