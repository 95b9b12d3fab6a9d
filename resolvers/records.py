"""Record reads by id."""

from __future__ import annotations

from resolvers.access import Principal, check_collection, require, tenant_for
from store import Scope, Store, StoredRecord


async def get_record(
    store: Store, *, collection: str, id: str, tenant: str | None, principal: Principal
) -> StoredRecord | None:
    require(principal, Scope.READ, action="record")
    check_collection(principal, collection)
    # A registry entry at most a few seconds old, as for searches: a fresh lookup cost about a
    # third of this read's CPU. Writes read the registry fresh.
    info = await store.collections.get(collection, cached=True)
    tenant = tenant_for(principal, info, tenant)
    return await store.reader.get(info.name, id, tenant=tenant)
