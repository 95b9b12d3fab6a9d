"""Client strings and malformed requests (issue 16, points 6 and 7), over HTTP on every cell.

The rule (``store.text``): a client string is valid Unicode (no lone surrogate) and holds no NUL;
identifiers (ids, tenants, names, cursors, models) hold no control character either. A string
that breaks it is ``BAD_USER_INPUT`` wherever it is sent, never ``INTERNAL`` or ``UNAVAILABLE``;
in an upsert batch it is the bad record's error, and ``atomic: false`` writes the others.
PostgreSQL cannot store NUL at all, so these tests also show that the rule refuses it before SQL.

Every error carries ``extensions.code``: malformed documents included (``GRAPHQL_PARSE_FAILED``,
``GRAPHQL_VALIDATION_FAILED``), and transport errors answer a JSON GraphQL error body.

Bodies are sent as ASCII JSON (``json.dumps``): a lone surrogate travels as a ``\\ud800`` escape,
as a browser's ``JSON.stringify`` sends it.
"""

from __future__ import annotations

import copy
import json
import logging
import unicodedata
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import graphql
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from graph.schema import build_schema
from graph.schema.errors import EXPOSED_CODES
from tests.conftest import Api, make_settings, running_api

SURROGATE = "\ud800"
NUL = "\x00"
HOSTILE = ["\ud800", "a\udfffb", "\udc00\ud800", "\x00", "a\x00", "\x01", "a\nb", "\x7f", "\x85"]


async def post(api: Api, query: str, variables: dict[str, Any] | None = None) -> Any:
    """POST as ASCII JSON (httpx's ``json=`` encodes UTF-8 and cannot send a lone surrogate)."""
    body = json.dumps({"query": query, "variables": variables or {}})
    response = await api.client.post(
        "/graphql", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    answer = response.json()
    for error in answer.get("errors") or []:
        code = (error.get("extensions") or {}).get("code")
        assert code in EXPOSED_CODES, error  # never INTERNAL, never without a code
        assert code != "UNAVAILABLE", error
    return answer


async def bad_input(api: Api, query: str, variables: dict[str, Any] | None = None) -> Any:
    answer = await post(api, query, variables)
    assert answer.get("errors"), answer
    error = answer["errors"][0]
    assert error["extensions"]["code"] == "BAD_USER_INPUT", error
    return error


def breaks_rule(value: str, *, identifier: bool) -> bool:
    """The rule, written independently of ``store.text``."""
    if any(0xD800 <= ord(c) <= 0xDFFF for c in value) or NUL in value:
        return True
    return identifier and any(unicodedata.category(c) == "Cc" for c in value)


@dataclass
class Target:
    """A multi-tenant collection with a model, a STRING and a DATETIME field, and a record."""

    name: str
    vector: list[float] = field(default_factory=lambda: [1.0, 0.0])


@pytest.fixture(scope="module")
async def target(api: Api) -> AsyncIterator[Target]:
    name = f"t_{uuid.uuid4().hex[:12]}"
    await api.ok(
        "mutation($i: CreateCollectionInput!) { createCollection(input: $i) { name } }",
        {
            "i": {
                "name": name,
                "dimension": 2,
                "multiTenant": True,
                "model": {"name": "m", "version": "1"},
                "fields": [{"name": "s", "type": "STRING"}, {"name": "d", "type": "DATETIME"}],
            }
        },
    )
    await api.ok(
        "mutation($c: String!, $r: [RecordInput!]!) { upsertRecords(collection: $c, records: $r) "
        "{ upserted } }",
        {"c": name, "r": [{"id": "r0", "vector": [1.0, 0.0], "tenant": "t1"}]},
    )
    yield Target(name)
    await api.ok("mutation($n: String!) { dropCollection(name: $n) }", {"n": name})


UPSERT = (
    "mutation($c: String!, $r: [RecordInput!]!, $a: Boolean!) { upsertRecords(collection: $c, "
    "records: $r, atomic: $a) { upserted ids errors { index id code message } } }"
)


def record(**overrides: Any) -> dict[str, Any]:
    return {"vector": [1.0, 0.0], "tenant": "t1", **overrides}


# -- point 6: the cases that answered INTERNAL or UNAVAILABLE --------------------------------------


# (case, the record's fields, what the error says)
BAD_RECORDS = [
    ("lone surrogate in an id", {"id": SURROGATE}, "id is not valid Unicode"),
    (
        "lone surrogate in a STRING field",
        {"id": "a", "metadata": {"s": SURROGATE}},
        "metadata.s (STRING): text is not valid Unicode",
    ),
    ("lone surrogate in text", {"id": "a", "text": "x" + SURROGATE}, "text is not valid Unicode"),
    (
        "lone surrogate in an undeclared metadata value",
        {"id": "a", "metadata": {"free": ["ok", SURROGATE]}},
        "metadata.free: text is not valid Unicode",
    ),
    ("lone surrogate in a tenant", {"id": "a", "tenant": SURROGATE}, "tenant is not valid Unicode"),
    ("NUL in a metadata key", {"id": "a", "metadata": {"k\x00": 1}}, "contains a NUL character"),
    ("NUL in a tenant", {"id": "a", "tenant": "t\x00"}, "tenant contains control characters"),
    (
        "DATETIME that overflows once in UTC",
        {"id": "a", "metadata": {"d": "0001-01-01T00:00:00+01:00"}},
        "out of range once in UTC",
    ),
    (
        "DATETIME that overflows at the top",
        {"id": "a", "metadata": {"d": "9999-12-31T23:59:59-01:00"}},
        "out of range once in UTC",
    ),
]


@pytest.mark.validation
@pytest.mark.parametrize(
    ("fields", "says"), [c[1:] for c in BAD_RECORDS], ids=[c[0] for c in BAD_RECORDS]
)
async def test_a_bad_string_in_an_atomic_batch_refuses_the_batch_naming_the_record(
    api: Api, target: Target, fields: dict[str, Any], says: str
) -> None:
    records = [record(id="good"), record(**fields)]
    error = await bad_input(api, UPSERT, {"c": target.name, "r": records, "a": True})
    [problem] = error["extensions"]["problems"]
    assert problem["index"] == 1
    assert says in problem["message"]
    assert SURROGATE not in error["message"]


async def test_atomic_false_writes_the_valid_records_whatever_is_wrong_with_the_others(
    api: Api, target: Target
) -> None:
    bad = [record(**fields) for _, fields, _ in BAD_RECORDS]
    good = [record(id=f"ok{i}", text="line\nnext\ttab", metadata={"s": "é😀"}) for i in range(2)]
    batch = [good[0], *bad, good[1]]
    answer = await post(api, UPSERT, {"c": target.name, "r": batch, "a": False})
    result = answer["data"]["upsertRecords"]
    assert result["upserted"] == 2
    assert result["ids"] == ["ok0", "ok1"]
    assert [e["index"] for e in result["errors"]] == list(range(1, len(bad) + 1))
    assert {e["code"] for e in result["errors"]} == {"BAD_USER_INPUT"}
    # The refused id is shown escaped: a lone surrogate cannot be encoded in a response.
    assert result["errors"][0]["id"] == "\\ud800"
    stored = await api.ok(
        'query($c: String!) { records(collection: $c, tenant: "t1", first: 50) '
        "{ edges { node { id text metadata } } } }",
        {"c": target.name},
    )
    nodes = {e["node"]["id"]: e["node"] for e in stored["records"]["edges"]}
    assert nodes["ok1"]["text"] == "line\nnext\ttab"
    assert nodes["ok1"]["metadata"] == {"s": "é😀"}
    assert "a" not in nodes


QUERY_CASES = [
    (
        "lone surrogate in a search tenant (was UNAVAILABLE)",
        "query($c: String!, $t: String) { search(collection: $c, vector: [1, 0], tenant: $t) "
        "{ hits { id } } }",
        {"t": SURROGATE},
        "tenant",
    ),
    (
        "lone surrogate in a collection name",
        "query($n: String!) { collection(name: $n) { name } }",
        {"n": "c" + SURROGATE},
        "name",
    ),
    (
        "lone surrogate in a new collection's name",
        "mutation($n: String!) { createCollection(input: {name: $n, dimension: 2}) { name } }",
        {"n": SURROGATE},
        "input.name",
    ),
    (
        "lone surrogate in a description",
        'mutation($d: String) { createCollection(input: {name: "x_surrogate", dimension: 2, '
        "description: $d}) { name } }",
        {"d": "about " + SURROGATE},
        "input.description",
    ),
    (
        "NUL in a record id",
        'query($c: String!, $i: ID!) { record(collection: $c, id: $i, tenant: "t1") { id } }',
        {"i": "r0" + NUL},
        "id",
    ),
    (
        "NUL in nearId",
        'query($c: String!, $i: ID) { search(collection: $c, nearId: $i, tenant: "t1") '
        "{ hits { id } } }",
        {"i": NUL},
        "nearId",
    ),
    (
        "NUL in delete ids",
        'mutation($c: String!, $i: [ID!]) { deleteRecords(collection: $c, ids: $i, tenant: "t1") '
        "{ deleted } }",
        {"i": ["r0", "r0" + NUL]},
        "ids[1]",
    ),
    (
        "NUL in a tenant",
        "query($c: String!, $t: String) { records(collection: $c, tenant: $t) { totalCount } }",
        {"t": "t1" + NUL},
        "tenant",
    ),
    (
        "NUL in a cursor",
        'query($c: String!, $a: String) { records(collection: $c, tenant: "t1", after: $a) '
        "{ totalCount } }",
        {"a": NUL},
        "after",
    ),
    (
        "NUL in a model name",
        'query($c: String!, $m: String) { search(collection: $c, vector: [1, 0], tenant: "t1", '
        "model: $m) { hits { id } } }",
        {"m": "m" + NUL},
        "model",
    ),
    (
        "NUL in a collection argument",
        'query($x: String!) { records(collection: $x, tenant: "t1") { totalCount } }',
        {"x": NUL},
        "collection",
    ),
    (
        "NUL in a new collection's model name",
        'mutation($m: String!) { createCollection(input: {name: "x_model", dimension: 2, '
        "model: {name: $m}}) { name } }",
        {"m": "m" + NUL},
        "input.model.name",
    ),
    (
        "control character in a tenant",
        "query($c: String!, $t: String) { records(collection: $c, tenant: $t) { totalCount } }",
        {"t": "t\t1"},
        "tenant",
    ),
    (
        "lone surrogate in a filter field",
        'query($c: String!, $f: String) { records(collection: $c, tenant: "t1", '
        "where: {field: $f, eq: 1}) { totalCount } }",
        {"f": SURROGATE},
        "where.field",
    ),
    (
        "NUL in a like pattern",
        'query($c: String!, $p: String) { records(collection: $c, tenant: "t1", '
        'where: {field: "s", like: $p}) { totalCount } }',
        {"p": "a%\x00"},
        "where.like",
    ),
    (
        "DATETIME in a filter that overflows once in UTC",
        'query($c: String!) { records(collection: $c, tenant: "t1", '
        'where: {field: "d", gt: "0001-01-01T00:00:00+01:00"}) { totalCount } }',
        {},
        "where.gt",
    ),
]


@pytest.mark.validation
@pytest.mark.parametrize(
    ("query", "variables", "path"), [c[1:] for c in QUERY_CASES], ids=[c[0] for c in QUERY_CASES]
)
async def test_a_bad_string_in_an_argument_is_bad_user_input_naming_it(
    api: Api, target: Target, query: str, variables: dict[str, Any], path: str
) -> None:
    error = await bad_input(api, query, {"c": target.name, **variables})
    assert path in error["message"], error
    assert SURROGATE not in error["message"]


@pytest.mark.validation
async def test_a_string_literal_is_checked_like_a_variable(api: Api, target: Target) -> None:
    # GraphQL's own escape: "\u0000" in the document is a NUL in the argument.
    query = 'query($c: String!) { records(collection: $c, tenant: "t\\u0000") { totalCount } }'
    error = await bad_input(api, query, {"c": target.name})
    assert "tenant" in error["message"]
    # A lone surrogate cannot even be written in a document: that is a syntax error.
    answer = await post(api, '{ collection(name: "\\ud800") { name } }')
    assert answer["errors"][0]["extensions"]["code"] == "GRAPHQL_PARSE_FAILED"


async def test_free_text_keeps_control_characters_identifiers_do_not(api: Api, name: str) -> None:
    created = await post(
        api,
        "mutation($n: String!, $d: String) { createCollection(input: {name: $n, dimension: 2, "
        "description: $d}) { description } }",
        {"n": name, "d": "line one\nline two\ttabbed é😀"},
    )
    assert created["data"]["createCollection"]["description"] == "line one\nline two\ttabbed é😀"
    error = await bad_input(
        api,
        'query($n: String!) { records(collection: $n, tenant: "a\\nb") { totalCount } }',
        {"n": name},
    )
    assert "tenant" in error["message"]


# -- point 7: every error is mapped ----------------------------------------------------------------


MALFORMED = [
    ("{ collections { } }", "GRAPHQL_PARSE_FAILED"),
    ("{ ...Missing }", "GRAPHQL_VALIDATION_FAILED"),
    ('{ records(collection: "c") { edges { node { ...id } } } }', "GRAPHQL_VALIDATION_FAILED"),
]


@pytest.mark.validation
@pytest.mark.parametrize(("query", "code"), MALFORMED)
async def test_a_malformed_document_answers_a_code_and_is_logged_with_it(
    api: Api, query: str, code: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="vectorql.requests")
    answer = await post(api, query)
    assert answer["data"] is None
    [error] = answer["errors"]
    assert error["extensions"]["code"] == code
    outcomes = [
        getattr(r, "outcome", None) for r in caplog.records if r.name == "vectorql.requests"
    ]
    assert outcomes == [code.lower()]


@pytest.fixture(scope="module")
async def production(database_url: str, session_dir: Path) -> AsyncIterator[Api]:
    settings = make_settings(
        milvus_uri=str(session_dir / f"strings-{uuid.uuid4().hex[:6]}.db"),
        database_url=database_url,
        env="production",
    )
    async with running_api(settings) as api:
        yield api


@pytest.mark.validation
async def test_malformed_documents_keep_their_code_in_production(production: Api) -> None:
    for query, code in MALFORMED:
        answer = await post(production, query)
        assert [e["extensions"]["code"] for e in answer["errors"]] == [code]


TRANSPORT = [
    ("GET", {"params": {"query": 'mutation { dropCollection(name: "x") }'}}, 405),
    ("PUT", {"json": {"query": "{ collections { name } }"}}, 405),
    ("DELETE", {}, 405),
    ("PATCH", {"json": {"query": "{ collections { name } }"}}, 405),
    ("GET", {"params": {"query": "{ collections { name } }", "variables": "[1"}}, 400),
    (
        "POST",
        {"content": b"{ collections { name } }", "headers": {"Content-Type": "text/plain"}},
        400,
    ),
    (
        "POST",
        {"content": b'{"query": "{ collections', "headers": {"Content-Type": "application/json"}},
        400,
    ),
    ("POST", {"content": b"[1, 2", "headers": {"Content-Type": "application/json"}}, 400),
    ("POST", {"content": b'"a string"', "headers": {"Content-Type": "application/json"}}, 400),
    ("POST", {"content": b"null", "headers": {"Content-Type": "application/json"}}, 400),
    ("POST", {"content": b"{}", "headers": {"Content-Type": "application/json"}}, 400),
    ("POST", {"content": b'{"query": 1}', "headers": {"Content-Type": "application/json"}}, 400),
    (
        "POST",
        {
            "content": b'{"query": "{ collections { name } }", "variables": []}',
            "headers": {"Content-Type": "application/json"},
        },
        400,
    ),
    (
        "POST",
        {
            "content": b'{"query": "{ collections { name } }", "operationName": "\\ud800"}',
            "headers": {"Content-Type": "application/json"},
        },
        400,
    ),
    (
        "POST",
        {
            "content": b"{}",
            "headers": {"Content-Type": "application/json", "Content-Length": str(10**12)},
        },
        413,
    ),
]


@pytest.mark.validation
@pytest.mark.parametrize(("method", "request_args", "status"), TRANSPORT)
async def test_a_transport_error_answers_a_json_graphql_error(
    api: Api, method: str, request_args: dict[str, Any], status: int
) -> None:
    response = await api.client.request(method, "/graphql", **request_args)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["data"] is None
    [error] = body["errors"]
    assert error["extensions"]["code"] in {"BAD_USER_INPUT", "LIMIT_EXCEEDED"}
    assert SURROGATE not in error["message"]


GRAPHQL_RESPONSE = {"Accept": "application/graphql-response+json, application/json"}


@pytest.mark.validation
@pytest.mark.parametrize(
    ("method", "request_args", "code"),
    [
        ("POST", {"json": {"query": "{ collections { "}}, "GRAPHQL_PARSE_FAILED"),
        ("POST", {"json": {"query": "{ nope }"}}, "GRAPHQL_VALIDATION_FAILED"),
        (
            "GET",
            {
                "params": {
                    "query": "query ($n: String!) { collection(name: $n) { name } }",
                    "variables": '{"n": 1}',
                }
            },
            "BAD_USER_INPUT",  # variable coercion fails
        ),
        ("POST", {"content": b"[1, 2", "headers": {"Content-Type": "application/json"}}, None),
    ],
)
async def test_a_request_error_in_graphql_response_json_is_400_with_no_data(
    api: Api, method: str, request_args: dict[str, Any], code: str | None
) -> None:
    headers = {**request_args.pop("headers", {}), **GRAPHQL_RESPONSE}
    response = await api.client.request(method, "/graphql", headers=headers, **request_args)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/graphql-response+json"
    body = response.json()
    assert "data" not in body
    assert body["errors"][0]["extensions"]["code"] == (code or "BAD_USER_INPUT")
    # The same request asking for application/json keeps 200 (or 400 for a transport error).
    plain = await api.client.request(
        method, "/graphql", **request_args, headers=headers | {"Accept": "application/json"}
    )
    assert plain.headers["content-type"].startswith("application/json")
    assert plain.json()["data"] is None
    assert plain.status_code == (200 if code else 400)


async def test_a_query_over_get_takes_url_encoded_variables(api: Api) -> None:
    response = await api.client.get(
        "/graphql",
        params={
            "query": "query ($n: String!) { collection(name: $n) { name } }",
            "variables": '{"n": "absent"}',
        },
        headers=GRAPHQL_RESPONSE,
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/graphql-response+json"
    assert response.json() == {"data": {"collection": None}}


# -- properties: generated strings into every string argument and input field ---------------------


@dataclass(frozen=True)
class Slot:
    """One string position of the schema: a root field's operation with every argument in a
    variable, the baseline variables, and where in them the string goes."""

    field: str
    path: tuple[str | int, ...]
    identifier: bool
    document: str
    variables: dict[str, Any]

    @property
    def schema_path(self) -> tuple[str, str]:
        return self.field, ".".join(str(p) for p in self.path if isinstance(p, str))

    def request(self, target: str, value: str) -> dict[str, Any]:
        variables = copy.deepcopy(self.variables)
        variables = {k: (target if v == "$TARGET" else v) for k, v in variables.items()}
        where: Any = variables
        for step in self.path[:-1]:
            where = where[step]
        where[self.path[-1]] = value
        return variables


SEARCH = (
    "query($c: String!, $v: Vector, $n: ID, $t: String, $m: String, $w: Filter) { search("
    "collection: $c, vector: $v, nearId: $n, tenant: $t, model: $m, where: $w) { hits { id } } }"
)
BATCH = (
    "query($c: String!, $t: String, $m: String, $w: Filter) { searchBatch(collection: $c, "
    "vectors: [[1, 0]], tenant: $t, model: $m, where: $w) { hits { id } } }"
)
RECORDS = (
    "query($c: String!, $a: String, $t: String, $w: Filter) { records(collection: $c, after: $a, "
    "tenant: $t, where: $w) { totalCount } }"
)
DELETE = (
    "mutation($c: String!, $i: [ID!], $t: String, $w: Filter) { deleteRecords(collection: $c, "
    "ids: $i, tenant: $t, where: $w) { deleted } }"
)
SEARCH_MODES = (
    "query($c: String!, $x: String, $k: String, $h: HybridInput, $v: Vector, $a: String, "
    "$g: GroupByInput, $t: String) { search(collection: $c, text: $x, keyword: $k, hybrid: $h, "
    "vector: $v, after: $a, groupBy: $g, tenant: $t) { hits { id } } }"
)
BATCH_MODES = (
    "query($c: String!, $xs: [String!], $ks: [String!], $hs: [HybridInput!], $t: String) { "
    "searchBatch(collection: $c, texts: $xs, keywords: $ks, hybrids: $hs, tenant: $t) "
    "{ hits { id } } }"
)
CREATE = "mutation($i: CreateCollectionInput!) { createCollection(input: $i) { name } }"
BASE_SEARCH = {"c": "$TARGET", "v": [1, 0], "t": "t1"}
FILTER_FIELD = {"w": {"field": "?", "eq": "x"}}
FILTER_LIKE = {"w": {"field": "s", "like": "?"}}
# dimension 1 is refused after the strings are checked: nothing is created
BAD_DIMENSION = {"name": "x_fuzz", "dimension": 1}


def _slots() -> list[Slot]:
    def slot(
        field: str,
        path: tuple[str | int, ...],
        document: str,
        variables: dict[str, Any],
        *,
        identifier: bool = True,
    ) -> Slot:
        return Slot(field, path, identifier, document, variables)

    return [
        slot("collection", ("n",), "query($n: String!) { collection(name: $n) { name } }", {}),
        *(
            slot(
                "record",
                (k,),
                "query($c: String!, $i: ID!, $t: String) { record(collection: $c, id: $i, "
                "tenant: $t) { id } }",
                {"c": "$TARGET", "i": "r0", "t": "t1"},
            )
            for k in ("c", "i", "t")
        ),
        *(slot("records", (k,), RECORDS, {"c": "$TARGET", "t": "t1"}) for k in ("c", "a", "t")),
        slot("records", ("w", "field"), RECORDS, {"c": "$TARGET", "t": "t1", **FILTER_FIELD}),
        slot(
            "records",
            ("w", "like"),
            RECORDS,
            {"c": "$TARGET", "t": "t1", **FILTER_LIKE},
            identifier=False,
        ),
        *(slot("search", (k,), SEARCH, BASE_SEARCH) for k in ("c", "t", "m")),
        slot("search", ("n",), SEARCH, {**BASE_SEARCH, "v": None}),
        slot("search", ("w", "field"), SEARCH, {**BASE_SEARCH, **FILTER_FIELD}),
        slot("search", ("w", "like"), SEARCH, {**BASE_SEARCH, **FILTER_LIKE}, identifier=False),
        *(slot("searchBatch", (k,), BATCH, {"c": "$TARGET", "t": "t1"}) for k in ("c", "t", "m")),
        slot("searchBatch", ("w", "field"), BATCH, {"c": "$TARGET", "t": "t1", **FILTER_FIELD}),
        slot(
            "searchBatch",
            ("w", "like"),
            BATCH,
            {"c": "$TARGET", "t": "t1", **FILTER_LIKE},
            identifier=False,
        ),
        # text in, keyword and hybrid queries, cursors and group-by (issues 20, 22, 23)
        *(
            slot("search", path, SEARCH_MODES, {"c": "$TARGET", "t": "t1", **base}, identifier=i)
            for path, base, i in (
                (("x",), {"x": "q"}, False),
                (("k",), {"k": "q"}, False),
                (("h", "query"), {"h": {"query": "q", "vector": [1, 0]}}, False),
                (("a",), {"v": [1, 0], "a": "q"}, True),
                (("g", "field"), {"v": [1, 0], "g": {"field": "s"}}, True),
            )
        ),
        *(
            slot(
                "searchBatch",
                path,
                BATCH_MODES,
                {"c": "$TARGET", "t": "t1", **base},
                identifier=False,
            )
            for path, base in (
                (("xs", 0), {"xs": ["q"]}),
                (("ks", 0), {"ks": ["q"]}),
                (("hs", 0, "query"), {"hs": [{"query": "q", "vector": [1, 0]}]}),
            )
        ),
        slot("createCollection", ("i", "name"), CREATE, {"i": BAD_DIMENSION}),
        slot(
            "createCollection",
            ("i", "description"),
            CREATE,
            {"i": BAD_DIMENSION},
            identifier=False,
        ),
        slot(
            "createCollection",
            ("i", "model", "name"),
            CREATE,
            {"i": {**BAD_DIMENSION, "model": {"name": "m"}}},
        ),
        slot(
            "createCollection",
            ("i", "model", "version"),
            CREATE,
            {"i": {**BAD_DIMENSION, "model": {"name": "m"}}},
        ),
        slot(
            "createCollection",
            ("i", "fields", 0, "name"),
            CREATE,
            {"i": {**BAD_DIMENSION, "fields": [{"name": "f", "type": "STRING"}]}},
        ),
        slot("dropCollection", ("n",), "mutation($n: String!) { dropCollection(name: $n) }", {}),
        slot(
            "updateIndex",
            ("c",),
            "mutation($c: String!) { updateIndex(collection: $c, index: {type: HNSW, "
            "params: {M: 1}}) { name } }",
            {},
        ),
        slot(
            "upsertRecords",
            ("c",),
            UPSERT,
            {"c": "$TARGET", "r": [record(id="f0")], "a": False},
        ),
        *(
            slot(
                "upsertRecords",
                ("r", 0, k),
                UPSERT,
                {"c": "$TARGET", "r": [record(id="f0"), record(id="f1")], "a": False},
                identifier=k != "text",
            )
            for k in ("id", "text", "tenant")
        ),
        slot("deleteRecords", ("c",), DELETE, {"c": "$TARGET", "i": ["nope"], "t": "t1"}),
        slot("deleteRecords", ("i", 0), DELETE, {"c": "$TARGET", "i": ["?"], "t": "t1"}),
        slot("deleteRecords", ("t",), DELETE, {"c": "$TARGET", "i": ["nope"]}),
        slot("deleteRecords", ("w", "field"), DELETE, {"c": "$TARGET", "t": "t1", **FILTER_FIELD}),
        slot(
            "deleteRecords",
            ("w", "and", 0, "like"),
            DELETE,
            # and a value no record has: the pattern is run, but nothing is deleted
            {
                "c": "$TARGET",
                "t": "t1",
                "w": {"and": [{"field": "s", "like": "?"}, {"field": "s", "eq": "never"}]},
            },
            identifier=False,
        ),
    ]


SLOTS = _slots()


def _schema_string_positions() -> set[tuple[str, str]]:
    """Every String/ID argument and input field of the schema, by root field and dotted path
    (``Filter``'s own recursion, and/or/not, is not followed: its strings are field and like)."""
    schema = build_schema()._schema
    found: set[tuple[str, str]] = set()

    def walk(root: str, path: str, type_: Any, seen: frozenset[str]) -> None:
        named = graphql.get_named_type(type_)
        if isinstance(named, graphql.GraphQLScalarType) and named.name in ("String", "ID"):
            found.add((root, path))
        elif isinstance(named, graphql.GraphQLInputObjectType) and named.name not in seen:
            for name, f in named.fields.items():
                walk(root, f"{path}.{name}", f.type, seen | {named.name})

    for root_type in (schema.query_type, schema.mutation_type):
        assert root_type is not None
        for root, definition in root_type.fields.items():
            for arg, argument in definition.args.items():
                walk(root, arg, argument.type, frozenset())
    return found


# The slots' variable names, spelled as the schema's argument names.
_ARGUMENTS = {
    "c": "collection", "n": "name", "i": "id", "t": "tenant", "a": "after", "m": "model",
    "w": "where", "r": "records", "x": "text", "k": "keyword", "h": "hybrid", "g": "groupBy",
    "xs": "texts", "ks": "keywords", "hs": "hybrids",
}  # fmt: skip


def _slot_position(slot: Slot) -> tuple[str, str]:
    field_, path = slot.schema_path
    head, *rest = path.split(".")
    argument = _ARGUMENTS[head]
    if slot.field == "search" and head == "n":
        argument = "nearId"
    if slot.field == "createCollection":
        argument = "input"
    if slot.field == "deleteRecords" and head == "i":
        argument = "ids"
    rest = [p for p in rest if p != "and"]
    return field_, ".".join([argument, *rest])


def test_the_slots_cover_every_string_argument_and_input_field() -> None:
    assert {_slot_position(s) for s in SLOTS} == _schema_string_positions()


def _check_answer(answer: Any, slot: Slot, value: str) -> None:
    """No INTERNAL, no UNAVAILABLE, every error coded (``post``); a bad string is refused."""
    bad = breaks_rule(value, identifier=slot.identifier)
    if slot.field == "upsertRecords" and slot.path[0] == "r":
        result = answer["data"]["upsertRecords"]
        assert result["upserted"] >= 1, answer  # the other record is always written
        if bad:
            assert [e["index"] for e in result["errors"]] == [0], answer
        return
    if bad:
        assert answer.get("errors"), answer
        assert answer["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT", answer


@pytest.mark.validation
async def test_hostile_strings_in_every_string_position_are_refused_as_bad_user_input(
    api: Api, target: Target
) -> None:
    for slot in SLOTS:
        for value in HOSTILE:
            answer = await post(api, slot.document, slot.request(target.name, value))
            _check_answer(answer, slot, value)


# Any code point, surrogates and controls included, and the characters that matter most.
STRINGS = st.one_of(
    st.text(st.characters(exclude_categories=()), max_size=8),
    st.text(st.sampled_from("a_%\\ \x00\x01\x1f\n\x7f\x85\ud800\udfff😀é"), max_size=6),
)


@pytest.mark.validation
@settings(
    max_examples=120,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(slot=st.sampled_from(SLOTS), value=STRINGS)
async def test_generated_strings_never_answer_internal_or_unavailable(
    api: Api, target: Target, slot: Slot, value: str
) -> None:
    answer = await post(api, slot.document, slot.request(target.name, value))
    _check_answer(answer, slot, value)
