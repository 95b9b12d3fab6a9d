"""How every pymilvus call runs: on the adapter's own thread pool, under an explicit time bound,
in one ``milvus <what>`` span, with failures translated to ``store.errors`` types.

pymilvus's ``MilvusClient`` is synchronous; running it on a pool with a timeout means a Milvus that
is down costs a request seconds, not minutes, and never blocks the event loop.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import TypeVar

import grpc
from opentelemetry import trace
from opentelemetry.util.types import AttributeValue
from pymilvus import MilvusException

from store.errors import InvalidInput, Unavailable
from store.instruments import Instruments

log = logging.getLogger(__name__)
T = TypeVar("T")

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


class Calls:
    """Runs blocking pymilvus calls on a pool of ``threads`` threads."""

    def __init__(self, *, threads: int, timeout: float, instruments: Instruments) -> None:
        self.timeout = timeout
        self._instruments = instruments
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="milvus")

    async def run(
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

    async def close(self, last: Callable[[], object] | None = None) -> None:
        """Run ``last`` (closing the client) on the pool, then shut the pool down."""
        if last is not None:
            await asyncio.get_running_loop().run_in_executor(self._pool, last)
        self._pool.shutdown(wait=False, cancel_futures=True)


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


def redact(uri: str) -> str:
    """``uri`` without the credentials it may hold (for logs)."""
    return re.sub(r"//[^@/]*@", "//***@", uri)
