"""The collection registry (SQL) kept in step with Milvus.

Create: the SQL row is inserted inside a transaction that commits only after Milvus has created,
indexed and loaded the collection; a Milvus failure rolls the row back and removes any partial
Milvus collection. Drop: Milvus first, then the SQL rows; a failure between the two leaves a
registry row whose Milvus collection the reconciler rebuilds from SQL.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from datetime import UTC

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from store.errors import Conflict, NotFound, Unavailable
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
from store.tables import CollectionRow, RecordRow, utcnow
from store.validation import validate_collection, validate_index, validate_name
from store.vectors import VectorIndex, milvus_name


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

    async def create(self, spec: CollectionSpec) -> CollectionInfo:
        caps = self._vectors.known_capabilities or await self._vectors.connect()
        spec = validate_collection(spec, supported_indexes=caps.index_types)
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
        async with self._sessions() as session:
            if await session.get(CollectionRow, spec.name) is not None:
                raise Conflict(f"collection {spec.name!r} already exists")
            session.add(row)
            try:
                await session.flush()
            except IntegrityError:
                raise Conflict(f"collection {spec.name!r} already exists") from None
            info = to_info(row)
            try:
                await self._vectors.create_collection(info)
            except BaseException:
                await session.rollback()
                await _best_effort_drop(self._vectors, info.milvus_name)
                raise
            try:
                await session.commit()
            except IntegrityError:
                await _best_effort_drop(self._vectors, info.milvus_name)
                raise Conflict(f"collection {spec.name!r} already exists") from None
            except BaseException:
                await _best_effort_drop(self._vectors, info.milvus_name)
                raise
        return info

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
            await session.execute(delete(CollectionRow).where(col(CollectionRow.name) == name))
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
