"""The SQL engines: one async engine per process (tables created if missing) and, for a SQLite
file, a synchronous engine for the small reads that run inline on the event loop."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlmodel import SQLModel

from store.codec import dumps_json
from store.sql import postings, tables  # noqa: F401  (registers the tables on SQLModel.metadata)
from store.sql.migrations import migrate
from store.sql.sessions import Gate, SqlSession

SQL_POOL_SIZE = 10  # PostgreSQL connections per process (and as many again on overflow)

# What sits between this process and PostgreSQL: nothing, or a pooler in transaction mode
# (PgBouncer's pool_mode=transaction, CloudNativePG's Pooler, pgcat, RDS Proxy).
SqlPooler = Literal["none", "transaction"]


def make_engine(
    url: str, *, pool_size: int = SQL_POOL_SIZE, pooler: SqlPooler = "none", echo: bool = False
) -> AsyncEngine:
    parsed = make_url(url)
    kwargs: dict[str, Any] = {"echo": echo, "json_serializer": _json_dumps}
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"timeout": 30}
    else:
        kwargs.update(pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)
        kwargs["connect_args"] = {"timeout": 10, "command_timeout": 30}
        if pooler == "transaction":
            kwargs["connect_args"].update(_TRANSACTION_POOLER_ARGS)
    engine = create_async_engine(url, **kwargs)
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    elif pooler == "none":  # behind a transaction pooler statements are unnamed: planned per run
        event.listen(engine.sync_engine, "connect", _postgres_settings)
    return engine


def _postgres_settings(dbapi_connection: Any, _record: Any) -> None:
    # PostgreSQL may keep one generic plan for a prepared statement after five runs: the
    # import's mark ran 20-40x slower on it (docs/measurements.md, "import"). Outside a
    # transaction, so a rollback cannot undo it; a SET, so a session-mode pooler passes it.
    dbapi_connection.run_async(lambda conn: conn.execute("SET plan_cache_mode = force_custom_plan"))


# Behind a pooler in transaction mode, consecutive transactions of one client connection run on
# different server connections, so no prepared statement may outlive its transaction. asyncpg's
# statement cache and SQLAlchemy's are off (a cached statement is missing on the next server
# connection: "prepared statement ... does not exist"), and SQLAlchemy prepares each statement
# unnamed (name ""), then runs it in the same transaction, on the same server connection. Named
# ones would collide between processes (asyncpg numbers them per process) or, named uniquely,
# pile up on the server connections (docs/measurements.md, "store").
_TRANSACTION_POOLER_ARGS: dict[str, Any] = {
    "statement_cache_size": 0,
    "prepared_statement_cache_size": 0,
    "prepared_statement_name_func": lambda: "",
}

INLINE_BUSY_SECONDS = 1.0


def make_inline_engine(url: str) -> Engine | None:
    """A synchronous engine on the same SQLite file as ``url``, for reads small enough to run on
    the event loop itself (``None`` for other databases and for ``:memory:``). A search's record
    lookup costs several times less CPU this way (``store.sql.reads.InlineConnection``) than
    through aiosqlite, whose every step (cursor, execute, fetch, close, rollback) is a hand-off to
    its thread and back (docs/measurements.md, "store").
    Readers of a WAL database never wait for the writer, so the loop is not held up by writes;
    a short busy timeout bounds the rare wait (a checkpoint restarting the log)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    engine = create_engine(
        parsed.set(drivername="sqlite+pysqlite"),
        json_serializer=_json_dumps,
        connect_args={"timeout": INLINE_BUSY_SECONDS, "check_same_thread": False},
    )
    event.listen(engine, "connect", _inline_pragmas)
    return engine


def _inline_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA query_only=ON")  # this engine only reads
    cursor.close()


def _json_dumps(value: Any) -> str:
    return dumps_json(value).decode()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers run beside the writer; busy_timeout waits for the lock instead of failing.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def sessionmaker(
    engine: AsyncEngine, *, gate: Gate | None = None
) -> async_sessionmaker[AsyncSession]:
    """``gate``: awaited as each session is entered (``store.sql.setup``: the tables exist)."""
    return async_sessionmaker(engine, class_=SqlSession, expire_on_commit=False, gate=gate)


# Serializes table creation across processes on PostgreSQL (an advisory lock key: "vql").
DDL_LOCK_KEY = 0x76716C
DDL_ATTEMPTS = 5
# What the loser of a race to create the same tables sees: the winner's table or type, or (SQLite
# in WAL mode) a write lock it cannot wait for from an older read snapshot.
_LOST_DDL_RACE = re.compile(r"already exists|duplicate key|database is locked", re.IGNORECASE)


async def create_tables(engine: AsyncEngine) -> None:
    """Create the missing tables, then bring tables of earlier versions up to date
    (``store.sql.migrations``). Safe to race: processes opening one fresh database at once
    (``--workers N``, several hosts) all start. PostgreSQL runs them one after the other on an
    advisory lock; on SQLite the loser of a race checks again and finds the winner's tables."""
    for attempt in range(1, DDL_ATTEMPTS + 1):
        try:
            async with engine.begin() as conn:
                if conn.dialect.name == "postgresql":
                    await conn.execute(
                        text("SELECT pg_advisory_xact_lock(:key)"), {"key": DDL_LOCK_KEY}
                    )
                await conn.run_sync(SQLModel.metadata.create_all)
            break
        except DBAPIError as e:
            if attempt == DDL_ATTEMPTS or not _LOST_DDL_RACE.search(str(e.orig)):
                raise
            await asyncio.sleep(0.05 * attempt)
    await migrate(engine, postgres_lock=DDL_LOCK_KEY)


async def ping(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


def dialect(engine: AsyncEngine) -> str:
    return engine.dialect.name
