"""Reading records from SQL, the system of record. Rows being deleted are never returned."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from store.records import RecordState, StoredRecord
from store.tables import RecordRow

# Well below SQLite's and asyncpg's bind-parameter limits (32766 / 32767).
IN_CHUNK = 5000


def to_record(row: RecordRow) -> StoredRecord:
    return StoredRecord(
        collection=row.collection,
        id=row.id,
        metadata=dict(row.meta or {}),
        text=row.text,
        tenant=row.tenant,
        vector=row.vector,
        state=RecordState(row.state),
        created_at=_aware(row.created_at),
        updated_at=_aware(row.updated_at),
    )


def _aware(dt: datetime) -> datetime:
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


class Reader:
    def __init__(self, *, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def get(self, collection: str, id: str, *, tenant: str | None) -> StoredRecord | None:
        found = await self.get_many(collection, [id], tenant=tenant)
        return found[0]

    async def get_many(
        self, collection: str, ids: Sequence[str], *, tenant: str | None
    ) -> list[StoredRecord | None]:
        """Records in key order, ``None`` for a miss; one statement per 5,000 ids."""
        by_id: dict[str, StoredRecord] = {}
        unique = list(dict.fromkeys(ids))
        async with self._sessions() as session:
            for start in range(0, len(unique), IN_CHUNK):
                conditions = [
                    col(RecordRow.collection) == collection,
                    col(RecordRow.id).in_(unique[start : start + IN_CHUNK]),
                    col(RecordRow.state) != RecordState.DELETING.value,
                ]
                if tenant is not None:
                    conditions.append(col(RecordRow.tenant) == tenant)
                rows = (await session.scalars(select(RecordRow).where(and_(*conditions)))).all()
                for row in rows:
                    by_id[row.id] = to_record(row)
        return [by_id.get(i) for i in ids]
