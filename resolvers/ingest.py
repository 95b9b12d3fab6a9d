"""Ingestion use cases: upsert and delete records, with the API's limits and tenant rules."""

from __future__ import annotations

from collections.abc import Sequence

from resolvers.access import Principal, check_collection, records_for, require, tenant_for
from resolvers.limits import Limits
from store import IncomingRecord, InvalidInput, LimitExceeded, Scope, Store, UpsertOutcome


async def upsert_records(
    store: Store,
    *,
    collection: str,
    records: Sequence[IncomingRecord],
    atomic: bool,
    limits: Limits,
    principal: Principal,
) -> UpsertOutcome:
    require(principal, Scope.WRITE, action="upsertRecords")
    check_collection(principal, collection)
    if len(records) > limits.max_batch_size:
        raise LimitExceeded(
            f"{len(records)} records in one call; the limit is {limits.max_batch_size}",
            extensions={"limit": limits.max_batch_size},
        )
    info = await store.collections.get(collection)
    return await store.writer.upsert(info, records_for(principal, info, records), atomic=atomic)


async def delete_records(
    store: Store,
    *,
    collection: str,
    ids: Sequence[str] | None,
    tenant: str | None,
    limits: Limits,
    principal: Principal,
) -> int:
    require(principal, Scope.WRITE, action="deleteRecords")
    check_collection(principal, collection)
    if ids is None:
        raise InvalidInput("deleteRecords needs ids (or a where filter)")
    if len(ids) > limits.max_batch_size:
        raise LimitExceeded(
            f"{len(ids)} ids in one call; the limit is {limits.max_batch_size}",
            extensions={"limit": limits.max_batch_size},
        )
    info = await store.collections.get(collection)
    tenant = tenant_for(principal, info, tenant)
    return await store.writer.delete(info, ids, tenant)
