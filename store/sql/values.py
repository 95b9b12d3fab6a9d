"""One metadata field of many records by id, without their vectors (``store.grouping``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from store.sql.tables import RecordRow, tenant_key

# Ids per statement: well below SQLite's and asyncpg's bind-parameter limits.
CHUNK = 2000


async def field_values(
    sessions: async_sessionmaker[AsyncSession],
    *,
    collection: str,
    tenant: str | None,
    ids: Sequence[str],
    field: str,
) -> dict[str, Any]:
    """``field`` of each record of ``ids`` that SQL holds (None when absent); a deleted record
    is left out."""
    out: dict[str, Any] = {}
    async with sessions() as session:
        for start in range(0, len(ids), CHUNK):
            chunk = list(ids[start : start + CHUNK])
            rows = await session.execute(
                select(col(RecordRow.id), col(RecordRow.meta)).where(
                    and_(
                        col(RecordRow.collection) == collection,
                        col(RecordRow.tenant) == tenant_key(tenant),
                        col(RecordRow.id).in_(chunk),
                    )
                )
            )
            for id, metadata in rows.all():
                out[str(id)] = (metadata or {}).get(field)
    return out
