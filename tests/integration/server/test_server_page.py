"""The web console at ``GET /`` in headless Chromium (Debian's /usr/bin/chromium via playwright)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from urllib.parse import urlparse

import pytest
from server_testing import live_server

from rag_rerank import Reranker
from rag_rerank.server import create_app

sync_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
KEY = "page-key"
GREEN = "rgb(46, 125, 50)"
RED = "rgb(198, 40, 40)"
QUERY = "Which bank lends money for a boat?"
CANDIDATES = [
    "The bank lends money at a fair interest rate.",
    "Fishing boats line the river bank at dawn.",
    "Pandas eat bamboo in the mountains.",
    "A boat loan needs a deposit <b>and</b> a credit check.",
    "Interest compounds monthly on savings.",
    "北京是中华人民共和国的首都。",
]

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs /usr/bin/chromium")


@pytest.fixture(scope="module")
def url(rr: Reranker) -> Iterator[str]:
    with live_server(create_app(rr, api_key=KEY)) as base_url:
        yield base_url


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


def _threshold_between(scores: list[float]) -> float:
    """A slider value (step 0.01) with scores on both sides and none within rounding of it."""
    candidates = [t / 100 for t in range(1, 100)]
    both_sides = [t for t in candidates if min(scores) < t <= max(scores)]
    return max(both_sides, key=lambda t: min(abs(s - t) for s in scores))


def test_console_ranks_colours_and_highlights(url: str, rr: Reranker, browser) -> None:
    expected = rr.rerank(QUERY, CANDIDATES)
    threshold = _threshold_between([r.score for r in expected])
    context = browser.new_context(http_credentials={"username": "console", "password": KEY})
    page = context.new_page()
    hosts: set[str] = set()
    page.on("request", lambda request: hosts.add(urlparse(request.url).hostname or ""))
    try:
        page.goto(f"{url}/")
        sync_api.expect(page.locator("#model")).to_contain_text("cpu", timeout=30_000)
        page.fill("#query", QUERY)
        page.fill("#candidates", "\n".join(CANDIDATES[:3]) + "\n\n" + "\n".join(CANDIDATES[3:]))
        page.locator("#threshold").fill(f"{threshold:.2f}")
        page.click("#rerank")
        page.wait_for_selector(".rr-card")
        cards = page.locator(".rr-card")
        assert cards.count() == len(CANDIDATES)
        for rank, result in enumerate(expected):
            card = cards.nth(rank)
            assert int(card.get_attribute("data-index")) == result.index
            assert card.locator(".rr-rank").inner_text() == f"#{rank + 1}"
            assert float(card.locator(".rr-score").inner_text()) == pytest.approx(
                result.score, abs=1.01e-4
            )
            assert len(card.locator(".rr-score").inner_text().split(".")[1]) == 4
            raw = card.locator(".rr-raw")
            assert float(raw.inner_text().removeprefix("raw ")) == pytest.approx(
                result.raw_score, abs=1.01e-4
            )
            assert raw.evaluate("e => getComputedStyle(e).color") == "rgb(136, 136, 136)"
            bar = card.locator(".rr-bar")
            width = bar.evaluate("e => e.getBoundingClientRect().width")
            track = card.locator(".rr-track").evaluate("e => e.getBoundingClientRect().width")
            assert width / track == pytest.approx(result.score, abs=0.01)
            above = result.score >= threshold
            assert ("rr-above" if above else "rr-below") in card.get_attribute("class")
            assert bar.evaluate("e => getComputedStyle(e).backgroundColor") == (
                GREEN if above else RED
            )
            # The text is shown as text (no HTML injection), query words highlighted.
            assert card.locator(".rr-text").inner_text() == result.document
            marks = [m.lower() for m in card.locator(".rr-hl").all_inner_texts()]
            words = {"bank", "lends", "money", "boat"}
            assert set(marks) <= words
            assert {w for w in words if w in result.document.lower().split()} <= set(marks)
        assert page.locator(".rr-card b").count() == 0

        # The raw table opens and lists the same ranking.
        page.click("#raw summary")
        rows = page.locator("#raw-rows tr")
        assert rows.count() == len(CANDIDATES)
        assert [
            int(rows.nth(i).locator("td").nth(1).inner_text()) for i in range(len(expected))
        ] == [r.index for r in expected]

        # Moving the slider re-colours the cards without a new request.
        page.locator("#threshold").fill("0")
        assert page.locator(".rr-card.rr-below").count() == 0
        page.locator("#threshold").fill("1")
        assert page.locator(".rr-card.rr-above").count() == 0

        # A missing query is reported, not sent.
        page.fill("#query", "  ")
        page.click("#rerank")
        assert "Enter a query" in page.inner_text("#status")
        assert hosts == {"127.0.0.1"}  # nothing from the internet
    finally:
        context.close()


def test_console_needs_the_key(url: str, browser) -> None:
    context = browser.new_context()
    try:
        response = context.request.get(f"{url}/")
        assert response.status == 401
        assert response.headers["www-authenticate"].startswith("Basic")  # the browser asks
        with pytest.raises(sync_api.Error, match="AUTH"):
            context.new_page().goto(f"{url}/")  # headless: no one to type the key
    finally:
        context.close()


def test_console_shows_the_cleaned_text_on_request(bert_dir: str, browser) -> None:
    cleaning = Reranker(bert_dir, show_progress=False, clean="html")
    html = "<p>A boat <b>loan</b> &amp; a bank</p><script>track()</script>"
    try:
        with live_server(create_app(cleaning)) as base_url:
            context = browser.new_context()
            page = context.new_page()
            try:
                page.goto(f"{base_url}/")
                # The page's CSP forbids eval, so waits are locator assertions, not JS strings.
                sync_api.expect(page.locator("#model")).to_contain_text("html", timeout=30_000)
                assert page.locator("#cleaned-toggle").is_visible()
                page.fill("#query", QUERY)
                page.fill("#candidates", html)
                page.click("#rerank")
                page.wait_for_selector(".rr-card")
                assert page.locator(".rr-text").inner_text() == html  # what was sent
                page.check("#show-cleaned")
                sync_api.expect(page.locator(".rr-text")).to_have_text(
                    "A boat loan & a bank", timeout=30_000
                )
                page.uncheck("#show-cleaned")
                assert page.locator(".rr-text").inner_text() == html
            finally:
                context.close()
    finally:
        cleaning.close()


def test_console_hides_the_toggle_without_cleaning(url: str, browser) -> None:
    context = browser.new_context(http_credentials={"username": "console", "password": KEY})
    page = context.new_page()
    try:
        page.goto(f"{url}/")
        sync_api.expect(page.locator("#model")).to_contain_text("cpu", timeout=30_000)
        assert not page.locator("#cleaned-toggle").is_visible()
    finally:
        context.close()


def test_console_prunes_highlighting_kept_sentences_and_the_saving(
    url: str, rr: Reranker, browser
) -> None:
    from rag_rerank.api import approximate_tokens

    passages = [
        "The bank lends money for boats. It opens at nine. Its logo is blue.",
        "Fishing boats line the river. Ducks swim there. A bank loan paid for one boat.",
    ]
    expected = rr.rerank(QUERY, passages, prune=True)
    context = browser.new_context(http_credentials={"username": "console", "password": KEY})
    page = context.new_page()
    try:
        page.goto(f"{url}/")
        sync_api.expect(page.locator("#model")).to_contain_text("cpu", timeout=30_000)
        page.fill("#query", QUERY)
        page.fill("#candidates", "\n".join(passages))
        page.check("#prune")
        page.click("#rerank")
        page.wait_for_selector(".rr-card")
        cards = page.locator(".rr-card")
        for rank, result in enumerate(expected):
            card = cards.nth(rank)
            assert int(card.get_attribute("data-index")) == result.index
            assert card.locator(".rr-text").inner_text() == result.document  # the full passage
            kept = [result.document[start:end] for start, end in result.kept_spans]
            assert card.locator(".rr-kept").all_inner_texts() == kept
            full, pruned = approximate_tokens(result.document), approximate_tokens(result.text)
            saved = round(100 * (full - pruned) / full)
            assert card.locator(".rr-saving").inner_text() == (
                f"≈{pruned} of {full} tokens kept ({saved}% saved)"
            )
        full = sum(approximate_tokens(r.document) for r in expected)
        pruned = sum(approximate_tokens(r.text) for r in expected)
        assert f"pruning keeps ≈{pruned} of {full} tokens" in page.inner_text("#status")
        page.uncheck("#prune")
        page.click("#rerank")
        sync_api.expect(page.locator(".rr-kept")).to_have_count(0, timeout=30_000)
        assert page.locator(".rr-saving").count() == 0
    finally:
        context.close()
