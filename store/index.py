"""The seam between the store and its vector index: what the store asks of one (``VectorIndex``),
what it learns about it (``Capabilities``), and how records are keyed in it.

``store.milvus.MilvusIndex`` is the implementation; tests pass a failing or slow one of their own
(``Store.open(config, vector_index=...)``) instead of patching pymilvus. Every method raises
``store.errors`` types: ``Unavailable`` when the index does not answer, ``InvalidInput`` when it
refuses a request.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from store.records import CollectionInfo, Consistency, IndexSpec, IndexType, RecordData

# The HNSW ef of a filtered search on a Milvus server when the client gives none: recall@10 of
# 1.000 on real embeddings (docs/measurements.md, "store").
FILTERED_EF = 512


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What the connected index can do; decided once when connecting."""

    server: str  # "milvus-lite" or "milvus"
    version: str
    # "full": prefix, suffix and infix patterns; "prefix": only "abc%"; "lite": as "full" but
    # no pattern ending in _ or a newline (store.filters.milvus says why)
    like: str
    index_types: frozenset[IndexType] = field(default_factory=frozenset)
    # Milvus 2.3 upserts route rows to the wrong partition when the collection has a partition
    # key (milvus-io/milvus#30607): there, multi-tenant writes go as delete + insert.
    upsert_with_partition_key: bool = True
    # HNSW skips the candidates a filter drops, so a filtered search needs a wider ef for the
    # same recall (store.search); how much wider depends on the backend.
    filtered_ef: int = FILTERED_EF
    # Whether a filtered search stays exact when the filter keeps few rows. Milvus servers
    # search the few candidates by brute force; FAISS HNSW under Milvus Lite walks the graph
    # past them and loses most (store.search routes such searches to an exact search instead).
    exact_when_selective: bool = True
    # Whether a range search walks the index past its top-k. Milvus servers do; Milvus Lite
    # filters its top ``ef`` hits, so its range search finds nothing a few hundred hits deep
    # (store.paging pages by a deeper top-k there).
    range_search: bool = True

    @property
    def lite(self) -> bool:
        return self.server == "milvus-lite"


@dataclass(frozen=True, slots=True)
class VectorHit:
    id: str
    distance: float  # as the index reports it (similarity for COSINE/IP, squared L2 for L2)


# -- keys --------------------------------------------------------------------------------------
# A record is (tenant, id); in a multi-tenant collection the same id in two tenants is two
# records. SQL keys rows by (collection, tenant, id). Milvus has one primary key field, so a
# multi-tenant collection's is ``_key``, built from both by ``milvus_key`` (the record id stays in
# ``id`` for filters); a collection that is not multi-tenant keeps ``id`` as its primary key.

KEY_FIELD = "_key"  # a name no declared field can take (field names start with a letter)


def milvus_name(name: str) -> str:
    """The index's name for collection ``name``."""
    return f"vq_{name}"


def primary_key(info: CollectionInfo) -> str:
    """The name of the primary key field of ``info``'s Milvus collection."""
    return KEY_FIELD if info.multi_tenant else "id"


def milvus_key(info: CollectionInfo, tenant: str | None, id: str) -> str:
    """The Milvus primary key of record ``id`` of ``tenant``: ``id`` itself when the collection
    is not multi-tenant, else ``"<len(tenant)>:<tenant>:<id>"``. The length prefix makes it
    unambiguous whatever characters the tenant holds."""
    if not info.multi_tenant:
        return id
    tenant = tenant or ""
    return f"{len(tenant)}:{tenant}:{id}"


def split_key(info: CollectionInfo, key: str) -> tuple[str | None, str]:
    """(tenant, id) of a Milvus primary key made by ``milvus_key``; a key that is not one (a
    collection keyed by ``id`` alone, until it is rebuilt) is taken for the id."""
    if not info.multi_tenant:
        return None, key
    length, _, rest = key.partition(":")
    if not (length.isascii() and length.isdigit()) or rest[int(length) : int(length) + 1] != ":":
        return None, key
    n = int(length)
    return rest[:n], rest[n + 1 :]


class VectorIndex(Protocol):
    """One connection to a vector index with typed, async, time-bounded operations.

    Collections are named by ``milvus_name``; entities are keyed by ``milvus_key``."""

    @property
    def uri(self) -> str: ...

    @property
    def ddl_timeout(self) -> float:
        """The bound of one DDL step (create, index, load, flush), in seconds."""
        ...

    @property
    def capabilities(self) -> Capabilities:
        """``Unavailable`` until connected."""
        ...

    @property
    def known_capabilities(self) -> Capabilities | None:
        """Capabilities from the last successful connection, without asking the index."""
        ...

    async def connect(self) -> Capabilities:
        """Connect (or reconnect) and detect capabilities."""
        ...

    async def close(self) -> None: ...

    async def ping(self) -> None: ...

    # -- collections ---------------------------------------------------------------------------

    async def has_collection(self, name: str) -> bool:
        """Whether vectorql collection ``name`` (not its ``milvus_name``) exists in the index."""
        ...

    async def create_collection(self, info: CollectionInfo) -> None:
        """Create, index and load the collection for ``info`` (dropping a stale one)."""
        ...

    async def drop_collection(self, mname: str) -> None: ...

    async def rebuild_index(self, info: CollectionInfo, index: IndexSpec) -> None: ...

    async def list_collections(self) -> list[str]: ...

    async def ensure_loaded(self, mname: str) -> None: ...

    async def describe(self, mname: str) -> dict[str, Any]:
        """The index's own description of a collection, its vector index under ``"index"``."""
        ...

    async def keyed_as_expected(self, info: CollectionInfo) -> bool:
        """Whether ``info``'s collection has the primary key this version writes."""
        ...

    # -- data ----------------------------------------------------------------------------------

    async def upsert(self, info: CollectionInfo, records: Sequence[RecordData]) -> None: ...

    async def delete_ids(self, mname: str, ids: Sequence[str]) -> None:
        """Delete by primary key (``milvus_key``)."""
        ...

    async def flush(self, mname: str) -> None:
        """Seal the in-memory segment so searches take the indexed path."""
        ...

    async def query_ids(self, mname: str, expr: str, *, limit: int = ...) -> list[str]: ...

    async def all_ids(self, mname: str, *, batch: int = ...) -> set[str]: ...

    async def all_keys(self, info: CollectionInfo, *, batch: int = ...) -> set[str]:
        """Every primary key (``milvus_key`` values) in ``info``'s collection."""
        ...

    async def count(self, mname: str) -> int: ...

    async def search(
        self,
        info: CollectionInfo,
        vectors: Sequence[np.ndarray],
        *,
        limit: int,
        offset: int = ...,
        expr: str = ...,
        params: dict[str, Any] | None = ...,
        consistency: Consistency = ...,
    ) -> list[list[VectorHit]]: ...
