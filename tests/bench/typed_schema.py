"""Typed schema build time (graph.schema.typed.TypedSchemas.build) at 1, 10 and 100 collections
of five fields each, median of 5: cold (every type built) and cached (the rebuild after a DDL that
left these collections unchanged). Run: python -m tests.bench.typed_schema"""

from __future__ import annotations

import statistics
import time
from datetime import UTC, datetime

from graph.schema import build_schema
from graph.schema.typed import TypedSchemas
from store import CollectionInfo, FieldSpec, FieldType, IndexSpec, IndexType, Metric


def coll(name):
    now = datetime.now(UTC)
    fields = (
        FieldSpec("title", FieldType.STRING, required=True),
        FieldSpec("year", FieldType.INT),
        FieldSpec("tags", FieldType.STRING_LIST),
        FieldSpec("at", FieldType.DATETIME),
        FieldSpec("blob", FieldType.JSON, filterable=False),
    )
    return CollectionInfo(
        name=name,
        dimension=4,
        metric=Metric.COSINE,
        description=None,
        model=None,
        fields=fields,
        index=IndexSpec(IndexType.HNSW, {}),
        multi_tenant=False,
        shards=1,
        milvus_name=name,
        created_at=now,
        updated_at=now,
    )


generic = build_schema()
for n in (1, 10, 100):
    cols = [coll(f"c{i}") for i in range(n)]
    cold, warm = [], []
    for _ in range(5):
        typed = TypedSchemas(generic)
        t = time.perf_counter()
        typed.build(cols)
        cold.append(time.perf_counter() - t)
        t = time.perf_counter()
        typed.build(cols)
        warm.append(time.perf_counter() - t)
    print(
        f"{n:>3} collections: cold {statistics.median(cold) * 1000:.1f} ms, "
        f"cached {statistics.median(warm) * 1000:.1f} ms"
    )
