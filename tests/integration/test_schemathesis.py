"""Schemathesis against a running server in production mode, with a valid admin key.

``vectorql serve`` runs in its own process (uvicorn, Milvus Lite, SQLite) with
``VECTORQL_ENV=production`` and ``VECTORQL_AUTH=apikey``; the key comes from ``vectorql keys
create``. Schemathesis generates operations for every root field from the committed schema (the
server's introspection is off), positive and negative, seeded (``derandomize``); half of them are
pointed at two real collections so that searches, filters and writes run for real. Every response
must be: no 5xx, JSON, no ``INTERNAL`` error, only documented codes, no stack trace, no field
suggestion. The figures are printed (``pytest -s``) and the server log is checked for internal
errors at the end.
"""

from __future__ import annotations

import base64
import collections
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import graphql
import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.graphql import nodes

from graph.schema import build_schema
from graph.schema.errors import EXPOSED_CODES
from tests.servers import ApiServer, serve_api

POSITIVE_EXAMPLES = 70
NEGATIVE_EXAMPLES = 25
DDL = {"createCollection", "dropCollection", "updateIndex"}
STACK_TRACE = re.compile(r"Traceback \(most recent call last\)|File \"[^\"]+\", line \d+")


def _json_ast() -> st.SearchStrategy[graphql.ValueNode]:
    leaves = st.one_of(
        st.integers(-(10**6), 10**6).map(nodes.Int),
        st.floats(allow_nan=False, allow_infinity=False).map(nodes.Float),
        st.text(max_size=16).map(nodes.String),
        st.sampled_from(["A", "B", "a", "x%", "2024-01-01T00:00:00Z", '" or 1==1 or "']).map(
            nodes.String
        ),
        st.booleans().map(nodes.Boolean),
        st.just(nodes.Null),
    )
    keys = st.one_of(
        st.sampled_from(["group", "n", "tags", "flag", "id", "tenant", "x"]),
        st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True),
    )

    def containers(
        children: st.SearchStrategy[graphql.ValueNode],
    ) -> st.SearchStrategy[graphql.ValueNode]:
        return st.one_of(
            st.lists(children, max_size=4).map(nodes.List),
            st.dictionaries(keys, children, max_size=4).map(
                lambda d: nodes.Object(
                    [
                        graphql.ObjectFieldNode(name=graphql.NameNode(value=k), value=v)
                        for k, v in d.items()
                    ]
                )
            ),
        )

    return st.recursive(leaves, containers, max_leaves=8)


def _vector_ast() -> st.SearchStrategy[graphql.ValueNode]:
    floats = st.floats(-10, 10, allow_nan=False, width=32)
    return st.one_of(
        st.lists(floats, min_size=0, max_size=8).map(
            lambda xs: nodes.List([nodes.Float(x) for x in xs])
        ),
        st.binary(min_size=0, max_size=32).map(
            lambda b: nodes.String(base64.b64encode(b).decode())
        ),
        st.text(max_size=12).map(nodes.String),
    )


schemathesis.graphql.scalar("JSON", _json_ast())
schemathesis.graphql.scalar("Vector", _vector_ast())


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    with serve_api(
        tmp_path_factory.mktemp("schemathesis"),
        admin_key=True,
        env="production",
        auth="apikey",
        rate_limit_per_second=0,
        metrics="false",
    ) as running:
        yield running


def _seed(client: httpx.Client) -> None:
    fields = [
        {"name": "group", "type": "STRING"},
        {"name": "n", "type": "INT"},
        {"name": "tags", "type": "STRING_LIST"},
        {"name": "flag", "type": "BOOL"},
    ]
    for name, multi in (("docs", False), ("mt", True)):
        _ok(
            client,
            "mutation($i: CreateCollectionInput!) { createCollection(input: $i) { name } }",
            {"i": {"name": name, "dimension": 4, "fields": fields, "multiTenant": multi}},
        )
        records = [
            {
                "id": f"r{i}",
                "vector": [float(i % 3), 1.0, float(i % 5), 0.5],
                "metadata": {
                    "group": "AB"[i % 2],
                    "n": i,
                    "tags": [f"t{i % 3}"],
                    "flag": i % 2 == 0,
                },
                **({"tenant": "AB"[i % 2]} if multi else {}),
            }
            for i in range(20)
        ]
        _ok(
            client,
            "mutation($c: String!, $r: [RecordInput!]!) { "
            "upsertRecords(collection: $c, records: $r) { upserted } }",
            {"c": name, "r": records},
        )


def _ok(client: httpx.Client, query: str, variables: dict[str, Any]) -> None:
    body = client.post("/graphql", json={"query": query, "variables": variables}).json()
    assert not body.get("errors"), body


ARGUMENT = {
    "collection": re.compile(r'(\bcollection: )"(?:[^"\\]|\\.)*"'),
    "name": re.compile(r'(\bname: )"(?:[^"\\]|\\.)*"'),
}


def _aim(query: str, operation: str, target: str | None) -> str:
    """Point the operation at a real collection (``target``), or leave it as generated."""
    if target is None or operation in DDL:
        return query
    pattern = ARGUMENT["name" if operation == "collection" else "collection"]
    return pattern.sub(lambda m: f'{m.group(1)}"{target}"', query)


@dataclass
class Tally:
    requests: int = 0
    by_operation: collections.Counter[str] = field(default_factory=collections.Counter)
    by_outcome: collections.Counter[str] = field(default_factory=collections.Counter)
    problems: list[str] = field(default_factory=list)
    http_seconds: collections.Counter[str] = field(default_factory=collections.Counter)


def _check(response: httpx.Response, tally: Tally, operation: str, query: str) -> None:
    text = response.text
    where = f"{operation}: {query[:300]!r} -> {response.status_code} {text[:500]}"
    if response.status_code >= 500:
        tally.problems.append(f"5xx {where}")
    if STACK_TRACE.search(text):
        tally.problems.append(f"stack trace {where}")
    if "Did you mean" in text:
        tally.problems.append(f"suggestion {where}")
    if response.status_code != 200:
        tally.by_outcome[f"HTTP {response.status_code}"] += 1
        return
    body = response.json()
    errors = body.get("errors") or []
    for error in errors:
        code = (error.get("extensions") or {}).get("code")
        if code == "INTERNAL" or code not in EXPOSED_CODES:
            tally.problems.append(f"code {code} {where}")
    tally.by_outcome[errors[0]["extensions"]["code"] if errors else "ok"] += 1


def _fuzz(
    client: httpx.Client,
    tally: Tally,
    operation: Any,
    *,
    mode: GenerationMode,
    examples: int,
) -> None:
    name = operation.label.split(".", 1)[1]

    @given(
        case=operation.as_strategy(generation_mode=mode),
        target=st.sampled_from([None, "docs", "mt"]),
    )
    @settings(
        max_examples=examples,
        derandomize=True,  # seeded: the same operations on every run
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any, target: str | None) -> None:
        body = case.body if isinstance(case.body, dict) else {"query": case.body}
        body = {**body, "query": _aim(str(body.get("query", "")), name, target)}
        t0 = time.monotonic()
        response = client.post("/graphql", json=body)
        tally.http_seconds[name] += time.monotonic() - t0
        tally.requests += 1
        tally.by_operation[name] += 1
        _check(response, tally, name, body["query"])

    run()


def test_schemathesis_finds_no_server_error(server: ApiServer) -> None:
    started = time.monotonic()
    schema = schemathesis.graphql.from_file(build_schema().as_str())
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 12  # the root fields of the generic schema
    tally = Tally()
    headers = {"Authorization": f"Bearer {server.key}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=60) as client:
        _seed(client)
        for operation in operations:
            _fuzz(
                client, tally, operation, mode=GenerationMode.POSITIVE, examples=POSITIVE_EXAMPLES
            )
            _fuzz(
                client, tally, operation, mode=GenerationMode.NEGATIVE, examples=NEGATIVE_EXAMPLES
            )
    seconds = time.monotonic() - started
    log = server.log.read_text(errors="replace")
    internal = [line for line in log.splitlines() if "internal error" in line]
    http = {k: round(v, 1) for k, v in tally.http_seconds.items()}
    print(
        f"\nschemathesis: {tally.requests} operations in {seconds:.0f} s; "
        f"per operation {dict(tally.by_operation)}; outcomes {dict(tally.by_outcome)}; "
        f"{len(tally.problems)} problems; {len(internal)} internal errors logged; "
        f"HTTP seconds {http}"
    )
    assert server.process.poll() is None, "the server died"
    assert tally.requests >= 1000
    assert not tally.problems, "\n".join(tally.problems[:20])
    assert not internal, "\n".join(internal[:10])
