"""The collections API through HTTP on real Milvus Lite and real SQLite / PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Api

CREATE = """
mutation($input: CreateCollectionInput!) {
  createCollection(input: $input) {
    name description dimension metric multiTenant shards
    model { name version }
    fields { name type filterable required maxLength }
    index { type params }
    stats { records indexed pending }
    createdAt
  }
}
"""


def collection_input(name: str, **extra: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": name,
        "dimension": 8,
        "description": "test collection",
        "model": {"name": "a-model-served-elsewhere", "version": "1"},
        "fields": [
            {"name": "category", "type": "STRING", "maxLength": 64},
            {"name": "year", "type": "INT", "required": True},
            {"name": "price", "type": "FLOAT"},
            {"name": "published", "type": "BOOL"},
            {"name": "at", "type": "DATETIME"},
            {"name": "tags", "type": "STRING_LIST"},
            {"name": "details", "type": "JSON"},
            {"name": "notes", "type": "STRING", "filterable": False},
        ],
    }
    spec.update(extra)
    return spec


async def test_create_list_get_drop(api: Api, name: str) -> None:
    data = await api.ok(CREATE, {"input": collection_input(name)})
    created = data["createCollection"]
    assert created["name"] == name
    assert created["metric"] == "COSINE"
    assert created["index"] == {"type": "HNSW", "params": {"M": 16, "efConstruction": 256}}
    assert created["model"] == {"name": "a-model-served-elsewhere", "version": "1"}
    assert created["stats"] == {"records": 0, "indexed": 0, "pending": 0}
    assert [f["name"] for f in created["fields"]][:2] == ["category", "year"]

    listed = await api.ok("{ collections { name dimension stats { records } } }")
    assert {"name": name, "dimension": 8, "stats": {"records": 0}} in listed["collections"]

    one = await api.ok(
        "query($n: String!) { collection(name: $n) { name fields { name type } } }", {"n": name}
    )
    assert one["collection"]["name"] == name

    dropped = await api.ok("mutation($n: String!) { dropCollection(name: $n) }", {"n": name})
    assert dropped == {"dropCollection": True}
    gone = await api.ok("query($n: String!) { collection(name: $n) { name } }", {"n": name})
    assert gone == {"collection": None}
    assert not await api.store.vectors.has_collection(name)
    again = await api.ok("mutation($n: String!) { dropCollection(name: $n) }", {"n": name})
    assert again == {"dropCollection": False}


@pytest.mark.milvus_only
async def test_milvus_has_the_declared_schema(api: Api, name: str) -> None:
    await api.ok(CREATE, {"input": collection_input(name, multiTenant=True, metric="L2")})
    described = await api.store.vectors.describe(f"vq_{name}")
    fields = {f["name"]: f for f in described["fields"]}
    # multi-tenant: keyed by (tenant, id), the id kept for filters (test_tenant_ids.py)
    assert fields["_key"]["is_primary"] is True
    assert fields["_key"]["type"].name == "VARCHAR"
    assert not fields["id"].get("is_primary")
    assert fields["id"]["type"].name == "VARCHAR"
    assert fields["vector"]["type"].name == "FLOAT_VECTOR"
    assert fields["vector"]["params"]["dim"] == 8
    assert fields["tenant"].get("is_partition_key") is True
    expected = {
        "category": "VARCHAR",
        "year": "INT64",
        "price": "DOUBLE",
        "published": "BOOL",
        "at": "INT64",
        "tags": "ARRAY",
        "details": "JSON",
    }
    for field, type_name in expected.items():
        assert fields[field]["type"].name == type_name, field
    assert fields["category"]["params"]["max_length"] == 64
    assert "notes" not in fields  # not filterable: SQL only
    index = described["index"]
    assert index["index_type"] == "HNSW"
    assert index["metric_type"] == "L2"
    if not api.store.vectors.capabilities.lite:  # Milvus Lite does not report index parameters
        assert {k: str(index.get(k)) for k in ("M", "efConstruction")} == {
            "M": "16",
            "efConstruction": "256",
        }


async def test_duplicate_name_is_conflict(api: Api, name: str) -> None:
    await api.ok(CREATE, {"input": collection_input(name)})
    error = await api.error(CREATE, {"input": collection_input(name)})
    assert error["extensions"]["code"] == "CONFLICT"
    assert name in error["message"]


@pytest.mark.validation
@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"name": "9bad"}, "invalid collection name"),
        ({"name": "has-dash"}, "invalid collection name"),
        ({"dimension": 1}, "dimension must be in 2..32768, got 1"),
        ({"dimension": 40000}, "dimension must be in 2..32768, got 40000"),
        ({"fields": [{"name": "id", "type": "STRING"}]}, "reserved"),
        ({"fields": [{"name": "vector", "type": "INT"}]}, "reserved"),
        ({"fields": [{"name": "tenant", "type": "INT"}]}, "reserved"),
        (
            {"fields": [{"name": "a", "type": "INT"}, {"name": "a", "type": "FLOAT"}]},
            "duplicate field name 'a'",
        ),
        ({"fields": [{"name": "bad name", "type": "INT"}]}, "invalid field name"),
        ({"index": {"type": "HNSW", "params": {"nlist": 5}}}, "unknown parameter 'nlist'"),
        ({"index": {"type": "HNSW", "params": {"M": 0}}}, "M must be an integer in 2..2048"),
        ({"index": {"type": "IVF_FLAT", "params": {"nlist": "x"}}}, "nlist must be an integer"),
        ({"index": {"type": "FLAT", "params": {"M": 8}}}, "unknown parameter 'M' for FLAT"),
    ],
)
async def test_invalid_definitions_are_bad_user_input(
    api: Api, name: str, change: dict[str, Any], fragment: str
) -> None:
    spec = collection_input(name)
    spec.update(change)
    error = await api.error(CREATE, {"input": spec})
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert fragment in error["message"]
    stored = await api.store.collections.find(spec["name"])
    assert stored is None


@pytest.mark.validation
async def test_unknown_field_type_is_bad_user_input(api: Api, name: str) -> None:
    spec = collection_input(name, fields=[{"name": "a", "type": "DECIMAL"}])
    error = await api.error(CREATE, {"input": spec})
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "DECIMAL" in error["message"]


@pytest.mark.milvus_only
@pytest.mark.parametrize(
    ("index", "expected"),
    [
        ({"type": "FLAT"}, {}),
        ({"type": "IVF_FLAT", "params": {"nlist": 16}}, {"nlist": 16}),
        ({"type": "IVF_SQ8"}, {"nlist": 128}),
        ({"type": "AUTOINDEX"}, {}),
        (
            {"type": "HNSW", "params": {"M": 8, "efConstruction": 64}},
            {"M": 8, "efConstruction": 64},
        ),
    ],
)
async def test_index_types(
    api: Api, name: str, index: dict[str, Any], expected: dict[str, Any]
) -> None:
    data = await api.ok(CREATE, {"input": collection_input(name, index=index)})
    assert data["createCollection"]["index"] == {"type": index["type"], "params": expected}
    described = await api.store.vectors.describe(f"vq_{name}")
    assert described["index"]["index_type"] == index["type"]


async def test_update_index_rebuilds_and_keeps_data(api: Api, name: str) -> None:
    await api.ok(CREATE, {"input": collection_input(name)})
    info = await api.store.collections.get(name)
    import numpy as np

    from store.records import RecordData

    rows = [
        RecordData(
            id=f"r{i}",
            vector=np.random.default_rng(i).random(8, dtype=np.float32).tobytes(),
            metadata={"year": 2000 + i},
        )
        for i in range(20)
    ]
    await api.store.vectors.upsert(info, rows)
    data = await api.ok(
        """mutation($c: String!, $i: IndexInput!) {
             updateIndex(collection: $c, index: $i) { index { type params } } }""",
        {"c": name, "i": {"type": "IVF_FLAT", "params": {"nlist": 4}}},
    )
    assert data["updateIndex"]["index"] == {"type": "IVF_FLAT", "params": {"nlist": 4}}
    described = await api.store.vectors.describe(f"vq_{name}")
    assert described["index"]["index_type"] == "IVF_FLAT"
    if not api.store.vectors.capabilities.lite:
        assert str(described["index"].get("nlist")) == "4"
    assert await api.store.vectors.count(f"vq_{name}") == 20

    error = await api.error(
        """mutation($c: String!) {
             updateIndex(collection: $c, index: {type: HNSW, params: {M: 1}}) {
             name } }""",
        {"c": name},
    )
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    missing = await api.error(
        'mutation { updateIndex(collection: "nope_x", index: {type: FLAT}) { name } }'
    )
    assert missing["extensions"]["code"] == "NOT_FOUND"


@pytest.mark.sql_only
async def test_failed_milvus_create_leaves_no_registry_row(api: Api, name: str) -> None:
    """The SQL row is inserted, then Milvus refuses the connection: the row is rolled back."""
    from store.collections import Collections
    from store.milvus import MilvusIndex

    store = api.store
    dead = MilvusIndex(uri="http://127.0.0.1:1", timeout=2.0)  # nothing listens on port 1
    dead._capabilities = store.vectors.capabilities  # as if it had answered once before
    try:
        collections = Collections(sessions=store.sessions, vectors=dead)
        from store.records import CollectionSpec

        with pytest.raises(Exception) as caught:
            await collections.create(CollectionSpec(name=name, dimension=8))
    finally:
        await dead.close()
    assert type(caught.value).__name__ == "Unavailable"
    assert await store.collections.find(name) is None
    assert not await store.vectors.has_collection(name)
