"""Production mode (``VECTORQL_ENV=production``): no GraphiQL, no introspection unless enabled, no
field suggestions, CORS only from settings, no stack traces; and the auth-mode rules at start-up."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from graph.app import create_app
from graph.settings import InsecureSettings
from tests.conftest import Api, make_settings, running_api

TYPO = "{ colections { name } }"


@pytest.fixture(scope="module")
async def production(database_url: str, session_dir: Path) -> AsyncIterator[Api]:
    settings = make_settings(
        milvus_uri=str(session_dir / f"prod-{uuid.uuid4().hex[:6]}.db"),
        database_url=database_url,
        env="production",
        cors_origins=["https://app.example"],
    )
    async with running_api(settings) as api:
        yield api


@pytest.fixture(scope="module")
async def development(database_url: str, session_dir: Path) -> AsyncIterator[Api]:
    settings = make_settings(
        milvus_uri=str(session_dir / f"dev-{uuid.uuid4().hex[:6]}.db"), database_url=database_url
    )
    async with running_api(settings) as api:
        yield api


async def test_no_graphiql_no_openapi(production: Api) -> None:
    page = await production.client.get("/graphql", headers={"Accept": "text/html"})
    assert page.status_code in (404, 405)
    assert "graphiql" not in page.text.lower()
    assert (
        await production.client.get("/graphiql-assets/graphiql/graphiql.min.js")
    ).status_code == 404
    assert (await production.client.get("/openapi.json")).status_code == 404


async def test_no_introspection_and_no_suggestions(production: Api, development: Api) -> None:
    for query in ("{ __schema { types { name } } }", '{ __type(name: "Query") { name } }'):
        error = await production.error(query)
        assert error["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
        assert "introspection" in error["message"]
    typo = await production.error(TYPO)
    assert "Did you mean" not in typo["message"]
    enum = await production.error(
        'mutation { createCollection(input: {name: "x", dimension: 4, metric: COSIN}) { name } }'
    )
    assert "Did you mean" not in enum["message"]
    assert (await production.ok("{ __typename }"))["__typename"] == "Query"
    # development keeps both
    assert "Did you mean" in (await development.error(TYPO))["message"]
    assert (await development.ok("{ __schema { queryType { name } } }"))["__schema"]


async def test_introspection_can_be_enabled_in_production(
    database_url: str, tmp_path: Path
) -> None:
    settings = make_settings(
        milvus_uri=str(tmp_path / "m.db"),
        database_url=database_url,
        env="production",
        introspection=True,
    )
    async with running_api(settings) as api:
        assert (await api.ok("{ __schema { queryType { name } } }"))["__schema"]
        assert "Did you mean" not in (await api.error(TYPO))["message"]


async def test_cors_only_for_configured_origins(production: Api, development: Api) -> None:
    def preflight(origin: str) -> dict[str, Any]:
        return {
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        }

    allowed = await production.client.options("/graphql", headers=preflight("https://app.example"))
    assert allowed.headers["access-control-allow-origin"] == "https://app.example"
    assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
    other = await production.client.options("/graphql", headers=preflight("https://evil.example"))
    assert other.headers.get("access-control-allow-origin") is None
    # without configured origins there are no CORS headers at all
    plain = await development.client.post(
        "/graphql", json={"query": "{ __typename }"}, headers={"Origin": "https://app.example"}
    )
    assert "access-control-allow-origin" not in plain.headers


async def test_internal_errors_are_masked(production: Api) -> None:
    original = production.store.collections.all

    async def broken() -> Any:
        raise RuntimeError("secret connection string postgres://user:pw@db")

    production.store.collections.all = broken
    try:
        response = await production.client.post(
            "/graphql", json={"query": "{ collections { name } }"}
        )
    finally:
        production.store.collections.all = original
    body = response.json()
    [error] = body["errors"]
    assert error["extensions"]["code"] == "INTERNAL"
    assert error["extensions"]["errorId"]
    assert "secret" not in response.text
    assert "Traceback" not in response.text


def test_auth_off_on_a_public_address_is_refused_unless_allowed(tmp_path: Path) -> None:
    base = {
        "milvus_uri": str(tmp_path / "m.db"),
        "database_url": f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}",
        "host": "0.0.0.0",
    }
    with pytest.raises(InsecureSettings):
        create_app(make_settings(**base, auth="off"))
    create_app(make_settings(**base, auth="off", allow_insecure=True))  # starts, with a warning
    assert make_settings(**base).auth_mode == "apikey"


def test_serve_refuses_auth_off_on_a_public_address(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from graph.cli import cli

    env = {
        "VECTORQL_AUTH": "off",
        "VECTORQL_HOST": "0.0.0.0",
        "VECTORQL_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}",
        "VECTORQL_MILVUS_URI": str(tmp_path / "m.db"),
    }
    result = CliRunner().invoke(cli, ["serve"], env=env)
    assert result.exit_code == 2
    assert "ALLOW_INSECURE" in result.stderr


def production_with_keys(tmp_path: Path, **overrides: Any) -> Any:
    return make_settings(
        milvus_uri=str(tmp_path / "m.db"),
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}",
        env="production",
        auth="apikey",
        **overrides,
    )


async def test_metrics_in_production_with_keys_are_not_served_without_a_token(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("WARNING", logger="vectorql.app"):
        async with running_api(production_with_keys(tmp_path)) as api:
            assert (await api.client.get("/metrics")).status_code == 404
    assert any(
        "/metrics is not served" in r.getMessage() and "METRICS_TOKEN" in r.getMessage()
        for r in caplog.records
    )


def test_metrics_asked_for_in_production_with_keys_and_no_token_refuse_to_start(
    tmp_path: Path,
) -> None:
    with pytest.raises(InsecureSettings, match="VECTORQL_METRICS_TOKEN"):
        create_app(production_with_keys(tmp_path, metrics=True))


async def test_metrics_in_production_with_keys_are_served_behind_the_token(tmp_path: Path) -> None:
    async with running_api(production_with_keys(tmp_path, metrics_token="scrape-me")) as api:
        assert (await api.client.get("/metrics")).status_code == 401
        scraped = await api.client.get("/metrics", headers={"Authorization": "Bearer scrape-me"})
        assert scraped.status_code == 200


def test_serve_refuses_metrics_without_a_token_in_production_with_keys(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from graph.cli import cli

    env = {
        "VECTORQL_ENV": "production",
        "VECTORQL_AUTH": "apikey",
        "VECTORQL_METRICS": "true",
        "VECTORQL_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}",
        "VECTORQL_MILVUS_URI": str(tmp_path / "m.db"),
    }
    result = CliRunner().invoke(cli, ["serve"], env=env)
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "VECTORQL_METRICS_TOKEN" in result.stderr
