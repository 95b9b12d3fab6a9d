"""Planner statistics on PostgreSQL, kept fresh by vectorql when autovacuum does not.

Without statistics PostgreSQL's planner estimates one row for the (collection, tenant) prefix of
an index and stops using the index's later columns: a search's record read by 10 ids scanned all
63,236 rows of the collection (106 ms against 0.12 ms after ``ANALYZE``), a keyword search every
posting (480-830 ms against 10-23 ms; docs/measurements.md "keyword and hybrid search"). A
database with autovacuum off, or a burst of writes it has not caught up with, is left there.

So every ``vectorql serve`` process checks, every ``interval`` seconds, the rows changed since
each table's last analysis (``pg_stat_user_tables``, one small query), and ``ANALYZE``s the tables
past autovacuum's own rule (more than 50 + 10% of their rows), one process at a time (an
advisory lock). Where autovacuum keeps up, the check finds nothing to do. SQLite's searches do not
depend on statistics (``store.sql.bm25``).
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from store.sql.postings import POSTINGS, RECORDS, STATS

log = logging.getLogger(__name__)

INTERVAL = 30.0  # seconds between checks (autovacuum's own naptime is 60 s)
TABLES = (RECORDS.name, POSTINGS.name, STATS.name)
# autovacuum's defaults: analyze past 50 rows + 10% of the table changed since the last analysis
BASE_ROWS = 50
SCALE = 0.1
LOCK_KEY = 0x76717374  # "vqst": one process analyzes at a time

_STALE = text(
    """
    SELECT relname FROM pg_stat_user_tables
    WHERE relname = ANY(:tables) AND schemaname = ANY(current_schemas(false))
      AND n_mod_since_analyze > :base + :scale * greatest(n_live_tup, 0)
    ORDER BY relname
    """
)


async def stale_tables(engine: AsyncEngine) -> list[str]:
    """vectorql's tables that changed past autovacuum's rule since their last analysis."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            _STALE, {"tables": list(TABLES), "base": BASE_ROWS, "scale": SCALE}
        )
        return [str(name) for (name,) in rows]


async def refresh_stale(engine: AsyncEngine) -> list[str]:
    """ANALYZE the stale tables (none on SQLite); the tables analyzed. Another process doing
    it now means this one skips."""
    if engine.dialect.name != "postgresql":
        return []
    tables = await stale_tables(engine)
    if not tables:
        return []
    async with engine.connect() as conn:
        locked = await conn.scalar(text("SELECT pg_try_advisory_lock(:k)"), {"k": LOCK_KEY})
        if not locked:
            return []
        try:
            await conn.exec_driver_sql(f"ANALYZE {', '.join(tables)}")
            await conn.commit()
        finally:
            await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": LOCK_KEY})
            await conn.commit()
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
        except Exception as e:  # noqa: BLE001  (SQL down: /readyz says so; try again later)
            log.debug("statistics not refreshed: %s", e)
        await asyncio.sleep(interval)
