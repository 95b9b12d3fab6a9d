"""SQL sessions that report an unreachable database as ``Unavailable``.

Every repository opens its sessions through the factory ``store.sql.engines.sessionmaker`` builds,
whose sessions are ``SqlSession``: a failure that escapes a session's ``async with`` block and
means "the database did not answer" (refused or lost connection, a pool or connect timeout, a
server shutting down, the database gone) leaves the store as ``Unavailable``, so the API answers
``UNAVAILABLE`` rather than a masked ``INTERNAL``. Any other failure (a bug, a constraint) passes
through unchanged. A session given a ``gate`` (``store.sql.setup.SqlSetup``) awaits it on entry,
so no statement runs before the tables exist.

The translation sits on the session rather than on the engine's ``handle_error`` event because
a refused connection is raised by the driver as a plain ``OSError`` that never reaches that event.
"""

from __future__ import annotations

import sqlite3
from types import TracebackType
from typing import Any, Protocol, Self

from sqlalchemy import exc as sa
from sqlalchemy.ext.asyncio import AsyncSession

from store.errors import Unavailable, VectorqlError

# SQLSTATE classes of a database that cannot serve: connection exceptions (08), insufficient
# resources (53: too many connections, disk full), operator intervention (57P: shutdown,
# cannot connect now, database dropped), and a database that does not exist (3D000).
UNAVAILABLE_SQLSTATES = ("08", "53", "57P", "3D000")
# SQLite reports some programming errors as OperationalError: those are bugs, not outages.
_SQLITE_BUGS = ("no such ", "syntax error", "has no column", "ambiguous column", "too many sql")
_MAX_CHAIN = 8


def sql_unavailable(error: BaseException) -> Unavailable | None:
    """``Unavailable`` when ``error`` (or what it wraps) means the database did not answer.

    A ``VectorqlError`` is already typed (a Milvus outage inside a session block stays one)."""
    if isinstance(error, VectorqlError):
        return None
    for cause in _chain(error):
        if _is_outage(cause):
            return Unavailable(
                f"the SQL database is not reachable ({type(cause).__name__}); retry shortly",
                extensions={"backend": "sql"},
            )
    return None


def _chain(error: BaseException) -> list[BaseException]:
    """``error``, the driver error it wraps and its causes, nearest first."""
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [error]
    while todo and len(seen) < _MAX_CHAIN:
        current = todo.pop(0)
        if current is None or any(current is s for s in seen):
            continue
        seen.append(current)
        if isinstance(current, sa.DBAPIError):
            todo.append(current.orig)
        todo.append(current.__cause__)
    return seen


def _is_outage(error: BaseException) -> bool:
    if isinstance(error, sa.DBAPIError) and error.connection_invalidated:
        return True
    if isinstance(error, sa.DisconnectionError | sa.TimeoutError):  # TimeoutError: the pool's
        return True
    if isinstance(error, sa.OperationalError | sa.InterfaceError | sqlite3.OperationalError):
        return not _sqlite_bug(error)
    sqlstate = getattr(error, "sqlstate", None)
    if isinstance(sqlstate, str) and sqlstate.startswith(UNAVAILABLE_SQLSTATES):
        return True
    if "connection is closed" in str(error):  # asyncpg's own InterfaceError, as SQLAlchemy reads it
        return True
    # Refused, reset or timed-out connections (asyncpg raises these unwrapped when it connects).
    return isinstance(error, OSError | TimeoutError)


def _sqlite_bug(error: BaseException) -> bool:
    orig = error.orig if isinstance(error, sa.DBAPIError) else error
    if not isinstance(orig, sqlite3.Error):
        return False
    message = str(orig).lower()
    return any(hint in message for hint in _SQLITE_BUGS)


class Gate(Protocol):
    async def ensure(self) -> None: ...


class SqlSession(AsyncSession):
    """An ``AsyncSession`` whose ``async with`` block turns a database outage into
    ``Unavailable`` (chained to the driver's error, which the logs keep)."""

    def __init__(self, *args: Any, gate: Gate | None = None, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self._gate = gate

    async def __aenter__(self) -> Self:
        if self._gate is not None:
            await self._gate.ensure()
        return self

    async def __aexit__(
        self,
        type_: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            await super().__aexit__(type_, value, traceback)
        except Exception as e:
            # Closing after a lost connection may fail too: report the outage, not the close.
            if (outage := sql_unavailable(e)) is None:
                raise
            raise outage from value or e
        if isinstance(value, Exception) and (outage := sql_unavailable(value)) is not None:
            raise outage from value
