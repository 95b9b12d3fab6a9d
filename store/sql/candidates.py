"""The rows a filtered search may return, read from SQL for an exact search (``store.search``):
with a selective filter an approximate index can miss most of them, and SQL, the system of
record, has every row and its vector."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from store.filters import Filter, to_sql
from store.records import CollectionInfo, RecordState
from store.sql.tables import RecordRow, tenant_key


@dataclass(frozen=True, slots=True)
class Matching:
    """Which rows a search may return: a filter, a tenant, and the query record left out."""

    where: Filter | None = None
    tenant: str | None = None
    exclude_id: str | None = None


class Candidates:
    def __init__(self, *, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    def _conditions(
        self, info: CollectionInfo, matching: Matching, dialect: str
    ) -> list[ColumnElement[bool]]:
        conditions: list[ColumnElement[bool]] = [
            col(RecordRow.collection) == info.name,
            col(RecordRow.tenant) == tenant_key(matching.tenant),
            # What the index is meant to hold: rows still pending (their Milvus write failed; the
            # reconciler pushes them) stay out of search on every route, as on the index's.
            col(RecordRow.state) == RecordState.INDEXED.value,
        ]
        if matching.exclude_id is not None:
            conditions.append(col(RecordRow.id) != matching.exclude_id)
        if matching.where is not None:
            conditions.append(to_sql(matching.where, fields=info.fields, dialect=dialect))
        return conditions

    async def count(
        self,
        info: CollectionInfo,
        matching: Matching,
        *,
        at_most: int,
    ) -> int:
        """How many rows match, counting no further than ``at_most`` (the scan stops there)."""
        async with self._sessions() as session:
            dialect = session.get_bind().dialect.name
            conditions = self._conditions(info, matching, dialect)
            rows = select(col(RecordRow.id)).where(and_(*conditions)).limit(at_most)
            found = await session.scalar(select(func.count()).select_from(rows.subquery()))
        return int(found or 0)

    async def vectors(
        self,
        info: CollectionInfo,
        matching: Matching,
        *,
        at_most: int,
    ) -> list[tuple[str, bytes]] | None:
        """(id, float32 vector) of every matching row, or None when more than ``at_most`` match."""
        async with self._sessions() as session:
            dialect = session.get_bind().dialect.name
            conditions = self._conditions(info, matching, dialect)
            rows = (
                await session.execute(
                    select(col(RecordRow.id), col(RecordRow.vector))
                    .where(and_(*conditions))
                    .limit(at_most + 1)
                )
            ).all()
        if len(rows) > at_most:
            return None
        return [(str(r[0]), bytes(r[1])) for r in rows]
