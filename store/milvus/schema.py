"""vectorql collections as Milvus schemas, index parameters and rows (``store.fields`` decides
each column's value; ``store.index`` the primary key)."""

from __future__ import annotations

from typing import Any

import numpy as np
from pymilvus import DataType, MilvusClient

from store.fields import ABSENT_COLUMN, DEFAULT_STRING_MAX, LIST_CAPACITY, to_milvus
from store.index import KEY_FIELD, milvus_key
from store.records import (
    CollectionInfo,
    Consistency,
    FieldSpec,
    FieldType,
    IndexSpec,
    Metric,
    RecordData,
)
from store.text import ID_MAX_LENGTH, TENANT_MAX_LENGTH

# Milvus bounds VARCHAR in bytes: room for the length prefix, two separators and a tenant and id
# of 4-byte UTF-8 characters.
KEY_MAX_LENGTH = 4 * (TENANT_MAX_LENGTH + ID_MAX_LENGTH) + 8
TENANT_PARTITIONS = 16

SCALAR_TYPES: dict[FieldType, Any] = {
    FieldType.STRING: DataType.VARCHAR,
    FieldType.INT: DataType.INT64,
    FieldType.FLOAT: DataType.DOUBLE,
    FieldType.BOOL: DataType.BOOL,
    FieldType.DATETIME: DataType.INT64,
    FieldType.STRING_LIST: DataType.ARRAY,
    FieldType.JSON: DataType.JSON,
}

CONSISTENCY = {
    Consistency.STRONG: "Strong",
    Consistency.SESSION: "Session",
    Consistency.BOUNDED: "Bounded",
    Consistency.EVENTUALLY: "Eventually",
}


def entity(info: CollectionInfo, record: RecordData) -> dict[str, Any]:
    """The Milvus row for a record: its key, id, vector, tenant, filterable scalars and
    ``_absent``."""
    row: dict[str, Any] = {
        "id": record.id,
        "vector": np.frombuffer(record.vector, dtype="<f4"),
    }
    if info.multi_tenant:
        row[KEY_FIELD] = milvus_key(info, record.tenant, record.id)
        row["tenant"] = record.tenant or ""
    absent: list[str] = []
    for f in info.filterable_fields:
        value = record.metadata.get(f.name)
        if value is None:
            absent.append(f.name)
        if f.type is FieldType.JSON:
            # Milvus JSON columns take objects only: wrap so scalars and lists fit. Filters on
            # JSON fields test presence only (the ``_absent`` column).
            row[f.name] = {"v": value} if value is not None else {}
        else:
            row[f.name] = to_milvus(f.type, value)
    row[ABSENT_COLUMN] = absent
    return row


def collection_schema(info: CollectionInfo) -> Any:
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    if info.multi_tenant:
        schema.add_field(KEY_FIELD, DataType.VARCHAR, is_primary=True, max_length=KEY_MAX_LENGTH)
        schema.add_field("id", DataType.VARCHAR, max_length=ID_MAX_LENGTH)
    else:
        schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=ID_MAX_LENGTH)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=info.dimension)
    if info.multi_tenant:
        schema.add_field(
            "tenant", DataType.VARCHAR, max_length=TENANT_MAX_LENGTH, is_partition_key=True
        )
    for f in info.filterable_fields:
        _add_scalar(schema, f)
    schema.add_field(
        ABSENT_COLUMN,
        DataType.ARRAY,
        element_type=DataType.VARCHAR,
        max_capacity=max(1, len(info.filterable_fields)),
        max_length=64,
    )
    return schema


def _add_scalar(schema: Any, f: FieldSpec) -> None:
    dtype = SCALAR_TYPES[f.type]
    if f.type is FieldType.STRING:
        schema.add_field(f.name, dtype, max_length=f.max_length or DEFAULT_STRING_MAX)
    elif f.type is FieldType.STRING_LIST:
        schema.add_field(
            f.name,
            dtype,
            element_type=DataType.VARCHAR,
            max_capacity=LIST_CAPACITY,
            max_length=f.max_length or DEFAULT_STRING_MAX,
        )
    else:
        schema.add_field(f.name, dtype)


def index_params(client: MilvusClient, index: IndexSpec, metric: Metric) -> Any:
    params = client.prepare_index_params()
    params.add_index(
        field_name="vector",
        index_name="vector",
        index_type=index.type.value,
        metric_type=metric.value,
        params=dict(index.params),
    )
    return params
