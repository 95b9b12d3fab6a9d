"""The root Query and Mutation: a few lines per field, each calling one use case."""

from __future__ import annotations

import strawberry
from graphql.error import GraphQLError
from strawberry.types import ExecutionContext

from graph.context import Info
from graph.errors import ErrorMapping, classify
from graph.inputs import CreateCollectionInput, IndexInput, RecordInput
from graph.types import Collection, DeleteResult, Record, UpsertResult
from resolvers import collections, ingest, records


@strawberry.type
class Query:
    @strawberry.field(description="Every collection, by name.")
    async def collections(self, info: Info) -> list[Collection]:
        return [
            Collection.from_record(c)
            for c in await collections.list_collections(info.context.store)
        ]

    @strawberry.field(description="One collection, or null when it does not exist.")
    async def collection(self, info: Info, name: str) -> Collection | None:
        found = await collections.get_collection(info.context.store, name)
        return Collection.from_record(found) if found else None

    @strawberry.field(
        description="One record by id, or null. Multi-tenant collections need tenant."
    )
    async def record(
        self, info: Info, collection: str, id: strawberry.ID, tenant: str | None = None
    ) -> Record | None:
        found = await records.get_record(
            info.context.store, collection=collection, id=str(id), tenant=tenant
        )
        return Record.from_record(found) if found else None


@strawberry.type
class Mutation:
    @strawberry.mutation(
        description="Create a collection in SQL and Milvus (CONFLICT if it exists)."
    )
    async def create_collection(self, info: Info, input: CreateCollectionInput) -> Collection:
        created = await collections.create_collection(info.context.store, input.to_spec())
        return Collection.from_record(created)

    @strawberry.mutation(description="Drop a collection and all its records; false if absent.")
    async def drop_collection(self, info: Info, name: str) -> bool:
        return await collections.drop_collection(info.context.store, name)

    @strawberry.mutation(description="Rebuild the vector index with new parameters; data is kept.")
    async def update_index(self, info: Info, collection: str, index: IndexInput) -> Collection:
        updated = await collections.update_index(info.context.store, collection, index.to_spec())
        return Collection.from_record(updated)

    @strawberry.mutation(
        description=(
            "Insert or replace records by id. atomic: true writes nothing if any record is "
            "invalid (the error lists each); atomic: false writes the valid ones and lists the "
            "rest in errors. Idempotent: the same batch twice leaves one copy."
        )
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
        )
        return UpsertResult.from_record(outcome)

    @strawberry.mutation(description="Delete records by ids; returns how many existed.")
    async def delete_records(
        self,
        info: Info,
        collection: str,
        ids: list[strawberry.ID] | None = None,
        tenant: str | None = None,
    ) -> DeleteResult:
        deleted = await ingest.delete_records(
            info.context.store,
            collection=collection,
            ids=[str(i) for i in ids] if ids is not None else None,
            tenant=tenant,
            limits=info.context.limits,
        )
        return DeleteResult(deleted=deleted)


class VectorqlSchema(strawberry.Schema):
    """Logs only unexpected errors; expected ones are the client's business."""

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        return None  # ErrorMapping logs INTERNAL errors with their id and traceback


def build_schema() -> strawberry.Schema:
    return VectorqlSchema(query=Query, mutation=Mutation, extensions=[ErrorMapping])


__all__ = ["Mutation", "Query", "build_schema", "classify"]
