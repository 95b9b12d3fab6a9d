"""The schema version row (``vq_schema_version``): read cheaply, bumped inside a DDL transaction.

The bump is one upsert, so the first DDL on a fresh database needs no seeded row; on PostgreSQL
the updated row stays locked until the transaction ends, which serializes concurrent DDL that
bumps it (the creator of a collection checks names against the others after its bump).
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from store.sql.tables import SchemaVersionRow

ROW = "collections"


async def read_version(session: AsyncSession) -> int:
    version = await session.scalar(
        select(col(SchemaVersionRow.version)).where(col(SchemaVersionRow.name) == ROW)
    )
    return version or 0


async def bump_version(session: AsyncSession) -> int:
    """Add one to the version inside ``session``'s transaction; returns the new version."""
    table = SchemaVersionRow.__table__  # type: ignore[attr-defined]  # SQLModel sets it
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    statement = (
        insert(table)
        .values(name=ROW, version=1)
        .on_conflict_do_update(index_elements=[table.c.name], set_={"version": table.c.version + 1})
        .returning(table.c.version)
    )
    return int((await session.execute(statement)).scalar_one())
