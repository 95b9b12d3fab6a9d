"""How Milvus failures are classified, and which reads are retried, without I/O: the exceptions
are built as pymilvus raises them."""

from __future__ import annotations

import pytest
from pymilvus import MilvusException

from store.errors import Unavailable
from store.milvus import calls
from store.milvus.calls import _translate, retry_transient

# As Milvus 2.3 answered a query while its query node had missed a heartbeat (seen in CI).
NODE_OFFLINE = (
    "fail to query on all shard leaders, err=All attempts results:\n"
    "attempt #1:code: UnexpectedError, error: 503 leader not available: node offline[node=1]"
)
BETWEEN_STATES = Unavailable(f"Milvus query failed: {NODE_OFFLINE}")
OUTAGE = Unavailable("Milvus query failed: UNAVAILABLE")  # nothing listens


class FlakyRead:
    """A read that raises ``error`` on its first ``failures`` calls, then answers."""

    def __init__(self, error: Exception, failures: int) -> None:
        self.error = error
        self.failures = failures
        self.calls = 0

    async def __call__(self) -> set[str]:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return {"a"}


@pytest.fixture(autouse=True)
def no_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(calls, "TRANSIENT_DELAY", 0.0)


def test_a_node_between_states_is_unavailable() -> None:
    error = _translate(MilvusException(code=65535, message=NODE_OFFLINE), "query")
    assert isinstance(error, Unavailable)
    assert "node offline" in str(error)


async def test_a_read_is_retried_while_milvus_is_between_states() -> None:
    read = FlakyRead(BETWEEN_STATES, failures=calls.TRANSIENT_ATTEMPTS - 1)
    assert await retry_transient(read) == {"a"}
    assert read.calls == calls.TRANSIENT_ATTEMPTS


async def test_retries_stop_after_the_last_attempt() -> None:
    read = FlakyRead(BETWEEN_STATES, failures=calls.TRANSIENT_ATTEMPTS)
    with pytest.raises(Unavailable, match="node offline"):
        await retry_transient(read)
    assert read.calls == calls.TRANSIENT_ATTEMPTS


async def test_an_outage_is_not_retried() -> None:
    read = FlakyRead(OUTAGE, failures=1)
    with pytest.raises(Unavailable):
        await retry_transient(read)
    assert read.calls == 1
