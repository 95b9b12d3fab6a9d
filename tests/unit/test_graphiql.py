"""The GraphiQL page loads only vendored assets, which are present, intact and licensed."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from fastapi.testclient import TestClient

from graph.http.first_session import Example, first_session
from graph.http.graphiql import (
    ASSETS,
    KEY_HEADERS,
    NO_HEADERS,
    assets_directory,
    graphiql_html,
)

# The one http URL allowed in the page: the SVG namespace of the inline favicon (never fetched).
SVG_NAMESPACE = "http://www.w3.org/2000/svg"

LICENSES = ("react", "react-dom", "js-cookie", "graphiql", "plugin-explorer", "graphiql-explorer")


class _Refs(HTMLParser):
    """Every URL the page makes the browser load: (url, integrity or None)."""

    def __init__(self) -> None:
        super().__init__()
        self.refs: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        for name in ("src", "href"):
            url = found.get(name)
            if url is not None:
                self.refs.append((url, found.get("integrity")))


def _refs(page: str) -> list[tuple[str, str | None]]:
    parser = _Refs()
    parser.feed(page)
    return parser.refs


def _local_refs(page: str, assets_path: str) -> list[tuple[str, str | None]]:
    refs = [(url, sri) for url, sri in _refs(page) if not url.startswith("data:")]
    assert refs, "the page references no asset"
    for url, _ in refs:
        assert url.startswith(assets_path + "/"), url
    return refs


def _config(page: str) -> dict[str, object]:
    match = re.search(r"const CONFIG = (\{.*?\n\s*\});\n", page, re.DOTALL)
    assert match is not None
    config = json.loads(match.group(1))
    assert isinstance(config, dict)
    return config


def _sri(path: Path) -> str:
    return "sha384-" + base64.b64encode(hashlib.sha384(path.read_bytes()).digest()).decode()


def test_page_has_no_remote_url() -> None:
    page = graphiql_html(keys=True)
    urls = set(re.findall(r"(?i)(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}[^\s\"'<>%]*", page))
    assert urls <= {SVG_NAMESPACE, SVG_NAMESPACE.removeprefix("http:")}, urls
    assert "unpkg" not in page
    assert "cdn" not in page.lower()
    for url, _ in _refs(page):
        assert url.startswith(("/graphiql-assets/", "data:")), url


def test_every_referenced_asset_exists_with_the_declared_integrity() -> None:
    root = assets_directory()
    refs = _local_refs(graphiql_html(keys=True), "/graphiql-assets")
    assert len(refs) == len(ASSETS)
    for url, integrity in refs:
        path = root / url.removeprefix("/graphiql-assets/")
        assert path.is_file(), path
        assert integrity is not None, url
        assert _sri(path) == integrity, url


def test_every_vendored_script_and_stylesheet_is_used() -> None:
    root = assets_directory()
    vendored = {
        p.relative_to(root).as_posix() for p in root.rglob("*") if p.suffix in {".js", ".css"}
    }
    assert vendored == {asset.path for asset in ASSETS}


def test_licences_and_readme_present() -> None:
    root = assets_directory()
    for name in LICENSES:
        text = (root / "LICENSES" / f"{name}.LICENSE").read_text()
        assert "MIT License" in text, name
        assert "Permission is hereby granted" in text, name
    readme = (root / "README.md").read_text()
    for pin in ("react@18.2.0", "react-dom@18.2.0", "graphiql@3.8.3", "plugin-explorer@1.0.2"):
        assert pin in readme
    assert "scripts/vendor_graphiql.sh" in readme
    script = root.parents[2] / "scripts" / "vendor_graphiql.sh"
    if script.parent.is_dir():  # absent from an installed wheel
        assert script.is_file()


def test_assets_path_and_endpoint_are_configurable() -> None:
    page = graphiql_html(keys=True, endpoint="/api/graphql", assets_path="/static/gq/")
    refs = _local_refs(page, "/static/gq")
    assert len(refs) == len(ASSETS)
    assert _config(page)["endpoint"] == "/api/graphql"


def test_tabs_are_the_first_session_with_their_variables() -> None:
    examples = first_session()
    assert [e.name for e in examples] == [
        "CreateCollection",
        "UpsertRecords",
        "Search",
        "CreateNotes",
        "UpsertNotes",
        "SearchByText",
        "Collections",
    ]
    for keys in (True, False):
        config = _config(graphiql_html(keys=keys))
        assert config["tabs"] == [{"query": e.query, "variables": e.variables} for e in examples]
    assert "model:" in examples[0].query  # the collection says which model made its vectors
    assert "variables: tab.variables" in graphiql_html(keys=False)


def test_headers_editor_enabled_and_prefilled_with_a_key_placeholder_when_keys_are_on() -> None:
    page = graphiql_html(keys=True)
    config = _config(page)
    assert json.loads(str(config["defaultHeaders"])) == {"Authorization": "Bearer <your key>"}
    assert config["defaultHeaders"] == KEY_HEADERS
    assert "API key" in str(config["defaultQuery"])
    assert config["persistHeaders"] is True
    assert "isHeadersEditorEnabled: true" in page
    assert "shouldPersistHeaders: CONFIG.persistHeaders" in page
    assert "defaultHeaders: CONFIG.defaultHeaders" in page
    assert "subscriptionUrl" not in page
    assert "ws:" not in page


def test_no_key_is_asked_for_when_auth_is_off() -> None:
    config = _config(graphiql_html(keys=False))
    assert config["defaultHeaders"] == NO_HEADERS
    text = json.dumps(config)
    for word in ("Authorization", "Bearer", "API key", "your key"):
        assert word not in text, word


def test_values_cannot_break_out_of_the_script() -> None:
    evil = "</script><script>alert(1)</script><!-- \u2028"
    page = graphiql_html(
        keys=True, default_query=evil, endpoint=evil, tabs=[Example("Evil", evil, evil)]
    )
    assert "<script>alert(1)" not in page
    assert "\u2028" not in page
    config = _config(page)
    assert config["defaultQuery"] == evil
    assert config["endpoint"] == evil
    assert config["tabs"] == [{"query": evil, "variables": evil}]


@pytest.mark.parametrize("headers", ["not json", "[1, 2]", '"Bearer x"'])
def test_headers_must_be_a_json_object(headers: str) -> None:
    with pytest.raises(ValueError, match="headers"):
        graphiql_html(keys=True, headers=headers)


def test_served_page_and_every_asset_return_200() -> None:
    app = FastAPI()
    app.mount("/graphiql-assets", StaticFiles(directory=assets_directory()), name="graphiql")

    @app.get("/graphql", response_class=HTMLResponse)
    async def page() -> HTMLResponse:
        return HTMLResponse(graphiql_html(keys=True))

    client = TestClient(app)
    response = client.get("/graphql", headers={"accept": "text/html"})
    assert response.status_code == 200
    refs = _local_refs(response.text, "/graphiql-assets")
    for url, _ in refs:
        asset = client.get(url)
        assert asset.status_code == 200, url
        assert asset.headers["content-type"].startswith(
            "text/css" if url.endswith(".css") else "text/javascript"
        ), url
