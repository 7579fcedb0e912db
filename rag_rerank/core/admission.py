"""What a request costs at admission, counted before tokenizing: :func:`estimated_windows` (the
engine's queue limit and the server's request limits count work in these windows) on top of
:func:`estimated_tokens`. Pure: no torch, no tokenizer."""

from __future__ import annotations

from collections.abc import Sequence

from .windows import query_token_limit, window_overlap

__all__ = ["CHARS_PER_TOKEN", "estimated_tokens", "estimated_windows"]

CHARS_PER_TOKEN = 4
"""Characters per token assumed when admission estimates a document's windows before
tokenizing it (English text averages about 4 with WordPiece and SentencePiece vocabularies)."""

_SPECIAL_TOKENS = 4  # a pair's [CLS] q [SEP] d [SEP] (3) or <s> q </s></s> d </s> (4)
_ASCII_ALNUM = bytes(range(48, 58)) + bytes(range(65, 91)) + bytes(range(97, 123))
_ASCII_SPACE = b" \t\n\r\x0b\x0c"
_NON_ASCII = bytes(range(128, 256))


def estimated_tokens(text: str) -> int:
    """An upper estimate of the tokens ``text`` tokenizes to, without tokenizing: a token per
    :data:`CHARS_PER_TOKEN` ASCII letters and digits, a token per other visible ASCII character
    (punctuation is a token each) and a token per non-ASCII character (CJK text runs about one
    token per character). Linear in the text and C-speed (byte translations), so admission can
    afford it on the event loop."""
    if text.isascii():
        data = text.encode("ascii")
        non_ascii = 0
    else:
        data = text.encode("utf-8", "surrogatepass").translate(None, _NON_ASCII)
        non_ascii = len(text) - len(data)
    words = len(data) - len(data.translate(None, _ASCII_ALNUM))
    others = len(data.translate(None, _ASCII_ALNUM + _ASCII_SPACE))
    return -(-words // CHARS_PER_TOKEN) + others + non_ascii


def estimated_windows(
    documents: Sequence[str], max_length: int, *, queries: Sequence[str] = ()
) -> int:
    """The work ``documents`` cost at admission, in windows of ``max_length`` tokens: one per
    document plus one per further stretch of text a window advances by (``max_length`` less the
    query, the special tokens and the overlap of consecutive windows), counting tokens with
    :func:`estimated_tokens`; and for the ``queries``, one window per ``max_length`` tokens of
    each distinct query (a query is tokenized once per request, however many documents it comes
    with). Counted before tokenizing (cheap), so a 1 MB document counts as the windows it may
    fill rather than as one pair, and punctuation or CJK text is not undercounted 4-5 times."""
    distinct = {query: estimated_tokens(query) for query in queries}
    query_tokens = min(max(distinct.values(), default=0), query_token_limit(max_length))
    document_tokens = max_length - query_tokens - _SPECIAL_TOKENS
    advance = max(1, document_tokens - window_overlap(max_length, 0))  # the most overlap
    work = sum(1 + estimated_tokens(document) // advance for document in documents)
    return work + sum(tokens // max(1, max_length) for tokens in distinct.values())
