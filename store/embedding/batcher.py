"""Micro-batching: texts from concurrent requests that arrive within a short window (and while
the model is busy) go to the model in one call, which costs little more than a call for one.

Each caller awaits its own rows; a failed call fails every caller in that batch with the same
error. Identical texts in one batch are embedded once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

import numpy as np

EmbedCall = Callable[[Sequence[str]], Awaitable[np.ndarray]]


class MicroBatcher:
    """``window``: seconds to wait after the first text arrives; ``max_batch``: texts per call."""

    def __init__(self, embed: EmbedCall, *, window: float, max_batch: int) -> None:
        self._embed = embed
        self._window = window
        self._max_batch = max_batch
        self._pending: list[tuple[str, asyncio.Future[np.ndarray]]] = []
        self._worker: asyncio.Task[None] | None = None

    async def embed(self, texts: Sequence[str]) -> list[np.ndarray]:
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in texts]
        self._pending.extend(zip(texts, futures, strict=True))
        if self._worker is None or self._worker.done():
            self._worker = loop.create_task(self._drain(), name="embedding batcher")
        return list(await asyncio.gather(*futures))

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)

    async def _drain(self) -> None:
        while self._pending:
            await asyncio.sleep(self._window)
            batch = self._pending[: self._max_batch]
            del self._pending[: self._max_batch]
            unique = list(dict.fromkeys(text for text, _ in batch))
            try:
                vectors = await self._embed(unique)
            except Exception as e:  # noqa: BLE001 - handed to every caller of this batch
                for _, future in batch:
                    if not future.done():
                        future.set_exception(e)
                continue
            rows = dict(zip(unique, vectors, strict=True))
            for text, future in batch:
                if not future.done():  # a caller that went away (cancelled) is skipped
                    future.set_result(rows[text])
