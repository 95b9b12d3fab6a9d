"""What vectorql decides from the Milvus version string it gets when connecting."""

from __future__ import annotations

import pytest

from store.milvus import detect_capabilities
from store.records import IndexType


def test_milvus_lite_like_and_index_types() -> None:
    caps = detect_capabilities("milvus_lite-3.2.2")
    assert detect_capabilities("milvus-lite 3.2.2").lite
    assert caps.lite
    assert caps.like == "lite"
    assert IndexType.HNSW in caps.index_types
    # Lite 3.2 accepts an IVF_PQ index and then searches unindexed (design.md section 9).
    assert IndexType.IVF_PQ not in caps.index_types


@pytest.mark.parametrize(
    ("version", "like", "partition_key_upsert"),
    [
        ("v2.3.5", "prefix", False),
        ("v2.3.5-lite", "prefix", False),  # the PyPI ``milvus`` package's server
        ("2.3.21-gpu", "prefix", False),
        ("v2.4.15", "full", True),
        ("v2.5.16", "full", True),
        ("v2.6.0-beta", "full", True),
    ],
)
def test_milvus_server_versions(version: str, like: str, partition_key_upsert: bool) -> None:
    caps = detect_capabilities(version)
    assert not caps.lite
    assert caps.like == like
    assert caps.upsert_with_partition_key is partition_key_upsert
    assert caps.index_types == frozenset(IndexType)
