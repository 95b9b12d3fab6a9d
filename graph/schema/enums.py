"""GraphQL enums: the store's own enums, registered with Strawberry under the contract's names.

Import this module before using the enums in Strawberry types (``graph.schema.types`` and
``graph.schema.inputs`` do), so the store's enum classes carry their GraphQL definitions.
"""

from __future__ import annotations

import strawberry

from store import Consistency, FieldType, Fusion, IndexType, Metric

strawberry.enum(Metric, description="Similarity metric of a collection.")
strawberry.enum(IndexType, description="Milvus vector index type.")
strawberry.enum(FieldType, description="Type of a declared metadata field.")
strawberry.enum(
    Consistency,
    description="Milvus read consistency; SESSION (default) reads this server's own writes.",
)
strawberry.enum(
    Fusion,
    description=(
        "How a hybrid search fuses its sides. RRF: reciprocal rank fusion, alpha / (60 + vector "
        "rank) + (1 - alpha) / (60 + keyword rank). RELATIVE_SCORE: each side's scores "
        "min-max normalised over its candidates, then alpha * vector + (1 - alpha) * keyword."
    ),
)

__all__ = ["Consistency", "FieldType", "Fusion", "IndexType", "Metric"]
