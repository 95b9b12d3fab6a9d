"""Search, searchBatch and records through HTTP on {Milvus Lite, Milvus 2.3 server} x {SQLite,
PostgreSQL}."""

from __future__ import annotations

import asyncio
import base64
import time
from typing import Any

import numpy as np
import pytest
from pymilvus import MilvusClient
from sqlalchemy import event

from store.milvus import MilvusIndex
from store.records import CollectionInfo, RecordData
from store.sql.reads import INLINE_MAX_IDS
from tests.conftest import Api, count_sql

DIM = 16

SEARCH = """
query($c: String!, $v: Vector, $near: ID, $k: Int! = 10, $o: Int! = 0, $w: Filter,
      $p: SearchParams, $t: String, $m: String) {
  search(collection: $c, vector: $v, nearId: $near, topK: $k, offset: $o, where: $w, params: $p,
         tenant: $t, model: $m) {
    hits { id score distance record { id metadata text tenant } }
    tookMs
    explain { milvusMs sqlMs totalMs indexType params consistency candidates returned route short }
  }
}
"""
UPSERT = """
mutation($c: String!, $r: [RecordInput!]!) {
  upsertRecords(collection: $c, records: $r) { upserted }
}
"""

DELETE_WHERE = """
mutation($c: String!, $w: Filter) { deleteRecords(collection: $c, where: $w) { deleted } }
"""


def b64(v: np.ndarray) -> str:
    return base64.b64encode(np.asarray(v, dtype="<f4").tobytes()).decode()


async def setup(
    api: Api,
    name: str,
    *,
    metric: str = "COSINE",
    index: dict[str, Any] | None = None,
    n: int = 200,
    multi_tenant: bool = False,
    seed: int = 7,
) -> np.ndarray:
    spec: dict[str, Any] = {
        "name": name,
        "dimension": DIM,
        "metric": metric,
        "model": {"name": "m1", "version": "2"},
        "multiTenant": multi_tenant,
        "fields": [
            {"name": "group", "type": "STRING"},
            {"name": "n", "type": "INT"},
            {"name": "x", "type": "FLOAT"},
            {"name": "flag", "type": "BOOL"},
            {"name": "at", "type": "DATETIME"},
            {"name": "tags", "type": "STRING_LIST"},
        ],
    }
    if index:
        spec["index"] = index
    await api.ok(
        "mutation($i: CreateCollectionInput!) { createCollection(input: $i) { name } }",
        {"i": spec},
    )
    vectors = np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)
    records = []
    for i in range(n):
        meta: dict[str, Any] = {
            "group": "even" if i % 2 == 0 else "odd",
            "n": i,
            "x": i / 10,
            "flag": i % 3 == 0,
            "at": f"2024-01-{1 + i % 28:02d}T00:00:00Z",
            "tags": [f"t{i % 5}", "all"],
        }
        if i % 7 == 0:
            del meta["x"]  # some records without x
        record: dict[str, Any] = {"id": f"r{i:04d}", "vector": b64(vectors[i]), "metadata": meta}
        if multi_tenant:
            record["tenant"] = "A" if i % 2 == 0 else "B"
        records.append(record)
    await api.ok(UPSERT, {"c": name, "r": records})
    return vectors


def exact(
    vectors: np.ndarray, q: np.ndarray, metric: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(order, score, distance) by numpy brute force, with the API's semantics."""
    if metric == "COSINE":
        sims = (vectors @ q) / (np.linalg.norm(vectors, axis=1) * np.linalg.norm(q))
        return np.argsort(-sims), sims, 1 - sims
    if metric == "IP":
        ips = vectors @ q
        return np.argsort(-ips), ips, -ips
    dist = np.linalg.norm(vectors - q, axis=1)
    return np.argsort(dist), 1 / (1 + dist), dist


@pytest.mark.milvus_only
@pytest.mark.parametrize("metric", ["COSINE", "L2", "IP"])
async def test_flat_search_matches_numpy_exactly(api: Api, name: str, metric: str) -> None:
    vectors = await setup(api, name, metric=metric, index={"type": "FLAT"})
    rng = np.random.default_rng(1)
    for _ in range(3):
        q = rng.normal(size=DIM).astype(np.float32)
        data = await api.ok(SEARCH, {"c": name, "v": q.tolist(), "k": 20})
        hits = data["search"]["hits"]
        order, scores, distances = exact(vectors, q, metric)
        assert [h["id"] for h in hits] == [f"r{i:04d}" for i in order[:20]]
        for h, i in zip(hits, order[:20], strict=True):
            assert h["score"] == pytest.approx(float(scores[i]), abs=1e-4)
            assert h["distance"] == pytest.approx(float(distances[i]), abs=1e-4)
            assert h["record"]["id"] == h["id"]
        assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
        assert data["search"]["tookMs"] > 0


@pytest.mark.milvus_only
async def test_offset_pages_through_the_ranking(api: Api, name: str) -> None:
    vectors = await setup(api, name, index={"type": "FLAT"})
    q = vectors[3] + 0.01
    first = await api.ok(SEARCH, {"c": name, "v": b64(q), "k": 10})
    second = await api.ok(SEARCH, {"c": name, "v": b64(q), "k": 5, "o": 5})
    assert [h["id"] for h in second["search"]["hits"]] == [
        h["id"] for h in first["search"]["hits"][5:10]
    ]


async def test_near_id_uses_the_stored_vector_and_excludes_itself(api: Api, name: str) -> None:
    vectors = await setup(api, name, index={"type": "FLAT"})
    data = await api.ok(SEARCH, {"c": name, "near": "r0005", "k": 5})
    ids = [h["id"] for h in data["search"]["hits"]]
    assert "r0005" not in ids
    order, _, _ = exact(vectors, vectors[5], "COSINE")
    assert ids == [f"r{i:04d}" for i in order[1:6]]
    missing = await api.error(SEARCH, {"c": name, "near": "nope"})
    assert missing["extensions"]["code"] == "NOT_FOUND"


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ({"field": "group", "eq": "even"}, lambda i: i % 2 == 0),
        ({"field": "group", "ne": "even"}, lambda i: i % 2 == 1),
        ({"field": "n", "in": [1, 2, 3, 50]}, lambda i: i in (1, 2, 3, 50)),
        ({"field": "n", "notIn": [1, 2]}, lambda i: i not in (1, 2)),
        ({"field": "n", "gt": 190}, lambda i: i > 190),
        ({"field": "n", "gte": 190}, lambda i: i >= 190),
        ({"field": "n", "lt": 5}, lambda i: i < 5),
        ({"field": "n", "lte": 5}, lambda i: i <= 5),
        ({"field": "x", "gte": 19.5}, lambda i: i % 7 != 0 and i / 10 >= 19.5),
        ({"field": "x", "isNull": True}, lambda i: i % 7 == 0),
        ({"not": {"field": "x", "gt": 1}}, lambda i: i % 7 == 0 or i / 10 <= 1),
        ({"field": "flag", "eq": True}, lambda i: i % 3 == 0),
        ({"field": "at", "lt": "2024-01-03T00:00:00Z"}, lambda i: i % 28 < 2),
        ({"field": "tags", "contains": "t1"}, lambda i: i % 5 == 1),
        ({"field": "tags", "containsAny": ["t1", "t2"]}, lambda i: i % 5 in (1, 2)),
        ({"field": "tags", "containsAll": ["t1", "all"]}, lambda i: i % 5 == 1),
        ({"field": "id", "like": "r001%"}, lambda i: 10 <= i < 20),
        ({"field": "id", "in": ["r0001", "r0002"]}, lambda i: i in (1, 2)),
        (
            {
                "or": [
                    {"field": "n", "lt": 3},
                    {"and": [{"field": "n", "gt": 100}, {"field": "group", "eq": "odd"}]},
                ]
            },
            lambda i: i < 3 or (i > 100 and i % 2 == 1),
        ),
    ],
)
async def test_filters_in_search_and_records_agree(
    api: Api, name: str, where: dict[str, Any], expected: Any
) -> None:
    vectors = await setup(api, name, index={"type": "FLAT"})
    want = {f"r{i:04d}" for i in range(len(vectors)) if expected(i)}
    data = await api.ok(SEARCH, {"c": name, "v": b64(vectors[0]), "k": 1000, "w": where})
    assert {h["id"] for h in data["search"]["hits"]} == want
    listed = await api.ok(
        """query($c: String!, $w: Filter) {
             records(collection: $c, where: $w, first: 1000) {
               totalCount edges { node { id } } } }""",
        {"c": name, "w": where},
    )
    assert {e["node"]["id"] for e in listed["records"]["edges"]} == want
    assert listed["records"]["totalCount"] == len(want)


@pytest.mark.validation
@pytest.mark.parametrize(
    ("where", "fragment"),
    [
        ({"field": "nope", "eq": 1}, "unknown field"),
        ({"field": "n", "eq": "x"}, "where"),
        ({"field": "n", "eq": 1, "gt": 2}, "where"),
        ({"field": "n", "in": []}, "where"),
        ({"field": "group", "contains": "x"}, "where"),
        ({"and": [{"field": "n", "eq": 1}], "field": "n"}, "where"),
    ],
)
async def test_bad_filters_are_bad_user_input(
    api: Api, name: str, where: dict[str, Any], fragment: str
) -> None:
    await setup(api, name, n=4)
    error = await api.error(SEARCH, {"c": name, "v": b64(np.ones(DIM)), "w": where})
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert fragment in error["message"]


async def test_hostile_filter_values_match_nothing(api: Api, name: str) -> None:
    vectors = await setup(api, name, n=20)
    for value in ['" or id != "', "') or true or ('", "\\", '\\" or true or \\"', "a\nb", "“x”"]:
        data = await api.ok(
            SEARCH,
            {"c": name, "v": b64(vectors[0]), "k": 100, "w": {"field": "group", "eq": value}},
        )
        assert data["search"]["hits"] == []
        deleted = await api.ok(
            DELETE_WHERE,
            {"c": name, "w": {"field": "id", "eq": value}},
        )
        assert deleted["deleteRecords"]["deleted"] == 0
    count = await api.ok(
        "query($c: String!) { records(collection: $c) { totalCount } }", {"c": name}
    )
    assert count["records"]["totalCount"] == 20


async def wait_until_indexed(api: Api, info: CollectionInfo, rows: int) -> dict[str, Any]:
    """Wait until Milvus's vector index covers all ``rows``, then reload the collection so every
    sealed segment is searched through that index. Milvus standalone builds indexes in the
    background: a search that runs before is brute force, and its recall says nothing."""
    deadline = time.monotonic() + 300
    while True:
        desc: dict[str, Any] = (await api.store.vectors.describe(info.milvus_name))["index"]
        if int(desc.get("indexed_rows", 0)) >= rows and int(desc.get("pending_index_rows", 0)) == 0:
            break
        assert time.monotonic() < deadline, f"the index did not cover {rows} rows: {desc}"
        await asyncio.sleep(0.5)

    def reload() -> None:  # through a client of the test's own, on the same Milvus
        client = MilvusClient(uri=api.store.vectors.uri)
        try:
            client.release_collection(info.milvus_name)
            client.load_collection(info.milvus_name)
        finally:
            client.close()

    await asyncio.to_thread(reload)
    return desc


@pytest.mark.milvus_only
async def test_hnsw_default_params_have_high_recall_on_real_embeddings(
    api: Api, name: str, debian_slice: tuple[np.ndarray, np.ndarray, list[dict[str, Any]]]
) -> None:
    base, queries, _ = debian_slice
    created = await api.ok(
        """mutation($i: CreateCollectionInput!) {
             createCollection(input: $i) { index { type } } }""",
        {"i": {"name": name, "dimension": base.shape[1]}},
    )
    assert created["createCollection"]["index"]["type"] == "HNSW"  # the default
    for start in range(0, len(base), 1000):
        chunk = [
            {"id": str(i), "vector": b64(base[i])}
            for i in range(start, min(start + 1000, len(base)))
        ]
        await api.ok(UPSERT, {"c": name, "r": chunk})
    info = await api.store.collections.get(name)
    await api.store.writer.flush(info)
    index = await wait_until_indexed(api, info, len(base))
    # What Milvus itself says it built, not what the registry asked for.
    assert index["index_type"] == "HNSW", index
    assert index["metric_type"] == "COSINE", index
    assert int(index["indexed_rows"]) == len(base), index
    normed = base / np.linalg.norm(base, axis=1, keepdims=True)
    recalls = []
    for q in queries:
        truth = set(np.argsort(-(normed @ (q / np.linalg.norm(q))))[:10].tolist())
        data = await api.ok(SEARCH, {"c": name, "v": b64(q), "k": 10})
        assert data["search"]["explain"]["indexType"] == "HNSW"
        got = {int(h["id"]) for h in data["search"]["hits"]}
        recalls.append(len(got & truth) / 10)
    assert float(np.mean(recalls)) >= 0.95, np.mean(recalls)


async def test_a_milvus_hit_without_a_sql_record_is_dropped(api: Api, name: str) -> None:
    vectors = await setup(api, name, n=30, index={"type": "FLAT"})
    info = await api.store.collections.get(name)
    # An entity in Milvus that SQL never had (a write cut off between Milvus and SQL, or one the
    # reconciler has not removed yet), written behind the app's back through its adapter.
    stray = np.random.default_rng(99).normal(size=DIM).astype(np.float32)
    await api.store.vectors.upsert(
        info,
        [RecordData(id="stray", vector=stray.astype("<f4").tobytes(), metadata={"group": "even"})],
    )
    assert await api.store.vectors.query_ids(info.milvus_name, 'id == "stray"') == ["stray"]

    order, _, _ = exact(vectors, stray, "COSINE")
    for where in (None, {"field": "group", "eq": "even"}):
        data = await api.ok(SEARCH, {"c": name, "v": b64(stray), "k": 5, "w": where})
        hits = data["search"]["hits"]
        ids = [h["id"] for h in hits]
        assert "stray" not in ids
        want = [f"r{i:04d}" for i in order if where is None or i % 2 == 0]
        assert ids == want[: len(ids)]
        assert all(h["record"]["id"] == h["id"] for h in hits)
        explain = data["search"]["explain"]
        if explain["route"] == "index":
            # The stray entity was Milvus's best candidate; the join dropped it.
            assert explain["candidates"] - explain["returned"] == 1, explain
        else:  # ranked exactly from SQL (a selective filter on Milvus Lite): never seen at all
            assert explain["route"] == "exact"
            assert explain["candidates"] == explain["returned"], explain
        assert explain["returned"] == len(hits) >= 4

    near = await api.ok(SEARCH, {"c": name, "near": "r0000", "k": 30})
    assert "stray" not in {h["id"] for h in near["search"]["hits"]}


@pytest.mark.milvus_only
async def test_milvus_sends_back_only_the_ids_of_the_hits(api: Api, name: str) -> None:
    """Milvus Lite answers a search without output fields with every field, the vector included
    (four times the client's CPU per search at topK 100): the store asks for the id alone."""
    vectors = await setup(api, name, n=30)
    fields: list[set[str]] = []

    class Recording(MilvusClient):
        def search(self, *args: Any, **kwargs: Any) -> Any:
            result = super().search(*args, **kwargs)
            fields.extend(set(hit["entity"]) for hits in result for hit in hits)
            return result

    index = MilvusIndex(uri=api.store.vectors.uri, client=Recording)
    try:
        info = await api.store.collections.get(name)
        hits = await index.search(info, [vectors[0]], limit=10)
    finally:
        await index.close()
    assert len(hits[0]) == 10
    assert len(fields) == 10
    assert all(f <= {"id"} for f in fields), fields


@pytest.mark.sql_only
async def test_one_sql_statement_per_search_whatever_top_k(api: Api, name: str) -> None:
    vectors = await setup(api, name, n=150)
    await api.ok(SEARCH, {"c": name, "v": b64(vectors[0]), "k": 1})  # warms the registry entry
    sql = count_sql(api)
    statements = sql.seen
    try:
        for k in (1, 10, 100):
            await api.ok(SEARCH, {"c": name, "v": b64(vectors[0]), "k": 1})  # registry entry fresh
            statements.clear()
            data = await api.ok(SEARCH, {"c": name, "v": b64(vectors[1]), "k": k})
            assert len(data["search"]["hits"]) == k
            assert len(statements) == 1, statements
            assert "vq_record" in statements[0]

        calls = []
        original = api.store.vectors.search

        async def spy(*args: Any, **kwargs: Any) -> Any:
            calls.append(len(args[1]))
            return await original(*args, **kwargs)

        api.store.vectors.search = spy
        try:
            await api.ok(SEARCH, {"c": name, "v": b64(vectors[0]), "k": 1})
            calls.clear()
            statements.clear()
            data = await api.ok(
                """query($c: String!, $vs: [Vector!]!) {
                     searchBatch(collection: $c, vectors: $vs, topK: 7) {
                       hits { id record { id } } } }""",
                {"c": name, "vs": [b64(v) for v in vectors[:5]]},
            )
        finally:
            del api.store.vectors.search
        assert calls == [5]
        assert len(statements) == 1, statements
        results = data["searchBatch"]
        assert len(results) == 5
        assert [r["hits"][0]["id"] for r in results] == [f"r{i:04d}" for i in range(5)]
    finally:
        sql.close()


@pytest.mark.sql_only
async def test_small_reads_of_a_sqlite_file_run_inline_and_large_ones_through_the_async_engine(
    api: Api, name: str
) -> None:
    await setup(api, name, n=INLINE_MAX_IDS + 20)
    info = await api.store.collections.get(name)
    inline = api.store.inline_engine
    # PostgreSQL reads stay on asyncpg: the inline reader exists for SQLite files only.
    assert (inline is not None) == (api.store.dialect == "sqlite")
    seen: list[tuple[str, str]] = []
    engines = {"async": api.store.engine.sync_engine, "inline": inline}
    listeners = {
        kind: (lambda k: lambda conn, cursor, statement, *a: seen.append((k, statement)))(kind)
        for kind, engine in engines.items()
        if engine is not None
    }
    for kind, listener in listeners.items():
        event.listen(engines[kind], "before_cursor_execute", listener)
    small_path = "inline" if inline is not None else "async"
    try:
        ids = [f"r{i:04d}" for i in range(INLINE_MAX_IDS + 20)]
        small = await api.store.reader.get_many(info.name, [*ids[:10], "absent"], tenant=None)
        assert [r.id if r else None for r in small] == [*ids[:10], None]
        assert [k for k, _ in seen] == [small_path]
        large = await api.store.reader.get_many(info.name, ids, tenant=None)
        assert [r.id for r in large if r] == ids
        assert [k for k, _ in seen] == [small_path, "async"]
        # Read-your-writes across the two connections: a delete committed through the async
        # engine hides the record from the next inline read.
        await api.ok(
            'mutation($c: String!) { deleteRecords(collection: $c, ids: ["r0001"]) { deleted } }',
            {"c": name},
        )
        after = await api.store.reader.get_many(info.name, ids[:3], tenant=None)
        assert [r.id if r else None for r in after] == ["r0000", None, "r0002"]
    finally:
        for kind, listener in listeners.items():
            event.remove(engines[kind], "before_cursor_execute", listener)


@pytest.mark.sql_only
async def test_loaders_are_per_request(api: Api, name: str) -> None:
    vectors = await setup(api, name, n=50, multi_tenant=True)
    from store.loaders import Loaders

    seen: list[tuple[int, tuple[str | None, ...]]] = []
    original = Loaders._load_records

    async def spy(self: Loaders, keys: Any) -> Any:
        seen.append((id(self), tuple(sorted({k[1] for k in keys}))))
        return await original(self, keys)

    Loaders._load_records = spy  # type: ignore[method-assign]
    try:
        a, b = await asyncio.gather(
            api.ok(SEARCH, {"c": name, "v": b64(vectors[0]), "k": 50, "t": "A"}),
            api.ok(SEARCH, {"c": name, "v": b64(vectors[0]), "k": 50, "t": "B"}),
        )
    finally:
        Loaders._load_records = original  # type: ignore[method-assign]
    assert len({loader for loader, _ in seen}) == 2
    assert sorted(t for _, t in seen) == [("A",), ("B",)]
    assert {h["record"]["tenant"] for h in a["search"]["hits"]} == {"A"}
    assert {h["record"]["tenant"] for h in b["search"]["hits"]} == {"B"}


async def test_tenants_never_see_or_delete_each_other(api: Api, name: str) -> None:
    vectors = await setup(api, name, n=40, multi_tenant=True)
    b_ids = [f"r{i:04d}" for i in range(1, 40, 2)]
    # Tenant A names B's ids in its filter: nothing comes back.
    data = await api.ok(
        SEARCH,
        {"c": name, "v": b64(vectors[1]), "k": 100, "t": "A", "w": {"field": "id", "in": b_ids}},
    )
    assert data["search"]["hits"] == []
    near = await api.error(SEARCH, {"c": name, "near": b_ids[0], "t": "A"})
    assert near["extensions"]["code"] == "NOT_FOUND"
    listed = await api.ok(
        'query($c: String!) { records(collection: $c, tenant: "A", first: 100) { totalCount } }',
        {"c": name},
    )
    assert listed["records"]["totalCount"] == 20
    deleted = await api.ok(
        """mutation($c: String!, $w: Filter) {
             deleteRecords(collection: $c, where: $w, tenant: "A") { deleted } }""",
        {"c": name, "w": {"field": "id", "in": b_ids}},
    )
    assert deleted["deleteRecords"]["deleted"] == 0
    no_tenant = await api.error(SEARCH, {"c": name, "v": b64(vectors[1])})
    assert no_tenant["extensions"]["code"] == "BAD_USER_INPUT"
    b_count = await api.ok(
        'query($c: String!) { records(collection: $c, tenant: "B") { totalCount } }', {"c": name}
    )
    assert b_count["records"]["totalCount"] == 20


async def test_model_and_dimension_mismatch(api: Api, name: str) -> None:
    await setup(api, name, n=3)
    ok = await api.ok(SEARCH, {"c": name, "v": b64(np.ones(DIM)), "m": "m1"})
    assert ok["search"]["hits"]
    error = await api.error(SEARCH, {"c": name, "v": b64(np.ones(DIM)), "m": "other"})
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["extensions"]["expected"] == "m1@2"
    assert error["extensions"]["actual"] == "other"
    dim = await api.error(SEARCH, {"c": name, "v": [1.0, 2.0]})
    assert dim["extensions"]["code"] == "BAD_USER_INPUT"
    assert "dimension is 2, expected 16" in dim["message"]


@pytest.mark.validation
@pytest.mark.parametrize(
    ("variables", "code"),
    [
        ({"k": 0}, "BAD_USER_INPUT"),
        ({"k": 1001}, "BAD_USER_INPUT"),
        ({"k": 600, "o": 600}, "BAD_USER_INPUT"),  # an argument out of range (README)
        ({"o": -1}, "BAD_USER_INPUT"),
        ({"near": "r0001"}, "BAD_USER_INPUT"),  # both vector and nearId
        ({"p": {"nprobe": 4}}, "BAD_USER_INPUT"),  # HNSW has no nprobe
        ({"p": {"ef": 5}}, "BAD_USER_INPUT"),  # ef < topK
    ],
)
async def test_search_argument_rules(
    api: Api, name: str, variables: dict[str, Any], code: str
) -> None:
    await setup(api, name, n=3)
    error = await api.error(SEARCH, {"c": name, "v": b64(np.ones(DIM)), **variables})
    assert error["extensions"]["code"] == code


def _cut(ranked: np.ndarray, near: int) -> tuple[int, float]:
    """A bound just after rank ``near`` (or a neighbour) of a ranking, best first: halfway across
    the widest gap there, so float32 rounding in Milvus cannot move a record across it. Returns
    how many records lie before the bound, and the bound."""
    rank = max(range(near - 5, near + 5), key=lambda r: abs(ranked[r] - ranked[r + 1]))
    gap = abs(float(ranked[rank] - ranked[rank + 1]))
    assert gap > 1e-3, (rank, gap)
    return rank + 1, float(ranked[rank] + ranked[rank + 1]) / 2


@pytest.mark.milvus_only
@pytest.mark.parametrize("metric", ["COSINE", "IP", "L2"])
async def test_range_search_keeps_what_lies_between_the_bounds(
    api: Api, name: str, metric: str
) -> None:
    """COSINE and IP bounds are scores (radius: the lowest kept, rangeFilter: the highest); L2
    bounds are Euclidean distances (radius: the largest kept, rangeFilter: the smallest)."""
    vectors = await setup(api, name, metric=metric, index={"type": "FLAT"})
    q = np.random.default_rng(5).normal(size=DIM).astype(np.float32)
    order, scores, distances = exact(vectors, q, metric)
    ranked = (distances if metric == "L2" else scores)[order]  # best first
    last, radius = _cut(ranked, 40)
    first, range_filter = _cut(ranked, 10)
    for params, kept in [
        ({"radius": radius}, order[:last]),
        ({"radius": radius, "rangeFilter": range_filter}, order[first:last]),
    ]:
        data = await api.ok(SEARCH, {"c": name, "v": b64(q), "k": 100, "p": params})
        hits = data["search"]["hits"]
        assert [h["id"] for h in hits] == [f"r{i:04d}" for i in kept], params
        assert len(hits) > 20
        for h in hits:
            i = int(h["id"][1:])
            assert h["score"] == pytest.approx(float(scores[i]), abs=1e-4)
            assert h["distance"] == pytest.approx(float(distances[i]), abs=1e-4)
        if metric == "L2":
            low = params.get("rangeFilter", 0.0)
            assert all(low <= h["distance"] < radius for h in hits)
        else:
            high = params.get("rangeFilter", np.inf)
            assert all(radius < h["score"] <= high for h in hits)


@pytest.mark.sql_only
async def test_records_cursor_is_stable_under_inserts(api: Api, name: str) -> None:
    await setup(api, name, n=30)
    query = """query($c: String!, $a: String) {
      records(collection: $c, first: 10, after: $a) {
        totalCount pageInfo { hasNextPage endCursor } edges { cursor node { id } } } }"""
    page1 = (await api.ok(query, {"c": name}))["records"]
    assert [e["node"]["id"] for e in page1["edges"]] == [f"r{i:04d}" for i in range(10)]
    # Insert records that sort before and after the cursor.
    await api.ok(
        UPSERT,
        {"c": name, "r": [{"id": "a_first", "vector": b64(np.ones(DIM))},
                          {"id": "r0015x", "vector": b64(np.ones(DIM))}]},
    )  # fmt: skip
    page2 = (await api.ok(query, {"c": name, "a": page1["pageInfo"]["endCursor"]}))["records"]
    assert [e["node"]["id"] for e in page2["edges"]][:7] == [
        "r0010", "r0011", "r0012", "r0013", "r0014", "r0015", "r0015x",
    ]  # fmt: skip
    assert page2["totalCount"] == 32
    bad = await api.error(query, {"c": name, "a": "garbage"})
    assert bad["extensions"]["code"] == "BAD_USER_INPUT"


async def test_delete_by_filter(api: Api, name: str) -> None:
    vectors = await setup(api, name, n=40)
    deleted = await api.ok(
        DELETE_WHERE,
        {"c": name, "w": {"field": "group", "eq": "odd"}},
    )
    assert deleted["deleteRecords"]["deleted"] == 20
    data = await api.ok(SEARCH, {"c": name, "v": b64(vectors[1]), "k": 100})
    assert all(int(h["id"][1:]) % 2 == 0 for h in data["search"]["hits"])
    assert len(data["search"]["hits"]) == 20
    assert await api.store.vectors.count(f"vq_{name}") == 20
