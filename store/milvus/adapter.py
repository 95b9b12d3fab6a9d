"""The Milvus adapter: ``MilvusIndex``, the ``store.index.VectorIndex`` over pymilvus.

Connection and capabilities, collection DDL and data calls; every call goes through
``store.milvus.calls`` (thread pool, time bound, span, error translation).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from opentelemetry.util.types import AttributeValue
from pymilvus import MilvusClient

from store.errors import Unavailable
from store.index import KEY_FIELD, Capabilities, VectorHit, milvus_name, primary_key, split_key
from store.instruments import Instruments
from store.milvus.calls import Calls, redact, retry_transient
from store.milvus.capabilities import detect_capabilities
from store.milvus.schema import (
    CONSISTENCY,
    TENANT_PARTITIONS,
    collection_schema,
    entity,
    index_params,
)
from store.records import CollectionInfo, Consistency, IndexSpec, RecordData

log = logging.getLogger(__name__)
T = TypeVar("T")

MILVUS_TIMEOUT = 10.0  # seconds per data call
MILVUS_THREADS = 16  # concurrent pymilvus calls per process
# Creating, indexing, loading and flushing take seconds on a busy server: they get a longer bound
# than data calls (a server that is down still fails at once).
MIN_DDL_TIMEOUT = 60.0
QUERY_LIMIT = 16_384
SCAN_BATCH = 4096


class MilvusIndex:
    """One Milvus connection with typed, async, time-bounded operations."""

    def __init__(
        self,
        *,
        uri: str,
        token: str | None = None,
        timeout: float = MILVUS_TIMEOUT,
        threads: int = MILVUS_THREADS,
        instruments: Instruments | None = None,
        client: Callable[..., MilvusClient] = MilvusClient,
    ) -> None:
        """``client``: makes the pymilvus client (tests pass a recording one)."""
        self._make_client = client
        self._uri = uri
        self._token = token or ""
        self.timeout = timeout
        self._ddl_timeout = max(MIN_DDL_TIMEOUT, timeout * 6)
        self._calls = Calls(
            threads=threads, timeout=timeout, instruments=instruments or Instruments()
        )
        self._client: MilvusClient | None = None
        self._capabilities: Capabilities | None = None
        self._lock = asyncio.Lock()

    # -- connection -----------------------------------------------------------------------------

    @property
    def uri(self) -> str:
        return self._uri

    @property
    def ddl_timeout(self) -> float:
        return self._ddl_timeout

    @property
    def capabilities(self) -> Capabilities:
        if self._capabilities is None:
            raise Unavailable("Milvus is not connected")
        return self._capabilities

    @property
    def known_capabilities(self) -> Capabilities | None:
        """Capabilities from the last successful connection, without asking Milvus."""
        return self._capabilities

    async def connect(self) -> Capabilities:
        """Connect (or reconnect) and detect capabilities."""
        async with self._lock:
            if self._client is not None and self._capabilities is not None:
                return self._capabilities
            if self._uri.endswith(".db"):
                Path(self._uri).parent.mkdir(parents=True, exist_ok=True)
            connect = partial(self._make_client, uri=self._uri, token=self._token, dedicated=True)
            client = await self._run(partial(connect, timeout=self.timeout), what="connect")
            version = await self._run(
                partial(client.get_server_version, timeout=self.timeout), what="connect"
            )
            self._client = client
            self._capabilities = detect_capabilities(str(version))
            log.info("connected to Milvus %s at %s", version, redact(self._uri))
            return self._capabilities

    async def close(self) -> None:
        client, self._client = self._client, None
        await self._calls.close(client.close if client is not None else None)

    async def ping(self) -> None:
        client = await self._connected()
        await self._run(partial(client.list_collections, timeout=min(self.timeout, 3.0)), "ping")

    async def _connected(self) -> MilvusClient:
        if self._client is None:
            await self.connect()
        assert self._client is not None
        return self._client

    async def _run(
        self,
        fn: Callable[[], T],
        what: str,
        attributes: Mapping[str, AttributeValue] | None = None,
        *,
        limit: float | None = None,
    ) -> T:
        """Every pymilvus call goes through here (``store.milvus.calls``)."""
        return await self._calls.run(fn, what, attributes, limit=limit)

    # -- collections ------------------------------------------------------------------------------

    async def has_collection(self, name: str) -> bool:
        client = await self._connected()
        return bool(
            await self._run(
                partial(client.has_collection, milvus_name(name), timeout=self.timeout),
                "has_collection",
            )
        )

    async def create_collection(self, info: CollectionInfo) -> None:
        """Create, index and load the Milvus collection for ``info`` (dropping a stale one)."""
        client = await self._connected()
        schema = collection_schema(info)
        index = index_params(client, info.index, info.metric)
        mname = info.milvus_name

        def create() -> None:
            if client.has_collection(mname, timeout=self._ddl_timeout):
                client.drop_collection(mname, timeout=self._ddl_timeout)
            kwargs: dict[str, Any] = {}
            if info.multi_tenant:
                kwargs["num_partitions"] = TENANT_PARTITIONS
            client.create_collection(
                mname,
                schema=schema,
                index_params=index,
                num_shards=info.shards,
                consistency_level="Session",
                timeout=self._ddl_timeout,
                **kwargs,
            )
            client.load_collection(mname, timeout=self._ddl_timeout)

        await self._run(create, "create_collection", limit=self._ddl_timeout * 3)

    async def drop_collection(self, mname: str) -> None:
        client = await self._connected()

        def drop() -> None:
            if client.has_collection(mname, timeout=self._ddl_timeout):
                client.drop_collection(mname, timeout=self._ddl_timeout)

        await self._run(drop, "drop_collection", limit=self._ddl_timeout * 2)

    async def rebuild_index(self, info: CollectionInfo, index: IndexSpec) -> None:
        """Replace the vector index: release, drop the old index, build the new one, load."""
        client = await self._connected()
        mname = info.milvus_name
        params = index_params(client, index, info.metric)

        def rebuild() -> None:
            client.flush(mname, timeout=self._ddl_timeout)
            client.release_collection(mname, timeout=self._ddl_timeout)
            client.drop_index(mname, "vector", timeout=self._ddl_timeout)
            client.create_index(mname, params, timeout=self._ddl_timeout)
            client.load_collection(mname, timeout=self._ddl_timeout)

        await self._run(rebuild, "update_index", limit=self._ddl_timeout * 5)

    async def list_collections(self) -> list[str]:
        client = await self._connected()
        names = await self._run(partial(client.list_collections, timeout=self.timeout), "list")
        return [str(n) for n in names]

    async def ensure_loaded(self, mname: str) -> None:
        client = await self._connected()
        await self._run(
            partial(client.load_collection, mname, timeout=self._ddl_timeout),
            "load",
            limit=self._ddl_timeout + 2,
        )

    async def describe(self, mname: str) -> dict[str, Any]:
        """Milvus's own description of a collection and its vector index (for tests and admin)."""
        client = await self._connected()

        def describe() -> dict[str, Any]:
            desc = dict(client.describe_collection(mname, timeout=self.timeout))
            desc["index"] = client.describe_index(mname, "vector", timeout=self.timeout)
            return desc

        return await self._run(describe, "describe")

    # -- data -------------------------------------------------------------------------------------

    async def upsert(self, info: CollectionInfo, records: Sequence[RecordData]) -> None:
        if not records:
            return
        client = await self._connected()
        rows = [entity(info, r) for r in records]
        caps = self.capabilities
        if info.multi_tenant and not caps.upsert_with_partition_key:
            keys = [row[KEY_FIELD] for row in rows]

            def replace() -> None:
                client.delete(info.milvus_name, ids=keys, timeout=self.timeout)
                client.insert(info.milvus_name, rows, timeout=self.timeout)

            await self._run(
                replace,
                "upsert",
                {"db.collection.name": info.milvus_name, "milvus.rows": len(rows)},
            )
            return
        await self._run(
            partial(client.upsert, info.milvus_name, rows, timeout=self.timeout),
            "upsert",
            {"db.collection.name": info.milvus_name, "milvus.rows": len(rows)},
        )

    async def delete_ids(self, mname: str, ids: Sequence[str]) -> None:
        """Delete by primary key (``milvus_key``)."""
        if not ids:
            return
        client = await self._connected()
        await self._run(
            partial(client.delete, mname, ids=list(ids), timeout=self.timeout),
            "delete",
            {"db.collection.name": mname, "milvus.ids": len(ids)},
        )

    async def flush(self, mname: str) -> None:
        client = await self._connected()
        await self._run(
            partial(client.flush, mname, timeout=self._ddl_timeout),
            "flush",
            limit=self._ddl_timeout + 2,
        )

    async def query_ids(self, mname: str, expr: str, *, limit: int = QUERY_LIMIT) -> list[str]:
        client = await self._connected()

        def query() -> list[str]:
            rows = client.query(
                mname,
                filter=expr,
                output_fields=["id"],
                limit=limit,
                consistency_level="Strong",
                timeout=self.timeout,
            )
            return [str(r["id"]) for r in rows]

        return await self._run(query, "query")

    async def all_ids(self, mname: str, *, batch: int = SCAN_BATCH) -> set[str]:
        """Every id in a collection (for the reconciler)."""
        return await self._scan(mname, "id", batch=batch)

    async def all_keys(self, info: CollectionInfo, *, batch: int = SCAN_BATCH) -> set[str]:
        """Every primary key in ``info``'s collection (``milvus_key`` values)."""
        return await self._scan(info.milvus_name, primary_key(info), batch=batch)

    async def _scan(self, mname: str, field: str, *, batch: int) -> set[str]:
        """Every value of ``field``, through pymilvus's query iterator.

        Not ``id > last`` pages over ``query(limit=...)``: a limited query returns its rows in no
        particular order, so such pages skip ids once a collection holds more than one page.
        """
        client = await self._connected()

        def scan() -> set[str]:
            iterator = client.query_iterator(
                mname,
                batch_size=batch,
                filter=f'{field} != ""',
                output_fields=[field],
                consistency_level="Strong",
                timeout=self.timeout,
            )
            out: set[str] = set()
            try:
                while page := iterator.next():
                    out.update(str(r[field]) for r in page)
            finally:
                iterator.close()
            return out

        return await retry_transient(lambda: self._run(scan, "query", limit=self._ddl_timeout))

    async def keyed_as_expected(self, info: CollectionInfo) -> bool:
        """Whether ``info``'s Milvus collection has the primary key this version writes: a
        multi-tenant collection made before tenants owned their ids is keyed by ``id`` alone
        and must be rebuilt from SQL (``Reconciler``)."""
        client = await self._connected()
        desc = await self._run(
            partial(client.describe_collection, info.milvus_name, timeout=self.timeout),
            "describe",
        )
        keys = [f["name"] for f in desc.get("fields", ()) if f.get("is_primary")]
        return keys == [primary_key(info)]

    async def count(self, mname: str) -> int:
        client = await self._connected()

        def count() -> int:
            rows = client.query(
                mname,
                filter="",
                output_fields=["count(*)"],
                consistency_level="Strong",
                timeout=self.timeout,
            )
            return int(rows[0]["count(*)"])

        return await retry_transient(lambda: self._run(count, "count"))

    async def search(
        self,
        info: CollectionInfo,
        vectors: Sequence[np.ndarray],
        *,
        limit: int,
        offset: int = 0,
        expr: str = "",
        params: dict[str, Any] | None = None,
        consistency: Consistency = Consistency.SESSION,
    ) -> list[list[VectorHit]]:
        client = await self._connected()
        search_params: dict[str, Any] = {"metric_type": info.metric.value, "params": params or {}}
        if offset:
            search_params["offset"] = offset
        data = [v.tolist() for v in vectors]

        def search() -> list[list[VectorHit]]:
            result = client.search(
                info.milvus_name,
                data=data,
                filter=expr,
                limit=limit,
                # Only the primary key: Milvus Lite answers an empty list with every field,
                # the vector included (docs/measurements.md, "store").
                output_fields=["id"],
                search_params=search_params,
                consistency_level=CONSISTENCY[consistency],
                timeout=self.timeout,
            )
            return [
                [
                    VectorHit(split_key(info, str(k))[1], float(d))
                    for k, d in zip(hits.ids, hits.distances, strict=True)
                ]
                for hits in result
            ]

        return await self._run(
            search,
            "search",
            {
                "db.collection.name": info.milvus_name,
                "milvus.top_k": limit,
                "milvus.offset": offset,
                "milvus.nq": len(data),
                "milvus.index_type": info.index.type.value,
                "milvus.metric": info.metric.value,
                "milvus.consistency": consistency.value,
                "milvus.filtered": bool(expr),
            },
        )
