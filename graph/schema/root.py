"""The root Query and Mutation: a few lines per field, each calling one use case."""

from __future__ import annotations

from typing import Annotated

import strawberry

from graph.schema.context import Info
from graph.schema.enums import Consistency
from graph.schema.filtering import Filter
from graph.schema.inputs import CreateCollectionInput, IndexInput, RecordInput
from graph.schema.paging import GroupByInput
from graph.schema.scalars import ParsedVector, Vector
from graph.schema.searching import HybridInput, RecordConnection, SearchParams, SearchResult
from graph.schema.strings import ClientStrings
from graph.schema.types import Collection, DeleteResult, Embedder, Record, UpsertResult
from resolvers import collections, embedders, ingest, records, search
from resolvers.limits import DEFAULT_FIRST, DEFAULT_OFFSET, DEFAULT_TOP_K
from resolvers.search import QueryVector, SearchRequest


@strawberry.type
class Query:
    @strawberry.field(description="Every collection, by name.", extensions=[ClientStrings()])
    async def collections(self, info: Info) -> list[Collection]:
        ctx = info.context
        found = await collections.list_collections(ctx.store, principal=ctx.principal)
        return [Collection.from_record(c) for c in found]

    @strawberry.field(
        description=(
            "The embedding models this server runs: a collection whose model.name names one "
            "takes text in place of vectors (records and search)."
        ),
        extensions=[ClientStrings()],
    )
    async def embedders(self, info: Info) -> list[Embedder]:
        found = embedders.list_embedders(info.context.store, principal=info.context.principal)
        return [Embedder.from_record(e) for e in found]

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
            "vector; the record itself is excluded) / text (embedded with the collection's own "
            "model) / keyword (BM25 over record text) / hybrid (keyword and vector, fused). "
            "Multi-tenant collections need tenant."
        ),
        extensions=[ClientStrings()],
    )
    async def search(
        self,
        info: Info,
        collection: str,
        vector: Vector | None = None,
        near_id: strawberry.ID | None = None,
        text: str | None = None,
        keyword: str | None = None,
        hybrid: HybridInput | None = None,
        top_k: int = DEFAULT_TOP_K,
        after: Annotated[
            str | None,
            strawberry.argument(
                description=(
                    "pageInfo.endCursor of the page before: the next topK hits of the same search."
                )
            ),
        ] = None,
        group_by: GroupByInput | None = None,
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
            texts=[text] if text is not None else [],
            keywords=[keyword] if keyword is not None else [],
            hybrid=[hybrid.to_query()] if hybrid is not None else [],
            top_k=top_k,
            offset=offset,
            where=where.to_dict() if where else None,
            params=params.to_record() if params else SearchParams().to_record(),
            consistency=consistency,
            tenant=tenant,
            model=model,
            after=after,
            group_by=group_by.to_record() if group_by else None,
        )
        ctx = info.context
        [outcome] = await search.search(
            ctx.store, ctx.loaders, request, limits=ctx.limits, principal=ctx.principal
        )
        return SearchResult.from_record(outcome)

    @strawberry.field(
        description=(
            "Several query vectors, or texts (embedded with the collection's own model), in one "
            "Milvus call, or several keyword or hybrid queries; one result per query, in order."
        ),
        extensions=[ClientStrings()],
    )
    async def search_batch(
        self,
        info: Info,
        collection: str,
        vectors: list[Vector] | None = None,
        texts: list[str] | None = None,
        keywords: list[str] | None = None,
        hybrids: list[HybridInput] | None = None,
        top_k: int = DEFAULT_TOP_K,
        where: Filter | None = None,
        params: SearchParams | None = None,
        consistency: Consistency | None = None,
        tenant: str | None = None,
        model: str | None = None,
    ) -> list[SearchResult]:
        request = SearchRequest(
            collection=collection,
            vectors=[_query_vector(v) for v in vectors or []],
            texts=texts or [],
            keywords=keywords or [],
            hybrid=[h.to_query() for h in hybrids or []],
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
            info.context.store,
            input.to_spec(),
            principal=info.context.principal,
            check=info.context.name_check,
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
