"""Reading records from SQL, the system of record. Rows being deleted are never returned."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, Row, Select, Table, and_, bindparam, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from store.records import RecordState, StoredRecord
from store.sql.tables import RecordRow, tenant_key, tenant_of

# Well below SQLite's and asyncpg's bind-parameter limits (32766 / 32767).
IN_CHUNK = 5000
# Reads of at most this many ids run inline on the event loop when the store has an inline
# engine (a SQLite file): the lookups of a search's hits, and single records.
INLINE_MAX_IDS = 256


RECORDS: Table = RecordRow.__table__  # type: ignore[attr-defined]
# The columns a read returns, selected as plain rows: building ORM objects for them cost more
# CPU than the query itself (about half of a search's SQL time).
RECORD_COLUMNS = (
    RECORDS.c.collection,
    RECORDS.c.id,
    RECORDS.c["metadata"],
    RECORDS.c.text,
    RECORDS.c.tenant,
    RECORDS.c.vector,
    RECORDS.c.state,
    RECORDS.c.created_at,
    RECORDS.c.updated_at,
)


def to_record(row: Sequence[Any]) -> StoredRecord:
    """A row selected with ``RECORD_COLUMNS``."""
    collection, id, meta, text, tenant, vector, state, created_at, updated_at = row
    return StoredRecord(
        collection=collection,
        id=id,
        metadata=dict(meta or {}),
        text=text,
        tenant=tenant_of(tenant),
        vector=vector,
        state=RecordState(state),
        created_at=_aware(created_at),
        updated_at=_aware(updated_at),
    )


def _aware(dt: datetime) -> datetime:
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


class InlineConnection:
    """One autocommit connection of the inline engine, kept open and used from the event loop's
    thread only: a pool checkout and check-in per read (with their telemetry) cost about as much
    as the read. Reopened after an error."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._conn: Connection | None = None

    def rows(self, statement: Select[Any], params: dict[str, Any]) -> Sequence[Row[Any]]:
        """Every row at once: no cursor, and so no read snapshot, stays open between reads
        (an open one would hold back WAL checkpoints)."""
        if self._conn is None:
            self._conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            return self._conn.execute(statement, params).all()
        except DBAPIError:
            self.close()
            raise

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


class Reader:
    def __init__(
        self, *, sessions: async_sessionmaker[AsyncSession], inline: Engine | None = None
    ) -> None:
        """``inline``: a synchronous engine on the same database for small reads
        (``store.sql.engines.make_inline_engine``)."""
        self._sessions = sessions
        self._inline = None if inline is None else InlineConnection(inline)

    def close(self) -> None:
        if self._inline is not None:
            self._inline.close()

    async def get(self, collection: str, id: str, *, tenant: str | None) -> StoredRecord | None:
        found = await self.get_many(collection, [id], tenant=tenant)
        return found[0]

    async def get_many(
        self, collection: str, ids: Sequence[str], *, tenant: str | None
    ) -> list[StoredRecord | None]:
        """Records ``ids`` of ``tenant`` (None: the collection is not multi-tenant) in key
        order, ``None`` for a miss; one statement per 5,000 ids."""
        by_id: dict[str, StoredRecord] = {}
        unique = list(dict.fromkeys(ids))
        if self._inline is not None and len(unique) <= INLINE_MAX_IDS:
            for row in self._inline.rows(*_lookup(collection, unique, tenant)):
                record = to_record(row)
                by_id[record.id] = record
            return [by_id.get(i) for i in ids]
        async with self._sessions() as session:
            for start in range(0, len(unique), IN_CHUNK):
                chunk = unique[start : start + IN_CHUNK]
                for row in await session.execute(*_lookup(collection, chunk, tenant)):
                    record = to_record(row)
                    by_id[record.id] = record
        return [by_id.get(i) for i in ids]


# Built once: building the statement and its cache key for every read cost more CPU than
# running it for a search's ten hits. The tenant is always bound: it is part of the key
# (``NO_TENANT`` outside multi-tenant collections), so the lookup is a primary key lookup.
LOOKUP = select(*RECORD_COLUMNS).where(
    and_(
        RECORDS.c.collection == bindparam("collection"),
        RECORDS.c.tenant == bindparam("tenant"),
        RECORDS.c.id.in_(bindparam("ids", expanding=True)),
        RECORDS.c.state != RecordState.DELETING.value,
    )
)


def _lookup(
    collection: str, ids: Sequence[str], tenant: str | None
) -> tuple[Select[Any], dict[str, Any]]:
    return LOOKUP, {"collection": collection, "tenant": tenant_key(tenant), "ids": list(ids)}
