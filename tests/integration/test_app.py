"""The app shell: health, readiness, GraphiQL, the committed SDL, settings errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from graph.schema import build_schema
from tests.conftest import Api, make_settings, running_api

ROOT = Path(__file__).resolve().parents[2]


async def test_healthz_and_readyz(api: Api) -> None:
    health = await api.client.get("/healthz")
    assert health.status_code == 200
    assert health.json() == {"status": "ok"}
    ready = await api.client.get("/readyz")
    assert ready.status_code == 200, ready.text
    body = ready.json()
    assert body["status"] == "ready"
    assert body["checks"]["sql"]["ok"] is True
    assert body["checks"]["milvus"]["ok"] is True


async def test_readyz_is_503_with_the_reason_when_milvus_is_down(tmp_path: Path) -> None:
    settings = make_settings(
        milvus_uri="http://127.0.0.1:1",  # nothing listens there
        milvus_timeout=2,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}",
    )
    async with running_api(settings) as api:
        assert (await api.client.get("/healthz")).status_code == 200
        ready = await api.client.get("/readyz")
        assert ready.status_code == 503
        body = ready.json()
        assert body["checks"]["sql"]["ok"] is True
        assert body["checks"]["milvus"]["ok"] is False
        assert body["checks"]["milvus"]["error"]
        error = await api.error(
            'mutation { createCollection(input: {name: "x", dimension: 4}) { name } }'
        )
        assert error["extensions"]["code"] == "UNAVAILABLE"


async def test_graphiql_is_served_from_local_assets(api: Api) -> None:
    page = await api.client.get("/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 200
    assert "graphiql" in page.text.lower()
    assert "unpkg.com" not in page.text
    assert "cdn.jsdelivr" not in page.text
    assert "/graphiql-assets/" in page.text
    js = await api.client.get("/graphiql-assets/graphiql/graphiql.min.js")
    assert js.status_code == 200


async def test_get_queries_are_refused(api: Api) -> None:
    response = await api.client.get("/graphql", params={"query": "{ collections { name } }"})
    assert response.status_code != 200 or "data" not in response.text


def test_committed_schema_matches_the_live_schema() -> None:
    committed = (ROOT / "schema.graphql").read_text()
    assert committed.strip() == build_schema().as_str().strip(), (
        "schema.graphql is stale: run `make schema` and commit it"
    )


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"VECTORQL_PORT": "70000"}, "VECTORQL_PORT"),
        ({"VECTORQL_DATABASE_URL": "mysql://x"}, "VECTORQL_DATABASE_URL"),
        ({"VECTORQL_MILVUS_URI": "nope"}, "VECTORQL_MILVUS_URI"),
        ({"VECTORQL_MILVUS_TIMEOUT": "-1"}, "VECTORQL_MILVUS_TIMEOUT"),
        ({"VECTORQL_CORS_ORIGINS": "foo"}, "VECTORQL_CORS_ORIGINS"),
    ],
)
def test_invalid_setting_stops_start_up_with_one_line(env: dict[str, str], variable: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "graph.cli", "serve"],
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert variable in lines[0]


def test_workers_with_a_lite_file_are_refused() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "graph.cli", "serve", "--workers", "2"],
        env={"PATH": "/usr/bin:/bin", "VECTORQL_MILVUS_URI": "./data/x.db"},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert result.returncode == 2
    assert "Milvus server" in result.stderr
