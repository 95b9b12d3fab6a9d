"""The reconciler: makes Milvus agree with SQL after failures, crashes and restarts.

One pass, per collection:
1. the Milvus collection exists, has this version's primary key and is loaded (recreated from
   SQL's vectors when missing; rebuilt from them when it is a multi-tenant collection keyed by
   ``id`` alone, as before tenants owned their ids: ``store.index.milvus_key``);
2. ``pending`` rows are pushed to Milvus and marked ``indexed``;
3. ``deleting`` rows are deleted from Milvus, then from SQL;
4. when the counts disagree, the key sets are compared: Milvus entities that SQL does not have
   are deleted, and ``indexed`` rows that Milvus lacks are pushed again;
5. with ``full`` only (``vectorql reconcile --full``): Milvus collections (``vq_*``) that no
   registry row owns and no creation claim holds are dropped, and the key sets are compared even
   when the counts agree.
Only one process runs a pass at a time: a lease row in SQL is taken first.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import and_, func, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from store.errors import Unavailable
from store.index import VectorIndex, milvus_key
from store.instruments import Instruments
from store.records import CollectionInfo, RecordData, RecordState
from store.sql.tables import RecordRow, tenant_of
from store.writes.lease import Lease, LeaseLost
from store.writes.protocol import RowKey, Writer

if TYPE_CHECKING:  # the registry is built before the reconciler; only its type is needed here
    from store.collections import Collections

log = logging.getLogger(__name__)

BATCH = 1000
LEASE_NAME = "reconciler"


@dataclass
class ReconcileReport:
    pushed: int = 0
    deleted: int = 0
    orphans_removed: int = 0
    recreated: list[str] = field(default_factory=list)
    dropped_collections: list[str] = field(default_factory=list)
    pending_left: int = 0
    skipped: bool = False


class Reconciler:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        vectors: VectorIndex,
        collections: Collections,
        writer: Writer,
        lease_seconds: float = 120.0,
        instruments: Instruments | None = None,
    ) -> None:
        self._instruments = instruments or Instruments()
        self._sessions = sessions
        self._vectors = vectors
        self._collections = collections
        self._writer = writer
        self._lease = Lease(
            sessions=sessions,
            name=LEASE_NAME,
            holder=f"{socket.gethostname()}:{os.getpid()}:{id(self):x}",
            seconds=lease_seconds,
        )

    async def run_once(self, *, full: bool = False) -> ReconcileReport:
        """One pass over every collection; ``skipped`` when another process holds the lease."""
        # One trace per pass, so its SQL and Milvus spans are grouped rather than loose roots.
        with self._instruments.tracer.start_as_current_span("reconciler pass") as span:
            report = await self._pass(full=full)
            span.set_attributes(
                {
                    "reconciler.skipped": report.skipped,
                    "reconciler.pushed": report.pushed,
                    "reconciler.deleted": report.deleted,
                    "reconciler.orphans_removed": report.orphans_removed,
                }
            )
            return report

    async def _pass(self, *, full: bool) -> ReconcileReport:
        report = ReconcileReport()
        if not await self._acquire():
            report.skipped = True
            return report
        # Under the lease: one process's pass at a time (test_many_processes reads these lines).
        log.debug("reconciler pass started by %s", self._lease.holder)
        try:
            infos = await self._collections.all()
            try:
                for info in infos:
                    await self._reconcile(info, report, full=full)
                    await self._renew()
            except LeaseLost:
                log.warning("reconciler lease lost during a pass; stopping it")
                report.skipped = True
                return report
            if full:
                # Only on request: another deployment (or test run) may share this Milvus with a
                # registry of its own, and its collections would look unowned from here.
                await self._drop_unowned(report)
        finally:
            log.debug("reconciler pass ended by %s", self._lease.holder)
            await self._release()
        return report

    async def run_forever(self, interval: float) -> None:
        while True:
            try:
                report = await self.run_once()
                if report.pushed or report.deleted or report.orphans_removed or report.recreated:
                    log.info("reconciled: %s", report)
            except Unavailable as e:
                log.warning("reconciler: Milvus unavailable: %s", e)
            except Exception:
                log.exception("reconciler pass failed")
            await asyncio.sleep(interval)

    async def pending_by_collection(self, names: Sequence[str]) -> dict[str, int]:
        """Rows waiting for Milvus in each named collection (0 for none), in one statement
        that reads only the pending rows through the (collection, state) index."""
        counts = dict.fromkeys(names, 0)
        if not counts:
            return counts
        async with self._sessions() as session:
            rows = await session.execute(
                select(col(RecordRow.collection), func.count())
                .where(
                    and_(
                        col(RecordRow.collection).in_(list(counts)),
                        col(RecordRow.state) == RecordState.PENDING.value,
                    )
                )
                .group_by(col(RecordRow.collection))
            )
            counts.update({str(c): int(n) for c, n in rows.all()})
        return counts

    async def pending_count(self) -> int:
        async with self._sessions() as session:
            n = await session.scalar(
                select(func.count()).where(col(RecordRow.state) == RecordState.PENDING.value)
            )
            return int(n or 0)

    async def _reconcile(
        self, info: CollectionInfo, report: ReconcileReport, *, full: bool
    ) -> None:
        if not await self._vectors.has_collection(info.name) or await self.stale_key(info):
            await self._vectors.create_collection(info)  # drops one with the old key
            await self._set_state(info.name, RecordState.INDEXED, RecordState.PENDING)
            report.recreated.append(info.name)
        else:
            await self._vectors.ensure_loaded(info.milvus_name)
        pushed = await self._push_pending(info)
        report.pushed += pushed
        report.deleted += await self._finish_deletes(info)
        sql_count = await self._count(info.name)
        milvus_count = await self._vectors.count(info.milvus_name)
        if full or sql_count != milvus_count:
            report.orphans_removed += await self._diff_ids(info)
            report.pushed += await self._push_pending(info)
        if pushed:
            await self._writer.flush(info)

    async def stale_key(self, info: CollectionInfo) -> bool:
        """Whether ``info``'s Milvus collection (which exists) predates tenant-scoped keys and
        must be rebuilt: only multi-tenant collections changed their key."""
        return info.multi_tenant and not await self._vectors.keyed_as_expected(info)

    async def _push_pending(self, info: CollectionInfo) -> int:
        total = 0
        after: RowKey = ("", "")
        while True:
            async with self._sessions() as session:
                rows = (
                    await session.execute(
                        select(
                            col(RecordRow.id),
                            col(RecordRow.vector),
                            col(RecordRow.meta),
                            col(RecordRow.tenant),
                            col(RecordRow.revision),
                        )
                        .where(
                            and_(
                                col(RecordRow.collection) == info.name,
                                col(RecordRow.state) == RecordState.PENDING.value,
                                tuple_(col(RecordRow.tenant), col(RecordRow.id)) > tuple_(*after),
                            )
                        )
                        .order_by(col(RecordRow.tenant), col(RecordRow.id))
                        .limit(BATCH)
                    )
                ).all()
            if not rows:
                return total
            records = [
                RecordData(id=r[0], vector=r[1], metadata=dict(r[2] or {}), tenant=tenant_of(r[3]))
                for r in rows
            ]
            await self._vectors.upsert(info, records)
            await self._writer.mark_indexed(info.name, [(r[3], r[0], int(r[4])) for r in rows])
            total += len(rows)
            after = (rows[-1][3], rows[-1][0])
            await self._renew()  # a large backlog takes many batches

    async def _finish_deletes(self, info: CollectionInfo) -> int:
        async with self._sessions() as session:
            rows = (
                await session.execute(
                    select(col(RecordRow.tenant), col(RecordRow.id)).where(
                        and_(
                            col(RecordRow.collection) == info.name,
                            col(RecordRow.state) == RecordState.DELETING.value,
                        )
                    )
                )
            ).all()
        keys: list[RowKey] = [(str(t), str(i)) for t, i in rows]
        for start in range(0, len(keys), BATCH):
            chunk = keys[start : start + BATCH]
            await self._vectors.delete_ids(
                info.milvus_name, [milvus_key(info, tenant_of(t), i) for t, i in chunk]
            )
            await self._writer.remove_deleted(info.name, chunk)
        return len(keys)

    async def _count(self, collection: str) -> int:
        async with self._sessions() as session:
            n = await session.scalar(
                select(func.count()).where(
                    and_(
                        col(RecordRow.collection) == collection,
                        col(RecordRow.state) != RecordState.DELETING.value,
                    )
                )
            )
            return int(n or 0)

    async def _diff_ids(self, info: CollectionInfo) -> int:
        """Compare Milvus's primary keys with SQL's rows (by ``milvus_key``)."""
        milvus_keys = await self._vectors.all_keys(info)
        async with self._sessions() as session:
            rows = (
                await session.execute(
                    select(col(RecordRow.tenant), col(RecordRow.id), col(RecordRow.state)).where(
                        col(RecordRow.collection) == info.name
                    )
                )
            ).all()
        keyed = [
            (milvus_key(info, tenant_of(t), i), (str(t), str(i)), state) for t, i, state in rows
        ]
        sql_keys = {k for k, _, state in keyed if state != RecordState.DELETING.value}
        orphans = sorted(milvus_keys - sql_keys)
        for start in range(0, len(orphans), BATCH):
            await self._vectors.delete_ids(info.milvus_name, orphans[start : start + BATCH])
        missing = [
            row
            for k, row, state in keyed
            if state == RecordState.INDEXED.value and k not in milvus_keys
        ]
        if missing:
            async with self._sessions() as session, session.begin():
                for start in range(0, len(missing), BATCH):
                    await session.execute(
                        update(RecordRow)
                        .where(
                            and_(
                                col(RecordRow.collection) == info.name,
                                tuple_(col(RecordRow.tenant), col(RecordRow.id)).in_(
                                    missing[start : start + BATCH]
                                ),
                                # a delete may have marked the row since the snapshot: a row
                                # turned pending again would escape its removal and come back
                                col(RecordRow.state) == RecordState.INDEXED.value,
                            )
                        )
                        .values(state=RecordState.PENDING.value)
                    )
        return len(orphans)

    async def _set_state(self, collection: str, old: RecordState, new: RecordState) -> None:
        async with self._sessions() as session, session.begin():
            await session.execute(
                update(RecordRow)
                .where(
                    and_(col(RecordRow.collection) == collection, col(RecordRow.state) == old.value)
                )
                .values(state=new.value)
            )

    async def _drop_unowned(self, report: ReconcileReport) -> None:
        # Milvus is listed before the registry is read: a collection created meanwhile has its
        # registry row, or a live creation claim, by the time the registry is read.
        names = await self._vectors.list_collections()
        owned = {info.milvus_name for info in await self._collections.all()}
        for mname in names:
            if not mname.startswith("vq_") or mname in owned:
                continue
            if await self._collections.being_created(mname.removeprefix("vq_")):
                continue
            await self._vectors.drop_collection(mname)
            report.dropped_collections.append(mname)

    # -- lease --------------------------------------------------------------------------------

    async def _acquire(self) -> bool:
        return await self._lease.acquire()

    async def _renew(self) -> None:
        await self._lease.renew()

    async def _release(self) -> None:
        await self._lease.release()
