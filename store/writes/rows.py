"""The SQL of the write protocol's steps 2 and 4 (``store.writes.protocol``), per dialect: rows
upserted as ``pending`` with a new revision, and rows marked ``indexed`` where their revision is
still the one pushed to Milvus.

PostgreSQL gets one statement per chunk over arrays (``unnest``), which asyncpg sends in binary;
SQLite gets one cached statement run with a parameter set per row (SQLAlchemy's multi-row
``INSERT ... RETURNING`` for the upsert, an ``executemany`` by primary key for the mark). Per
row, the arrays cost PostgreSQL a fraction of the parameter sets, and the mark by primary key
costs SQLite about half of a ``(tenant, id, revision) IN (...)`` list (docs/measurements.md,
"import").

The tenant is part of the key, so a write only ever replaces a record of its own tenant.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Table, bindparam, text, update
from sqlalchemy.dialects import sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from store.codec import dumps_json
from store.records import RecordData, RecordState
from store.sql.tables import RecordRow, tenant_key

# Rows per statement: bounds the statement's size (a 384-d vector is 1.5 KB).
CHUNK = 1000

# What ``upsert_pending`` wrote: (tenant column, id, revision) per row.
Revisions = list[tuple[str, str, int]]

_RECORDS: Table = RecordRow.__table__  # type: ignore[attr-defined]
_PENDING = RecordState.PENDING.value
_INDEXED = RecordState.INDEXED.value

_PG_UPSERT = text(
    f"""
    INSERT INTO {_RECORDS.name}
      (collection, tenant, id, vector, metadata, text, state, revision, created_at, updated_at)
    SELECT :collection, u.tenant, u.id, u.vector, CAST(u.metadata AS jsonb), u.text,
           '{_PENDING}', 1, :now, :now
    FROM unnest(CAST(:tenants AS text[]), CAST(:ids AS text[]), CAST(:vectors AS bytea[]),
                CAST(:metadata AS text[]), CAST(:texts AS text[]))
      AS u(tenant, id, vector, metadata, text)
    ON CONFLICT (collection, tenant, id) DO UPDATE SET
      vector = excluded.vector, metadata = excluded.metadata, text = excluded.text,
      state = '{_PENDING}', revision = {_RECORDS.name}.revision + 1, updated_at = :now
    RETURNING tenant, id, revision
    """
)

_PG_MARK = text(
    f"""
    UPDATE {_RECORDS.name} AS r SET state = '{_INDEXED}'
    FROM unnest(CAST(:tenants AS text[]), CAST(:ids AS text[]), CAST(:revisions AS integer[]))
      AS u(tenant, id, revision)
    WHERE r.collection = :collection AND r.tenant = u.tenant AND r.id = u.id
      AND r.revision = u.revision AND r.state = '{_PENDING}'
    """
)

_MARK_BY_KEY = (
    update(_RECORDS)
    .where(
        _RECORDS.c.collection == bindparam("c"),
        _RECORDS.c.tenant == bindparam("t"),
        _RECORDS.c.id == bindparam("i"),
        _RECORDS.c.revision == bindparam("r"),
        _RECORDS.c.state == _PENDING,
    )
    .values(state=_INDEXED)
)


def _postgres(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"


async def upsert_pending(
    session: AsyncSession, *, collection: str, records: Sequence[RecordData], now: datetime
) -> Revisions:
    """Upsert ``records`` as ``pending`` (a new row at revision 1, an existing one at its
    revision + 1) in ``session``'s transaction; their (tenant column, id, revision)."""
    revisions: Revisions = []
    postgres = _postgres(session)
    stmt: Any = None if postgres else _sqlite_upsert(now)
    for start in range(0, len(records), CHUNK):
        chunk = records[start : start + CHUNK]
        if postgres:
            result = await session.execute(
                _PG_UPSERT,
                {
                    "collection": collection,
                    "now": now,
                    "tenants": [tenant_key(r.tenant) for r in chunk],
                    "ids": [r.id for r in chunk],
                    "vectors": [r.vector for r in chunk],
                    "metadata": [dumps_json(r.metadata).decode() for r in chunk],
                    "texts": [r.text for r in chunk],
                },
            )
        else:
            result = await session.execute(
                stmt,
                [
                    {
                        "collection": collection,
                        "id": r.id,
                        "tenant": tenant_key(r.tenant),
                        "vector": r.vector,
                        "metadata": r.metadata,
                        "text": r.text,
                        "state": _PENDING,
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
    session: AsyncSession, *, collection: str, revisions: Sequence[tuple[str, str, int]]
) -> None:
    """Mark the rows ``revisions`` (tenant column, id, revision) ``indexed`` where they are
    still ``pending`` at that revision, in ``session``'s transaction."""
    postgres = _postgres(session)
    for start in range(0, len(revisions), CHUNK):
        chunk = revisions[start : start + CHUNK]
        if postgres:
            await session.execute(
                _PG_MARK,
                {
                    "collection": collection,
                    "tenants": [t for t, _, _ in chunk],
                    "ids": [i for _, i, _ in chunk],
                    "revisions": [rev for _, _, rev in chunk],
                },
            )
        else:
            await session.execute(
                _MARK_BY_KEY, [{"c": collection, "t": t, "i": i, "r": rev} for t, i, rev in chunk]
            )


def _sqlite_upsert(now: datetime) -> Any:
    """``INSERT ... ON CONFLICT (collection, tenant, id) DO UPDATE`` of rows as ``pending`` with
    a new revision, returning (tenant, id, revision); one cached statement run with many
    parameter sets (SQLAlchemy batches them as multi-row ``INSERT ... RETURNING``): compiling a
    fresh VALUES list of thousands of bind parameters per batch cost more than the write."""
    stmt = sqlite.insert(_RECORDS)
    return stmt.on_conflict_do_update(
        index_elements=[_RECORDS.c.collection, _RECORDS.c.tenant, _RECORDS.c.id],
        set_={
            "vector": stmt.excluded.vector,
            "metadata": stmt.excluded["metadata"],
            "text": stmt.excluded.text,
            "state": _PENDING,
            "revision": _RECORDS.c.revision + 1,
            "updated_at": now,
        },
    ).returning(_RECORDS.c.tenant, _RECORDS.c.id, _RECORDS.c.revision)
