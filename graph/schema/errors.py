"""The one mapping from store errors to GraphQL errors with ``extensions.code``.

- ``VectorqlError`` subclasses carry their code (``BAD_USER_INPUT``, ``NOT_FOUND``, ...).
- Syntax errors: ``GRAPHQL_PARSE_FAILED``; invalid argument values (a wrong scalar, a missing
  required argument): ``BAD_USER_INPUT``; other validation errors: ``GRAPHQL_VALIDATION_FAILED``.
- Anything else is a bug: logged with its traceback, the trace id and an error id, recorded on
  the operation's span, and returned as ``INTERNAL`` with a masked message, the error id and the
  trace id (``extensions.errorId``, ``extensions.traceId``) to find it in the logs and traces.

Every error of an operation passes here, even one raised by an extension's hook (the schema makes
it the operation's result: ``graph.schema.VectorqlSchema``). Requests that never become an
operation (wrong method or content type, a body that is not a JSON object) answer
``BAD_USER_INPUT`` in a JSON GraphQL error body (``graph.http.transport``).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from typing import Any

from graphql import ExecutionResult as GraphQLExecutionResult
from graphql.error import GraphQLError, GraphQLSyntaxError
from opentelemetry import trace
from strawberry.extensions import SchemaExtension
from strawberry.types.execution import ExecutionResult

from graph.logs import span_ids
from store import VectorqlError

log = logging.getLogger("vectorql.errors")

EXPOSED_CODES = frozenset(
    {
        "BAD_USER_INPUT",
        "NOT_FOUND",
        "CONFLICT",
        "UNAUTHENTICATED",
        "FORBIDDEN",
        "UNAVAILABLE",
        "LIMIT_EXCEEDED",
        "GRAPHQL_PARSE_FAILED",
        "GRAPHQL_VALIDATION_FAILED",
    }
)

_TOKEN_LIMIT_HINT = "tokens. Parsing aborted."
_BAD_VALUE_HINTS = (
    "got invalid value",
    "Expected value of type",
    "of required type",
    "was not provided",
    "Expected type",
    "cannot represent",
    "has invalid value",
    "does not exist in '",
)


def classify(error: GraphQLError) -> tuple[str, dict[str, Any]]:
    """The code and extra extensions for an error."""
    original = error.original_error
    if isinstance(original, VectorqlError):
        return original.code, dict(original.extensions)
    if original is None:
        if isinstance(error, GraphQLSyntaxError):
            # The parser's token limit (MaxTokensLimiter) stops it with a syntax error.
            if _TOKEN_LIMIT_HINT in error.message:
                return "LIMIT_EXCEEDED", {}
            return "GRAPHQL_PARSE_FAILED", {}
        if any(hint in error.message for hint in _BAD_VALUE_HINTS):
            return "BAD_USER_INPUT", {}
        existing = (error.extensions or {}).get("code")
        if isinstance(existing, str):
            return existing, {}
        return "GRAPHQL_VALIDATION_FAILED", {}
    if isinstance(original, GraphQLError):
        return classify(original)
    return "INTERNAL", {}


def map_error(error: GraphQLError) -> GraphQLError:
    code, extra = classify(error)
    if code == "INTERNAL":
        error_id = uuid.uuid4().hex[:16]
        span = trace.get_current_span()
        trace_ids = span_ids(span)
        log.error(
            "internal error %s in %s: %r",
            error_id,
            ".".join(str(p) for p in error.path or []),
            error.original_error,
            exc_info=error.original_error,
            extra={"error_id": error_id, **trace_ids},
        )
        if error.original_error is not None:
            span.record_exception(error.original_error, attributes={"vectorql.error_id": error_id})
        return GraphQLError(
            f"Internal server error (error id {error_id}).",
            nodes=error.nodes,
            source=error.source,
            positions=error.positions,
            path=error.path,
            extensions={"code": "INTERNAL", "errorId": error_id, **_client_trace_id(trace_ids)},
        )
    extensions = {**(error.extensions or {}), **extra, "code": code}
    return GraphQLError(
        error.message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        extensions=extensions,
    )


def _client_trace_id(trace_ids: dict[str, str]) -> dict[str, str]:
    return {"traceId": trace_ids["trace_id"]} if trace_ids else {}


class ErrorMapping(SchemaExtension):
    """Rewrites every error of an operation once, after it has run."""

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        if isinstance(result, GraphQLExecutionResult | ExecutionResult) and result.errors:
            result.errors = [map_error(e) for e in result.errors]
