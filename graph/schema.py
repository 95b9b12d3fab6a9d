"""The root Query and Mutation: a few lines per field, each calling one use case."""

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

from graph.context import Info
from graph.enums import Consistency
from graph.errors import ErrorMapping, classify
from graph.filtering import Filter
from graph.inputs import CreateCollectionInput, IndexInput, RecordInput
from graph.scalars import ParsedVector, Vector
from graph.searching import RecordConnection, SearchParams, SearchResult
from graph.strings import ClientStrings
from graph.types import Collection, DeleteResult, Record, UpsertResult
from resolvers import collections, ingest, records, search
from resolvers.limits import DEFAULT_FIRST, DEFAULT_OFFSET, DEFAULT_TOP_K
from resolvers.search import QueryVector, SearchRequest

log = logging.getLogger("vectorql.schema")


@strawberry.type
class Query:
    @strawberry.field(description="Every collection, by name.", extensions=[ClientStrings()])
    async def collections(self, info: Info) -> list[Collection]:
        ctx = info.context
        found = await collections.list_collections(ctx.store, principal=ctx.principal)
        return [Collection.from_record(c) for c in found]

    @strawberry.field(
        description="One collection, or null when it does not exist.", extensions=[ClientStrings()]
    )
    async def collection(self, info: Info, name: str) -> Collection | None:
        ctx = info.context
        found = await collections.get_collection(ctx.store, name, principal=ctx.principal)
        return Collection.from_record(found) if found else None

    @strawberry.field(
        description="One record by id, or null. Multi-tenant collections need tenant.",
        extensions=[ClientStrings()],
    )
    async def record(
        self, info: Info, collection: str, id: strawberry.ID, tenant: str | None = None
    ) -> Record | None:
        found = await records.get_record(
            info.context.store,
            collection=collection,
            id=str(id),
            tenant=tenant,
            principal=info.context.principal,
        )
        return Record.from_record(found) if found else None

    @strawberry.field(
        description="Records of a collection, filtered, ordered by id (Relay).",
        extensions=[ClientStrings()],
    )
    async def records(
        self,
        info: Info,
        collection: str,
        where: Filter | None = None,
        first: int = DEFAULT_FIRST,
        after: str | None = None,
        tenant: str | None = None,
    ) -> RecordConnection:
        page = await records.list_records(
            info.context.store,
            collection=collection,
            where=where.to_dict() if where else None,
            tenant=tenant,
            first=first,
            after=after,
            limits=info.context.limits,
            principal=info.context.principal,
        )
        return RecordConnection.from_record(page)

    @strawberry.field(
        description=(
            "Similarity search with exactly one of vector / nearId (that record's stored "
            "vector; the record itself is excluded). Multi-tenant collections need tenant."
        ),
        extensions=[ClientStrings()],
    )
    async def search(
        self,
        info: Info,
        collection: str,
        vector: Vector | None = None,
        near_id: strawberry.ID | None = None,
        top_k: int = DEFAULT_TOP_K,
        offset: int = DEFAULT_OFFSET,
        where: Filter | None = None,
        params: SearchParams | None = None,
        consistency: Consistency | None = None,
        tenant: str | None = None,
        model: str | None = None,
    ) -> SearchResult:
        request = SearchRequest(
            collection=collection,
            vectors=[_query_vector(vector)] if vector is not None else [],
            near_id=str(near_id) if near_id is not None else None,
            top_k=top_k,
            offset=offset,
            where=where.to_dict() if where else None,
            params=params.to_record() if params else SearchParams().to_record(),
            consistency=consistency,
            tenant=tenant,
            model=model,
        )
        ctx = info.context
        [outcome] = await search.search(
            ctx.store, ctx.loaders, request, limits=ctx.limits, principal=ctx.principal
        )
        return SearchResult.from_record(outcome)

    @strawberry.field(
        description="Several query vectors in one Milvus call; one result per vector, in order.",
        extensions=[ClientStrings()],
    )
    async def search_batch(
        self,
        info: Info,
        collection: str,
        vectors: list[Vector],
        top_k: int = DEFAULT_TOP_K,
        where: Filter | None = None,
        params: SearchParams | None = None,
        consistency: Consistency | None = None,
        tenant: str | None = None,
        model: str | None = None,
    ) -> list[SearchResult]:
        request = SearchRequest(
            collection=collection,
            vectors=[_query_vector(v) for v in vectors],
            top_k=top_k,
            where=where.to_dict() if where else None,
            params=params.to_record() if params else SearchParams().to_record(),
            consistency=consistency,
            tenant=tenant,
            model=model,
        )
        ctx = info.context
        outcomes = await search.search(
            ctx.store,
            ctx.loaders,
            request,
            limits=ctx.limits,
            principal=ctx.principal,
            batch=True,
        )
        return [SearchResult.from_record(o) for o in outcomes]


@strawberry.type
class Mutation:
    @strawberry.mutation(
        description="Create a collection in SQL and Milvus (CONFLICT if it exists).",
        extensions=[ClientStrings()],
    )
    async def create_collection(self, info: Info, input: CreateCollectionInput) -> Collection:
        created = await collections.create_collection(
            info.context.store, input.to_spec(), principal=info.context.principal
        )
        return Collection.from_record(created)

    @strawberry.mutation(
        description="Drop a collection and all its records; false if absent.",
        extensions=[ClientStrings()],
    )
    async def drop_collection(self, info: Info, name: str) -> bool:
        return await collections.drop_collection(
            info.context.store, name, principal=info.context.principal
        )

    @strawberry.mutation(
        description="Rebuild the vector index with new parameters; data is kept.",
        extensions=[ClientStrings()],
    )
    async def update_index(self, info: Info, collection: str, index: IndexInput) -> Collection:
        updated = await collections.update_index(
            info.context.store, collection, index.to_spec(), principal=info.context.principal
        )
        return Collection.from_record(updated)

    @strawberry.mutation(
        description=(
            "Insert or replace records by id. atomic: true writes nothing if any record is "
            "invalid (the error lists each); atomic: false writes the valid ones and lists the "
            "rest in errors. Idempotent: the same batch twice leaves one copy."
        ),
        extensions=[ClientStrings(skip=frozenset({"records"}))],
    )
    async def upsert_records(
        self, info: Info, collection: str, records: list[RecordInput], atomic: bool = True
    ) -> UpsertResult:
        outcome = await ingest.upsert_records(
            info.context.store,
            collection=collection,
            records=[r.to_incoming() for r in records],
            atomic=atomic,
            limits=info.context.limits,
            principal=info.context.principal,
        )
        return UpsertResult.from_record(outcome)

    @strawberry.mutation(
        description=(
            "Delete records by ids or by a filter (exactly one); returns how many existed. "
            "Multi-tenant collections need tenant, which bounds the delete."
        ),
        extensions=[ClientStrings()],
    )
    async def delete_records(
        self,
        info: Info,
        collection: str,
        ids: list[strawberry.ID] | None = None,
        where: Filter | None = None,
        tenant: str | None = None,
    ) -> DeleteResult:
        deleted = await ingest.delete_records(
            info.context.store,
            collection=collection,
            ids=[str(i) for i in ids] if ids is not None else None,
            where=where.to_dict() if where is not None else None,
            tenant=tenant,
            limits=info.context.limits,
            principal=info.context.principal,
        )
        return DeleteResult(deleted=deleted)


def _query_vector(value: ParsedVector) -> QueryVector:
    return QueryVector(value.array, value.error)


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
    return VectorqlSchema(
        query=Query, mutation=Mutation, extensions=[*extensions, ErrorMapping], config=config
    )


__all__ = ["Mutation", "Query", "build_schema", "classify"]
