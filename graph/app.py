"""The FastAPI application factory: ``create_app(settings)``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from strawberry.fastapi import GraphQLRouter

from graph.context import Context
from graph.graphiql import assets_directory, graphiql_html
from graph.health import health_router
from graph.schema import build_schema
from graph.settings import Settings
from store import Store, StoreConfig, Unavailable

log = logging.getLogger("vectorql.app")


def store_config(settings: Settings) -> StoreConfig:
    return StoreConfig(
        milvus_uri=settings.milvus_uri,
        milvus_token=settings.milvus_token.get_secret_value() if settings.milvus_token else None,
        milvus_timeout=settings.milvus_timeout,
        database_url=settings.database_url,
        sql_pool_size=settings.sql_pool_size,
        flush_threshold=settings.flush_threshold,
    )


ASSETS_PATH = "/graphiql-assets"


class VectorqlRouter(GraphQLRouter[Context, None]):
    """Serves GraphiQL from vectorql's own static files (no CDN: it works offline)."""

    async def render_graphql_ide(self, request: Request) -> HTMLResponse:
        return HTMLResponse(graphiql_html(endpoint=request.url.path, assets_path=ASSETS_PATH))


def create_app(settings: Settings) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = await Store.open(store_config(settings), connect_milvus=False)
        try:
            await store.vectors.connect()
            await store.load_collections()
        except Unavailable as e:
            # Start anyway: /readyz reports it and calls retry the connection.
            log.warning("Milvus is not reachable at start-up: %s", e)
        app.state.store = store
        reconciler = None
        if settings.reconcile_interval > 0:
            reconciler = asyncio.create_task(
                store.reconciler.run_forever(settings.reconcile_interval), name="reconciler"
            )
        try:
            yield
        finally:
            if reconciler is not None:
                reconciler.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reconciler
            await store.close()

    app = FastAPI(
        title="vectorql",
        description="GraphQL API for embeddings: collections, ingestion and similarity search.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None if settings.production else "/openapi.json",
    )
    app.state.settings = settings

    async def get_context(request: Request) -> Context:
        return Context(store=request.app.state.store, settings=settings)

    graphql = VectorqlRouter(
        build_schema(),
        context_getter=get_context,
        graphql_ide="graphiql" if settings.graphiql_enabled else None,
        allow_queries_via_get=False,
    )
    app.include_router(graphql, prefix="/graphql")
    if settings.graphiql_enabled:
        app.mount(ASSETS_PATH, StaticFiles(directory=assets_directory()), name="graphiql-assets")
    app.include_router(health_router())
    return app


def app_from_environment() -> FastAPI:
    """uvicorn factory for ``--workers``/``--reload``: settings come from the environment."""
    return create_app(Settings())
