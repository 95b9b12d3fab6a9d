"""Real servers: faults on a Milvus standalone process, and two API processes sharing Milvus and
PostgreSQL."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from sqlalchemy import update

from store.sql.tables import LeaseRow, utcnow
from store.writes.lease import LeaseLost as _LeaseLost
from tests.conftest import Api, make_settings, milvus_standalone, running_api
from tests.servers import serve_api

DIM = 8
TIMEOUT = 3.0

UPSERT = """mutation($c: String!, $r: [RecordInput!]!) {
  upsertRecords(collection: $c, records: $r) { upserted } }"""
SEARCH = """query($c: String!, $v: Vector!, $cons: Consistency) {
  search(collection: $c, vector: $v, topK: 50, consistency: $cons) { hits { id } } }"""


def records(start: int, stop: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(start)
    return [
        {
            "id": f"r{i}",
            "vector": base64.b64encode(rng.random(DIM, dtype=np.float32).tobytes()).decode(),
            "metadata": {"n": i},
        }
        for i in range(start, stop)
    ]


@pytest.fixture
def own_milvus_server(tmp_path: Path) -> Iterator[Any]:
    """A Milvus standalone server of this test's own, to kill and restart."""
    with milvus_standalone(tmp_path / "milvus") as server:
        yield server


async def test_milvus_server_killed_and_restarted(
    own_milvus_server: Any, tmp_path: Path, name: str
) -> None:
    settings = make_settings(
        milvus_uri=own_milvus_server.uri,
        milvus_timeout=TIMEOUT,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}",
    )
    async with running_api(settings) as api:
        await api.ok(
            """mutation($n: String!) { createCollection(input: {
                 name: $n, dimension: 8, fields: [{name: "n", type: INT}]}) { name } }""",
            {"n": name},
        )
        await api.ok(UPSERT, {"c": name, "r": records(0, 20)})
        query = records(0, 1)[0]["vector"]

        own_milvus_server.kill()
        start = time.perf_counter()
        error = await api.error(SEARCH, {"c": name, "v": query})
        assert error["extensions"]["code"] == "UNAVAILABLE"
        assert time.perf_counter() - start < TIMEOUT + 20  # seconds, not minutes
        start = time.perf_counter()
        error = await api.error(UPSERT, {"c": name, "r": records(20, 30)})
        assert error["extensions"]["code"] == "UNAVAILABLE"
        assert "stored" in error["message"]
        assert time.perf_counter() - start < TIMEOUT + 20  # seconds, not minutes
        ready = await api.client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["milvus"]["ok"] is False
        assert (await api.client.get("/healthz")).status_code == 200
        stats = await api.ok(
            "query($n: String!) { collection(name: $n) { stats { records pending } } }",
            {"n": name},
        )
        assert stats["collection"]["stats"] == {"records": 30, "pending": 10}

        own_milvus_server.restart()
        assert (await api.client.get("/readyz")).status_code == 200
        data = await api.ok(SEARCH, {"c": name, "v": query, "cons": "STRONG"})
        assert len(data["search"]["hits"]) == 20
        report = await api.store.reconciler.run_once()
        assert report.pushed == 10
        data = await api.ok(SEARCH, {"c": name, "v": query, "cons": "STRONG"})
        assert {h["id"] for h in data["search"]["hits"]} == {f"r{i}" for i in range(30)}
        assert await api.store.vectors.all_ids(f"vq_{name}") == {f"r{i}" for i in range(30)}


async def test_two_api_processes_share_milvus_server_and_postgres(
    milvus_server: Any, postgres_url: str, tmp_path: Path, name: str
) -> None:
    shared = {
        "milvus_uri": milvus_server.uri,
        "database_url": postgres_url,
        "reconcile_interval": 1,
    }
    with (
        serve_api(tmp_path / "api-a", **shared) as server_a,
        serve_api(tmp_path / "api-b", args=("--workers", "2"), **shared) as server_b,
    ):
        a, b = server_a.graphql, server_b.graphql
        async with httpx.AsyncClient(timeout=60) as client:

            async def gql(url: str, query: str, variables: dict[str, Any]) -> Any:
                body = (
                    await client.post(url, json={"query": query, "variables": variables})
                ).json()
                assert not body.get("errors"), body
                return body["data"]

            await gql(
                a,
                """mutation($n: String!) {
                     createCollection(input: {name: $n, dimension: 8}) { name } }""",
                {"n": name},
            )
            await gql(a, UPSERT, {"c": name, "r": records(0, 10)})
            seen = await gql(
                b, 'query($c: String!) { record(collection: $c, id: "r3") { id } }', {"c": name}
            )
            assert seen == {"record": {"id": "r3"}}
            hits = await gql(
                b, SEARCH, {"c": name, "v": records(0, 1)[0]["vector"], "cons": "STRONG"}
            )
            assert {h["id"] for h in hits["search"]["hits"]} == {f"r{i}" for i in range(10)}
            await gql(
                b,
                'mutation($c: String!) { deleteRecords(collection: $c, ids: ["r3"]) { deleted } }',
                {"c": name},
            )
            gone = await gql(
                a, 'query($c: String!) { record(collection: $c, id: "r3") { id } }', {"c": name}
            )
            assert gone == {"record": None}
            await gql(a, "mutation($n: String!) { dropCollection(name: $n) }", {"n": name})


async def test_only_one_reconciler_runs_at_a_time(api: Api) -> None:
    settings = api.settings  # the cell's own Milvus and database
    async with running_api(settings) as first, running_api(settings) as second:
        holder = first.store.reconciler
        assert await holder._acquire()
        try:
            report = await second.store.reconciler.run_once()
            assert report.skipped
        finally:
            await holder._release()
        report = await second.store.reconciler.run_once()
        assert not report.skipped

        # A process that stalls past its lease loses it to another, and its pass stops at the
        # next renewal instead of running alongside the new holder's.
        assert await holder._acquire()
        async with first.store.sessions() as session, session.begin():
            await session.execute(update(LeaseRow).values(expires_at=utcnow() - timedelta(1)))
        taker = second.store.reconciler
        assert await taker._acquire()
        try:
            with pytest.raises(_LeaseLost):
                await holder._renew()
            assert (await holder.run_once()).skipped
        finally:
            await taker._release()
