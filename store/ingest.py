"""Ingestion: validation of a whole batch, then the write protocol of design.md section 3.

1. Validate every record (nothing is written while any record of an atomic batch is invalid).
2. One SQL transaction upserts the rows as ``pending`` with a new revision.
3. Milvus upserts the batch (upsert, never insert: a retry never duplicates).
4. Rows are marked ``indexed`` where their revision is still the one written.
If step 3 fails, rows stay ``pending`` and ``Unavailable`` says so; the reconciler finishes the job.

Rows are keyed by (collection, tenant, id) (``store.tables.RecordRow``): a write or delete in
one tenant never reaches another tenant's record of the same id, so neither can tell whether
one exists.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import Table, and_, delete, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from store.errors import InvalidInput, Problem, Unavailable, VectorqlError
from store.fields import FieldValueError, _check_json, canonical
from store.instruments import Instruments
from store.records import CollectionInfo, RecordData, RecordError, RecordState, UpsertOutcome
from store.tables import RecordRow, tenant_key, utcnow
from store.text import identifier_problem, shown, text_problem
from store.vectors import ID_MAX_LENGTH, TENANT_MAX_LENGTH, VectorIndex, milvus_key

log = logging.getLogger(__name__)

SQL_CHUNK = 500
MILVUS_CHUNK = 1000
TEXT_MAX_BYTES = 1_000_000

# A row's key within its collection: (its ``tenant`` column, id).
RowKey = tuple[str, str]


@dataclass(frozen=True, slots=True)
class IncomingRecord:
    """A record as a client sent it, before validation. ``vector_error`` says why the vector
    could not be parsed (it is then ``None``)."""

    vector: np.ndarray | None
    id: str | None = None
    metadata: Any = None
    text: str | None = None
    tenant: str | None = None
    vector_error: str | None = None


def check_identifier(value: Any, *, what: str, max_length: int) -> str | None:
    """Why ``value`` is not a usable id or tenant, or None when it is (``store.text``'s rule
    for identifiers, non-empty, at most ``max_length`` characters)."""
    if not isinstance(value, str):
        return f"{what} must be a string"
    if not value:
        return f"{what} must not be empty"
    if len(value) > max_length:
        return f"{what} longer than {max_length} characters"
    return identifier_problem(value, what=what)


def validate_records(
    info: CollectionInfo, incoming: Sequence[IncomingRecord]
) -> tuple[list[tuple[int, RecordData]], list[Problem]]:
    """Check every record; returns the valid ones (with their input index) and every problem."""
    valid: list[tuple[int, RecordData]] = []
    problems: list[Problem] = []
    seen: dict[tuple[str | None, str], int] = {}  # (tenant, id): each tenant owns its ids
    for index, rec in enumerate(incoming):
        reasons: list[str] = []
        record_id = rec.id
        if record_id is None:
            record_id = str(uuid.uuid4())
        else:
            reason = check_identifier(record_id, what="id", max_length=ID_MAX_LENGTH)
            if reason:
                reasons.append(reason)
            elif (rec.tenant, record_id) in seen:
                reasons.append(f"duplicate id (also record {seen[rec.tenant, record_id]})")
        if rec.vector is None:
            reasons.append(rec.vector_error or "vector is missing")
        elif rec.vector.shape[0] != info.dimension:
            reasons.append(f"vector dimension is {rec.vector.shape[0]}, expected {info.dimension}")
        metadata, meta_reasons = _check_metadata(info, rec.metadata)
        reasons.extend(meta_reasons)
        if info.multi_tenant:
            if rec.tenant is None:
                reasons.append("tenant is required: the collection is multi-tenant")
            else:
                reason = check_identifier(rec.tenant, what="tenant", max_length=TENANT_MAX_LENGTH)
                if reason:
                    reasons.append(reason)
        elif rec.tenant is not None:
            reasons.append("tenant given, but the collection is not multi-tenant")
        if rec.text is not None:
            if not isinstance(rec.text, str):
                reasons.append("text must be a string")
            elif reason := text_problem(rec.text):
                reasons.append(reason)
            elif len(rec.text.encode()) > TEXT_MAX_BYTES:
                reasons.append(f"text longer than {TEXT_MAX_BYTES} bytes")
        # A refused id may hold a lone surrogate, which no response can encode.
        shown_id = shown(record_id) if rec.id is not None else None
        if reasons:
            problems.extend(Problem(r, index=index, id=shown_id) for r in reasons)
            continue
        seen[rec.tenant, record_id] = index
        assert rec.vector is not None
        valid.append(
            (
                index,
                RecordData(
                    id=record_id,
                    vector=rec.vector.astype("<f4", copy=False).tobytes(),
                    metadata=metadata,
                    text=rec.text,
                    tenant=rec.tenant,
                ),
            )
        )
    return valid, problems


def _check_metadata(info: CollectionInfo, raw: Any) -> tuple[dict[str, Any], list[str]]:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        return {}, ["metadata must be a JSON object"]
    reasons: list[str] = []
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if reason := text_problem(key, what=f"metadata key {shown(key)!r}"):
            reasons.append(reason)
            continue
        spec = info.field(key)
        if spec is None:
            # Undeclared keys are kept in SQL only (returned, not filterable).
            try:
                _check_json(value)
            except FieldValueError as e:
                reasons.append(f"metadata.{key}: {e}")
                continue
            out[key] = value
            continue
        if value is None:
            if spec.required:
                reasons.append(f"metadata.{key} is required")
            continue
        try:
            out[key] = canonical(spec.type, value, max_length=spec.max_length)
        except FieldValueError as e:
            reasons.append(f"metadata.{key} ({spec.type.value}): {e}")
    for spec in info.fields:
        if spec.required and spec.name not in raw:
            reasons.append(f"metadata.{spec.name} is required")
    return out, reasons


class Writer:
    """The write protocol over one SQL database and one Milvus."""

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        vectors: VectorIndex,
        flush_threshold: int,
        flush_idle: float = 0.0,
        flush_idle_rows: int = 0,
        instruments: Instruments | None = None,
    ) -> None:
        """``flush_threshold``: unflushed rows of a collection that make a write flush it (0: this
        writer never flushes). ``flush_idle`` (seconds, 0 = off) and ``flush_idle_rows``: a
        collection with at least that many unflushed rows is flushed once no write has come for
        that long, so the rows a burst of writes left below the threshold do not keep its
        searches on Milvus's slow path; a trickle of small writes never arms it."""
        self._sessions = sessions
        self._vectors = vectors
        self._flush_threshold = flush_threshold
        self._flush_idle = flush_idle
        self._flush_idle_rows = max(1, flush_idle_rows)
        self._instruments = instruments or Instruments()
        # Rows written since the last flush, per Milvus collection (a heuristic of this process).
        self._unflushed: dict[str, int] = {}
        self._idle_timers: dict[str, asyncio.TimerHandle] = {}
        self._idle_flushes: set[asyncio.Task[None]] = set()

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
            await self._count_and_maybe_flush(info, len(records))
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

    async def _count_and_maybe_flush(self, info: CollectionInfo, n: int) -> None:
        if self._flush_threshold <= 0:
            return
        total = self._unflushed.get(info.milvus_name, 0) + n
        if total >= self._flush_threshold:
            await self.flush(info)
        else:
            self._unflushed[info.milvus_name] = total
            if self._flush_idle > 0 and total >= self._flush_idle_rows:
                self._arm_idle_flush(info)

    async def flush(self, info: CollectionInfo) -> None:
        """Seal Milvus's in-memory segment so searches take the indexed path."""
        self._disarm_idle_flush(info.milvus_name)
        await self._vectors.flush(info.milvus_name)
        self._unflushed[info.milvus_name] = 0

    def unflushed(self, info: CollectionInfo) -> int:
        """Rows this process wrote to ``info`` since its last flush."""
        return self._unflushed.get(info.milvus_name, 0)

    def _arm_idle_flush(self, info: CollectionInfo) -> None:
        """(Re)start the idle countdown of ``info``: every write pushes its flush back."""
        self._disarm_idle_flush(info.milvus_name)
        loop = asyncio.get_running_loop()
        self._idle_timers[info.milvus_name] = loop.call_later(
            self._flush_idle, self._start_idle_flush, info
        )

    def _disarm_idle_flush(self, mname: str) -> None:
        timer = self._idle_timers.pop(mname, None)
        if timer is not None:
            timer.cancel()

    def _start_idle_flush(self, info: CollectionInfo) -> None:
        self._idle_timers.pop(info.milvus_name, None)
        task = asyncio.get_running_loop().create_task(
            self._idle_flush(info), name=f"idle flush of {info.milvus_name}"
        )
        self._idle_flushes.add(task)
        task.add_done_callback(self._idle_flushes.discard)

    async def _idle_flush(self, info: CollectionInfo) -> None:
        if self._unflushed.get(info.milvus_name, 0) < self._flush_idle_rows:
            return  # flushed since the countdown started
        try:
            await self.flush(info)
        except VectorqlError as e:
            # Milvus down, or the collection dropped meanwhile: the rows stay searchable (slower),
            # and the next write past the threshold flushes.
            log.warning("idle flush of %s failed: %s", info.milvus_name, e)

    async def close(self) -> None:
        """Cancel pending idle flushes (the app is stopping)."""
        for timer in self._idle_timers.values():
            timer.cancel()
        self._idle_timers.clear()
        tasks = list(self._idle_flushes)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

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


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))
