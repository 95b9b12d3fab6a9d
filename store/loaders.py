"""Per-request DataLoaders. Built for one request and dropped with it: never module-level, never
shared between requests or tenants, so one request's cache cannot leak into another's.

The record loader turns every ``load`` of a request (all hits of all searches in it) into one
``SELECT ... WHERE collection = :c AND id IN (...)`` per (collection, tenant).
"""

from __future__ import annotations

from collections.abc import Sequence

from aiodataloader import DataLoader

from store.records import CollectionStats, StoredRecord
from store.service import Store

RecordKey = tuple[str, str | None, str]  # (collection, tenant, id)
StatsKey = tuple[str, str | None]  # (collection, tenant: None counts every tenant)


class Loaders:
    def __init__(self, store: Store) -> None:
        self._store = store
        self.stats: DataLoader[StatsKey, CollectionStats] = DataLoader(self._load_stats)
        self.records: DataLoader[RecordKey, StoredRecord | None] = DataLoader(
            self._load_records, max_batch_size=100_000
        )
        self.record_batches: list[int] = []  # key count of each record batch (for telemetry)

    async def _load_stats(self, keys: Sequence[StatsKey]) -> list[CollectionStats]:
        tenants = {tenant for _, tenant in keys}
        if len(tenants) == 1:  # the usual case: one statement
            return await self._store.collections.stats([n for n, _ in keys], tenant=tenants.pop())
        return [
            (await self._store.collections.stats([name], tenant=tenant))[0] for name, tenant in keys
        ]

    async def _load_records(self, keys: Sequence[RecordKey]) -> list[StoredRecord | None]:
        self.record_batches.append(len(keys))
        with self._store.instruments.loader_batch("records", len(keys)):
            return await self._records(keys)

    async def _records(self, keys: Sequence[RecordKey]) -> list[StoredRecord | None]:
        groups: dict[tuple[str, str | None], list[str]] = {}
        for collection, tenant, id in keys:
            groups.setdefault((collection, tenant), []).append(id)
        found: dict[RecordKey, StoredRecord | None] = {}
        for (collection, tenant), ids in groups.items():
            records = await self._store.reader.get_many(collection, ids, tenant=tenant)
            for id, record in zip(ids, records, strict=True):
                found[(collection, tenant, id)] = record
        return [found[k] for k in keys]
