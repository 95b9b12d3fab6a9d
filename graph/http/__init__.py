"""The HTTP side: the GraphQL router, the auth gate, the request limits, GraphQL over HTTP's media
types and statuses, the GraphiQL page, the landing page, health checks and request telemetry."""

from graph.http.auth import AuthGate, Gatekeeper, admitted, bearer_key, check_exposure
from graph.http.cost import Caps, operation_cost
from graph.http.examples import examples_directory
from graph.http.first_session import Example, first_session
from graph.http.graphiql import KEY_HEADERS, NO_HEADERS, assets_directory, graphiql_html
from graph.http.health import health_router
from graph.http.instrumentation import OperationSpan, TelemetryMiddleware
from graph.http.landing import landing_router, serving_line
from graph.http.limits import (
    MAX_JSON_DEPTH,
    BodySizeLimit,
    ExtensionFactory,
    RequestGate,
    ValidDocuments,
    decode_json,
    limit_extensions,
)
from graph.http.router import ASSETS_PATH, VectorqlRouter
from graph.http.transport import method_not_allowed

__all__ = [
    "ASSETS_PATH",
    "KEY_HEADERS",
    "MAX_JSON_DEPTH",
    "NO_HEADERS",
    "AuthGate",
    "BodySizeLimit",
    "Caps",
    "Example",
    "ExtensionFactory",
    "Gatekeeper",
    "OperationSpan",
    "RequestGate",
    "TelemetryMiddleware",
    "ValidDocuments",
    "VectorqlRouter",
    "admitted",
    "assets_directory",
    "bearer_key",
    "check_exposure",
    "decode_json",
    "examples_directory",
    "first_session",
    "graphiql_html",
    "health_router",
    "landing_router",
    "limit_extensions",
    "method_not_allowed",
    "operation_cost",
    "serving_line",
]
