"""What vectorql decides from the Milvus version string it gets when connecting."""

from __future__ import annotations

import pytest

from store.records import IndexType
from store.vectors import detect_capabilities


def test_milvus_lite_like_and_index_types() -> None:
    caps = detect_capabilities("milvus_lite-3.2.2")
    assert detect_capabilities("milvus-lite 3.2.2").lite
    assert caps.lite
    assert caps.like == "lite"
    assert not caps.filter_templating
    assert IndexType.HNSW in caps.index_types
    # Lite 3.2 accepts an IVF_PQ index and then searches unindexed (design.md section 9).
    assert IndexType.IVF_PQ not in caps.index_types


@pytest.mark.parametrize(
    ("version", "like", "templating", "partition_key_upsert"),
    [
        ("v2.3.5", "prefix", False, False),
        ("v2.3.5-lite", "prefix", False, False),  # the PyPI ``milvus`` package's server
        ("2.3.21-gpu", "prefix", False, False),
        ("v2.4.15", "full", False, True),
        ("v2.5.16", "full", True, True),
        ("v2.6.0-beta", "full", True, True),
    ],
)
def test_milvus_server_versions(
    version: str, like: str, templating: bool, partition_key_upsert: bool
) -> None:
    caps = detect_capabilities(version)
    assert not caps.lite
    assert caps.like == like
    assert caps.filter_templating is templating
    assert caps.upsert_with_partition_key is partition_key_upsert
    assert caps.index_types == frozenset(IndexType)
