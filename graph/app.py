"""The composition root: ``create_app(settings)`` builds the store, the telemetry, the schema and
the HTTP layer from one ``Settings`` and wires them together."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator, Sequence
from functools import partial

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles
from pydantic import SecretStr
from starlette.exceptions import HTTPException as StarletteHTTPException
from strawberry.extensions import DisableIntrospection

from graph.http import (
    ASSETS_PATH,
    AuthGate,
    BodySizeLimit,
    ExtensionFactory,
    Gatekeeper,
    OperationSpan,
    TelemetryMiddleware,
    VectorqlRouter,
    admitted,
    assets_directory,
    check_exposure,
    examples_directory,
    health_router,
    landing_router,
    limit_extensions,
    method_not_allowed,
    serving_line,
)
from graph.logs import configure_logging
from graph.schema import Context, LiveSchema, ProductionErrors, TypedSchemas, build_schema
from graph.settings import Settings
from graph.telemetry import Telemetry, check_metrics, metrics_router, serves_metrics
from store import Embedder, Store, StoreConfig, Unavailable, local_engine

log = logging.getLogger("vectorql.app")


@contextlib.contextmanager
def local_milvus(settings: Settings) -> Iterator[Settings]:
    """``settings`` with a Milvus URI that names a server or a file: with ``local`` (the
    default) the managed engine of its data directory is claimed for the ``with`` block (started
    if no vectorql process runs it; stopped after if no other uses it) and its URI put in."""
    data_dir = settings.milvus_local_dir
    if data_dir is None:
        yield settings
        return
    with local_engine(data_dir, bin_dir=settings.milvus_bin_dir) as engine:
        token = SecretStr(engine.token) if engine.token else None
        yield settings.model_copy(update={"milvus_uri": engine.uri, "milvus_token": token})


def store_config(settings: Settings) -> StoreConfig:
    return StoreConfig(
        milvus_uri=settings.milvus_uri,
        milvus_token=settings.milvus_token.get_secret_value() if settings.milvus_token else None,
        milvus_timeout=settings.milvus_timeout,
        database_url=settings.database_url,
        sql_pool_size=settings.sql_pool_size,
        sql_pooler=settings.sql_pooler,
        flush_threshold=settings.flush_threshold,
        flush_idle=settings.flush_idle,
        flush_idle_rows=settings.flush_idle_rows,
        embedders=settings.embedder_specs,
        embed_window=settings.embed_batch_window_ms / 1000,
        embed_cache_size=settings.embed_cache_size,
    )


GRAPHQL_PATH = "/graphql"
BACKLOG_INTERVAL = 15.0  # seconds between reads of the reconciler backlog for OTLP export
SQL_RETRY_INTERVAL = 2.0  # seconds between attempts to reach a SQL database down at start


def create_app(
    settings: Settings,
    *,
    telemetry: Telemetry | None = None,
    embedders: Sequence[Embedder] | None = None,
) -> FastAPI:
    """``telemetry``: where traces and metrics go; by default built from ``settings`` and shut
    down with the app (one passed in is the caller's to shut down). ``embedders``: models to
    serve instead of those the settings name (tests share one loaded model; the caller's to
    close)."""
    for check in (check_exposure, check_metrics):  # raise InsecureSettings when not allowed
        if warning := check(settings):
            log.warning(warning)
    owns_telemetry = telemetry is None
    tel = telemetry or Telemetry.from_settings(settings)
    gatekeeper = Gatekeeper(settings)  # the key cache and rate-limit buckets of this app

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # `vectorql serve` claims the local engine before uvicorn and hands its workers the URI;
        # an app built some other way on the default claims it here (a blocking start).
        milvus = contextlib.ExitStack()
        resolved = await asyncio.to_thread(milvus.enter_context, local_milvus(settings))
        # Start without SQL or Milvus: /readyz reports which is down, calls answer UNAVAILABLE
        # and retry, and the SQL tables are created when the database first answers.
        try:
            store = await Store.open(
                store_config(resolved),
                connect_milvus=False,
                require_sql=False,
                instruments=tel.store,
                embedders=embedders,
            )
        except BaseException:
            await asyncio.to_thread(milvus.close)
            raise
        for engine in store.sql_engines:
            tel.instrument_engine(engine)
        try:
            await store.vectors.connect()
            if store.sql.ready:
                await store.load_collections()
        except Unavailable as e:
            log.warning("Milvus is not reachable at start-up: %s", e)
        app.state.store = store
        # Typed fields of the collections (graph.schema.typed.live): the generic schema serves
        # until the first read of the version, which this task repeats every second.
        schemas = asyncio.create_task(live.follow(store), name="schemas")
        sql = None
        if not store.sql.ready:
            sql = asyncio.create_task(store.wait_for_sql(SQL_RETRY_INTERVAL), name="sql")
        reconciler = None
        if settings.reconcile_interval > 0:
            reconciler = asyncio.create_task(
                store.reconciler.run_forever(settings.reconcile_interval), name="reconciler"
            )
        statistics = None
        if settings.statistics_interval > 0:  # PostgreSQL's planner statistics (not SQLite's)
            statistics = asyncio.create_task(
                store.keep_statistics_fresh(settings.statistics_interval), name="statistics"
            )
        warmup = None
        if settings.embed_warmup:
            warmup = asyncio.create_task(_warm(store), name="embedders")
        backlog = None
        if tel.pushes_metrics:  # the OTLP reader reads the backlog gauge on its own schedule
            backlog = asyncio.create_task(
                tel.refresh_backlog_forever(store, BACKLOG_INTERVAL), name="backlog"
            )
        log.info(serving_line(settings, graphql_path=GRAPHQL_PATH))
        try:
            yield
        finally:
            for task in (sql, reconciler, statistics, backlog, warmup, schemas):
                if task is not None:
                    task.cancel()
                    try:
                        await task
                    except asyncio.CancelledError:
                        pass
                    except Exception:  # the store and Milvus must still close
                        log.exception("background task %s failed", task.get_name())
            await store.close()
            await asyncio.to_thread(milvus.close)
            if owns_telemetry:
                await asyncio.to_thread(tel.shutdown)  # flushes exporters: may block a moment

    app = FastAPI(
        title="vectorql",
        description="GraphQL API for embeddings: collections, ingestion and similarity search.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None if settings.production else "/openapi.json",
    )
    app.state.settings = settings
    app.add_exception_handler(StarletteHTTPException, method_not_allowed(GRAPHQL_PATH))

    async def get_context(request: Request) -> Context:
        return Context(
            store=request.app.state.store,
            settings=settings,
            caller=admitted(request.scope),
            name_check=live.typed.check,
        )

    extensions: list[ExtensionFactory] = []
    if settings.production:
        extensions.append(ProductionErrors)  # first: it sees the errors after ErrorMapping
    if not settings.introspection_enabled:
        extensions.append(DisableIntrospection)
    generic = build_schema(
        extensions=[
            *extensions,
            *limit_extensions(settings),
            partial(OperationSpan, tracer=tel.tracer),
        ],
        max_batched_operations=settings.max_batched_operations,
    )
    live = LiveSchema(TypedSchemas(generic))
    app.state.schemas = live
    graphql = VectorqlRouter(
        generic,
        live=live,
        context_getter=get_context,
        graphql_ide="graphiql" if settings.graphiql_enabled else None,
        allow_queries_via_get=True,  # queries only: a GET mutation is 405
    )
    app.include_router(graphql, prefix=GRAPHQL_PATH)
    if settings.graphiql_enabled:
        app.mount(ASSETS_PATH, StaticFiles(directory=assets_directory()), name="graphiql-assets")
    if settings.examples:
        examples = StaticFiles(directory=examples_directory(), html=True)
        app.mount("/examples", examples, name="examples")
    app.include_router(health_router())
    app.include_router(
        landing_router(graphql_path=GRAPHQL_PATH, graphiql=settings.graphiql_enabled)
    )
    if serves_metrics(settings):
        app.include_router(metrics_router(tel, token=settings.metrics_token))
    app.add_middleware(
        BodySizeLimit, max_bytes=settings.max_body_bytes, timeout=settings.body_timeout
    )
    # Outside the body limit: a request without a valid key is refused before its body is read.
    app.add_middleware(AuthGate, gatekeeper=gatekeeper, path=GRAPHQL_PATH)
    if settings.cors_origins:  # no CORS headers at all unless origins are configured
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type"],
            max_age=600,
        )
    # Added last, so it is the outermost middleware: its span and latency cover all the others.
    app.add_middleware(TelemetryMiddleware, telemetry=tel, graphql_path=GRAPHQL_PATH)
    return app


async def _warm(store: Store) -> None:
    """Load in-process models in the background: the API answers at once, and the first
    search by text does not pay for loading the model."""
    try:
        await store.embedders.warm()
    except Unavailable as e:
        log.warning("embedding model not loaded: %s", e)


def app_from_environment() -> FastAPI:
    """uvicorn factory for ``--workers``/``--reload``: settings come from the environment."""
    settings = Settings()
    configure_logging(level=settings.log_level, fmt=settings.log_format)
    return create_app(settings)
