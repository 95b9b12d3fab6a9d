"""What this server can embed with (``Query.embedders``)."""

from __future__ import annotations

from resolvers.access import Principal, require
from store import Scope, ServedEmbedder, Store


def list_embedders(store: Store, *, principal: Principal) -> list[ServedEmbedder]:
    require(principal, Scope.READ, action="embedders")
    return store.embedders.all()
