"""The examples stay true to the schema, need nothing from elsewhere, and are served on request.

No tools needed: these run everywhere (the browser and codegen tests run the same files for real).
"""

from __future__ import annotations

import re
from pathlib import Path

import graphql
import httpx
import pytest

from graph.app import create_app
from tests.clients.conftest import EXAMPLES, OPERATIONS, ROOT
from tests.conftest import make_settings

WEB_PAGE = EXAMPLES / "web" / "index.html"


@pytest.fixture(scope="module")
def schema() -> graphql.GraphQLSchema:
    return graphql.build_schema((ROOT / "schema.graphql").read_text())


def _operations(source: str) -> list[graphql.OperationDefinitionNode]:
    document = graphql.parse(source)
    return [d for d in document.definitions if isinstance(d, graphql.OperationDefinitionNode)]


@pytest.mark.parametrize("path", sorted(OPERATIONS.glob("*.graphql")), ids=lambda p: p.stem)
def test_example_operation_is_valid_against_the_committed_schema(
    schema: graphql.GraphQLSchema, path: Path
) -> None:
    source = path.read_text()
    assert graphql.validate(schema, graphql.parse(source)) == []
    (operation,) = _operations(source)
    assert operation.name is not None
    assert operation.name.value == path.stem  # codegen names types after it: SearchQuery, ...


def test_example_operations_cover_create_upsert_search_with_filter_and_records() -> None:
    names = {p.stem for p in OPERATIONS.glob("*.graphql")}
    assert names == {"CreateCollection", "UpsertRecords", "Search", "RecordsPage"}
    search = (OPERATIONS / "Search.graphql").read_text()
    assert "$where: Filter" in search
    assert "where: $where" in search


def test_web_page_operations_are_valid(schema: graphql.GraphQLSchema) -> None:
    page = WEB_PAGE.read_text()
    sources = re.findall(r"const [A-Z_]+ = `(.*?)`;", page, re.DOTALL)
    names = [op.name.value for s in sources for op in _operations(s) if op.name]
    assert names == ["Search", "CreateCollection", "UpsertRecords"]
    for source in sources:
        assert graphql.validate(schema, graphql.parse(source)) == [], source


def test_web_page_loads_nothing_from_elsewhere() -> None:
    page = WEB_PAGE.read_text()
    assert not re.search(r"<script[^>]+src=", page)
    assert not re.search(r"<link[^>]+stylesheet", page)
    assert not re.search(r"@import|url\(", page)
    # Any absolute URL in the page is a loopback example for the endpoint field.
    for url in re.findall(r"https?://[^\s\"'<>`)]+", page):
        assert url.startswith("http://127.0.0.1:8000/"), url


@pytest.mark.parametrize(("enabled", "status"), [(True, 200), (False, 404)])
async def test_examples_are_served_at_examples_only_when_enabled(
    tmp_path: Path, enabled: bool, status: int
) -> None:
    settings = make_settings(
        examples=enabled,
        milvus_uri=str(tmp_path / "milvus.db"),
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}",
    )
    app = create_app(settings)  # static files need no lifespan: no store is opened
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/examples/")
        assert response.status_code == status
        if enabled:
            assert response.text == WEB_PAGE.read_text()
            assert response.headers["content-type"].startswith("text/html")
            assert (await client.get("/examples")).status_code in (307, 308)
