"""The schema: the root fields with the error mapping, and a safety net for exceptions that escape
an extension's hook."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, cast

import strawberry
from graphql import ExecutionResult as GraphQLExecutionResult
from graphql import validate
from graphql.error import GraphQLError
from strawberry.exceptions import MissingQueryError
from strawberry.extensions import SchemaExtension
from strawberry.extensions.runner import SchemaExtensionsRunner
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types import ExecutionContext
from strawberry.types.execution import PreExecutionError

from graph.schema.errors import ErrorMapping
from graph.schema.executor import executor_for
from graph.schema.root import Mutation, Query

log = logging.getLogger("vectorql.schema")


class VectorqlSchema(strawberry.Schema):
    """Logs only unexpected errors; expected ones are the client's business.

    Every error of an operation goes through the extensions' ``on_operation`` (``ErrorMapping``
    gives it its code, the telemetry logs its outcome): an exception that escapes a parse,
    validation or execution hook (an extension's bug, or one that assumes a valid document) is
    made the operation's result here instead of escaping past them, as Strawberry would let it.
    When the document is invalid, its validation errors are the answer; otherwise the exception
    is ``INTERNAL``. Empty selection sets (``{ collections { } }``) are a syntax error, as in the
    GraphQL specification (graphql-core still accepts them by default).
    """

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        return None  # ErrorMapping logs INTERNAL errors with their id and traceback

    async def _prepare_operation_async(
        self, context: ExecutionContext, extensions_runner: SchemaExtensionsRunner
    ) -> PreExecutionError | None:
        cast(dict[str, Any], context.parse_options)["allow_empty_selection_sets"] = False
        try:
            return await super()._prepare_operation_async(context, extensions_runner)
        except (MissingQueryError, CannotGetOperationTypeError, InvalidOperationTypeError):
            raise  # the HTTP layer answers these (400)
        except Exception as e:  # noqa: BLE001  (made the operation's error, mapped and logged)
            errors = self._document_errors(context) or [GraphQLError(str(e), original_error=e)]
            context.pre_execution_errors = errors
            return PreExecutionError(data=None, errors=errors)

    async def _execute_operation(
        self, execution_context: ExecutionContext, *args: Any, **kwargs: Any
    ) -> Any:
        try:
            return await super()._execute_operation(execution_context, *args, **kwargs)
        except Exception as e:  # noqa: BLE001  (made the operation's error, mapped and logged)
            result = GraphQLExecutionResult(
                data=None, errors=[GraphQLError(str(e), original_error=e)]
            )
            execution_context.result = result
            return result

    def _document_errors(self, context: ExecutionContext) -> list[GraphQLError]:
        """The validation errors of the operation's document (none when it is valid)."""
        if context.graphql_document is None:
            return []
        try:
            return validate(self._schema, context.graphql_document, context.validation_rules)
        except Exception:  # then the first exception is the answer
            log.debug("validation failed on a document", exc_info=True)
            return []


def build_schema(
    *, extensions: Sequence[Callable[[], SchemaExtension]] = (), max_batched_operations: int = 0
) -> strawberry.Schema:
    """``extensions`` run outside the error mapping (they see the mapped errors).
    ``max_batched_operations``: operations one request may batch as a JSON array (0 = off)."""
    config = StrawberryConfig(
        batching_config={"max_operations": max_batched_operations}
        if max_batched_operations > 0
        else None
    )
    schema = VectorqlSchema(
        query=Query, mutation=Mutation, extensions=[*extensions, ErrorMapping], config=config
    )
    # Known only once the schema is built: which fields the executor may read directly.
    schema.execution_context_class = executor_for(schema._schema)
    return schema
