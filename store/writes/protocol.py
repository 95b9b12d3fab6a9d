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
from collections.abc import Iterator, Sequence

from sqlalchemy import and_, delete, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from store.errors import InvalidInput, Unavailable
from store.index import VectorIndex, milvus_key
from store.instruments import Instruments
from store.records import CollectionInfo, RecordData, RecordError, RecordState, UpsertOutcome
from store.sql import postings
from store.sql.tables import RecordRow, tenant_key, utcnow
from store.writes import rows
from store.writes.flushing import Flusher
from store.writes.incoming import IncomingRecord, validate_records
from store.writes.rows import Revisions

log = logging.getLogger(__name__)

SQL_CHUNK = 500
# Rows per Milvus upsert: at most MILVUS_CHUNK, and about MILVUS_CHUNK_BYTES of vectors, far below
# gRPC's message limit whatever the dimension. Fewer, larger calls cost Milvus less per row.
MILVUS_CHUNK = 4096
MILVUS_CHUNK_BYTES = 8 << 20

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
        revisions = await self.store_pending(info, records)
        await self.index(info, records, revisions)
        try:
            await self._flusher.wrote(info, len(records))
        except Unavailable as e:
            # The records are written and searchable (unflushed rows are searched too, only
            # slower): a failed flush must not fail the write. The next write tries again.
            log.warning("flush of %s failed after a successful write: %s", info.milvus_name, e)

    async def store_pending(self, info: CollectionInfo, records: Sequence[RecordData]) -> Revisions:
        """Step 2: upsert ``records`` into SQL as ``pending``, in one transaction; returns the
        (tenant column, id, revision) of every row written, for ``index``."""
        if not records:
            return []
        async with self._sessions() as session, session.begin():
            revisions = await rows.upsert_pending(
                session, collection=info.name, records=records, now=utcnow()
            )
            # The keyword index changes with the text, in the same transaction. Revision 1: a
            # row this transaction inserted.
            await postings.index_texts(
                session,
                info.name,
                [(tenant_key(r.tenant), r.id, r.text) for r in records],
                new={(t, i) for t, i, revision in revisions if revision == 1},
            )
        self._instruments.ingested(info.name, len(records))  # stored: searchable soon or now
        return revisions

    async def index(
        self, info: CollectionInfo, records: Sequence[RecordData], revisions: Revisions
    ) -> None:
        """Steps 3-4 for rows ``store_pending`` wrote: ``push`` them to Milvus, then mark them
        ``indexed`` where their revision is still the one pushed. No flush (``write`` leaves
        that to the flush policy; a bulk import flushes once at its end)."""
        await self.push(info, records)
        await self.mark_indexed(info.name, revisions)

    async def push(self, info: CollectionInfo, records: Sequence[RecordData]) -> None:
        """Step 3: upsert ``records`` (stored ``pending``) into Milvus; ``Unavailable`` says
        they are stored and will be indexed."""
        try:
            for chunk in _milvus_chunks(info, records):
                await self._vectors.upsert(info, chunk)
        except Unavailable as e:
            raise Unavailable(
                f"{len(records)} records are stored but not yet searchable: {e.message}. "
                "They will be indexed when Milvus is back; retrying the same request is safe.",
                extensions={"stored": len(records), "indexed": 0},
            ) from e

    async def mark_indexed(
        self, collection: str, revisions: Sequence[tuple[str, str, int]]
    ) -> None:
        """Mark rows indexed only where their revision is still the one pushed to Milvus;
        ``revisions``: (tenant column, id, revision)."""
        if not revisions:
            return
        async with self._sessions() as session, session.begin():
            await rows.mark_indexed(session, collection=collection, revisions=revisions)

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
                found = [(str(t), str(i)) for t, i in result.all()]
                # Out of the keyword index at once: nothing marked deleted is found by keyword.
                await postings.remove(session, collection, found)
                marked.extend(found)
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


def _milvus_chunks(
    info: CollectionInfo, records: Sequence[RecordData]
) -> Iterator[Sequence[RecordData]]:
    """``records`` in slices of at most ``MILVUS_CHUNK`` rows and about ``MILVUS_CHUNK_BYTES``."""
    size = max(1, min(MILVUS_CHUNK, MILVUS_CHUNK_BYTES // (4 * info.dimension)))
    for start in range(0, len(records), size):
        yield records[start : start + size]
