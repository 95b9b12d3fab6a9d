"""Several processes opening one fresh database at once (``vectorql serve --workers N``, or
several hosts behind a load balancer) all start: creating the tables is safe to race."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import inspect

from store.sql.engines import create_tables, make_engine
from store.sql.tables import RecordRow
from tests.conftest import fresh_database

RACERS = 6


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
async def test_processes_creating_the_tables_of_a_fresh_database_at_once_all_succeed(
    kind: str, tmp_path: Path
) -> None:
    async with fresh_database(kind, tmp_path) as url:
        # One engine per would-be process: separate connections, so the database sees the race.
        engines = [make_engine(url, pool_size=1) for _ in range(RACERS)]
        try:
            await asyncio.gather(*(create_tables(e) for e in engines))
            async with engines[0].connect() as conn:
                tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
        finally:
            for e in engines:
                await e.dispose()
    assert RecordRow.__tablename__ in tables
