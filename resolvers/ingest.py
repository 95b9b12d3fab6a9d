"""Ingestion use cases: upsert and delete records, with the API's limits and tenant rules."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from resolvers.access import Principal, check_collection, records_for, require, tenant_for
from resolvers.limits import Limits
from resolvers.where import check_where_shape, parse_where
from store import (
    IncomingRecord,
    InvalidInput,
    LimitExceeded,
    Scope,
    Store,
    UpsertOutcome,
    upsert_with_text,
)


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
    return await upsert_with_text(
        store.writer,
        store.embedders,
        info,
        records_for(principal, info, records),
        atomic=atomic,
    )


async def delete_records(
    store: Store,
    *,
    collection: str,
    ids: Sequence[str] | None = None,
    where: Mapping[str, Any] | None = None,
    tenant: str | None,
    limits: Limits,
    principal: Principal,
) -> int:
    """Delete the records with ``ids``, or every record matching ``where`` (exactly one of the
    two); returns how many existed."""
    if (ids is None) == (where is None):
        raise InvalidInput("deleteRecords takes exactly one of ids and where")
    require(principal, Scope.WRITE, action="deleteRecords")
    check_collection(principal, collection)
    if where is not None:
        return await _delete_where(
            store,
            collection=collection,
            where=where,
            tenant=tenant,
            limits=limits,
            principal=principal,
        )
    assert ids is not None
    if len(ids) > limits.max_batch_size:
        raise LimitExceeded(
            f"{len(ids)} ids in one call; the limit is {limits.max_batch_size}",
            extensions={"limit": limits.max_batch_size},
        )
    info = await store.collections.get(collection)
    tenant = tenant_for(principal, info, tenant)
    return await store.writer.delete(info, ids, tenant)


async def _delete_where(
    store: Store,
    *,
    collection: str,
    where: Mapping[str, Any],
    tenant: str | None,
    limits: Limits,
    principal: Principal,
) -> int:
    """In chunks of the batch limit, until nothing matches."""
    check_where_shape(where, limits)
    info = await store.collections.get(collection)
    tenant = tenant_for(principal, info, tenant)
    parsed = parse_where(info, where, limits)
    assert parsed is not None
    total = 0
    while True:
        ids = await store.lister.matching_ids(
            info, where=parsed, tenant=tenant, limit=limits.max_batch_size
        )
        if not ids:
            return total
        total += await store.writer.delete(info, ids, tenant)
