"""The search page and the source viewer in a real browser — search, highlights, the explain
panel, paging, filters (and a malformed one), a citation opened at its span, the "/" key —
and their rules over HTTP: the read scope, the caller's tenant only, bad spans and versions."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import httpx
import pytest
from conftest import WebServer, check_accessibility, shoot, sign_in, signed_in

TEAMS = ("hr", "it", "it", "sales", "it")  # doc-i has TEAMS[i % 5]: 5 of 25 are hr
FAR_WORD = "zeppelin"


def _documents() -> list[dict[str, Any]]:
    docs = [
        {
            "id": f"doc-{i:02d}",
            "title": f"Vacation policy {i}",
            "text": f"Vacation rules, part {i}: staff of team {TEAMS[i % 5]} book vacation"
            f" days in the planner {i * 7} weeks ahead.",
            "metadata": {"team": TEAMS[i % 5], "year": 2000 + i},
        }
        for i in range(25)
    ]
    # Text that looks like markup: shown as text, never as HTML.
    docs.append(
        {
            "id": "markup",
            "title": "<i>Escaped</i> title",
            "text": "Vacation <b>bold</b> claims <script>alert(1)</script> are text.",
        }
    )
    # A long document whose last passage is far below the fold.
    paragraphs = [
        f"Paragraph {n} says nothing in particular about filler topics." for n in range(60)
    ]
    paragraphs.append(f"The {FAR_WORD} hangar opens at dawn for the yearly inspection.")
    docs.append({"id": "guides/long one", "title": "Long guide", "text": "\n\n".join(paragraphs)})
    return docs


@pytest.fixture
def seeded(web: WebServer) -> dict[str, str]:
    docs = _documents()
    r = web.api.post("/v1/collections/kb/documents:batch", json={"documents": docs})
    assert r.status_code == 201, r.text
    return {d["id"]: d["text"] for d in docs}


def _results(page: Any) -> Any:
    return page.locator("#results li.hit")


def test_search_highlights_explain_paging_filters_and_citation(
    page: Any, web: WebServer, seeded: dict[str, str]
) -> None:
    sign_in(page, web, then="/search")
    box = page.get_by_label("Search for")
    page.get_by_role("heading", name="Search", level=1).click()
    page.keyboard.press("/")
    assert box.evaluate("el => el === document.activeElement")

    box.fill("vacation")
    box.press("Enter")
    page.wait_for_url(re.compile(r".*/search\?q=vacation.*"))  # htmx pushed the URL
    page.locator("#summary").wait_for()
    assert _results(page).count() == 10
    marks = page.locator("#results .snippet mark")
    assert marks.count() >= 10
    assert {m.lower() for m in marks.all_inner_texts()} == {"vacation"}
    # Markup in a document is text: no element was made of it.
    assert page.locator("#results b, #results script, #results i").count() == 0

    first = _results(page).first
    first.get_by_text("Why this result").click()
    table = first.locator("details.explain table")
    assert table.is_visible()
    assert table.get_by_role("rowheader", name="Keyword (BM25)").count() == 1
    assert table.get_by_text(re.compile(r"Fusion: \w+")).count() == 1
    check_accessibility(page)
    shoot(page, "search")

    # Paging: 26 matches, 10 a page.
    titles_page1 = _results(page).locator("h3").all_inner_texts()
    page.get_by_role("link", name="Next →").click()
    page.wait_for_url(re.compile(r".*offset=10.*"))
    page.locator("#results ol[start='11']").wait_for()
    titles_page2 = _results(page).locator("h3").all_inner_texts()
    assert len(titles_page2) == 10 and not set(titles_page1) & set(titles_page2)
    page.get_by_role("link", name="← Previous").click()
    page.locator("#results ol[start='1']").wait_for()

    # A metadata filter, written as for `engram search --where`.
    page.get_by_label("Metadata filters").fill("team=hr")
    page.get_by_role("button", name="Search", exact=True).click()
    page.get_by_text("Filtered by").wait_for()
    assert _results(page).count() == 5
    assert "where=team%3Dhr" in page.url
    # A filter that matches nothing: said so, and the filter named.
    page.get_by_label("Metadata filters").fill("team=hr; year>=2030")
    page.get_by_role("button", name="Search", exact=True).click()
    page.locator("#no-results").wait_for()
    assert "filter" in page.locator("#no-results").inner_text()
    # A malformed filter: an error, not "no results".
    page.get_by_label("Metadata filters").fill("year=>2020")
    page.get_by_role("button", name="Search", exact=True).click()
    error = page.locator("#results .notice.error")
    error.wait_for()
    assert "cannot parse filter" in error.inner_text() and "year>=2020" in error.inner_text()
    assert page.locator("#no-results").count() == 0

    # A citation opens the source at its span, scrolled into view.
    page.get_by_label("Metadata filters").fill("")
    box.fill(FAR_WORD)
    page.get_by_label("Keyword").check()
    page.get_by_role("button", name="Search", exact=True).click()
    page.wait_for_url(re.compile(f".*q={FAR_WORD}.*mode=keyword.*"))
    assert _results(page).count() == 1
    citation = _results(page).first.locator("a.citation")
    href = citation.get_attribute("href")
    assert href and href.startswith("/source/kb/guides%2Flong%20one?version=1&start=")
    query = parse_qs(urlsplit(href).query)
    start, end = int(query["start"][0]), int(query["end"][0])
    citation.click()
    page.wait_for_url(re.compile(r".*/source/kb/.*"))
    cited = page.locator("mark#cited")
    assert cited.inner_text() == seeded["guides/long one"][start:end]
    assert FAR_WORD in cited.inner_text()
    page.wait_for_function("document.activeElement && document.activeElement.id === 'cited'")
    box_ = cited.bounding_box()
    assert box_ and 0 <= box_["y"] < 800  # scrolled into view
    assert page.get_by_role("heading", name="Long guide", level=1).count() == 1
    link = page.get_by_role("link", name=re.compile("Document page"))
    assert unquote(link.get_attribute("href") or "") == "/knowledge/kb/documents/guides/long one"
    check_accessibility(page)
    shoot(page, "source")


def test_search_works_without_javascript_and_is_recorded(
    web: WebServer, seeded: dict[str, str]
) -> None:
    with signed_in(web.url, web.key("read")) as (client, _):
        r = client.get("/search", params={"q": "vacation", "collection": "kb", "mode": "keyword"})
        assert r.status_code == 200, r.text
        assert r.text.count('class="hit"') == 10
        assert 'name="csrf-token"' in r.text and 'id="results"' in r.text
        # The escaped markup of the document, never the markup itself.
        r = client.get("/search", params={"q": "claims bold", "collection": "kb"})
        assert "&lt;b&gt;" in r.text and "<b>bold" not in r.text
        assert "&lt;i&gt;Escaped&lt;/i&gt;" in r.text
        # htmx gets only the results region.
        r = client.get("/search", params={"q": "vacation"}, headers={"HX-Request": "true"})
        assert r.status_code == 200 and "<html" not in r.text and 'class="hit"' in r.text
        # ...unless it restores history, which needs the whole page.
        headers = {"HX-Request": "true", "HX-History-Restore-Request": "true"}
        assert "<html" in client.get("/search", params={"q": "vacation"}, headers=headers).text
        # Suggestions for the query box.
        r = client.get("/search/suggest", params={"q": "vaca", "collection": "kb"})
        assert r.status_code == 200 and '<option value="vacation' in r.text.lower()
    web.app.state.observability.flush()
    events = [json.loads(line) for line in web.db.analytics.export()]
    searches = [e for e in events if e["kind"] == "search" and e.get("query") == "vacation"]
    assert searches, events
    assert any(json.dumps(e).count('"kb"') for e in searches)


def test_bad_filters_spans_and_versions_are_clear_errors(
    web: WebServer, seeded: dict[str, str]
) -> None:
    with signed_in(web.url, web.key("read")) as (client, _):
        r = client.get("/search", params={"q": "vacation", "where": "year=>2020"})
        assert r.status_code == 422 and "cannot parse filter" in r.text
        assert 'id="q"' in r.text  # the form is still there to fix it
        r = client.get("/search", params={"q": "vacation", "offset": "-1"})
        assert r.status_code == 422
        r = client.get("/source/kb/doc-01", params={"start": 3})
        assert r.status_code == 422 and "start and end" in r.text
        r = client.get("/source/kb/doc-01", params={"start": 0, "end": 100_000})
        assert r.status_code == 422 and "not within" in r.text
        assert client.get("/source/kb/doc-01", params={"version": 9}).status_code == 404
        assert client.get("/source/kb/nope").status_code == 404
        r = client.get("/source/kb/doc-01", params={"version": 1, "start": 0, "end": 8})
        assert r.status_code == 200
        assert '<mark id="cited" tabindex="-1">Vacation</mark>' in r.text


def test_pages_in_french_have_every_message(web: WebServer, seeded: dict[str, str]) -> None:
    with signed_in(web.url, web.key("read")) as (client, _):
        client.headers["Accept-Language"] = "fr-FR,fr;q=0.9"
        for path, params in (
            ("/search", {"q": "vacation", "where": "team=hr"}),
            ("/search", {"q": "vacation", "where": "team=nobody"}),
            ("/source/kb/doc-01", {"version": 1, "start": 0, "end": 8}),
        ):
            r = client.get(path, params=params)
            assert r.status_code == 200, r.text
            assert 'lang="fr"' in r.text
            missing = re.findall(r"\b(?:search|sources|common)\.[a-z_]+\b", r.text)
            assert not [m for m in missing if m not in ("search.js", "search.css")], missing
        assert "Pourquoi ce résultat" in client.get("/search", params={"q": "vacation"}).text


def test_another_tenant_sees_nothing(web: WebServer, seeded: dict[str, str]) -> None:
    other = web.key("read", tenant="other")
    with signed_in(web.url, other) as (client, _):
        r = client.get("/search", params={"q": "vacation", "collection": "kb"})
        assert r.status_code == 404
        assert "Vacation policy" not in r.text and "doc-0" not in r.text
        r = client.get("/search", params={"q": "vacation", "collection": "*"})
        assert r.status_code == 200 and 'class="hit"' not in r.text
        assert 'value="kb"' not in r.text  # not among the collections offered
        assert client.get("/source/kb/doc-01").status_code == 404
        assert client.get("/source/kb/doc-01", params={"start": 0, "end": 5}).status_code == 404


def test_signed_out_is_sent_to_sign_in(web: WebServer) -> None:
    with httpx.Client(base_url=web.url) as client:
        for path in ("/search?q=x", "/source/kb/doc-01?start=0&end=4"):
            r = client.get(path)
            assert r.status_code == 303 and r.headers["location"].startswith("/sign-in?next=")


def test_search_explains_a_rerank(web: WebServer, seeded: dict[str, str]) -> None:
    from engram.providers.rerankers.base import Reranker

    class Shortest(Reranker):
        model_id = "shortest"

        def rerank(self, query: str, passages: Any) -> list[float]:
            return [-float(len(p)) for p in passages]

    web.db._reranker = Shortest()
    with signed_in(web.url, web.key("read")) as (client, _):
        params = {"q": "vacation", "collection": "kb", "mode": "keyword", "rerank": "true"}
        r = client.get("/search", params=params)
        assert r.status_code == 200, r.text
        assert "Cross-encoder rerank" in r.text
        assert "Blended with the fused score (model weight 0.5)" in r.text
