"""Changes to SQL tables made by earlier versions, applied at start-up right after the missing
tables are created (``store.sql.engines.create_tables``). Each step first checks whether the
database needs it, so it runs once, and is safe to race: processes starting at once on one
database run it one after the other (PostgreSQL: an advisory lock; SQLite: ``BEGIN IMMEDIATE``)
and the later ones find it done.

Steps:

1. **Record keys scoped by tenant.** ``vq_record`` was keyed by (collection, id) with a nullable
   ``tenant``; it is keyed by (collection, tenant, id), ``tenant`` being ``''`` in collections
   that are not multi-tenant (``store.sql.tables.RecordRow``). PostgreSQL changes the key in place,
   in one transaction; SQLite cannot change a primary key, so the rows are copied into a new
   table in one transaction. The old key allowed no id twice in a collection, so every row
   keeps its identity. Milvus collections of multi-tenant collections are re-keyed by the
   reconciler (``Reconciler``: rebuilt from SQL).
2. **The keyword index.** Collections without keyword statistics (their records predate
   ``store.sql.postings``) get their records' text indexed, in the migration's transaction: on
   the 63k records of the shared dataset this takes seconds (docs/measurements.md). Each
   collection is checked once: it then has a statistics row.
"""

from __future__ import annotations

import logging

from sqlalchemy import Connection, Table, inspect, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from store.sql import statistics
from store.sql.postings import STATS, build_missing
from store.sql.tables import NO_TENANT, CollectionRow, RecordRow

log = logging.getLogger(__name__)

RECORDS: Table = RecordRow.__table__  # type: ignore[attr-defined]
# Indexes of the record table before step 1 (the tenant one is now the primary key's prefix).
OLD_RECORD_INDEXES = ("ix_vq_record_state", "ix_vq_record_tenant")


async def migrate(engine: AsyncEngine, *, postgres_lock: int) -> None:
    """Apply every step the database needs. ``postgres_lock``: the advisory lock key that
    serializes DDL across processes on PostgreSQL."""
    if engine.dialect.name == "postgresql":
        async with engine.begin() as conn:
            await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": postgres_lock})
            if await conn.run_sync(_record_key_unscoped):
                await _scope_record_key_postgres(conn)
            await _build_keyword_index(conn)
        return
    async with engine.connect() as conn:
        # Statements below manage the transaction themselves: pysqlite would open one only at
        # the first INSERT, leaving the DDL before it outside.
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        if not await conn.run_sync(_record_key_unscoped) and not await _keyword_missing(conn):
            return
        await conn.exec_driver_sql("BEGIN IMMEDIATE")  # waits for (and then blocks) writers
        try:
            if await conn.run_sync(_record_key_unscoped):  # not done meanwhile by another
                await _scope_record_key_sqlite(conn)
            await _build_keyword_index(conn)
            await conn.exec_driver_sql("COMMIT")
        except BaseException:
            await conn.exec_driver_sql("ROLLBACK")
            raise


async def _keyword_missing(conn: AsyncConnection) -> bool:
    """Whether some collection has no keyword statistics (step 2 has work)."""
    collections: Table = CollectionRow.__table__  # type: ignore[attr-defined]
    missing = await conn.execute(
        select(collections.c.name)
        .where(~select(STATS.c.collection).where(STATS.c.collection == collections.c.name).exists())
        .limit(1)
    )
    return missing.first() is not None


async def _build_keyword_index(conn: AsyncConnection) -> None:
    built = await build_missing(conn)
    if built:
        await statistics.analyze(conn)
        log.warning("built the keyword index of %s", ", ".join(built))


def _record_key_unscoped(conn: Connection) -> bool:
    """Whether ``vq_record`` has the (collection, id) key of earlier versions."""
    pk = inspect(conn).get_pk_constraint(RECORDS.name)
    return "tenant" not in (pk.get("constrained_columns") or ())


async def _scope_record_key_postgres(conn: AsyncConnection) -> None:
    pk = await conn.run_sync(lambda c: inspect(c).get_pk_constraint(RECORDS.name))
    constraint = pk["name"] or f"{RECORDS.name}_pkey"  # PostgreSQL names every constraint
    quote = conn.dialect.identifier_preparer.quote
    table = quote(RECORDS.name)
    await conn.execute(
        text(f"UPDATE {table} SET tenant = :none WHERE tenant IS NULL"), {"none": NO_TENANT}
    )
    await conn.execute(
        text(
            f"ALTER TABLE {table} ALTER COLUMN tenant SET DEFAULT '{NO_TENANT}', "
            f"ALTER COLUMN tenant SET NOT NULL, DROP CONSTRAINT {quote(constraint)}"
        )
    )
    await conn.execute(text(f"ALTER TABLE {table} ADD PRIMARY KEY (collection, tenant, id)"))
    await conn.execute(text("DROP INDEX IF EXISTS ix_vq_record_tenant"))
    log.warning("migrated %s: records are keyed by (collection, tenant, id)", RECORDS.name)


async def _scope_record_key_sqlite(conn: AsyncConnection) -> None:
    old_columns = await conn.run_sync(
        lambda c: {col["name"] for col in inspect(c).get_columns(RECORDS.name)}
    )
    quote = conn.dialect.identifier_preparer.quote
    old = quote(f"{RECORDS.name}_old")
    await conn.exec_driver_sql(f"ALTER TABLE {quote(RECORDS.name)} RENAME TO {old}")
    for index in OLD_RECORD_INDEXES:  # renamed with their table: the new table's need the names
        await conn.exec_driver_sql(f"DROP INDEX IF EXISTS {quote(index)}")
    await conn.run_sync(lambda c: RECORDS.create(c))
    names = [c.name for c in RECORDS.columns if c.name in old_columns]
    values = [f"COALESCE(tenant, '{NO_TENANT}')" if n == "tenant" else quote(n) for n in names]
    await conn.exec_driver_sql(
        f"INSERT INTO {quote(RECORDS.name)} ({', '.join(quote(n) for n in names)}) "
        f"SELECT {', '.join(values)} FROM {old}"
    )
    await conn.exec_driver_sql(f"DROP TABLE {old}")
    log.warning("migrated %s: records are keyed by (collection, tenant, id)", RECORDS.name)
