"""Collection use cases: create, list, read, alter index, drop."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from resolvers.access import Principal, can_see, check_collection, require, require_ddl
from store import (
    CollectionInfo,
    CollectionSpec,
    CollectionStats,
    Forbidden,
    IndexSpec,
    Loaders,
    Scope,
    Store,
    validate_name,
)

# Raises ``InvalidInput`` when a new collection (first argument) cannot join the others.
NameCheck = Callable[[CollectionInfo, Sequence[CollectionInfo]], None]


async def create_collection(
    store: Store, spec: CollectionSpec, *, principal: Principal, check: NameCheck | None = None
) -> CollectionInfo:
    """``check``: the API's rule on the names a collection generates, run by the store before
    the DDL and again in the registering transaction."""
    require_ddl(principal, spec.name, action="createCollection")
    return await store.collections.create(store.embedders.resolve(spec), check=check)


async def list_collections(store: Store, *, principal: Principal) -> list[CollectionInfo]:
    require(principal, Scope.READ, action="collections")
    return [c for c in await store.collections.all() if can_see(principal, c)]


async def get_collection(store: Store, name: str, *, principal: Principal) -> CollectionInfo | None:
    require(principal, Scope.READ, action="collection")
    validate_name(name)
    check_collection(principal, name)
    found = await store.collections.find(name)
    if found is not None and not can_see(principal, found):
        raise Forbidden(f"{principal.describe()} is not allowed collection {name!r}")
    return found


async def drop_collection(store: Store, name: str, *, principal: Principal) -> bool:
    require_ddl(principal, name, action="dropCollection")
    return await store.collections.drop(name)


async def update_index(
    store: Store, name: str, index: IndexSpec, *, principal: Principal
) -> CollectionInfo:
    require_ddl(principal, name, action="updateIndex")
    validate_name(name)
    return await store.collections.update_index(name, index)


async def collection_stats(loaders: Loaders, name: str, *, principal: Principal) -> CollectionStats:
    """Record counts of a collection this caller was shown; a tenant-bound caller (shown only
    multi-tenant collections) counts its own tenant's records."""
    check_collection(principal, name)
    return await loaders.stats.load((name, principal.tenant))
