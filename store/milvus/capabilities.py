"""What vectorql decides from the version string Milvus answers when connecting."""

from __future__ import annotations

import re

from store.index import Capabilities
from store.records import IndexType

# Milvus Lite 3.2 accepts IVF_PQ, DISKANN and SCANN and then searches unindexed (design.md
# section 9): only the types it really builds are offered.
LITE_INDEX_TYPES = frozenset(
    {IndexType.FLAT, IndexType.IVF_FLAT, IndexType.IVF_SQ8, IndexType.HNSW, IndexType.AUTOINDEX}
)
# FAISS HNSW with an id selector needs a wider filtered search than a Milvus server for the same
# recall (docs/measurements.md, "store").
LITE_FILTERED_EF = 1024


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
            like="lite",
            filtered_ef=LITE_FILTERED_EF,
            index_types=LITE_INDEX_TYPES,
            exact_when_selective=False,
            range_search=False,
        )
    v = _version_tuple(version)
    return Capabilities(
        server="milvus",
        version=version,
        like="full" if v >= (2, 4) else "prefix",
        index_types=frozenset(IndexType),
        upsert_with_partition_key=v >= (2, 4),
    )
