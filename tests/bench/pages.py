"""Search pages and group-by benchmark (issue 23): ``python -m tests.bench.pages`` (``make
bench-pages``).

The debian-packages dataset (63,436 real 384-d embeddings, minus the held-out queries) is loaded
through the store's write path into a fresh Milvus (``--milvus lite``: a ``milvus-lite server``;
``server``: Milvus 2.3 standalone) and SQLite, HNSW with the default parameters, as
``tests.bench.search`` does. Measured through the search use case (``resolvers.search.search``,
a fresh ``Loaders`` per query: the API's path minus GraphQL and HTTP), serially:

- pages: each query walks ``--pages`` pages of ``--page-size`` hits by ``after`` cursors; the
  latency of pages 1, 10 and 50, against the same page by ``offset`` (page 50 of 20 is offset
  980, the last the offset cap allows), and recall of all pages together against numpy's ranking;
- group-by: ``topK 10, groupBy {field: section}`` against the same search without groupBy, p50.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from rich.table import Table

from resolvers.limits import Limits
from resolvers.paging import GroupBy
from resolvers.search import QueryVector, SearchOutcome, SearchRequest
from resolvers.search import search as store_search
from store import Store, StoreConfig
from store.loaders import Loaders
from tests.bench.search import (
    COLLECTION,
    DEFAULT_DATA,
    Dataset,
    caller_arguments,
    console,
    load,
    load_dataset,
    milvus_server,
)

MARKED_PAGES = (1, 10, 50)


def percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


class Runner:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.limits = Limits()
        self.caller = caller_arguments()

    async def search(self, **kwargs: Any) -> tuple[SearchOutcome, float]:
        request = SearchRequest(collection=COLLECTION, **kwargs)
        began = time.perf_counter()
        [outcome] = await store_search(
            self.store, Loaders(self.store), request, limits=self.limits, **self.caller
        )
        return outcome, (time.perf_counter() - began) * 1000


async def bench_pages(runner: Runner, ds: Dataset, args: argparse.Namespace) -> dict[str, Any]:
    by_cursor: dict[int, list[float]] = {p: [] for p in MARKED_PAGES if p <= args.pages}
    by_offset: dict[int, list[float]] = {p: [] for p in by_cursor}
    recalls, repeats = [], 0
    normed = ds.base / np.linalg.norm(ds.base, axis=1, keepdims=True)
    ids = np.asarray(ds.ids, dtype=object)
    for qi, q in enumerate(ds.queries[: args.queries]):
        after, seen = None, []
        for page in range(1, args.pages + 1):
            outcome, ms = await runner.search(
                vectors=[QueryVector(q)], top_k=args.page_size, after=after
            )
            seen += [h.id for h in outcome.hits]
            if page in by_cursor:
                by_cursor[page].append(ms)
                offset = (page - 1) * args.page_size
                if offset + args.page_size <= runner.limits.max_top_k:
                    _, off_ms = await runner.search(
                        vectors=[QueryVector(q)], top_k=args.page_size, offset=offset
                    )
                    by_offset[page].append(off_ms)
            after = outcome.page_info.end_cursor
            if after is None:
                break
        repeats += len(seen) - len(set(seen))
        sims = normed @ (q / np.linalg.norm(q))
        truth = set(ids[np.argsort(-sims)[: len(seen)]].tolist())
        recalls.append(len(truth & set(seen)) / max(1, len(seen)))
        console.print(f"query {qi + 1}/{args.queries}: {len(seen)} hits, recall {recalls[-1]:.3f}")
    return {
        "cursor": {p: statistics.median(v) for p, v in by_cursor.items() if v},
        "cursor_p90": {p: percentile(v, 90) for p, v in by_cursor.items() if v},
        "offset": {p: statistics.median(v) for p, v in by_offset.items() if v},
        "recall": float(np.mean(recalls)),
        "repeats": repeats,
    }


async def bench_groups(runner: Runner, ds: Dataset, args: argparse.Namespace) -> dict[str, Any]:
    plain, grouped, groups = [], [], []
    for _ in range(args.rounds):
        for q in ds.queries[: args.queries]:
            _, ms = await runner.search(vectors=[QueryVector(q)], top_k=10)
            plain.append(ms)
            outcome, ms = await runner.search(
                vectors=[QueryVector(q)], top_k=10, group_by=GroupBy(field=args.group_field)
            )
            grouped.append(ms)
            groups.append(len(outcome.groups or []))
    return {
        "plain_p50": statistics.median(plain),
        "grouped_p50": statistics.median(grouped),
        "plain_p90": percentile(plain, 90),
        "grouped_p90": percentile(grouped, 90),
        "groups_mean": float(np.mean(groups)),
    }


async def amain(args: argparse.Namespace) -> int:
    ds = load_dataset(args.data, limit=args.limit, queries=max(args.queries, 20), seed=args.seed)
    with tempfile.TemporaryDirectory(prefix="vq-bench-pages-") as tmp:
        work = Path(tmp)
        with milvus_server(args.milvus, work) as server:
            config = StoreConfig(
                milvus_uri=server.uri,
                database_url=f"sqlite+aiosqlite:///{work / 'vectorql.db'}",
                milvus_timeout=600,
            )
            store = await Store.open(config)
            try:
                caps = store.vectors.capabilities
                console.rule(f"{caps.server} {caps.version}: {len(ds.records)} records")
                _, seconds = await load(store, ds, kind=args.milvus)
                console.print(f"loaded in {seconds:.0f} s")
                runner = Runner(store)
                await runner.search(vectors=[QueryVector(ds.queries[0])], top_k=10)  # warm
                pages = await bench_pages(runner, ds, args)
                groups = await bench_groups(runner, ds, args)
            finally:
                await store.close()
    table = Table(title=f"pages of {args.page_size} ({args.milvus}), ms, {args.queries} queries")
    for column in ("page", "after: p50", "after: p90", "offset: p50"):
        table.add_column(column, justify="right")
    for page, p50 in pages["cursor"].items():
        offset = pages["offset"].get(page)
        table.add_row(
            str(page),
            f"{p50:.1f}",
            f"{pages['cursor_p90'][page]:.1f}",
            f"{offset:.1f}" if offset is not None else "-",
        )
    console.print(table)
    console.print(
        f"{args.pages} pages: recall {pages['recall']:.3f} against numpy, "
        f"{pages['repeats']} hits repeated"
    )
    console.print(
        f"topK 10: plain p50 {groups['plain_p50']:.1f} ms (p90 {groups['plain_p90']:.1f}); "
        f"groupBy {args.group_field} p50 {groups['grouped_p50']:.1f} ms "
        f"(p90 {groups['grouped_p90']:.1f}), {groups['groups_mean']:.1f} groups"
    )
    return 0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--milvus", choices=("lite", "server"), default="lite")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--limit", type=int, default=None, help="base records (default: all)")
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument("--pages", type=int, default=50)
    parser.add_argument("--page-size", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3, help="group-by rounds over the queries")
    parser.add_argument("--group-field", default="section")
    parser.add_argument("--seed", type=int, default=1)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    return asyncio.run(amain(parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
