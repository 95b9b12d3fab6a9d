"""GraphQL enums: the store's enums, exposed under the contract's names."""

from __future__ import annotations

import strawberry

from store import records

Metric = strawberry.enum(records.Metric, description="Similarity metric of a collection.")
IndexType = strawberry.enum(records.IndexType, description="Milvus vector index type.")
FieldType = strawberry.enum(records.FieldType, description="Type of a declared metadata field.")
Consistency = strawberry.enum(
    records.Consistency,
    description="Milvus read consistency; SESSION (default) reads this server's own writes.",
)
