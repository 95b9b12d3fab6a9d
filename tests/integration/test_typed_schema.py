"""The typed per-collection schema (issue 21): generated types, typed filters that select what the
generic filter selects on every backend cell, typed upserts, the naming rule and its collisions,
and the live schema following DDL in this process and in others."""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from graph.schema.typed import prefix, root_field
from tests.conftest import Api
from tests.servers import VECTORQL, serve_api

FIELDS = """[
  {name: "title", type: STRING, required: true},
  {name: "year", type: INT},
  {name: "rating", type: FLOAT},
  {name: "done", type: BOOL},
  {name: "at", type: DATETIME},
  {name: "tags", type: STRING_LIST},
  {name: "info", type: JSON},
  {name: "note", type: STRING, filterable: false}
]"""
CREATE = (
    "mutation($n: String!) { "
    "createCollection(input: {name: $n, dimension: 4, fields: %s}) { name } }"
)
BOOKS: list[dict[str, Any]] = [
    {"id": "b1", "vector": [1, 0, 0, 0], "title": "Dune", "year": 1965, "rating": 4.5,
     "done": True, "at": "2020-01-01T00:00:00Z", "tags": ["sf", "classic"], "info": {"a": 1},
     "note": "n1", "extra": {"shelf": 3}},
    {"id": "b2", "vector": [0, 1, 0, 0], "title": "Emma", "year": 1815, "rating": 3.9,
     "done": False, "at": "2021-06-01T12:00:00Z", "tags": ["romance"]},
    {"id": "b3", "vector": [0, 0, 1, 0], "title": "Ubik", "year": 1969, "tags": ["sf"]},
    {"id": "b4", "vector": [0, 0, 0, 1], "title": "Dracula", "year": 1897, "rating": 4.1,
     "done": True, "at": "2019-03-03T00:00:00Z", "tags": []},
    {"id": "b5", "vector": [1, 1, 0, 0], "title": "Solaris", "rating": 4.3, "tags": ["sf", "pl"]},
]  # fmt: skip
# Each typed filter with the generic filter it must agree with: every operator of every type.
CASES: list[tuple[dict[str, Any], dict[str, Any]]] = [
    ({"id": {"_eq": "b1"}}, {"field": "id", "eq": "b1"}),
    ({"id": {"_in": ["b1", "b3"]}}, {"field": "id", "in": ["b1", "b3"]}),
    ({"title": {"_neq": "Dune"}}, {"field": "title", "ne": "Dune"}),
    ({"title": {"_like": "D%"}}, {"field": "title", "like": "D%"}),
    ({"title": {"_gte": "E", "_lt": "T"}},
     {"and": [{"field": "title", "gte": "E"}, {"field": "title", "lt": "T"}]}),
    ({"year": {"_gt": 1900}}, {"field": "year", "gt": 1900}),
    ({"year": {"_lte": 1897}}, {"field": "year", "lte": 1897}),
    ({"year": {"_nin": [1965, 1815]}}, {"field": "year", "notIn": [1965, 1815]}),
    ({"year": {"_is_null": True}}, {"field": "year", "isNull": True}),
    ({"rating": {"_gte": 4.2}}, {"field": "rating", "gte": 4.2}),
    ({"done": {"_eq": True}}, {"field": "done", "eq": True}),
    ({"done": {"_neq": True}}, {"field": "done", "ne": True}),
    ({"at": {"_lt": "2021-01-01T00:00:00Z"}}, {"field": "at", "lt": "2021-01-01T00:00:00Z"}),
    ({"tags": {"_contains": "sf"}}, {"field": "tags", "contains": "sf"}),
    ({"tags": {"_contains_any": ["pl", "romance"]}},
     {"field": "tags", "containsAny": ["pl", "romance"]}),
    ({"tags": {"_contains_all": ["sf", "classic"]}},
     {"field": "tags", "containsAll": ["sf", "classic"]}),
    ({"info": {"_is_null": False}}, {"field": "info", "isNull": False}),
    ({"_or": [{"year": {"_lt": 1900}}, {"rating": {"_gt": 4.4}}]},
     {"or": [{"field": "year", "lt": 1900}, {"field": "rating", "gt": 4.4}]}),
    ({"_not": {"tags": {"_contains": "sf"}}, "_and": [{"title": {"_neq": "Emma"}}]},
     {"and": [{"not": {"field": "tags", "contains": "sf"}},
              {"and": [{"field": "title", "ne": "Emma"}]}]}),
]  # fmt: skip


def typed_books() -> list[dict[str, Any]]:
    return [{k: v for k, v in b.items() if k != "note"} | {"note": b.get("note")} for b in BOOKS]


async def create_books(api: Api, name: str) -> str:
    """Creates collection ``name`` with the books; returns its type prefix."""
    await api.ok(CREATE % FIELDS, {"n": name})
    p = prefix(name)
    data = await api.ok(
        f"mutation($r: [{p}Input!]!) {{ upsert{p}(records: $r) "
        "{ upserted errors { message } } }",
        {"r": typed_books()},
    )
    assert data[f"upsert{p}"] == {"upserted": len(BOOKS), "errors": []}
    return p


async def test_typed_filters_select_what_generic_filters_select(api: Api, name: str) -> None:
    p = await create_books(api, name)
    root = root_field(name)
    typed = f"""query($w: {p}Filter, $v: Vector) {{ {root} {{
        records(where: $w, first: 100) {{ edges {{ node {{ id }} }} }}
        search(vector: $v, where: $w, topK: 10, consistency: STRONG) {{ hits {{ id }} }} }} }}"""
    generic = """query($c: String!, $w: Filter, $v: Vector) {
        records(collection: $c, where: $w, first: 100) { edges { node { id } } }
        search(collection: $c, vector: $v, where: $w, topK: 10, consistency: STRONG) {
          hits { id } } }"""
    for typed_where, generic_where in CASES:
        v = {"v": [1, 0.5, 0.2, 0.1]}
        t = (await api.ok(typed, {"w": typed_where, **v}))[root]
        g = await api.ok(generic, {"c": name, "w": generic_where, **v})
        t_ids = [e["node"]["id"] for e in t["records"]["edges"]]
        assert t_ids == [e["node"]["id"] for e in g["records"]["edges"]], typed_where
        assert t_ids, typed_where  # every case selects something: a real comparison
        assert {h["id"] for h in t["search"]["hits"]} == set(t_ids), typed_where
        assert [h["id"] for h in t["search"]["hits"]] == [h["id"] for h in g["search"]["hits"]]


@pytest.mark.validation
async def test_typed_record_fields_and_deletes(api: Api, name: str) -> None:
    p = await create_books(api, name)
    root = root_field(name)
    data = await api.ok(
        f"""{{ {root} {{ record(id: "b1") {{ id title year rating done at tags info note extra
              text tenant vector createdAt }} }} }}"""
    )
    record = data[root]["record"]
    assert record["title"] == "Dune"
    assert record["year"] == 1965
    assert record["done"] is True
    assert record["tags"] == ["sf", "classic"]
    assert record["info"] == {"a": 1}
    assert record["at"].startswith("2020-01-01T00:00:00")
    assert record["extra"] == {"shelf": 3}
    assert record["vector"] == [1.0, 0.0, 0.0, 0.0]
    assert record["note"] == "n1"
    generic = await api.ok(
        'query($c: String!) { record(collection: $c, id: "b1") { metadata } }', {"c": name}
    )
    assert generic["record"]["metadata"]["shelf"] == 3  # extra is plain metadata
    deleted = await api.ok(
        f"mutation {{ delete{p}(where: {{year: {{_lt: 1900}}}}) {{ deleted }} }}"
    )
    assert deleted[f"delete{p}"] == {"deleted": 2}
    left = await api.ok(f"{{ {root} {{ records {{ totalCount }} }} }}")
    assert left[root]["records"]["totalCount"] == 3


async def test_int_fields_are_64_bit(api: Api, name: str) -> None:
    """An INT field holds any int64 (GraphQL's Int would refuse beyond 2**31): typed upserts,
    reads and filters carry it as Long; a value outside 64 bits is refused before any write."""
    p = await create_books(api, name)
    root = root_field(name)
    big = {"big": 2**40, "least": -(2**63), "most": 2**63 - 1}
    upsert = (
        f"mutation($r: [{p}Input!]!) {{ upsert{p}(records: $r) "
        "{ upserted errors { message } } }"
    )
    records = [{"id": k, "title": k, "year": v, "vector": [0, 0, 1, 1]} for k, v in big.items()]
    assert (await api.ok(upsert, {"r": records}))[f"upsert{p}"] == {"upserted": 3, "errors": []}
    for key, year in big.items():
        read = await api.ok(f'{{ {root} {{ record(id: "{key}") {{ year }} }} }}')
        assert read[root]["record"]["year"] == year
    typed = f"""query($w: {p}Filter, $v: Vector) {{ {root} {{
        records(where: $w, first: 100) {{ edges {{ node {{ id year }} }} }}
        search(vector: $v, where: $w, topK: 10, consistency: STRONG) {{ hits {{ id }} }} }} }}"""

    async def ids(where: dict[str, Any]) -> list[str]:
        data = (await api.ok(typed, {"w": where, "v": [0, 0, 1, 1]}))[root]
        found = sorted(e["node"]["id"] for e in data["records"]["edges"])
        assert sorted(h["id"] for h in data["search"]["hits"]) == found, where
        return found

    assert await ids({"year": {"_eq": 2**40}}) == ["big"]
    assert await ids({"year": {"_eq": -(2**63)}}) == ["least"]
    assert await ids({"year": {"_eq": 2**63 - 1}}) == ["most"]
    assert await ids({"year": {"_gt": 2**31}}) == ["big", "most"]
    assert await ids({"year": {"_lt": -(2**31)}}) == ["least"]
    literal = await api.ok(
        f"{{ {root} {{ records(where: {{year: {{_gte: {2**40}}}}}) {{ totalCount }} }} }}"
    )
    assert literal[root]["records"]["totalCount"] == 2
    # Outside 64 bits, as a variable (upsert, filter) or a literal: refused, nothing written.
    for value in (2**63, -(2**63) - 1):
        wrong = await api.error(upsert, {"r": [{"id": "no", "title": "no", "year": value}]})
        assert wrong["extensions"]["code"] == "BAD_USER_INPUT", wrong
        assert "64 bits" in wrong["message"]
        wrong = await api.error(typed, {"w": {"year": {"_gt": value}}, "v": [0, 0, 1, 1]})
        assert wrong["extensions"]["code"] == "BAD_USER_INPUT", wrong
        wrong = await api.error(
            f"{{ {root} {{ records(where: {{year: {{_gt: {value}}}}}) {{ totalCount }} }} }}"
        )
        assert wrong["extensions"]["code"] == "BAD_USER_INPUT", wrong
    wrong = await api.error(typed, {"w": {"year": {"_gt": 1.5}}, "v": [0, 0, 1, 1]})
    assert wrong["extensions"]["code"] == "BAD_USER_INPUT", wrong
    absent = await api.ok(f'{{ {root} {{ record(id: "no") {{ id }} }} }}')
    assert absent[root]["record"] is None


@pytest.mark.validation
async def test_typed_inputs_are_checked(api: Api, name: str) -> None:
    p = await create_books(api, name)
    root = root_field(name)
    upsert = (
        f"mutation($r: [{p}Input!]!, $a: Boolean!) {{ upsert{p}(records: $r, atomic: $a) "
        "{ upserted ids errors { index code message } } }"
    )
    # A string where an Int belongs, a missing required field: refused before any resolver.
    wrong = await api.error(upsert, {"r": [{"title": "x", "year": "1999"}], "a": True})
    assert wrong["extensions"]["code"] == "BAD_USER_INPUT"
    assert "year" in wrong["message"]
    missing = await api.error(upsert, {"r": [{"year": 1999, "vector": [1, 0, 0, 0]}], "a": True})
    assert "title" in missing["message"]
    # A wrong field name in a filter, a wrongly typed filter value.
    bad_field = await api.error(
        f'{{ {root} {{ records(where: {{titel: {{_eq: "x"}}}}) {{ totalCount }} }} }}'
    )
    assert "titel" in bad_field["message"]
    bad_value = await api.error(
        f'{{ {root} {{ records(where: {{year: {{_gt: "old"}}}}) {{ totalCount }} }} }}'
    )
    assert "Long" in bad_value["message"]
    # The store's own checks still apply, per record: a bad vector with atomic: false.
    data = await api.ok(
        upsert,
        {"r": [{"id": "ok", "title": "a", "vector": [1, 0, 0, 0]},
               {"id": "bad", "title": "b", "vector": [1, 0]}], "a": False},
    )  # fmt: skip
    result = data[f"upsert{p}"]
    assert result["ids"] == ["ok"]
    assert result["errors"][0]["index"] == 1
    assert "dimension" in result["errors"][0]["message"] or "4" in result["errors"][0]["message"]
    refused = await api.error(
        upsert, {"r": [{"title": "c", "vector": [1, 0, 0, 0], "extra": [1]}], "a": True}
    )
    assert refused["extensions"]["code"] == "BAD_USER_INPUT"


@pytest.mark.validation
async def test_colliding_names_are_refused_at_creation(api: Api, name: str) -> None:
    await api.ok(CREATE % "[]", {"n": name})
    twin = name.replace("t_", "T_", 1)  # t_abc and T_abc both make the types TAbc...
    error = await api.error(CREATE % "[]", {"n": twin})
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert f"collection {name!r}" in error["message"]
    assert prefix(name) in error["message"]
    builtin = await api.error(CREATE % "[]", {"n": "records"})
    assert "Query.records" in builtin["message"]
    field = await api.error(CREATE % '[{name: "extra", type: STRING}]', {"n": name + "x"})
    assert "extra" in field["message"]
    assert field["extensions"]["code"] == "BAD_USER_INPUT"
    listed = await api.ok("{ collections { name } }")
    assert {twin, "records", name + "x"}.isdisjoint(c["name"] for c in listed["collections"])


@pytest.mark.validation
async def test_drop_removes_the_types_and_the_version_moves(api: Api, name: str) -> None:
    response = await api.client.post(
        "/graphql", json={"query": CREATE % "[]", "variables": {"n": name}}
    )
    created = int(response.headers["x-vectorql-schema-version"])
    root = root_field(name)
    assert (await api.ok(f"{{ {root} {{ records {{ totalCount }} }} }}"))[root]
    response = await api.client.post(
        "/graphql",
        json={
            "query": "mutation($n: String!) { dropCollection(name: $n) }",
            "variables": {"n": name},
        },
    )
    assert int(response.headers["x-vectorql-schema-version"]) > created
    gone = await api.error(f"{{ {root} {{ records {{ totalCount }} }} }}")
    assert root in gone["message"]


async def test_ddl_changes_the_schema_of_other_processes(
    milvus_server: Any, postgres_url: str, tmp_path: Path, name: str
) -> None:
    """Two API processes (the second with two workers) on one database: a collection created
    through one is typed in the others within about a second, at once for a client that sends
    the version it has seen, and its types leave everywhere with its drop."""
    shared = {"milvus_uri": milvus_server.uri, "database_url": postgres_url}
    root = root_field(name)
    typed = f"{{ {root} {{ records {{ totalCount }} }} }}"
    with (
        serve_api(tmp_path / "api-a", **shared) as server_a,
        serve_api(tmp_path / "api-b", args=("--workers", "2"), **shared) as server_b,
    ):
        async with httpx.AsyncClient(timeout=60) as client:

            async def post(url: str, query: str, version: str | None = None) -> httpx.Response:
                headers = {"x-vectorql-schema-version": version} if version else {}
                body = {"query": query, "variables": {"n": name} if "$n" in query else {}}
                return await client.post(url, json=body, headers=headers)

            created = await post(server_a.graphql, CREATE % "[]")
            assert not created.json().get("errors"), created.json()
            version = created.headers["x-vectorql-schema-version"]
            # With the version it has seen, the client is answered on the new schema at once,
            # by whichever worker takes the request.
            for _ in range(4):
                answer = await post(server_b.graphql, typed, version)
                assert answer.json() == {"data": {root: {"records": {"totalCount": 0}}}}
                assert int(answer.headers["x-vectorql-schema-version"]) >= int(version)
            # What a client's code generator reads: the live SDL, typed fields included.
            done = await asyncio.to_thread(
                subprocess.run,
                [*VECTORQL, "schema", "--live", "--url", server_b.graphql],
                capture_output=True, text=True, check=True, env=server_b.env, timeout=120,
            )  # fmt: skip
            sdl = done.stdout
            assert f"{root}: {prefix(name)}Collection!" in sdl
            assert f"input {prefix(name)}Filter {{" in sdl
            dropped = await post(
                server_b.graphql, "mutation($n: String!) { dropCollection(name: $n) }"
            )
            assert dropped.json() == {"data": {"dropCollection": True}}
            # Without a version, the poll alone brings the drop to the other process.
            started = time.monotonic()
            while "errors" not in (await post(server_a.graphql, typed)).json():
                assert time.monotonic() - started < 3.0
                await asyncio.sleep(0.1)


class FailingBuilds:
    """The app's schema builder, failing every build until ``fail`` is cleared."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.generic = real.generic
        self.check = real.check
        self.fail = True

    def build(self, collections: Any) -> Any:
        if self.fail:
            raise RuntimeError("a build that fails")
        return self.real.build(collections)


@pytest.mark.validation
async def test_a_failed_build_keeps_the_old_schema(api: Api, name: str) -> None:
    live = api.app.state.schemas
    before = live.current
    builds = FailingBuilds(live.typed)
    live.typed = builds
    try:
        await api.ok(CREATE % "[]", {"n": name})  # answered: the DDL itself succeeded
        assert live.current is before
        root = root_field(name)
        missing = await api.error(f"{{ {root} {{ records {{ totalCount }} }} }}")
        assert root in missing["message"]
        assert await api.ok("{ collections { name } }")  # the old schema serves
        builds.fail = False
        await live.refresh(api.store)
        assert await api.ok(f"{{ {root} {{ records {{ totalCount }} }} }}")
    finally:
        live.typed = builds.real
