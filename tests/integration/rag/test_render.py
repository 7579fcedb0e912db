"""The HTML cards and the rich table, on results built by hand and on core RerankResults."""

from __future__ import annotations

import re
from html.parser import HTMLParser

from rich.console import Console

from rag_rerank import RerankResult
from rag_rerank.rag import PipelineResult, PipelineResults
from rag_rerank.render import (
    ABOVE_COLOR,
    BELOW_COLOR,
    highlight,
    print_comparison,
    render_comparison,
    render_html,
    render_rerank_table,
    render_table,
)


def result(rank: int, retrieval_rank: int, score: float, text: str) -> PipelineResult:
    return PipelineResult(
        id=f"doc-{retrieval_rank}#0",
        document=text,
        metadata={},
        rank=rank,
        retrieval_rank=retrieval_rank,
        distance=0.1 * retrieval_rank,
        score=score,
        raw_score=round(score * 10 - 5, 3),
    )


CANDIDATES = (
    result(1, 3, 0.91234, "Apples are a fruit rich in fibre."),
    result(2, 1, 0.75, "Apple the company sells iPhones."),
    result(3, 2, 0.4, "Bananas <b>are</b> yellow & sweet."),
    result(4, 4, 0.05, "Pandas eat bamboo."),
)


class Collector(HTMLParser):
    """Elements with a class, in document order, with their attributes and text."""

    def __init__(self) -> None:
        super().__init__()
        self.elements: list[dict] = []
        self.stack: list[dict] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        element = {"tag": tag, **dict(attrs), "text": ""}
        self.elements.append(element)
        self.stack.append(element)

    def handle_endtag(self, tag: str) -> None:
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        for element in self.stack:
            element["text"] += data

    def with_class(self, name: str) -> list[dict]:
        return [e for e in self.elements if name in e.get("class", "").split()]


def parse(markup: str) -> Collector:
    collector = Collector()
    collector.feed(markup)
    assert collector.stack == [], "unbalanced HTML"
    return collector


def test_cards_in_order_with_scores_bars_and_colours() -> None:
    kept = CANDIDATES[:3]
    page = parse(render_html("fruit fibre?", kept, threshold=0.5, candidates=CANDIDATES))
    cards = page.with_class("rr-card")
    assert [c["data-rank"] for c in cards] == ["1", "2", "3"]
    assert [c["data-score"] for c in cards] == ["0.9123", "0.7500", "0.4000"]
    assert [r["text"] for r in page.with_class("rr-rank")] == ["#1", "#2", "#3"]
    assert [s["text"] for s in page.with_class("rr-score")] == ["0.9123", "0.7500", "0.4000"]
    raws = page.with_class("rr-raw")
    assert [r["text"] for r in raws] == ["raw +4.1230", "raw +2.5000", "raw -1.0000"]
    assert all("color:#999" in r["style"] and "font-size" in r["style"] for r in raws)
    bars = page.with_class("rr-bar")
    assert [re.search(r"width:([\d.]+)%", b["style"])[1] for b in bars] == [
        "91.23",
        "75.00",
        "40.00",
    ]
    # Green at or above the threshold, red below.
    assert [ABOVE_COLOR in b["style"] for b in bars] == [True, True, False]
    assert [BELOW_COLOR in b["style"] for b in bars] == [False, False, True]
    assert [("rr-above" in c["class"]) for c in cards] == [True, True, False]
    assert [c["text"].strip() for c in page.with_class("rr-text")] == [r.document for r in kept]
    assert [m["text"] for m in page.with_class("rr-moved")] == [
        "retrieval #3 ▲2",
        "retrieval #1 ▼1",
        "retrieval #2 ▼1",
    ]


def test_candidate_table_lists_every_candidate_with_rank_movement() -> None:
    markup = render_html("fruit", CANDIDATES[:1], threshold=0.5, candidates=CANDIDATES)
    page = parse(markup)
    details = [e for e in page.elements if e["tag"] == "details"]
    assert len(details) == 1 and "All 4 candidates" in details[0]["text"]
    rows = page.with_class("rr-candidate")
    assert len(rows) == 4
    cells = [[e["text"] for e in _cells(page, row) if e["tag"] == "td"] for row in rows]
    assert [c[0] for c in cells] == [c.id for c in CANDIDATES]
    assert [c[1] for c in cells] == [c.document for c in CANDIDATES]
    assert [c[2] for c in cells] == [f"{c.raw_score:+.4f}" for c in CANDIDATES]
    assert [c[3] for c in cells] == [f"{c.score:.4f}" for c in CANDIDATES]
    assert [c[4] for c in cells] == ["3 → 1", "1 → 2", "2 → 3", "4 → 4"]
    assert [("rr-above" in r["class"]) for r in rows] == [True, True, False, False]


def _cells(page: Collector, row: dict) -> list[dict]:
    start = page.elements.index(row)
    cells = []
    for element in page.elements[start + 1 :]:
        if element["tag"] == "tr":
            break
        cells.append(element)
    return cells


def test_query_words_are_highlighted_and_text_is_escaped() -> None:
    markup = highlight("Apples and an APPLE pie <script>alert(1)</script>", "What is an apple?")
    assert markup.count("<mark") == 2
    assert ">Apples</mark>" in markup and ">APPLE</mark>" in markup
    assert "<script>" not in markup and "&lt;script&gt;" in markup
    # Stop words ("what", "is", "an") are not highlighted; a word inside another is not either.
    assert ">an</mark>" not in markup
    assert "<mark" not in highlight("pineapple", "apple")
    page = render_html("bananas sweet", CANDIDATES[2:3], candidates=None)
    assert "<b>are</b>" not in page and "&lt;b&gt;are&lt;/b&gt;" in page
    assert "&amp;" in page


def test_no_threshold_is_all_green_and_no_results_says_so() -> None:
    page = parse(render_html("q", CANDIDATES, threshold=None, candidates=CANDIDATES))
    assert all(ABOVE_COLOR in b["style"] for b in page.with_class("rr-bar"))
    empty = parse(render_html("q", (), threshold=0.99, candidates=CANDIDATES))
    assert empty.with_class("rr-card") == []
    assert "passed the threshold" in empty.with_class("rr-empty")[0]["text"]
    assert len(empty.with_class("rr-candidate")) == 4


def test_pipeline_results_repr_html_is_the_shared_renderer() -> None:
    results = PipelineResults(
        query="fruit fibre",
        results=CANDIDATES[:2],
        candidates=CANDIDATES,
        threshold=0.5,
        top_n=2,
        k=50,
    )
    assert results._repr_html_() == render_html("fruit fibre", CANDIDATES[:2], 0.5, CANDIDATES)


def test_core_rerank_results_render_too() -> None:
    ranked = [RerankResult(2, 0.8, 1.386, "third input"), RerankResult(0, 0.3, -0.847, "first")]
    page = parse(render_html("input", ranked, threshold=0.5, candidates=ranked))
    assert [c["data-rank"] for c in page.with_class("rr-card")] == ["1", "2"]
    assert [m["text"] for m in page.with_class("rr-moved")] == [
        "retrieval #3 ▲2",
        "retrieval #1 ▼1",
    ]
    assert "rr-below" in page.with_class("rr-card")[1]["class"]


def test_rich_table_lists_results_in_order() -> None:
    console = Console(record=True, width=120, color_system=None)
    console.print(render_table("fruit fibre", CANDIDATES[:3], threshold=0.5, candidates=4))
    text = console.export_text()
    positions = [text.index(r.id) for r in CANDIDATES[:3]]
    assert positions == sorted(positions)
    assert "0.9123" in text and "3 ▲2" in text and "3 results of 4 candidates" in text
    results = PipelineResults("q", CANDIDATES[:1], CANDIDATES, None, 1, 50)
    console.print(results)
    assert "1 result of 4 candidates" in console.export_text()


def test_rerank_table_draws_plain_rerank_results() -> None:
    ranked = [
        RerankResult(2, 0.8, 1.386, "third input"),
        RerankResult(0, 0.3, -0.847, "first input"),
    ]
    console = Console(record=True, width=100, color_system=None)
    console.print(render_rerank_table("which input?", ranked, threshold=0.5, candidates=3))
    text = console.export_text()
    assert "Query: which input?" in text and "2 results of 3 candidates, threshold 0.5000" in text
    assert text.index("third input") < text.index("first input")
    assert "0.8000" in text and "+1.386" in text and "-0.847" in text
    rows = [line for line in text.splitlines() if "input" in line and "│" in line]
    assert [row.split("│")[4].strip() for row in rows if "third" in row or "first" in row] == [
        "2",
        "0",
    ]  # the input index, by default

    console = Console(record=True, width=100, color_system=None)
    table = render_rerank_table("q", ranked, sources=[11, 12, 13], source_header="line")
    console.print(table)
    text = console.export_text()
    assert [c.header for c in table.columns] == ["#", "score", "raw", "line", "text"]
    assert "13" in text and "11" in text and "2 results" in text and "candidates" not in text


def test_rerank_table_colours_scores_against_the_threshold() -> None:
    ranked = [RerankResult(0, 0.9, 2.2, "above"), RerankResult(1, 0.1, -2.2, "below")]
    table = render_rerank_table("q", ranked, threshold=0.5)
    styles = [cell.style for cell in table.columns[1].cells]
    assert styles == ["green", "red"]
    assert [c.style for c in render_rerank_table("q", ranked).columns[1].cells] == [
        "green",
        "green",
    ]


def comparison_results() -> PipelineResults:
    candidates = tuple(
        PipelineResult(
            id=f"{doc}#0",
            document=f"passage {doc}",
            metadata={"doc_id": doc},
            rank=rank,
            retrieval_rank=retrieval_rank,
            distance=0.1 * retrieval_rank,
            score=score,
            raw_score=0.0,
        )
        for rank, (doc, retrieval_rank, score) in enumerate(
            [("answer", 3, 0.9), ("near", 1, 0.6), ("other", 2, 0.2)], 1
        )
    )
    return PipelineResults("the question", candidates[:2], candidates, 0.5, 2, 10)


def test_comparison_puts_store_order_beside_reranked_order() -> None:
    console = Console(record=True, width=140, color_system=None)
    before, after = print_comparison(console, comparison_results(), ("answer",), top=3)
    assert (before, after) == (3, 1)
    text = console.export_text()
    assert "the question" in text and "3 candidates" in text
    first_row = next(line for line in text.splitlines() if line.lstrip("│ ").startswith("1 "))
    # Left: nearest in the store ("near", distance 0.100); right: best reranked, starred.
    assert first_row.index("near (0.100)") < first_row.index("★ answer (0.9000, from #3)")
    assert "answering passage: vector store #3 -> reranked #1" in text
    assert render_comparison(comparison_results(), ("answer",), top=1).row_count == 1


def test_comparison_without_the_answer_says_so() -> None:
    console = Console(record=True, width=140, color_system=None)
    assert print_comparison(console, comparison_results(), ("missing",)) == (None, None)
    assert "not among the candidates" in console.export_text()
