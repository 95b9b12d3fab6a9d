"""Text-in benchmark (issue 20): ``python -m tests.bench.embed`` (``make bench-embed``).

Side by side in one run, over real HTTP to ``vectorql serve`` (uvicorn, its own process, a Milvus
Lite file, or with ``--milvus local`` the managed standalone that ``make run`` serves, and a SQLite
file in a fresh temporary directory, the packaged all-MiniLM-L6-v2 on CPU):

- ingest: ``upsertRecords`` of ``--records`` debian-packages records (batches of ``--batch``) into
  a collection of the model, once text-only (the server embeds) and once with the dataset's
  precomputed vectors (base64 float32): records/s of each;
- latency: search by text (``search(text:)``) against search by vector (the same query's
  precomputed vector), serially, topK 10, p50; and the model's own single-query time
  (``SentenceTransformer.encode`` of one text in this process), p50. Target: text p50 - vector p50
  <= 1.5 x the model's single-query time. The model's mean time per call inside the server
  (from its ``/metrics``) splits that extra into the model and the rest;
- throughput: QPS of search by text from ``--clients`` concurrent clients with micro-batching on
  (``VECTORQL_EMBED_BATCH_WINDOW_MS`` at its default) and off (0), each in its own server process.
  Target: on >= 2 x off. Beside it, the model's own gain: ``--clients`` single encodes against
  one encode of that many texts, in this process (the ceiling of the server's gain).

Every query text is distinct within a server (held-out records' texts), so the query LRU never
answers: the model runs for every search.

Examples::

    python -m tests.bench.embed                   # 5,000 records, a few minutes
    python -m tests.bench.embed --records 20000
    python -m tests.bench.embed --milvus local    # on the default engine
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gzip
import importlib
import json
import os
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from store.embedding.spec import DEFAULT_MODEL, DEFAULT_PACKAGE
from tests.bench.search import DEFAULT_DATA, ApiProcess, Dataset, load_dataset, wait_idle

CREATE = """
mutation($i: CreateCollectionInput!) { createCollection(input: $i) { name dimension } }
"""
UPSERT = """
mutation($c: String!, $r: [RecordInput!]!) {
  upsertRecords(collection: $c, records: $r) { upserted errors { index code message } }
}
"""
SEARCH_TEXT = """
query($c: String!, $q: String!) {
  search(collection: $c, text: $q, topK: 10) { hits { id score } }
}
"""
SEARCH_VECTOR = """
query($c: String!, $v: Vector!) {
  search(collection: $c, vector: $v, topK: 10) { hits { id score } }
}
"""


def start(work_dir: Path, window_ms: float | None, milvus: str) -> ApiProcess:
    """``vectorql serve`` as ``ApiProcess`` starts it, plus the batching window under test.
    ``milvus``: ``lite`` (a Milvus Lite file in the API process) or ``local`` (the managed
    standalone, started and stopped by the API process, as ``make run`` serves)."""
    work_dir.mkdir(parents=True)
    settings = {}
    if window_ms is not None:
        settings["VECTORQL_EMBED_BATCH_WINDOW_MS"] = f"{window_ms:g}"
    uri = str(work_dir / "milvus.db") if milvus == "lite" else f"local:{work_dir / 'data'}"
    return ApiProcess(
        work_dir=work_dir,
        milvus_uri=uri,
        database_url=f"sqlite+aiosqlite:///{work_dir / 'vectorql.db'}",
        settings=settings,
    )


def b64(v: np.ndarray) -> str:
    return base64.b64encode(np.asarray(v, dtype="<f4").tobytes()).decode()


async def gql(client: httpx.AsyncClient, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    response = await client.post("/graphql", json={"query": query, "variables": variables})
    body = response.json()
    if body.get("errors"):
        raise RuntimeError(f"{body['errors']}")
    return body["data"]  # type: ignore[no-any-return]


async def ingest(
    client: httpx.AsyncClient, name: str, ds: Dataset, *, vectors: bool, batch: int
) -> float:
    """Records/s of upsertRecords into a fresh collection of the model."""
    await gql(client, CREATE, {"i": {"name": name, "model": {"name": DEFAULT_MODEL}}})
    started = time.perf_counter()
    for at in range(0, len(ds.records), batch):
        rows = []
        for i in range(at, min(at + batch, len(ds.records))):
            record = ds.records[i]
            row = {"id": record["id"], "text": record["text"], "metadata": record["metadata"]}
            if vectors:
                row["vector"] = b64(ds.base[i])
            rows.append(row)
        result = await gql(client, UPSERT, {"c": name, "r": rows})
        if result["upsertRecords"]["errors"]:
            raise RuntimeError(result["upsertRecords"]["errors"][:3])
    return len(ds.records) / (time.perf_counter() - started)


def engine_pid(api: ApiProcess) -> int | None:
    """The managed standalone's process, when the API process started one (``--milvus local``):
    it compacts and indexes after a load, and the serial searches must not race with that."""
    for state in api.log.parent.rglob("server.json"):
        return int(json.loads(state.read_text())["pid"])
    return None


async def settle(api: ApiProcess) -> None:
    """Wait until the API process (Milvus Lite indexes in it) and the engine are idle."""
    await wait_idle(api.proc.pid, what="the API (index builds)", threshold=0.1)
    pid = engine_pid(api)
    if pid is not None:
        await wait_idle(pid, what="the managed Milvus (compaction, index builds)", threshold=0.1)


async def model_seconds(client: httpx.AsyncClient) -> tuple[float, int]:
    """(seconds, calls) of query-text model calls so far, from the server's ``/metrics``: the
    model's own time inside the server, to split a text search's extra time."""
    total, calls = 0.0, 0
    for line in (await client.get("/metrics")).text.splitlines():
        if line.startswith("vectorql_embedding_duration_seconds") and 'kind="query"' in line:
            name, value = line.split("{", 1)[0], float(line.rsplit(" ", 1)[1])
            if name.endswith("_sum"):
                total += value
            elif name.endswith("_count"):
                calls += int(value)
    return total, calls


async def serial_ms(
    client: httpx.AsyncClient, query: str, variables: list[dict[str, Any]]
) -> float:
    times = []
    for v in variables:
        started = time.perf_counter()
        await gql(client, query, v)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


async def qps(api: ApiProcess, collection: str, texts: Sequence[str], clients: int) -> float:
    """Search-by-text requests/s from ``clients`` concurrent clients, each with its connection."""
    pending = list(texts)

    async def client_loop() -> int:
        done = 0
        async with httpx.AsyncClient(base_url=api.url, timeout=120) as client:
            while pending:
                await gql(client, SEARCH_TEXT, {"c": collection, "q": pending.pop()})
                done += 1
        return done

    started = time.perf_counter()
    done = sum(await asyncio.gather(*(client_loop() for _ in range(clients))))
    return done / (time.perf_counter() - started)


def model_ms(texts: Sequence[str], batch: int) -> tuple[float, float]:
    """p50 of the model's own encode, in this process: of one text, and of ``batch`` texts in
    one call. ``batch`` singles over one call of ``batch`` is the most batching can gain."""
    from sentence_transformers import SentenceTransformer

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    path = importlib.import_module(DEFAULT_PACKAGE).get_model_path()
    model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
    model.encode(["warm up"], normalize_embeddings=True)

    def p50(groups: Sequence[Sequence[str]]) -> float:
        times = []
        for group in groups:
            started = time.perf_counter()
            model.encode(list(group), normalize_embeddings=True, show_progress_bar=False)
            times.append((time.perf_counter() - started) * 1000)
        return statistics.median(times)

    single = p50([[t] for t in texts])
    together = p50([texts[i : i + batch] for i in range(0, len(texts) - batch + 1, batch)])
    return single, together


async def main_async(args: argparse.Namespace) -> None:
    ds = load_dataset(args.data, limit=args.records, queries=args.queries * 5, seed=args.seed)
    # Held-out texts: distinct, and absent from the collection (the query LRU never answers).
    by_id: dict[str, str] = {}
    wanted = set(ds.query_ids)
    with gzip.open(args.data / "records.jsonl.gz", "rt") as fh:
        for line in fh:
            record = json.loads(line)
            if record["id"] in wanted:
                by_id[record["id"]] = record["text"]
    texts = [by_id[i] for i in ds.query_ids]
    n = args.queries
    serial_texts, on_texts, off_texts = texts[:n], texts[n : 3 * n], texts[3 * n : 5 * n]
    load = os.getloadavg()
    print(
        f"{len(ds.records)} records, {n} serial queries, {args.clients} clients, "
        f"milvus {args.milvus}; load {load}"
    )

    single, together = model_ms(serial_texts, args.clients)
    print(
        f"model encode p50: one text {single:.2f} ms, {args.clients} texts in one call "
        f"{together:.2f} ms"
    )

    with tempfile.TemporaryDirectory(prefix="bench-embed-") as tmp:
        on = start(Path(tmp) / "on", None, args.milvus)
        try:
            await on.wait_ready(within=180)
            async with httpx.AsyncClient(base_url=on.url, timeout=300) as client:
                text_rps = await ingest(client, "text_only", ds, vectors=False, batch=args.batch)
                print(f"ingest text-only: {text_rps:.0f} records/s")
                vector_rps = await ingest(client, "vectors", ds, vectors=True, batch=args.batch)
                print(f"ingest with vectors: {vector_rps:.0f} records/s")
                await settle(on)
                # Warm both paths (first-request costs), then measure.
                await gql(client, SEARCH_TEXT, {"c": "vectors", "q": "warm up"})
                await gql(client, SEARCH_VECTOR, {"c": "vectors", "v": b64(ds.queries[0])})
                model_before = await model_seconds(client)
                text_ms = await serial_ms(
                    client, SEARCH_TEXT, [{"c": "vectors", "q": t} for t in serial_texts]
                )
                model_after = await model_seconds(client)
                in_server = (model_after[0] - model_before[0]) * 1000
                in_server /= max(1, model_after[1] - model_before[1])
                vector_ms = await serial_ms(
                    client,
                    SEARCH_VECTOR,
                    [{"c": "vectors", "v": b64(v)} for v in ds.queries[:n]],
                )
            qps_on = await qps(on, "vectors", on_texts, args.clients)
        finally:
            on.stop()
        off = start(Path(tmp) / "off", 0, args.milvus)
        try:
            await off.wait_ready(within=180)
            async with httpx.AsyncClient(base_url=off.url, timeout=300) as client:
                await ingest(client, "vectors", ds, vectors=True, batch=args.batch)
                await settle(off)
                await gql(client, SEARCH_TEXT, {"c": "vectors", "q": "warm up"})
                text_off_ms = await serial_ms(
                    client, SEARCH_TEXT, [{"c": "vectors", "q": t} for t in serial_texts]
                )
            qps_off = await qps(off, "vectors", off_texts, args.clients)
        finally:
            off.stop()

    extra = text_ms - vector_ms
    print()
    print(f"ingest records/s: text-only {text_rps:.0f}, with vectors {vector_rps:.0f}")
    print(f"search p50: by text {text_ms:.2f} ms, by vector {vector_ms:.2f} ms")
    print(
        f"text costs {extra:.2f} ms on top of a vector search = {extra / single:.2f} x the "
        f"model's single-query {single:.2f} ms (target <= 1.5)"
    )
    print(
        f"the model's call inside the server during those searches: {in_server:.2f} ms (mean); "
        f"the rest of the extra: {extra - in_server:.2f} ms"
    )
    print(
        f"without the batching window: by text {text_off_ms:.2f} ms, "
        f"{(text_off_ms - vector_ms) / single:.2f} x the model's single query"
    )
    print(
        f"search by text at {args.clients} clients: batching on {qps_on:.1f} QPS, off "
        f"{qps_off:.1f} QPS = {qps_on / qps_off:.2f} x (target >= 2)"
    )
    print(
        f"the model alone: {args.clients} single calls against one call of {args.clients} texts "
        f"= {single * args.clients / together:.2f} x, the most batching can gain here"
    )
    print(f"load average at the end: {os.getloadavg()}")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--records", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--queries", type=int, default=100, help="serial queries per path")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seed", type=int, default=20)
    parser.add_argument(
        "--milvus",
        choices=("lite", "local"),
        default="lite",
        help="lite: Milvus Lite in the API process; local: the managed default engine",
    )
    args = parser.parse_args(argv)
    if args.queries < args.clients:
        parser.error("--queries must be at least --clients (the model's batch of that many)")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    asyncio.run(main_async(parse_args(argv)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
