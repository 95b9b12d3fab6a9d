"""Loading to searchable, vectorql against PostgreSQL + pgvector (issue 19, point 6).

``python -m tests.bench.peer --load-only`` (``make bench-peer ARGS=--load-only``) runs only this:
the same records as the search benchmark go

- into vectorql by ``vectorql import`` (the command, in its own process) of a JSON Lines file
  with base64 vectors, written before the clock starts, into a new collection with the peer's
  HNSW parameters (M 16, efConstruction 64), on the Milvus of ``--milvus`` with each SQL
  database of ``--sql`` (a new SQLite file, or a new database on the PostgreSQL of
  ``VECTORQL_TEST_POSTGRES_URL``); then the clock runs until Milvus has built the index over
  every row and its query node searches the indexed segments (``searchable``);
- into Milvus alone, by raw pymilvus upserts of the same vectors, ids and sections in batches
  of 1,000, one flush and the same index and wait (Milvus's own floor for what vectorql sends);
- into pgvector by COPY from CSV text (made before the clock starts, as a user's file would be)
  and an HNSW build (``tests.bench.peer.Peer.load``).

Each round loads every side once, in turn (interleaved, so a busy machine slows them alike), and
the medians over ``--load-rounds`` rounds are reported with vectorql's ratio to pgvector's COPY
+ index build (the target: at most 1.5).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
from pymilvus import MilvusClient, connections, utility
from rich.table import Table

from store import Store, StoreConfig
from store.records import CollectionSpec, IndexSpec, IndexType, Metric
from tests.bench.search import FIELDS, REPO, Dataset, console

HNSW = {"M": 16, "efConstruction": 64}  # the peer's m and ef_construction
POSTGRES_URL = os.environ.get(
    "VECTORQL_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
TARGET_RATIO = 1.5
RAW = "Milvus alone (raw pymilvus upsert)"


def write_jsonl(ds: Dataset, path: Path) -> None:
    """The records as ``vectorql import`` reads them, vectors as base64 float32."""
    with path.open("wb") as out:
        for record, vector in zip(ds.records, ds.base, strict=True):
            line = {**record, "vector": base64.b64encode(vector.astype("<f4").tobytes()).decode()}
            out.write(orjson.dumps(line) + b"\n")


@asynccontextmanager
async def sql_database(kind: str, directory: Path) -> AsyncIterator[str]:
    """A new, empty SQL database of ``kind`` ("sqlite" or "postgres"), dropped afterwards."""
    if kind == "sqlite":
        yield f"sqlite+aiosqlite:///{directory / f'vectorql-{uuid.uuid4().hex[:8]}.db'}"
        return
    import asyncpg

    admin = POSTGRES_URL.replace("postgresql+asyncpg://", "postgresql://")
    name = f"vq_bench_load_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    try:
        yield POSTGRES_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        conn = await asyncpg.connect(admin)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


async def vectorql_import(
    *,
    milvus_uri: str,
    milvus_token: str,
    database_url: str,
    collection: str,
    jsonl: Path,
    rows: int,
    work: Path,
    batch_size: int | None = None,
) -> dict[str, float]:
    """``vectorql import`` of ``jsonl`` into a new collection, then the wait until it is
    searchable through its index: seconds of each and their sum (``total``)."""
    store = await Store.open(
        StoreConfig(
            milvus_uri=milvus_uri, milvus_token=milvus_token or None, database_url=database_url
        )
    )
    try:
        info = await store.collections.create(
            CollectionSpec(
                name=collection,
                dimension=384,
                metric=Metric.COSINE,
                fields=FIELDS,
                index=IndexSpec(IndexType.HNSW, dict(HNSW)),
            )
        )
    finally:
        await store.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("VECTORQL_")}
    env.update(
        VECTORQL_MILVUS_URI=milvus_uri,
        VECTORQL_MILVUS_TOKEN=milvus_token,
        VECTORQL_DATABASE_URL=database_url,
        VECTORQL_MILVUS_TIMEOUT="600",
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    )
    command = [sys.executable, "-m", "graph.cli", "import", str(jsonl), "-c", collection]
    if batch_size is not None:
        command += ["--batch-size", str(batch_size)]
    start = time.perf_counter()
    done = await asyncio.to_thread(
        subprocess.run, command, cwd=work, env=env, capture_output=True, text=True
    )
    imported = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"vectorql import failed ({done.returncode}):\n{done.stderr[-3000:]}")
    await asyncio.to_thread(wait_searchable, milvus_uri, milvus_token, info.milvus_name, rows)
    total = time.perf_counter() - start
    return {"import": imported, "index": total - imported, "total": total}


RAW_BATCH = 1_000


def raw_milvus_load(uri: str, token: str, ds: Dataset, name: str) -> dict[str, float]:
    """Milvus's own floor for what ``vectorql import`` asks of it: raw pymilvus upserts (vectorql
    upserts so that a retried batch never duplicates) of the same vectors with their ids and
    sections, one flush, the same HNSW index, the same wait until searchable."""
    from pymilvus import DataType

    client = MilvusClient(uri=uri, token=token, timeout=600)
    try:
        schema = client.create_schema(auto_id=False)
        schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=512)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=int(ds.base.shape[1]))
        schema.add_field("section", DataType.VARCHAR, max_length=256)
        index = client.prepare_index_params()
        index.add_index("vector", index_type="HNSW", metric_type="COSINE", params=dict(HNSW))
        client.create_collection(name, schema=schema, index_params=index)
        start = time.perf_counter()
        for lo in range(0, len(ds.records), RAW_BATCH):
            hi = min(lo + RAW_BATCH, len(ds.records))
            rows = [
                {
                    "id": ds.records[i]["id"],
                    "vector": ds.base[i].tolist(),
                    "section": str(ds.records[i]["metadata"].get("section", "")),
                }
                for i in range(lo, hi)
            ]
            client.upsert(name, rows)
        written = time.perf_counter() - start
        client.flush(name)
        wait_searchable(uri, token, name, len(ds.records))
        total = time.perf_counter() - start
        return {"upsert": written, "index": total - written, "total": total}
    finally:
        with contextlib.suppress(Exception):
            client.drop_collection(name)
        client.close()


def wait_searchable(uri: str, token: str, mname: str, rows: int, within: float = 900.0) -> None:
    """Until Milvus has indexed ``rows`` rows of ``mname`` and the query node holds every
    segment with its index: Milvus 2.3 builds indexes in the background after a flush and then
    hands the indexed segments over to the query node by itself (no reload)."""
    alias = f"load-{uuid.uuid4().hex[:8]}"
    connections.connect(alias=alias, uri=uri, token=token)
    client = MilvusClient(uri=uri, token=token)
    deadline = time.monotonic() + within
    try:
        while True:
            index = client.describe_index(mname, "vector")
            built = int(index.get("indexed_rows", 0)) >= rows and not int(
                index.get("pending_index_rows", 0)
            )
            segments = utility.get_query_segment_info(mname, using=alias) if built else []
            if (
                segments
                and all(s.indexID for s in segments)
                and sum(s.num_rows for s in segments) >= rows
            ):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{mname} not searchable through its index in {within:g}s")
            time.sleep(0.2)
    finally:
        client.close()
        connections.disconnect(alias)


def load_table(results: dict[str, list[dict[str, float]]], rows: int) -> Table:
    """Medians per side and phase, and each vectorql side's ratio to pgvector's COPY + index."""
    table = Table(
        title=f"load to searchable, {rows:,} records: median of {len(results['pgvector'])}"
    )
    for name in ("stack", "phases (median s)", "total s", "runs s", "ratio to COPY + index"):
        table.add_column(
            name, justify="left" if name in ("stack", "phases (median s)") else "right"
        )
    peer = statistics.median(r["copy"] + r["index"] for r in results["pgvector"])
    for stack, runs in results.items():
        phases = [k for k in runs[0] if k != "total"]
        totals = [r["copy"] + r["index"] if stack == "pgvector" else r["total"] for r in runs]
        table.add_row(
            stack,
            ", ".join(f"{k} {statistics.median(r[k] for r in runs):.1f}" for k in phases),
            f"{statistics.median(totals):.1f}",
            " ".join(f"{t:.1f}" for t in totals),
            f"{statistics.median(totals) / peer:.2f}",
        )
    table.caption = (
        f"vectorql: `vectorql import` + until searchable through its index (HNSW {HNSW}); "
        "pgvector: COPY + HNSW build (csv: making the CSV text, not counted); "
        f"target ratio <= {TARGET_RATIO}"
    )
    return table


async def run_load(args: Any, ds: Dataset, root: Path, peer: Any, milvus: Any) -> dict[str, Any]:
    """``--load-only``: ``args.load_rounds`` interleaved rounds of every side's load."""
    jsonl = root / "records.jsonl"
    write_jsonl(ds, jsonl)
    results: dict[str, list[dict[str, float]]] = {f"vectorql + {s}": [] for s in args.sql}
    results[RAW] = []
    results["pgvector"] = []
    peer.start_postgres()
    for round_ in range(args.load_rounds):
        for sql in args.sql:
            async with sql_database(sql, root) as url:
                seconds = await vectorql_import(
                    milvus_uri=milvus.uri,
                    milvus_token=milvus.token,
                    database_url=url,
                    collection=f"load_{sql}_{round_}",
                    jsonl=jsonl,
                    rows=len(ds.records),
                    work=root,
                    batch_size=args.batch_size,
                )
            results[f"vectorql + {sql}"].append(seconds)
            console.print(f"  round {round_ + 1} vectorql + {sql}: {_phases(seconds)}")
        seconds = await asyncio.to_thread(
            raw_milvus_load, milvus.uri, milvus.token, ds, f"load_raw_{round_}"
        )
        results[RAW].append(seconds)
        console.print(f"  round {round_ + 1} {RAW}: {_phases(seconds)}")
        await peer.load(ds, ef_search=args.ef_search, settings=(), fresh=True)
        seconds = {k: peer.info[f"{k}_seconds"] for k in ("csv", "copy", "index")}
        results["pgvector"].append(seconds)
        console.print(f"  round {round_ + 1} pgvector: {_phases(seconds)}")
    console.print(load_table(results, len(ds.records)))
    return {"load": results, "records": len(ds.records), "hnsw": HNSW}


def _phases(seconds: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.1f} s" for k, v in seconds.items())
