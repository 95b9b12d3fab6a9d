"""The ``where`` argument of searches, listings and deletes: its shape checked before any store
call, then parsed against the collection's declared fields."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from resolvers.limits import Limits
from store import CollectionInfo, Filter, check_shape, parse_filter


def check_where_shape(where: Mapping[str, Any] | None, limits: Limits) -> None:
    """The filter's depth and list sizes, which need no schema: checked before the collection
    lookup, so an over-limit filter costs no SQL read even when the registry cache is cold."""
    if where is not None:
        check_shape(where, max_depth=limits.max_filter_depth, max_list=limits.max_filter_list)


def parse_where(
    info: CollectionInfo, where: Mapping[str, Any] | None, limits: Limits
) -> Filter | None:
    if where is None:
        return None
    return parse_filter(
        where,
        fields=info.fields,
        max_depth=limits.max_filter_depth,
        max_list=limits.max_filter_list,
    )
