"""Per-request instrumentation.

- ``TelemetryMiddleware`` (ASGI): the request span (continuing a W3C ``traceparent``), the request
  metrics, and one log line per request with its trace id. Health probes and ``/metrics`` scrapes
  are neither traced nor counted, and log at DEBUG.
- ``OperationSpan`` (Strawberry schema extension): one span per GraphQL operation, named after its
  type and root field (``query search``), and none per resolved field, so a search costs the same
  spans whatever its ``topK``.

The middleware puts a ``RequestRecord`` into the ASGI scope; the extension fills in what only
GraphQL knows (operation, outcome, caller, tenant), which the middleware reports when the response
has gone. Span attributes and log fields hold names, sizes and codes: never a query document,
variables, vectors or credentials.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    StringValueNode,
    VariableNode,
)
from graphql.utilities import get_operation_ast
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from strawberry.extensions import SchemaExtension
from strawberry.types import ExecutionContext

from graph.logs import span_ids
from graph.schema import classify
from graph.telemetry import Telemetry, untraced
from store import shown

log = logging.getLogger("vectorql.requests")

SCOPE_KEY = "vectorql.request"
QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
# Outcomes that are the server's fault (the span is an error); the others are the client's.
SERVER_FAULTS = frozenset({"internal", "unavailable"})
MAX_TEXT = 128  # client-chosen strings (operation name, tenant) in logs and spans
INTROSPECTION_FIELDS = frozenset({"__typename", "__schema", "__type"})


@dataclass
class RequestRecord:
    """What one request did, filled in as it runs."""

    operation: str | None = None  # root field, "multiple" or "invalid": a metric label
    operation_type: str | None = None
    operation_name: str | None = None  # the client's own name: logs and spans only
    outcome: str | None = None  # "ok" or a lowercase error code
    caller: str | None = None  # an API key's id, never the key
    tenant: str | None = None
    error_id: str | None = None


def request_record(context: Any) -> RequestRecord | None:
    """This request's record, when the middleware runs (it does in the app)."""
    scope = getattr(getattr(context, "request", None), "scope", None)
    record = scope.get(SCOPE_KEY) if isinstance(scope, dict) else None
    return record if isinstance(record, RequestRecord) else None


class TelemetryMiddleware:
    def __init__(self, app: ASGIApp, *, telemetry: Telemetry, graphql_path: str) -> None:
        self.app = app
        self._telemetry = telemetry
        self._graphql_path = graphql_path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope.get("path") in QUIET_PATHS:
            await self._quiet(scope, receive, send)
        else:
            await self._traced(scope, receive, send)

    async def _quiet(self, scope: Scope, receive: Receive, send: Send) -> None:
        status = _Status(send)
        start = time.perf_counter()
        try:
            with untraced():
                await self.app(scope, receive, status.send)
        finally:
            log.debug(
                "%s %s %s %.1fms",
                scope.get("method"),
                scope.get("path"),
                status.code,
                (time.perf_counter() - start) * 1000,
            )

    async def _traced(self, scope: Scope, receive: Receive, send: Send) -> None:
        record = RequestRecord()
        scope[SCOPE_KEY] = record
        method = str(scope.get("method", "GET"))
        path = str(scope.get("path", ""))
        status = _Status(send)
        start = time.perf_counter()
        with self._telemetry.tracer.start_as_current_span(
            method,
            context=propagate.extract(_headers(scope)),
            kind=SpanKind.SERVER,
            attributes={
                "http.request.method": method,
                "url.path": path,  # never the query string
                "url.scheme": str(scope.get("scheme", "http")),
            },
        ) as span:
            try:
                await self.app(scope, receive, status.send)
            finally:
                seconds = time.perf_counter() - start
                route = _route(scope, path)
                if route is not None:
                    span.update_name(f"{method} {route}")
                    span.set_attribute("http.route", route)
                span.set_attribute("http.response.status_code", status.code)
                if status.code >= 500:
                    span.set_status(Status(StatusCode.ERROR))
                is_graphql = record.operation is not None or (
                    path == self._graphql_path and method == "POST"
                )
                if is_graphql:
                    self._telemetry.request_finished(
                        operation=record.operation or "unknown",
                        outcome=record.outcome or _outcome_of_status(status.code),
                        seconds=seconds,
                    )
                _log_request(
                    span,
                    method=method,
                    path=path,
                    status=status.code,
                    record=record,
                    seconds=seconds,
                    graphql=is_graphql,
                )


class _Status:
    """Wraps ``send`` to see the response status."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self.code = 500  # until a response starts: an exception that escapes is a 500

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.code = int(message["status"])
        await self._send(message)


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])}


def _route(scope: Scope, path: str) -> str | None:
    """The matched route's template (bounded, unlike the path), if routing found one."""
    route = scope.get("route")
    template = getattr(route, "path", None)
    if isinstance(template, str):
        return template or path
    return None


def _outcome_of_status(status: int) -> str:
    """For requests that never reached GraphQL execution (refused at the HTTP level)."""
    if status < 400:
        return "ok"
    return {
        401: "unauthenticated",
        403: "forbidden",
        408: "limit_exceeded",
        413: "limit_exceeded",
        429: "limit_exceeded",
        503: "unavailable",
    }.get(status, "bad_user_input" if status < 500 else "internal")


def _log_request(
    span: trace.Span,
    *,
    method: str,
    path: str,
    status: int,
    record: RequestRecord,
    seconds: float,
    graphql: bool,
) -> None:
    fields: dict[str, Any] = {
        "http_method": method,
        "path": path,
        "status": status,
        "duration_ms": round(seconds * 1000, 2),
        **span_ids(span),
    }
    if graphql:
        fields.update(
            (k, v)
            for k, v in (
                ("operation", record.operation or "unknown"),
                ("operation_type", record.operation_type),
                ("operation_name", record.operation_name),
                ("outcome", record.outcome or _outcome_of_status(status)),
                ("caller", record.caller),
                ("tenant", record.tenant),
                ("error_id", record.error_id),
            )
            if v is not None
        )
    label = f" {fields['operation']} {fields['outcome']}" if graphql else ""
    log.info("%s %s %s%s %.1fms", method, path, status, label, seconds * 1000, extra=fields)


# -- GraphQL --------------------------------------------------------------------------------------


class OperationSpan(SchemaExtension):
    """One span per GraphQL operation (parse, validation and execution included)."""

    def __init__(
        self, *, tracer: trace.Tracer, execution_context: ExecutionContext | None = None
    ) -> None:
        super().__init__(execution_context=execution_context)
        self._tracer = tracer

    def on_operation(self) -> Iterator[None]:
        with self._tracer.start_as_current_span("graphql", kind=SpanKind.INTERNAL) as span:
            yield
            self._finish(span)

    def _finish(self, span: trace.Span) -> None:
        ec = self.execution_context
        operation, op_type, document_tenant = _describe(ec)
        outcome, error_id = _outcome(ec)
        caller, caller_tenant = _caller(ec.context)
        tenant = caller_tenant or document_tenant
        name = _clip(ec.operation_name)
        span.update_name(f"{op_type or 'graphql'} {operation}")
        attributes = {
            "graphql.operation.type": op_type,
            "graphql.operation.name": name,
            "vectorql.operation": operation,
            "vectorql.outcome": outcome,
            "vectorql.caller": caller,
            "vectorql.tenant": tenant,
            "vectorql.error_id": error_id,
        }
        span.set_attributes({k: v for k, v in attributes.items() if v is not None})
        if outcome in SERVER_FAULTS:
            span.set_status(Status(StatusCode.ERROR, outcome))
        record = request_record(ec.context)
        if record is not None:
            record.operation = operation
            record.operation_type = op_type
            record.operation_name = name
            record.outcome = outcome
            record.caller = caller
            record.tenant = tenant
            record.error_id = error_id


def _describe(ec: ExecutionContext) -> tuple[str, str | None, str | None]:
    """(operation label, operation type, tenant named in the root fields' arguments).

    The label is the root field (``search``), ``multiple`` for several, or ``invalid`` when the
    document did not parse or names a root field the schema lacks: only the schema's field names,
    so metric labels stay bounded whatever clients send."""
    document = ec.graphql_document
    if document is None:
        return "invalid", None, None
    operation = get_operation_ast(document, ec.operation_name)
    if operation is None:
        return "invalid", None, None
    op_type = operation.operation.value
    fields = list(_root_fields(document, operation))
    tenant = _tenant_argument(fields, ec.variables or {})
    root = ec.schema._schema.get_root_type(operation.operation)
    known = {*(root.fields if root else ()), *INTROSPECTION_FIELDS}
    names = {f.name.value for f in fields}
    if not names <= known:
        return "invalid", op_type, tenant
    names.discard("__typename")
    if len(names) > 1:
        return "multiple", op_type, tenant
    return (names.pop() if names else "__typename"), op_type, tenant


def _root_fields(document: DocumentNode, operation: OperationDefinitionNode) -> Iterator[FieldNode]:
    """The operation's root fields, fragments inlined; each fragment is walked once (its root
    fields are the same wherever it is spread), so the walk is linear in the document."""
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    walked: set[str] = set()

    def walk(selections: SelectionSetNode) -> Iterator[FieldNode]:
        for s in selections.selections:
            if isinstance(s, FieldNode):
                yield s
            elif isinstance(s, InlineFragmentNode):
                yield from walk(s.selection_set)
            elif isinstance(s, FragmentSpreadNode) and s.name.value not in walked:
                walked.add(s.name.value)
                fragment = fragments.get(s.name.value)
                if fragment is not None:
                    yield from walk(fragment.selection_set)

    return walk(operation.selection_set)


def _tenant_argument(fields: list[FieldNode], variables: Mapping[str, Any]) -> str | None:
    for f in fields:
        for arg in f.arguments or ():
            if arg.name.value != "tenant":
                continue
            value: Any = None
            if isinstance(arg.value, StringValueNode):
                value = arg.value.value
            elif isinstance(arg.value, VariableNode):
                value = variables.get(arg.value.name.value)
            if isinstance(value, str):
                return _clip(value)
    return None


def _outcome(ec: ExecutionContext) -> tuple[str, str | None]:
    """("ok" or the first error's code in lowercase, the INTERNAL error's id)."""
    errors = getattr(ec.result, "errors", None) or ec.pre_execution_errors or []
    if not errors:
        return "ok", None
    first = errors[0]
    extensions = first.extensions or {}
    code = extensions.get("code")
    if not isinstance(code, str):
        code = classify(first)[0]
    ids = (str((e.extensions or {}).get("errorId") or "") for e in errors)
    return code.lower(), next((i for i in ids if i), None)


def _caller(context: Any) -> tuple[str | None, str | None]:
    """(the caller's key id, the tenant its key is bound to), when auth tells who calls."""
    principal = getattr(context, "caller", None)
    if principal is None:
        try:
            principal = getattr(context, "principal", None)
        except Exception:  # noqa: BLE001  (a refused request has no principal; that is fine)
            principal = None
    if principal is None:
        return None, None
    key_id = getattr(principal, "key_id", None)
    tenant = getattr(principal, "tenant", None)
    return (
        str(key_id) if isinstance(key_id, str | int) else None,
        _clip(tenant) if isinstance(tenant, str) else None,
    )


def _clip(value: str | None) -> str | None:
    """A client-chosen string, bounded and safe to encode (lone surrogates escaped)."""
    return shown(value[:MAX_TEXT]) if value is not None else None
