"""Bulk import from JSON Lines: the importer, the ``vectorql import`` and ``vectorql reconcile``
commands in real subprocesses, and a SIGKILL in the middle of a large import.

Every test has its own Milvus Lite file and its own SQL database (a SQLite file, or a fresh
PostgreSQL database): the reconciler run by ``vectorql reconcile`` covers every collection of its
database, so it must not see other tests' collections. A Milvus Lite file opens in one process
at a time, so this process closes (and releases) its store before any subprocess starts.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gzip
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import func, select

from store import Store, StoreConfig, Unavailable
from store.milvus import MilvusIndex
from store.records import CollectionSpec, FieldSpec, FieldType, IndexSpec, IndexType, RecordState
from store.sql.tables import RecordRow
from store.writes.importer import ImportProgress, import_jsonl
from store.writes.lines import line_id
from tests.conftest import fresh_postgres_database
from tests.fakes import Wrapped

DIM = 8
NAME = "docs"


# -- backends ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Backends:
    milvus_uri: str
    database_url: str
    workdir: Path

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("VECTORQL_")}
        env["VECTORQL_MILVUS_URI"] = self.milvus_uri
        env["VECTORQL_DATABASE_URL"] = self.database_url
        return env


@pytest.fixture(params=["sqlite", "postgres"])
async def backends(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backends]:
    milvus_uri = str(tmp_path / "m.db")
    if request.param == "sqlite":
        yield Backends(milvus_uri, f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}", tmp_path)
        return
    async with fresh_postgres_database() as url:
        yield Backends(milvus_uri, url, tmp_path)


@pytest.fixture
def sqlite_backends(tmp_path: Path) -> Backends:
    return Backends(
        str(tmp_path / "m.db"), f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}", tmp_path
    )


def release_milvus_lite(uri: str) -> None:
    """Milvus Lite keeps a file's server (and its lock) for the life of the process."""
    from milvus_lite.server_manager import server_manager_instance

    server_manager_instance.release_server(uri)


@contextlib.asynccontextmanager
async def open_store(b: Backends, *, milvus: bool = True) -> AsyncIterator[Store]:
    """The store in this process; with ``milvus=False`` only SQL (the file stays free)."""
    store = await Store.open(
        StoreConfig(milvus_uri=b.milvus_uri, database_url=b.database_url),
        connect_milvus=milvus,
    )
    try:
        if milvus:
            await store.load_collections()
        yield store
    finally:
        await store.close()
        if milvus:
            release_milvus_lite(b.milvus_uri)


async def create_collection(
    b: Backends, *, dimension: int = DIM, index: IndexSpec | None = None
) -> None:
    async with open_store(b) as store:
        await store.collections.create(
            CollectionSpec(
                name=NAME,
                dimension=dimension,
                fields=(FieldSpec("kind", FieldType.STRING), FieldSpec("n", FieldType.INT)),
                index=index or IndexSpec(),
            )
        )


@dataclass(frozen=True)
class State:
    sql_ids: set[str]
    milvus_ids: set[str]
    milvus_count: int
    pending: int


async def state(b: Backends) -> State:
    async with open_store(b) as store:
        async with store.sessions() as s:
            rows = (
                await s.execute(
                    select(RecordRow.id, RecordRow.state).where(RecordRow.collection == NAME)
                )
            ).all()
        return State(
            sql_ids={r[0] for r in rows},
            milvus_ids=await store.vectors.all_ids(f"vq_{NAME}"),
            milvus_count=await store.vectors.count(f"vq_{NAME}"),
            pending=sum(r[1] == RecordState.PENDING.value for r in rows),
        )


async def sql_count(store: Store) -> int:
    async with store.sessions() as s:
        n = await s.scalar(
            select(func.count()).select_from(RecordRow).where(RecordRow.collection == NAME)
        )
        return int(n or 0)


# -- the command line ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str


async def start_cli(b: Backends, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "graph.cli",
        *args,
        env=b.env,
        cwd=b.workdir,  # no developer .env is read
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def cli(b: Backends, *args: str) -> Run:
    proc = await start_cli(b, *args)
    async with asyncio.timeout(120):
        out, err = await proc.communicate()
    assert proc.returncode is not None
    return Run(proc.returncode, out.decode(), err.decode())


# -- input files ---------------------------------------------------------------------------------


def vec(seed: int, dim: int = DIM) -> list[float]:
    return np.random.default_rng(seed).random(dim, dtype=np.float32).tolist()


def b64(values: list[float]) -> str:
    return base64.b64encode(np.asarray(values, dtype="<f4").tobytes()).decode()


def line(**record: Any) -> str:
    return json.dumps(record, separators=(",", ":"))


def write_lines(path: Path, lines: list[str]) -> Path:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt", encoding="utf-8") as f:
        f.writelines(text + "\n" for text in lines)
    return path


def mixed_lines() -> list[str]:
    """Numbered from 1: four kinds of bad line among good ones, two lines without an id."""
    return [
        line(id="r1", vector=vec(1), metadata={"kind": "a", "n": 1}, text="one"),  # 1
        line(id="r2", vector=b64(vec(2)), metadata={"kind": "b"}),  # 2
        '{"id": "r3", "vector": [1, 2',  # 3: invalid JSON
        line(vector=vec(4), text="no id"),  # 4: id from the line's bytes
        line(id="r5", vector=[1.0, 2.0, 3.0]),  # 5: wrong dimension
        line(id="r6", vector=vec(6), metadata={"n": "six"}),  # 6: wrong metadata type
        "",  # 7: blank, skipped
        line(vector=b64(vec(8))),  # 8: id from the line's bytes
        '["not", "an", "object"]',  # 9
        line(id="r10", vector=vec(10)),  # 10
    ]


def expected_good_ids(lines: list[str]) -> set[str]:
    ids = {"r1", "r2", "r10"}
    ids |= {line_id(lines[n - 1].encode()) for n in (4, 8)}
    return ids


# -- the importer --------------------------------------------------------------------------------


async def test_import_reports_bad_lines_writes_the_rest_and_reruns_idempotently(
    sqlite_backends: Backends, tmp_path: Path
) -> None:
    b = sqlite_backends
    await create_collection(b)
    lines = mixed_lines()
    path = write_lines(tmp_path / "in.jsonl.gz", lines)  # gzip, detected by content
    seen: list[ImportProgress] = []
    async with open_store(b) as store:
        summary = await import_jsonl(
            store, path=path, collection=NAME, batch_size=3, on_progress=seen.append
        )
    assert summary.lines_read == 10
    assert summary.records_written == 5
    assert summary.bad_count == 4
    assert not summary.ok
    reasons = {bad.line: bad.reason for bad in summary.bad_lines}
    assert sorted(reasons) == [3, 5, 6, 9]
    assert reasons[3].startswith("invalid JSON")
    assert reasons[5] == "vector dimension is 3, expected 8"
    assert reasons[6] == "metadata.n (INT): expected an integer, got a string"
    assert reasons[9] == "not a JSON object (got a list)"
    assert [bad.id for bad in summary.bad_lines] == [None, "r5", "r6", None]
    assert seen
    assert seen[-1].records_written == 5
    assert seen[-1].bytes_read == seen[-1].total_bytes == path.stat().st_size

    after_first = await state(b)
    assert after_first.sql_ids == after_first.milvus_ids == expected_good_ids(lines)
    assert after_first.pending == 0

    async with open_store(b) as store:
        again = await import_jsonl(store, path=path, collection=NAME, batch_size=1000)
    assert again.records_written == 5
    assert [bad.line for bad in again.bad_lines] == [3, 5, 6, 9]
    assert await state(b) == after_first  # same ids, no duplicate in Milvus (count included)
    assert after_first.milvus_count == 5


async def test_a_later_line_with_the_same_id_wins_whatever_the_batch_size(
    sqlite_backends: Backends, tmp_path: Path
) -> None:
    b = sqlite_backends
    await create_collection(b)
    lines = [
        line(id="x", vector=vec(1), text="first"),
        line(id="y", vector=vec(2)),
        line(id="x", vector=vec(3), text="second"),
        line(id="z", vector=vec(4)),
        line(id="x", vector=vec(5), text="third"),
    ]
    path = write_lines(tmp_path / "dup.jsonl", lines)
    for batch_size in (1000, 2):
        async with open_store(b) as store:
            summary = await import_jsonl(store, path=path, collection=NAME, batch_size=batch_size)
            assert summary.ok, summary.bad_lines
            assert summary.records_written == 5
            record = await store.reader.get(NAME, "x", tenant=None)
            assert record is not None
            assert record.text == "third"
        got = await state(b)
        assert got.sql_ids == got.milvus_ids == {"x", "y", "z"}
        assert got.milvus_count == 3


async def test_strict_stops_at_the_first_bad_line_having_written_every_line_before_it(
    sqlite_backends: Backends, tmp_path: Path
) -> None:
    b = sqlite_backends
    await create_collection(b)
    lines = [line(id=f"r{i}", vector=vec(i)) for i in range(1, 8)]
    lines[4] = line(id="r5", vector=[1.0])  # line 5, in the middle of the second batch of 3
    lines[6] = "{oops"  # line 7: never reached
    path = write_lines(tmp_path / "strict.jsonl", lines)
    async with open_store(b) as store:
        summary = await import_jsonl(store, path=path, collection=NAME, batch_size=3, strict=True)
    assert summary.stopped_at == 5
    assert summary.lines_read == 5
    assert [(bad.line, bad.id) for bad in summary.bad_lines] == [(5, "r5")]
    assert summary.records_written == 4
    got = await state(b)
    assert got.sql_ids == got.milvus_ids == {"r1", "r2", "r3", "r4"}


async def test_unknown_keys_and_types_are_bad_lines(
    sqlite_backends: Backends, tmp_path: Path
) -> None:
    b = sqlite_backends
    await create_collection(b)
    lines = [
        line(id="ok", vector=vec(1)),
        line(id="e", embedding=vec(2)),
        line(id="t", vector=vec(3), text=5),
        line(id="v", vector="%%%"),
        line(id=7, vector=vec(4)),  # numeric ids are accepted as GraphQL's ID accepts them
        line(id="m", vector=vec(5), tenant="acme"),
    ]
    path = write_lines(tmp_path / "keys.jsonl", lines)
    async with open_store(b) as store:
        summary = await import_jsonl(store, path=path, collection=NAME)
    assert {bad.line: bad.reason for bad in summary.bad_lines} == {
        2: "unknown key 'embedding' (a line has id, vector, metadata, text, tenant)",
        3: "text must be a string (got a number)",
        4: "vector is not a list of numbers or valid base64",
        6: "tenant given, but the collection is not multi-tenant",
    }
    assert (await state(b)).sql_ids == {"ok", "7"}


class Counted(Wrapped):
    """The real index, counting upserts and flushes; its ``fail_at``-th upsert (if given)
    answers ``Unavailable``."""

    def __init__(self, real: Any, *, fail_at: int | None = None) -> None:
        super().__init__(real)
        self.fail_at = fail_at
        self.upserts = 0
        self.flushes = 0

    async def upsert(self, info: Any, records: Any) -> None:
        self.upserts += 1
        if self.upserts == self.fail_at:
            raise Unavailable("Milvus did not answer (test)")
        await self.real.upsert(info, records)

    async def flush(self, mname: str) -> None:
        self.flushes += 1
        await self.real.flush(mname)


async def test_a_milvus_failure_mid_import_names_the_batch_and_loses_nothing(
    backends: Backends, tmp_path: Path
) -> None:
    """The SQL write of a batch overlaps the Milvus write of the batch before it: when Milvus
    fails, the import names the failed batch, what it counted is in both stores, the rest of
    what SQL holds is pending (never lost), and a reconcile makes the two agree."""
    b = backends
    await create_collection(b)
    lines = [line(id=f"r{i}", vector=vec(i), metadata={"n": i}) for i in range(1, 21)]
    path = write_lines(tmp_path / "in.jsonl", lines)
    index = Counted(MilvusIndex(uri=b.milvus_uri), fail_at=3)  # lines 7-9
    store = await Store.open(
        StoreConfig(milvus_uri=b.milvus_uri, database_url=b.database_url), vector_index=index
    )
    try:
        with pytest.raises(Unavailable) as failed:
            await import_jsonl(store, path=path, collection=NAME, batch_size=3)
    finally:
        await store.close()
        release_milvus_lite(b.milvus_uri)
    assert "import stopped in the batch of lines 7-9 (6 records written before line 7)" in str(
        failed.value.message
    )
    assert failed.value.extensions["written"] == 6
    assert failed.value.extensions["first_line_not_done"] == 7
    stopped = await state(b)
    assert {f"r{i}" for i in range(1, 7)} <= stopped.milvus_ids <= stopped.sql_ids
    assert {f"r{i}" for i in range(1, 10)} <= stopped.sql_ids  # the failed batch is stored
    assert stopped.pending == len(stopped.sql_ids - stopped.milvus_ids) >= 3

    async with open_store(b) as healthy:
        report = await healthy.reconciler.run_once()
    assert report.pushed == stopped.pending
    repaired = await state(b)
    assert repaired.sql_ids == repaired.milvus_ids == stopped.sql_ids
    assert repaired.pending == 0


async def test_an_import_flushes_milvus_once_at_its_end(
    sqlite_backends: Backends, tmp_path: Path
) -> None:
    """Not every ``flush_threshold`` rows as API writes do (each flush of Milvus 2.3 took
    seconds and left a small segment to index twice); searches right after it take the
    indexed path all the same."""
    b = sqlite_backends
    await create_collection(b)
    path = write_lines(
        tmp_path / "in.jsonl", [line(id=f"r{i}", vector=vec(i)) for i in range(1, 41)]
    )
    index = Counted(MilvusIndex(uri=b.milvus_uri))
    config = StoreConfig(milvus_uri=b.milvus_uri, database_url=b.database_url, flush_threshold=5)
    store = await Store.open(config, vector_index=index)
    try:
        summary = await import_jsonl(store, path=path, collection=NAME, batch_size=4)
        assert summary.records_written == 40
        assert index.upserts == 10
        assert index.flushes == 1
    finally:
        await store.close()
        release_milvus_lite(b.milvus_uri)
    got = await state(b)
    assert got.sql_ids == got.milvus_ids
    assert got.milvus_count == 40
    assert got.pending == 0


async def test_an_import_leaves_postgresql_with_statistics_for_keyword_search(
    tmp_path: Path,
) -> None:
    """Without them PostgreSQL's planner serves a keyword search from the record index, reading
    every posting of the collection (autovacuum is off on the test server, so only the
    import's own ANALYZE can make them)."""
    async with fresh_postgres_database() as url:
        b = Backends(str(tmp_path / "m.db"), url, tmp_path)
        await create_collection(b)
        path = write_lines(
            tmp_path / "in.jsonl",
            [line(id=f"r{i}", vector=vec(i), text=f"words of record {i}") for i in range(1, 31)],
        )
        async with open_store(b) as store:
            summary = await import_jsonl(store, path=path, collection=NAME)
            assert summary.records_written == 30
            async with store.engine.connect() as conn:
                analyzed = await conn.exec_driver_sql(
                    "SELECT relname, reltuples FROM pg_class WHERE relname IN "
                    "('vq_record', 'vq_keyword_posting')"
                )
                counts = {str(name): float(tuples) for name, tuples in analyzed.all()}
        # reltuples is -1 until a table is first analyzed: the import's ANALYZE counted them.
        assert counts == {"vq_record": 30.0, "vq_keyword_posting": 30.0 * 4}


# -- the commands, in subprocesses ---------------------------------------------------------------


async def test_cli_import_prints_bad_line_numbers_and_exits_1(
    backends: Backends, tmp_path: Path
) -> None:
    b = backends
    await create_collection(b)
    lines = mixed_lines()
    path = write_lines(tmp_path / "in.jsonl", lines)

    run = await cli(b, "import", str(path), "--collection", NAME, "--batch-size", "4")
    assert run.code == 1, run.err
    assert "5 records written from 10 lines" in run.out
    assert "4 bad lines" in run.out
    assert "line 3: invalid JSON" in run.out
    assert "line 5 (id 'r5'): vector dimension is 3, expected 8" in run.out
    assert "line 6 (id 'r6'): metadata.n (INT)" in run.out
    assert "line 9: not a JSON object" in run.out
    first = await state(b)
    assert first.sql_ids == first.milvus_ids == expected_good_ids(lines)

    rerun = await cli(b, "import", str(path), "--collection", NAME)
    assert rerun.code == 1
    assert await state(b) == first
    assert first.milvus_count == len(first.sql_ids)

    strict = await cli(b, "import", str(path), "--collection", NAME, "--strict")
    assert strict.code == 1
    assert "stopped at line 3 (--strict)" in strict.out

    missing = await cli(b, "import", str(path), "--collection", "nope")
    assert missing.code == 1
    assert "collection 'nope' does not exist" in missing.err


async def test_cli_reconcile_prints_its_report(backends: Backends) -> None:
    await create_collection(backends)
    run = await cli(backends, "reconcile", "--full")
    assert run.code == 0, run.err
    assert "reconciled (full id comparison)" in run.out
    assert "0 rows still pending" in run.out


# -- the fault: SIGKILL in the middle of a large import ------------------------------------------

# Sized to keep the test near a minute on a busy 2-CPU machine, where the store's write path
# manages only a few hundred to a couple of thousand records/s (see tests/bench/ingest.py).
BIG = 10_000
BIG_DIM = 32


def big_file(path: Path) -> tuple[Path, set[str]]:
    """``BIG`` records, base64 vectors; every 97th line has no id (its id comes from its bytes)."""
    rng = np.random.default_rng(7)
    vectors = rng.random((BIG, BIG_DIM), dtype=np.float32)
    ids: set[str] = set()
    with path.open("w") as f:
        for i in range(BIG):
            record: dict[str, Any] = {
                "vector": base64.b64encode(vectors[i].astype("<f4").tobytes()).decode(),
                "metadata": {"kind": f"k{i % 5}", "n": i},
            }
            if i % 97:
                record["id"] = f"doc-{i:06d}"
            text = json.dumps(record, separators=(",", ":"))
            ids.add(record.get("id") or line_id(text.encode()))
            f.write(text + "\n")
    return path, ids


@contextlib.contextmanager
def killed_on_exit(proc: asyncio.subprocess.Process) -> Iterator[None]:
    try:
        yield
    finally:
        if proc.returncode is None:
            proc.kill()


@pytest.mark.slow
async def test_sigkill_mid_import_then_reconcile_and_rerun_converges(
    backends: Backends, tmp_path: Path
) -> None:
    b = backends
    # FLAT: Milvus Lite rebuilding HNSW in the background would only slow the test down.
    await create_collection(b, dimension=BIG_DIM, index=IndexSpec(IndexType.FLAT))
    path, input_ids = big_file(tmp_path / "big.jsonl")
    assert len(input_ids) == BIG

    proc = await start_cli(b, "import", str(path), "--collection", NAME, "--batch-size", "500")
    with killed_on_exit(proc):
        async with open_store(b, milvus=False) as sql_only:
            deadline = time.monotonic() + 60
            while (written := await sql_count(sql_only)) < 1500:
                assert proc.returncode is None, "the import ended before it could be killed"
                assert time.monotonic() < deadline, "the import made no progress"
                await asyncio.sleep(0.05)
            proc.send_signal(signal.SIGKILL)
            await proc.wait()
            at_kill = await sql_count(sql_only)
    assert proc.returncode == -signal.SIGKILL
    assert written <= at_kill < BIG, "the kill must land in the middle of the import"

    reconciled = await cli(b, "reconcile")
    assert reconciled.code == 0, reconciled.err
    after_reconcile = await state(b)
    assert after_reconcile.pending == 0
    assert after_reconcile.sql_ids == after_reconcile.milvus_ids
    assert after_reconcile.sql_ids <= input_ids

    rerun = await cli(b, "import", str(path), "--collection", NAME, "--batch-size", "500")
    assert rerun.code == 0, rerun.out + rerun.err
    assert f"{BIG:,} records written from {BIG:,} lines" in rerun.out
    final = await state(b)
    assert final.sql_ids == final.milvus_ids == input_ids
    assert final.milvus_count == BIG
    assert final.pending == 0
