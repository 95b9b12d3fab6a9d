"""Keyword and hybrid search benchmark (issue 22): ``python -m tests.bench.hybrid``
(``make bench-hybrid``).

The debian-packages dataset (63,436 records, minus 200 held out) is written through the store's
write path (``Writer.upsert``, batches of 1000) twice, into fresh stores (Milvus Lite in process,
a SQLite file, or ``--database`` PostgreSQL): once as the product writes (the keyword index in
the record's transaction), once with the keyword index's write turned off, to measure what it
costs ingest. The second store then builds its keyword index the way a database of an earlier
version does at start-up (``store.sql.postings.build_missing``): the build time; the index's size
is its tables' pages (SQLite ``dbstat``, PostgreSQL ``pg_total_relation_size``).

On PostgreSQL the first store's tables are then analyzed as ``vectorql serve`` does within
``VECTORQL_STATISTICS_INTERVAL`` of a write (``store.sql.statistics``). Then, serially on the
first store through the search use case (``resolvers.search.search``, a
fresh ``Loaders`` per query, topK 10): vector search (the held-out vectors), keyword search (200
package names of the collection), keyword search on common terms (``library``, ``python``,
``development files``...), and hybrid search (a name with its record's vector, RRF, alpha 0.5):
p50 and p95 of the use case's time and of the keyword side.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import text

from resolvers.access import Principal
from resolvers.hybrid import HybridQuery
from resolvers.limits import Limits
from resolvers.search import QueryVector, SearchOutcome, SearchRequest
from resolvers.search import search as store_search
from store import CollectionInfo, Store, StoreConfig
from store.loaders import Loaders
from store.records import CollectionSpec, IndexSpec, IndexType, Metric
from store.sql import postings
from tests.bench.search import BATCH, COLLECTION, DEFAULT_DATA, FIELDS, Dataset, load_dataset

COMMON = ["library", "python", "development files", "documentation", "library for python"]


async def open_store(directory: Path, database: str | None) -> Store:
    url = database or f"sqlite+aiosqlite:///{directory}/vectorql.db"
    # A generous Milvus timeout: the machine running the benchmark may be busy.
    config = StoreConfig(
        milvus_uri=str(directory / "milvus.db"), database_url=url, milvus_timeout=300
    )
    return await Store.open(config)


async def ingest(store: Store, ds: Dataset) -> tuple[CollectionInfo, float]:
    """Write every base record; returns the collection and records per second."""
    info = await store.collections.create(
        CollectionSpec(
            name=COLLECTION,
            dimension=ds.base.shape[1],
            metric=Metric.COSINE,
            fields=FIELDS,
            index=IndexSpec(IndexType.HNSW, {}),
        )
    )
    start = time.perf_counter()
    for batch in ds.batches(BATCH):
        outcome = await store.writer.upsert(info, batch)
        if outcome.errors:
            raise RuntimeError(f"load errors: {outcome.errors[:3]}")
    rate = len(ds.records) / (time.perf_counter() - start)
    await store.writer.flush(info)
    return info, rate


async def index_size(store: Store) -> tuple[int, int]:
    """(postings rows, bytes of the keyword tables and their indexes)."""
    async with store.engine.connect() as conn:
        rows = (await conn.execute(text("SELECT count(*) FROM vq_keyword_posting"))).scalar()
        if store.engine.dialect.name == "postgresql":
            size = (
                await conn.execute(
                    text(
                        "SELECT pg_total_relation_size('vq_keyword_posting') "
                        "+ pg_total_relation_size('vq_keyword_stats')"
                    )
                )
            ).scalar()
        else:
            size = (
                await conn.execute(
                    text(
                        "SELECT sum(pgsize) FROM dbstat WHERE name LIKE 'vq_keyword%' "
                        "OR name LIKE 'sqlite_autoindex_vq_keyword%' "
                        "OR name = 'ix_vq_keyword_posting_record'"
                    )
                )
            ).scalar()
    return int(rows or 0), int(size or 0)


async def without_keyword_index(store: Store, ds: Dataset) -> tuple[float, float]:
    """Ingest with the keyword index's write turned off, then build it as a migration does:
    (records per second, build seconds)."""
    real = postings.index_texts

    async def skip(*args: Any, **kwargs: Any) -> None:
        return None

    postings.index_texts = skip  # type: ignore[assignment]
    try:
        _, rate = await ingest(store, ds)
    finally:
        postings.index_texts = real  # type: ignore[assignment]
    start = time.perf_counter()
    async with store.engine.begin() as conn:
        await conn.execute(text("DELETE FROM vq_keyword_stats"))
        await postings.build_missing(conn)
    return rate, time.perf_counter() - start


async def timed(
    label: str, run: Callable[[int], Awaitable[SearchOutcome]], n: int
) -> dict[str, Any]:
    for i in range(min(n, 10)):  # warm-up
        await run(i)
    totals, keyword = [], []
    for i in range(n):
        start = time.perf_counter()
        outcome = await run(i)
        totals.append((time.perf_counter() - start) * 1000)
        if outcome.explain.keyword is not None:
            keyword.append(outcome.explain.keyword.ms)
    row = {
        "label": label,
        "n": n,
        "p50": statistics.median(totals),
        "p95": float(np.percentile(totals, 95)),
        "keyword_p50": statistics.median(keyword) if keyword else None,
    }
    print(
        f"{label:28s} p50 {row['p50']:7.2f} ms  p95 {row['p95']:7.2f} ms"
        + (f"  keyword side p50 {row['keyword_p50']:6.2f} ms" if keyword else "")
    )
    return row


async def latencies(store: Store, ds: Dataset, *, queries: int, seed: int) -> None:
    limits, principal = Limits(), Principal.anonymous()
    rng = np.random.default_rng(seed)
    picked = rng.choice(len(ds.records), size=queries, replace=False)
    names = [ds.records[int(i)]["id"] for i in picked]

    async def run(request: SearchRequest) -> SearchOutcome:
        [outcome] = await store_search(
            store, Loaders(store), request, limits=limits, principal=principal
        )
        return outcome

    def vector(i: int) -> SearchRequest:
        q = ds.queries[i % len(ds.queries)]
        return SearchRequest(collection=COLLECTION, vectors=[QueryVector(q)])

    def keyword(i: int) -> SearchRequest:
        return SearchRequest(collection=COLLECTION, keywords=[names[i]])

    def common(i: int) -> SearchRequest:
        return SearchRequest(collection=COLLECTION, keywords=[COMMON[i % len(COMMON)]])

    def hybrid(i: int) -> SearchRequest:
        q = HybridQuery(query=names[i], vector=ds.base[int(picked[i])])
        return SearchRequest(collection=COLLECTION, hybrid=[q])

    for label, make in [
        ("vector (topK 10)", vector),
        ("keyword: package names", keyword),
        ("keyword: common terms", common),
        ("hybrid (RRF, alpha 0.5)", hybrid),
    ]:
        await timed(label, lambda i, make=make: run(make(i)), queries)  # type: ignore[misc]


async def main_async(args: argparse.Namespace) -> None:
    ds = load_dataset(args.data, limit=args.limit, queries=200, seed=args.seed)
    print(f"{len(ds.records)} records, {len(ds.queries)} held-out queries")
    with tempfile.TemporaryDirectory(prefix="vq-bench-hybrid-") as tmp:
        first, second = Path(tmp) / "with", Path(tmp) / "without"
        first.mkdir()
        second.mkdir()
        store = await open_store(first, args.database)
        try:
            _, rate_with = await ingest(store, ds)
            # What serve does within VECTORQL_STATISTICS_INTERVAL (PostgreSQL; SQLite: nothing).
            analyzed = await store.refresh_statistics()
            if analyzed:
                print(f"analyzed for the planner: {', '.join(analyzed)}")
            rows, size = await index_size(store)
            print(f"ingest with the keyword index:    {rate_with:8.0f} records/s")
            print(f"keyword index: {rows} postings, {size / 2**20:.1f} MiB")
            await latencies(store, ds, queries=args.queries, seed=args.seed)
            if args.database:
                await store.collections.drop(COLLECTION)
        finally:
            await store.close()
        store = await open_store(second, args.database)
        try:
            rate_without, build = await without_keyword_index(store, ds)
            print(f"ingest without the keyword index: {rate_without:8.0f} records/s")
            print(f"keyword index build (migration):  {build:8.2f} s")
            if args.database:
                await store.collections.drop(COLLECTION)
        finally:
            await store.close()


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="dataset directory")
    p.add_argument("--limit", type=int, default=None, help="base records (default: all)")
    p.add_argument("--queries", type=int, default=200, help="queries per kind")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument(
        "--database", default=None, help="a SQLAlchemy URL (default: a SQLite file per store)"
    )
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    asyncio.run(main_async(parse_args(argv)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
