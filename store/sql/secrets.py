"""Secrets shared by every process through SQL (``vq_secret``): the first process that asks for
one generates it; an insert that loses the race leaves the winner's, which every process reads."""

from __future__ import annotations

import secrets

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from store.sql.tables import SecretRow


async def shared_secret(sessions: async_sessionmaker[AsyncSession], name: str) -> bytes:
    """The secret called ``name`` (32 random bytes), created on first use."""
    table = SecretRow.__table__  # type: ignore[attr-defined]  # SQLModel sets it
    async with sessions() as session, session.begin():
        insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
        await session.execute(
            insert(table)
            .values(name=name, value=secrets.token_hex(32))
            .on_conflict_do_nothing(index_elements=[table.c.name])
        )
        value = await session.scalar(
            select(col(SecretRow.value)).where(col(SecretRow.name) == name)
        )
    return bytes.fromhex(str(value))
