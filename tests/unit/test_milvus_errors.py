"""How Milvus failures are classified, and which reads are retried, without I/O: the exceptions
are built as pymilvus raises them."""

from __future__ import annotations

import pytest
from pymilvus import MilvusException

from store import vectors
from store.errors import Unavailable
from store.vectors import VectorIndex, _translate

# As Milvus 2.3 answered a query while its query node had missed a heartbeat (seen in CI).
NODE_OFFLINE = (
    "fail to query on all shard leaders, err=All attempts results:\n"
    "attempt #1:code: UnexpectedError, error: 503 leader not available: node offline[node=1]"
)


def test_a_node_between_states_is_unavailable() -> None:
    error = _translate(MilvusException(code=65535, message=NODE_OFFLINE), "query")
    assert isinstance(error, Unavailable)
    assert "node offline" in str(error)


@pytest.fixture
def index(monkeypatch: pytest.MonkeyPatch) -> VectorIndex:
    monkeypatch.setattr(vectors, "TRANSIENT_DELAY", 0.0)
    return VectorIndex(uri="http://127.0.0.1:9", threads=1)


async def test_a_read_is_retried_while_milvus_is_between_states(index: VectorIndex) -> None:
    calls = 0

    async def read() -> set[str]:
        nonlocal calls
        calls += 1
        if calls < vectors.TRANSIENT_ATTEMPTS:
            raise Unavailable(f"Milvus query failed: {NODE_OFFLINE}")
        return {"a"}

    assert await index._retrying(read) == {"a"}
    assert calls == vectors.TRANSIENT_ATTEMPTS


async def test_retries_stop_after_the_last_attempt(index: VectorIndex) -> None:
    calls = 0

    async def read() -> set[str]:
        nonlocal calls
        calls += 1
        raise Unavailable(f"Milvus query failed: {NODE_OFFLINE}")

    with pytest.raises(Unavailable, match="node offline"):
        await index._retrying(read)
    assert calls == vectors.TRANSIENT_ATTEMPTS


async def test_an_outage_is_not_retried(index: VectorIndex) -> None:
    calls = 0

    async def read() -> set[str]:
        nonlocal calls
        calls += 1
        raise Unavailable("Milvus query failed: UNAVAILABLE")  # nothing listens: fail at once

    with pytest.raises(Unavailable):
        await index._retrying(read)
    assert calls == 1
