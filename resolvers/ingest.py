"""Ingestion use cases: upsert and delete records, with the API's limits and tenant rules."""

from __future__ import annotations

from collections.abc import Sequence

from resolvers.limits import Limits
from store import Store
from store.errors import InvalidInput, LimitExceeded
from store.ingest import IncomingRecord
from store.records import CollectionInfo, UpsertOutcome


async def upsert_records(
    store: Store,
    *,
    collection: str,
    records: Sequence[IncomingRecord],
    atomic: bool,
    limits: Limits,
) -> UpsertOutcome:
    if len(records) > limits.max_batch_size:
        raise LimitExceeded(
            f"{len(records)} records in one call; the limit is {limits.max_batch_size}",
            extensions={"limit": limits.max_batch_size},
        )
    info = await store.collections.get(collection)
    return await store.writer.upsert(info, records, atomic=atomic)


async def delete_records(
    store: Store,
    *,
    collection: str,
    ids: Sequence[str] | None,
    tenant: str | None,
    limits: Limits,
) -> int:
    info = await store.collections.get(collection)
    check_tenant(info, tenant)
    if ids is None:
        raise InvalidInput("deleteRecords needs ids (or a where filter)")
    if len(ids) > limits.max_batch_size:
        raise LimitExceeded(
            f"{len(ids)} ids in one call; the limit is {limits.max_batch_size}",
            extensions={"limit": limits.max_batch_size},
        )
    return await store.writer.delete(info, ids, tenant)


def check_tenant(info: CollectionInfo, tenant: str | None) -> None:
    """Multi-tenant collections need a tenant on every read and write; others refuse one."""
    if info.multi_tenant and tenant is None:
        raise InvalidInput(f"collection {info.name!r} is multi-tenant: tenant is required")
    if not info.multi_tenant and tenant is not None:
        raise InvalidInput(f"collection {info.name!r} is not multi-tenant: tenant must be omitted")
