"""Every request limit is refused before any store call: no SQL statement (counted with a
``before_cursor_execute`` listener) and no Milvus call (spied on ``store.vectors``). Document
limits answer LIMIT_EXCEEDED; argument limits (topK, ``first``, filter depth and list sizes) are
refused before the collection is even looked up, so a cold registry cache costs no SQL read."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Api, count_sql, make_settings, running_api
from tests.integration.test_security import MILVUS_METHODS, _spy_milvus, _unspy_milvus

LIMITS = {
    "max_depth": 8,
    "max_aliases": 15,
    "max_tokens": 2000,
    "max_cost": 50_000,
    "max_body_bytes": 64 * 1024,
    "max_batch_size": 20,
    "max_search_batch": 10,
    "max_top_k": 1000,
    "max_filter_depth": 4,
    "max_filter_list": 10,
    "max_page_size": 50,
}


@pytest.fixture(scope="module")
async def limited(database_url: str, session_dir: Path) -> AsyncIterator[Api]:
    settings = make_settings(
        milvus_uri=str(session_dir / f"limits-{uuid.uuid4().hex[:6]}.db"),
        database_url=database_url,
        **LIMITS,
    )
    async with running_api(settings) as api:
        name = f"lim_{uuid.uuid4().hex[:8]}"
        await api.ok(
            "mutation($n: String!) { createCollection(input: {name: $n, dimension: 4, "
            'fields: [{name: "n", type: INT}]}) { name } }',
            {"n": name},
        )
        api.app.state.collection = name
        yield api


class NoStoreCalls:
    """Asserts that nothing in the block reached SQL or Milvus."""

    def __init__(self, api: Api, *, key_lookups: bool = False) -> None:
        self.api = api
        self.key_lookups = key_lookups  # authentication re-reads a key's row every 2 s

    def __enter__(self) -> NoStoreCalls:
        self.milvus = _spy_milvus(self.api)
        self.sql = count_sql(self.api)
        return self

    def __exit__(self, *exc: object) -> None:
        self.sql.close()
        _unspy_milvus(self.api)
        if exc[0] is None:
            seen = [q for q in self.sql.seen if not (self.key_lookups and "FROM vq_api_key" in q)]
            assert seen == [], seen
            assert self.milvus == [], self.milvus


@pytest.fixture
def no_store_calls(limited: Api) -> Iterator[NoStoreCalls]:
    with NoStoreCalls(limited) as guard:
        yield guard


def nested(depth: int) -> str:
    return "{ " + " { ".join(f"f{i}" for i in range(depth)) + " }" * depth


def fragment_bomb(levels: int) -> str:
    fragments = "".join(
        f"fragment F{i} on Query {{ ...F{i + 1} ...F{i + 1} }}\n" for i in range(levels)
    )
    return (
        "query { ...F0 }\n"
        + fragments
        + f"fragment F{levels} on Query {{ collections {{ name }} }}"
    )


SEARCH_ALL = """
query($c: String!, $k: Int!, $v: Vector!) {
  search(collection: $c, vector: $v, topK: $k) {
    hits { id score distance record { id metadata text tenant vector createdAt } } } }
"""


def over_limit_documents(collection: str) -> dict[str, tuple[str, dict[str, Any]]]:
    aliases = " ".join(f"a{i}: collections {{ name }}" for i in range(16))
    batch = "[" + ", ".join("[1, 0, 0, 0]" for _ in range(11)) + "]"
    records = "[" + ", ".join(f'{{id: "r{i}", vector: [1, 2, 3, 4]}}' for i in range(21)) + "]"
    return {
        "depth": (nested(10), {}),
        "aliases": ("{ " + aliases + " }", {}),
        "tokens": ("{ " + " ".join(f"a{i}: __typename" for i in range(1100)) + " }", {}),
        "cost": (SEARCH_ALL, {"c": collection, "k": 1000, "v": [1, 0, 0, 0]}),
        "cost in a fragment, sizes in literals": (
            "query($c: String!) { search(collection: $c, vector: [1, 0, 0, 0], topK: 1000) "
            "{ ...H } } fragment H on SearchResult { hits { record { vector } } }",
            {"c": collection},
        ),
        "cost of searches side by side": (
            "query($c: String!) { "
            + " ".join(
                f"s{i}: search(collection: $c, vector: [1, 0, 0, 0], topK: 1000) "
                "{ hits { id score distance record { id metadata text tenant } } }"
                for i in range(6)
            )
            + " }",
            {"c": collection},
        ),
        "cost of a batch": (
            "query($c: String!, $vs: [Vector!]!) { searchBatch(collection: $c, vectors: $vs, "
            "topK: 1000) { hits { id record { id metadata } } } }",
            {"c": collection, "vs": [[1, 0, 0, 0]] * 10},
        ),
        "fragment fan-out": (fragment_bomb(30), {}),
        "vectors per searchBatch": (
            f"query($c: String!) {{ searchBatch(collection: $c, vectors: {batch}) {{ tookMs }} }}",
            {"c": collection},
        ),
        "records per upsert": (
            f"mutation($c: String!) {{ upsertRecords(collection: $c, records: {records}) "
            "{ upserted } }",
            {"c": collection},
        ),
    }


CASES = list(over_limit_documents("x"))


@pytest.mark.parametrize("case", CASES)
async def test_over_limit_documents_touch_no_store(
    limited: Api, no_store_calls: NoStoreCalls, case: str
) -> None:
    query, variables = over_limit_documents(limited.app.state.collection)[case]
    body = await limited.post(query, variables)
    assert body.get("errors"), body
    error = body["errors"][0]
    assert error["extensions"]["code"] == "LIMIT_EXCEEDED", error
    assert not body.get("data")


SEARCH_WHERE = """query($c: String!, $w: Filter, $k: Int! = 10) {
  search(collection: $c, vector: [1, 0, 0, 0], where: $w, topK: $k) { tookMs } }"""
BATCH_WHERE = """query($c: String!, $w: Filter, $k: Int! = 10) {
  searchBatch(collection: $c, vectors: [[1, 0, 0, 0]], where: $w, topK: $k) { tookMs } }"""
RECORDS_WHERE = """query($c: String!, $w: Filter, $first: Int! = 20) {
  records(collection: $c, where: $w, first: $first) { totalCount } }"""
DELETE_WHERE = """mutation($c: String!, $w: Filter, $ids: [ID!]) {
  deleteRecords(collection: $c, where: $w, ids: $ids) { deleted } }"""
FILTER_OPERATIONS = {
    "search": SEARCH_WHERE,
    "searchBatch": BATCH_WHERE,
    "records": RECORDS_WHERE,
    "deleteRecords": DELETE_WHERE,
}
LEAF = {"field": "n", "eq": 1}
# With max_filter_depth 4 and max_filter_list 10: (variables, code, the problem's path).
OVER_LIMIT_ARGUMENTS: dict[str, tuple[str, dict[str, Any], str, str | None]] = {
    **{
        f"{op}: {what}": (query, {"w": where}, "BAD_USER_INPUT", path)
        for op, query in FILTER_OPERATIONS.items()
        for what, where, path in (
            ("filter depth", {"not": {"and": [LEAF, {"not": {"not": LEAF}}]}},
             "where.not.and[1].not.not"),
            ("filter and-list", {"or": [LEAF] * 11}, "where.or"),
            ("filter value list", {"field": "n", "in": list(range(11))}, "where.in"),
        )
    },
    "search: topK": (SEARCH_WHERE, {"k": 1001}, "BAD_USER_INPUT", None),
    "search: offset + topK": (
        "query($c: String!) { search(collection: $c, vector: [1, 0, 0, 0], topK: 600, "
        "offset: 600) { tookMs } }", {}, "BAD_USER_INPUT", None),
    "searchBatch: topK": (BATCH_WHERE, {"k": 1001}, "BAD_USER_INPUT", None),
    "records: first": (RECORDS_WHERE, {"first": 51}, "BAD_USER_INPUT", None),
    "deleteRecords: ids": (DELETE_WHERE, {"ids": [f"r{i}" for i in range(21)]}, "LIMIT_EXCEEDED",
                           None),
}  # fmt: skip


@pytest.fixture(params=["cold", "missing"])
async def uncached(request: pytest.FixtureRequest, limited: Api) -> str:
    """A collection name whose registry entry is not cached, so looking it up is a SQL read:
    "cold", a collection just created (creating does not fill the cache), or "missing", one that
    does not exist (never cached)."""
    if request.param == "missing":
        return "no_such_collection"
    name = f"cold_{uuid.uuid4().hex[:8]}"
    await limited.ok(
        "mutation($n: String!) { createCollection(input: {name: $n, dimension: 4, "
        'fields: [{name: "n", type: INT}]}) { name } }',
        {"n": name},
    )
    return name


@pytest.mark.parametrize("case", list(OVER_LIMIT_ARGUMENTS))
async def test_over_limit_arguments_touch_no_store_even_on_a_cold_cache(
    limited: Api, uncached: str, case: str
) -> None:
    query, variables, code, path = OVER_LIMIT_ARGUMENTS[case]
    name = uncached
    with NoStoreCalls(limited):
        error = await limited.error(query, {"c": name, **variables})
    assert error["extensions"]["code"] == code, error
    if path is not None:
        assert [p["path"] for p in error["extensions"]["problems"]] == [path]


async def test_a_cold_lookup_is_a_sql_read_the_guard_sees(limited: Api) -> None:
    """The control for the test above: a filter within the limits but naming an unknown field
    needs the schema, so the lookup happens, and the statement listener sees it."""
    statements = count_sql(limited)
    try:
        error = await limited.error(SEARCH_WHERE, {"c": "no_such_collection", "w": LEAF})
    finally:
        statements.close()
    assert error["extensions"]["code"] == "NOT_FOUND"
    assert any("vq_collection" in s for s in statements.seen), statements.seen


async def test_the_cost_limit_leaves_room_for_real_queries(limited: Api) -> None:
    c = limited.app.state.collection
    data = await limited.ok(
        SEARCH_ALL.replace("vector createdAt", ""), {"c": c, "k": 1000, "v": [1, 0, 0, 0]}
    )
    assert data["search"]["hits"] == []
    await limited.ok(nested(1).replace("f0", "collections { name }"))
    await limited.ok("{ " + " ".join(f"a{i}: collections {{ name }}" for i in range(15)) + " }")


async def test_the_cost_error_says_what_it_costs(limited: Api) -> None:
    c = limited.app.state.collection
    error = await limited.error(SEARCH_ALL, {"c": c, "k": 1000, "v": [1, 0, 0, 0]})
    assert error["extensions"]["limit"] == 50_000
    assert error["extensions"]["cost"] > 50_000
    assert "topK" in error["message"]


async def test_body_size_is_enforced_before_parsing(limited: Api) -> None:
    with NoStoreCalls(limited):
        big = {"query": "{ collections { name } }", "variables": {"pad": "x" * 70_000}}
        declared = await limited.client.post("/graphql", json=big)
        assert declared.status_code == 413
        assert declared.json()["errors"][0]["extensions"]["code"] == "LIMIT_EXCEEDED"

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: streamed
            yield b'{"query": "{ collections { name } }", "variables": {"pad": "'
            for _ in range(20):
                yield b"x" * 8192
            yield b'"}}'

        streamed = await limited.client.post(
            "/graphql", content=chunks(), headers={"Content-Type": "application/json"}
        )
        assert streamed.status_code == 413
        assert streamed.json()["errors"][0]["extensions"]["code"] == "LIMIT_EXCEEDED"
        lying = await limited.client.post(
            "/graphql", content=b"{}", headers={"Content-Length": "-5"}
        )
        assert lying.status_code == 400


async def test_batching_and_get_mutations_are_off(limited: Api) -> None:
    with NoStoreCalls(limited):
        batch = await limited.client.post(
            "/graphql", json=[{"query": "{ collections { name } }"}] * 2
        )
        assert batch.status_code == 400
        query = await limited.client.get("/graphql", params={"query": "{ __typename }"})
        assert query.status_code == 200
        assert query.json() == {"data": {"__typename": "Query"}}
        mutation = await limited.client.get(
            "/graphql", params={"query": 'mutation { dropCollection(name: "x") }'}
        )
        assert mutation.status_code == 405
        assert mutation.headers["allow"] == "POST"
        assert mutation.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def post_batch(api: Api, *queries: str) -> Any:
    return await api.client.post("/graphql", json=[{"query": q} for q in queries])


async def test_batching_when_configured_limits_each_operation(
    database_url: str, session_dir: Path
) -> None:
    settings = make_settings(
        milvus_uri=str(session_dir / f"batching-{uuid.uuid4().hex[:6]}.db"),
        database_url=database_url,
        max_batched_operations=2,
        max_depth=1,
    )
    async with running_api(settings) as api:
        ok = await post_batch(
            api, "{ collections { name } }", 'query { collection(name: "nope") { name } }'
        )
        assert ok.status_code == 200, ok.text
        first, second = ok.json()
        assert isinstance(first["data"]["collections"], list), first
        assert second == {"data": {"collection": None}}
        with NoStoreCalls(api):
            too_many = await post_batch(api, *["{ collections { name } }"] * 3)
        assert too_many.status_code == 400
        # Each operation meets the limits on its own: the too-deep one fails, the other runs.
        mixed = await post_batch(
            api, "{ collections { fields { name } } }", "{ collections { name } }"
        )
        assert mixed.status_code == 200, mixed.text
        deep, shallow = mixed.json()
        assert deep["errors"][0]["extensions"]["code"] == "LIMIT_EXCEEDED", deep
        assert "errors" not in shallow
        assert isinstance(shallow["data"]["collections"], list)


async def test_deeply_nested_variables_are_refused_cleanly(limited: Api) -> None:
    c = limited.app.state.collection
    where: dict[str, Any] = {"field": "n", "eq": 1}
    for _ in range(3000):
        where = {"not": where}
    response = await limited.client.post(
        "/graphql",
        content=(
            '{"query": "query($c: String!, $w: Filter) { records(collection: $c, where: $w) '
            '{ totalCount } }", "variables": {"c": "' + c + '", "w": ' + _dumps_deep(where) + "}}"
        ),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code < 500, response.text
    if response.status_code == 200:
        assert response.json()["errors"][0]["extensions"]["code"] in (
            "BAD_USER_INPUT",
            "LIMIT_EXCEEDED",
        )


def _dumps_deep(where: dict[str, Any]) -> str:
    # json.dumps recurses; build the text iteratively.
    depth = 0
    node: Any = where
    while "not" in node:
        depth += 1
        node = node["not"]
    return '{"not": ' * depth + '{"field": "n", "eq": 1}' + "}" * depth


async def test_rate_limit_per_key_with_retry_after(database_url: str, session_dir: Path) -> None:
    settings = make_settings(
        milvus_uri=str(session_dir / f"rate-{uuid.uuid4().hex[:6]}.db"),
        database_url=database_url,
        auth="apikey",
        rate_limit_per_second=0.05,  # slow enough that no token comes back meanwhile
        rate_limit_burst=3,
    )
    async with running_api(settings) as api:
        one = (await api.store.keys.create(scope="read")).secret
        two = (await api.store.keys.create(scope="read")).secret

        async def call(key: str, status: int = 200) -> dict[str, Any]:
            response = await api.client.post(
                "/graphql",
                json={"query": "{ collections { name } }"},
                headers={"Authorization": f"Bearer {key}"},
            )
            assert response.status_code == status
            if status == 429:
                assert 1 <= int(response.headers["retry-after"]) <= 21
            return dict(response.json())

        for _ in range(3):
            assert not (await call(one)).get("errors")
        with NoStoreCalls(api, key_lookups=True):
            refused = await call(one, status=429)
        error = refused["errors"][0]
        assert error["extensions"]["code"] == "LIMIT_EXCEEDED"
        assert 0 < error["extensions"]["retryAfter"] <= 20
        assert refused["data"] is None
        assert not (await call(two)).get("errors")  # buckets are per key


def test_milvus_methods_spied_exist() -> None:
    from store.milvus import MilvusIndex

    for name in MILVUS_METHODS:
        assert hasattr(MilvusIndex, name), name


async def test_a_validated_document_is_not_parsed_or_validated_again(
    limited: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    import strawberry.schema.schema as strawberry_schema

    calls: list[str] = []
    real_validate = strawberry_schema.validate_document
    real_parse = strawberry_schema.parse

    def validating(schema: Any, document: Any, rules: Any) -> Any:
        calls.append("validate")
        return real_validate(schema, document, rules)

    def parsing(source: Any, **options: Any) -> Any:
        calls.append("parse")
        return real_parse(source, **options)

    monkeypatch.setattr(strawberry_schema, "validate_document", validating)
    monkeypatch.setattr(strawberry_schema, "parse", parsing)
    c = limited.app.state.collection
    # A query text of this test only: parsed and validated on the first request, then remembered.
    query = "query Remembered($c: String!) { collection(name: $c) { name dimension } }"
    for _ in range(3):
        assert await limited.ok(query, {"c": c}) == {"collection": {"name": c, "dimension": 4}}
    assert calls == ["parse", "validate"]
    # A document that fails validation is parsed, checked, and refused, every time.
    calls.clear()
    for _ in range(2):
        error = await limited.error("{ collection(name: 1) { name } }")
        assert error["extensions"]["code"] == "BAD_USER_INPUT", error
    assert calls == ["parse", "validate"] * 2
