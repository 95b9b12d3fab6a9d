"""The per-request context: the store, the settings and this request's own DataLoaders."""

from __future__ import annotations

from dataclasses import dataclass, field

import strawberry
from strawberry.fastapi import BaseContext

from graph.settings import Settings
from store import Store
from store.loaders import Loaders


@dataclass
class Context(BaseContext):
    store: Store
    settings: Settings
    loaders: Loaders = field(init=False)

    def __post_init__(self) -> None:
        super().__init__()
        self.loaders = Loaders(self.store)


Info = strawberry.Info[Context, None]
