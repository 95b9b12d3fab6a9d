"""The Milvus adapter: the only code that imports pymilvus.

- ``adapter``: ``MilvusIndex``, the ``store.index.VectorIndex`` over ``MilvusClient`` (Milvus Lite
  files and Milvus servers alike): connection, DDL and data calls.
- ``calls``: the thread pool, time bounds, spans and error translation every call goes through.
- ``capabilities``: what a Milvus version can do.
- ``schema``: collections as Milvus schemas, index parameters and rows.
- ``lite``: whether another process holds a Milvus Lite file open.
- ``process``: a Milvus-compatible server as a child process (ports, readiness, stop).
- ``standalone``: Milvus 2.3 standalone from the PyPI package ``milvus``.
- ``local``: the default engine (``local``): the managed standalone shared by vectorql's
  processes on one data directory, or Milvus Lite where it cannot run.
"""

from store.milvus.adapter import MILVUS_THREADS, MILVUS_TIMEOUT, MilvusIndex
from store.milvus.capabilities import detect_capabilities
from store.milvus.lite import lite_file_in_use
from store.milvus.local import (
    LOCAL,
    LocalEngine,
    LocalEngineError,
    ManagedMilvus,
    local_data_dir,
    local_engine,
)
from store.milvus.process import (
    MilvusProcess,
    ServerStartError,
    free_port,
    free_ports,
    port_is_free,
    quiet_pymilvus,
    rss_bytes_of_group,
    wait_until_collections_queryable,
    wait_until_ready,
)
from store.milvus.standalone import MilvusStandalone, StandaloneUnavailable, milvus_binary_dir

__all__ = [
    "LOCAL",
    "MILVUS_THREADS",
    "MILVUS_TIMEOUT",
    "LocalEngine",
    "LocalEngineError",
    "ManagedMilvus",
    "MilvusIndex",
    "MilvusProcess",
    "MilvusStandalone",
    "ServerStartError",
    "StandaloneUnavailable",
    "detect_capabilities",
    "free_port",
    "free_ports",
    "lite_file_in_use",
    "local_data_dir",
    "local_engine",
    "milvus_binary_dir",
    "port_is_free",
    "quiet_pymilvus",
    "rss_bytes_of_group",
    "wait_until_collections_queryable",
    "wait_until_ready",
]
