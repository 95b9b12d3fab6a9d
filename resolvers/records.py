"""Record reads: one record by id, and the filtered listing."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from resolvers.access import Principal, check_collection, require, tenant_for
from resolvers.limits import Limits
from resolvers.where import check_where_shape, parse_where
from store import InvalidInput, Page, Scope, Store, StoredRecord


async def get_record(
    store: Store, *, collection: str, id: str, tenant: str | None, principal: Principal
) -> StoredRecord | None:
    require(principal, Scope.READ, action="record")
    check_collection(principal, collection)
    # A registry entry at most a few seconds old, as for searches: a fresh lookup is a large
    # share of this read's CPU (docs/measurements.md). Writes read the registry fresh.
    info = await store.collections.get(collection, cached=True)
    tenant = tenant_for(principal, info, tenant)
    return await store.reader.get(info.name, id, tenant=tenant)


async def list_records(
    store: Store,
    *,
    collection: str,
    where: Mapping[str, Any] | None,
    tenant: str | None,
    first: int,
    after: str | None,
    limits: Limits,
    principal: Principal,
) -> Page:
    require(principal, Scope.READ, action="records")
    check_collection(principal, collection)
    if not 0 <= first <= limits.max_page_size:
        raise InvalidInput(f"first must be in 0..{limits.max_page_size}, got {first}")
    check_where_shape(where, limits)
    info = await store.collections.get(collection, cached=True)
    tenant = tenant_for(principal, info, tenant)
    return await store.lister.page(
        info, where=parse_where(info, where, limits), tenant=tenant, first=first, after=after
    )
