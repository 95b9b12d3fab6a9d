"""The store: one object that owns the SQL engine and the Milvus connection, built from plain
configuration values (no settings object), so the app, the CLI, tests and benchmarks share it.

It can open while either backend is down: calls that need it raise ``Unavailable`` until it
answers. SQL tables are created the first time the database answers (``store.sql.setup``)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from store.collections import Collections
from store.cursors import CursorSigner
from store.embedding import (
    EMBED_CACHE_SIZE,
    EMBED_WINDOW,
    Embedder,
    Embedders,
    EmbedderSpec,
    build_embedder,
)
from store.errors import Unavailable
from store.grouping import Grouper
from store.hybrid import HybridSearcher
from store.index import VectorIndex
from store.instruments import Instruments
from store.keys import ApiKeys
from store.milvus import MILVUS_THREADS, MILVUS_TIMEOUT, MilvusIndex
from store.search import Searcher
from store.sql import SQL_POOL_SIZE, Reader, SqlPooler, SqlSetup, statistics
from store.sql import engines as database
from store.sql.bm25 import KeywordSearcher
from store.sql.candidates import Candidates
from store.sql.listing import Lister
from store.writes import Flusher, Reconciler, Writer

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class StoreConfig:
    """The store's settings; each store default is written here (or in the constant named)."""

    milvus_uri: str
    database_url: str
    milvus_token: str | None = None
    milvus_timeout: float = MILVUS_TIMEOUT  # seconds per Milvus data call
    milvus_threads: int = MILVUS_THREADS
    sql_pool_size: int = SQL_POOL_SIZE
    sql_pooler: SqlPooler = "none"  # "transaction": PgBouncer or the like in transaction mode
    # Unflushed rows take Milvus's slow search path (docs/measurements.md, "store"): flush a
    # collection once this many are unflushed, or once writes pause for flush_idle seconds with
    # at least flush_idle_rows unflushed.
    flush_threshold: int = 10_000
    flush_idle: float = 5.0
    flush_idle_rows: int = 1_000
    # The embedding models this store runs (none unless configured; the app's settings add the
    # packaged model when it is installed), the micro-batching window in seconds (0: off) and
    # the query texts each keeps in its LRU.
    embedders: tuple[EmbedderSpec, ...] = ()
    embed_window: float = EMBED_WINDOW
    embed_cache_size: int = EMBED_CACHE_SIZE


class Store:
    """Open with ``await Store.open(config)``; close with ``await store.close()``."""

    def __init__(
        self,
        *,
        config: StoreConfig,
        engine: AsyncEngine,
        vectors: VectorIndex,
        instruments: Instruments | None = None,
        embedders: Sequence[Embedder] | None = None,
    ) -> None:
        self.config = config
        self.engine = engine
        # Small reads of a SQLite file run inline on the event loop (store.sql.engines).
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
            flusher=Flusher(
                vectors=vectors,
                threshold=config.flush_threshold,
                idle=config.flush_idle,
                idle_rows=config.flush_idle_rows,
            ),
            instruments=self.instruments,
        )
        self.reader = Reader(sessions=self.sessions, inline=self.inline_engine)
        self.lister = Lister(sessions=self.sessions)
        self.keys = ApiKeys(sessions=self.sessions)
        self.candidates = Candidates(sessions=self.sessions)
        self.searcher = Searcher(vectors=vectors, candidates=self.candidates)
        self.hybrid = HybridSearcher(
            vectors=self.searcher, keywords=KeywordSearcher(sessions=self.sessions)
        )
        self.grouper = Grouper(searcher=self.searcher, sessions=self.sessions)
        self.cursors = CursorSigner(sessions=self.sessions)
        self.embedders = Embedders(
            embedders if embedders is not None else [build_embedder(s) for s in config.embedders],
            window=config.embed_window,
            cache_size=config.embed_cache_size,
            instruments=self.instruments,
            owned=embedders is None,
        )
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
        vector_index: VectorIndex | None = None,
        embedders: Sequence[Embedder] | None = None,
    ) -> Store:
        """``vector_index``: the index to use instead of a ``MilvusIndex`` at
        ``config.milvus_uri`` (tests pass a failing or slow one). ``require_sql``: raise
        ``Unavailable`` (its message one line for an operator: which database, what to do) when
        the SQL database does not answer; otherwise open anyway, and
        ``store.sql.ready`` says whether the tables exist yet (``store.sql.wait_ready`` retries).
        ``instruments``: where spans and metrics go (default: nowhere). ``embedders``: the
        embedding models to use instead of those ``config.embedders`` names (a test session
        shares one loaded model between stores; they stay the caller's to close)."""
        instruments = instruments or Instruments()
        engine = database.make_engine(
            config.database_url, pool_size=config.sql_pool_size, pooler=config.sql_pooler
        )
        vectors = vector_index or MilvusIndex(
            uri=config.milvus_uri,
            token=config.milvus_token,
            timeout=config.milvus_timeout,
            threads=config.milvus_threads,
            instruments=instruments,
        )
        store = cls(
            config=config,
            engine=engine,
            vectors=vectors,
            instruments=instruments,
            embedders=embedders,
        )
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

    async def keep_statistics_fresh(self, interval: float) -> None:
        """On PostgreSQL, ANALYZE the tables that changed past autovacuum's rule, every
        ``interval`` seconds, forever (``store.sql.statistics``); returns at once on SQLite."""
        await statistics.keep_fresh(self.engine, interval)

    async def refresh_statistics(self) -> list[str]:
        """The same, once: the tables analyzed (benchmarks call it where serve would have)."""
        return await statistics.refresh_stale(self.engine)

    async def close(self) -> None:
        await self.embedders.close()
        await self.writer.close()
        await self.vectors.close()
        self.reader.close()
        if self.inline_engine is not None:
            self.inline_engine.dispose()
        await self.engine.dispose()
