"""Frozen records: what the store returns and takes. No ORM rows, no GraphQL types."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


class Metric(enum.StrEnum):
    COSINE = "COSINE"
    L2 = "L2"
    IP = "IP"


class IndexType(enum.StrEnum):
    AUTOINDEX = "AUTOINDEX"
    FLAT = "FLAT"
    IVF_FLAT = "IVF_FLAT"
    IVF_SQ8 = "IVF_SQ8"
    IVF_PQ = "IVF_PQ"
    HNSW = "HNSW"


class FieldType(enum.StrEnum):
    STRING = "STRING"
    INT = "INT"
    FLOAT = "FLOAT"
    BOOL = "BOOL"
    DATETIME = "DATETIME"
    STRING_LIST = "STRING_LIST"
    JSON = "JSON"


class Consistency(enum.StrEnum):
    STRONG = "STRONG"
    SESSION = "SESSION"
    BOUNDED = "BOUNDED"
    EVENTUALLY = "EVENTUALLY"


class RecordState(enum.StrEnum):
    PENDING = "pending"
    INDEXED = "indexed"
    DELETING = "deleting"


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """A declared metadata field. Filterable fields become typed Milvus scalar columns."""

    name: str
    type: FieldType
    filterable: bool = True
    required: bool = False
    max_length: int | None = None  # STRING / STRING_LIST elements; default applied by validation

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type.value,
            "filterable": self.filterable,
            "required": self.required,
            "max_length": self.max_length,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FieldSpec:
        return cls(
            name=d["name"],
            type=FieldType(d["type"]),
            filterable=bool(d.get("filterable", True)),
            required=bool(d.get("required", False)),
            max_length=d.get("max_length"),
        )


@dataclass(frozen=True, slots=True)
class IndexSpec:
    type: IndexType = IndexType.HNSW
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """The embedding model that made a collection's vectors."""

    name: str
    version: str | None = None

    def matches(self, name: str) -> bool:
        """``name`` or ``name@version`` / ``name:version`` match this model."""
        if name == self.name:
            return True
        if self.version is None:
            return False
        return name in (f"{self.name}@{self.version}", f"{self.name}:{self.version}")

    def label(self) -> str:
        return f"{self.name}@{self.version}" if self.version else self.name


@dataclass(frozen=True, slots=True)
class CollectionSpec:
    """A request to create a collection, validated by ``store.validation``. ``dimension``
    ``None``: the model's, when ``model.name`` names an embedder (``Embedders.resolve``)."""

    name: str
    dimension: int | None
    metric: Metric = Metric.COSINE
    description: str | None = None
    model: ModelSpec | None = None
    fields: tuple[FieldSpec, ...] = ()
    index: IndexSpec = field(default_factory=IndexSpec)
    multi_tenant: bool = False
    shards: int = 1


@dataclass(frozen=True, slots=True)
class CollectionStats:
    records: int
    indexed: int
    pending: int


@dataclass(frozen=True, slots=True)
class CollectionInfo:
    """A registered collection, as the registry holds it."""

    name: str
    dimension: int
    metric: Metric
    description: str | None
    model: ModelSpec | None
    fields: tuple[FieldSpec, ...]
    index: IndexSpec
    multi_tenant: bool
    shards: int
    milvus_name: str
    created_at: datetime
    updated_at: datetime

    def field(self, name: str) -> FieldSpec | None:
        for f in self.fields:
            if f.name == name:
                return f
        return None

    @property
    def filterable_fields(self) -> tuple[FieldSpec, ...]:
        return tuple(f for f in self.fields if f.filterable)


@dataclass(frozen=True, slots=True)
class RecordData:
    """One validated record to write. ``vector`` is little-endian float32 bytes."""

    id: str
    vector: bytes
    metadata: dict[str, Any]
    text: str | None = None
    tenant: str | None = None


@dataclass(frozen=True, slots=True)
class StoredRecord:
    """A record as SQL holds it."""

    collection: str
    id: str
    metadata: dict[str, Any]
    text: str | None
    tenant: str | None
    vector: bytes
    state: RecordState
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class RecordError:
    """A record that was not written in a non-atomic batch."""

    index: int
    id: str | None
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class UpsertOutcome:
    ids: tuple[str, ...]
    errors: tuple[RecordError, ...] = ()

    @property
    def upserted(self) -> int:
        return len(self.ids)
