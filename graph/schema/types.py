"""GraphQL output types, each built from a store record with ``from_record``."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.scalars import JSON

from graph.schema.context import Info
from graph.schema.enums import FieldType, IndexType, Metric
from resolvers import collections
from store import (
    CollectionInfo,
    FieldSpec,
    ModelSpec,
    RecordState,
    ServedEmbedder,
    StoredRecord,
    UpsertOutcome,
    from_bytes,
)


@strawberry.type(description="The embedding model that made a collection's vectors.")
class EmbeddingModel:
    name: str
    version: str | None

    @strawberry.field(
        description=(
            "This server embeds for the collection: name is one of Query.embedders, so records "
            "may be sent with text and no vector, and search takes text."
        )
    )
    def embedded_by_server(self, info: Info) -> bool:
        return info.context.store.embedders.find(self.name) is not None

    @classmethod
    def from_record(cls, model: ModelSpec) -> EmbeddingModel:
        return cls(name=model.name, version=model.version)


@strawberry.type(description="An embedding model this server runs.")
class Embedder:
    name: str = strawberry.field(description="What a collection's model.name names to use it.")
    provider: str = strawberry.field(description="sentence-transformers (in process) or openai.")
    dimension: int
    max_input: int | None = strawberry.field(
        description=(
            "Longest input the model reads, in tokens; longer text is truncated "
            "(sentence-transformers) or refused by the endpoint (openai). Null: not configured."
        )
    )

    @classmethod
    def from_record(cls, e: ServedEmbedder) -> Embedder:
        return cls(name=e.name, provider=e.provider, dimension=e.dimension, max_input=e.max_input)


@strawberry.type(description="A declared metadata field.")
class Field:
    name: str
    type: FieldType
    filterable: bool = strawberry.field(description="Stored as a typed Milvus column; filterable.")
    required: bool
    max_length: int | None = strawberry.field(
        description="Longest STRING (or STRING_LIST item) in bytes."
    )

    @classmethod
    def from_record(cls, f: FieldSpec) -> Field:
        return cls(
            name=f.name,
            type=f.type,
            filterable=f.filterable,
            required=f.required,
            max_length=f.max_length,
        )


@strawberry.type(description="The vector index of a collection.")
class Index:
    type: IndexType
    params: JSON = strawberry.field(description="Index build parameters, defaults filled in.")


@strawberry.type(description="Record counts from the SQL registry.")
class CollectionStats:
    records: int = strawberry.field(description="Records stored.")
    indexed: int = strawberry.field(description="Records written to Milvus (searchable).")
    pending: int = strawberry.field(description="Records stored but not yet in Milvus.")


@strawberry.type(description="A collection: vectors of one dimension and metric, with metadata.")
class Collection:
    name: str
    description: str | None
    dimension: int
    metric: Metric
    model: EmbeddingModel | None
    fields: list[Field]
    index: Index
    multi_tenant: bool
    shards: int
    created_at: datetime
    updated_at: datetime

    @strawberry.field(description="Record counts (one SQL statement for all listed collections).")
    async def stats(self, info: Info) -> CollectionStats:
        ctx = info.context
        s = await collections.collection_stats(ctx.loaders, self.name, principal=ctx.principal)
        return CollectionStats(records=s.records, indexed=s.indexed, pending=s.pending)

    @classmethod
    def from_record(cls, c: CollectionInfo) -> Collection:
        return cls(
            name=c.name,
            description=c.description,
            dimension=c.dimension,
            metric=c.metric,
            model=EmbeddingModel.from_record(c.model) if c.model else None,
            fields=[Field.from_record(f) for f in c.fields],
            index=Index(type=c.index.type, params=JSON(dict(c.index.params))),
            multi_tenant=c.multi_tenant,
            shards=c.shards,
            created_at=c.created_at,
            updated_at=c.updated_at,
        )


@strawberry.type(description="A stored record: metadata and text from SQL, vector on request.")
class Record:
    id: strawberry.ID
    collection: str
    metadata: JSON
    text: str | None
    tenant: str | None
    indexed: bool = strawberry.field(description="Written to Milvus (searchable).")
    created_at: datetime
    updated_at: datetime
    raw_vector: strawberry.Private[bytes]

    @strawberry.field(description="The stored vector (float32), as a list of floats.")
    def vector(self) -> list[float]:
        return from_bytes(self.raw_vector).tolist()  # type: ignore[no-any-return]

    @classmethod
    def from_record(cls, r: StoredRecord) -> Record:
        return cls(
            id=strawberry.ID(r.id),
            collection=r.collection,
            metadata=JSON(r.metadata),
            text=r.text,
            tenant=r.tenant,
            indexed=r.state is RecordState.INDEXED,
            created_at=r.created_at,
            updated_at=r.updated_at,
            raw_vector=r.vector,
        )


@strawberry.type(description="A record that was not written (atomic: false).")
class RecordError:
    index: int = strawberry.field(description="Position in the input list.")
    id: strawberry.ID | None
    code: str
    message: str


@strawberry.type(description="What an upsert wrote.")
class UpsertResult:
    upserted: int
    ids: list[strawberry.ID] = strawberry.field(description="Ids written, in input order.")
    errors: list[RecordError] = strawberry.field(description="Records not written (atomic: false).")

    @classmethod
    def from_record(cls, outcome: UpsertOutcome) -> UpsertResult:
        return cls(
            upserted=outcome.upserted,
            ids=[strawberry.ID(i) for i in outcome.ids],
            errors=[
                RecordError(
                    index=e.index,
                    id=strawberry.ID(e.id) if e.id is not None else None,
                    code=e.code,
                    message=e.message,
                )
                for e in outcome.errors
            ],
        )


@strawberry.type(description="What a delete removed.")
class DeleteResult:
    deleted: int
