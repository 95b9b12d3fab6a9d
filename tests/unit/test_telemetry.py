"""Telemetry without I/O: log formats and their trace ids, bounded operation labels, the outcome of
refused requests, providers that stay out of OpenTelemetry's globals, and the layering rule."""

from __future__ import annotations

import ast
import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from graphql import parse
from opentelemetry import metrics, trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from graph.http.instrumentation import _describe, _outcome_of_status
from graph.logs import log_handler
from graph.schema import build_schema
from graph.telemetry import Telemetry, _otlp_http_endpoint
from tests.conftest import make_settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def tracer() -> trace.Tracer:
    provider = TracerProvider()  # local: the process-global provider is never set
    provider.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
    return provider.get_tracer("test")


@pytest.fixture
def logger() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    log = logging.getLogger("vectorql.test_telemetry")
    handler = log_handler(fmt="auto", stream=stream)  # a StringIO is no terminal: JSON
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    try:
        yield log, stream
    finally:
        log.removeHandler(handler)


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_carry_the_current_trace_and_span_ids(
    tracer: trace.Tracer, logger: tuple[logging.Logger, io.StringIO]
) -> None:
    log, stream = logger
    log.info("outside")
    with tracer.start_as_current_span("request") as span:
        log.info("inside %s", "a span", extra={"operation": "search", "duration_ms": 1.5})
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("failed")
    outside, inside, failed = lines(stream)
    ctx = span.get_span_context()

    assert "trace_id" not in outside
    assert inside["event"] == "inside a span"
    assert inside["trace_id"] == format(ctx.trace_id, "032x")
    assert inside["span_id"] == format(ctx.span_id, "016x")
    assert inside["operation"] == "search"
    assert inside["duration_ms"] == 1.5
    assert inside["level"] == "info"
    assert inside["logger"] == "vectorql.test_telemetry"
    assert inside["timestamp"].endswith("Z")
    assert failed["level"] == "error"
    assert "ValueError: boom" in failed["exception"]


def test_console_format_is_readable(tracer: trace.Tracer) -> None:
    stream = io.StringIO()
    handler = log_handler(fmt="console", stream=stream)
    record = logging.LogRecord("vectorql.x", logging.INFO, __file__, 1, "hello %s", ("you",), None)
    with tracer.start_as_current_span("request"):
        handler.emit(record)
    line = stream.getvalue()
    assert "hello you" in line
    assert "trace_id=" in line
    assert not line.lstrip().startswith("{")


SCHEMA = build_schema()


def describe(document: str, operation_name: str | None = None, **variables: Any) -> Any:
    try:
        parsed = parse(document)
    except Exception:  # noqa: BLE001  (an unparsable document has no AST)
        parsed = None
    ec = SimpleNamespace(
        graphql_document=parsed,
        operation_name=operation_name,
        variables=variables,
        schema=SCHEMA,
    )
    return _describe(ec)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("document", "operation_name", "expected"),
    [
        ('{ search(collection: "c", vector: "AAAA") { tookMs } }', None, ("search", "query")),
        (
            '{ a: search(collection: "c") { tookMs } b: search(collection: "d") { tookMs } }',
            None,
            ("search", "query"),
        ),
        ('{ collections { name } collection(name: "c") { name } }', None, ("multiple", "query")),
        ("{ __typename }", None, ("__typename", "query")),
        ("{ ...F } fragment F on Query { collections { name } }", None, ("collections", "query")),
        ('mutation { dropCollection(name: "c") }', None, ("dropCollection", "mutation")),
        (
            'query A { collections { name } } mutation B { dropCollection(name: "c") }',
            "B",
            ("dropCollection", "mutation"),
        ),
        ("{ noSuchField_chosen_by_the_client }", None, ("invalid", "query")),
        ("{ collections { name } ", None, ("invalid", None)),
        (
            "query A { collections { name } } query B { collections { name } }",
            None,
            ("invalid", None),
        ),
    ],
)
def test_operation_labels_are_root_fields_of_the_schema(
    document: str, operation_name: str | None, expected: tuple[str, str | None]
) -> None:
    label, op_type, _ = describe(document, operation_name)
    assert (label, op_type) == expected


def test_a_tenant_with_a_lone_surrogate_is_logged_escaped() -> None:
    tenant = describe(
        'query($t: String) { records(collection: "c", tenant: $t) { totalCount } }', t="a\ud800b"
    )[2]
    assert tenant == "a\\ud800b"
    assert tenant is not None
    tenant.encode()  # a log line or span attribute can carry it


def test_the_tenant_comes_from_the_root_field_arguments() -> None:
    assert describe('{ search(collection: "c", tenant: "acme") { tookMs } }')[2] == "acme"
    query = 'query($t: String) { records(collection: "c", tenant: $t) { totalCount } }'
    assert describe(query, t="beta")[2] == "beta"
    assert describe('{ search(collection: "c") { tookMs } }')[2] is None


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, "ok"),
        (400, "bad_user_input"),
        (401, "unauthenticated"),
        (403, "forbidden"),
        (408, "limit_exceeded"),
        (413, "limit_exceeded"),
        (429, "limit_exceeded"),
        (500, "internal"),
        (503, "unavailable"),
    ],
)
def test_requests_refused_before_graphql_get_an_outcome_from_their_status(
    status: int, outcome: str
) -> None:
    assert _outcome_of_status(status) == outcome


def test_telemetry_stays_out_of_the_global_providers() -> None:
    global_tracer_provider = trace.get_tracer_provider()
    global_meter_provider = metrics.get_meter_provider()
    built = [
        Telemetry.from_settings(make_settings(otel_exporter="console", metrics=True))
        for _ in range(2)  # two apps in one process: each has its own Prometheus registry
    ]
    try:
        assert trace.get_tracer_provider() is global_tracer_provider
        assert metrics.get_meter_provider() is global_meter_provider
        assert built[0].registry is not built[1].registry
        assert built[0].tracer_provider is not built[1].tracer_provider
    finally:
        for t in built:
            t.shutdown()


def test_nothing_is_recorded_when_nothing_exports() -> None:
    telemetry = Telemetry.from_settings(make_settings(otel_exporter="none", metrics=False))
    try:
        assert telemetry.registry is None
        with telemetry.tracer.start_as_current_span("request") as span:
            assert not span.is_recording()
            assert span.get_span_context().is_valid  # log lines still get a trace id
    finally:
        telemetry.shutdown()


def test_otlp_http_endpoints_get_the_signal_path() -> None:
    settings = make_settings(otel_exporter="otlp-http", otel_endpoint="http://collector:4318/")
    assert _otlp_http_endpoint(settings, "/v1/traces") == "http://collector:4318/v1/traces"
    full = make_settings(otel_exporter="otlp-http", otel_endpoint="http://c:4318/v1/traces")
    assert _otlp_http_endpoint(full, "/v1/traces") == "http://c:4318/v1/traces"
    assert _otlp_http_endpoint(make_settings(otel_exporter="otlp-http"), "/v1/traces") is None


SET_UP_ONLY_IN_GRAPH = ("opentelemetry.sdk", "opentelemetry.exporter", "prometheus_client")


@pytest.mark.parametrize("package", ["store", "resolvers"])
def test_store_and_resolvers_use_only_the_opentelemetry_api(package: str) -> None:
    # import-linter cannot forbid subpackages of an external package, so this checks it.
    offending = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offending += [f"{path.name}: {n}" for n in names if n.startswith(SET_UP_ONLY_IN_GRAPH)]
    assert offending == []
