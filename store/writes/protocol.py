"""Steps 2-4 of the write protocol of design.md section 3 (step 1 is ``store.writes.incoming``).

2. One SQL transaction upserts the rows as ``pending`` with a new revision.
3. Milvus upserts the batch (upsert, never insert: a retry never duplicates).
4. Rows are marked ``indexed`` where their revision is still the one written.
If step 3 fails, rows stay ``pending`` and ``Unavailable`` says so; the reconciler finishes the job.
Deletes go SQL first (mark), Milvus second, then the row is removed.

Rows are keyed by (collection, tenant, id) (``store.sql.tables.RecordRow``): a write or delete in
one tenant never reaches another tenant's record of the same id, so neither can tell whether
one exists.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Table, and_, delete, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from store.errors import InvalidInput, Unavailable
from store.index import VectorIndex, milvus_key
from store.instruments import Instruments
from store.records import CollectionInfo, RecordData, RecordError, RecordState, UpsertOutcome
from store.sql.tables import RecordRow, tenant_key, utcnow
from store.writes.flushing import Flusher
from store.writes.incoming import IncomingRecord, validate_records

log = logging.getLogger(__name__)

SQL_CHUNK = 500
MILVUS_CHUNK = 1000

# A row's key within its collection: (its ``tenant`` column, id).
RowKey = tuple[str, str]


class Writer:
    """The write protocol over one SQL database and one Milvus."""

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        vectors: VectorIndex,
        flusher: Flusher,
        instruments: Instruments | None = None,
    ) -> None:
        self._sessions = sessions
        self._vectors = vectors
        self._flusher = flusher
        self._instruments = instruments or Instruments()

    async def upsert(
        self,
        info: CollectionInfo,
        incoming: Sequence[IncomingRecord],
        *,
        atomic: bool = True,
    ) -> UpsertOutcome:
        valid, problems = validate_records(info, incoming)
        if problems and atomic:
            raise InvalidInput.of(problems, what="records")
        errors = tuple(
            RecordError(index=p.index or 0, id=p.id, code="BAD_USER_INPUT", message=p.message)
            for p in problems
        )
        records = [r for _, r in valid]
        await self.write(info, records)
        return UpsertOutcome(ids=tuple(r.id for r in records), errors=errors)

    async def write(self, info: CollectionInfo, records: Sequence[RecordData]) -> None:
        """Steps 2-4 of the protocol for records that are already valid."""
        if not records:
            return
        revisions = await self._store_pending(info, records)
        self._instruments.ingested(info.name, len(records))  # stored: searchable soon or now
        try:
            for start in range(0, len(records), MILVUS_CHUNK):
                await self._vectors.upsert(info, records[start : start + MILVUS_CHUNK])
        except Unavailable as e:
            raise Unavailable(
                f"{len(records)} records are stored but not yet searchable: {e.message}. "
                "They will be indexed when Milvus is back; retrying the same request is safe.",
                extensions={"stored": len(records), "indexed": 0},
            ) from e
        await self.mark_indexed(info.name, revisions)
        try:
            await self._flusher.wrote(info, len(records))
        except Unavailable as e:
            # The records are written and searchable (unflushed rows are searched too, only
            # slower): a failed flush must not fail the write. The next write tries again.
            log.warning("flush of %s failed after a successful write: %s", info.milvus_name, e)

    async def _store_pending(
        self, info: CollectionInfo, records: Sequence[RecordData]
    ) -> list[tuple[str, str, int]]:
        """(tenant column, id, revision) of every row written."""
        now = utcnow()
        revisions: list[tuple[str, str, int]] = []
        async with self._sessions() as session, session.begin():
            stmt = _upsert_pending(session, now=now)
            for start in range(0, len(records), SQL_CHUNK):
                chunk = records[start : start + SQL_CHUNK]
                # One cached statement run with many parameter sets (SQLAlchemy batches them as
                # multi-row INSERT ... RETURNING): compiling a fresh VALUES list of thousands of
                # bind parameters per batch cost more than the write itself.
                result = await session.execute(
                    stmt,
                    [
                        {
                            "collection": info.name,
                            "id": r.id,
                            "tenant": tenant_key(r.tenant),
                            "vector": r.vector,
                            "metadata": r.metadata,
                            "text": r.text,
                            "state": RecordState.PENDING.value,
                            "revision": 1,
                            "created_at": now,
                            "updated_at": now,
                        }
                        for r in chunk
                    ],
                )
                revisions.extend((str(t), str(i), int(rev)) for t, i, rev in result.all())
        return revisions

    async def mark_indexed(
        self, collection: str, revisions: Sequence[tuple[str, str, int]]
    ) -> None:
        """Mark rows indexed only where their revision is still the one pushed to Milvus;
        ``revisions``: (tenant column, id, revision)."""
        async with self._sessions() as session, session.begin():
            for start in range(0, len(revisions), SQL_CHUNK):
                chunk = revisions[start : start + SQL_CHUNK]
                await session.execute(
                    update(RecordRow)
                    .where(
                        and_(
                            col(RecordRow.collection) == collection,
                            tuple_(
                                col(RecordRow.tenant), col(RecordRow.id), col(RecordRow.revision)
                            ).in_(chunk),
                            col(RecordRow.state) == RecordState.PENDING.value,
                        )
                    )
                    .values(state=RecordState.INDEXED.value)
                )

    async def flush(self, info: CollectionInfo) -> None:
        """Seal Milvus's in-memory segment so searches take the indexed path."""
        await self._flusher.flush(info)

    def unflushed(self, info: CollectionInfo) -> int:
        """Rows this process wrote to ``info`` since its last flush."""
        return self._flusher.unflushed(info)

    async def close(self) -> None:
        """Cancel pending idle flushes (the app is stopping)."""
        await self._flusher.close()

    async def delete(self, info: CollectionInfo, ids: Sequence[str], tenant: str | None) -> int:
        """SQL marks, Milvus deletes, SQL removes: the records ``ids`` of ``tenant`` (None: the
        collection is not multi-tenant). Returns how many of them existed."""
        marked = await self._mark_deleting(info.name, ids, tenant)
        if not marked:
            return 0
        try:
            await self._vectors.delete_ids(
                info.milvus_name, [milvus_key(info, tenant, i) for _, i in marked]
            )
        except Unavailable as e:
            raise Unavailable(
                f"{len(marked)} records are marked deleted and hidden from reads, but Milvus did "
                f"not confirm: {e.message}. The reconciler completes the delete.",
                extensions={"deleted": len(marked)},
            ) from e
        await self.remove_deleted(info.name, marked)
        return len(marked)

    async def _mark_deleting(
        self, collection: str, ids: Sequence[str], tenant: str | None
    ) -> list[RowKey]:
        marked: list[RowKey] = []
        unique = list(dict.fromkeys(ids))
        async with self._sessions() as session, session.begin():
            for start in range(0, len(unique), SQL_CHUNK):
                chunk = unique[start : start + SQL_CHUNK]
                result = await session.execute(
                    update(RecordRow)
                    .where(
                        and_(
                            col(RecordRow.collection) == collection,
                            col(RecordRow.tenant) == tenant_key(tenant),
                            col(RecordRow.id).in_(chunk),
                            col(RecordRow.state) != RecordState.DELETING.value,
                        )
                    )
                    .values(state=RecordState.DELETING.value, updated_at=utcnow())
                    .returning(col(RecordRow.tenant), col(RecordRow.id))
                )
                marked.extend((str(t), str(i)) for t, i in result.all())
        return marked

    async def remove_deleted(self, collection: str, keys: Sequence[RowKey]) -> None:
        """Remove the rows ``keys`` (tenant column, id) that are marked deleting."""
        async with self._sessions() as session, session.begin():
            for start in range(0, len(keys), SQL_CHUNK):
                await session.execute(
                    delete(RecordRow).where(
                        and_(
                            col(RecordRow.collection) == collection,
                            tuple_(col(RecordRow.tenant), col(RecordRow.id)).in_(
                                keys[start : start + SQL_CHUNK]
                            ),
                            col(RecordRow.state) == RecordState.DELETING.value,
                        )
                    )
                )


def _upsert_pending(session: AsyncSession, *, now: datetime) -> Any:
    """``INSERT ... ON CONFLICT (collection, tenant, id) DO UPDATE`` of rows as ``pending`` with
    a new revision, returning (tenant, id, revision). The tenant is part of the key, so a write
    only ever replaces a record of its own tenant."""
    table: Table = RecordRow.__table__  # type: ignore[attr-defined]
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    stmt = insert(table)
    return stmt.on_conflict_do_update(
        index_elements=[table.c.collection, table.c.tenant, table.c.id],
        set_={
            "vector": stmt.excluded.vector,
            "metadata": stmt.excluded["metadata"],
            "text": stmt.excluded.text,
            "state": RecordState.PENDING.value,
            "revision": table.c.revision + 1,
            "updated_at": now,
        },
    ).returning(table.c.tenant, table.c.id, table.c.revision)
