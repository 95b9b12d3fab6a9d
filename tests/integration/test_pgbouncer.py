"""vectorql behind a real PgBouncer (Debian's package) in transaction pooling mode, in front of the
test PostgreSQL on loopback (tests/pgbouncer.py).

Behind a pooler in transaction mode, each transaction of a client connection may run on another
server connection, which breaks asyncpg's prepared statements (its cache and SQLAlchemy's, and
its per-process statement names). ``VECTORQL_SQL_POOLER=transaction`` keeps every prepared
statement inside its transaction. The first test shows the trap without the setting and its
absence with it; the second runs the API as users run it (``vectorql serve``) through PgBouncer,
with more client connections than PgBouncer has server connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import numpy as np
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from store.sql import make_engine
from tests.conftest import POSTGRES_URL, backend_missing, fresh_postgres_database
from tests.pgbouncer import PgBouncer, pgbouncer_binary, start_pgbouncer
from tests.servers import serve_api

DIMENSION = 8
RECORDS = 240


@pytest.fixture(scope="module")
def pgbouncer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgBouncer]:
    if pgbouncer_binary() is None:
        backend_missing("PgBouncer", "pgbouncer is not installed (Debian's package pgbouncer)")
    with start_pgbouncer(tmp_path_factory.mktemp("pgbouncer"), POSTGRES_URL) as bouncer:
        yield bouncer


@pytest.fixture
async def database() -> AsyncIterator[str]:
    """A fresh database's name (created directly on PostgreSQL, dropped after)."""
    async with fresh_postgres_database("vq_pgbouncer") as url:
        yield url.rsplit("/", 1)[1]


async def _statement_reused_on_another_server_connection(url: str, pooler: Any) -> int:
    """Run one statement on client connection A, hold B in a transaction (PgBouncer hands B the
    server connection A just used), and run A's statement again, now on the other server
    connection."""
    engine = make_engine(url, pool_size=2, pooler=pooler)
    query = text("SELECT CAST(:n AS integer)")
    try:
        async with engine.connect() as a, engine.connect() as b:
            await a.execute(query, {"n": 1})
            await a.commit()
            await b.execute(text("SELECT pg_backend_pid()"))  # B keeps a server connection
            value = (await a.execute(query, {"n": 2})).scalar_one()
            await a.commit()
            await b.commit()
            return int(value)
    finally:
        await engine.dispose()


async def test_prepared_statements_stay_inside_their_transaction(
    pgbouncer: PgBouncer, database: str
) -> None:
    url = pgbouncer.url(database)
    # Nothing is left on the server connections: unnamed statements die with the next one.
    engine = make_engine(url, pool_size=4, pooler="transaction")
    try:

        async def one(n: int) -> None:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT CAST(:n AS integer)"), {"n": n})

        await asyncio.gather(*(one(n) for n in range(200)))
        async with engine.connect() as conn:
            left = await conn.scalar(text("SELECT count(*) FROM pg_prepared_statements"))
        assert left == 0
    finally:
        await engine.dispose()

    with pytest.raises(DBAPIError, match=r"prepared statement .* does not exist"):
        await _statement_reused_on_another_server_connection(url, "none")
    assert await _statement_reused_on_another_server_connection(url, "transaction") == 2


@contextlib.contextmanager
def api_through(pgbouncer: PgBouncer, database: str, data: Path) -> Iterator[Any]:
    with serve_api(
        data,
        database_url=pgbouncer.url(database),
        sql_pooler="transaction",
        sql_pool_size=8,  # up to 16 client connections on PgBouncer's 2 server connections
        embedders="[]",  # no embedding model: this test sends vectors
    ) as server:
        yield server


async def graphql(client: httpx.AsyncClient, query: str, **variables: Any) -> dict[str, Any]:
    response = await client.post("/graphql", json={"query": query, "variables": variables})
    body = response.json()
    assert response.status_code == 200, body
    assert "errors" not in body, body
    return dict(body["data"])


UPSERT = """mutation($c: String!, $r: [RecordInput!]!) {
  upsertRecords(collection: $c, records: $r) { upserted errors { message } } }"""
SEARCH = """query($c: String!, $v: Vector!, $w: Filter) {
  search(collection: $c, vector: $v, topK: 5, where: $w) {
    hits { id score record { id metadata } } } }"""
PAGE = """query($c: String!, $after: String) {
  records(collection: $c, first: 50, after: $after) {
    totalCount edges { node { id } } pageInfo { hasNextPage endCursor } } }"""


async def test_the_api_serves_through_pgbouncer(
    pgbouncer: PgBouncer, database: str, tmp_path: Path
) -> None:
    rng = np.random.default_rng(7)
    vectors = rng.standard_normal((RECORDS, DIMENSION)).astype(np.float32)
    name = f"bouncer_{uuid.uuid4().hex[:6]}"
    with api_through(pgbouncer, database, tmp_path / "api") as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
            await graphql(
                client,
                """mutation($n: String!) { createCollection(input: {name: $n, dimension: 8,
                  fields: [{name: "group", type: INT}]}) { name } }""",
                n=name,
            )
            # Concurrent batches: more requests in flight than PgBouncer has server connections.
            batches = [
                [
                    {"id": f"r{i}", "vector": vectors[i].tolist(), "metadata": {"group": i % 4}}
                    for i in range(start, start + 20)
                ]
                for start in range(0, RECORDS, 20)
            ]
            results = await asyncio.gather(
                *(graphql(client, UPSERT, c=name, r=batch) for batch in batches)
            )
            assert sum(r["upsertRecords"]["upserted"] for r in results) == RECORDS

            searches = await asyncio.gather(
                *(
                    graphql(
                        client,
                        SEARCH,
                        c=name,
                        v=vectors[i].tolist(),
                        w={"field": "group", "eq": i % 4},
                    )
                    for i in range(0, RECORDS, 8)
                )
            )
            for i, found in zip(range(0, RECORDS, 8), searches, strict=True):
                hits = found["search"]["hits"]
                assert hits[0]["id"] == f"r{i}"  # its own vector ranks first
                assert all(h["record"]["metadata"]["group"] == i % 4 for h in hits)

            deleted = await graphql(
                client,
                """mutation($c: String!, $ids: [ID!]) {
                  deleteRecords(collection: $c, ids: $ids) { deleted } }""",
                c=name,
                ids=[f"r{i}" for i in range(0, RECORDS, 3)],
            )
            assert deleted["deleteRecords"]["deleted"] == RECORDS // 3

            seen: list[str] = []
            after = None
            while True:
                page = (await graphql(client, PAGE, c=name, after=after))["records"]
                seen += [edge["node"]["id"] for edge in page["edges"]]
                if not page["pageInfo"]["hasNextPage"]:
                    break
                after = page["pageInfo"]["endCursor"]
            expected = {f"r{i}" for i in range(RECORDS) if i % 3}
            assert page["totalCount"] == len(expected)
            assert len(seen) == len(expected)
            assert set(seen) == expected

            found = await graphql(client, SEARCH, c=name, v=vectors[0].tolist(), w=None)
            assert "r0" not in {h["id"] for h in found["search"]["hits"]}

        # PostgreSQL saw PgBouncer's two server connections, not the API's sixteen.
        server_side = await _connections_to(database)
        assert 1 <= server_side <= 2, server_side


async def _connections_to(database: str) -> int:
    conn = await asyncpg.connect(POSTGRES_URL.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        return int(
            await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1", database
            )
        )
    finally:
        await conn.close()
