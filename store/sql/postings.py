"""The keyword index: postings of record text, kept in SQL by vectorql itself, so that every
backend cell (SQLite or PostgreSQL, Milvus Lite or a Milvus 2.3 server) has one analyzer
(``store.analyzer``) and the same BM25 scores for the same data. Neither Milvus 2.3 (no BM25)
nor the databases' own full-text search (FTS5 and ``ts_rank`` score differently) would.

- ``vq_keyword_posting``: one row per (collection, tenant, term, record id) with the term's
  frequency in the record's text and the record's length in terms (denormalised, so BM25
  reads only this table).
- ``vq_keyword_stats``: per (collection, tenant), how many records have terms and their total
  length (BM25's N and average length), kept by increments.

Both are written in the SQL transaction that writes or deletes the record (``index_texts``,
``remove``), so the keyword index never disagrees with SQL: a deleted record is never found,
and an upsert's new text replaces the old one's terms at its commit. Statistics are per tenant,
so one tenant's records never change another tenant's scores.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import Index, String, Table, and_, delete, func, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlmodel import Column, Field, SQLModel

from store.analyzer import MAX_TERM, term_counts
from store.sql.tables import NO_TENANT, CollectionRow, RecordRow

# Records per statement: the key IN lists stay well below the bind-parameter limits.
CHUNK = 500
# Records read per statement when indexing the records of an earlier version.
BUILD_PAGE = 2000

Executor = AsyncSession | AsyncConnection
# A record's key within its collection: (its ``tenant`` column, id).
RowKey = tuple[str, str]


class PostingRow(SQLModel, table=True):
    __tablename__ = "vq_keyword_posting"
    # The primary key serves searches (term lookups); this index serves replacing a record's
    # terms and deleting it.
    __table_args__ = (Index("ix_vq_keyword_posting_record", "collection", "tenant", "id"),)

    collection: str = Field(primary_key=True, max_length=63)
    tenant: str = Field(sa_column=Column(String(256), primary_key=True))
    term: str = Field(sa_column=Column(String(MAX_TERM * 4), primary_key=True))
    id: str = Field(sa_column=Column(String(256), primary_key=True))
    tf: int
    length: int


class KeywordStatsRow(SQLModel, table=True):
    __tablename__ = "vq_keyword_stats"

    collection: str = Field(primary_key=True, max_length=63)
    tenant: str = Field(sa_column=Column(String(256), primary_key=True))
    docs: int = 0  # records with at least one term
    terms: int = 0  # their total length


POSTINGS: Table = PostingRow.__table__  # type: ignore[attr-defined]
STATS: Table = KeywordStatsRow.__table__  # type: ignore[attr-defined]
RECORDS: Table = RecordRow.__table__  # type: ignore[attr-defined]


POSTING_COLUMNS = ("collection", "tenant", "term", "id", "tf", "length")


def _insert_postings(conn: AsyncConnection) -> str:
    if conn.dialect.paramstyle == "numeric_dollar":
        marks = "$1, $2, $3, $4, $5, $6"
    else:
        marks = "?, ?, ?, ?, ?, ?"
    return f"INSERT INTO {POSTINGS.name} ({', '.join(POSTING_COLUMNS)}) VALUES ({marks})"


def _insert(conn: Executor) -> Any:
    """The dialect's INSERT (both have ON CONFLICT)."""
    bind = conn.get_bind() if isinstance(conn, AsyncSession) else conn
    return postgresql.insert if bind.dialect.name == "postgresql" else sqlite.insert


async def index_texts(
    conn: Executor,
    collection: str,
    rows: Sequence[tuple[str, str, str | None]],
    *,
    new: Collection[RowKey] = (),
) -> None:
    """Replace the terms of records ``rows`` (tenant column, id, text) with those of their new
    text, and adjust the statistics. ``new``: keys of rows this transaction inserted (they have
    no terms to remove; skipping the lookup is most of a bulk import's cost here). Runs in the
    caller's transaction."""
    for start in range(0, len(rows), CHUNK):
        chunk = rows[start : start + CHUNK]
        delta = await _remove_chunk(
            conn, collection, [(t, i) for t, i, _ in chunk if (t, i) not in new]
        )
        postings: list[tuple[str, str, str, str, int, int]] = []
        for tenant, id_, text in chunk:
            counts = term_counts(text)
            length = sum(counts.values())
            if not length:
                continue
            postings.extend(
                (collection, tenant, term, id_, tf, length) for term, tf in counts.items()
            )
            docs, terms = delta[tenant]
            delta[tenant] = (docs + 1, terms + length)
        if postings:
            postings.sort()  # in key order: the inserts touch neighbouring index pages
            # The driver's own executemany: SQLAlchemy's per-row parameter processing cost
            # more than the insert itself (tens of rows per record).
            raw = await conn.connection() if isinstance(conn, AsyncSession) else conn
            if raw.dialect.driver == "asyncpg":
                # COPY in the caller's transaction: several times executemany's rows per second
                # (docs/measurements.md, import).
                driver = (await raw.get_raw_connection()).driver_connection
                assert driver is not None
                await driver.copy_records_to_table(
                    POSTINGS.name, records=postings, columns=POSTING_COLUMNS
                )
            else:
                await raw.exec_driver_sql(_insert_postings(raw), postings)
        await _add_stats(conn, collection, delta)


async def remove(conn: Executor, collection: str, keys: Sequence[RowKey]) -> None:
    """Remove the terms of records ``keys`` (tenant column, id), in the caller's transaction."""
    for start in range(0, len(keys), CHUNK):
        delta = await _remove_chunk(conn, collection, keys[start : start + CHUNK])
        await _add_stats(conn, collection, delta)


async def drop(conn: Executor, collection: str) -> None:
    """Remove a collection's keyword index."""
    await conn.execute(delete(POSTINGS).where(POSTINGS.c.collection == collection))
    await conn.execute(delete(STATS).where(STATS.c.collection == collection))


async def _remove_chunk(
    conn: Executor, collection: str, keys: Sequence[RowKey]
) -> defaultdict[str, tuple[int, int]]:
    """Delete the postings of ``keys``; returns the change to each tenant's (docs, terms)."""
    delta: defaultdict[str, tuple[int, int]] = defaultdict(lambda: (0, 0))
    by_tenant: defaultdict[str, list[str]] = defaultdict(list)
    for tenant, id_ in keys:
        by_tenant[tenant].append(id_)
    # One tenant at a time, ``id IN (...)``: SQLite does not search an index for a row-value
    # ``(tenant, id) IN (...)`` list, and scanned every posting per chunk.
    for tenant, ids in by_tenant.items():
        where = and_(
            POSTINGS.c.collection == collection,
            POSTINGS.c.tenant == tenant,
            POSTINGS.c.id.in_(ids),
        )
        old = await conn.execute(
            select(func.max(POSTINGS.c.length)).where(where).group_by(POSTINGS.c.id)
        )
        lengths = [int(length) for (length,) in old.all()]
        if lengths:
            delta[tenant] = (-len(lengths), -sum(lengths))
            await conn.execute(delete(POSTINGS).where(where))
    return delta


async def _add_stats(conn: Executor, collection: str, delta: dict[str, tuple[int, int]]) -> None:
    """Add ``delta`` (tenant column -> (docs, terms)) to the statistics, creating rows as needed:
    an increment in SQL, so concurrent writers never lose each other's counts."""
    values = [
        {"collection": collection, "tenant": t, "docs": d, "terms": n}
        for t, (d, n) in delta.items()
        if d or n
    ]
    if not values:
        return
    stmt = _insert(conn)(STATS)
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[STATS.c.collection, STATS.c.tenant],
            set_={
                "docs": STATS.c.docs + stmt.excluded.docs,
                "terms": STATS.c.terms + stmt.excluded.terms,
            },
        ),
        values,
    )


async def build_missing(conn: AsyncConnection) -> list[str]:
    """Index the text of collections that have no keyword statistics yet: their records were
    written before the keyword index existed (a database of an earlier version). Every
    collection checked gets a statistics row, so the next start-up skips it. Returns the names
    of the collections indexed. Runs in the caller's transaction (the migrations' lock)."""
    collections: Table = CollectionRow.__table__  # type: ignore[attr-defined]
    names = (
        await conn.execute(
            select(collections.c.name).where(
                ~select(STATS.c.collection).where(STATS.c.collection == collections.c.name).exists()
            )
        )
    ).scalars()
    built: list[str] = []
    for name in list(names):
        after: RowKey = ("", "")
        while True:
            page = (
                await conn.execute(
                    select(RECORDS.c.tenant, RECORDS.c.id, RECORDS.c.text)
                    .where(
                        RECORDS.c.collection == name,
                        RECORDS.c.text.is_not(None),
                        tuple_(RECORDS.c.tenant, RECORDS.c.id) > tuple_(*after),
                    )
                    .order_by(RECORDS.c.tenant, RECORDS.c.id)
                    .limit(BUILD_PAGE)
                )
            ).all()
            if not page:
                break
            keys = [(str(t), str(i), x) for t, i, x in page]
            # No statistics: the collection has no postings either (both go together), so
            # there are no old terms to look up.
            await index_texts(conn, name, keys, new={(t, i) for t, i, _ in keys})
            after = (str(page[-1][0]), str(page[-1][1]))
            if name not in built:
                built.append(name)
        await conn.execute(
            _insert(conn)(STATS)
            .values(collection=name, tenant=NO_TENANT, docs=0, terms=0)
            .on_conflict_do_nothing()
        )
    return built
