"""Traces, metrics and logs of the running app, over HTTP on real Milvus Lite and SQLite /
PostgreSQL. Spans go to an in-memory exporter handed to ``create_app`` (never the process-global
provider); metrics are read from ``GET /metrics`` as Prometheus scrapes them."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text
from sqlalchemy.exc import OperationalError, ProgrammingError

import resolvers.search
from graph.app import create_app
from graph.logs import log_handler
from graph.telemetry import Telemetry
from store.keys import parse_key
from tests.conftest import Api, make_settings, running_api
from tests.deploy import METRICS

DIM = 8
TOKEN = "metrics-token-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
# A W3C trace context from a caller: the request span must continue its trace.
CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{CALLER_TRACE}-00f067aa0ba902b7-01"

SEARCH = """
query Find($c: String!, $v: Vector, $k: Int!) {
  search(collection: $c, vector: $v, topK: $k) {
    hits { id score record { id metadata } }
    explain { milvusMs sqlMs totalMs indexType params consistency candidates returned }
  }
}
"""


@dataclass
class Traced:
    api: Api
    spans: InMemorySpanExporter

    async def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """Every sample of ``/metrics``, by (name, sorted labels)."""
        response = await self.api.client.get("/metrics", headers=AUTH)
        assert response.status_code == 200, response.text
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(response.text)
            for s in family.samples
        }


@pytest.fixture(scope="module")
async def traced(database_url: str, session_dir: Path) -> AsyncIterator[Traced]:
    """The app with an in-memory span exporter and a token on /metrics (its own Milvus Lite
    file: the session's ``api`` fixture holds the shared one)."""
    exporter = InMemorySpanExporter()
    settings = make_settings(
        milvus_uri=str(session_dir / f"telemetry-{uuid.uuid4().hex[:8]}.db"),
        database_url=database_url,
        metrics_token=TOKEN,
    )
    telemetry = Telemetry.from_settings(settings, span_exporter=exporter)
    app = create_app(settings, telemetry=telemetry)
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                yield Traced(Api(client, app), exporter)
    finally:
        telemetry.shutdown()


async def make_collection(api: Api, name: str, n: int) -> np.ndarray:
    await api.ok(
        "mutation($i: CreateCollectionInput!) { createCollection(input: $i) { name } }",
        {"i": {"name": name, "dimension": DIM, "index": {"type": "FLAT"}}},
    )
    vectors = np.random.default_rng(3).normal(size=(n, DIM)).astype(np.float32)
    records = [{"id": f"r{i:04d}", "vector": vectors[i].tolist()} for i in range(n)]
    await api.ok(
        "mutation($c: String!, $r: [RecordInput!]!) { upsertRecords(collection: $c, "
        "records: $r) { upserted } }",
        {"c": name, "r": records},
    )
    return vectors


async def search(traced: Traced, name: str, q: np.ndarray, k: int, **headers: str) -> Any:
    traced.spans.clear()
    body = await traced.api.post(SEARCH, {"c": name, "v": q.tolist(), "k": k}, headers=headers)
    assert not body.get("errors"), body
    return body["data"]["search"]


def by_name(spans: tuple[ReadableSpan, ...]) -> dict[str, list[ReadableSpan]]:
    out: dict[str, list[ReadableSpan]] = {}
    for s in spans:
        out.setdefault(s.name, []).append(s)
    return out


def sql_spans(spans: tuple[ReadableSpan, ...]) -> list[ReadableSpan]:
    return [s for s in spans if s.attributes and "db.statement" in s.attributes]


def parent_of(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent else None


def all_attribute_text(spans: tuple[ReadableSpan, ...]) -> str:
    parts = [s.name for s in spans]
    for s in spans:
        parts.extend(f"{k}={v}" for k, v in (s.attributes or {}).items())
        for event in s.events:
            parts.extend(f"{k}={v}" for k, v in (event.attributes or {}).items())
    return "\n".join(parts)


async def test_a_search_makes_one_span_per_stage_correctly_parented(
    traced: Traced, name: str
) -> None:
    vectors = await make_collection(traced.api, name, 40)
    q = vectors[7] + 0.01
    await search(traced, name, q, 5)  # warms the registry cache: no registry lookup below
    result = await search(traced, name, q, 5, traceparent=TRACEPARENT)
    spans = traced.spans.get_finished_spans()
    names = by_name(spans)

    [request] = names["POST /graphql"]
    [operation] = names["query search"]
    [milvus] = names["milvus search"]
    [loader] = names["loader records"]
    [sql] = sql_spans(spans)
    assert len(spans) == 5, sorted(s.name for s in spans)

    assert request.kind is SpanKind.SERVER
    assert request.context.trace_id == int(CALLER_TRACE, 16)  # continues the caller's trace
    assert {s.context.trace_id for s in spans} == {request.context.trace_id}
    assert parent_of(operation) == request.context.span_id
    assert parent_of(milvus) == operation.context.span_id
    assert parent_of(loader) == operation.context.span_id
    assert parent_of(sql) == loader.context.span_id

    assert request.attributes is not None
    assert request.attributes["http.route"] == "/graphql"
    assert request.attributes["http.response.status_code"] == 200
    assert operation.attributes == {
        "graphql.operation.type": "query",
        "graphql.operation.name": "Find",
        "vectorql.operation": "search",
        "vectorql.outcome": "ok",
    }
    assert milvus.kind is SpanKind.CLIENT
    assert milvus.attributes is not None
    assert milvus.attributes["db.collection.name"] == f"vq_{name}"
    assert milvus.attributes["milvus.top_k"] == 5
    assert milvus.attributes["milvus.nq"] == 1
    assert milvus.attributes["milvus.index_type"] == "FLAT"
    assert milvus.attributes["milvus.consistency"] == "SESSION"
    assert loader.attributes is not None
    assert loader.attributes["vectorql.loader.keys"] == 5
    assert sql.attributes is not None
    assert str(sql.attributes["db.statement"]).lstrip().upper().startswith("SELECT")

    # The search's own account of its stages (issue 7, point 4).
    explain = result["explain"]
    assert explain["candidates"] == explain["returned"] == 5
    assert explain["indexType"] == "FLAT"
    assert explain["consistency"] == "SESSION"
    assert 0 < explain["milvusMs"] < explain["totalMs"]
    assert 0 < explain["sqlMs"] < explain["totalMs"]
    assert explain["milvusMs"] + explain["sqlMs"] <= explain["totalMs"]


async def test_span_count_does_not_grow_with_top_k(traced: Traced, name: str) -> None:
    vectors = await make_collection(traced.api, name, 150)
    await search(traced, name, vectors[0], 1)
    one = sorted(s.name for s in traced.spans.get_finished_spans())
    result = await search(traced, name, vectors[0], 100)
    hundred = sorted(s.name for s in traced.spans.get_finished_spans())
    assert len(result["hits"]) == 100
    assert one == hundred
    assert len(hundred) == 5


async def test_no_vector_or_key_in_any_attribute(traced: Traced, name: str) -> None:
    traced.spans.clear()
    vectors = await make_collection(traced.api, name, 20)
    written = traced.spans.get_finished_spans()
    q = vectors[2] + 0.5
    encoded = base64.b64encode(q.astype("<f4").tobytes()).decode()
    inline = SEARCH.replace("$v: Vector, ", "").replace("vector: $v", f'vector: "{encoded}"')
    traced.spans.clear()
    body = await traced.api.post(
        inline, {"c": name, "k": 3}, headers={"Authorization": "Bearer vq_secret_key_value"}
    )
    assert not body.get("errors"), body
    await search(traced, name, q, 3)
    text_of_spans = all_attribute_text(written + traced.spans.get_finished_spans())

    assert encoded not in text_of_spans
    assert "vq_secret_key_value" not in text_of_spans
    assert "Bearer" not in text_of_spans
    for value in [*vectors[:5].ravel()[:20], *q]:
        for shown in (repr(float(value)), f"{value:.6f}"):
            assert shown not in text_of_spans, shown
    assert "query Find" not in text_of_spans  # nor the document


async def test_metrics_expose_the_named_metrics_and_they_move(traced: Traced, name: str) -> None:
    vectors = await make_collection(traced.api, name, 30)
    await search(traced, name, vectors[1], 4)
    response = await traced.api.client.get("/metrics", headers=AUTH)
    assert response.headers["content-type"].startswith("text/plain")
    for metric in METRICS:  # the names the dashboard and the alerts use
        assert f"# TYPE {metric} " in response.text, metric

    before = await traced.metrics()
    await search(traced, name, vectors[2], 4)
    bad = await traced.api.post(SEARCH, {"c": name, "v": [1.0, 2.0], "k": 4})
    assert bad["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    await traced.api.ok(
        "mutation($c: String!, $r: [RecordInput!]!) { upsertRecords(collection: $c, "
        "records: $r) { upserted } }",
        {"c": name, "r": [{"id": f"n{i}", "vector": vectors[i].tolist()} for i in range(3)]},
    )
    after = await traced.metrics()

    def moved(sample: str, **labels: str) -> float:
        key = (sample, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    search_ok = {"operation": "search", "outcome": "ok"}
    assert moved("vectorql_requests_total", **search_ok) == 1
    assert moved("vectorql_requests_total", operation="search", outcome="bad_user_input") == 1
    assert moved("vectorql_requests_total", operation="upsertRecords", outcome="ok") == 1
    assert moved("vectorql_request_duration_seconds_count", **search_ok) == 1
    assert moved("vectorql_request_duration_seconds_sum", **search_ok) > 0
    for stage in ("milvus", "sql", "total"):
        assert moved("vectorql_search_duration_seconds_count", collection=name, stage=stage) == 1
    assert moved("vectorql_loader_batch_size_count", loader="records") == 1
    assert moved("vectorql_loader_batch_size_sum", loader="records") == 4
    assert moved("vectorql_ingested_records_total", collection=name) == 3
    assert moved("vectorql_upsert_batch_size_count") == 1
    assert moved("vectorql_upsert_batch_size_sum") == 3
    assert after[("vectorql_reconciler_pending", (("collection", name),))] == 0
    assert ("vectorql_backend_errors_total", (("backend", "milvus"),)) in after
    assert ("vectorql_backend_errors_total", (("backend", "sql"),)) in after


async def test_metrics_need_the_token_when_one_is_set(traced: Traced) -> None:
    assert (await traced.api.client.get("/metrics")).status_code == 401
    wrong = await traced.api.client.get("/metrics", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert wrong.headers["www-authenticate"] == "Bearer"
    assert (await traced.api.client.get("/metrics", headers=AUTH)).status_code == 200


async def test_health_probes_and_scrapes_are_not_traced(traced: Traced) -> None:
    traced.spans.clear()
    assert (await traced.api.client.get("/readyz")).status_code == 200
    assert (await traced.api.client.get("/metrics", headers=AUTH)).status_code == 200
    assert traced.spans.get_finished_spans() == ()


async def test_backend_errors_are_counted(tmp_path: Path) -> None:
    settings = make_settings(
        milvus_uri="http://127.0.0.1:1",  # nothing listens there
        milvus_timeout=1,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}",
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            api = Api(client, app)
            error = await api.error(
                'mutation { createCollection(input: {name: "x", dimension: 4}) { name } }'
            )
            assert error["extensions"]["code"] == "UNAVAILABLE"
            with pytest.raises((OperationalError, ProgrammingError)):
                async with api.store.engine.connect() as conn:
                    await conn.execute(text("SELECT * FROM no_such_table"))
            page = (await client.get("/metrics")).text
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(page)
        for s in family.samples
    }
    assert samples[("vectorql_backend_errors_total", (("backend", "milvus"),))] >= 1
    assert samples[("vectorql_backend_errors_total", (("backend", "sql"),))] >= 1
    outcome = (("operation", "createCollection"), ("outcome", "unavailable"))
    assert samples[("vectorql_requests_total", outcome)] == 1


async def test_metrics_can_be_turned_off(tmp_path: Path) -> None:
    settings = make_settings(
        milvus_uri="http://127.0.0.1:1",
        milvus_timeout=1,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}",
        metrics=False,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            assert (await client.get("/metrics")).status_code == 404


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """JSON log lines of everything logged at INFO and above while the test runs."""
    stream = io.StringIO()
    handler = log_handler(fmt="json", stream=stream)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def parsed(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


async def test_the_request_log_line_carries_the_trace_ids_of_its_spans(
    traced: Traced, name: str, log_lines: io.StringIO
) -> None:
    vectors = await make_collection(traced.api, name, 10)
    log_lines.truncate(0)
    log_lines.seek(0)
    await search(traced, name, vectors[0], 3)
    [request] = by_name(traced.spans.get_finished_spans())["POST /graphql"]
    [line] = [x for x in parsed(log_lines) if x["logger"] == "vectorql.requests"]

    assert line["trace_id"] == format(request.context.trace_id, "032x")
    assert line["span_id"] == format(request.context.span_id, "016x")
    assert line["level"] == "info"
    assert line["operation"] == "search"
    assert line["operation_name"] == "Find"
    assert line["outcome"] == "ok"
    assert line["status"] == 200
    assert line["duration_ms"] > 0
    assert "timestamp" in line


async def test_an_internal_error_is_logged_with_its_exception_and_trace_id(
    traced: Traced, name: str, log_lines: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    vectors = await make_collection(traced.api, name, 5)

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the search use case broke")

    monkeypatch.setattr(resolvers.search, "search", broken)
    traced.spans.clear()
    body = await traced.api.post(SEARCH, {"c": name, "v": vectors[0].tolist(), "k": 3})
    [error] = body["errors"]
    assert error["extensions"]["code"] == "INTERNAL"
    assert "broke" not in error["message"]  # masked for the client

    spans = by_name(traced.spans.get_finished_spans())
    [request] = spans["POST /graphql"]
    [operation] = spans["query search"]
    trace_id = format(request.context.trace_id, "032x")
    assert error["extensions"]["traceId"] == trace_id
    lines = parsed(log_lines)
    [logged] = [x for x in lines if x["logger"] == "vectorql.errors"]
    assert logged["level"] == "error"
    assert logged["trace_id"] == trace_id
    assert logged["error_id"] == error["extensions"]["errorId"]
    assert "RuntimeError: the search use case broke" in logged["exception"]
    [line] = [x for x in lines if x["logger"] == "vectorql.requests" and x["trace_id"] == trace_id]
    assert line["outcome"] == "internal"
    assert line["error_id"] == error["extensions"]["errorId"]
    assert operation.status.status_code is StatusCode.ERROR
    assert [e.name for e in operation.events] == ["exception"]


@pytest.mark.slow
async def test_readiness_is_503_while_milvus_is_down_and_recovers_by_itself(
    tmp_path: Path,
) -> None:
    from tests.servers import start_milvus_lite_server

    with start_milvus_lite_server(tmp_path / "milvus") as server:
        settings = make_settings(
            milvus_uri=server.uri,
            milvus_timeout=2,
            database_url=f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}",
        )
        async with running_api(settings) as api:
            assert (await api.client.get("/readyz")).status_code == 200
            server.kill()
            down = await api.client.get("/readyz")
            assert down.status_code == 503
            assert down.json()["checks"]["milvus"]["ok"] is False
            assert down.json()["checks"]["sql"]["ok"] is True
            await asyncio.to_thread(server.start)  # same port, same data
            deadline = time.monotonic() + 60
            while (ready := await api.client.get("/readyz")).status_code != 200:
                assert time.monotonic() < deadline, ready.text
                await asyncio.sleep(0.5)
            assert ready.json()["checks"]["milvus"]["ok"] is True


async def test_upserts_and_deletes_make_one_milvus_span_each_without_vectors(
    traced: Traced, name: str
) -> None:
    await make_collection(traced.api, name, 3)
    vectors = np.random.default_rng(11).normal(size=(5, DIM)).astype(np.float32)
    records = [{"id": f"u{i}", "vector": vectors[i].tolist()} for i in range(5)]

    traced.spans.clear()
    await traced.api.ok(
        "mutation($c: String!, $r: [RecordInput!]!) { upsertRecords(collection: $c, "
        "records: $r) { upserted } }",
        {"c": name, "r": records},
    )
    upserted = traced.spans.get_finished_spans()
    traced.spans.clear()
    deleted = await traced.api.ok(
        "mutation($c: String!, $ids: [ID!]) { deleteRecords(collection: $c, ids: $ids) "
        "{ deleted } }",
        {"c": name, "ids": ["u1", "u3"]},
    )
    removed = traced.spans.get_finished_spans()
    assert deleted["deleteRecords"]["deleted"] == 2

    for spans, operation, what, size in (
        (upserted, "mutation upsertRecords", "upsert", ("milvus.rows", 5)),
        (removed, "mutation deleteRecords", "delete", ("milvus.ids", 2)),
    ):
        milvus = [s for s in spans if s.name.startswith("milvus ")]
        assert [s.name for s in milvus] == [f"milvus {what}"], [s.name for s in spans]
        [span] = milvus
        [parent] = by_name(spans)[operation]
        assert parent_of(span) == parent.context.span_id
        assert span.kind is SpanKind.CLIENT
        assert span.attributes is not None
        assert span.attributes["db.collection.name"] == f"vq_{name}"
        assert span.attributes["db.operation.name"] == what
        assert span.attributes[size[0]] == size[1]

    text_of_spans = all_attribute_text(upserted + removed)
    for value in vectors.ravel():
        for shown in (repr(float(value)), f"{value:.6f}", f"{value:.4f}"):
            assert shown not in text_of_spans, shown


async def test_the_request_log_line_names_the_key_id_and_tenant_never_the_secret(
    database_url: str, session_dir: Path, log_lines: io.StringIO
) -> None:
    exporter = InMemorySpanExporter()
    settings = make_settings(
        milvus_uri=str(session_dir / f"telemetry-auth-{uuid.uuid4().hex[:8]}.db"),
        database_url=database_url,
        auth="apikey",
        rate_limit_per_second=0,
    )
    telemetry = Telemetry.from_settings(settings, span_exporter=exporter)
    app = create_app(settings, telemetry=telemetry)
    logging.getLogger().setLevel(logging.DEBUG)  # the secret must be in no line, at any level
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                api = Api(client, app)
                admin = (await api.store.keys.create(scope="admin")).secret
                tenant_key = await api.store.keys.create(scope="write", tenant="acme")
                parts = parse_key(tenant_key.secret)
                assert parts is not None
                key_id, secret = parts
                assert key_id == tenant_key.info.id
                c = f"logs_{uuid.uuid4().hex[:8]}"
                created = await api.post(
                    "mutation($i: CreateCollectionInput!) { createCollection(input: $i) { name } }",
                    {"i": {"name": c, "dimension": DIM, "multiTenant": True}},
                    headers={"Authorization": f"Bearer {admin}"},
                )
                assert not created.get("errors"), created
                as_tenant = {"Authorization": f"Bearer {tenant_key.secret}"}
                upserted = await api.post(
                    "mutation($c: String!, $r: [RecordInput!]!) { upsertRecords(collection: "
                    "$c, records: $r) { upserted } }",
                    {"c": c, "r": [{"id": "a", "vector": [1.0] + [0.0] * (DIM - 1)}]},
                    headers=as_tenant,
                )
                assert not upserted.get("errors"), upserted
                log_lines.truncate(0)
                log_lines.seek(0)
                exporter.clear()
                body = await api.post(
                    SEARCH, {"c": c, "v": [1.0] + [0.0] * (DIM - 1), "k": 1}, headers=as_tenant
                )
                assert not body.get("errors"), body
                assert [h["id"] for h in body["data"]["search"]["hits"]] == ["a"]
                spans = exporter.get_finished_spans()
                whole_log = log_lines.getvalue()
    finally:
        telemetry.shutdown()

    [request] = by_name(spans)["POST /graphql"]
    [operation] = by_name(spans)["query search"]
    [line] = [x for x in parsed(log_lines) if x["logger"] == "vectorql.requests"]
    assert line["caller"] == key_id
    assert line["tenant"] == "acme"
    assert line["operation"] == "search"
    assert line["outcome"] == "ok"
    assert line["trace_id"] == format(request.context.trace_id, "032x")
    assert line["span_id"] == format(request.context.span_id, "016x")
    assert operation.context.trace_id == request.context.trace_id
    assert operation.attributes is not None
    assert operation.attributes["vectorql.caller"] == key_id
    assert operation.attributes["vectorql.tenant"] == "acme"
    # Neither the tenant key's secret nor the admin key appears in any line or span.
    for text_ in (whole_log, all_attribute_text(spans)):
        assert secret not in text_
        assert tenant_key.secret not in text_
        assert admin not in text_
        assert "Bearer" not in text_
