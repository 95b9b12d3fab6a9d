"""Search benchmark: raw pymilvus + SQL vs the store vs GraphQL over HTTP, side by side.

``python -m tests.bench.search`` (``make bench-search``). The debian-packages dataset (63,436 real
384-d embeddings) is loaded through the store's write path (``Writer.upsert``, batches of 1000) into
a fresh temporary directory, HNSW with the default parameters, minus 200 held-out records whose
vectors are the queries. One Milvus (a ``milvus-lite server`` or Milvus 2.3 standalone) and one
SQLite file are shared by this process and a real uvicorn process serving the API, and measured in
one run:

- (a) raw: pymilvus ``MilvusClient.search`` with the store's search parameters (COSINE,
  ``ef = max(DEFAULT_EF, topK)``) plus one ``SELECT id, metadata, text ... WHERE collection = ? AND
  id IN (...)`` on the same SQLite file (stdlib ``sqlite3``);
- (b) store: ``resolvers.search.search`` with a fresh ``Loaders`` per query (the API's path minus
  GraphQL and HTTP);
- (c) graphql: ``search`` over HTTP (httpx, keep-alive) selecting
  ``hits { id score record { id metadata text } }``.

For topK 10 and 100, serially and with 8 concurrent clients, without and with metadata filters:
p50/p99 latency, QPS and recall@10 against exact numpy search (cosine, over the filtered subset
for a filtered query). Targets (issue 4): recall@10 >= 0.98 with the defaults; (c) adds at most
3 ms to the p50 of (a) at topK 10; at concurrency 8, (c) reaches >= 0.6 of (a)'s QPS.

Examples::

    python -m tests.bench.search                         # full dataset, Milvus Lite server
    python -m tests.bench.search --limit 5000 --queries 50
    python -m tests.bench.search --milvus both --json results.json --ef-sweep
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import gzip
import inspect
import json
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from pymilvus import MilvusClient
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from resolvers.limits import Limits
from resolvers.search import QueryVector, SearchRequest
from resolvers.search import search as store_search
from store import Store, StoreConfig, local_engine
from store.loaders import Loaders
from store.records import (
    CollectionInfo,
    CollectionSpec,
    FieldSpec,
    FieldType,
    IndexSpec,
    IndexType,
    Metric,
)
from store.search import DEFAULT_EF, FILTERED_EF, MAX_EF
from store.sql.tables import tenant_key
from store.writes.incoming import IncomingRecord

REPO = Path(__file__).resolve().parents[2]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "debian-packages"
COLLECTION = "debian"
BATCH = 1000
TOP_KS = (10, 100)
CONCURRENCY = (1, 8)
RECALL_AT = 10
# Targets of issue 4.
TARGET_RECALL = 0.98
TARGET_P50_ADDED_MS = 3.0
TARGET_QPS_RATIO = 0.6

FIELDS = (
    FieldSpec("section", FieldType.STRING),
    FieldSpec("priority", FieldType.STRING),
    FieldSpec("arch", FieldType.STRING),
    FieldSpec("installed_size", FieldType.INT),
    FieldSpec("size", FieldType.INT),
    FieldSpec("has_homepage", FieldType.BOOL),
    FieldSpec("tags", FieldType.STRING_LIST),
)

GRAPHQL_SEARCH = """
query Search($c: String!, $v: Vector!, $k: Int!, $w: Filter) {
  search(collection: $c, vector: $v, topK: $k, where: $w) {
    hits { id score record { id metadata text } }
  }
}
"""

console = Console(width=int(os.environ.get("COLUMNS", "160")))


# ------------------------------------------------------------------------------------------------
# Data


@dataclass(frozen=True)
class Dataset:
    records: list[dict[str, Any]]  # the loaded (base) records, in vector order
    base: np.ndarray  # float32 (n, d)
    query_ids: list[str]
    queries: np.ndarray  # float32 (q, d)

    @property
    def ids(self) -> list[str]:
        return [r["id"] for r in self.records]

    def batches(self, size: int) -> Iterator[list[IncomingRecord]]:
        """The base records as the store takes them, ``size`` at a time."""
        for lo in range(0, len(self.records), size):
            yield [
                IncomingRecord(
                    vector=self.base[i],
                    id=self.records[i]["id"],
                    metadata=self.records[i]["metadata"],
                    text=self.records[i].get("text"),
                )
                for i in range(lo, min(lo + size, len(self.records)))
            ]


def load_dataset(data: Path, *, limit: int | None, queries: int, seed: int) -> Dataset:
    vectors = np.load(data / "vectors.f16.npy", mmap_mode="r")
    with gzip.open(data / "records.jsonl.gz", "rt") as fh:
        records = [json.loads(line) for line in fh]
    if len(records) != len(vectors):
        raise SystemExit(f"{data}: {len(records)} records but {len(vectors)} vectors")
    perm = np.random.default_rng(seed).permutation(len(records))
    held_out = np.sort(perm[:queries])
    rest = perm[queries:]
    if limit is not None:
        rest = rest[:limit]
    base_idx = np.sort(rest)
    return Dataset(
        records=[records[i] for i in base_idx],
        base=np.asarray(vectors[base_idx], dtype=np.float32),
        query_ids=[records[i]["id"] for i in held_out],
        queries=np.asarray(vectors[held_out], dtype=np.float32),
    )


@dataclass(frozen=True)
class FilterCase:
    """A metadata filter as each path takes it: the API's ``where``, a raw Milvus expression
    (what a hand-written client sends) and a mask over the base records (ground truth)."""

    label: str
    where: dict[str, Any] | None = None
    expr: str = ""
    field: str | None = None
    value: Any = None

    def mask(self, records: Sequence[dict[str, Any]]) -> np.ndarray:
        if self.field is None:
            return np.ones(len(records), dtype=bool)
        return np.array([r["metadata"].get(self.field) == self.value for r in records], dtype=bool)


def filter_case(spec: str) -> FilterCase:
    """``FIELD=VALUE`` (string fields; ``none`` for no filter)."""
    if spec == "none":
        return FilterCase("none")
    name, sep, value = spec.partition("=")
    if not sep or not name.isidentifier() or name not in {f.name for f in FIELDS}:
        raise argparse.ArgumentTypeError(f"filter must be FIELD=VALUE on a declared field: {spec}")
    literal = json.dumps(value)
    return FilterCase(
        label=f"{name} == {literal}",
        where={"field": name, "eq": value},
        expr=f"{name} == {literal}",
        field=name,
        value=value,
    )


def ground_truth(ds: Dataset, cases: Sequence[FilterCase], k: int) -> dict[str, list[set[str]]]:
    """Exact top-``k`` ids (cosine) of every query, per filter, over the matching base subset."""
    base = ds.base / np.linalg.norm(ds.base, axis=1, keepdims=True)
    queries = ds.queries / np.linalg.norm(ds.queries, axis=1, keepdims=True)
    sims = queries @ base.T
    ids = np.array(ds.ids, dtype=object)
    out: dict[str, list[set[str]]] = {}
    for case in cases:
        mask = case.mask(ds.records)
        sub, sub_ids = sims[:, mask], ids[mask]
        kk = min(k, sub.shape[1])
        top = np.argpartition(-sub, kk - 1, axis=1)[:, :kk] if kk else np.empty((len(sub), 0))
        out[case.label] = [set(sub_ids[row].tolist()) for row in top]
    return out


def recall(got: Sequence[Sequence[str]], truth: Sequence[set[str]], k: int) -> float:
    scores = [len(set(g[:k]) & t) / len(t) if t else 1.0 for g, t in zip(got, truth, strict=True)]
    return float(np.mean(scores))


# ------------------------------------------------------------------------------------------------
# Servers


@dataclass(frozen=True)
class LocalServer:
    """The managed default engine (``VECTORQL_MILVUS_URI=local:DIR``) as claimed here."""

    uri: str
    pid: int
    start_seconds: float
    token: str  # the managed server's login (user:password)


@contextlib.contextmanager
def milvus_server(kind: str, base_dir: Path) -> Iterator[Any]:
    """A Milvus that both processes reach over gRPC: ``milvus-lite server``, standalone 2.3, or
    (``local``) the managed default, which the API process then joins as ``local:DIR``."""
    from tests import servers

    if kind == "local":
        began = time.perf_counter()
        with local_engine(base_dir / "data") as engine:
            if engine.pid is None:
                raise RuntimeError(f"the default engine is not the standalone: {engine.reason}")
            began = time.perf_counter() - began
            yield LocalServer(engine.uri, engine.pid, began, engine.token or "")
        return
    if kind == "lite":
        handle: Any = servers.start_milvus_lite_server(base_dir / "milvus-lite")
    else:
        handle = servers.start_milvus_standalone(base_dir / "milvus-standalone")
    try:
        yield handle
    finally:
        handle.stop()


class ApiProcess:
    """``vectorql serve`` (uvicorn) in a child process on a free loopback port."""

    def __init__(
        self,
        *,
        work_dir: Path,
        milvus_uri: str,
        database_url: str,
        settings: Mapping[str, str] | None = None,
    ) -> None:
        """``settings``: more VECTORQL_* variables for the server (what a benchmark varies)."""
        from tests.servers import free_port

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = work_dir / "api.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("VECTORQL_")}
        env.update(
            VECTORQL_MILVUS_URI=milvus_uri,
            VECTORQL_DATABASE_URL=database_url,
            VECTORQL_RECONCILE_INTERVAL="0",
            VECTORQL_MILVUS_TIMEOUT="60",
            VECTORQL_LOG_LEVEL="WARNING",
            VECTORQL_AUTH="off",
            VECTORQL_RATE_LIMIT_PER_SECOND="0",
            VECTORQL_OTEL_EXPORTER="none",
            PYTHONUNBUFFERED="1",
            PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        )  # the API runs the same code tree as this benchmark (a worktree, say)
        env.update(settings or {})
        command = [sys.executable, "-m", "graph.cli", "serve", "--host", "127.0.0.1"]
        command += ["--port", str(self.port)]
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                command,
                cwd=work_dir,  # no .env of the developer's checkout
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    async def wait_ready(self, within: float = 90.0) -> None:
        deadline = time.monotonic() + within
        async with httpx.AsyncClient(base_url=self.url, timeout=5) as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"the API exited ({self.proc.returncode}):\n{self.tail()}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get("/readyz")).status_code == 200:
                        return
                await asyncio.sleep(0.2)
        raise RuntimeError(f"the API was not ready within {within:g}s:\n{self.tail()}")

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Profiler:
    """``py-spy record`` on a process (collapsed stacks), stopped with SIGINT; summarized.
    Samples only threads holding the interpreter lock (``--gil``): Python's CPU, not its waits
    (without it, py-spy counted the event loop's idle ``epoll`` as a third of a search)."""

    def __init__(self, out: Path, pid: int | None) -> None:
        self.out = out
        out.parent.mkdir(parents=True, exist_ok=True)
        exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        command = [exe, "record", "--pid", str(pid), "-o", str(out), "-f", "raw", "-r", "100"]
        self.proc = subprocess.Popen(
            [*command, "--nonblocking", "--threads", "--gil"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.out.exists():
            console.print(f"profile: {self.out}")
            console.print(summarize_profile(self.out), highlight=False)


def summarize_profile(path: Path, top: int = 15) -> str:
    """The frames with the most samples, self and inclusive, from py-spy's collapsed stacks."""
    own: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [f for f in stack.split(";") if not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        own[frames[-1]] = own.get(frames[-1], 0) + n
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + n
    if not total:
        return "  (no samples)"
    lines = [f"  {total} samples; self:"]
    for frame, n in sorted(own.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"    {n / total:6.1%}  {frame[:140]}")
    lines.append("  inclusive:")
    for frame, n in sorted(inclusive.items(), key=lambda kv: -kv[1])[: top * 2]:
        lines.append(f"    {n / total:6.1%}  {frame[:140]}")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------
# Loading


async def load(store: Store, ds: Dataset, *, kind: str) -> tuple[CollectionInfo, float]:
    """Create the collection and write every base record through ``Writer.upsert``."""
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
    columns = (TextColumn("load"), BarColumn(), TextColumn("{task.completed}/{task.total}"))
    with Progress(*columns, TimeElapsedColumn(), TimeRemainingColumn(), console=console) as bar:
        task = bar.add_task("load", total=len(ds.records))
        for batch in ds.batches(BATCH):
            outcome = await store.writer.upsert(info, batch)
            if outcome.errors:
                raise RuntimeError(f"load errors: {outcome.errors[:3]}")
            bar.advance(task, len(batch))
    await store.writer.flush(info)
    if kind in ("server", "local"):
        await wait_indexed(store, info, len(ds.records))
    return info, time.perf_counter() - start


async def wait_indexed(store: Store, info: CollectionInfo, rows: int, within: float = 900) -> None:
    """Milvus standalone builds indexes in the background: wait, then reload the collection so
    every sealed segment is searched through its HNSW index."""
    deadline = time.monotonic() + within
    while True:
        desc = (await store.vectors.describe(info.milvus_name))["index"]
        indexed = int(desc.get("indexed_rows", 0))
        pending = int(desc.get("pending_index_rows", 0))
        if indexed >= rows and pending == 0:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"index not built within {within:g}s: {desc}")
        await asyncio.sleep(1)

    def reload() -> None:  # through a client of the benchmark's own, on the same Milvus
        client = MilvusClient(uri=store.vectors.uri, token=store.config.milvus_token or "")
        try:
            client.release_collection(info.milvus_name)
            client.load_collection(info.milvus_name)
        finally:
            client.close()

    await asyncio.to_thread(reload)


# ------------------------------------------------------------------------------------------------
# The three paths


class Mode:
    key = ""
    title = ""

    def prepare(self, concurrency: int) -> None:
        """Called before each measurement."""

    async def search(self, qi: int, top_k: int, case: FilterCase) -> list[str]:
        raise NotImplementedError

    async def close(self) -> None:
        """Release connections."""


class RawMode(Mode):
    """(a) pymilvus + one SQL statement, synchronous: inline when serial, on a pool of one
    thread per client when concurrent."""

    key, title = "a", "raw pymilvus + SQL"

    def __init__(
        self,
        *,
        milvus_uri: str,
        milvus_token: str = "",
        sqlite_path: Path,
        info: CollectionInfo,
        ds: Dataset,
        filtered_ef: int = FILTERED_EF,
    ):
        from pymilvus import MilvusClient

        # No keepalive pings on an idle channel (see ``keep_channel_busy``).
        self.client = MilvusClient(
            uri=milvus_uri,
            token=milvus_token,
            timeout=60,
            dedicated=True,
            grpc_options={"grpc.keepalive_permit_without_calls": 0},
        )
        self.sqlite_path = sqlite_path
        self.mname = info.milvus_name
        self.metric = info.metric.value
        self.data = [q.tolist() for q in ds.queries]
        self.local = threading.local()
        self.pool: ThreadPoolExecutor | None = None
        self.inline = True
        self.filtered_ef = filtered_ef  # the store's default for this backend

    def prepare(self, concurrency: int) -> None:
        self.inline = concurrency == 1
        if not self.inline and (self.pool is None or self.pool._max_workers != concurrency):
            if self.pool is not None:
                self.pool.shutdown()
            self.pool = ThreadPoolExecutor(concurrency, thread_name_prefix="raw")

    def _sql(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self.local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.sqlite_path, timeout=30, check_same_thread=False)
            self.local.conn = conn
        return conn

    def blocking(self, qi: int, top_k: int, case: FilterCase) -> list[str]:
        result = self.client.search(
            self.mname,
            data=[self.data[qi]],
            filter=case.expr,
            limit=top_k,
            output_fields=["id"],  # Milvus Lite returns every field for []
            search_params={
                "metric_type": self.metric,
                "params": {
                    "ef": min(MAX_EF, max(self.filtered_ef if case.expr else DEFAULT_EF, top_k))
                },
            },
            consistency_level="Session",
            timeout=60,
        )
        ids = [str(h["id"]) for h in result[0]]
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        rows = (
            self._sql()
            .execute(
                "SELECT id, metadata, text FROM vq_record "
                f"WHERE collection = ? AND tenant = ? AND id IN ({marks})",
                [COLLECTION, tenant_key(None), *ids],  # the primary key's order
            )
            .fetchall()
        )
        found = {r[0]: (json.loads(r[1]), r[2]) for r in rows}
        return [i for i in ids if i in found]

    async def search(self, qi: int, top_k: int, case: FilterCase) -> list[str]:
        if self.inline:
            return self.blocking(qi, top_k, case)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.pool, self.blocking, qi, top_k, case)

    async def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()
        self.client.close()


def caller_arguments() -> dict[str, Any]:
    """The anonymous caller (auth off), for versions of the use case that take a principal."""
    if "principal" not in inspect.signature(store_search).parameters:
        return {}
    from resolvers.access import Principal

    return {"principal": Principal.anonymous()}


class StoreMode(Mode):
    """(b) the search use case on a ``Store``, a fresh ``Loaders`` per query."""

    key, title = "b", "store (resolvers.search)"

    def __init__(self, store: Store, ds: Dataset) -> None:
        self.store = store
        self.queries = [QueryVector(q) for q in ds.queries]
        self.limits = Limits()
        self.caller = caller_arguments()
        self.milvus_ms: list[float] = []
        self.sql_ms: list[float] = []

    def prepare(self, concurrency: int) -> None:
        self.milvus_ms.clear()
        self.sql_ms.clear()

    async def search(self, qi: int, top_k: int, case: FilterCase) -> list[str]:
        request = SearchRequest(
            collection=COLLECTION, vectors=[self.queries[qi]], top_k=top_k, where=case.where
        )
        [outcome] = await store_search(
            self.store, Loaders(self.store), request, limits=self.limits, **self.caller
        )
        self.milvus_ms.append(outcome.explain.milvus_ms)
        self.sql_ms.append(outcome.explain.sql_ms)
        return [h.id for h in outcome.hits]


class GraphqlMode(Mode):
    """(c) GraphQL over HTTP to the uvicorn process; vectors as base64 float32."""

    key, title = "c", "GraphQL over HTTP"

    def __init__(self, url: str, ds: Dataset) -> None:
        self.client = httpx.AsyncClient(
            base_url=url,
            timeout=60,
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=32),
        )
        self.vectors = [base64.b64encode(q.astype("<f4").tobytes()).decode() for q in ds.queries]

    async def search(self, qi: int, top_k: int, case: FilterCase) -> list[str]:
        variables = {"c": COLLECTION, "v": self.vectors[qi], "k": top_k, "w": case.where}
        response = await self.client.post(
            "/graphql", json={"query": GRAPHQL_SEARCH, "variables": variables}
        )
        body = response.json()
        if response.status_code != 200 or body.get("errors"):
            raise RuntimeError(f"GraphQL error ({response.status_code}): {body}")
        return [h["id"] for h in body["data"]["search"]["hits"] if h["record"] is not None]

    async def close(self) -> None:
        await self.client.aclose()


# ------------------------------------------------------------------------------------------------
# Measuring


@dataclass
class Measurement:
    milvus: str
    mode: str
    top_k: int
    concurrency: int
    filter: str
    queries: int
    p50_ms: float
    p99_ms: float
    mean_ms: float
    qps: float
    recall: float
    paired_delta_ms: float = 0.0  # median over queries of (this path - (a)) latency
    cpu_ms: dict[str, float] = field(default_factory=dict)  # CPU per query: bench, api, milvus
    load: float = 0.0  # 1-minute load average of the machine during the measurement
    breakdown: dict[str, float] = field(default_factory=dict)


def percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def process_cpu_seconds(pid: int | None) -> float:
    """User + system CPU time of a process (all its threads), from /proc; 0 if unknown."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# A process whose CPU is counted: a pid, or a function returning CPU seconds (a process tree, say).
CpuSource = int | None | Callable[[], float]


def cpu_snapshot(pids: dict[str, CpuSource]) -> dict[str, float]:
    snap = {
        name: pid() if callable(pid) else process_cpu_seconds(pid) for name, pid in pids.items()
    }
    snap["bench"] = time.process_time()
    return snap


async def wait_idle(
    pid: int | None, *, what: str, threshold: float = 0.05, limit: float = 1800.0
) -> float:
    """Wait until ``pid`` uses under ``threshold`` of a core over 5 s (Milvus compacts segments
    and builds their indexes in the background after a load: searches must not race with it)."""
    start = time.monotonic()
    while time.monotonic() - start < limit:
        before = process_cpu_seconds(pid)
        await asyncio.sleep(5)
        busy = (process_cpu_seconds(pid) - before) / 5
        if busy < threshold:
            return time.monotonic() - start
        console.print(f"  waiting for {what} to settle ({busy:.0%} of a core)", highlight=False)
    return time.monotonic() - start


async def keep_channel_busy(store: Store, every: float = 5.0) -> None:
    import logging

    logging.getLogger("pymilvus").setLevel(logging.CRITICAL)  # a slow ping is not news
    while True:
        await asyncio.sleep(every)
        with contextlib.suppress(Exception):
            await store.vectors.ping()


async def run_queries(
    mode: Mode, order: Sequence[int], top_k: int, case: FilterCase, concurrency: int
) -> tuple[dict[int, float], dict[int, list[str]], float]:
    """Run the queries of ``order`` with ``concurrency`` clients; latency (ms) and ids by
    position in ``order``, and the wall time (s)."""
    latencies: dict[int, float] = {}
    results: dict[int, list[str]] = {}
    pending = iter(enumerate(order))

    async def client() -> None:
        for pos, qi in pending:
            t0 = time.perf_counter()
            ids = await mode.search(qi, top_k, case)
            latencies[pos] = (time.perf_counter() - t0) * 1000
            results[pos] = ids

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    return latencies, results, time.perf_counter() - start


async def measure(
    milvus: str,
    modes: Sequence[Mode],
    *,
    top_k: int,
    concurrency: int,
    case: FilterCase,
    truth: Sequence[set[str]],
    warmup: int,
    repeat: int,
    pids: dict[str, CpuSource],
) -> list[Measurement]:
    """Measure every mode on the same queries, interleaved in blocks of ``5 * concurrency``
    queries (rotating which mode goes first), so that drifting background load on the machine
    lands on all of them alike. QPS is queries over the summed wall time of a mode's blocks.
    CPU time per query is counted for this process, the API process and Milvus."""
    n = len(truth)
    rng = np.random.default_rng(top_k * 31 + concurrency)
    warm = rng.integers(0, n, warmup).tolist()
    for mode in modes:
        mode.prepare(concurrency)
        await run_queries(mode, warm, top_k, case, concurrency)
        mode.prepare(concurrency)
    order = list(range(n)) * repeat
    size = 5 * concurrency
    latencies: dict[str, dict[int, float]] = {m.key: {} for m in modes}
    results: dict[str, dict[int, list[str]]] = {m.key: {} for m in modes}
    wall = dict.fromkeys(latencies, 0.0)
    cpu: dict[str, dict[str, float]] = {m.key: {} for m in modes}
    load_before = os.getloadavg()[0]
    for b, lo in enumerate(range(0, len(order), size)):
        block = order[lo : lo + size]
        first = b % len(modes)
        for mode in [*modes[first:], *modes[:first]]:
            before = cpu_snapshot(pids)
            lat, res, seconds = await run_queries(mode, block, top_k, case, concurrency)
            after = cpu_snapshot(pids)
            for name, value in after.items():
                cpu[mode.key][name] = cpu[mode.key].get(name, 0.0) + value - before[name]
            latencies[mode.key].update((lo + pos, ms) for pos, ms in lat.items())
            results[mode.key].update((order[lo + pos], ids) for pos, ids in res.items())
            wall[mode.key] += seconds
    load = (load_before + os.getloadavg()[0]) / 2
    out = []
    base = latencies[modes[0].key]
    for mode in modes:
        lat = latencies[mode.key]
        breakdown: dict[str, float] = {}
        if isinstance(mode, StoreMode):
            breakdown = {
                "milvus_p50_ms": statistics.median(mode.milvus_ms),
                "sql_p50_ms": statistics.median(mode.sql_ms),
            }
        got = [results[mode.key][i] for i in range(n)]
        values = list(lat.values())
        out.append(
            Measurement(
                milvus=milvus,
                mode=mode.key,
                top_k=top_k,
                concurrency=concurrency,
                filter=case.label,
                queries=len(values),
                p50_ms=percentile(values, 50),
                p99_ms=percentile(values, 99),
                mean_ms=float(np.mean(values)),
                qps=len(values) / wall[mode.key],
                recall=recall(got, truth, RECALL_AT),
                paired_delta_ms=statistics.median(lat[i] - base[i] for i in lat),
                cpu_ms={k: v * 1000 / len(values) for k, v in cpu[mode.key].items()},
                load=load,
                breakdown=breakdown,
            )
        )
    return out


async def ef_sweep(
    raw: RawMode,
    cases: Sequence[FilterCase],
    truth: dict[str, list[set[str]]],
    efs: Sequence[int],
) -> list[tuple[int, dict[str, float]]]:
    """Recall@10 of raw searches at each ef (topK 10), to find the smallest good default."""
    out = []
    for ef in efs:
        per_case: dict[str, float] = {}
        for case in cases:
            got = []
            for qi in range(len(raw.data)):
                result = raw.client.search(
                    raw.mname,
                    data=[raw.data[qi]],
                    filter=case.expr,
                    limit=RECALL_AT,
                    output_fields=["id"],  # Milvus Lite returns every field for []
                    search_params={"metric_type": raw.metric, "params": {"ef": ef}},
                    timeout=60,
                )
                got.append([str(h["id"]) for h in result[0]])
            per_case[case.label] = recall(got, truth[case.label], RECALL_AT)
        out.append((ef, per_case))
        console.print(
            f"  ef {ef:>4}: " + ", ".join(f"{k}: {v:.4f}" for k, v in per_case.items()),
            highlight=False,
        )
    return out


# ------------------------------------------------------------------------------------------------
# Report


def results_table(milvus: str, rows: Sequence[Measurement], titles: dict[str, str]) -> Table:
    table = Table(title=f"search on {milvus}", show_lines=False)
    columns = (
        "topK",
        "conc",
        "filter",
        "path",
        "p50 ms",
        "p99 ms",
        "QPS",
        "recall@10",
        "paired Δ ms",
        "CPU ms/query bench / api / milvus",
        "store milvus / sql p50 ms",
        "load",
    )
    for name in columns:
        table.add_column(name, justify="left" if name in ("filter", "path") else "right")
    previous: tuple[int, int, str] | None = None
    for m in rows:
        group = (m.top_k, m.concurrency, m.filter)
        if previous is not None and group != previous:
            table.add_section()
        previous = group
        extra = ""
        if m.breakdown:
            extra = f"{m.breakdown['milvus_p50_ms']:.2f} / {m.breakdown['sql_p50_ms']:.2f}"
        cpu = " / ".join(f"{m.cpu_ms.get(k, 0):.1f}" for k in ("bench", "api", "milvus"))
        table.add_row(
            str(m.top_k),
            str(m.concurrency),
            m.filter,
            f"({m.mode}) {titles[m.mode]}",
            f"{m.p50_ms:.2f}",
            f"{m.p99_ms:.2f}",
            f"{m.qps:.1f}",
            f"[red]{m.recall:.4f}[/]" if m.recall < TARGET_RECALL else f"{m.recall:.4f}",
            "" if m.mode == "a" else f"{m.paired_delta_ms:+.2f}",
            cpu,
            extra,
            f"{m.load:.1f}",
        )
    table.caption = (
        "paired Δ: median over queries of (this path - (a)) latency, the queries being run "
        "back to back; CPU: per query, of this process (client side of every path, plus the "
        "store for (b)), of the API process and of Milvus; load: 1-min load average"
    )
    return table


def ratio_table(milvus: str, rows: Sequence[Measurement]) -> tuple[Table, list[str]]:
    """Per (topK, concurrency, filter): what (b) and (c) add to (a) and their QPS ratios."""
    by = {(m.top_k, m.concurrency, m.filter, m.mode): m for m in rows}
    table = Table(title=f"vs (a) raw on {milvus}")
    columns = (
        "topK",
        "conc",
        "filter",
        "b-a p50 ms",
        "c-a p50 ms",
        "c-a paired ms",
        "b/a QPS",
        "c/a QPS",
        "API CPU ms/q",
    )
    for name in columns:
        table.add_column(name, justify="left" if name == "filter" else "right")
    misses: list[str] = []
    seen: list[tuple[int, int, str]] = []
    for m in rows:
        if (m.top_k, m.concurrency, m.filter) not in seen:
            seen.append((m.top_k, m.concurrency, m.filter))
    for top_k, conc, label in seen:
        a, b, c = (by.get((top_k, conc, label, k)) for k in "abc")
        if a is None or b is None or c is None:
            continue
        d_c = c.p50_ms - a.p50_ms
        r_c = c.qps / a.qps
        cells = [
            f"{b.p50_ms - a.p50_ms:+.2f}",
            f"{d_c:+.2f}",
            f"{c.paired_delta_ms:+.2f}",
            f"{b.qps / a.qps:.2f}",
            f"{r_c:.2f}",
            f"{c.cpu_ms.get('api', 0.0):.1f}",
        ]
        if top_k == 10 and conc == 1 and d_c > TARGET_P50_ADDED_MS:
            cells[1] = f"[red]{cells[1]}[/]"
            misses.append(
                f"{milvus}: (c) adds {d_c:.2f} ms to the p50 of (a) at topK 10, {label} "
                f"(paired median {c.paired_delta_ms:+.2f} ms)"
            )
        if conc == max(CONCURRENCY) and r_c < TARGET_QPS_RATIO:
            cells[4] = f"[red]{cells[4]}[/]"
            misses.append(
                f"{milvus}: (c)/(a) QPS {r_c:.2f} at concurrency {conc}, topK {top_k}, {label}"
            )
        table.add_row(str(top_k), str(conc), label, *cells)
    for m in rows:
        if m.recall < TARGET_RECALL:
            misses.append(
                f"{milvus}: recall@10 {m.recall:.4f} ({m.mode}, topK {m.top_k}, "
                f"conc {m.concurrency}, {m.filter})"
            )
    return table, misses


async def empty_request_cpu(url: str, pid: int | None, requests: int = 300) -> float:
    """API CPU (ms) of one ``{ __typename }`` request: HTTP plus an empty GraphQL operation, the
    least any request costs the API process."""
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        for _ in range(30):  # warm-up
            await client.post("/graphql", json={"query": "{ __typename }"})
        before = process_cpu_seconds(pid)
        for _ in range(requests):
            await client.post("/graphql", json={"query": "{ __typename }"})
        return (process_cpu_seconds(pid) - before) * 1000 / requests


def budget_table(milvus: str, rows: Sequence[Measurement], floor_ms: float) -> Table:
    """Where the QPS ratio at the highest concurrency comes from. There every path keeps the
    machine's cores busy, so QPS is about cores / CPU per query, and (c)/(a) about the ratio of
    their CPU per query (all processes). The API's budget is the CPU per search it may spend for
    (c) to reach ``TARGET_QPS_RATIO`` of (a), given what the benchmark client spends on a (c)
    query and Milvus on an (a) query (the same searches: Milvus's CPU per query is larger for (c)
    only because its background work is spread over fewer queries). Its floor is an empty request
    (``floor_ms``) plus what (a) spends in this process on the same Milvus call and SQL read."""
    by = {(m.top_k, m.concurrency, m.filter, m.mode): m for m in rows}
    conc = max(m.concurrency for m in rows)
    table = Table(title=f"CPU per query at {conc} clients on {milvus} (ms, all processes)")
    columns = (
        "topK",
        "filter",
        "(a) total",
        "(c) total",
        "cores busy a / c",
        "CPU a/c",
        "c/a QPS",
        f"API budget for {TARGET_QPS_RATIO}",
        "API floor",
        "API used",
    )
    for name in columns:
        table.add_column(name, justify="left" if name == "filter" else "right")
    for m in rows:
        if m.concurrency != conc or m.mode != "c":
            continue
        a = by.get((m.top_k, conc, m.filter, "a"))
        if a is None:
            continue
        total_a = sum(a.cpu_ms.values())
        total_c = sum(m.cpu_ms.values())
        budget = (
            total_a / TARGET_QPS_RATIO - m.cpu_ms.get("bench", 0.0) - a.cpu_ms.get("milvus", 0.0)
        )
        floor = floor_ms + a.cpu_ms.get("bench", 0.0)
        table.add_row(
            str(m.top_k),
            m.filter,
            f"{total_a:.1f}",
            f"{total_c:.1f}",
            f"{total_a * a.qps / 1000:.2f} / {total_c * m.qps / 1000:.2f}",
            f"{total_a / total_c:.2f}",
            f"{m.qps / a.qps:.2f}",
            f"{budget:.1f}",
            f"{floor:.1f}",
            f"{m.cpu_ms.get('api', 0.0):.1f}",
        )
    table.caption = (
        f"API floor: an empty request ({floor_ms:.1f} ms) plus (a)'s client-side CPU, the same "
        "pymilvus call and SQL read; a budget below the floor cannot be met by any API on this "
        "machine's cores"
    )
    return table


# ------------------------------------------------------------------------------------------------
# Main


async def bench_one(
    kind: str, ds: Dataset, cases: Sequence[FilterCase], args: argparse.Namespace, root: Path
) -> dict[str, Any]:
    label = {
        "lite": "Milvus Lite server",
        "server": "Milvus 2.3 standalone",
        "local": "the default (managed Milvus 2.3 standalone)",
    }[kind]
    work = root / kind
    work.mkdir(parents=True)
    sqlite_path = work / "vectorql.db"
    database_url = f"sqlite+aiosqlite:///{sqlite_path}"
    truth = ground_truth(ds, cases, RECALL_AT)
    console.rule(f"{label}: {len(ds.records)} records, {len(ds.queries)} queries")
    with milvus_server(kind, work) as server:
        t0 = time.perf_counter()
        console.print(f"Milvus at {server.uri} (started in {server.start_seconds:.1f} s)")
        # Flushing builds a segment's HNSW index: more than the default 10 s on a busy machine.
        config = StoreConfig(
            milvus_uri=server.uri,
            milvus_token=server.token or None,
            database_url=database_url,
            milvus_timeout=600,
        )
        store = await Store.open(config)
        caps = store.vectors.capabilities
        console.print(f"connected: {caps.server} {caps.version}")
        api: ApiProcess | None = None
        profilers: list[Profiler] = []
        keepalive: asyncio.Task[None] | None = None
        modes: list[Mode] = []
        try:
            info, load_s = await load(store, ds, kind=kind)
            console.print(
                f"loaded {len(ds.records)} records in {load_s:.1f} s "
                f"({len(ds.records) / load_s:.0f} rows/s); index {info.index.params}"
            )
            # pymilvus pings every 10 s even when idle; milvus-lite's gRPC server answers an idle
            # client with GOAWAY "too_many_pings" after a minute or so: keep the store's channel
            # busy while nothing else uses it.
            keepalive = asyncio.create_task(keep_channel_busy(store))
            raw = RawMode(
                milvus_uri=server.uri,
                milvus_token=server.token,
                sqlite_path=sqlite_path,
                info=info,
                ds=ds,
                filtered_ef=store.vectors.capabilities.filtered_ef,
            )
            modes = [raw]
            # Milvus standalone never idles (time ticks, etcd): only wait out index building.
            threshold = 0.05 if kind == "lite" else 0.5
            settled = await wait_idle(server.pid, what="Milvus", threshold=threshold)
            console.print(f"Milvus settled after {settled:.0f} s")
            for case in cases:
                if case.where is not None:
                    expr = _store_expression(info, case)
                    console.print(f"filter {case.label}: the store sends {expr!r}", highlight=False)
            if args.ef_sweep:
                console.print("ef sweep (raw search, topK 10):")
                sweep = await ef_sweep(raw, cases, truth, args.ef_sweep)
            else:
                sweep = []
            api_milvus = f"local:{work / 'data'}" if kind == "local" else server.uri
            api = ApiProcess(work_dir=work, milvus_uri=api_milvus, database_url=database_url)
            await api.wait_ready()
            console.print(f"API at {api.url} (pid {api.proc.pid})")
            pids = {"api": api.proc.pid, "milvus": server.pid}
            modes = [raw, StoreMode(store, ds), GraphqlMode(api.url, ds)]
            keepalive.cancel()  # from here on every channel is in use
            rows: list[Measurement] = []
            if args.py_spy:
                profilers = [
                    Profiler(args.py_spy / f"{kind}-api.txt", api.proc.pid),
                    Profiler(args.py_spy / f"{kind}-milvus.txt", server.pid),
                    Profiler(args.py_spy / f"{kind}-bench.txt", os.getpid()),
                ]
            for top_k in args.top_k:
                for conc in args.concurrency:
                    for case in cases:
                        nq = len(ds.queries) if case.where is None else args.filter_queries
                        group = await measure(
                            kind,
                            modes,
                            top_k=top_k,
                            concurrency=conc,
                            case=case,
                            truth=truth[case.label][:nq],
                            warmup=min(args.warmup, nq),
                            repeat=args.repeat,
                            pids=pids,
                        )
                        rows.extend(group)
                        for m in group:
                            console.print(
                                f"  topK {top_k:>3} conc {conc} {case.label:<22} ({m.mode}) "
                                f"p50 {m.p50_ms:7.2f} ms  p99 {m.p99_ms:7.2f} ms  "
                                f"{m.qps:7.1f} QPS  recall {m.recall:.4f}  "
                                f"paired {m.paired_delta_ms:+7.2f} ms  cpu/q "
                                + " ".join(f"{k} {v:.1f}" for k, v in m.cpu_ms.items())
                                + f"  load {m.load:.1f}",
                                highlight=False,
                            )
            floor_ms = await empty_request_cpu(api.url, api.proc.pid)
            console.print(f"API CPU of an empty request: {floor_ms:.2f} ms")
        finally:
            if keepalive is not None:
                keepalive.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await keepalive
            for profiler in profilers:
                profiler.stop()
            for mode in modes:
                await mode.close()
            if api is not None:
                api.stop()
            await store.close()
    titles = {m.key: m.title for m in modes}
    console.print(results_table(label, rows, titles))
    table, misses = ratio_table(label, rows)
    console.print(table)
    console.print(budget_table(label, rows, floor_ms))
    store_expr = {c.label: _store_expression(info, c) for c in cases if c.where}
    return {
        "milvus": kind,
        "server": f"{caps.server} {caps.version}",
        "records": len(ds.records),
        "queries": len(ds.queries),
        "load_seconds": load_s,
        "index": info.index.params,
        "default_ef": DEFAULT_EF,
        "store_filter_expressions": store_expr,
        "ef_sweep": [{"ef": ef, "recall": r} for ef, r in sweep],
        "measurements": [asdict(m) for m in rows],
        "empty_request_api_cpu_ms": floor_ms,
        "misses": misses,
        "seconds": time.perf_counter() - t0,
    }


def _store_expression(info: CollectionInfo, case: FilterCase) -> str:
    from store.filters import parse_filter
    from store.search import expression

    assert case.where is not None
    limits = Limits()
    parsed = parse_filter(
        case.where,
        fields=info.fields,
        max_depth=limits.max_filter_depth,
        max_list=limits.max_filter_list,
    )
    return expression(info, parsed, tenant=None)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tests.bench.search", description=__doc__)
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="dataset directory")
    p.add_argument("--limit", type=int, default=None, help="load only N records (quick runs)")
    p.add_argument("--queries", type=int, default=200, help="held-out query records")
    p.add_argument(
        "--milvus",
        choices=("lite", "server", "local", "both"),
        default="lite",
        help="local: the managed default engine, joined by the API process as local:DIR",
    )
    p.add_argument(
        "--filter",
        dest="filters",
        type=filter_case,
        action="append",
        help="FIELD=VALUE on a STRING field, e.g. arch=all (repeatable; default section=libs)",
    )
    p.add_argument("--concurrency", type=int, nargs="+", default=list(CONCURRENCY), help="clients")
    p.add_argument("--top-k", type=int, nargs="+", default=list(TOP_KS), help="topK values")
    p.add_argument("--warmup", type=int, default=30, help="warm-up queries per measurement")
    p.add_argument("--repeat", type=int, default=1, help="passes over the queries")
    p.add_argument(
        "--filter-queries",
        type=int,
        default=None,
        help="queries for the filtered cases (default: all); filters that make Milvus Lite "
        "evaluate rows in Python take seconds per search",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--ef-sweep",
        type=lambda s: [int(x) for x in s.split(",")],
        nargs="?",
        const=[32, 64, 128, 256, 512],
        default=[],
        help="also print raw recall@10 for these ef values (default list if no value)",
    )
    p.add_argument("--json", type=Path, help="write the results here")
    p.add_argument(
        "--py-spy",
        type=Path,
        metavar="DIR",
        help="profile the API, Milvus and this process with py-spy during the measurements",
    )
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = p.parse_args(argv)
    if args.filter_queries is None or args.filter_queries > args.queries:
        args.filter_queries = args.queries
    if not args.filters:
        args.filters = [filter_case(s) for s in ("none", "section=libs")]
    elif all(c.field is not None for c in args.filters):
        args.filters.insert(0, filter_case("none"))
    return args


async def amain(args: argparse.Namespace) -> int:
    if not (args.data / "vectors.f16.npy").exists():
        console.print(f"[red]dataset not found in {args.data}[/]")
        return 2
    t = time.perf_counter()
    ds = load_dataset(args.data, limit=args.limit, queries=args.queries, seed=args.seed)
    console.print(
        f"dataset: {len(ds.records)} base records + {len(ds.queries)} queries, "
        f"dimension {ds.base.shape[1]} ({time.perf_counter() - t:.1f} s)"
    )
    kinds = ["lite", "server"] if args.milvus == "both" else [args.milvus]
    root = Path(tempfile.mkdtemp(prefix="vectorql-bench-search-"))
    reports = []
    try:
        for kind in kinds:
            reports.append(await bench_one(kind, ds, args.filters, args, root))
    finally:
        if args.keep:
            console.print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    misses = [m for r in reports for m in r["misses"]]
    console.rule("targets")
    console.print(
        f"recall@10 >= {TARGET_RECALL}; (c) p50 - (a) p50 <= {TARGET_P50_ADDED_MS} ms at topK 10; "
        f"(c)/(a) QPS >= {TARGET_QPS_RATIO} at concurrency 8"
    )
    for line in misses:
        console.print(f"[red]MISSED[/] {line}", highlight=False)
    if not misses:
        console.print("[green]all targets met[/]")
    if args.json:
        args.json.write_text(json.dumps(reports, indent=1, default=str))
        console.print(f"results written to {args.json}")
    return 1 if misses else 0


def main(argv: Sequence[str] | None = None) -> int:
    return asyncio.run(amain(parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
