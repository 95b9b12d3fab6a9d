"""The schema a process serves, following the collections' schema version in SQL.

Every DDL that adds or drops a collection bumps the version in its own transaction
(``store.collections``). Each process reads the version every ``interval`` seconds (one small
SELECT) and, when it moved, reads the collections and builds the new schema in a thread (off the
event loop); a build that fails is logged and the previous schema keeps serving. A request pins
the schema it starts with (``graph.http.router``), so a swap never changes a request midway.

Clients learn the version from the ``X-Vectorql-Schema-Version`` response header; a request that
sends a newer version than this process has waits (up to ``wait`` seconds) for the refresh, so a
client that created a collection through one process can use its types through another at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import strawberry

from graph.schema.typed.build import TypedSchemas
from store import Store

log = logging.getLogger("vectorql.schema.live")

VERSION_HEADER = "x-vectorql-schema-version"
POLL_INTERVAL = 1.0  # seconds between reads of the schema version
WAIT = 3.0  # longest a request waits for a newer schema its client has seen


class LiveSchema:
    """The current schema and its version, rebuilt when the version in SQL moves."""

    def __init__(self, typed: TypedSchemas) -> None:
        self.typed = typed
        self.current: strawberry.Schema = typed.generic
        self.version = -1  # none read yet: the generic schema serves
        self._local_changes = 0
        self._lock = asyncio.Lock()
        self._failed_version: int | None = None

    async def refresh(self, store: Store) -> bool:
        """Bring the schema up to the version in SQL; True when it is (a failed build leaves
        the old schema and returns False)."""
        async with self._lock:  # one build at a time; waiters then find it done
            changes = store.collections.local_changes
            version = await store.collections.schema_version()
            if version == self.version and changes == self._local_changes:
                return True
            collections = await store.collections.all()
            try:
                schema = await asyncio.to_thread(self.typed.build, collections)
            except Exception:
                if self._failed_version != version:  # logged once per version
                    log.exception(
                        "the schema for version %d failed to build; kept the old", version
                    )
                    self._failed_version = version
                return False
            self.current, self.version, self._local_changes = schema, version, changes
            return True

    async def follow(self, store: Store, *, interval: float = POLL_INTERVAL) -> None:
        """Poll the version forever (the app's lifespan runs this as a task)."""
        while True:
            try:
                await self.refresh(store)
            except Exception as e:  # noqa: BLE001  (SQL down: /readyz says so; keep polling)
                log.debug("schema version not read: %s", e)
            await asyncio.sleep(interval)

    async def at_least(self, store: Store, version: int, *, wait: float = WAIT) -> None:
        """Refresh when this process serves an older schema than ``version`` (a client saw it
        elsewhere). One refresh reaches what SQL has; a version SQL does not have yet is not
        waited for. Bounded by ``wait`` seconds; on failure the request runs on the schema it
        has."""
        if self.version >= version:
            return
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.refresh(store), timeout=wait)

    def changed_here(self, store: Store) -> bool:
        """Whether this process ran DDL that the current schema does not show yet."""
        return store.collections.local_changes != self._local_changes
