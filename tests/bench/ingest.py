"""Ingest benchmark: raw pymilvus vs the store's write path vs GraphQL over HTTP, side by side.

``python -m tests.bench.ingest`` (``make bench-ingest``). The debian-packages dataset (63,436 real
384-d embeddings with metadata and text) is written in batches of 1,000, each path into its own
fresh collection, in its own fresh Milvus Lite file and SQLite file under one temporary directory:

- (a) raw: pymilvus ``MilvusClient.upsert`` into a bare collection with the same Milvus schema and
  index as the store's (created by the store's adapter; the timed loop is plain pymilvus: rows as
  dicts with the numpy vector, no SQL);
- (b) store: ``Writer.upsert`` (validation, SQL ``pending``, Milvus, ``indexed``), in process;
- (c) graphql-b64: ``upsertRecords`` over HTTP to a real ``vectorql serve`` (uvicorn, its own
  process), vectors as base64 float32, records passed as variables;
- (d) graphql-list: the same with vectors as JSON lists of floats;
- (e) import: ``store.importer.import_jsonl`` of the same records as a JSON Lines file (base64
  vectors), the path of ``vectorql import``, which flushes at the end;
- (f) as (b) with ``flush_threshold=0``: no flush during the load, like (a). On Milvus Lite every
  flush starts a compaction and an HNSW build in a background thread of this process, which (a)
  never pays inside its timed loop; (f) separates the write protocol's cost from that one;
- (g) as (a), flushing whenever the store's default flush threshold of rows is unflushed, as (b)
  does: the most any write path that keeps searches fast after large writes (issue 3 point 7)
  can reach on Milvus Lite, whatever it does besides.

Prints rows/s, each path's ratio to (a) with the targets of issue 3 (b/a >= 0.8, c/a >= 0.6), the
same per CPU-second of the process doing the work (this one for a, b, e, f; the API server for c,
d), which stays comparable on a busy machine, and the p50 of search latency right after each
in-process load (as the path leaves Milvus), after the idle flush (``flush_idle`` seconds after
the last write, for (b)) and after an explicit flush (the slow path of unflushed rows: issue 3
point 7).

Examples::

    python -m tests.bench.ingest                       # everything, full dataset
    python -m tests.bench.ingest --limit 5000          # a quick run
    python -m tests.bench.ingest --paths ab --profile  # py-spy profile of each measured phase
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import dataclasses
import gzip
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
from rich.console import Console
from rich.table import Table

from store import Store, StoreConfig
from store.fields import ABSENT_COLUMN
from store.index import milvus_name
from store.milvus import MilvusIndex
from store.records import (
    CollectionInfo,
    CollectionSpec,
    FieldSpec,
    FieldType,
    IndexSpec,
    IndexType,
    Metric,
)
from store.validation import validate_index
from store.writes.importer import import_jsonl
from store.writes.incoming import IncomingRecord
from tests.bench.search import ApiProcess, Profiler

REPO = Path(__file__).resolve().parents[2]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "debian-packages"
COLLECTION = "debian"
BATCH = 1000
SEARCHES = 50
SEARCH_BUDGET = 60.0  # seconds per latency measurement
TOP_K = 10
# A search over tens of thousands of unflushed rows (the slow path this benchmark shows) can take
# longer than the store's default 10 s on a busy machine.
MILVUS_TIMEOUT = 300.0
# Targets of issue 3, as ratios to (a).
TARGETS = {"b": 0.8, "c": 0.6}

FIELDS = (
    FieldSpec("section", FieldType.STRING),
    FieldSpec("priority", FieldType.STRING),
    FieldSpec("arch", FieldType.STRING),
    FieldSpec("installed_size", FieldType.INT),
    FieldSpec("size", FieldType.INT),
    FieldSpec("has_homepage", FieldType.BOOL),
    FieldSpec("tags", FieldType.STRING_LIST),
    FieldSpec("version", FieldType.STRING, filterable=False),
    FieldSpec("maintainer", FieldType.STRING, filterable=False),
)

UPSERT = """
mutation Upsert($c: String!, $r: [RecordInput!]!) {
  upsertRecords(collection: $c, records: $r) { upserted }
}
"""
CREATE = """
mutation Create($i: CreateCollectionInput!) { createCollection(input: $i) { name } }
"""

console = Console(width=int(os.environ.get("COLUMNS", "150")))


# ------------------------------------------------------------------------------------------------
# Data


@dataclass(frozen=True)
class Dataset:
    records: list[dict[str, Any]]  # {"id", "text", "metadata"}, in vector order
    vectors: np.ndarray  # float32 (n, d)
    queries: np.ndarray  # float32 (SEARCHES, d): vectors of records picked at random

    def batches(self, size: int) -> Iterator[range]:
        for lo in range(0, len(self.records), size):
            yield range(lo, min(lo + size, len(self.records)))


def load_dataset(data: Path, *, limit: int | None) -> Dataset:
    vectors = np.load(data / "vectors.f16.npy", mmap_mode="r")
    with gzip.open(data / "records.jsonl.gz", "rb") as fh:
        records = [orjson.loads(line) for line in fh]
    if len(records) != len(vectors):
        raise SystemExit(f"{data}: {len(records)} records but {len(vectors)} vectors")
    n = len(records) if limit is None else min(limit, len(records))
    base = np.asarray(vectors[:n], dtype=np.float32)
    picks = np.random.default_rng(3).choice(n, size=min(SEARCHES, n), replace=False)
    return Dataset(records=records[:n], vectors=base, queries=base[picks])


def collection_spec(dimension: int) -> CollectionSpec:
    return CollectionSpec(
        name=COLLECTION,
        dimension=dimension,
        metric=Metric.COSINE,
        fields=FIELDS,
        index=IndexSpec(IndexType.HNSW, {}),
    )


def b64(vector: np.ndarray) -> str:
    return base64.b64encode(vector.astype("<f4", copy=False).tobytes()).decode()


def record_inputs(ds: Dataset, rows: range, *, as_base64: bool = True) -> list[dict[str, Any]]:
    """``RecordInput`` values of ``upsertRecords`` for records ``rows`` of the dataset."""
    return [
        {
            "id": ds.records[i]["id"],
            "vector": b64(ds.vectors[i]) if as_base64 else ds.vectors[i].tolist(),
            "metadata": ds.records[i]["metadata"],
            "text": ds.records[i]["text"],
        }
        for i in rows
    ]


# ------------------------------------------------------------------------------------------------
# Measurement


@dataclass
class Result:
    key: str
    title: str
    rows: int
    seconds: float
    cpu: float
    search_after: Latency | None = None
    search_flushed: Latency | None = None
    search_idle: Latency | None = None

    @property
    def rate(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0

    @property
    def cpu_rate(self) -> float:
        return self.rows / self.cpu if self.cpu > 0 else 0.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads (Linux ``/proc``)."""
    if pid == os.getpid():
        return time.process_time()
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Phase:
    """Times the measured part of a path (wall clock, and CPU of the process doing the work, so
    figures from a busy machine can still be compared); profiled with py-spy when asked."""

    def __init__(self, *, profile_dir: Path | None, name: str, pid: int | None = None) -> None:
        self._profile_dir = profile_dir
        self._name = name
        self._pid = pid or os.getpid()
        self._profiler: Profiler | None = None
        self.seconds = 0.0
        self.cpu = 0.0

    def __enter__(self) -> Phase:
        if self._profile_dir is not None:
            self._profiler = Profiler(self._profile_dir / f"{self._name}.txt", self._pid)
            time.sleep(1.0)  # py-spy attaches
        self._start = time.perf_counter()
        self._cpu = cpu_seconds(self._pid)
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self._start
        self.cpu = cpu_seconds(self._pid) - self._cpu
        if self._profiler is not None:
            self._profiler.stop()


@dataclass(frozen=True)
class Latency:
    p50_ms: float
    searches: int

    def __str__(self) -> str:
        cut = "" if self.searches >= SEARCHES else f" (n={self.searches})"
        return f"{self.p50_ms:,.1f} ms{cut}"


def p50_ms(search: Callable[[np.ndarray], Any], queries: np.ndarray) -> Latency:
    """The median of up to ``len(queries)`` searches, stopping after ``SEARCH_BUDGET`` seconds
    (unflushed rows make each search take seconds on Milvus Lite)."""
    times: list[float] = []
    budget_end = time.perf_counter() + SEARCH_BUDGET
    for q in queries:
        start = time.perf_counter()
        search(q)
        times.append((time.perf_counter() - start) * 1000)
        if start > budget_end and len(times) >= 3:
            break
    return Latency(statistics.median(times), len(times))


async def ap50_ms(
    search: Callable[[np.ndarray], Any], queries: np.ndarray, *, budget: float = SEARCH_BUDGET
) -> Latency:
    times: list[float] = []
    budget_end = time.perf_counter() + budget
    for q in queries:
        start = time.perf_counter()
        await search(q)
        times.append((time.perf_counter() - start) * 1000)
        if start > budget_end and len(times) >= 3:
            break
    return Latency(statistics.median(times), len(times))


def release_milvus_lite(uri: str) -> None:
    """Stop this process's Milvus Lite server for ``uri``: its background work (compaction,
    index builds) must not run into the next path's measurement."""
    from milvus_lite.server_manager import server_manager_instance

    server_manager_instance.release_server(uri)


# ------------------------------------------------------------------------------------------------
# The paths

STORE_FLUSH_THRESHOLD = StoreConfig(milvus_uri="", database_url="").flush_threshold


async def raw_pymilvus(
    ds: Dataset, work: Path, profile: Path | None, *, flush_every: int | None = None
) -> Result:
    """(a), or with ``flush_every`` (g): the same loop that also flushes whenever that many rows
    are unflushed, as the store does at its flush threshold. (g) is the most any write path that
    keeps searches fast after large writes (issue 3 point 7) can reach on Milvus Lite."""
    from pymilvus import MilvusClient

    uri = str(work / "milvus.db")
    spec = collection_spec(ds.vectors.shape[1])
    now = datetime.now(UTC)
    info = CollectionInfo(
        name=spec.name,
        dimension=spec.dimension,
        metric=spec.metric,
        description=None,
        model=None,
        fields=spec.fields,
        index=validate_index(spec.index, dimension=spec.dimension),
        multi_tenant=False,
        shards=1,
        milvus_name=milvus_name(spec.name),
        created_at=now,
        updated_at=now,
    )
    # The store's adapter creates the collection, so the schema and index are the store's own.
    adapter = MilvusIndex(uri=uri)
    await adapter.create_collection(info)
    await adapter.close()
    client = MilvusClient(uri=uri)
    scalars = [f.name for f in info.filterable_fields]
    key, title = (
        ("a", "raw pymilvus upsert")
        if flush_every is None
        else ("g", f"raw pymilvus upsert, flush every {flush_every:,} rows")
    )
    unflushed = 0
    try:
        with Phase(profile_dir=profile, name=f"{key}-raw") as phase:
            for rows in ds.batches(BATCH):
                data = []
                for i in rows:
                    meta = ds.records[i]["metadata"]
                    row = {"id": ds.records[i]["id"], "vector": ds.vectors[i]}
                    for name in scalars:
                        row[name] = meta[name]
                    row[ABSENT_COLUMN] = []
                    data.append(row)
                client.upsert(info.milvus_name, data)
                unflushed += len(data)
                if flush_every is not None and unflushed >= flush_every:
                    client.flush(info.milvus_name)
                    unflushed = 0

        def search(q: np.ndarray) -> Any:
            return client.search(
                info.milvus_name,
                data=[q.tolist()],
                limit=TOP_K,
                search_params={"metric_type": "COSINE", "params": {}},
            )

        after = p50_ms(search, ds.queries)
        client.flush(info.milvus_name)
        flushed = p50_ms(search, ds.queries)
    finally:
        client.close()
        release_milvus_lite(uri)
    return Result(key, title, len(ds.records), phase.seconds, phase.cpu, after, flushed)


async def store_path(
    ds: Dataset, work: Path, profile: Path | None, *, flush_threshold: int | None = None
) -> Result:
    uri = str(work / "milvus.db")
    config = StoreConfig(
        milvus_uri=uri,
        database_url=f"sqlite+aiosqlite:///{work / 'vectorql.db'}",
        milvus_timeout=MILVUS_TIMEOUT,
    )
    if flush_threshold is not None:
        config = dataclasses.replace(config, flush_threshold=flush_threshold)
    key, title = (
        ("b", "store Writer.upsert")
        if flush_threshold is None
        else ("f", "store, flush_threshold=0")
    )
    store = await Store.open(config)
    try:
        info = await store.collections.create(collection_spec(ds.vectors.shape[1]))
        with Phase(profile_dir=profile, name=f"{key}-store") as phase:
            for rows in ds.batches(BATCH):
                batch = [
                    IncomingRecord(
                        vector=ds.vectors[i],
                        id=ds.records[i]["id"],
                        metadata=ds.records[i]["metadata"],
                        text=ds.records[i]["text"],
                    )
                    for i in rows
                ]
                outcome = await store.writer.upsert(info, batch)
                if outcome.errors:
                    raise RuntimeError(f"store: {outcome.errors[:3]}")

        async def search(q: np.ndarray) -> Any:
            return await store.vectors.search(info, [q], limit=TOP_K)

        # Measured before the idle flush can start (config.flush_idle after the last write).
        after = await ap50_ms(search, ds.queries, budget=max(1.0, config.flush_idle - 1.0))
        idle = None
        if flush_threshold is None and store.writer.unflushed(info) >= config.flush_idle_rows:
            for _ in range(int((config.flush_idle + 60.0) * 10)):  # the idle flush, polled
                if not store.writer.unflushed(info):
                    break
                await asyncio.sleep(0.1)
            idle = await ap50_ms(search, ds.queries)
        await store.writer.flush(info)
        flushed = await ap50_ms(search, ds.queries)
    finally:
        await store.close()
        release_milvus_lite(uri)
    return Result(
        key, title, len(ds.records), phase.seconds, phase.cpu, after, flushed, search_idle=idle
    )


async def importer_path(ds: Dataset, work: Path, profile: Path | None) -> Result:
    path = work / "records.jsonl"
    with path.open("wb") as fh:
        for i, record in enumerate(ds.records):
            fh.write(orjson.dumps({**record, "vector": b64(ds.vectors[i])}) + b"\n")
    uri = str(work / "milvus.db")
    store = await Store.open(
        StoreConfig(
            milvus_uri=uri,
            database_url=f"sqlite+aiosqlite:///{work / 'vectorql.db'}",
            milvus_timeout=MILVUS_TIMEOUT,
        )
    )
    try:
        info = await store.collections.create(collection_spec(ds.vectors.shape[1]))
        with Phase(profile_dir=profile, name="e-import") as phase:
            summary = await import_jsonl(store, path=path, collection=COLLECTION, batch_size=BATCH)
        if not summary.ok or summary.records_written != len(ds.records):
            raise RuntimeError(
                f"import: {summary.records_written} written, {summary.bad_lines[:3]}"
            )

        async def search(q: np.ndarray) -> Any:
            return await store.vectors.search(info, [q], limit=TOP_K)

        after = await ap50_ms(search, ds.queries)  # the importer flushed already
    finally:
        await store.close()
        release_milvus_lite(uri)
    return Result(
        "e", "vectorql import (JSONL, b64)", len(ds.records), phase.seconds, phase.cpu, after
    )


async def graphql_path(ds: Dataset, work: Path, profile: Path | None, *, as_base64: bool) -> Result:
    key, title = ("c", "GraphQL/HTTP base64") if as_base64 else ("d", "GraphQL/HTTP float lists")
    api = await start_api(work)
    try:
        with httpx.Client(base_url=api.url, timeout=600) as client:

            def post(query: str, variables: dict[str, Any]) -> Any:
                response = client.post(
                    "/graphql",
                    content=orjson.dumps({"query": query, "variables": variables}),
                    headers={"content-type": "application/json"},
                )
                body = response.json()
                if response.status_code != 200 or body.get("errors"):
                    raise RuntimeError(f"{response.status_code}: {str(body)[:500]}")
                return body["data"]

            post(CREATE, {"i": graphql_collection_input(ds.vectors.shape[1])})
            with Phase(profile_dir=profile, name=f"{key}-graphql", pid=api.proc.pid) as phase:
                for rows in ds.batches(BATCH):
                    records = record_inputs(ds, rows, as_base64=as_base64)
                    data = post(UPSERT, {"c": COLLECTION, "r": records})
                    if data["upsertRecords"]["upserted"] != len(records):
                        raise RuntimeError(f"graphql: {data}")
    finally:
        api.stop()
    return Result(key, title, len(ds.records), phase.seconds, phase.cpu)


async def start_api(work: Path, attempts: int = 3) -> ApiProcess:
    """``vectorql serve`` on a free port; again on another port if that one was taken meanwhile
    (Milvus Lite's gRPC servers in this process pick ports too)."""
    for attempt in range(attempts):
        api = ApiProcess(
            work_dir=work,
            milvus_uri=str(work / "milvus.db"),
            database_url=f"sqlite+aiosqlite:///{work / 'vectorql.db'}",
        )
        try:
            await api.wait_ready()
        except RuntimeError:
            api.stop()
            if attempt == attempts - 1 or "address already in use" not in api.tail():
                raise
            continue
        return api
    raise AssertionError("unreachable")


def graphql_collection_input(dimension: int) -> dict[str, Any]:
    return {
        "name": COLLECTION,
        "dimension": dimension,
        "metric": "COSINE",
        "fields": [
            {"name": f.name, "type": f.type.value, "filterable": f.filterable} for f in FIELDS
        ],
        "index": {"type": "HNSW"},
    }


# ------------------------------------------------------------------------------------------------
# Report


def results_table(results: Sequence[Result], *, rows: int) -> Table:
    table = Table(title=f"ingest: {rows:,} records x {BATCH:,} per batch, Milvus Lite + SQLite")
    columns = ("path", "seconds", "rows/s", "vs (a)", "target", "rows/cpu-s", "vs (a)")
    for column in (*columns, "search p50 after", "after idle flush", "after flush"):
        table.add_column(column, justify="left" if column == "path" else "right")
    raw = next((r for r in results if r.key == "a"), None)
    for r in results:
        ratio = r.rate / raw.rate if raw is not None and raw.rate > 0 else None
        cpu_ratio = r.cpu_rate / raw.cpu_rate if raw is not None and raw.cpu_rate > 0 else None
        target = TARGETS.get(r.key)
        verdict = ""
        if target is not None and ratio is not None:
            verdict = f"{'[green]ok' if ratio >= target else '[red]missed'} (>= {target})[/]"
        table.add_row(
            f"({r.key}) {r.title}",
            f"{r.seconds:.1f}",
            f"{r.rate:,.0f}",
            f"{ratio:.2f}" if ratio is not None else "",
            verdict,
            f"{r.cpu_rate:,.0f}",
            f"{cpu_ratio:.2f}" if cpu_ratio is not None else "",
            str(r.search_after or ""),
            str(r.search_idle or ""),
            str(r.search_flushed or ""),
        )
    return table


# ------------------------------------------------------------------------------------------------
# Main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.ingest", description=__doc__)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="dataset directory")
    parser.add_argument("--limit", type=int, default=None, help="only the first N records")
    parser.add_argument("--paths", default="abcdefg", help="which paths to run (default abcdefg)")
    parser.add_argument("--profile", action="store_true", help="py-spy each measured phase")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    return parser.parse_args(argv)


async def amain(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    ds = load_dataset(args.data, limit=args.limit)
    console.print(
        f"{len(ds.records):,} records x {ds.vectors.shape[1]} from {args.data} "
        f"(loaded in {time.perf_counter() - started:.1f} s)"
    )
    root = Path(tempfile.mkdtemp(prefix="vectorql-bench-ingest-"))
    profile = root / "profiles" if args.profile else None
    paths: dict[str, Callable[[Path], Any]] = {
        "a": lambda work: raw_pymilvus(ds, work, profile),
        "b": lambda work: store_path(ds, work, profile),
        "c": lambda work: graphql_path(ds, work, profile, as_base64=True),
        "d": lambda work: graphql_path(ds, work, profile, as_base64=False),
        "e": lambda work: importer_path(ds, work, profile),
        "f": lambda work: store_path(ds, work, profile, flush_threshold=0),
        "g": lambda work: raw_pymilvus(ds, work, profile, flush_every=STORE_FLUSH_THRESHOLD),
    }
    results: list[Result] = []
    try:
        for key in sorted(set(args.paths)):
            if key not in paths:
                raise SystemExit(f"unknown path {key!r}: choose among {''.join(paths)}")
            work = root / key
            work.mkdir()
            with console.status(f"({key}) writing {len(ds.records):,} records"):
                result = await paths[key](work)
            console.print(f"({key}) {result.title}: {result.rate:,.0f} rows/s")
            results.append(result)
    finally:
        if args.keep or args.profile:
            console.print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    console.print(results_table(results, rows=len(ds.records)))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return asyncio.run(amain(parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
