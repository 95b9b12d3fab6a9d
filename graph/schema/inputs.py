"""GraphQL inputs and their conversion to store requests."""

from __future__ import annotations

import strawberry
from strawberry.scalars import JSON

from graph.schema.enums import FieldType, IndexType, Metric
from graph.schema.scalars import ParsedVector, Vector
from store import CollectionSpec, FieldSpec, IncomingRecord, IndexSpec, InvalidInput, ModelSpec


@strawberry.input(
    description=(
        "The embedding model that made the vectors. When name is one of Query.embedders, this "
        "server embeds record text and query text with it."
    )
)
class EmbeddingModelInput:
    name: str
    version: str | None = None


@strawberry.input(description="A metadata field to declare.")
class FieldInput:
    name: str = strawberry.field(description="[A-Za-z][A-Za-z0-9_]{0,62}; not id/vector/tenant.")
    type: FieldType
    filterable: bool = strawberry.field(
        default=True, description="Store as a typed Milvus column so filters can use it."
    )
    required: bool = strawberry.field(default=False, description="Every record must set it.")
    max_length: int | None = strawberry.field(
        default=None, description="STRING / STRING_LIST: longest value in bytes (default 1024)."
    )

    def to_spec(self) -> FieldSpec:
        return FieldSpec(
            name=self.name,
            type=self.type,
            filterable=self.filterable,
            required=self.required,
            max_length=self.max_length,
        )


@strawberry.input(description="A vector index and its build parameters.")
class IndexInput:
    type: IndexType = IndexType.HNSW
    params: JSON | None = strawberry.field(
        default=None,
        description=(
            "HNSW: M (default 16), efConstruction (256). IVF_FLAT/IVF_SQ8: nlist (128). "
            "IVF_PQ: nlist, m, nbits. FLAT, AUTOINDEX: none."
        ),
    )

    def to_spec(self) -> IndexSpec:
        if self.params is not None and not isinstance(self.params, dict):
            raise InvalidInput("index.params must be a JSON object")
        return IndexSpec(type=self.type, params=dict(self.params or {}))


@strawberry.input(description="A new collection.")
class CreateCollectionInput:
    name: str = strawberry.field(description="[A-Za-z][A-Za-z0-9_]{0,62}")
    dimension: int | None = strawberry.field(
        default=None,
        description=(
            "Vector dimension, 2..32768. Omitted: the dimension of the embedder model.name "
            "names (required otherwise)."
        ),
    )
    description: str | None = None
    metric: Metric = Metric.COSINE
    model: EmbeddingModelInput | None = None
    fields: list[FieldInput] = strawberry.field(default_factory=list)
    index: IndexInput | None = None
    multi_tenant: bool = strawberry.field(
        default=False,
        description=(
            "Records carry a tenant; Milvus partitions by it; queries must name it. Each tenant "
            "has its own ids: the same id in two tenants is two records."
        ),
    )
    shards: int = strawberry.field(default=1, description="Milvus shards (1..16).")

    def to_spec(self) -> CollectionSpec:
        return CollectionSpec(
            name=self.name,
            dimension=self.dimension,
            metric=self.metric,
            description=self.description,
            model=ModelSpec(self.model.name, self.model.version) if self.model else None,
            fields=tuple(f.to_spec() for f in self.fields),
            index=self.index.to_spec() if self.index else IndexSpec(),
            multi_tenant=self.multi_tenant,
            shards=self.shards,
        )


@strawberry.input(description="A record to upsert.")
class RecordInput:
    vector: Vector | None = strawberry.field(
        default=None,
        description=(
            "List of floats or base64 float32. Absent: the text is embedded with the "
            "collection's own model."
        ),
    )
    id: strawberry.ID | None = strawberry.field(
        default=None, description="Absent: a UUID is generated. At most 256 characters."
    )
    metadata: JSON | None = strawberry.field(
        default=None,
        description="Declared fields are type-checked; undeclared keys are kept (SQL only).",
    )
    text: str | None = strawberry.field(
        default=None, description="Stored with the record; embedded when vector is absent."
    )
    tenant: str | None = strawberry.field(
        default=None, description="Required exactly when the collection is multi-tenant."
    )

    def to_incoming(self) -> IncomingRecord:
        parsed = self.vector
        if parsed is None:
            parsed = ParsedVector(None, None)  # embedded from text before the write
        elif not isinstance(parsed, ParsedVector):  # pragma: no cover - the scalar always parses
            parsed = ParsedVector(None, "vector could not be parsed")
        return IncomingRecord(
            vector=parsed.array,
            vector_error=parsed.error,
            id=str(self.id) if self.id is not None else None,
            metadata=self.metadata,
            text=self.text,
            tenant=self.tenant,
        )
