"""Three API processes (``vectorql serve``) on the Milvus 2.3 server and PostgreSQL through
PgBouncer (transaction mode), under a bounded mixed load of upserts, deletes and searches spread
over them; one is killed with SIGKILL mid-load and started again. Afterwards every acknowledged
write is in SQL and in Milvus, nothing whose delete was acknowledged is in either, SQL's ids
equal Milvus's, and the reconciler passes the three processes ran (each logs its start and end
under the lease) never overlapped.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import itertools
import json
import os
import re
import signal
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import numpy as np
import pytest

from tests.conftest import POSTGRES_URL, backend_missing, fresh_postgres_database
from tests.pgbouncer import PgBouncer, pgbouncer_binary, start_pgbouncer
from tests.servers import ApiServer, serve_api

pytestmark = pytest.mark.slow

DIMENSION = 8
WORKERS = 6
OPERATIONS = 60  # per worker: about 360 requests in all
BATCH = 10

UPSERT = """mutation($c: String!, $r: [RecordInput!]!) {
  upsertRecords(collection: $c, records: $r) { upserted errors { message } } }"""
DELETE = """mutation($c: String!, $ids: [ID!]) { deleteRecords(collection: $c, ids: $ids) {
  deleted } }"""
SEARCH = """query($c: String!, $v: Vector!) { search(collection: $c, vector: $v, topK: 10) {
  hits { id } } }"""
PASS = re.compile(r"reconciler pass (started|ended) by (\S+)$")


@dataclass
class Ledger:
    """What the clients were told: acknowledged writes and deletes, and the outcomes unknown
    (the request failed: it may or may not have been applied)."""

    written: set[str] = field(default_factory=set)
    deleted: set[str] = field(default_factory=set)
    unknown: set[str] = field(default_factory=set)
    searches: int = 0
    failures: int = 0
    midway: asyncio.Event = field(default_factory=asyncio.Event)  # set once 150 writes are in


@pytest.fixture(scope="module")
def pgbouncer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgBouncer]:
    if pgbouncer_binary() is None:
        backend_missing("PgBouncer", "pgbouncer is not installed (Debian's package pgbouncer)")
    with start_pgbouncer(tmp_path_factory.mktemp("pgbouncer"), POSTGRES_URL, pool_size=4) as b:
        yield b


@pytest.fixture
async def database() -> AsyncIterator[str]:
    async with fresh_postgres_database("vq_many") as url:
        yield url.rsplit("/", 1)[1]


class Fleet:
    """The API processes; ``urls`` holds the live ones, which the clients spread requests over."""

    def __init__(self, stack: contextlib.ExitStack, settings: dict[str, Any], base: Path) -> None:
        self._stack = stack
        self._settings = settings
        self._base = base
        self.servers: list[ApiServer] = []
        self.urls: list[str] = []
        self.logs: list[Path] = []
        self._lock = threading.Lock()

    def start(self, index: int) -> ApiServer:
        data = self._base / f"api{index}-{uuid.uuid4().hex[:4]}"
        # entered here, exited by the test's stack (ExitStack.enter_context is not for threads)
        serving = serve_api(data, **self._settings)
        server = serving.__enter__()
        with self._lock:
            self._stack.push(serving)
            self.logs.append(server.log)
        return server

    def kill(self, server: ApiServer) -> None:
        self.urls.remove(server.url)
        os.killpg(server.process.pid, signal.SIGKILL)
        server.process.wait()


async def _client_load(
    worker: int, client: httpx.AsyncClient, fleet: Fleet, name: str, ledger: Ledger
) -> None:
    rng = np.random.default_rng(worker)

    async def call(query: str, **variables: Any) -> dict[str, Any] | None:
        url = fleet.urls[rng.integers(len(fleet.urls))]
        try:
            response = await client.post(
                f"{url}/graphql", json={"query": query, "variables": variables}
            )
            body = response.json()
        except (httpx.HTTPError, ValueError):
            ledger.failures += 1
            return None
        if response.status_code != 200 or body.get("errors"):
            ledger.failures += 1
            return None
        return dict(body["data"])

    for n in range(OPERATIONS):
        kind = n % 3
        if kind == 0 or not ledger.written - ledger.deleted - ledger.unknown:
            ids = [f"w{worker}-{n}-{j}" for j in range(BATCH)]
            records = [{"id": i, "vector": rng.standard_normal(DIMENSION).tolist()} for i in ids]
            data = await call(UPSERT, c=name, r=records)
            if data and data["upsertRecords"]["upserted"] == BATCH:
                ledger.written.update(ids)
                if len(ledger.written) >= 150:
                    ledger.midway.set()
            else:
                ledger.unknown.update(ids)
        elif kind == 1:
            candidates = sorted(ledger.written - ledger.deleted - ledger.unknown)
            ids = [candidates[i] for i in rng.choice(len(candidates), 3)]
            ledger.unknown.update(ids)  # until the answer says otherwise
            data = await call(DELETE, c=name, ids=ids)
            if data is not None:
                ledger.deleted.update(ids)
                ledger.unknown.difference_update(ids)
        else:
            data = await call(SEARCH, c=name, v=rng.standard_normal(DIMENSION).tolist())
            ledger.searches += data is not None


async def _settled(dsn: str, name: str, within: float) -> set[str]:
    """SQL's ids of ``name`` once no row is pending or being deleted (the reconciler's work)."""
    conn = await asyncpg.connect(dsn)
    try:
        deadline = time.monotonic() + within
        while True:
            rows = await conn.fetch("SELECT id, state FROM vq_record WHERE collection = $1", name)
            if all(r["state"] == "indexed" for r in rows):
                return {r["id"] for r in rows}
            if time.monotonic() > deadline:
                states = {r["state"] for r in rows}
                pytest.fail(f"rows still not indexed after {within:.0f} s: {states}")
            await asyncio.sleep(0.5)
    finally:
        await conn.close()


def _milvus_ids(uri: str, name: str) -> set[str]:
    from pymilvus import MilvusClient

    client = MilvusClient(uri=uri)
    try:
        rows = client.query(
            f"vq_{name}", filter='id != ""', output_fields=["id"], consistency_level="Strong"
        )
        return {r["id"] for r in rows}
    finally:
        client.close()


def _passes(logs: list[Path], killed: dict[str, datetime]) -> list[tuple[datetime, datetime, str]]:
    """(start, end, holder) of every reconciler pass in the logs; a pass cut short by SIGKILL
    ends when its process was killed."""
    events = []
    for log in logs:
        for line in log.read_text(errors="replace").splitlines():
            if "reconciler pass" not in line:
                continue
            entry = json.loads(line)
            found = PASS.search(entry["event"])
            if found:
                at = datetime.fromisoformat(entry["timestamp"])
                events.append((at, found.group(1), found.group(2)))
    events.sort()
    passes, open_at = [], {}
    for at, what, holder in events:
        if what == "started":
            open_at[holder] = at
        elif holder in open_at:
            passes.append((open_at.pop(holder), at, holder))
    for holder, at in open_at.items():
        pid = holder.split(":")[1]
        passes.append((at, killed.get(pid, datetime.max.replace(tzinfo=UTC)), holder))
    return sorted(passes)


async def test_three_api_processes_through_a_kill(
    pgbouncer: PgBouncer, database: str, milvus_server: Any, tmp_path: Path
) -> None:
    name = f"many_{uuid.uuid4().hex[:6]}"
    dsn = POSTGRES_URL.replace("postgresql+asyncpg://", "postgresql://").rsplit("/", 1)[0]
    settings = {
        "milvus_uri": milvus_server.uri,
        "milvus_timeout": 30,
        "database_url": pgbouncer.url(database),
        "sql_pooler": "transaction",
        "sql_pool_size": 4,
        "reconcile_interval": 0.5,  # frequent passes from all three: overlaps would show
        "embedders": "[]",
        "log_level": "DEBUG",
        "log_format": "json",
    }
    ledger = Ledger()
    killed: dict[str, datetime] = {}
    with contextlib.ExitStack() as stack:
        fleet = Fleet(stack, settings, tmp_path)
        with concurrent.futures.ThreadPoolExecutor(3) as pool:  # three start-ups at once
            servers = list(pool.map(fleet.start, range(3)))
        fleet.urls = [s.url for s in servers]
        async with httpx.AsyncClient(timeout=60) as client:
            created = await client.post(
                f"{servers[0].url}/graphql",
                json={
                    "query": """mutation($n: String!) { createCollection(input: {name: $n,
                      dimension: 8}) { name } }""",
                    "variables": {"n": name},
                },
            )
            assert "errors" not in created.json(), created.json()

            async def chaos() -> None:
                await ledger.midway.wait()  # mid-load: some writes acknowledged
                victim = servers[1]
                killed[str(victim.process.pid)] = datetime.now(UTC)
                fleet.kill(victim)
                restarted = await asyncio.to_thread(fleet.start, 1)
                fleet.urls.append(restarted.url)

            await asyncio.gather(
                chaos(),
                *(_client_load(w, client, fleet, name, ledger) for w in range(WORKERS)),
            )

        sql_ids = await _settled(f"{dsn}/{database}", name, within=180)
        milvus_ids = await asyncio.to_thread(_milvus_ids, milvus_server.uri, name)

    assert killed, "the kill did not happen"
    assert ledger.searches > 0
    kept = ledger.written - ledger.deleted - ledger.unknown
    assert kept, "no acknowledged write to check"
    assert kept <= sql_ids, sorted(kept - sql_ids)[:10]
    assert kept <= milvus_ids, sorted(kept - milvus_ids)[:10]
    assert not ledger.deleted & (sql_ids | milvus_ids), sorted(ledger.deleted & sql_ids)[:10]
    assert sql_ids == milvus_ids, (
        sorted(sql_ids - milvus_ids)[:5],
        sorted(milvus_ids - sql_ids)[:5],
    )

    passes = _passes(fleet.logs, killed)
    assert len(passes) >= 3, passes
    for (_, end, holder), (start, _, next_holder) in itertools.pairwise(passes):
        assert end <= start, f"{holder}'s pass overlaps {next_holder}'s"
