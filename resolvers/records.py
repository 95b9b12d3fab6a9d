"""Record reads by id."""

from __future__ import annotations

from resolvers.ingest import check_tenant
from store import Store
from store.records import StoredRecord


async def get_record(
    store: Store, *, collection: str, id: str, tenant: str | None
) -> StoredRecord | None:
    info = await store.collections.get(collection)
    check_tenant(info, tenant)
    return await store.reader.get(info.name, id, tenant=tenant)
