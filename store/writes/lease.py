"""Leases: a named SQL row that one holder at a time owns until it expires.

The reconciler takes one so that one process at a time runs a pass; creating a collection takes
one on its name (a *creation claim*, ``store.collections``) so that no SQL transaction stays open
during the Milvus DDL. A lease that is free, expired or already the holder's is taken; a holder
that stalls past its expiry loses it to the next taker.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Delete, and_, delete, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from store.sql.tables import LeaseRow, utcnow


class LeaseLost(Exception):
    """Another holder took the lease while this one still held it."""


async def take(session: AsyncSession, *, name: str, holder: str, until: datetime) -> bool:
    """Take lease ``name`` for ``holder`` until ``until`` in ``session``'s transaction: False when
    another holder's lease is live. A concurrent first taker makes the commit raise
    ``IntegrityError``."""
    taken = await session.execute(
        update(LeaseRow)
        .where(
            and_(
                col(LeaseRow.name) == name,
                (col(LeaseRow.holder) == holder) | (col(LeaseRow.expires_at) < utcnow()),
            )
        )
        .values(holder=holder, expires_at=until)
    )
    if taken.rowcount:  # type: ignore[attr-defined]
        return True
    if await session.get(LeaseRow, name) is not None:
        return False
    session.add(LeaseRow(name=name, holder=holder, expires_at=until))
    return True


def released(name: str, holder: str) -> Delete:
    """The statement that gives lease ``name`` up, if ``holder`` still holds it."""
    return delete(LeaseRow).where(and_(col(LeaseRow.name) == name, col(LeaseRow.holder) == holder))


class Lease:
    """Lease ``name`` held by ``holder`` for ``seconds`` at a time, each in its own transaction."""

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        name: str,
        holder: str,
        seconds: float,
    ) -> None:
        self._sessions = sessions
        self.name = name
        self.holder = holder
        self._seconds = seconds

    async def acquire(self) -> bool:
        """Take or extend the lease; False when another holder's is live."""
        try:
            async with self._sessions() as session, session.begin():
                return await take(
                    session,
                    name=self.name,
                    holder=self.holder,
                    until=utcnow() + timedelta(seconds=self._seconds),
                )
        except IntegrityError:
            return False

    async def renew(self) -> None:
        """Extend the lease during long work; ``LeaseLost`` when another holder has it (this one
        stalled past its expiry and the other took over)."""
        if not await self.acquire():
            raise LeaseLost

    async def release(self) -> None:
        async with self._sessions() as session, session.begin():
            await session.execute(released(self.name, self.holder))

    async def live(self) -> bool:
        """Whether a holder (any) has the lease now."""
        async with self._sessions() as session:
            row = await session.get(LeaseRow, self.name)
            return row is not None and _aware(row.expires_at) > utcnow()


def _aware(dt: datetime) -> datetime:
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)  # SQLite returns naive datetimes
