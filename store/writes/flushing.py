"""When to flush Milvus after writes: unflushed rows take Milvus's slow search path (measured in
docs/measurements.md, "store"), so a collection is flushed once enough rows are unflushed, and,
after a burst that stayed below that, once writes have paused."""

from __future__ import annotations

import asyncio
import logging

from store.errors import VectorqlError
from store.index import VectorIndex
from store.records import CollectionInfo

log = logging.getLogger(__name__)


class Flusher:
    """Flush timers for one Milvus connection (a heuristic of this process)."""

    def __init__(
        self,
        *,
        vectors: VectorIndex,
        threshold: int,
        idle: float,
        idle_rows: int,
    ) -> None:
        """``threshold``: unflushed rows of a collection that make a write flush it (0: never
        flush). ``idle`` (seconds, 0 = off) and ``idle_rows``: a collection with at least that
        many unflushed rows is flushed once no write has come for that long, so the rows a burst
        of writes left below the threshold do not keep its searches on Milvus's slow path; a
        trickle of small writes never arms it."""
        self._vectors = vectors
        self._threshold = threshold
        self._idle = idle
        self._idle_rows = max(1, idle_rows)
        # Rows written since the last flush, per Milvus collection.
        self._unflushed: dict[str, int] = {}
        self._idle_timers: dict[str, asyncio.TimerHandle] = {}
        self._idle_flushes: set[asyncio.Task[None]] = set()

    async def wrote(self, info: CollectionInfo, n: int) -> None:
        """Count ``n`` rows written to ``info``: flush past the threshold, else (re)arm the idle
        flush."""
        if self._threshold <= 0:
            return
        total = self._unflushed.get(info.milvus_name, 0) + n
        if total >= self._threshold:
            await self.flush(info)
        else:
            self._unflushed[info.milvus_name] = total
            if self._idle > 0 and total >= self._idle_rows:
                self._arm_idle_flush(info)

    async def flush(self, info: CollectionInfo) -> None:
        """Seal Milvus's in-memory segment so searches take the indexed path."""
        self._disarm_idle_flush(info.milvus_name)
        await self._vectors.flush(info.milvus_name)
        self._unflushed[info.milvus_name] = 0

    def unflushed(self, info: CollectionInfo) -> int:
        """Rows this process wrote to ``info`` since its last flush."""
        return self._unflushed.get(info.milvus_name, 0)

    def _arm_idle_flush(self, info: CollectionInfo) -> None:
        """(Re)start the idle countdown of ``info``: every write pushes its flush back."""
        self._disarm_idle_flush(info.milvus_name)
        loop = asyncio.get_running_loop()
        self._idle_timers[info.milvus_name] = loop.call_later(
            self._idle, self._start_idle_flush, info
        )

    def _disarm_idle_flush(self, mname: str) -> None:
        timer = self._idle_timers.pop(mname, None)
        if timer is not None:
            timer.cancel()

    def _start_idle_flush(self, info: CollectionInfo) -> None:
        self._idle_timers.pop(info.milvus_name, None)
        task = asyncio.get_running_loop().create_task(
            self._idle_flush(info), name=f"idle flush of {info.milvus_name}"
        )
        self._idle_flushes.add(task)
        task.add_done_callback(self._idle_flushes.discard)

    async def _idle_flush(self, info: CollectionInfo) -> None:
        if self._unflushed.get(info.milvus_name, 0) < self._idle_rows:
            return  # flushed since the countdown started
        try:
            await self.flush(info)
        except VectorqlError as e:
            # Milvus down, or the collection dropped meanwhile: the rows stay searchable (slower),
            # and the next write past the threshold flushes.
            log.warning("idle flush of %s failed: %s", info.milvus_name, e)

    async def close(self) -> None:
        """Cancel pending idle flushes (the app is stopping)."""
        for timer in self._idle_timers.values():
            timer.cancel()
        self._idle_timers.clear()
        tasks = list(self._idle_flushes)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
