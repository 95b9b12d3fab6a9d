"""The app shell: health, readiness (and SQL or Milvus outages), GraphiQL, the committed SDL,
settings errors."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from graph.schema import build_schema
from tests.conftest import (
    POSTGRES_URL,
    Api,
    fresh_postgres_database,
    make_settings,
    running_api,
)

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


class TcpRelay:
    """A TCP relay in front of PostgreSQL that a test can cut, so the database becomes
    unreachable for real (new connections are refused, open ones are dropped mid-stream), and
    restore on the same port."""

    def __init__(self, database_url: str) -> None:
        url = make_url(database_url)
        self._target = (url.host or "127.0.0.1", url.port or 5432)
        self._url = url
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0

    @property
    def url(self) -> str:
        return self._url.set(host="127.0.0.1", port=self.port).render_as_string(hide_password=False)

    async def restore(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for writer in self._writers:
            writer.transport.abort()
        self._writers.clear()
        await self._server.wait_closed()
        self._server = None

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update({writer, up_writer})
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.transport.abort()


@contextlib.asynccontextmanager
async def relayed_postgres() -> AsyncIterator[TcpRelay]:
    async with fresh_postgres_database("vq_outage") as url:
        relay = TcpRelay(url)
        await relay.restore()
        try:
            yield relay
        finally:
            await relay.cut()


COLLECTIONS = "{ collections { name } }"
SEARCH = (
    "query($c: String!) { search(collection: $c, vector: [1, 0, 0, 0], topK: 3) { hits { id } } }"
)
UPSERT = (
    "mutation($c: String!) { upsertRecords(collection: $c, "
    'records: [{id: "a", vector: [1, 0, 0, 0]}]) { upserted } }'
)


async def _wait_ready(api: Api, *, seconds: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    while (ready := await api.client.get("/readyz")).status_code != 200:
        assert time.monotonic() < deadline, ready.text
        await asyncio.sleep(0.2)
    return dict(ready.json())


async def test_a_sql_outage_answers_unavailable_and_both_recover(tmp_path: Path) -> None:
    async with relayed_postgres() as relay:
        settings = make_settings(milvus_uri=str(tmp_path / "milvus.db"), database_url=relay.url)
        async with running_api(settings) as api:
            await api.ok(
                'mutation { createCollection(input: {name: "docs", dimension: 4}) { name } }'
            )
            assert (await api.client.get("/readyz")).status_code == 200

            await relay.cut()
            for query in (COLLECTIONS, SEARCH, UPSERT):
                error = await api.error(query, {"c": "docs"})
                assert error["extensions"]["code"] == "UNAVAILABLE", error
                assert error["extensions"]["backend"] == "sql", error
                assert error["message"].startswith("the SQL database is not reachable"), error
            down = await api.client.get("/readyz")
            assert down.status_code == 503
            body = down.json()
            assert body["status"] == "unavailable"
            assert body["unavailable"] == ["sql"]
            assert body["checks"]["sql"]["ok"] is False
            assert body["checks"]["sql"]["error"]
            assert body["checks"]["milvus"]["ok"] is True

            await relay.restore()  # same port: the app's URL works again
            ready = await _wait_ready(api)
            assert {name: c["ok"] for name, c in ready["checks"].items()} == {
                "sql": True,
                "milvus": True,
            }
            assert (await api.ok(UPSERT, {"c": "docs"}))["upsertRecords"]["upserted"] == 1
            hits = (await api.ok(SEARCH, {"c": "docs"}))["search"]["hits"]
            assert [h["id"] for h in hits] == ["a"]
            assert (await api.ok(COLLECTIONS))["collections"] == [{"name": "docs"}]


async def test_a_dropped_database_answers_unavailable(tmp_path: Path) -> None:
    async with fresh_postgres_database("vq_dropped") as url:
        settings = make_settings(milvus_uri=str(tmp_path / "milvus.db"), database_url=url)
        async with running_api(settings) as api:
            assert (await api.ok(COLLECTIONS))["collections"] == []
            admin = await asyncpg.connect(POSTGRES_URL.replace("postgresql+asyncpg", "postgresql"))
            try:  # terminates the app's open connections too
                await admin.execute(f'DROP DATABASE "{make_url(url).database}" WITH (FORCE)')
            finally:
                await admin.close()
            error = await api.error(COLLECTIONS)
            assert error["extensions"]["code"] == "UNAVAILABLE", error
            assert "SQL" in error["message"]
            down = await api.client.get("/readyz")
            assert down.status_code == 503
            assert down.json()["unavailable"] == ["sql"]


async def test_graphiql_is_served_from_local_assets(api: Api) -> None:
    page = await api.client.get("/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 200
    assert "graphiql" in page.text.lower()
    assert "unpkg.com" not in page.text
    assert "cdn.jsdelivr" not in page.text
    assert "/graphiql-assets/" in page.text
    js = await api.client.get("/graphiql-assets/graphiql/graphiql.min.js")
    assert js.status_code == 200


async def test_get_runs_queries_and_refuses_mutations(api: Api) -> None:
    query = await api.client.get("/graphql", params={"query": "{ collections { name } }"})
    assert query.status_code == 200, query.text
    assert "collections" in query.json()["data"]
    mutation = await api.client.get(
        "/graphql", params={"query": 'mutation { dropCollection(name: "absent") }'}
    )
    assert mutation.status_code == 405
    assert mutation.headers["allow"] == "POST"
    assert "data" not in mutation.json() or mutation.json()["data"] is None


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
