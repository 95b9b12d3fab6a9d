"""The write protocol under real failures, over HTTP on real Milvus and SQLite / PostgreSQL.

A Milvus that cannot be reached is a second app ("replica") on the same SQL database whose
Milvus client points at a port where nothing listens: its writes meet a real connection failure
while the healthy app, and Milvus itself, go on. A collection whose creation fails half-way is made
by a vector index that fails (as the adapter reports a failed index build or load) after Milvus
has really created it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pymilvus import MilvusException

from store.milvus.calls import _translate
from store.records import CollectionInfo, RecordState
from tests.conftest import Api, fresh_database, make_settings, running_api
from tests.fakes import Wrapped, serving_with
from tests.integration.test_ingest import (
    DELETE,
    RECORD,
    UPSERT,
    b64,
    good,
    make_collection,
    milvus_ids,
    sql_ids,
    sql_states,
    vec,
)

DEAD_MILVUS = "http://127.0.0.1:1"  # nothing listens on port 1
DEAD_TIMEOUT = 2.0

CREATE = "mutation($i: CreateCollectionInput!) { createCollection(input: $i) { name } }"
STATS = """query($n: String!) {
  collection(name: $n) { stats { records indexed pending } } }"""
SEARCH = """query($c: String!, $v: Vector!) {
  search(collection: $c, vector: $v, topK: 10) { hits { id record { id } } } }"""
RECORDS = """query($c: String!) {
  records(collection: $c, first: 100) { totalCount edges { node { id } } } }"""


@contextlib.asynccontextmanager
async def replica_without_milvus(database_url: str) -> AsyncIterator[Api]:
    """Another app on the same SQL database whose Milvus does not answer."""
    settings = make_settings(
        milvus_uri=DEAD_MILVUS, database_url=database_url, milvus_timeout=DEAD_TIMEOUT
    )
    async with running_api(settings) as api:
        yield api


@pytest.fixture(params=["sqlite", "postgres"])
async def own_database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """An empty SQL database, so that a reconciler only sees this test's collections."""
    async with fresh_database(request.param, tmp_path) as url:
        yield url


# -- deletes ---------------------------------------------------------------------------------


async def test_a_delete_milvus_does_not_confirm_is_hidden_then_finished_by_the_reconciler(
    api: Api, name: str
) -> None:
    await make_collection(api, name)
    await api.ok(UPSERT, {"c": name, "r": [good(i) for i in range(5)]})
    kept = {"r0", "r2", "r3", "r4"}

    async with replica_without_milvus(api.settings.database_url) as replica:
        start = time.perf_counter()
        error = await replica.error(DELETE, {"c": name, "ids": ["r1", "missing"]})
        took = time.perf_counter() - start
    assert error["extensions"]["code"] == "UNAVAILABLE"
    assert error["extensions"]["deleted"] == 1
    message = error["message"]
    assert message.startswith("1 records are marked deleted and hidden from reads"), message
    assert "the reconciler completes the delete" in message.lower(), message
    assert took < 30, "a Milvus that is down must cost seconds"

    # Milvus still holds r1 (it never heard of the delete); SQL has it marked.
    mname = f"vq_{name}"
    assert await api.store.vectors.query_ids(mname, 'id in ["r1"]') == ["r1"]
    assert (await sql_states(api, name))["r1"] == RecordState.DELETING.value

    async def assert_r1_is_never_returned() -> None:
        assert (await api.ok(RECORD, {"c": name, "id": "r1"}))["record"] is None
        hits = (await api.ok(SEARCH, {"c": name, "v": b64(vec(1))}))["search"]["hits"]
        assert {h["id"] for h in hits} == kept  # r1 itself was the nearest
        listed = (await api.ok(RECORDS, {"c": name}))["records"]
        assert {e["node"]["id"] for e in listed["edges"]} == kept
        assert listed["totalCount"] == 4
        stats = (await api.ok(STATS, {"n": name}))["collection"]["stats"]
        assert stats == {"records": 4, "indexed": 4, "pending": 0}

    await assert_r1_is_never_returned()

    report = await api.store.reconciler.run_once()
    assert not report.skipped
    assert report.deleted >= 1
    assert await sql_ids(api, name) == kept
    assert await milvus_ids(api, name) == kept
    await assert_r1_is_never_returned()


# -- the reconciler started by the app ------------------------------------------------------------


async def test_the_background_reconciler_converges_on_its_own(
    milvus_uri: str, own_database: str, name: str
) -> None:
    def settings(**overrides: Any) -> Any:
        return make_settings(
            milvus_uri=milvus_uri, database_url=own_database, milvus_timeout=30, **overrides
        )

    async with running_api(settings()) as api:
        await make_collection(api, name)
        await api.ok(UPSERT, {"c": name, "r": [good(i) for i in range(10)]})

    # Writes while Milvus cannot be reached: stored, not indexed; a delete only marked.
    async with replica_without_milvus(own_database) as replica:
        error = await replica.error(UPSERT, {"c": name, "r": [good(i) for i in range(10, 20)]})
        assert error["extensions"]["code"] == "UNAVAILABLE"
        error = await replica.error(DELETE, {"c": name, "ids": ["r0"]})
        assert error["extensions"]["code"] == "UNAVAILABLE"
        stats = (await replica.ok(STATS, {"n": name}))["collection"]["stats"]
        assert stats == {"records": 19, "indexed": 9, "pending": 10}

    # Milvus is reachable again for an app whose lifespan runs the reconciler every 0.5 s.
    async with running_api(settings(reconcile_interval=0.5)) as api:
        try:
            deadline = time.monotonic() + 30
            while True:
                stats = (await api.ok(STATS, {"n": name}))["collection"]["stats"]
                if stats["pending"] == 0 and "r0" not in await sql_ids(api, name):
                    break
                assert time.monotonic() < deadline, f"not converged in 30 s: {stats}"
                await asyncio.sleep(0.2)
            assert stats == {"records": 19, "indexed": 19, "pending": 0}
            expected = {f"r{i}" for i in range(1, 20)}
            assert await sql_ids(api, name) == expected
            assert await milvus_ids(api, name) == expected
        finally:
            await api.ok("mutation($n: String!) { dropCollection(name: $n) }", {"n": name})


# -- creating a collection -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("step", "failure", "code"),
    [
        # Milvus refuses the index parameters at build time (vectorql's own checks passed).
        (
            "create_index",
            MilvusException(code=1100, message="invalid parameter: index params out of range"),
            "BAD_USER_INPUT",
        ),
        ("load_collection", MilvusException(code=65535, message="load timed out"), "UNAVAILABLE"),
        (
            "load_collection",
            MilvusException(code=65535, message="segcore: out of memory"),
            "INTERNAL",
        ),
    ],
    ids=["index-refused", "load-timeout", "load-unexpected"],
)
async def test_a_create_failing_after_milvus_made_the_collection_leaves_nothing(
    api: Api,
    name: str,
    step: str,
    failure: MilvusException,
    code: str,
) -> None:
    existed_when_failing: list[bool] = []

    class FailingCreate(Wrapped):
        async def create_collection(self, info: CollectionInfo) -> None:
            await self.real.create_collection(info)
            existed_when_failing.append(await self.real.has_collection(info.name))
            raise _translate(failure, "create_collection")  # as the adapter reports it

    async with serving_with(api, FailingCreate(api.store.vectors)):
        error = await api.error(CREATE, {"i": {"name": name, "dimension": 8}})
    assert existed_when_failing == [True]  # it failed half-way, not before Milvus created it
    assert error["extensions"]["code"] == code
    assert await api.store.collections.find(name) is None
    assert not await api.store.vectors.has_collection(name)
    assert (await api.ok(STATS, {"n": name}))["collection"] is None

    # Nothing is left to get in the way: the same create succeeds now.
    await api.ok(CREATE, {"i": {"name": name, "dimension": 8}})
    assert await api.store.vectors.has_collection(name)


async def test_sql_is_not_locked_while_milvus_creates_a_collection(api: Api, name: str) -> None:
    """SQLite allows one writer: a transaction held open across the Milvus DDL (seconds on a
    server) would stall every write to every collection for that long."""
    busy = f"{name}_w"
    await make_collection(api, busy)
    entered, released = asyncio.Event(), asyncio.Event()

    class SlowCreate(Wrapped):
        async def create_collection(self, info: CollectionInfo) -> None:
            await self.real.create_collection(info)
            entered.set()
            await asyncio.wait_for(released.wait(), 60)

    serving = serving_with(api, SlowCreate(api.store.vectors))
    await serving.__aenter__()
    creating = asyncio.create_task(api.post(CREATE, {"i": {"name": name, "dimension": 8}}))
    try:
        await asyncio.wait_for(entered.wait(), 30)  # the create reached the load
        # Milvus has the collection, SQL does not list it yet, and other writes go on.
        assert await api.store.vectors.has_collection(name)
        async with asyncio.timeout(10):
            await api.ok(UPSERT, {"c": busy, "r": [good(i) for i in range(3)]})
            assert (await api.ok(STATS, {"n": name}))["collection"] is None
            again = await api.error(CREATE, {"i": {"name": name, "dimension": 8}})
        assert again["extensions"]["code"] == "CONFLICT"
        assert "being created" in again["message"]
        # A full reconcile does not take the unregistered collection for an orphan.
        report = await api.store.reconciler.run_once(full=True)
        assert f"vq_{name}" not in report.dropped_collections
    finally:
        released.set()
        body = await creating
        await serving.__aexit__(None, None, None)
        await api.post("mutation($n: String!) { dropCollection(name: $n) }", {"n": busy})
    assert not body.get("errors"), body
    assert body["data"] == {"createCollection": {"name": name}}
    assert await api.store.collections.find(name) is not None
    assert await api.store.vectors.has_collection(name)


async def test_a_delete_during_the_reconcilers_compare_stays_deleted(api: Api, name: str) -> None:
    """The full compare lists Milvus's keys, then reads SQL's rows, and turns pending the rows SQL
    has indexed that Milvus did not list (a fresh upsert it does not show yet, say). A delete
    that marks such a row in between keeps its mark: turned pending, the row escaped its removal
    and the next push brought an acknowledged delete back."""
    await make_collection(api, name)
    await api.ok(UPSERT, {"c": name, "r": [good(i) for i in range(3)]})
    victim = "r0"

    class LateListing(Wrapped):
        async def all_keys(self, info: CollectionInfo) -> set[str]:
            # Milvus does not list the victim yet; "ghost" makes the compare delete an orphan,
            # which is the moment, after SQL's rows are read, when the delete comes in.
            return (await self.real.all_keys(info) - {victim}) | {"ghost"}

        async def delete_ids(self, milvus_name: str, keys: list[str]) -> None:
            if keys == ["ghost"]:
                await store.writer._mark_deleting(name, [victim], None)
                await self.real.delete_ids(milvus_name, [victim])
                return
            await self.real.delete_ids(milvus_name, keys)

    async with serving_with(api, LateListing(api.store.vectors)) as store:
        await store.reconciler.run_once(full=True)
        await store.writer.remove_deleted(name, [("", victim)])  # the delete's last step
    assert await sql_ids(api, name) == {"r1", "r2"}
    await api.store.reconciler.run_once(full=True)
    assert await milvus_ids(api, name) == {"r1", "r2"}
    assert (await api.ok(RECORD, {"c": name, "id": victim}))["record"] is None


# -- keyword search ----------------------------------------------------------------------------

KEYWORD = """query($c: String!, $q: String!, $w: Filter) {
  search(collection: $c, keyword: $q, topK: 20, where: $w) {
    hits { id } explain { keywordCandidates } } }"""


async def test_keyword_search_leaves_out_records_not_indexed(
    milvus_uri: str, own_database: str, name: str
) -> None:
    # Unfiltered, keyword search ranks on the postings alone, leaving out the rows that are not
    # searchable; with a filter it joins every posting to its record.
    settings = make_settings(milvus_uri=milvus_uri, database_url=own_database, milvus_timeout=30)
    async with running_api(settings) as api:
        await make_collection(api, name)
        await api.ok(UPSERT, {"c": name, "r": [good(i) for i in range(5)]})
        # Stored but not indexed (pending), and marked deleted but not yet removed from Milvus.
        async with replica_without_milvus(own_database) as replica:
            error = await replica.error(UPSERT, {"c": name, "r": [good(i) for i in range(5, 8)]})
            assert error["extensions"]["code"] == "UNAVAILABLE"
            error = await replica.error(DELETE, {"c": name, "ids": ["r0"]})
            assert error["extensions"]["code"] == "UNAVAILABLE"
        assert await sql_states(api, name) == {
            **{f"r{i}": RecordState.INDEXED for i in range(1, 5)},
            **{f"r{i}": RecordState.PENDING for i in range(5, 8)},
            "r0": RecordState.DELETING,
        }
        for where in (None, {"field": "category", "eq": "news"}):
            found = (await api.ok(KEYWORD, {"c": name, "q": "text", "w": where}))["search"]
            assert {hit["id"] for hit in found["hits"]} == {"r1", "r2", "r3", "r4"}, where
            assert found["explain"]["keywordCandidates"] == 4, where
