"""clean="html": the text a reader sees is scored; the caller gets its own document back."""

from __future__ import annotations

import pytest

from rag_rerank import Reranker
from rag_rerank.core.cleaning import clean_documents, clean_html

PAGE = """<!doctype html><html><head><title>Loans</title><style>p {color: red}</style>
<script>var tracking = "<p>not text</p>";</script></head>
<body><!-- navigation --><nav>Home</nav><h1>Boat   loans</h1>
<p>The bank lends money&nbsp;at a <b>fair</b> rate &amp; fast.</p><ul><li>one</li><li>two</li></ul>
line<br>break<noscript>enable js</noscript></body></html>"""


def test_clean_html_keeps_the_visible_text() -> None:
    assert clean_html(PAGE) == (
        "Home\nBoat loans\nThe bank lends money at a fair rate & fast.\none\ntwo\nline\nbreak"
    )


@pytest.mark.parametrize(
    ("html", "text"),
    [
        ("plain   text\n\n\nhere", "plain text\nhere"),
        ("a &lt;b&gt; &#233; &eacute;", "a <b> é é"),
        ("<p>unclosed <i>tags", "unclosed tags"),
        ("<script>only script", ""),
        ("<!-- only a comment -->", ""),
        ("x < y and y > z", "x < y and y > z"),
        ("", ""),
    ],
)
def test_clean_html_cases(html: str, text: str) -> None:
    assert clean_html(html) == text


def test_clean_documents_is_a_copy() -> None:
    docs = ["<b>a</b>"]
    assert clean_documents(docs, None) == docs and clean_documents(docs, None) is not docs
    assert clean_documents(docs, "html") == ["a"] and docs == ["<b>a</b>"]


def test_reranker_scores_cleaned_text_and_returns_originals(bert_dir: str) -> None:
    rr = Reranker(bert_dir, show_progress=False, cache=None)
    cleaning = rr.with_options(clean="html")
    try:
        docs = [PAGE, "<p>Pandas eat <em>bamboo</em></p>", "<script>x()</script><!-- -->"]
        results = cleaning.rerank("bank loans", docs)
        assert sorted(r.document for r in results) == sorted(docs)
        expected = rr.score("bank loans", [clean_html(d) for d in docs])
        assert cleaning.score("bank loans", docs) == expected
        # Empty after cleaning: scored as an empty document is, not dropped.
        assert cleaning.score("bank loans", [docs[2]]) == rr.score("bank loans", [""])
        assert len(results) == 3
        assert cleaning.cleaned(docs)[1] == "Pandas eat bamboo"
    finally:
        rr.close()
