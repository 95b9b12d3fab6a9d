"""Tracing overhead on a search: the app with tracing on (every span recorded and handed to an
in-memory exporter as it ends) against the default app (exporter ``none``: spans not recorded),
side by side in one run.

``python -m tests.bench.tracing``. Both apps run in this process over the same Milvus Lite file and
the same SQLite file (a few thousand random records, HNSW, flushed), and serve GraphQL through
httpx's ASGI transport (no network). Requests alternate between the two apps in a random order, so
drift (caches, compaction, the machine) lands on both. Prints the p50/p90/p99 of each and the p50
ratio, per topK, of the wall-clock latency and of the CPU time this process spent on the request
(the API's own work, tracing included, without Milvus Lite's server process; steadier than wall
time on a busy machine). Target (issue 7): tracing on within 10% of off at the p50.

Examples::

    python -m tests.bench.tracing
    python -m tests.bench.tracing --records 5000 --queries 1000 --top-k 10 100
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from fastapi import FastAPI
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from graph.app import create_app
from graph.settings import Settings
from graph.telemetry import Telemetry

COLLECTION = "bench_tracing"
SEARCH = """
query($c: String!, $v: Vector!, $k: Int!) {
  search(collection: $c, vector: $v, topK: $k) { hits { id score record { id metadata } } }
}
"""


@contextlib.asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            yield client


async def post(client: httpx.AsyncClient, query: str, variables: dict[str, Any]) -> Any:
    response = await client.post("/graphql", json={"query": query, "variables": variables})
    body = response.json()
    if body.get("errors"):
        raise SystemExit(f"request failed: {body['errors']}")
    return body["data"]


async def load(client: httpx.AsyncClient, *, records: int, dim: int, seed: int) -> None:
    await post(
        client,
        "mutation($i: CreateCollectionInput!) { createCollection(input: $i) { name } }",
        {"i": {"name": COLLECTION, "dimension": dim, "fields": [{"name": "n", "type": "INT"}]}},
    )
    rng = np.random.default_rng(seed)
    for start in range(0, records, 500):
        batch = [
            {"id": f"r{i}", "vector": rng.normal(size=dim).tolist(), "metadata": {"n": i}}
            for i in range(start, min(records, start + 500))
        ]
        await post(
            client,
            "mutation($c: String!, $r: [RecordInput!]!) "
            "{ upsertRecords(collection: $c, records: $r) { upserted } }",
            {"c": COLLECTION, "r": batch},
        )


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


async def measure(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="vectorql-bench-tracing-") as tmp:
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            milvus_uri=str(Path(tmp) / "milvus.db"),
            database_url=f"sqlite+aiosqlite:///{Path(tmp) / 'vectorql.db'}",
            reconcile_interval=0,
            flush_threshold=1000,  # sealed segments: the indexed search path
            log_level="WARNING",
        )
        exporter = InMemorySpanExporter()
        traced = Telemetry.from_settings(settings, span_exporter=exporter)
        async with (
            serving(create_app(settings)) as off,
            serving(create_app(settings, telemetry=traced)) as on,
        ):
            started = time.perf_counter()
            await load(off, records=args.records, dim=args.dim, seed=args.seed)
            print(
                f"{args.records} records, dimension {args.dim}, loaded in "
                f"{time.perf_counter() - started:.1f} s; {args.queries} searches per app and topK"
            )
            rng = np.random.default_rng(args.seed + 1)
            queries = [rng.normal(size=args.dim).tolist() for _ in range(args.queries)]
            clients = {"off": off, "on": on}
            order = random.Random(args.seed)
            worst = 0.0
            for k in args.top_k:
                for q in queries[: args.warmup]:  # warm both apps, caches and Milvus
                    for client in clients.values():
                        await post(client, SEARCH, {"c": COLLECTION, "v": q, "k": k})
                times: dict[str, list[float]] = {"off": [], "on": []}
                cpu: dict[str, list[float]] = {"off": [], "on": []}
                exporter.clear()
                spans = 0
                for q in queries:
                    sides = list(clients)
                    order.shuffle(sides)
                    for side in sides:
                        t0, c0 = time.perf_counter(), time.process_time()
                        await post(clients[side], SEARCH, {"c": COLLECTION, "v": q, "k": k})
                        times[side].append((time.perf_counter() - t0) * 1000)
                        cpu[side].append((time.process_time() - c0) * 1000)
                    spans += len(exporter.get_finished_spans())
                    exporter.clear()  # constant memory, as a batch exporter would keep it
                print(f"\ntopK {k}: {spans / len(queries):.1f} spans per traced search")
                for what, samples in (("wall ms", times), ("CPU ms", cpu)):
                    p50 = {s: statistics.median(t) for s, t in samples.items()}
                    ratio = p50["on"] / p50["off"]
                    if what == "wall ms":
                        worst = max(worst, ratio)
                    print(f"  {what:14}{'p50':>10}{'p90':>10}{'p99':>10}")
                    for side, label in (("off", "tracing off"), ("on", "tracing on")):
                        t = samples[side]
                        print(
                            f"  {label:14}{p50[side]:10.3f}{percentile(t, 90):10.3f}"
                            f"{percentile(t, 99):10.3f}"
                        )
                    print(f"  p50 on/off: {ratio:.3f} ({(ratio - 1) * 100:+.1f}%)")
            traced.shutdown()
    target = 1.10
    verdict = "within" if worst <= target else "OVER"
    print(f"\nworst wall-clock p50 ratio {worst:.3f}: {verdict} the {target:.2f} target")
    return 0 if worst <= target else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=3000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--queries", type=int, default=400)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--top-k", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--seed", type=int, default=7)
    raise SystemExit(asyncio.run(measure(parser.parse_args())))


if __name__ == "__main__":
    main()
