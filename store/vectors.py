"""The Milvus adapter: the only module that imports pymilvus.

pymilvus's ``MilvusClient`` is synchronous; every call runs on this adapter's own thread pool
with an explicit timeout, so a Milvus that is down costs a request seconds, not minutes, and never
blocks the event loop. Failures come out as ``store.errors`` types.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import grpc
import numpy as np
from opentelemetry import trace
from opentelemetry.util.types import AttributeValue
from pymilvus import DataType, MilvusClient, MilvusException

from store.errors import InvalidInput, Unavailable
from store.fields import ABSENT_COLUMN, DEFAULT_STRING_MAX, LIST_CAPACITY, to_milvus
from store.instruments import Instruments
from store.records import (
    CollectionInfo,
    Consistency,
    FieldSpec,
    FieldType,
    IndexSpec,
    IndexType,
    Metric,
    RecordData,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

ID_MAX_LENGTH = 256
TENANT_MAX_LENGTH = 256
# The primary key of a multi-tenant collection: ``milvus_key(tenant, id)``. A name no declared
# field can take (field names start with a letter). Milvus bounds VARCHAR in bytes: room for the
# length prefix, two separators and a tenant and id of 4-byte UTF-8 characters.
KEY_FIELD = "_key"
KEY_MAX_LENGTH = 4 * (TENANT_MAX_LENGTH + ID_MAX_LENGTH) + 8

_SCALAR_TYPES: dict[FieldType, Any] = {
    FieldType.STRING: DataType.VARCHAR,
    FieldType.INT: DataType.INT64,
    FieldType.FLOAT: DataType.DOUBLE,
    FieldType.BOOL: DataType.BOOL,
    FieldType.DATETIME: DataType.INT64,
    FieldType.STRING_LIST: DataType.ARRAY,
    FieldType.JSON: DataType.JSON,
}

_CONSISTENCY = {
    Consistency.STRONG: "Strong",
    Consistency.SESSION: "Session",
    Consistency.BOUNDED: "Bounded",
    Consistency.EVENTUALLY: "Eventually",
}

# gRPC / Milvus status codes that mean "the server is not answering" rather than "bad request".
_UNAVAILABLE_HINTS = re.compile(
    r"unavailable|deadline|timed? ?out|connect|closed channel|not ready|fail to connect|"
    r"can't find collection|collection not found|not loaded|not exist|released|"
    r"leader not available|node offline",
    re.IGNORECASE,
)
# A Milvus server that answered but is between states (a query node that missed a heartbeat
# under load: "503 leader not available ... node offline"); a read may be retried at once.
_TRANSIENT = re.compile(r"leader not available|node offline|not ready", re.IGNORECASE)
TRANSIENT_ATTEMPTS = 3
TRANSIENT_DELAY = 1.0  # seconds between attempts


# The HNSW ef of a filtered search on a Milvus server when the client gives none (see
# ``Capabilities.filtered_ef``).
FILTERED_EF = 512


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What the connected Milvus can do; decided once when connecting."""

    server: str  # "milvus-lite" or "milvus"
    version: str
    filter_templating: bool
    # "full": prefix, suffix and infix patterns; "prefix": only "abc%"; "lite": as "full" but
    # no pattern ending in _ or a newline (store.filters.milvus says why)
    like: str
    index_types: frozenset[IndexType] = field(default_factory=frozenset)
    # Milvus 2.3 upserts route rows to the wrong partition when the collection has a partition
    # key (milvus-io/milvus#30607): there, multi-tenant writes go as delete + insert.
    upsert_with_partition_key: bool = True
    # The HNSW ef of a filtered search when the client gives none (store.search). Measured on 63k
    # real 384-d vectors with a filter keeping about a tenth, recall@10: Milvus 2.3 0.965-0.975 at
    # 128, 0.970-0.998 at 256 (it varies between index builds), 1.000 at 512; Milvus Lite (FAISS
    # HNSW with an id selector) 0.952 at 256, 0.984 at 512, 0.996 at 1024.
    filtered_ef: int = FILTERED_EF

    @property
    def lite(self) -> bool:
        return self.server == "milvus-lite"


@dataclass(frozen=True, slots=True)
class VectorHit:
    id: str
    distance: float  # as Milvus reports it (similarity for COSINE/IP, squared L2 for L2)


def _version_tuple(version: str) -> tuple[int, ...]:
    nums = re.findall(r"\d+", version)
    return tuple(int(n) for n in nums[:3])


def detect_capabilities(version: str) -> Capabilities:
    # Milvus Lite 3.x answers "milvus_lite-3.2.2"; the PyPI ``milvus`` server 2.3 answers
    # "v2.3.5-lite" and is a real Milvus standalone, not Milvus Lite.
    if version.lower().startswith(("milvus_lite", "milvus-lite")):
        return Capabilities(
            server="milvus-lite",
            version=version,
            filter_templating=False,
            like="lite",
            filtered_ef=1024,
            index_types=frozenset(
                {
                    IndexType.FLAT,
                    IndexType.IVF_FLAT,
                    IndexType.IVF_SQ8,
                    IndexType.HNSW,
                    IndexType.AUTOINDEX,
                }
            ),
        )
    v = _version_tuple(version)
    modern = v >= (2, 5)
    return Capabilities(
        server="milvus",
        version=version,
        filter_templating=modern,
        like="full" if v >= (2, 4) else "prefix",
        index_types=frozenset(IndexType),
        upsert_with_partition_key=v >= (2, 4),
    )


def milvus_name(name: str) -> str:
    return f"vq_{name}"


# -- keys --------------------------------------------------------------------------------------
# A record is (tenant, id); in a multi-tenant collection the same id in two tenants is two
# records. SQL keys rows by (collection, tenant, id). Milvus has one primary key field, so a
# multi-tenant collection's is ``_key``, built from both by ``milvus_key`` (the record id stays in
# ``id`` for filters); a collection that is not multi-tenant keeps ``id`` as its primary key.


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


class VectorIndex:
    """One Milvus connection with typed, async, time-bounded operations."""

    def __init__(
        self,
        *,
        uri: str,
        token: str | None = None,
        timeout: float = 10.0,
        threads: int = 16,
        instruments: Instruments | None = None,
    ) -> None:
        self._instruments = instruments or Instruments()
        self._uri = uri
        self._token = token or ""
        self.timeout = timeout
        # Creating, indexing, loading and flushing take seconds on a busy server: they get a
        # longer bound than data calls (a server that is down still fails at once).
        self.ddl_timeout = max(60.0, timeout * 6)
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="milvus")
        self._client: MilvusClient | None = None
        self._capabilities: Capabilities | None = None
        self._lock = asyncio.Lock()

    # -- connection -----------------------------------------------------------------------------

    @property
    def uri(self) -> str:
        return self._uri

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
            try:
                client = await self._run(
                    partial(
                        MilvusClient,
                        uri=self._uri,
                        token=self._token,
                        timeout=self.timeout,
                        dedicated=True,
                    ),
                    what="connect",
                )
                version = await self._run(
                    partial(client.get_server_version, timeout=self.timeout), what="connect"
                )
            except Unavailable:
                raise
            self._client = client
            self._capabilities = detect_capabilities(str(version))
            log.info("connected to Milvus %s at %s", version, _redact(self._uri))
            return self._capabilities

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await asyncio.get_running_loop().run_in_executor(self._pool, client.close)
        self._pool.shutdown(wait=False, cancel_futures=True)

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
        """Run ``fn`` on the pool in one ``milvus <what>`` span; failures are counted."""
        with self._instruments.tracer.start_as_current_span(
            f"milvus {what}",
            kind=trace.SpanKind.CLIENT,
            attributes={
                "db.system.name": "milvus",
                "db.operation.name": what,
                **(attributes or {}),
            },
        ):
            try:
                return await self._call(fn, what, limit=limit or self.timeout + 2.0)
            except Exception:
                self._instruments.backend_error("milvus")
                raise

    async def _call(self, fn: Callable[[], T], what: str, *, limit: float) -> T:
        loop = asyncio.get_running_loop()
        # The worker thread runs in this task's context: its log lines carry the trace id.
        in_context = partial(contextvars.copy_context().run, fn)
        try:
            return await asyncio.wait_for(
                loop.run_in_executor(self._pool, in_context), timeout=limit
            )
        except TimeoutError:
            raise Unavailable(f"Milvus did not answer {what} within {limit:g}s") from None
        except MilvusException as e:
            raise _translate(e, what) from e
        except grpc.RpcError as e:
            # A hung server surfaces as a raw gRPC error (DEADLINE_EXCEEDED), not a MilvusException.
            raise Unavailable(f"Milvus {what} failed: {e.code().name}") from e
        except (ConnectionError, OSError) as e:
            raise Unavailable(f"Milvus {what} failed: {e}") from e

    async def call(self, what: str, fn: Callable[[MilvusClient], T]) -> T:
        """Run ``fn(client)`` on the pool; for callers that need a raw client operation."""
        client = await self._connected()
        return await self._run(partial(fn, client), what)

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
        schema = _schema(info)
        index = _index_params(client, info.index, info.metric)
        mname = info.milvus_name

        def create() -> None:
            if client.has_collection(mname, timeout=self.ddl_timeout):
                client.drop_collection(mname, timeout=self.ddl_timeout)
            kwargs: dict[str, Any] = {}
            if info.multi_tenant:
                kwargs["num_partitions"] = 16
            client.create_collection(
                mname,
                schema=schema,
                index_params=index,
                num_shards=info.shards,
                consistency_level="Session",
                timeout=self.ddl_timeout,
                **kwargs,
            )
            client.load_collection(mname, timeout=self.ddl_timeout)

        await self._run(create, "create_collection", limit=self.ddl_timeout * 3)

    async def drop_collection(self, mname: str) -> None:
        client = await self._connected()

        def drop() -> None:
            if client.has_collection(mname, timeout=self.ddl_timeout):
                client.drop_collection(mname, timeout=self.ddl_timeout)

        await self._run(drop, "drop_collection", limit=self.ddl_timeout * 2)

    async def rebuild_index(self, info: CollectionInfo, index: IndexSpec) -> None:
        """Replace the vector index: release, drop the old index, build the new one, load."""
        client = await self._connected()
        mname = info.milvus_name
        params = _index_params(client, index, info.metric)

        def rebuild() -> None:
            client.flush(mname, timeout=self.ddl_timeout)
            client.release_collection(mname, timeout=self.ddl_timeout)
            client.drop_index(mname, "vector", timeout=self.ddl_timeout)
            client.create_index(mname, params, timeout=self.ddl_timeout)
            client.load_collection(mname, timeout=self.ddl_timeout)

        await self._run(rebuild, "update_index", limit=self.ddl_timeout * 5)

    async def list_collections(self) -> list[str]:
        client = await self._connected()
        names = await self._run(partial(client.list_collections, timeout=self.timeout), "list")
        return [str(n) for n in names]

    async def ensure_loaded(self, mname: str) -> None:
        client = await self._connected()
        await self._run(
            partial(client.load_collection, mname, timeout=self.ddl_timeout),
            "load",
            limit=self.ddl_timeout + 2,
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
            partial(client.flush, mname, timeout=self.ddl_timeout),
            "flush",
            limit=self.ddl_timeout + 2,
        )

    async def query_ids(self, mname: str, expr: str, *, limit: int = 16_384) -> list[str]:
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

    async def all_ids(self, mname: str, *, batch: int = 4096) -> set[str]:
        """Every id in a collection (for the reconciler), through pymilvus's query iterator.

        Not ``id > last`` pages over ``query(limit=...)``: a limited query returns its rows in no
        particular order, so such pages skip ids once a collection holds more than one page.
        """
        client = await self._connected()

        def scan() -> set[str]:
            iterator = client.query_iterator(
                mname,
                batch_size=batch,
                filter='id != ""',
                output_fields=["id"],
                consistency_level="Strong",
                timeout=self.timeout,
            )
            out: set[str] = set()
            try:
                while page := iterator.next():
                    out.update(str(r["id"]) for r in page)
            finally:
                iterator.close()
            return out

        return await retry_transient(lambda: self._run(scan, "query", limit=self.ddl_timeout))

    async def all_keys(self, info: CollectionInfo, *, batch: int = 4096) -> set[str]:
        """Every primary key in ``info``'s collection (``milvus_key`` values), as ``all_ids``."""
        client = await self._connected()
        pk = primary_key(info)

        def scan() -> set[str]:
            iterator = client.query_iterator(
                info.milvus_name,
                batch_size=batch,
                filter=f'{pk} != ""',
                output_fields=[pk],
                consistency_level="Strong",
                timeout=self.timeout,
            )
            out: set[str] = set()
            try:
                while page := iterator.next():
                    out.update(str(r[pk]) for r in page)
            finally:
                iterator.close()
            return out

        return await retry_transient(lambda: self._run(scan, "query", limit=self.ddl_timeout))

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
                # the vector included (4x the client's CPU per search at topK 100).
                output_fields=["id"],
                search_params=search_params,
                consistency_level=_CONSISTENCY[consistency],
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


def _schema(info: CollectionInfo) -> Any:
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
    dtype = _SCALAR_TYPES[f.type]
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


def _index_params(client: MilvusClient, index: IndexSpec, metric: Metric) -> Any:
    params = client.prepare_index_params()
    params.add_index(
        field_name="vector",
        index_name="vector",
        index_type=index.type.value,
        metric_type=metric.value,
        params=dict(index.params),
    )
    return params


async def retry_transient(read: Callable[[], Awaitable[T]]) -> T:
    """``read()``, again while Milvus answers that it is between states (for reads only)."""
    for attempt in range(1, TRANSIENT_ATTEMPTS + 1):
        try:
            return await read()
        except Unavailable as e:
            if attempt == TRANSIENT_ATTEMPTS or not _TRANSIENT.search(str(e)):
                raise
            log.warning("Milvus is between states, retrying in %gs: %s", TRANSIENT_DELAY, e)
            await asyncio.sleep(TRANSIENT_DELAY)
    raise AssertionError("unreachable")


def _translate(e: MilvusException, what: str) -> Exception:
    message = str(getattr(e, "message", None) or e)
    if _UNAVAILABLE_HINTS.search(message) or getattr(e, "code", None) in (1, 2, 4, 14):
        return Unavailable(f"Milvus {what} failed: {message}")
    if "dimension" in message.lower() or "invalid" in message.lower():
        return InvalidInput(f"Milvus rejected {what}: {message}")
    unexpected: Exception = e
    return unexpected


def _redact(uri: str) -> str:
    return re.sub(r"//[^@/]*@", "//***@", uri)


def default_threads() -> int:
    return max(8, (os.cpu_count() or 2) * 4)
