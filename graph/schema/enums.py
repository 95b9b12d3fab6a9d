"""GraphQL enums: the store's own enums, registered with Strawberry under the contract's names.

Import this module before using the enums in Strawberry types (``graph.schema.types`` and
``graph.schema.inputs`` do), so the store's enum classes carry their GraphQL definitions.
"""

from __future__ import annotations

import strawberry

from store import Consistency, FieldType, IndexType, Metric

strawberry.enum(Metric, description="Similarity metric of a collection.")
strawberry.enum(IndexType, description="Milvus vector index type.")
strawberry.enum(FieldType, description="Type of a declared metadata field.")
strawberry.enum(
    Consistency,
    description="Milvus read consistency; SESSION (default) reads this server's own writes.",
)

__all__ = ["Consistency", "FieldType", "IndexType", "Metric"]
