"""Seams for tests: a vector index that is the app's own except where a test overrides a method,
and the app serving with one (instead of patching pymilvus)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from store import Store
from store.index import VectorIndex
from tests.conftest import Api


class Wrapped:
    """A vector index that is the app's own except where a test overrides a method."""

    def __init__(self, real: VectorIndex) -> None:
        self.real = real

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


@contextlib.asynccontextmanager
async def serving_with(api: Api, index: Any) -> AsyncIterator[Store]:
    """The app serves its requests with a store over its own SQL engine and ``index``."""
    real = api.app.state.store
    store = Store(
        config=real.config, engine=real.engine, vectors=index, instruments=real.instruments
    )
    await store.sql.ensure()
    api.app.state.store = store
    try:
        yield store
    finally:
        api.app.state.store = real
        await store.writer.close()
        store.reader.close()
        if store.inline_engine is not None:
            store.inline_engine.dispose()
