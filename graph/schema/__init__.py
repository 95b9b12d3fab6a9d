"""The GraphQL schema: types, inputs, scalars, enums, the root fields, the per-request context and
the mapping of errors to ``extensions.code``. Knows nothing of HTTP or the command line."""

from graph.schema.build import VectorqlSchema, build_schema
from graph.schema.context import Context, Info, limits_from
from graph.schema.errors import EXPOSED_CODES, ErrorMapping, classify, map_error
from graph.schema.production import ProductionErrors, harden, without_suggestions
from graph.schema.root import Mutation, Query
from graph.schema.strings import ClientStrings
from graph.schema.typed import TypedSchemas
from graph.schema.typed.live import VERSION_HEADER, LiveSchema

__all__ = [
    "EXPOSED_CODES",
    "VERSION_HEADER",
    "ClientStrings",
    "Context",
    "ErrorMapping",
    "Info",
    "LiveSchema",
    "Mutation",
    "ProductionErrors",
    "Query",
    "TypedSchemas",
    "VectorqlSchema",
    "build_schema",
    "classify",
    "harden",
    "limits_from",
    "map_error",
    "without_suggestions",
]
