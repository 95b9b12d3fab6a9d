"""A real browser (headless Debian Chromium through Playwright) against a real ``vectorql serve``.

GraphiQL must render and run queries with no internet access, and the worked example page
(``examples/web``) must seed data and show search hits. Every request a page makes is recorded and
anything not addressed to 127.0.0.1 is blocked, and the tests assert there was none. Screenshots
go to ``test-artifacts/``.

Chromium: ``make test`` installs Debian's ``chromium`` where it can (scripts/ensure_test_tools.sh);
``VECTORQL_TEST_CHROMIUM`` names another binary. Playwright drives it through ``executable_path``
(never ``playwright install``).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest

from graph.http.first_session import first_session
from graph.http.graphiql import NO_HEADERS
from tests.clients.conftest import ARTIFACTS, EXAMPLES, LiveServer, tool_missing

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext, Page, Playwright, Route

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
TIMEOUT_MS = 30_000

QUERY_EDITOR = "section.graphiql-query-editor .CodeMirror"
# The variables and headers editors share a panel; the one whose tab is selected is not hidden.
TOOL_EDITOR = "section.graphiql-editor-tool .graphiql-editor:not(.hidden) .CodeMirror"
RESULT_VIEWER = "section.result-window .CodeMirror"
RUN_BUTTON = "button.graphiql-execute-button"


def find_chromium() -> str | None:
    names = (os.environ.get("VECTORQL_TEST_CHROMIUM"), *CHROMIUM_NAMES)
    return next((path for name in names if name and (path := shutil.which(name))), None)


@pytest.fixture(scope="module")
def chromium() -> str:
    path = find_chromium()
    if path is None:
        tool_missing(
            "Chromium",
            f"none of {', '.join(CHROMIUM_NAMES)} is on PATH",
            hint="`make test` installs Debian's chromium when run as root (or `apt-get install "
            "chromium`), or set VECTORQL_TEST_CHROMIUM to a Chromium binary",
        )
    return path


@pytest.fixture(scope="module")
def playwright(chromium: str) -> Iterator[Playwright]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as e:
        tool_missing("playwright", str(e), hint="install the dev extra: pip install -e '.[dev]'")
    with sync_playwright() as p:
        yield p


@dataclass
class Traffic:
    """Every URL a page asked for, and the ones blocked because they left the machine."""

    requests: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)

    def assert_only_loopback(self) -> None:
        assert self.requests, "the page made no request"
        assert not self.blocked, f"the page tried to reach beyond 127.0.0.1: {self.blocked}"
        for url in self.requests:
            parts = urlsplit(url)
            assert parts.scheme in ("data", "file") or parts.hostname == "127.0.0.1", url


def _loopback_only(traffic: Traffic) -> Any:
    def handle(route: Route) -> None:
        url = route.request.url
        parts = urlsplit(url)
        if parts.scheme in ("data", "file") or parts.hostname == "127.0.0.1":
            route.continue_()
        else:
            traffic.blocked.append(url)
            route.abort("internetdisconnected")

    return handle


@dataclass
class Browser:
    context: BrowserContext
    page: Page
    traffic: Traffic


@pytest.fixture
def browser(playwright: Playwright, chromium: str, tmp_path: Path) -> Iterator[Browser]:
    """A fresh Chromium profile (its own user-data-dir) with one page, loopback traffic only."""
    context = playwright.chromium.launch_persistent_context(
        str(tmp_path / "profile"),
        executable_path=chromium,
        headless=True,
        args=CHROMIUM_ARGS,
        viewport={"width": 1280, "height": 800},
    )
    traffic = Traffic()
    context.route("**/*", _loopback_only(traffic))
    context.set_default_timeout(TIMEOUT_MS)
    page = context.pages[0] if context.pages else context.new_page()
    page.on("request", lambda request: traffic.requests.append(request.url))
    try:
        yield Browser(context, page, traffic)
    finally:
        context.close()


def _screenshot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    return path


def _editor_value(page: Page, selector: str) -> str:
    value: str = page.eval_on_selector(selector, "e => e.CodeMirror.getValue()")
    return value


def _set_editor(page: Page, selector: str, text: str) -> None:
    """Type into a GraphiQL editor as a person would: focus, select all, type over it."""
    page.click(selector)
    page.keyboard.press("Control+A")
    page.keyboard.insert_text(text)


def _run_and_read(page: Page) -> dict[str, Any]:
    """Press the run button and return the JSON shown in the result panel."""
    page.eval_on_selector(RESULT_VIEWER, "e => e.CodeMirror.setValue('')")
    page.click(RUN_BUTTON)
    page.wait_for_function(
        """selector => {
             const viewer = document.querySelector(selector);
             return viewer && viewer.CodeMirror.getValue().trim().startsWith("{");
           }""",
        arg=RESULT_VIEWER,
    )
    result: dict[str, Any] = json.loads(_editor_value(page, RESULT_VIEWER))
    return result


SEARCH = """query FindNews($vector: Vector!) {
  search(
    collection: "%s"
    vector: $vector
    topK: 5
    where: {and: [{field: "category", eq: "news"}, {field: "year", gte: 2020}]}
  ) {
    hits { id score record { metadata text } }
    tookMs
  }
}"""


def test_graphiql_runs_a_filtered_search_offline(
    browser: Browser, live_server: LiveServer, collection: str
) -> None:
    live_server.seed(collection)
    page = browser.page
    page.goto(live_server.graphql)
    page.wait_for_selector(RUN_BUTTON)

    _set_editor(page, QUERY_EDITOR, SEARCH % collection)
    page.click("button:text-is('Variables')")
    _set_editor(page, TOOL_EDITOR, '{"vector": [0.1, 0.2, 0.3, 0.4]}')
    result = _run_and_read(page)

    assert "errors" not in result, result
    hits = result["data"]["search"]["hits"]
    assert [hit["id"] for hit in hits] == ["a1", "a4"], hits  # a2 is from 2018, a3 is science
    assert hits[0]["score"] == pytest.approx(1.0, abs=1e-5)
    assert hits[0]["record"] == {
        "metadata": {"category": "news", "year": 2024},
        "text": "fresh news",
    }
    panel = page.locator("section.result-window")
    for text in ('"hits"', '"a1"', '"a4"', "fresh news"):
        assert text in panel.inner_text(), text
    assert _screenshot(page, "graphiql-search.png").stat().st_size > 0
    browser.traffic.assert_only_loopback()
    assert any("/graphiql-assets/graphiql/graphiql.min.js" in u for u in browser.traffic.requests)


def test_graphiql_preloads_the_first_session_and_asks_for_no_key_with_auth_off(
    browser: Browser, live_server: LiveServer
) -> None:
    page = browser.page
    sent: list[dict[str, str]] = []
    page.on(
        "request",
        lambda r: sent.append(r.headers) if r.method == "POST" and "/graphql" in r.url else None,
    )
    page.goto(live_server.graphql)
    page.wait_for_selector(RUN_BUTTON)
    examples = first_session()
    tabs = page.locator(".graphiql-tab-button").all_inner_texts()
    assert tabs == [e.name for e in examples]
    page.click("button:text-is('Headers')")
    assert _editor_value(page, TOOL_EDITOR) == NO_HEADERS  # auth is off on this server
    assert "Authorization" not in _editor_value(page, QUERY_EDITOR)

    # Each tab runs as shipped, in order, with its own variables; the headers stay editable.
    expected = ('"createCollection"', '"upsertRecords"', '"hits"') * 2 + ('"collections"',)
    for example, marker in zip(examples, expected, strict=True):
        page.click(f".graphiql-tab-button:text-is('{example.name}')")
        assert _editor_value(page, QUERY_EDITOR) == example.query
        page.click("button:text-is('Variables')")
        assert _editor_value(page, TOOL_EDITOR) == (example.variables or "")
        page.click("button:text-is('Headers')")
        _set_editor(page, TOOL_EDITOR, '{"X-Example-Header": "edited in GraphiQL"}')
        result = _run_and_read(page)
        assert "errors" not in result, (example.name, result)
        assert marker in json.dumps(result), (example.name, result)
        assert sent[-1].get("x-example-header") == "edited in GraphiQL"
        assert "authorization" not in sent[-1]
        if example.name == "Search":
            assert [hit["id"] for hit in result["data"]["search"]["hits"]] == ["a1"]
        if example.name == "SearchByText":  # the packaged model ranks the bread note first
            assert [hit["id"] for hit in result["data"]["search"]["hits"]] == ["n1"]
    _screenshot(page, "graphiql-examples.png")
    browser.traffic.assert_only_loopback()


def _hit_ids(page: Page) -> list[str]:
    ids: list[str] = page.eval_on_selector_all(
        "#hits tr.hit", "rows => rows.map(r => r.dataset.id)"
    )
    return ids


def test_example_page_served_by_vectorql_seeds_and_searches(
    browser: Browser, live_server: LiveServer, collection: str
) -> None:
    page = browser.page
    page.goto(f"{live_server.url}/examples/")
    assert page.locator("#notice").is_hidden()  # served: the endpoint is this server's /graphql
    assert page.input_value("#endpoint") == live_server.graphql

    page.fill("#collection", collection)
    page.click("#seed")
    page.wait_for_selector(f"#status:has-text('Seeded 8 records into {collection}')")
    page.click("#search")
    page.wait_for_selector("#hits tr.hit")

    # Query leans "news"; filter: category news, year >= 2020 (n3 is from 2019).
    assert sorted(_hit_ids(page)) == ["n1", "n2", "n4"]
    scores = [float(s) for s in page.locator("#hits tr.hit td:nth-child(3)").all_inner_texts()]
    assert scores == sorted(scores, reverse=True)
    assert page.locator("#hits tr.hit td:nth-child(4)").all_inner_texts() == ["news"] * 3
    assert "3 hits" in page.inner_text("#status")
    _screenshot(page, "example-page.png")

    page.select_option("#category", "")
    page.fill("#year", "")
    page.fill("#vector", "0.0, 0.1, 0.95, 0.1")
    page.click("#search")
    page.wait_for_function("() => document.querySelector('#hits tr.hit')?.dataset.id === 'p1'")
    assert len(_hit_ids(page)) == 5
    browser.traffic.assert_only_loopback()


def test_example_page_opened_as_a_file_asks_for_the_endpoint_then_searches(
    browser: Browser, live_server: LiveServer, collection: str
) -> None:
    page = browser.page
    page.goto((EXAMPLES / "web" / "index.html").as_uri())
    assert page.locator("#notice").is_visible()
    assert page.input_value("#endpoint") == ""
    page.click("#search")
    page.wait_for_selector("#status.error")
    assert "enter the GraphQL endpoint URL first" in page.inner_text("#status")
    assert page.evaluate("document.activeElement.id") == "endpoint"
    _screenshot(page, "example-page-file.png")

    # The server allows the file page's origin ("null", see VECTORQL_CORS_ORIGINS in conftest).
    page.fill("#endpoint", live_server.graphql)
    page.fill("#collection", collection)
    page.click("#seed")
    page.wait_for_selector(f"#status:has-text('Seeded 8 records into {collection}')")
    page.click("#search")
    page.wait_for_selector("#hits tr.hit")
    assert sorted(_hit_ids(page)) == ["n1", "n2", "n4"]
    again = browser.context.new_page()  # the endpoint is remembered for the next visit
    again.goto((EXAMPLES / "web" / "index.html").as_uri())
    assert again.input_value("#endpoint") == live_server.graphql
    browser.traffic.assert_only_loopback()
