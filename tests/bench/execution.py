"""GraphQL execution CPU of a search answer, with graphql-core's field path and the lean one.

``python -m tests.bench.execution``. No server, no store: a root field returns ``topK`` hits
with their records (the objects ``SearchResult.from_record`` builds) and the document asks for
``hits { id score record { id metadata text } }``, as the benchmarks' searches do. Each
schema runs ``--requests`` executions per round (parse and validation included, as for a new
query text); the table gives the median CPU per execution over the rounds, which alternate
between the two executors so drift lands on both.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Sequence
from datetime import UTC, datetime

import strawberry
from strawberry.scalars import JSON

from graph.schema.executor import executor_for
from graph.schema.searching import Hit
from graph.schema.types import Record

QUERY = "{ hits { id score record { id metadata text } } }"


def schema_for(top_k: int, *, lean: bool) -> strawberry.Schema:
    now = datetime.now(UTC)
    metadata = {"section": "libs", "tags": ["a", "b"], "installed_size": 12345}

    @strawberry.type
    class Query:
        @strawberry.field
        def hits(self) -> list[Hit]:
            return [
                Hit(
                    id=strawberry.ID(f"id{i}"),
                    score=0.9,
                    distance=0.1,
                    record=Record(
                        id=strawberry.ID(f"id{i}"),
                        collection="c",
                        metadata=JSON(metadata),
                        text="a package description " * 5,
                        tenant=None,
                        indexed=True,
                        created_at=now,
                        updated_at=now,
                        raw_vector=b"",
                    ),
                )
                for i in range(top_k)
            ]

    schema = strawberry.Schema(query=Query)
    if lean:
        schema.execution_context_class = executor_for(schema._schema)
    return schema


async def cpu_ms(schema: strawberry.Schema, requests: int) -> float:
    for _ in range(min(30, requests)):  # warm-up
        await schema.execute(QUERY)
    start = time.process_time()
    for _ in range(requests):
        result = await schema.execute(QUERY)
        if result.errors:
            raise RuntimeError(result.errors)
    return (time.process_time() - start) * 1000 / requests


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.execution", description=__doc__)
    parser.add_argument("--top-k", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    print(f"CPU ms per execution, median of {args.rounds} rounds x {args.requests}")
    print(f"{'topK':>5} {'graphql-core':>13} {'lean':>8}")
    for top_k in args.top_k:
        plain, lean = schema_for(top_k, lean=False), schema_for(top_k, lean=True)
        runs: dict[str, list[float]] = {"plain": [], "lean": []}
        for _ in range(args.rounds):
            runs["plain"].append(asyncio.run(cpu_ms(plain, args.requests)))
            runs["lean"].append(asyncio.run(cpu_ms(lean, args.requests)))
        print(
            f"{top_k:>5} {statistics.median(runs['plain']):>13.2f} "
            f"{statistics.median(runs['lean']):>8.2f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
