"""SQLModel tables. Private to ``store``: rows never leave it (repositories return records)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Column, DateTime, Index, LargeBinary, String, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

# JSONB on PostgreSQL (indexable, containment operators), JSON text on SQLite.
JsonType = JSON().with_variant(JSONB(), "postgresql")


def utcnow() -> datetime:
    return datetime.now(UTC)


# The tenant column of a record in a collection that is not multi-tenant: primary key columns
# cannot be NULL, and no tenant can be empty (ids and tenants are validated non-empty).
NO_TENANT = ""


def tenant_key(tenant: str | None) -> str:
    """The ``tenant`` column value for a record of ``tenant`` (None: not multi-tenant)."""
    return NO_TENANT if tenant is None else tenant


def tenant_of(column: str | None) -> str | None:
    """The record's tenant from its ``tenant`` column value (the inverse of ``tenant_key``)."""
    return column or None


class CollectionRow(SQLModel, table=True):
    __tablename__ = "vq_collection"

    name: str = Field(primary_key=True, max_length=63)
    description: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    dimension: int
    metric: str = Field(max_length=16)
    model_name: str | None = Field(default=None, max_length=256)
    model_version: str | None = Field(default=None, max_length=256)
    fields: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JsonType))
    index_type: str = Field(max_length=32)
    index_params: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JsonType))
    multi_tenant: bool = False
    shards: int = 1
    milvus_name: str = Field(max_length=255)
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
    updated_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )


class RecordRow(SQLModel, table=True):
    """A record. Keyed by (collection, tenant, id): in a multi-tenant collection each tenant
    has its own ids; in the others ``tenant`` is ``NO_TENANT``. Databases made when the key
    was (collection, id) are migrated at start-up (``store.sql.migrations``)."""

    __tablename__ = "vq_record"
    __table_args__ = (Index("ix_vq_record_state", "collection", "state"),)

    collection: str = Field(primary_key=True, max_length=63)
    tenant: str = Field(
        default=NO_TENANT,
        sa_column=Column(
            String(256), primary_key=True, default=NO_TENANT, server_default=NO_TENANT
        ),
    )
    id: str = Field(sa_column=Column(String(256), primary_key=True))
    vector: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    # ``metadata`` is reserved by SQLAlchemy's declarative base: the attribute is ``meta``.
    meta: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column("metadata", JsonType, nullable=False)
    )
    text: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    state: str = Field(max_length=16)
    # Bumped on every write: a Milvus acknowledgement marks a row indexed only for the revision
    # it wrote, so a concurrent newer write stays pending.
    revision: int = 0
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
    updated_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )


class LeaseRow(SQLModel, table=True):
    """A named lease: the process whose ``holder`` is set may run the job until ``expires_at``."""

    __tablename__ = "vq_lease"

    name: str = Field(primary_key=True, max_length=64)
    holder: str = Field(max_length=255)
    expires_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class ApiKeyRow(SQLModel, table=True):
    """An API key: only a salted scrypt hash of its secret is stored, never the secret."""

    __tablename__ = "vq_api_key"

    id: str = Field(primary_key=True, max_length=32)
    name: str | None = Field(default=None, max_length=256)
    scope: str = Field(max_length=16)
    tenant: str | None = Field(default=None, max_length=256)
    # None: every collection; a list: only these.
    collections: list[str] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    kdf: str = Field(max_length=64)  # e.g. "scrypt:16384:8:1", so parameters can change later
    salt: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    digest: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
    revoked_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    last_used_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )


class SchemaVersionRow(SQLModel, table=True):
    """The version of the collections' shape (one row): bumped in the transaction of each DDL
    that changes which collections or fields exist, polled by every API process so that its
    typed GraphQL schema follows."""

    __tablename__ = "vq_schema_version"

    name: str = Field(primary_key=True, max_length=32)
    version: int = 0


class SecretRow(SQLModel, table=True):
    """A secret every process shares, generated by the first that needs it (``store.sql.secrets``):
    the key that signs search cursors, so a cursor from one API process is good at another."""

    __tablename__ = "vq_secret"

    name: str = Field(primary_key=True, max_length=32)
    value: str = Field(max_length=128)
