"""PostgreSQL's planner gets what it needs to keep vectorql's statements on their indexes.

- Each run of a statement is planned for its own parameters (``store.sql.engines``). asyncpg
  prepares every statement, and PostgreSQL plans a prepared statement for its parameters only
  five times; from the sixth run it may keep one generic plan. For the import's indexed mark (an
  ``UPDATE`` joined with ``unnest`` of arrays) that plan made each batch's mark 20-40x slower.
- Tables that changed past autovacuum's rule are analyzed by vectorql itself
  (``store.sql.statistics``): without statistics, a search's read of 10 records scanned the whole
  collection and a keyword search every posting (docs/measurements.md). Autovacuum is off on the
  test server, so only vectorql's own ANALYZE can make them here.
"""

from __future__ import annotations

import asyncio
import base64
import time
from pathlib import Path

import numpy as np
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from store.records import RecordData
from store.sql import make_engine, sessionmaker, statistics, utcnow
from store.sql.engines import create_tables
from store.writes import rows
from tests.conftest import fresh_postgres_database, make_settings, running_api

BATCHES = 8  # more than the five custom plans PostgreSQL makes before it may go generic
ROWS = 200


def records(batch: int, n: int = ROWS) -> list[RecordData]:
    vector = np.zeros(4, dtype="<f4").tobytes()
    return [
        RecordData(id=f"r{batch}-{i}", vector=vector, metadata={}, text=f"words of {batch} {i}")
        for i in range(n)
    ]


async def write_and_mark(engine: AsyncEngine, batch: int, n: int = ROWS) -> None:
    sessions = sessionmaker(engine)
    async with sessions() as session, session.begin():
        revisions = await rows.upsert_pending(
            session, collection="c", records=records(batch, n), now=utcnow()
        )
    async with sessions() as session, session.begin():
        await rows.mark_indexed(session, collection="c", revisions=revisions)


async def reltuples(engine: AsyncEngine) -> dict[str, float]:
    """Rows PostgreSQL's statistics count per table (-1: never analyzed)."""
    async with engine.connect() as conn:
        found = await conn.execute(
            text(
                "SELECT relname, reltuples FROM pg_class "
                "WHERE relname IN ('vq_record', 'vq_keyword_posting')"
            )
        )
        return {str(name): float(n) for name, n in found.all()}


async def test_the_indexed_mark_is_planned_for_its_parameters_every_run() -> None:
    async with fresh_postgres_database("vq_plans") as url:
        engine = make_engine(url, pool_size=1)  # one connection: its prepared statements are seen
        try:
            async with engine.connect() as conn:  # a first use that ends in a rollback
                await conn.execute(text("SELECT 1"))
            await create_tables(engine)
            for batch in range(BATCHES):
                await write_and_mark(engine, batch)
            async with engine.connect() as conn:
                plans = (
                    await conn.execute(
                        text(
                            "SELECT generic_plans, custom_plans FROM pg_prepared_statements "
                            "WHERE statement LIKE '%UPDATE vq_record%' "
                            "AND statement NOT LIKE '%pg_prepared_statements%'"
                        )
                    )
                ).all()
                states = dict(
                    (
                        await conn.execute(
                            text("SELECT state, count(*) FROM vq_record GROUP BY state")
                        )
                    ).all()
                )
        finally:
            await engine.dispose()
    assert states == {"indexed": BATCHES * ROWS}
    assert len(plans) == 1, plans
    generic, custom = plans[0]
    assert (generic, custom) == (0, BATCHES)


async def changes_reported(engine: AsyncEngine, at_least: int) -> None:
    """Wait until the statistics views count ``at_least`` changed rows of vq_record since its
    last analysis (a backend reports its changes when idle, after up to 10 s)."""
    query = text("SELECT n_mod_since_analyze FROM pg_stat_user_tables WHERE relname = 'vq_record'")
    deadline = time.monotonic() + 30
    while True:
        async with engine.connect() as conn:
            changed = int(await conn.scalar(query) or 0)
        if changed >= at_least or time.monotonic() > deadline:
            assert changed >= at_least
            return
        await asyncio.sleep(0.2)


async def test_tables_changed_past_autovacuums_rule_are_analyzed_once() -> None:
    async with fresh_postgres_database("vq_stats") as url:
        engine = make_engine(url)
        try:
            await create_tables(engine)
            await write_and_mark(engine, 0, n=500)
            await changes_reported(engine, 1000)  # 500 inserted, then 500 marked indexed
            # Only the record table changed here (the keyword postings are written elsewhere).
            assert await statistics.stale_tables(engine) == ["vq_record"]
            assert (await reltuples(engine))["vq_record"] == -1.0
            assert await statistics.refresh_stale(engine) == ["vq_record"]
            assert (await reltuples(engine))["vq_record"] == 500.0
            # 60 changed rows (30 inserted, then marked) of 530: past 50, under 50 + 10%.
            await write_and_mark(engine, 1, n=30)
            await changes_reported(engine, 60)
            assert await statistics.stale_tables(engine) == []
            assert await statistics.refresh_stale(engine) == []
            assert (await reltuples(engine))["vq_record"] == 500.0
        finally:
            await engine.dispose()


async def test_serve_analyzes_the_tables_its_writes_changed(tmp_path: Path) -> None:
    """Records written through the API are counted by PostgreSQL's statistics within the
    interval, so reads and keyword searches are planned on the tables' real sizes."""
    n = 300
    vectors = np.random.default_rng(3).normal(size=(n, 4)).astype("<f4")
    upsert = """mutation($c: String!, $r: [RecordInput!]!) {
      upsertRecords(collection: $c, records: $r) { upserted } }"""
    create = "mutation($i: CreateCollectionInput!) { createCollection(input: $i) { name } }"
    async with fresh_postgres_database("vq_stats_api") as url:
        settings = make_settings(
            milvus_uri=str(tmp_path / "milvus.db"), database_url=url, statistics_interval=0.2
        )
        async with running_api(settings) as api:
            await api.ok(create, {"i": {"name": "docs", "dimension": 4}})
            batch = [
                {
                    "id": f"d{i}",
                    "vector": base64.b64encode(vectors[i].tobytes()).decode(),
                    "text": f"document number {i} about planners",
                }
                for i in range(n)
            ]
            assert (await api.ok(upsert, {"c": "docs", "r": batch}))["upsertRecords"][
                "upserted"
            ] == n
            deadline = time.monotonic() + 20
            counted: dict[str, float] = {}
            while time.monotonic() < deadline:
                counted = await reltuples(api.store.engine)
                if counted.get("vq_record") == n and counted.get("vq_keyword_posting", -1) > 0:
                    break
                await asyncio.sleep(0.2)
    assert counted["vq_record"] == n
    assert counted["vq_keyword_posting"] >= n
