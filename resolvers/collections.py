"""Collection use cases: create, list, read, alter index, drop."""

from __future__ import annotations

from collections.abc import Sequence

from store import Store
from store.records import CollectionInfo, CollectionSpec, CollectionStats, IndexSpec
from store.validation import validate_name


async def create_collection(store: Store, spec: CollectionSpec) -> CollectionInfo:
    return await store.collections.create(spec)


async def list_collections(store: Store) -> list[CollectionInfo]:
    return await store.collections.all()


async def get_collection(store: Store, name: str) -> CollectionInfo | None:
    validate_name(name)
    return await store.collections.find(name)


async def drop_collection(store: Store, name: str) -> bool:
    return await store.collections.drop(name)


async def update_index(store: Store, name: str, index: IndexSpec) -> CollectionInfo:
    validate_name(name)
    return await store.collections.update_index(name, index)


async def collection_stats(store: Store, names: Sequence[str]) -> list[CollectionStats]:
    return await store.collections.stats(names)
