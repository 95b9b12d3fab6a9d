"""Record reads by id."""

from __future__ import annotations

from resolvers.access import Principal, check_collection, require, tenant_for
from store import Store
from store.keys import Scope
from store.records import StoredRecord


async def get_record(
    store: Store, *, collection: str, id: str, tenant: str | None, principal: Principal
) -> StoredRecord | None:
    require(principal, Scope.READ, action="record")
    check_collection(principal, collection)
    info = await store.collections.get(collection)
    tenant = tenant_for(principal, info, tenant)
    return await store.reader.get(info.name, id, tenant=tenant)
