"""Listing records from SQL with a filter and an opaque keyset cursor (stable under inserts)."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from store.errors import InvalidInput
from store.filters import Filter, to_sql
from store.records import CollectionInfo, RecordState, StoredRecord
from store.sql.reads import RECORD_COLUMNS, to_record
from store.sql.tables import RecordRow, tenant_key

CURSOR_PREFIX = "vq1:"


def encode_cursor(id: str) -> str:
    return base64.urlsafe_b64encode((CURSOR_PREFIX + id).encode()).decode()


def decode_cursor(cursor: str) -> str:
    try:
        text = base64.urlsafe_b64decode(cursor.encode()).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidInput(f"invalid cursor {cursor[:40]!r}") from None
    if not text.startswith(CURSOR_PREFIX):
        raise InvalidInput(f"invalid cursor {cursor[:40]!r}")
    return text[len(CURSOR_PREFIX) :]


@dataclass(frozen=True, slots=True)
class Page:
    records: list[StoredRecord]
    has_next: bool
    total: int


class Lister:
    def __init__(self, *, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    def _conditions(
        self, info: CollectionInfo, where: Filter | None, tenant: str | None, dialect: str
    ) -> list[ColumnElement[bool]]:
        # The tenant is always bound (``NO_TENANT`` outside multi-tenant collections): pages
        # walk the (collection, tenant, id) primary key, and a cursor is an id within it.
        conditions: list[ColumnElement[bool]] = [
            col(RecordRow.collection) == info.name,
            col(RecordRow.tenant) == tenant_key(tenant),
            col(RecordRow.state) != RecordState.DELETING.value,
        ]
        if where is not None:
            conditions.append(to_sql(where, fields=info.fields, dialect=dialect))
        return conditions

    async def page(
        self,
        info: CollectionInfo,
        *,
        where: Filter | None,
        tenant: str | None,
        first: int,
        after: str | None,
    ) -> Page:
        async with self._sessions() as session:
            dialect = session.get_bind().dialect.name
            conditions = self._conditions(info, where, tenant, dialect)
            total = await session.scalar(select(func.count()).where(and_(*conditions)))
            if after is not None:
                conditions.append(col(RecordRow.id) > decode_cursor(after))
            rows = (
                await session.execute(
                    select(*RECORD_COLUMNS)
                    .where(and_(*conditions))
                    .order_by(col(RecordRow.id))
                    .limit(first + 1)
                )
            ).all()
        records = [to_record(r) for r in rows[:first]]
        return Page(records=records, has_next=len(rows) > first, total=int(total or 0))

    async def matching_ids(
        self, info: CollectionInfo, *, where: Filter, tenant: str | None, limit: int
    ) -> list[str]:
        async with self._sessions() as session:
            dialect = session.get_bind().dialect.name
            conditions = self._conditions(info, where, tenant, dialect)
            ids = (
                await session.scalars(
                    select(col(RecordRow.id))
                    .where(and_(*conditions))
                    .order_by(col(RecordRow.id))
                    .limit(limit)
                )
            ).all()
        return [str(i) for i in ids]
