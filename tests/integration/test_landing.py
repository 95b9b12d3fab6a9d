"""Someone who opens the server's address finds GraphiQL; the start-up log names its URL."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from graph.settings import Settings
from tests.conftest import make_settings, running_api


def settings_in(tmp_path: Path, **overrides: object) -> Settings:
    return make_settings(
        milvus_uri=str(tmp_path / "milvus.db"),
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'vectorql.db'}",
        log_level="INFO",
        **overrides,
    )


async def test_the_root_leads_to_graphiql(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="vectorql.app"):
        async with running_api(settings_in(tmp_path, port=8123)) as api:
            response = await api.client.get("/")
            assert response.status_code == 307
            assert response.headers["location"] == "/graphql"
            page = await api.client.get("/", follow_redirects=True, headers={"accept": "text/html"})
            assert page.status_code == 200
            assert "graphiql" in page.text.lower()
    lines = [r.getMessage() for r in caplog.records if r.name == "vectorql.app"]
    assert any("http://127.0.0.1:8123/graphql" in line and "GraphiQL" in line for line in lines)


async def test_without_graphiql_the_root_names_the_endpoint(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="vectorql.app"):
        async with running_api(settings_in(tmp_path, graphiql=False)) as api:
            response = await api.client.get("/")
            assert response.status_code == 200
            assert response.json() == {"service": "vectorql", "graphql": "/graphql"}
    lines = [r.getMessage() for r in caplog.records if r.name == "vectorql.app"]
    assert any("/graphql" in line and "GraphiQL" not in line for line in lines)
