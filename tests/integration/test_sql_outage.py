"""The API starts while its SQL database is down, as it does while Milvus is: ``/readyz`` names
``sql``, calls answer ``UNAVAILABLE``, and it recovers by itself when the database answers,
creating its tables then. A PostgreSQL database that does not exist is one log line naming it
and saying what to do (``createdb``), not a traceback; the CLI prints that line and exits 1."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from graph.cli import cli
from graph.logs import configure_logging
from tests.conftest import (
    POSTGRES_URL,
    Api,
    _postgres_reachable,
    backend_missing,
    make_settings,
    running_api,
)

ADMIN_DSN = POSTGRES_URL.replace("postgresql+asyncpg://", "postgresql://")
RECOVERY_SECONDS = 15.0


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """The app's log as JSON lines, as a deployment writes it."""
    stream = io.StringIO()
    root = logging.getLogger()
    level = root.level
    handler = configure_logging(level="INFO", fmt="json", stream=stream)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


@pytest.fixture
async def missing_database() -> AsyncIterator[str]:
    """The name of a database that does not exist on the test PostgreSQL (dropped afterwards if
    the test created it)."""
    import asyncpg

    reason = await _postgres_reachable(POSTGRES_URL)
    if reason:
        backend_missing("PostgreSQL", reason)
    name = f"vq_missing_{uuid.uuid4().hex[:10]}"
    yield name
    conn = await asyncpg.connect(ADMIN_DSN)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def database_url(name: str) -> str:
    return POSTGRES_URL.rsplit("/", 1)[0] + f"/{name}"


async def readyz(api: Api) -> tuple[int, dict[str, object]]:
    response = await api.client.get("/readyz")
    return response.status_code, response.json()


async def ready(api: Api) -> bool:
    return (await readyz(api))[0] == 200


async def logged(text: str, log: io.StringIO) -> bool:
    return text in log.getvalue()


async def eventually(check: Callable[[], Awaitable[bool]]) -> bool:
    """Whether ``check`` holds within ``RECOVERY_SECONDS``."""
    deadline = time.monotonic() + RECOVERY_SECONDS
    while not await check():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.25)
    return True


@contextlib.asynccontextmanager
async def app_on(url: str, tmp_path: Path) -> AsyncIterator[Api]:
    settings = make_settings(milvus_uri=str(tmp_path / "milvus.db"), database_url=url)
    async with running_api(settings) as api:
        yield api


async def test_starts_while_postgres_is_unreachable_and_answers_unavailable(
    tmp_path: Path,
) -> None:
    url = f"postgresql+asyncpg://postgres@127.0.0.1:{closed_port()}/vectorql"
    async with app_on(url, tmp_path) as api:
        assert (await api.client.get("/healthz")).status_code == 200
        status, body = await readyz(api)
        assert status == 503
        assert body["unavailable"] == ["sql"]
        checks = body["checks"]
        assert isinstance(checks, dict)
        assert "is not reachable" in checks["sql"]["error"]
        assert checks["milvus"]["ok"] is True

        error = await api.error("{ collections { name } }")
        assert error["extensions"]["code"] == "UNAVAILABLE"
        mutation = 'mutation { createCollection(input: {name: "x", dimension: 4}) { name } }'
        assert (await api.error(mutation))["extensions"]["code"] == "UNAVAILABLE"
        assert not api.store.sql.ready


async def test_a_missing_database_is_one_log_line_and_is_picked_up_once_created(
    tmp_path: Path, missing_database: str, json_log: io.StringIO
) -> None:
    import asyncpg

    async with app_on(database_url(missing_database), tmp_path) as api:
        status, body = await readyz(api)
        assert status == 503
        assert body["unavailable"] == ["sql"]
        checks = body["checks"]
        assert isinstance(checks, dict)
        assert (
            f"createdb -h 127.0.0.1 -p 5432 -U postgres {missing_database}"
            in (checks["sql"]["error"])
        )
        error = await api.error("{ collections { name } }")
        assert error["extensions"]["code"] == "UNAVAILABLE"

        # The database appears while the app runs: it creates its tables and serves.
        conn = await asyncpg.connect(ADMIN_DSN)
        try:
            await conn.execute(f'CREATE DATABASE "{missing_database}"')
        finally:
            await conn.close()
        assert await eventually(lambda: ready(api)), await readyz(api)

        await api.ok(
            'mutation { createCollection(input: {name: "docs", dimension: 4, metric: L2}) '
            "{ name } }"
        )
        upserted = await api.ok(
            'mutation($r: [RecordInput!]!) { upsertRecords(collection: "docs", records: $r) '
            "{ upserted } }",
            {"r": [{"id": "a", "vector": [1, 0, 0, 0]}, {"id": "b", "vector": [0, 1, 0, 0]}]},
        )
        assert upserted["upsertRecords"]["upserted"] == 2
        found = await api.ok(
            '{ search(collection: "docs", vector: [1, 0, 0, 0], topK: 1) { hits { id } } }'
        )
        assert [h["id"] for h in found["search"]["hits"]] == ["a"]

        # The background retry logs the recovery within one of its intervals.
        assert await eventually(lambda: logged("answers again", json_log))

    events = [json.loads(line) for line in json_log.getvalue().splitlines() if line.strip()]
    missing = [e for e in events if "does not exist" in json.dumps(e)]
    assert len(missing) == 1, missing  # once, not once per retry
    event = missing[0]
    assert f"createdb -h 127.0.0.1 -p 5432 -U postgres {missing_database}" in event["event"]
    assert "\n" not in event["event"]
    assert not {"exception", "exc_info", "stack"} & set(event), event  # no traceback
    assert any("answers again" in e["event"] for e in events), events


def test_cli_commands_print_one_line_when_the_database_is_missing(tmp_path: Path) -> None:
    missing = f"vq_missing_{uuid.uuid4().hex[:10]}"
    reason = asyncio.run(_postgres_reachable(POSTGRES_URL))
    if reason:
        backend_missing("PostgreSQL", reason)
    env = {
        "VECTORQL_DATABASE_URL": database_url(missing),
        "VECTORQL_MILVUS_URI": str(tmp_path / "milvus.db"),
    }
    lines = tmp_path / "records.jsonl"
    lines.write_text('{"id": "a", "vector": [1, 0]}\n')
    runner = CliRunner()
    for args in (
        ["keys", "list"],
        ["keys", "create", "--scope", "read"],
        ["import", str(lines), "-c", "docs"],
    ):
        result = runner.invoke(cli, args, env=env)
        assert result.exit_code == 1, (args, result.output)
        assert "Traceback" not in result.output + result.stderr
        assert result.stderr.strip().splitlines() == [
            f'vectorql: the PostgreSQL database "{missing}" does not exist on 127.0.0.1:5432: '
            f"create it with `createdb -h 127.0.0.1 -p 5432 -U postgres {missing}` "
            "(vectorql then creates its tables in it)"
        ], args
