"""The store: one object that owns the SQL engine and the Milvus connection, built from plain
configuration values (no settings object), so the app, the CLI, tests and benchmarks share it.

It can open while either backend is down: calls that need it raise ``Unavailable`` until it
answers. SQL tables are created the first time the database answers (``store.sqlsetup``)."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from store import database
from store.collections import Collections
from store.errors import Unavailable
from store.ingest import Writer
from store.instruments import Instruments
from store.keys import ApiKeys
from store.listing import Lister
from store.reads import Reader
from store.reconciler import Reconciler
from store.search import Searcher
from store.sqlsetup import SqlSetup
from store.vectors import VectorIndex

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class StoreConfig:
    milvus_uri: str
    database_url: str
    milvus_token: str | None = None
    milvus_timeout: float = 10.0
    sql_pool_size: int = 10
    flush_threshold: int = 10_000
    flush_idle: float = 5.0
    flush_idle_rows: int = 1_000


class Store:
    """Open with ``await Store.open(config)``; close with ``await store.close()``."""

    def __init__(
        self,
        *,
        config: StoreConfig,
        engine: AsyncEngine,
        vectors: VectorIndex,
        instruments: Instruments | None = None,
    ) -> None:
        self.config = config
        self.engine = engine
        # Small reads of a SQLite file run inline on the event loop (store.database).
        self.inline_engine = database.make_inline_engine(config.database_url)
        self.instruments = instruments or Instruments()
        for sync_engine in self.sql_engines:
            self.instruments.watch_sql_errors(sync_engine)
        self.sql = SqlSetup(engine)  # every session waits for the tables
        self.sessions: async_sessionmaker[AsyncSession] = database.sessionmaker(
            engine, gate=self.sql
        )
        self.vectors = vectors
        self.collections = Collections(sessions=self.sessions, vectors=vectors)
        self.writer = Writer(
            sessions=self.sessions,
            vectors=vectors,
            flush_threshold=config.flush_threshold,
            flush_idle=config.flush_idle,
            flush_idle_rows=config.flush_idle_rows,
            instruments=self.instruments,
        )
        self.reader = Reader(sessions=self.sessions, inline=self.inline_engine)
        self.lister = Lister(sessions=self.sessions)
        self.keys = ApiKeys(sessions=self.sessions)
        self.searcher = Searcher(vectors=vectors)
        self.reconciler = Reconciler(
            sessions=self.sessions,
            vectors=vectors,
            collections=self.collections,
            writer=self.writer,
            instruments=self.instruments,
        )

    @classmethod
    async def open(
        cls,
        config: StoreConfig,
        *,
        connect_milvus: bool = True,
        require_sql: bool = True,
        instruments: Instruments | None = None,
    ) -> Store:
        """``require_sql``: raise ``Unavailable`` (its message one line for an operator: which
        database, what to do) when the SQL database does not answer; otherwise open anyway, and
        ``store.sql.ready`` says whether the tables exist yet (``store.sql.wait_ready`` retries).
        ``instruments``: where spans and metrics go (default: nowhere)."""
        instruments = instruments or Instruments()
        engine = database.make_engine(config.database_url, pool_size=config.sql_pool_size)
        vectors = VectorIndex(
            uri=config.milvus_uri,
            token=config.milvus_token,
            timeout=config.milvus_timeout,
            instruments=instruments,
        )
        store = cls(config=config, engine=engine, vectors=vectors, instruments=instruments)
        try:
            try:
                await store.sql.ensure()
            except Unavailable as e:
                if require_sql:
                    raise Unavailable(store.sql.problem or e.message) from e
            if connect_milvus:
                await vectors.connect()
        except BaseException:
            await store.close()
            raise
        return store

    @property
    def sql_engines(self) -> tuple[Engine, ...]:
        """Every engine statements run on (for instrumentation and statement counts)."""
        inline = () if self.inline_engine is None else (self.inline_engine,)
        return (self.engine.sync_engine, *inline)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    async def wait_for_sql(self, interval: float) -> None:
        """Retry until the tables exist (logging the problem once), then load the collections
        (skipped while Milvus is down: the reconciler loads them when it is back)."""
        await self.sql.wait_ready(interval)
        with contextlib.suppress(Unavailable):
            await self.load_collections()

    async def load_collections(self) -> None:
        """Load every registered collection (Milvus Lite reopens indexed collections unloaded).
        Multi-tenant collections whose Milvus collection predates tenant-scoped keys are first
        rebuilt from SQL by a reconciler pass, which takes as long as indexing their vectors."""
        stale = []
        for info in await self.collections.all():
            if await self.vectors.has_collection(info.name):
                if await self.reconciler.stale_key(info):
                    stale.append(info.name)
                    continue
                await self.vectors.ensure_loaded(info.milvus_name)
        if stale:
            log.warning("rebuilding Milvus collections keyed by id alone from SQL: %s", stale)
            report = await self.reconciler.run_once()
            if report.skipped:
                log.warning("another process holds the reconciler lease: it rebuilds them")

    async def close(self) -> None:
        await self.writer.close()
        await self.vectors.close()
        self.reader.close()
        if self.inline_engine is not None:
            self.inline_engine.dispose()
        await self.engine.dispose()
