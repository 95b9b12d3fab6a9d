"""An embedder as the store serves it: query texts go through the LRU and the micro-batcher,
record texts straight to the model in its own batches; every model call is timed, counted and
traced (``Instruments.embedding_call``)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from store.embedding.batcher import MicroBatcher
from store.embedding.cache import QueryCache
from store.embedding.protocol import Embedder
from store.instruments import Instruments


class ServedEmbedder:
    """``window``: the micro-batching window in seconds (0: off, one model call per query);
    ``cache_size``: query texts kept (0: no cache)."""

    def __init__(
        self, embedder: Embedder, *, window: float, cache_size: int, instruments: Instruments
    ) -> None:
        self.embedder = embedder
        self._instruments = instruments
        self._cache = QueryCache(cache_size)
        self._batcher = (
            MicroBatcher(self._query_call, window=window, max_batch=embedder.batch_size)
            if window > 0
            else None
        )
        self.model_calls = 0  # counted for the tests and the benchmark, like the metric

    @property
    def name(self) -> str:
        return self.embedder.name

    @property
    def provider(self) -> str:
        return self.embedder.provider

    @property
    def dimension(self) -> int:
        return self.embedder.dimension

    @property
    def max_input(self) -> int | None:
        return self.embedder.max_input

    async def embed_queries(self, texts: Sequence[str]) -> list[np.ndarray]:
        """One vector per query text, from the cache when the text was seen recently."""
        found: list[np.ndarray | None] = [self._cache.get(t) for t in texts]
        misses = [t for t, v in zip(texts, found, strict=True) if v is None]
        self._instruments.embedding_cache_lookups(
            self.name, hits=len(texts) - len(misses), misses=len(misses)
        )
        if misses:
            if self._batcher is not None:
                fresh = await self._batcher.embed(misses)
            else:
                fresh = list(await self._query_call(misses))
            computed = dict(zip(misses, fresh, strict=True))
            for text, vector in computed.items():
                self._cache.put(text, vector)
            found = [v if v is not None else computed[t] for t, v in zip(texts, found, strict=True)]
        return [v for v in found if v is not None]

    async def embed_records(self, texts: Sequence[str]) -> np.ndarray:
        """Record texts in one call: the provider batches them by its ``batch_size``."""
        return await self._call(texts, kind="record")

    async def close(self) -> None:
        if self._batcher is not None:
            await self._batcher.close()

    async def _query_call(self, texts: Sequence[str]) -> np.ndarray:
        return await self._call(texts, kind="query")

    async def _call(self, texts: Sequence[str], *, kind: str) -> np.ndarray:
        self.model_calls += 1
        with self._instruments.embedding_call(self.name, kind=kind, texts=len(texts)):
            return await self.embedder.embed(texts)
