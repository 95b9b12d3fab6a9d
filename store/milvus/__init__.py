"""The Milvus adapter: the only code that imports pymilvus.

- ``adapter``: ``MilvusIndex``, the ``store.index.VectorIndex`` over ``MilvusClient`` (Milvus Lite
  files and Milvus servers alike): connection, DDL and data calls.
- ``calls``: the thread pool, time bounds, spans and error translation every call goes through.
- ``capabilities``: what a Milvus version can do.
- ``schema``: collections as Milvus schemas, index parameters and rows.
- ``lite``: whether another process holds a Milvus Lite file open.
"""

from store.milvus.adapter import MILVUS_THREADS, MILVUS_TIMEOUT, MilvusIndex
from store.milvus.capabilities import detect_capabilities
from store.milvus.lite import lite_file_in_use

__all__ = [
    "MILVUS_THREADS",
    "MILVUS_TIMEOUT",
    "MilvusIndex",
    "detect_capabilities",
    "lite_file_in_use",
]
