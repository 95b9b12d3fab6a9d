"""Planner statistics on PostgreSQL, kept fresh by vectorql when autovacuum does not.

Without statistics PostgreSQL's planner estimates one row for the (collection, tenant) prefix of
an index and stops using the index's later columns: a search's record read by 10 ids scanned all
63,236 rows of the collection (106 ms against 0.12 ms after ``ANALYZE``), a keyword search every
posting (700-970 ms against 16-22 ms a search; docs/measurements.md "keyword and hybrid
search"). A database with autovacuum off, or a burst of writes it has not caught up with yet,
is left there.

So every ``vectorql serve`` process checks, every ``interval`` seconds, the rows changed since
each table's last analysis (``pg_stat_user_tables``, one small query), and ``ANALYZE``s the tables
past autovacuum's own rule (more than 50 + 10% of their rows), one process at a time (an
advisory lock). The rule is autovacuum's, so where autovacuum runs the two share the work:
whichever comes first analyzes, and the other finds nothing to do. SQLite's searches do not
depend on statistics (``store.sql.bm25``).
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from store.sql.postings import POSTINGS, RECORDS, STATS

log = logging.getLogger(__name__)

INTERVAL = 30.0  # seconds between checks (autovacuum's own naptime is 60 s)
TABLES = (RECORDS.name, POSTINGS.name, STATS.name)
# autovacuum's defaults: analyze past 50 rows + 10% of the table changed since the last analysis
BASE_ROWS = 50
SCALE = 0.1
LOCK_KEY = 0x76717374  # "vqst": one process analyzes at a time

# Tables named as ANALYZE resolves them (the search path), with autovacuum's rule; the
# constants are cast, or PostgreSQL would type 0.1 as the bigint it multiplies (0).
_STALE = text(
    """
    SELECT relname FROM pg_stat_user_tables
    WHERE relid IN (SELECT to_regclass(name) FROM unnest(CAST(:tables AS text[])) AS name)
      AND n_mod_since_analyze >
          CAST(:base AS double precision)
          + CAST(:scale AS double precision) * greatest(n_live_tup, 0)
    ORDER BY relname
    """
)
_PARAMETERS = {"tables": list(TABLES), "base": BASE_ROWS, "scale": SCALE}


async def analyze(engine: AsyncEngine | AsyncConnection) -> None:
    """After a bulk write (an import, the start-up keyword build), on PostgreSQL: ANALYZE every
    table now, in the caller's transaction when given a connection."""
    if engine.dialect.name != "postgresql":
        return
    statement = f"ANALYZE {', '.join(TABLES)}"
    if isinstance(engine, AsyncConnection):
        await engine.exec_driver_sql(statement)
        return
    async with engine.begin() as conn:
        await conn.exec_driver_sql(statement)


async def stale_tables(engine: AsyncEngine) -> list[str]:
    """vectorql's tables that changed past autovacuum's rule since their last analysis."""
    async with engine.connect() as conn:
        return [str(name) for (name,) in await conn.execute(_STALE, _PARAMETERS)]


async def refresh_stale(engine: AsyncEngine) -> list[str]:
    """ANALYZE the stale tables (none on SQLite); the tables analyzed. Another process doing
    it now means this one skips. One transaction: its lock and its work end together, whatever
    fails."""
    if engine.dialect.name != "postgresql" or not await stale_tables(engine):
        return []
    async with engine.begin() as conn:
        if not await conn.scalar(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": LOCK_KEY}):
            return []
        # Again under the lock: the process that held it may have just analyzed them.
        tables = [str(name) for (name,) in await conn.execute(_STALE, _PARAMETERS)]
        if tables:
            await conn.exec_driver_sql(f"ANALYZE {', '.join(tables)}")
    return tables


async def keep_fresh(engine: AsyncEngine, interval: float = INTERVAL) -> None:
    """``refresh_stale`` every ``interval`` seconds, forever (the app's lifespan runs this);
    returns at once on SQLite."""
    if engine.dialect.name != "postgresql":
        return
    while True:
        try:
            analyzed = await refresh_stale(engine)
            if analyzed:
                log.info("analyzed %s for the query planner", ", ".join(analyzed))
        except Exception as e:  # SQL down: /readyz says so; try again later
            task = asyncio.current_task()
            if task is not None and task.cancelling():  # stopping: a rollback's error hid it
                raise asyncio.CancelledError from e
            log.debug("statistics not refreshed: %s", e)
        await asyncio.sleep(interval)
