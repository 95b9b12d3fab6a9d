"""Tenants own their ids (issue 16, point 4): in a multi-tenant collection a record is
(tenant, id). No answer tells a tenant anything about another tenant's ids: for every operation
that takes an id, another tenant's id and an id nobody uses get the same answer. The same id in
two tenants is two independent records. Databases and Milvus collections made when the key was
the id alone are migrated at start-up.

Over HTTP on each cell of {Milvus Lite, Milvus server} x {SQLite, PostgreSQL}, with API keys
bound to tenants (the callers the old ``FORBIDDEN`` listing answered).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pymilvus import MilvusClient
from sqlalchemy import (
    Column,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    insert,
    inspect,
    select,
    text,
)
from sqlalchemy.ext.asyncio import AsyncEngine

from store.index import KEY_FIELD, milvus_key, split_key
from store.records import CollectionInfo, IndexSpec, IndexType, Metric, RecordData
from store.sql.engines import create_tables, make_engine
from store.sql.listing import encode_cursor
from store.sql.tables import JsonType, RecordRow
from tests.conftest import Api, Caller, fresh_database, make_settings, running_api

DIM = 4
UPSERT = """
mutation($c: String!, $r: [RecordInput!]!, $atomic: Boolean! = true) {
  upsertRecords(collection: $c, records: $r, atomic: $atomic) {
    upserted ids errors { index id code message } } }
"""
RECORD = """
query($c: String!, $id: ID!, $t: String) { record(collection: $c, id: $id, tenant: $t) {
  id tenant metadata vector } }
"""
RECORDS = """
query($c: String!, $w: Filter, $t: String, $after: String, $first: Int = 100) {
  records(collection: $c, where: $w, tenant: $t, after: $after, first: $first) {
    totalCount edges { cursor node { id tenant metadata } }
    pageInfo { hasNextPage endCursor } } }
"""
SEARCH = """
query($c: String!, $v: Vector, $near: ID, $w: Filter, $t: String, $k: Int! = 100) {
  search(collection: $c, vector: $v, nearId: $near, where: $w, tenant: $t, topK: $k) {
    hits { id score record { id tenant metadata } } } }
"""
SEARCH_BATCH = """
query($c: String!, $vs: [Vector!]!, $w: Filter, $t: String) {
  searchBatch(collection: $c, vectors: $vs, where: $w, tenant: $t, topK: 100) {
    hits { id score record { id tenant } } } }
"""
DELETE = """
mutation($c: String!, $ids: [ID!], $w: Filter, $t: String) {
  deleteRecords(collection: $c, ids: $ids, where: $w, tenant: $t) { deleted } }
"""
STATS = """
query($c: String!) { collection(name: $c) { stats { records indexed pending } } }
"""
CREATE = """
mutation($i: CreateCollectionInput!) { createCollection(input: $i) { name } }
"""
DROP = "mutation($n: String!) { dropCollection(name: $n) }"


def vec(seed: int) -> list[float]:
    return [float(x) for x in np.random.default_rng(seed).normal(size=DIM).astype(np.float32)]


@dataclass
class Tenants:
    api: Api
    admin: Caller  # not bound to a tenant
    a: Caller  # bound to tenant A
    b: Caller  # bound to tenant B

    async def collection(self) -> str:
        """A fresh multi-tenant collection (field ``group``)."""
        name = f"tid_{uuid.uuid4().hex[:10]}"
        spec = {
            "name": name,
            "dimension": DIM,
            "multiTenant": True,
            "fields": [{"name": "group", "type": "STRING"}],
            "index": {"type": "FLAT"},
        }
        await self.admin.ok(CREATE, {"i": spec})
        return name


@pytest.fixture(scope="session")
async def tenants(database_url: str, milvus_uri: str, session_dir: Path) -> AsyncIterator[Tenants]:
    """An app with API keys on each backend cell (Milvus Lite gets a file of its own)."""
    kind = "sqlite" if database_url.startswith("sqlite") else "postgres"
    if not milvus_uri.startswith("http"):
        milvus_uri = str(session_dir / f"tenant-ids-{uuid.uuid4().hex[:6]}.db")
    async with fresh_database(kind, session_dir) as url:
        settings = make_settings(
            milvus_uri=milvus_uri,
            database_url=url,
            auth="apikey",
            rate_limit_per_second=0,
            milvus_timeout=30,
        )
        async with running_api(settings) as api:
            keys = api.store.keys
            admin = await keys.create(scope="admin")
            a = await keys.create(scope="write", tenant="A")
            b = await keys.create(scope="write", tenant="B")
            yield Tenants(
                api=api,
                admin=Caller(api, admin.secret),
                a=Caller(api, a.secret),
                b=Caller(api, b.secret),
            )


def masked(body: Any, id: str) -> str:
    """The answer with ``id`` written as ``<ID>``, to compare answers about two ids."""
    return json.dumps(body, sort_keys=True).replace(id, "<ID>")


async def same_answer(
    caller: Caller, query: str, variables: Callable[[str], dict[str, Any]], *, other: str
) -> Any:
    """Ask about ``other`` (another tenant's id) and about an id nobody uses; the answers must
    be the same but for the id itself. Returns the answer about ``other``."""
    # The unused id sorts where ``other`` does among the caller's ids (cursors compare ids).
    unused = other.replace("secret", "unused")
    assert unused != other
    theirs = await caller.post(query, variables(other))
    nobodys = await caller.post(query, variables(unused))
    assert masked(theirs, other) == masked(nobodys, unused)
    return theirs


# --- no oracle --------------------------------------------------------------------------------


async def test_another_tenants_id_and_an_unused_id_get_the_same_answers(
    tenants: Tenants,
) -> None:
    c = await tenants.collection()
    a_records = [
        {"id": f"A-secret-{i}", "vector": vec(i), "metadata": {"group": "a"}} for i in range(8)
    ]
    await tenants.a.ok(UPSERT, {"c": c, "r": a_records})
    b_records = [
        {"id": f"B-own-{i}", "vector": vec(100 + i), "metadata": {"group": "b"}} for i in range(5)
    ]
    await tenants.b.ok(UPSERT, {"c": c, "r": b_records})
    a_before = (await tenants.a.ok(RECORDS, {"c": c}))["records"]
    b = tenants.b

    def where_id(i: str) -> dict[str, Any]:
        return {"field": "id", "eq": i}

    # record
    got = await same_answer(b, RECORD, lambda i: {"c": c, "id": i}, other="A-secret-0")
    assert got["data"]["record"] is None
    # search: nearId, and filters on id, for one vector and a batch
    got = await same_answer(b, SEARCH, lambda i: {"c": c, "near": i}, other="A-secret-0")
    assert got["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    got = await same_answer(
        b, SEARCH, lambda i: {"c": c, "v": vec(0), "w": where_id(i)}, other="A-secret-0"
    )
    assert got["data"]["search"]["hits"] == []
    got = await same_answer(
        b,
        SEARCH,
        lambda i: {"c": c, "v": vec(0), "w": {"not": {"field": "id", "in": [i]}}},
        other="A-secret-0",
    )
    assert {h["record"]["tenant"] for h in got["data"]["search"]["hits"]} == {"B"}
    got = await same_answer(
        b,
        SEARCH_BATCH,
        lambda i: {"c": c, "vs": [vec(0), vec(1)], "w": where_id(i)},
        other="A-secret-1",
    )
    assert got["data"]["searchBatch"] == [{"hits": []}, {"hits": []}]
    # records: a filter on id, and a cursor holding the id
    got = await same_answer(b, RECORDS, lambda i: {"c": c, "w": where_id(i)}, other="A-secret-2")
    assert got["data"]["records"]["totalCount"] == 0
    got = await same_answer(
        b, RECORDS, lambda i: {"c": c, "after": encode_cursor(i)}, other="A-secret-2"
    )
    assert [e["node"]["id"] for e in got["data"]["records"]["edges"]] == [
        f"B-own-{i}" for i in range(5)
    ]
    # deleteRecords by ids and by a filter on id: nothing of A's is deleted
    got = await same_answer(b, DELETE, lambda i: {"c": c, "ids": [i]}, other="A-secret-3")
    assert got["data"]["deleteRecords"]["deleted"] == 0
    got = await same_answer(b, DELETE, lambda i: {"c": c, "w": where_id(i)}, other="A-secret-4")
    assert got["data"]["deleteRecords"]["deleted"] == 0
    # upsertRecords: a new record of B's own either way (written, then updated, then deleted)
    for _ in range(2):
        got = await same_answer(
            b,
            UPSERT,
            lambda i: {"c": c, "r": [{"id": i, "vector": vec(7), "metadata": {"group": "b"}}]},
            other="A-secret-5",
        )
        assert got["data"]["upsertRecords"]["upserted"] == 1
    got = await same_answer(
        b,
        UPSERT,
        lambda i: {
            "c": c,
            "atomic": False,
            "r": [
                {"id": i, "vector": vec(8)},
                {"id": f"{i}-bad", "vector": [1.0]},  # wrong dimension: listed in errors
            ],
        },
        other="A-secret-6",
    )
    assert len(got["data"]["upsertRecords"]["errors"]) == 1
    got = await same_answer(b, RECORD, lambda i: {"c": c, "id": i}, other="A-secret-5")
    assert got["data"]["record"]["tenant"] == "B"
    got = await same_answer(
        b, DELETE, lambda i: {"c": c, "ids": [i, f"{i}-bad"]}, other="A-secret-5"
    )
    assert got["data"]["deleteRecords"]["deleted"] == 1
    await b.ok(DELETE, {"c": c, "ids": ["A-secret-6", "A-unused-6"]})
    # naming tenant A is refused whatever the id
    got = await same_answer(
        b,
        UPSERT,
        lambda i: {"c": c, "r": [{"id": i, "vector": vec(9), "tenant": "A"}]},
        other="A-secret-7",
    )
    assert got["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    # and A's records are as they were
    assert (await tenants.a.ok(RECORDS, {"c": c}))["records"] == a_before
    assert (await b.ok(STATS, {"c": c}))["collection"]["stats"]["records"] == 5


async def test_no_answer_lists_another_tenants_ids_in_a_large_batch(tenants: Tenants) -> None:
    """The old oracle: a batch of guesses answered with the ones that exist."""
    c = await tenants.collection()
    await tenants.a.ok(
        UPSERT, {"c": c, "r": [{"id": f"g{i:04d}", "vector": vec(i)} for i in range(0, 500, 7)]}
    )
    guesses = [{"id": f"g{i:04d}", "vector": vec(i)} for i in range(500)]
    body = await tenants.b.post(UPSERT, {"c": c, "r": guesses})
    assert not body.get("errors")
    assert body["data"]["upsertRecords"] == {
        "upserted": 500,
        "ids": [g["id"] for g in guesses],
        "errors": [],
    }
    stats = (await tenants.admin.ok(STATS, {"c": c}))["collection"]["stats"]
    assert stats["records"] == 500 + len(range(0, 500, 7))


# --- two records under one id -----------------------------------------------------------------


async def test_the_same_id_in_two_tenants_is_two_independent_records(tenants: Tenants) -> None:
    c = await tenants.collection()
    admin, a, b = tenants.admin, tenants.a, tenants.b
    await a.ok(UPSERT, {"c": c, "r": [{"id": "dup", "vector": vec(1), "metadata": {"group": "a"}}]})
    await b.ok(UPSERT, {"c": c, "r": [{"id": "dup", "vector": vec(2), "metadata": {"group": "b"}}]})
    others = [{"id": f"a{i}", "vector": vec(10 + i), "metadata": {"group": "a"}} for i in range(3)]
    await a.ok(UPSERT, {"c": c, "r": others})
    # each tenant reads its own
    for caller, group, seed in ((a, "a", 1), (b, "b", 2)):
        record = (await caller.ok(RECORD, {"c": c, "id": "dup"}))["record"]
        assert record["metadata"] == {"group": group}
        assert np.allclose(record["vector"], vec(seed), atol=1e-6)
        hits = (await caller.ok(SEARCH, {"c": c, "v": vec(seed), "k": 1}))["search"]["hits"]
        assert [(h["id"], h["record"]["metadata"]["group"]) for h in hits] == [("dup", group)]
        near = (await caller.ok(SEARCH, {"c": c, "near": "dup"}))["search"]["hits"]
        assert "dup" not in {h["id"] for h in near}  # the query record itself is left out
        assert {h["record"]["metadata"]["group"] for h in near} <= {group}
    # the admin names the tenant; stats count both records
    a_dup = (await admin.ok(RECORD, {"c": c, "id": "dup", "t": "A"}))["record"]
    assert (a_dup["tenant"], a_dup["metadata"]) == ("A", {"group": "a"})
    assert (await admin.ok(STATS, {"c": c}))["collection"]["stats"] == {
        "records": 5,
        "indexed": 5,
        "pending": 0,
    }
    assert (await b.ok(STATS, {"c": c}))["collection"]["stats"]["records"] == 1
    # Milvus holds both, each under its own key
    info = await tenants.api.store.collections.get(c)
    keys = await tenants.api.store.vectors.all_keys(info)
    assert {milvus_key(info, "A", "dup"), milvus_key(info, "B", "dup")} <= keys
    # updating one leaves the other
    await b.ok(
        UPSERT, {"c": c, "r": [{"id": "dup", "vector": vec(3), "metadata": {"group": "B2"}}]}
    )
    assert (await a.ok(RECORD, {"c": c, "id": "dup"}))["record"]["metadata"] == {"group": "a"}
    # deleting one leaves the other, in SQL and in Milvus
    assert (await a.ok(DELETE, {"c": c, "ids": ["dup"]}))["deleteRecords"]["deleted"] == 1
    assert (await a.ok(RECORD, {"c": c, "id": "dup"}))["record"] is None
    assert (await b.ok(RECORD, {"c": c, "id": "dup"}))["record"]["metadata"] == {"group": "B2"}
    hits = (await b.ok(SEARCH, {"c": c, "v": vec(3), "k": 1}))["search"]["hits"]
    assert [h["id"] for h in hits] == ["dup"]
    hits = (await a.ok(SEARCH, {"c": c, "v": vec(3)}))["search"]["hits"]
    assert "dup" not in {h["id"] for h in hits}
    keys = await tenants.api.store.vectors.all_keys(info)
    assert milvus_key(info, "A", "dup") not in keys
    assert milvus_key(info, "B", "dup") in keys
    # a delete by filter in one tenant leaves the other's too
    await a.ok(UPSERT, {"c": c, "r": [{"id": "dup", "vector": vec(1), "metadata": {"group": "x"}}]})
    await b.ok(UPSERT, {"c": c, "r": [{"id": "dup", "vector": vec(2), "metadata": {"group": "x"}}]})
    deleted = await b.ok(DELETE, {"c": c, "w": {"field": "group", "eq": "x"}})
    assert deleted["deleteRecords"]["deleted"] == 1
    assert (await a.ok(RECORD, {"c": c, "id": "dup"}))["record"]["metadata"] == {"group": "x"}


async def test_the_reconciler_keeps_and_pushes_both_records_of_one_id(
    tenants: Tenants, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reconciler compares Milvus keys with SQL's (tenant, id), and walks pending rows by
    (tenant, id): paging by id alone would skip the second tenant's record of an id."""
    import store.writes.reconciler

    c = await tenants.collection()
    store_ = tenants.api.store
    for caller, seed in ((tenants.a, 0), (tenants.b, 50)):
        batch = [{"id": f"r{i}", "vector": vec(seed + i)} for i in range(3)]
        await caller.ok(UPSERT, {"c": c, "r": batch})
    info = await store_.collections.get(c)
    expected = {milvus_key(info, t, f"r{i}") for t in "AB" for i in range(3)}
    assert await store_.vectors.all_keys(info) == expected
    # Milvus loses B's r1 (A's stays): the reconciler pushes it again. (Not ``full``: that
    # would drop Milvus collections of other registries sharing the Milvus server.)
    await store_.vectors.delete_ids(info.milvus_name, [milvus_key(info, "B", "r1")])
    report = await store_.reconciler.run_once()
    assert not report.skipped
    assert c not in report.recreated
    assert await store_.vectors.all_keys(info) == expected
    # an entity SQL does not have (tenant C's r0) is removed; A's and B's r0 stay
    stray = RecordData(id="r0", vector=np.ones(DIM, dtype="<f4").tobytes(), metadata={}, tenant="C")
    await store_.vectors.upsert(info, [stray])
    report = await store_.reconciler.run_once()
    assert report.orphans_removed == 1
    assert await store_.vectors.all_keys(info) == expected
    # Milvus loses every entity; SQL's rows are pushed again in pages of one row
    await store_.vectors.delete_ids(info.milvus_name, sorted(expected))
    async with store_.sessions() as session, session.begin():
        await session.execute(
            RecordRow.__table__.update()  # type: ignore[attr-defined]
            .where(RecordRow.__table__.c.collection == c)  # type: ignore[attr-defined]
            .values(state="pending")
        )
    monkeypatch.setattr(store.writes.reconciler, "BATCH", 1)
    report = await store_.reconciler.run_once()
    assert report.pushed == 6
    assert await store_.vectors.all_keys(info) == expected
    for caller, seed in ((tenants.a, 0), (tenants.b, 50)):
        hits = (await caller.ok(SEARCH, {"c": c, "v": vec(seed), "k": 1}))["search"]["hits"]
        assert [h["id"] for h in hits] == ["r0"]
    stats = (await tenants.admin.ok(STATS, {"c": c}))["collection"]["stats"]
    assert stats == {"records": 6, "indexed": 6, "pending": 0}


def test_milvus_keys_are_unambiguous() -> None:
    multi = _info(multi_tenant=True)
    plain = _info(multi_tenant=False)
    pairs = [("A", "x"), ("A:1", "x"), ("A", "1:x"), ("1:A", ":x"), ("é", "ü:"), ("a" * 256, "b")]
    keys = [milvus_key(multi, t, i) for t, i in pairs]
    assert len(set(keys)) == len(pairs)
    assert [split_key(multi, k) for k in keys] == pairs
    assert milvus_key(plain, None, "x") == "x"
    assert split_key(plain, "3:abc:x") == (None, "3:abc:x")
    # a key of a collection not yet rebuilt (the id alone) is taken for the id
    assert split_key(multi, "plain-id") == (None, "plain-id")


def _info(*, multi_tenant: bool) -> CollectionInfo:
    return CollectionInfo(
        name="k",
        description=None,
        dimension=DIM,
        metric=Metric.COSINE,
        model=None,
        fields=(),
        index=IndexSpec(type=IndexType.FLAT, params={}),
        multi_tenant=multi_tenant,
        shards=1,
        milvus_name="vq_k",
        created_at=datetime.now(UTC),
        updated_at=datetime.now(UTC),
    )


# --- migration of the layout of earlier versions ----------------------------------------------

# ``vq_record`` as versions before tenant-scoped keys created it.
OLD = MetaData()
OLD_RECORDS = Table(
    "vq_record",
    OLD,
    Column("collection", String(63), primary_key=True),
    Column("id", String(256), primary_key=True),
    Column("tenant", String(256), nullable=True),
    Column("vector", LargeBinary, nullable=False),
    Column("metadata", JsonType, nullable=False),
    Column("text", Text, nullable=True),
    Column("state", String(16), nullable=False),
    Column("revision", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ix_vq_record_state", "collection", "state"),
    Index("ix_vq_record_tenant", "collection", "tenant", "id"),
)


async def make_old_record_table(engine: AsyncEngine) -> None:
    """Turn ``vq_record`` back into the old layout, keeping its rows (tenant NULL where the
    collection is not multi-tenant)."""
    async with engine.begin() as conn:
        rows = (await conn.execute(select(RecordRow.__table__))).mappings().all()  # type: ignore[attr-defined]
        await conn.execute(text("DROP TABLE vq_record"))
        await conn.run_sync(OLD.create_all)
        if rows:
            await conn.execute(
                insert(OLD_RECORDS), [{**r, "tenant": r["tenant"] or None} for r in rows]
            )


async def record_key(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as conn:
        pk = await conn.run_sync(lambda c: inspect(c).get_pk_constraint("vq_record"))
    return list(pk["constrained_columns"])


async def test_start_up_migrates_the_layout_of_earlier_versions(
    database_url: str, milvus_uri: str, tmp_path: Path
) -> None:
    kind = "sqlite" if database_url.startswith("sqlite") else "postgres"
    if not milvus_uri.startswith("http"):
        milvus_uri = str(tmp_path / "milvus.db")
    suffix = uuid.uuid4().hex[:8]
    multi, plain = f"old_mt_{suffix}", f"old_plain_{suffix}"
    async with fresh_database(kind, tmp_path) as url:
        settings = make_settings(milvus_uri=milvus_uri, database_url=url, milvus_timeout=30)
        # 1. Data written by this version, then turned into the old layout in SQL and Milvus.
        async with running_api(settings) as api:
            for name, is_multi in ((multi, True), (plain, False)):
                spec = {
                    "name": name,
                    "dimension": DIM,
                    "multiTenant": is_multi,
                    "fields": [{"name": "group", "type": "STRING"}],
                    "index": {"type": "FLAT"},
                }
                await api.ok(CREATE, {"i": spec})
            for t in "AB":
                batch = [
                    {"id": f"{t}{i}", "vector": vec(ord(t) * 10 + i), "tenant": t,
                     "metadata": {"group": t}}
                    for i in range(4)
                ]  # fmt: skip
                await api.ok(UPSERT, {"c": multi, "r": batch})
            await api.ok(
                UPSERT, {"c": plain, "r": [{"id": f"p{i}", "vector": vec(i)} for i in range(4)]}
            )
            await make_old_record_table(api.store.engine)
            info = await api.store.collections.get(multi)
            client = MilvusClient(uri=api.store.vectors.uri)  # the test's own, same Milvus
            try:
                await asyncio.to_thread(_old_milvus, client, info)
            finally:
                client.close()
            assert await api.store.reconciler.stale_key(info)
        assert await _old_keys(settings) == ["collection", "id"]

        # 2. Start-up migrates both.
        async with running_api(settings) as api:
            assert await record_key(api.store.engine) == ["collection", "tenant", "id"]
            info = await api.store.collections.get(multi)
            desc = await api.store.vectors.describe(info.milvus_name)
            assert [f["name"] for f in desc["fields"] if f.get("is_primary")] == [KEY_FIELD]
            assert await api.store.vectors.all_keys(info) == {
                milvus_key(info, t, f"{t}{i}") for t in "AB" for i in range(4)
            }
            async with api.store.engine.connect() as conn:
                tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
                tenants = (
                    await conn.execute(
                        text("SELECT tenant, count(*) FROM vq_record WHERE collection = :c "
                             "GROUP BY tenant ORDER BY tenant"),
                        {"c": plain},
                    )
                ).all()  # fmt: skip
            assert "vq_record_old" not in tables
            assert [tuple(r) for r in tenants] == [("", 4)]
            # everything reads, searches, writes and deletes as before
            for t in "AB":
                got = (await api.ok(RECORD, {"c": multi, "id": f"{t}1", "t": t}))["record"]
                assert (got["tenant"], got["metadata"]) == (t, {"group": t})
                hits = await api.ok(SEARCH, {"c": multi, "v": vec(ord(t) * 10 + 2), "t": t, "k": 1})
                assert [h["id"] for h in hits["search"]["hits"]] == [f"{t}2"]
            assert (await api.ok(RECORD, {"c": plain, "id": "p1"}))["record"]["tenant"] is None
            hits = await api.ok(SEARCH, {"c": plain, "v": vec(3), "k": 1})
            assert [h["id"] for h in hits["search"]["hits"]] == ["p3"]
            page = (await api.ok(RECORDS, {"c": plain, "first": 2}))["records"]
            assert [e["node"]["id"] for e in page["edges"]] == ["p0", "p1"]
            # and an id may now be in both tenants
            await api.ok(
                UPSERT, {"c": multi, "r": [{"id": "A1", "vector": vec(99), "tenant": "B"}]}
            )
            assert (await api.ok(STATS, {"c": multi}))["collection"]["stats"]["records"] == 9
            deleted = await api.ok(DELETE, {"c": multi, "ids": ["A1"], "t": "A"})
            assert deleted["deleteRecords"]["deleted"] == 1
            assert (await api.ok(RECORD, {"c": multi, "id": "A1", "t": "B"}))["record"]

        # 3. A second start finds nothing to migrate and rebuilds nothing.
        async with running_api(settings) as api:
            info = await api.store.collections.get(multi)
            assert not await api.store.reconciler.stale_key(info)
            assert (await api.ok(STATS, {"c": multi}))["collection"]["stats"]["records"] == 8
            await api.ok(DROP, {"n": multi})
            await api.ok(DROP, {"n": plain})


def _old_milvus(client: Any, info: Any) -> None:
    """Recreate ``info``'s Milvus collection as earlier versions made a multi-tenant one: keyed
    by ``id``, with the same entities."""
    from pymilvus import DataType

    rows = client.query(
        info.milvus_name,
        filter='id != ""',
        output_fields=["id", "vector", "tenant", "group", "_absent"],
        consistency_level="Strong",
    )
    client.drop_collection(info.milvus_name)
    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=256)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=DIM)
    schema.add_field("tenant", DataType.VARCHAR, max_length=256, is_partition_key=True)
    schema.add_field("group", DataType.VARCHAR, max_length=256)
    schema.add_field("_absent", DataType.ARRAY, element_type=DataType.VARCHAR, max_capacity=1,
                     max_length=64)  # fmt: skip
    index = client.prepare_index_params()
    index.add_index(field_name="vector", index_name="vector", index_type="FLAT",
                    metric_type=info.metric.value)  # fmt: skip
    client.create_collection(info.milvus_name, schema=schema, index_params=index, num_partitions=16)
    client.insert(
        info.milvus_name,
        [
            {k: (list(r[k]) if k in ("vector", "_absent") else r[k]) for k in
             ("id", "vector", "tenant", "group", "_absent")}
            for r in rows
        ],
    )  # fmt: skip
    client.flush(info.milvus_name)
    client.load_collection(info.milvus_name)


async def _old_keys(settings: Any) -> list[str]:
    engine = make_engine(settings.database_url, pool_size=1)
    try:
        return await record_key(engine)
    finally:
        await engine.dispose()


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
async def test_processes_migrating_one_database_at_once_all_succeed(
    kind: str, tmp_path: Path
) -> None:
    """``--workers N`` started on a database of an earlier version: one migrates, the others
    wait for it and find it done; every row is kept."""
    async with fresh_database(kind, tmp_path) as url:
        setup = make_engine(url, pool_size=1)
        try:
            await create_tables(setup)
            now = datetime.now(UTC)
            rows = [
                {"collection": c, "id": f"r{i}", "tenant": t, "vector": b"\0" * 16,
                 "metadata": {"i": i}, "text": None, "state": "indexed", "revision": 1,
                 "created_at": now, "updated_at": now}
                for c, t in (("mt", "A"), ("plain", None))
                for i in range(50)
            ]  # fmt: skip
            await make_old_record_table(setup)
            async with setup.begin() as conn:
                await conn.execute(insert(OLD_RECORDS), rows)
        finally:
            await setup.dispose()
        engines = [make_engine(url, pool_size=1) for _ in range(4)]
        try:
            await asyncio.gather(*(create_tables(e) for e in engines))
            assert await record_key(engines[0]) == ["collection", "tenant", "id"]
            async with engines[0].connect() as conn:
                got = (
                    await conn.execute(
                        text("SELECT collection, tenant, count(*) FROM vq_record "
                             "GROUP BY collection, tenant ORDER BY collection")
                    )
                ).all()  # fmt: skip
        finally:
            for e in engines:
                await e.dispose()
    assert [tuple(r) for r in got] == [("mt", "A", 50), ("plain", "", 50)]


async def test_one_batch_may_hold_the_same_id_in_two_tenants(tenants: Tenants) -> None:
    """The admin writes an id for two tenants in one call: two records; the same id twice in one
    tenant is still a duplicate."""
    c = await tenants.collection()
    records = [
        {"id": "x", "tenant": "A", "vector": vec(1), "metadata": {"group": "a"}},
        {"id": "x", "tenant": "B", "vector": vec(2), "metadata": {"group": "b"}},
    ]
    assert (await tenants.admin.ok(UPSERT, {"c": c, "r": records}))["upsertRecords"][
        "upserted"
    ] == 2
    for caller, group in ((tenants.a, "a"), (tenants.b, "b")):
        record = (await caller.ok(RECORD, {"c": c, "id": "x"}))["record"]
        assert record["metadata"] == {"group": group}
    twice = [records[0], {**records[0], "vector": vec(3)}]
    body = await tenants.admin.post(UPSERT, {"c": c, "r": twice})
    [error] = body["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "duplicate id (also record 0)" in error["message"]
