"""The figures docs/scaling.md's capacity plan rests on: per record, what SQL stores, what the
Milvus query side holds in memory, and what the API spends to upsert it.

``python -m tests.bench.capacity`` (``make bench-capacity``). A Milvus 2.3 standalone (PyPI
``milvus``, its own process) and a fresh PostgreSQL database; the app in this process
(``create_app`` over httpx's ASGI transport). For each dimension x index type, a collection gets
``--records`` random unit vectors with a small metadata object (an INT and a 40-character
STRING, both filterable) through ``upsertRecords`` in batches of 1,000, then:

* **SQL bytes per record**: growth of ``pg_total_relation_size`` of the vq_record table (heap,
  TOAST and indexes) divided by the records, after a VACUUM ("written": with the free space the
  write protocol's pending -> indexed update leaves, which later writes reuse) and after a
  VACUUM FULL ("compact");
* **Milvus memory per vector**: what a query node loads, from the standalone's local storage
  once flushed and indexed: the index files (HNSW holds the vectors and its graph; IVF_SQ8 one
  byte per dimension and the centroids) plus the scalar columns' binlogs (the raw vector column
  is not loaded beside these indexes); Milvus 2.3 reports 0 for a loaded segment's mem_size;
* **API CPU per upserted record** and **per search** (topK 10, hits with their records): this
  process's CPU time (the GraphQL client's JSON and base64 included, so upper bounds) divided by
  the records or searches.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np
from pymilvus import MilvusClient

from tests.conftest import fresh_postgres_database, make_settings, running_api
from tests.servers import start_milvus_standalone

CREATE = """mutation($i: CreateCollectionInput!) { createCollection(input: $i) { name } }"""
SEARCH = """query($c: String!, $v: Vector!) {
  search(collection: $c, vector: $v, topK: 10) { hits { id score record { id metadata } } } }"""
UPSERT = """mutation($c: String!, $r: [RecordInput!]!) {
  upsertRecords(collection: $c, records: $r) { upserted } }"""
BATCH = 1000
CASES = [(384, "HNSW"), (384, "IVF_SQ8"), (768, "HNSW"), (768, "IVF_SQ8")]


def records(rng: np.random.Generator, start: int, count: int, dim: int) -> list[dict[str, Any]]:
    vectors = rng.standard_normal((count, dim)).astype("<f4")
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return [
        {
            "id": f"r{start + i:08d}",
            "vector": base64.b64encode(vectors[i].tobytes()).decode(),
            "metadata": {"group": (start + i) % 100, "title": f"title {start + i:032d}"},
        }
        for i in range(count)
    ]


async def relation_bytes(dsn: str, *, full: bool) -> int:
    """The record table's size, heap + TOAST + indexes, after a VACUUM (FULL: rewritten compact,
    without the dead row versions the write protocol's pending -> indexed update leaves)."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("VACUUM FULL ANALYZE vq_record" if full else "VACUUM ANALYZE vq_record")
        return int(await conn.fetchval("SELECT pg_total_relation_size('vq_record')"))
    finally:
        await conn.close()


def milvus_files(base: Path) -> dict[str, int]:
    """Bytes under the standalone's local storage by kind: ``index_files`` (built indexes) and
    ``insert_log`` (the raw column binlogs)."""
    sizes = {"index_files": 0, "insert_log": 0}
    for path in base.rglob("*"):
        if path.is_file():
            for kind in sizes:
                if kind in path.parts:
                    sizes[kind] += path.stat().st_size
    return sizes


def wait_indexed(client: MilvusClient, name: str, rows: int) -> str:
    """Flush (seal), wait until the index covers ``rows`` rows, load; the loaded segments' index
    name."""
    client.flush(name)
    deadline = time.monotonic() + 600
    for index in client.list_indexes(name):
        while client.describe_index(name, index).get("indexed_rows", 0) < rows:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{name}: index {index} not built in 600 s")
            time.sleep(1)
    time.sleep(2)  # the index files are written before the build is reported done; be sure
    client.release_collection(name)
    client.load_collection(name)
    return ",".join(sorted({s.index_name or "-" for s in client.list_loaded_segments(name)}))


async def amain(args: argparse.Namespace) -> int:
    rng = np.random.default_rng(1)
    rows: list[tuple[int, str, int, int, int, int, float, str]] = []
    searches: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        server = start_milvus_standalone(Path(tmp) / "milvus")
        try:
            async with fresh_postgres_database("vq_capacity") as url:
                dsn = url.replace("postgresql+asyncpg://", "postgresql://")
                settings = make_settings(
                    milvus_uri=server.uri, database_url=url, milvus_timeout=120, embedders="[]"
                )
                milvus = MilvusClient(uri=server.uri)
                async with running_api(settings) as api:
                    for dim, index in [c for c in CASES if f"{c[0]}/{c[1]}" in args.cases]:
                        name = f"cap_{dim}_{index.lower()}"
                        await api.client.post(
                            "/graphql",
                            json={
                                "query": CREATE,
                                "variables": {
                                    "i": {
                                        "name": name,
                                        "dimension": dim,
                                        "fields": [
                                            {"name": "group", "type": "INT"},
                                            {"name": "title", "type": "STRING"},
                                        ],
                                        "index": {"type": index},
                                    }
                                },
                            },
                        )
                        sql_before = await relation_bytes(dsn, full=True)
                        files_before = milvus_files(Path(tmp) / "milvus")
                        cpu = 0.0
                        for start in range(0, args.records, BATCH):
                            batch = records(rng, start, min(BATCH, args.records - start), dim)
                            began = time.process_time()
                            response = await api.client.post(
                                "/graphql",
                                json={"query": UPSERT, "variables": {"c": name, "r": batch}},
                                timeout=300,
                            )
                            cpu += time.process_time() - began
                            body = response.json()
                            assert "errors" not in body, body
                        written = await relation_bytes(dsn, full=False) - sql_before
                        compact = await relation_bytes(dsn, full=True) - sql_before
                        index_name = wait_indexed(milvus, f"vq_{name}", args.records)
                        files = milvus_files(Path(tmp) / "milvus")
                        index_bytes = files["index_files"] - files_before["index_files"]
                        # the scalar columns (id, group, title) a query node loads beside the
                        # index: the binlogs less the vector column's float32 values
                        scalars = files["insert_log"] - files_before["insert_log"]
                        scalars -= args.records * dim * 4
                        rows.append(
                            (dim, index, written, compact, index_bytes, scalars, cpu, index_name)
                        )
                        print(  # as it comes: a long run keeps what it measured
                            f"{dim} {index}: SQL {written / args.records:.0f} B/record written, "
                            f"{compact / args.records:.0f} compact; Milvus index "
                            f"{index_bytes / args.records:.0f} B/vector ({index_name}), scalars "
                            f"{scalars / args.records:.0f}; API CPU "
                            f"{cpu / args.records * 1000:.3f} ms/record",
                            flush=True,
                        )
                        queries = records(rng, 0, args.searches, dim)
                        api_cpu = time.process_time()
                        for q in queries:
                            response = await api.client.post(
                                "/graphql",
                                json={"query": SEARCH, "variables": {"c": name, "v": q["vector"]}},
                            )
                            assert len(response.json()["data"]["search"]["hits"]) == 10
                        api_cpu = time.process_time() - api_cpu
                        searches.append(api_cpu / len(queries))
                        milvus.release_collection(f"vq_{name}")
        finally:
            server.stop()
    n = args.records
    print(f"{n} records per case; load average {os.getloadavg()[0]:.1f}")
    print(
        "dim  index    SQL B/record (written, compact)  Milvus index B/vector  + scalars  "
        "GiB per 1M (index + scalars)  API CPU ms/record  API CPU ms/search  loaded index"
    )
    for (dim, index, written, compact, index_bytes, scalars, cpu, name), api_s in zip(
        rows, searches, strict=True
    ):
        print(
            f"{dim:<4} {index:<8} {written / n:8.0f} {compact / n:8.0f}  "
            f"{index_bytes / n:21.0f}  {scalars / n:9.0f}  "
            f"{(index_bytes + scalars) / n * 1e6 / 2**30:28.2f}  {cpu / n * 1000:17.3f}  "
            f"{api_s * 1000:17.2f}  {name}"
        )
    return 0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.capacity", description=__doc__)
    parser.add_argument("--records", type=int, default=20_000, help="records per case")
    parser.add_argument(
        "--cases",
        nargs="+",
        default=[f"{d}/{i}" for d, i in CASES],
        help="DIMENSION/INDEX cases (default: all four)",
    )
    parser.add_argument("--searches", type=int, default=300, help="searches per case")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    return asyncio.run(amain(parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
