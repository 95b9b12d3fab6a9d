"""Production mode's error hygiene: no schema hints for strangers, no undocumented codes.

Introspection and GraphiQL are switched off by the app factory; this extension rewrites the errors
of every operation (after ``graph.schema.errors.ErrorMapping`` has given each its code):

- graphql-core's suggestions (``Did you mean 'collections'?``) are cut from messages, so the schema
  cannot be recovered field by field with introspection off;
- an error whose code is not one of the documented ``EXPOSED_CODES`` becomes ``INTERNAL`` with a
  generic message.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from graphql import ExecutionResult as GraphQLExecutionResult
from graphql.error import GraphQLError
from strawberry.extensions import SchemaExtension
from strawberry.types.execution import ExecutionResult

from graph.schema.errors import EXPOSED_CODES

SUGGESTION = re.compile(r"\s*Did you mean [^?]*\?")


def without_suggestions(message: str) -> str:
    return SUGGESTION.sub("", message)


def harden(error: GraphQLError) -> GraphQLError:
    extensions = dict(error.extensions or {})
    message = without_suggestions(error.message)
    if extensions.get("code") not in EXPOSED_CODES and extensions.get("code") != "INTERNAL":
        message, extensions = "Internal server error.", {"code": "INTERNAL"}
    if message == error.message and extensions == (error.extensions or {}):
        return error
    return GraphQLError(
        message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        extensions=extensions,
    )


class ProductionErrors(SchemaExtension):
    """Listed before ``ErrorMapping`` so that it runs after it, on the mapped errors."""

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        if isinstance(result, GraphQLExecutionResult | ExecutionResult) and result.errors:
            result.errors = [harden(e) for e in result.errors]
