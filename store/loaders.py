"""Per-request DataLoaders. Built for one request and dropped with it: never module-level, never
shared between requests or tenants, so one request's cache cannot leak into another's."""

from __future__ import annotations

from collections.abc import Sequence

from aiodataloader import DataLoader

from store.records import CollectionStats
from store.service import Store


class Loaders:
    def __init__(self, store: Store) -> None:
        self._store = store
        self.stats: DataLoader[str, CollectionStats] = DataLoader(self._load_stats)

    async def _load_stats(self, names: Sequence[str]) -> list[CollectionStats]:
        return await self._store.collections.stats(names)
