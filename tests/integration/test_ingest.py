"""Ingestion through HTTP on real Milvus Lite and real SQLite / PostgreSQL."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from graph.settings import Settings
from store.records import RecordState
from store.text import TENANT_MAX_LENGTH
from store.writes.importer import ImportProgress, import_jsonl
from store.writes.incoming import TEXT_MAX_BYTES
from tests.conftest import Api, fresh_database, make_settings, running_api

DIM = 8

UPSERT = """
mutation($c: String!, $r: [RecordInput!]!, $atomic: Boolean! = true) {
  upsertRecords(collection: $c, records: $r, atomic: $atomic) {
    upserted ids errors { index id code message }
  }
}
"""
RECORD = """
query($c: String!, $id: ID!, $t: String) {
  record(collection: $c, id: $id, tenant: $t) {
    id collection metadata text tenant vector indexed createdAt updatedAt
  }
}
"""
DELETE = """
mutation($c: String!, $ids: [ID!], $t: String) {
  deleteRecords(collection: $c, ids: $ids, tenant: $t) { deleted }
}
"""


def vec(seed: int, dim: int = DIM) -> list[float]:
    return np.random.default_rng(seed).random(dim, dtype=np.float32).tolist()


def b64(values: list[float]) -> str:
    return base64.b64encode(np.asarray(values, dtype="<f4").tobytes()).decode()


async def make_collection(api: Api, name: str, **extra: Any) -> None:
    spec: dict[str, Any] = {
        "name": name,
        "dimension": DIM,
        "fields": [
            {"name": "category", "type": "STRING", "maxLength": 16},
            {"name": "year", "type": "INT"},
            {"name": "price", "type": "FLOAT"},
            {"name": "ok", "type": "BOOL"},
            {"name": "at", "type": "DATETIME"},
            {"name": "tags", "type": "STRING_LIST"},
            {"name": "details", "type": "JSON"},
            {"name": "sku", "type": "STRING", "required": True},
        ],
    }
    spec.update(extra)
    await api.ok(
        "mutation($i: CreateCollectionInput!) { createCollection(input: $i) { name } }",
        {"i": spec},
    )


def good(i: int, **extra: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": f"r{i}",
        "vector": vec(i),
        "metadata": {"sku": f"s{i}", "year": 2000 + i, "category": "news"},
        "text": f"text {i}",
    }
    record.update(extra)
    return record


async def sql_ids(api: Api, name: str) -> set[str]:
    from sqlalchemy import select

    from store.sql.tables import RecordRow

    async with api.store.sessions() as s:
        rows = await s.execute(
            select(RecordRow.id, RecordRow.state).where(RecordRow.collection == name)
        )
        return {r[0] for r in rows.all()}


async def sql_states(api: Api, name: str) -> dict[str, str]:
    from sqlalchemy import select

    from store.sql.tables import RecordRow

    async with api.store.sessions() as s:
        rows = await s.execute(
            select(RecordRow.id, RecordRow.state).where(RecordRow.collection == name)
        )
        return {r[0]: r[1] for r in rows.all()}


async def milvus_ids(api: Api, name: str) -> set[str]:
    return await api.store.vectors.all_ids(f"vq_{name}")


async def test_upsert_list_and_base64_then_read(api: Api, name: str) -> None:
    await make_collection(api, name)
    records = [
        good(1, metadata={"sku": "a", "at": "2024-05-01T12:00:00+02:00", "tags": ["x"],
                          "details": {"k": [1, 2]}, "undeclared": {"kept": True}}),
        good(2, vector=b64(vec(2))),
        {"vector": vec(3), "metadata": {"sku": "c"}},  # no id: generated
    ]  # fmt: skip
    data = await api.ok(UPSERT, {"c": name, "r": records})
    result = data["upsertRecords"]
    assert result["upserted"] == 3
    assert result["ids"][:2] == ["r1", "r2"]
    assert len(result["ids"][2]) == 36  # a UUID
    assert result["errors"] == []

    got = (await api.ok(RECORD, {"c": name, "id": "r1"}))["record"]
    assert got["metadata"] == {
        "sku": "a",
        "at": "2024-05-01T10:00:00.000000Z",
        "tags": ["x"],
        "details": {"k": [1, 2]},
        "undeclared": {"kept": True},
    }
    assert got["text"] == "text 1"
    assert got["indexed"] is True
    assert np.allclose(got["vector"], vec(1))
    from_b64 = (await api.ok(RECORD, {"c": name, "id": "r2"}))["record"]
    assert np.allclose(from_b64["vector"], vec(2))
    # Read-your-writes in Milvus too, immediately.
    assert await api.store.vectors.query_ids(f"vq_{name}", 'id in ["r1", "r2"]') in (
        ["r1", "r2"],
        ["r2", "r1"],
    )
    missing = await api.ok(RECORD, {"c": name, "id": "nope"})
    assert missing == {"record": None}


@pytest.mark.validation
async def test_integers_beyond_64_bits_in_free_form_metadata_come_back_exact(
    api: Api, name: str
) -> None:
    """orjson (SQL JSON columns, response bodies) refuses them; the json fallbacks keep them."""
    await make_collection(api, name)
    huge = 2**70 + 1
    metadata = {"sku": "s", "huge": huge, "nested": {"values": [-(2**65), 3]}}
    await api.ok(UPSERT, {"c": name, "r": [{"id": "big", "vector": vec(1), "metadata": metadata}]})
    response = await api.client.post(
        "/graphql", json={"query": RECORD, "variables": {"c": name, "id": "big"}}
    )
    assert str(huge).encode() in response.content  # digits, not a float
    assert response.json()["data"]["record"]["metadata"] == metadata


@pytest.mark.validation
@pytest.mark.parametrize(
    ("record", "fragment"),
    [
        ({"vector": [1.0, 2.0]}, "vector dimension is 2, expected 8"),
        ({"vector": "A" * 16}, "vector dimension is 3, expected 8"),
        ({"vector": "AAAAAAA="}, "decodes to 5 bytes, not a multiple of 4"),
        ({"vector": "%%%"}, "not a list of numbers or valid base64"),
        ({"vector": [1.0] * 7 + ["x"]}, "vector[7] is not a number"),
        ({"vector": [1.0] * 7 + [True]}, "vector[7] is not a number"),
        ({"vector": [1e39] * 8}, "out of the float32 range"),
        ({"vector": b64([float("nan")] * 8)}, "vector[0] is not finite"),
        ({"vector": b64([1.0] * 7 + [float("inf")])}, "vector[7] is not finite"),
        ({"id": ""}, "id must not be empty"),
        ({"id": "x" * 257}, "id longer than 256 characters"),
        ({"id": "a\nb"}, "id contains control characters"),
        ({"metadata": {"year": "2020"}}, "metadata.year (INT): expected an integer, got a string"),
        ({"metadata": {"year": 1.5}}, "metadata.year (INT): expected an integer"),
        ({"metadata": {"price": "x"}}, "metadata.price (FLOAT): expected a number"),
        ({"metadata": {"ok": 1}}, "metadata.ok (BOOL): expected a boolean"),
        ({"metadata": {"at": "yesterday"}}, "metadata.at (DATETIME): expected an ISO 8601"),
        (
            {"metadata": {"tags": ["a", 1]}},
            "metadata.tags (STRING_LIST): expected a list of strings",
        ),
        ({"metadata": {"category": "x" * 17}}, "metadata.category (STRING): string longer than 16"),
        ({"metadata": {"sku": None}}, "metadata.sku is required"),
        ({"metadata": {}}, "metadata.sku is required"),
        ({"metadata": [1, 2]}, "metadata must be a JSON object"),
        ({"metadata": {"category": "a\x00b"}}, "metadata.category (STRING): text contains a NUL"),
        ({"tenant": "t1"}, "tenant given, but the collection is not multi-tenant"),
        ({"text": "a\x00b"}, "text contains a NUL character"),
        ({"text": "x" * (TEXT_MAX_BYTES + 1)}, f"text longer than {TEXT_MAX_BYTES} bytes"),
        # The limit is on UTF-8 bytes, not characters: half as many two-byte characters.
        ({"text": "é" * (TEXT_MAX_BYTES // 2 + 1)}, f"text longer than {TEXT_MAX_BYTES} bytes"),
    ],
)
async def test_each_validation_rule(
    api: Api, name: str, record: dict[str, Any], fragment: str
) -> None:
    await make_collection(api, name)
    bad = good(7)
    if isinstance(record.get("metadata"), dict) and record["metadata"]:
        record = {**record, "metadata": {**bad["metadata"], **record["metadata"]}}
    bad.update(record)
    error = await api.error(UPSERT, {"c": name, "r": [good(1), bad]})
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert fragment in error["message"], error["message"][:300]
    named = f"record 1 id {bad['id']!r}: " if bad.get("id") else "record 1"
    assert error["message"].startswith(named), error["message"][:300]
    problem = error["extensions"]["problems"][0]
    assert problem["index"] == 1
    assert await sql_ids(api, name) == set()  # atomic: nothing written
    assert await milvus_ids(api, name) == set()


@pytest.mark.validation
async def test_duplicate_ids_in_a_batch(api: Api, name: str) -> None:
    await make_collection(api, name)
    error = await api.error(UPSERT, {"c": name, "r": [good(1), good(2), good(1)]})
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "record 2 id 'r1': duplicate id (also record 0)" in error["message"]


async def test_atomic_batch_lists_every_bad_record_and_writes_nothing(api: Api, name: str) -> None:
    await make_collection(api, name)
    batch = [good(0), good(1, vector=[1.0]), good(2), good(3, metadata={"year": 1})]
    error = await api.error(UPSERT, {"c": name, "r": batch})
    problems = error["extensions"]["problems"]
    assert [(p["index"], p["id"]) for p in problems] == [(1, "r1"), (3, "r3")]
    assert await sql_ids(api, name) == set()
    assert await milvus_ids(api, name) == set()


async def test_non_atomic_batch_writes_the_valid_ones(api: Api, name: str) -> None:
    await make_collection(api, name)
    batch = [good(0), good(1, vector=[1.0]), good(2), good(3, metadata={"year": 1})]
    result = (await api.ok(UPSERT, {"c": name, "r": batch, "atomic": False}))["upsertRecords"]
    assert result["upserted"] == 2
    assert result["ids"] == ["r0", "r2"]
    assert [(e["index"], e["id"], e["code"]) for e in result["errors"]] == [
        (1, "r1", "BAD_USER_INPUT"),
        (3, "r3", "BAD_USER_INPUT"),
    ]
    assert "expected 8" in result["errors"][0]["message"]
    assert await sql_ids(api, name) == {"r0", "r2"}
    assert await milvus_ids(api, name) == {"r0", "r2"}


async def test_same_batch_twice_is_idempotent(api: Api, name: str) -> None:
    await make_collection(api, name)
    batch = [good(i) for i in range(50)]
    await api.ok(UPSERT, {"c": name, "r": batch})
    batch[3] = good(3, text="changed")
    await api.ok(UPSERT, {"c": name, "r": batch})
    assert len(await sql_ids(api, name)) == 50
    assert await api.store.vectors.count(f"vq_{name}") == 50
    assert await milvus_ids(api, name) == {f"r{i}" for i in range(50)}
    got = (await api.ok(RECORD, {"c": name, "id": "r3"}))["record"]
    assert got["text"] == "changed"
    stats = await api.ok(
        "query($n: String!) { collection(name: $n) { stats { records indexed pending } } }",
        {"n": name},
    )
    assert stats["collection"]["stats"] == {"records": 50, "indexed": 50, "pending": 0}


async def test_delete_by_ids(api: Api, name: str) -> None:
    await make_collection(api, name)
    await api.ok(UPSERT, {"c": name, "r": [good(i) for i in range(5)]})
    result = await api.ok(DELETE, {"c": name, "ids": ["r1", "r3", "missing", "r1"]})
    assert result == {"deleteRecords": {"deleted": 2}}
    assert (await api.ok(RECORD, {"c": name, "id": "r1"}))["record"] is None
    assert await sql_ids(api, name) == {"r0", "r2", "r4"}
    assert await api.store.vectors.query_ids(f"vq_{name}", 'id in ["r1", "r3"]') == []
    assert await milvus_ids(api, name) == {"r0", "r2", "r4"}


async def test_multi_tenant_rules(api: Api, name: str) -> None:
    await make_collection(api, name, multiTenant=True)
    error = await api.error(UPSERT, {"c": name, "r": [good(0, tenant="a"), good(1)]})
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["message"] == (
        "record 1 id 'r1': tenant is required: the collection is multi-tenant"
    )
    assert [(p["index"], p["id"]) for p in error["extensions"]["problems"]] == [(1, "r1")]
    await api.ok(UPSERT, {"c": name, "r": [good(1, tenant="a"), good(2, tenant="b")]})
    assert (await api.ok(RECORD, {"c": name, "id": "r1", "t": "b"}))["record"] is None
    assert (await api.ok(RECORD, {"c": name, "id": "r1", "t": "a"}))["record"]["tenant"] == "a"
    no_tenant = await api.error(RECORD, {"c": name, "id": "r1"})
    assert no_tenant["extensions"]["code"] == "BAD_USER_INPUT"
    # Tenant b cannot delete tenant a's record.
    assert (await api.ok(DELETE, {"c": name, "ids": ["r1"], "t": "b"}))["deleteRecords"] == {
        "deleted": 0
    }
    assert (await api.ok(DELETE, {"c": name, "ids": ["r1"], "t": "a"}))["deleteRecords"] == {
        "deleted": 1
    }


@pytest.mark.validation
@pytest.mark.parametrize(
    ("tenant", "reason"),
    [
        ("", "tenant must not be empty"),
        ("a\nb", "tenant contains control characters"),
        ("a\x00b", "tenant contains control characters"),
        ("t" * (TENANT_MAX_LENGTH + 1), f"tenant longer than {TENANT_MAX_LENGTH} characters"),
    ],
    ids=["empty", "newline", "nul", "too-long"],
)
async def test_a_tenant_in_an_invalid_format_is_refused(
    api: Api, name: str, tenant: str, reason: str
) -> None:
    await make_collection(api, name, multiTenant=True)
    batch = [good(0, tenant="a"), good(1, tenant=tenant), good(2, tenant="b")]
    error = await api.error(UPSERT, {"c": name, "r": batch})
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["message"] == f"record 1 id 'r1': {reason}"
    assert error["extensions"]["problems"] == [{"index": 1, "id": "r1", "message": reason}]
    assert await sql_ids(api, name) == set()
    # Without atomicity the other two are written and the bad one is listed.
    result = (await api.ok(UPSERT, {"c": name, "r": batch, "atomic": False}))["upsertRecords"]
    assert result["ids"] == ["r0", "r2"]
    assert result["errors"] == [
        {"index": 1, "id": "r1", "code": "BAD_USER_INPUT", "message": reason}
    ]


@pytest.mark.validation
async def test_batch_over_the_limit_is_refused(api: Api, name: str) -> None:
    await make_collection(api, name)
    limit = api.app.state.settings.max_batch_size
    records = [{"vector": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}] * (limit + 1)
    error = await api.error(UPSERT, {"c": name, "r": records})
    assert error["extensions"]["code"] == "LIMIT_EXCEEDED"


@pytest.mark.sql_only
async def test_unknown_collection_is_not_found(api: Api) -> None:
    error = await api.error(UPSERT, {"c": "no_such_collection", "r": [good(1)]})
    assert error["extensions"]["code"] == "NOT_FOUND"


async def test_milvus_failure_keeps_rows_pending_and_reconciler_catches_up(
    api: Api, name: str
) -> None:
    await make_collection(api, name)
    await api.ok(UPSERT, {"c": name, "r": [good(i) for i in range(10)]})
    # The Milvus collection disappears behind the app's back: a real Milvus failure.
    await api.store.vectors.drop_collection(f"vq_{name}")
    error = await api.error(UPSERT, {"c": name, "r": [good(i) for i in range(10, 20)]})
    assert error["extensions"]["code"] == "UNAVAILABLE"
    assert "stored" in error["message"]
    assert "will be indexed" in error["message"]
    states = await sql_states(api, name)
    assert len(states) == 20
    assert {states[f"r{i}"] for i in range(10, 20)} == {RecordState.PENDING.value}

    report = await api.store.reconciler.run_once()
    assert name in report.recreated
    assert await milvus_ids(api, name) == await sql_ids(api, name) == {f"r{i}" for i in range(20)}
    assert set((await sql_states(api, name)).values()) == {RecordState.INDEXED.value}


async def test_reconciler_removes_milvus_entities_sql_no_longer_has(api: Api, name: str) -> None:
    await make_collection(api, name)
    await api.ok(UPSERT, {"c": name, "r": [good(i) for i in range(5)]})
    info = await api.store.collections.get(name)
    from store.records import RecordData

    stray = RecordData(
        id="stray", vector=np.ones(DIM, dtype="<f4").tobytes(), metadata={"sku": "x"}
    )
    await api.store.vectors.upsert(info, [stray])
    assert "stray" in await milvus_ids(api, name)
    report = await api.store.reconciler.run_once()
    assert report.orphans_removed >= 1
    assert await milvus_ids(api, name) == await sql_ids(api, name)


async def test_json_fields_take_any_json_value(api: Api, name: str) -> None:
    await make_collection(api, name)
    values = [{"k": 1}, [1, "a"], "text", 3.5, True]
    batch = [good(i, metadata={"sku": f"s{i}", "details": v}) for i, v in enumerate(values)]
    await api.ok(UPSERT, {"c": name, "r": batch})
    for i, v in enumerate(values):
        got = (await api.ok(RECORD, {"c": name, "id": f"r{i}"}))["record"]
        assert got["metadata"]["details"] == v
    assert await milvus_ids(api, name) == {f"r{i}" for i in range(len(values))}


# -- flush policy (an app of each test's own, for its own settings) -------------------------------

FLUSH_AT = 25


@pytest.fixture(params=["sqlite", "postgres"])
async def own_database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """An empty SQL database for an app of the test's own (next to the session's Milvus)."""
    async with fresh_database(request.param, tmp_path) as url:
        yield url


def own_settings(milvus_uri: str, database_url: str, **overrides: Any) -> Settings:
    return make_settings(
        milvus_uri=milvus_uri, database_url=database_url, milvus_timeout=30, **overrides
    )


async def drop(api: Api, *names: str) -> None:
    for collection in names:
        await api.ok("mutation($n: String!) { dropCollection(name: $n) }", {"n": collection})


def count_flushes(api: Api, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The Milvus collections flushed from now on, in order (the real flush still runs)."""
    calls: list[str] = []
    real = api.store.vectors.flush

    async def flush(mname: str) -> None:
        calls.append(mname)
        await real(mname)

    monkeypatch.setattr(api.store.vectors, "flush", flush)
    return calls


@pytest.mark.milvus_only
async def test_real_time_upserts_flush_only_past_the_threshold(
    milvus_uri: str, own_database: str, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = f"{name}_b"
    async with running_api(own_settings(milvus_uri, own_database, flush_threshold=FLUSH_AT)) as api:
        try:
            await make_collection(api, name)
            await make_collection(api, other)
            flushes = count_flushes(api, monkeypatch)
            mname = f"vq_{name}"

            for i in range(FLUSH_AT - 1):  # one record per call: real-time use
                await api.ok(UPSERT, {"c": name, "r": [good(i)]})
            # Rows of another collection count for that collection alone.
            await api.ok(UPSERT, {"c": other, "r": [good(i) for i in range(FLUSH_AT - 1)]})
            assert flushes == []

            await api.ok(UPSERT, {"c": name, "r": [good(FLUSH_AT - 1)]})  # reaches the threshold
            assert flushes == [mname]

            # The count starts again after a flush; a batch far past the threshold flushes once.
            for i in range(FLUSH_AT, 2 * FLUSH_AT - 1):
                await api.ok(UPSERT, {"c": name, "r": [good(i)]})
            assert flushes == [mname]
            big = [good(i) for i in range(1000, 1000 + 3 * FLUSH_AT)]
            await api.ok(UPSERT, {"c": name, "r": big})
            assert flushes == [mname, mname]

            # Re-sending rows counts too: Milvus holds their new versions unflushed.
            await api.ok(UPSERT, {"c": name, "r": [good(i) for i in range(FLUSH_AT - 1)]})
            assert flushes == [mname, mname]
            await api.ok(UPSERT, {"c": name, "r": [good(5000)]})
            assert flushes == [mname, mname, mname]
        finally:
            await drop(api, name, other)


async def wait_for(condition: Callable[[], bool], *, seconds: float) -> bool:
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


IDLE = 1.0  # seconds of the idle flush in these tests


def idle_settings(milvus_uri: str, database_url: str, *, idle_rows: int) -> Settings:
    return own_settings(
        milvus_uri,
        database_url,
        flush_threshold=FLUSH_AT,
        flush_idle=IDLE,
        flush_idle_rows=idle_rows,
    )


@pytest.mark.milvus_only
async def test_a_burst_below_the_threshold_is_flushed_once_writes_pause(
    milvus_uri: str, own_database: str, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_api(idle_settings(milvus_uri, own_database, idle_rows=5)) as api:
        try:
            await make_collection(api, name)
            flushes = count_flushes(api, monkeypatch)
            mname = f"vq_{name}"

            # A trickle below flush_idle_rows never arms the idle flush.
            for i in range(4):
                await api.ok(UPSERT, {"c": name, "r": [good(i)]})
            await asyncio.sleep(2.5 * IDLE)
            assert flushes == []

            # Past flush_idle_rows: no flush while writes come, one once they pause.
            await api.ok(UPSERT, {"c": name, "r": [good(i) for i in range(4, 10)]})
            assert flushes == []
            assert await wait_for(lambda: flushes == [mname], seconds=10 * IDLE), flushes
            await asyncio.sleep(2 * IDLE)
            assert flushes == [mname]  # once: nothing unflushed is left
            assert await milvus_ids(api, name) == {f"r{i}" for i in range(10)}

            # The count started again: a trickle below flush_idle_rows stays unflushed.
            await api.ok(UPSERT, {"c": name, "r": [good(i) for i in range(10, 13)]})
            await asyncio.sleep(2.5 * IDLE)
            assert flushes == [mname]
        finally:
            await drop(api, name)


@pytest.mark.milvus_only
async def test_an_idle_flush_of_a_dropped_collection_is_harmless(
    milvus_uri: str, own_database: str, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_api(idle_settings(milvus_uri, own_database, idle_rows=1)) as api:
        await make_collection(api, name)
        flushes = count_flushes(api, monkeypatch)
        await api.ok(UPSERT, {"c": name, "r": [good(i) for i in range(3)]})
        await drop(api, name)  # before the idle flush fires
        # The flush runs (Milvus Lite ignores it, a Milvus server refuses it: logged) and
        # brings nothing back.
        assert await wait_for(lambda: flushes == [f"vq_{name}"], seconds=10 * IDLE)
        await asyncio.sleep(0.5)
        data = await api.ok("{ collections { name } }")
        assert name not in {c["name"] for c in data["collections"]}
        assert not await api.store.vectors.has_collection(name)


@pytest.mark.milvus_only
async def test_an_import_flushes_once_at_its_end(
    milvus_uri: str,
    own_database: str,
    name: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    path = tmp_path / "in.jsonl"
    lines = [{"id": f"i{n}", "vector": vec(n), "metadata": {"sku": f"s{n}"}} for n in range(3 * 10)]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    # A threshold the import never reaches: the only flush is the one at the end.
    async with running_api(own_settings(milvus_uri, own_database, flush_threshold=1000)) as api:
        try:
            await make_collection(api, name)
            flushes = count_flushes(api, monkeypatch)
            flushed_by_batch: list[int] = []

            def progress(_: ImportProgress) -> None:
                flushed_by_batch.append(len(flushes))

            summary = await import_jsonl(
                api.store, path=path, collection=name, batch_size=10, on_progress=progress
            )
            assert summary.ok
            assert summary.records_written == 30
            assert flushed_by_batch == [0, 0, 0]  # no flush while batches were written
            assert flushes == [f"vq_{name}"]
            assert await milvus_ids(api, name) == {f"i{n}" for n in range(30)}
        finally:
            await drop(api, name)
