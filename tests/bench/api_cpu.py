"""Where the API's CPU goes: CPU time of the API process per request, by kind of request.

``python -m tests.bench.api_cpu`` (``make bench-api-cpu``). A real ``vectorql serve`` (uvicorn, its
own process) over a ``milvus-lite server`` (another process, so Milvus's work is not counted) and
a SQLite file, loaded with the first records of the debian-packages dataset through
``upsertRecords``. Requests are sent one at a time over keep-alive HTTP; for each kind, the CPU
time the API process spent (user + system, all threads, from ``/proc``) is divided by the number
of requests. Kinds run in turn for several rounds, so drift lands on all of them; the table gives
the median over rounds. An empty ``{ __typename }`` request is the floor of HTTP plus GraphQL;
the differences between the search kinds show what the hits, their records and topK cost.

Examples::

    python -m tests.bench.api_cpu
    python -m tests.bench.api_cpu --requests 1000 --rounds 5
    python -m tests.bench.api_cpu --py-spy profiles/   # one py-spy profile per kind
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from graph.schema.typed import root_field
from tests.bench.ingest import (
    COLLECTION,
    CREATE,
    DEFAULT_DATA,
    UPSERT,
    b64,
    cpu_seconds,
    graphql_collection_input,
    load_dataset,
    record_inputs,
)
from tests.bench.search import ApiProcess, Profiler

SEARCH = """
query($c: String!, $v: Vector!, $k: Int!) {
  search(collection: $c, vector: $v, topK: $k) { hits { id score%s } }
}
"""
# The same search through the collection's typed field (issue 21), two ways. With every declared
# field and extra (the undeclared keys), a hit carries the same data as the generic
# `record { id metadata text }`, in 12 fields where the generic has 3. With `record { id extra
# text }`, the typed answer has the generic one's shape (3 fields, one JSON value; here extra is
# {} as every key is declared): the cost of the typed path itself, at equal field count.
TYPED_SEARCH = """
query($v: Vector!, $k: Int!) {
  %s { search(vector: $v, topK: $k) { hits { id score record { %s } } } }
}
"""
EVERY_FIELD = (
    "id section priority arch installed_size size has_homepage tags version maintainer extra text"
)
RECORD = """
query($c: String!, $id: ID!) { record(collection: $c, id: $id) { id metadata text } }
"""

console = Console()


@dataclass(frozen=True)
class Kind:
    name: str
    query: str
    variables: Callable[[int], dict[str, Any]]


def kinds(queries: Sequence[str], ids: Sequence[str]) -> list[Kind]:
    def search(k: int) -> Callable[[int], dict[str, Any]]:
        return lambda i: {"c": COLLECTION, "v": queries[i % len(queries)], "k": k}

    def typed_10(i: int) -> dict[str, Any]:
        return {"v": queries[i % len(queries)], "k": 10}

    with_record = SEARCH % " record { id metadata text }"
    typed = TYPED_SEARCH.replace("%s", root_field(COLLECTION), 1)
    return [
        Kind("{ __typename }", "{ __typename }", lambda i: {}),
        Kind("record(id)", RECORD, lambda i: {"c": COLLECTION, "id": ids[i % len(ids)]}),
        Kind("search topK 10: id score", SEARCH % "", search(10)),
        Kind("search topK 10: + record", with_record, search(10)),
        Kind("typed search topK 10: + record { id extra text }", typed % "id extra text", typed_10),
        Kind("typed search topK 10: + record, every field", typed % EVERY_FIELD, typed_10),
        Kind("search topK 100: + record", with_record, search(100)),
    ]


async def measure(
    client: httpx.AsyncClient, api: ApiProcess, kind: Kind, requests: int, spy: Path | None
) -> tuple[float, float]:
    """(API CPU ms per request, p50 latency ms) of ``requests`` requests of ``kind``."""

    async def post(i: int) -> None:
        response = await client.post(
            "/graphql", json={"query": kind.query, "variables": kind.variables(i)}
        )
        body = response.json()
        if body.get("errors"):
            raise RuntimeError(f"{kind.name}: {body['errors']}")

    for i in range(min(50, requests)):  # warm-up
        await post(i)
    slug = re.sub(r"[^a-z0-9]+", "-", kind.name.lower()).strip("-")
    profiler = Profiler(spy / f"{slug}.txt", api.proc.pid) if spy else None
    latencies = []
    cpu = cpu_seconds(api.proc.pid)
    for i in range(requests):
        start = time.perf_counter()
        await post(i)
        latencies.append(time.perf_counter() - start)
    cpu = cpu_seconds(api.proc.pid) - cpu
    if profiler is not None:
        profiler.stop()
    return cpu * 1000 / requests, statistics.median(latencies) * 1000


async def amain(args: argparse.Namespace) -> int:
    from tests.servers import start_milvus_lite_server

    ds = load_dataset(args.data, limit=args.records)
    work = Path(tempfile.mkdtemp(prefix="vectorql-bench-api-cpu-"))
    server = start_milvus_lite_server(work / "milvus-lite")
    api = ApiProcess(
        work_dir=work,
        milvus_uri=str(server.uri),
        database_url=f"sqlite+aiosqlite:///{work / 'vectorql.db'}",
    )
    try:
        await api.wait_ready()
        async with httpx.AsyncClient(base_url=api.url, timeout=120) as client:

            async def ok(query: str, variables: dict[str, Any]) -> None:
                body = (
                    await client.post("/graphql", json={"query": query, "variables": variables})
                ).json()
                if body.get("errors"):
                    raise RuntimeError(body["errors"])

            await ok(CREATE, {"i": graphql_collection_input(ds.vectors.shape[1])})
            for rows in ds.batches(1000):
                records = record_inputs(ds, rows)
                await ok(UPSERT, {"c": COLLECTION, "r": records})
            console.print(f"{len(ds.records):,} records loaded; API at {api.url}")
            await asyncio.sleep(args.settle)  # the idle flush and the index build
            queries = [b64(q) for q in ds.queries]
            ids = [r["id"] for r in ds.records[:: max(1, len(ds.records) // 100)]]
            todo = kinds(queries, ids)
            results: dict[str, list[tuple[float, float]]] = {k.name: [] for k in todo}
            for round_ in range(args.rounds):
                for kind in todo:
                    spy = args.py_spy if args.py_spy and round_ == 0 else None
                    results[kind.name].append(await measure(client, api, kind, args.requests, spy))
                console.print(f"round {round_ + 1}/{args.rounds} done")
    finally:
        api.stop()
        server.stop()
    table = Table(title=f"API CPU per request ({args.requests} requests x {args.rounds} rounds)")
    for column in ("request", "API CPU ms/request (median)", "range", "p50 latency ms"):
        table.add_column(column, justify="left" if column == "request" else "right")
    for name, runs in results.items():
        cpus = [c for c, _ in runs]
        table.add_row(
            name,
            f"{statistics.median(cpus):.2f}",
            f"{min(cpus):.2f}-{max(cpus):.2f}",
            f"{statistics.median(p for _, p in runs):.2f}",
        )
    console.print(table)
    return 0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.api_cpu", description=__doc__)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="dataset directory")
    parser.add_argument("--records", type=int, default=5000, help="records loaded (default 5000)")
    parser.add_argument("--requests", type=int, default=500, help="requests per kind and round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds over every kind")
    parser.add_argument("--settle", type=float, default=10.0, help="seconds to wait after load")
    parser.add_argument("--py-spy", type=Path, default=None, help="profile each kind (round 1)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    return asyncio.run(amain(parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
