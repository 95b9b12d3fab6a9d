"""The collection registry (SQL) kept in step with Milvus.

Create, in three short steps so that no SQL transaction is open during the Milvus DDL (which takes
seconds on a server; on SQLite an open write transaction would stall every other writer that long):
1. one transaction checks the name is free and takes a *creation claim* on it (a lease,
   ``store.writes.lease``, that expires after the DDL's own time bound, so a crashed creator
   does not block the name forever);
2. Milvus creates, indexes and loads the collection;
3. one transaction inserts the registry row and deletes the claim together.
A failure in step 2 or 3 drops whatever Milvus created, then releases the claim, so a failed
create leaves neither a registry row nor a Milvus collection. A concurrent create of the same name
meets the claim (or the row) and gets ``Conflict``; an unregistered collection is invisible to
reads and writes until step 3 commits, and ``reconcile --full`` leaves claimed names alone.

Drop: Milvus first, then the SQL rows; a failure between the two leaves a registry row whose
Milvus collection the reconciler rebuilds from SQL.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from store.errors import Conflict, NotFound, Unavailable
from store.index import VectorIndex, milvus_name
from store.records import (
    CollectionInfo,
    CollectionSpec,
    CollectionStats,
    FieldSpec,
    IndexSpec,
    IndexType,
    Metric,
    ModelSpec,
    RecordState,
)
from store.sql import postings
from store.sql.tables import CollectionRow, RecordRow, utcnow
from store.sql.versions import bump_version, read_version
from store.validation import validate_collection, validate_index, validate_name
from store.writes import lease

log = logging.getLogger(__name__)

# Refuses a new collection given the registered ones (by raising ``InvalidInput``): the API's
# own rules on names, such as the GraphQL names each collection generates.
NameCheck = Callable[[CollectionInfo, Sequence[CollectionInfo]], None]


def to_info(row: CollectionRow) -> CollectionInfo:
    model = ModelSpec(row.model_name, row.model_version) if row.model_name else None
    created = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=UTC)
    updated = row.updated_at if row.updated_at.tzinfo else row.updated_at.replace(tzinfo=UTC)
    return CollectionInfo(
        name=row.name,
        dimension=row.dimension,
        metric=Metric(row.metric),
        description=row.description,
        model=model,
        fields=tuple(FieldSpec.from_dict(f) for f in row.fields),
        index=IndexSpec(IndexType(row.index_type), dict(row.index_params)),
        multi_tenant=row.multi_tenant,
        shards=row.shards,
        milvus_name=row.milvus_name,
        created_at=created,
        updated_at=updated,
    )


class Collections:
    """Create, read, alter and drop collections in SQL and Milvus together."""

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        vectors: VectorIndex,
        cache_seconds: float = 5.0,
    ) -> None:
        self._sessions = sessions
        self._vectors = vectors
        # Reads (search) may use a registry entry this young: it saves a SQL round trip per
        # search. Writes always read the registry fresh. Local changes invalidate at once.
        self._cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, CollectionInfo]] = {}
        # DDL this process committed that changed the schema: a caller that keeps something
        # derived from the collections (the typed GraphQL schema) rebuilds without waiting.
        self.local_changes = 0

    async def schema_version(self) -> int:
        """The version bumped by every create and drop, in any process (one small read)."""
        async with self._sessions() as session:
            return await read_version(session)

    async def create(
        self, spec: CollectionSpec, *, check: NameCheck | None = None
    ) -> CollectionInfo:
        """``check`` runs before any DDL and again in the registering transaction, after the
        schema version's bump, which serializes it with concurrent creates on PostgreSQL (and
        SQLite writers are serial): two colliding names cannot both be registered."""
        caps = self._vectors.known_capabilities or await self._vectors.connect()
        spec = validate_collection(spec, supported_indexes=caps.index_types)
        assert spec.dimension is not None  # validation refuses a collection without one
        now = utcnow()
        row = CollectionRow(
            name=spec.name,
            description=spec.description,
            dimension=spec.dimension,
            metric=spec.metric.value,
            model_name=spec.model.name if spec.model else None,
            model_version=spec.model.version if spec.model else None,
            fields=[f.as_dict() for f in spec.fields],
            index_type=spec.index.type.value,
            index_params=dict(spec.index.params),
            multi_tenant=spec.multi_tenant,
            shards=spec.shards,
            milvus_name=milvus_name(spec.name),
            created_at=now,
            updated_at=now,
        )
        info = to_info(row)
        if check is not None:
            check(info, [c for c in await self.all() if c.name != info.name])
        holder = await self._claim(spec.name)
        try:
            try:
                await self._vectors.create_collection(info)
            except BaseException:
                # Milvus may have created the collection before failing (index build, load).
                await _best_effort_drop(self._vectors, info.milvus_name)
                raise
            try:
                async with self._sessions() as session, session.begin():
                    await bump_version(session)
                    if check is not None:
                        others = await session.scalars(
                            select(CollectionRow).where(col(CollectionRow.name) != spec.name)
                        )
                        check(info, [to_info(r) for r in others])
                    session.add(row)
                    await session.execute(lease.released(_claim_key(spec.name), holder))
            except IntegrityError:
                # Only when this claim expired during a very slow DDL and another process created
                # the name meanwhile: the Milvus collection is now the other one's, so it stays.
                raise Conflict(f"collection {spec.name!r} already exists") from None
            except BaseException:
                await _best_effort_drop(self._vectors, info.milvus_name)
                raise
            self.local_changes += 1
        finally:
            # After the drop above, never before it: a claimed name is safe from ``--full``.
            await self._release_claim(spec.name, holder)
        return info

    async def _claim(self, name: str) -> str:
        """Take the creation claim on ``name`` (see the module docstring); returns its holder.
        ``Conflict`` when the collection exists or another live claim holds the name."""
        holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        now = utcnow()
        # Past the DDL's own bound (create_collection gives up after 3 x ddl_timeout).
        expires = now + timedelta(seconds=self._vectors.ddl_timeout * 3 + 60)
        key = _claim_key(name)
        busy = Conflict(f"collection {name!r} is being created by another request")
        try:
            async with self._sessions() as session, session.begin():
                if await session.get(CollectionRow, name) is not None:
                    raise Conflict(f"collection {name!r} already exists")
                if not await lease.take(session, name=key, holder=holder, until=expires):
                    raise busy
        except IntegrityError:
            raise busy from None
        return holder

    async def _release_claim(self, name: str, holder: str) -> None:
        try:
            async with self._sessions() as session, session.begin():
                await session.execute(lease.released(_claim_key(name), holder))
        except Exception:  # must not hide the outcome or the error of the create itself
            # The claim expires on its own; until then the name answers "being created".
            log.warning("could not release the creation claim on %r", name, exc_info=True)

    async def being_created(self, name: str) -> bool:
        """Whether a live creation claim holds ``name`` (its Milvus collection may exist before
        its registry row does)."""
        claim = lease.Lease(sessions=self._sessions, name=_claim_key(name), holder="", seconds=0)
        return await claim.live()

    async def all(self) -> list[CollectionInfo]:
        async with self._sessions() as session:
            rows = (await session.scalars(select(CollectionRow).order_by(CollectionRow.name))).all()
            return [to_info(r) for r in rows]

    async def find(self, name: str) -> CollectionInfo | None:
        async with self._sessions() as session:
            row = await session.get(CollectionRow, name)
            return to_info(row) if row is not None else None

    async def get(self, name: str, *, cached: bool = False) -> CollectionInfo:
        """The collection, or ``NotFound``; ``cached`` accepts a registry entry a moment old."""
        now = time.monotonic()
        if cached and name in self._cache:
            at, info = self._cache[name]
            if now - at < self._cache_seconds:
                return info
        found = await self.find(name)
        if found is None:
            self._cache.pop(name, None)
            raise NotFound(f"collection {name!r} does not exist")
        self._cache[name] = (now, found)
        return found

    async def drop(self, name: str) -> bool:
        """Drop a collection and its records; False when it did not exist."""
        validate_name(name)
        info = await self.find(name)
        if info is None:
            return False
        self._cache.pop(name, None)
        await self._vectors.drop_collection(info.milvus_name)
        async with self._sessions() as session, session.begin():
            await session.execute(delete(RecordRow).where(col(RecordRow.collection) == name))
            await postings.drop(session, name)
            await session.execute(delete(CollectionRow).where(col(CollectionRow.name) == name))
            await bump_version(session)
        self.local_changes += 1
        return True

    async def update_index(self, name: str, index: IndexSpec) -> CollectionInfo:
        info = await self.get(name)
        caps = self._vectors.known_capabilities or await self._vectors.connect()
        index = validate_index(index, dimension=info.dimension, supported=caps.index_types)
        self._cache.pop(name, None)
        await self._vectors.rebuild_index(info, index)
        async with self._sessions() as session, session.begin():
            row = await session.get(CollectionRow, name)
            if row is None:
                raise NotFound(f"collection {name!r} was dropped during the index rebuild")
            row.index_type = index.type.value
            row.index_params = dict(index.params)
            row.updated_at = utcnow()
        return await self.get(name)

    async def stats(
        self, names: Sequence[str], *, tenant: str | None = None
    ) -> list[CollectionStats]:
        """Record counts by state for each name (only ``tenant``'s, when given), in one SQL
        statement."""
        if not names:
            return []
        query = select(col(RecordRow.collection), col(RecordRow.state), func.count()).where(
            col(RecordRow.collection).in_(list(set(names)))
        )
        if tenant is not None:
            query = query.where(col(RecordRow.tenant) == tenant)
        async with self._sessions() as session:
            result = await session.execute(
                query.group_by(col(RecordRow.collection), col(RecordRow.state))
            )
            counts: dict[str, dict[str, int]] = {}
            for collection, state, n in result.all():
                counts.setdefault(collection, {})[state] = int(n)
        out = []
        for name in names:
            c = counts.get(name, {})
            indexed = c.get(RecordState.INDEXED.value, 0)
            pending = c.get(RecordState.PENDING.value, 0)
            out.append(CollectionStats(records=indexed + pending, indexed=indexed, pending=pending))
        return out


async def _best_effort_drop(vectors: VectorIndex, mname: str) -> None:
    # If Milvus is gone, the reconciler drops Milvus collections that no registry row owns.
    with contextlib.suppress(Unavailable):
        await vectors.drop_collection(mname)


# The lease name of a creation claim: a digest, since "create:" + a 63-character name would not
# fit the lease table's 64-character key.
def _claim_key(name: str) -> str:
    return "create:" + hashlib.blake2b(name.encode(), digest_size=16).hexdigest()
