"""The per-request context: the store, the settings, the caller and this request's own
DataLoaders."""

from __future__ import annotations

from dataclasses import dataclass, field

import strawberry
from strawberry.fastapi import BaseContext

from graph.settings import Settings
from resolvers.access import Principal
from resolvers.collections import NameCheck
from resolvers.limits import Limits
from store import Loaders, Store, Unauthenticated


@dataclass
class Context(BaseContext):
    store: Store
    settings: Settings
    # Admitted by the HTTP gate (graph.http.auth) before the body was read.
    caller: Principal | None = None
    # The rule on the GraphQL names a new collection generates (graph.schema.typed.names).
    name_check: NameCheck | None = None
    loaders: Loaders = field(init=False)

    def __post_init__(self) -> None:
        super().__init__()
        self.loaders = Loaders(self.store)

    @property
    def principal(self) -> Principal:
        """The caller; a refused request never reaches a resolver, but if it did, it fails."""
        if self.caller is None:
            raise Unauthenticated("an API key is required")
        return self.caller

    @property
    def limits(self) -> Limits:
        return limits_from(self.settings)


def limits_from(settings: Settings) -> Limits:
    return Limits(
        max_batch_size=settings.max_batch_size,
        max_top_k=settings.max_top_k,
        max_search_batch=settings.max_search_batch,
        max_filter_depth=settings.max_filter_depth,
        max_filter_list=settings.max_filter_list,
        max_page_size=settings.max_page_size,
    )


Info = strawberry.Info[Context, None]
