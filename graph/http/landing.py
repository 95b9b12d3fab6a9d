"""``GET /``: where a person who opens the server's address in a browser should go."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, RedirectResponse, Response

from graph.settings import Settings


def landing_router(*, graphql_path: str, graphiql: bool) -> APIRouter:
    """With GraphiQL on, ``/`` redirects to it; otherwise it names the GraphQL endpoint."""
    router = APIRouter()

    @router.get("/", include_in_schema=False)
    async def landing() -> Response:
        if graphiql:
            return RedirectResponse(graphql_path, status_code=307)
        return JSONResponse({"service": "vectorql", "graphql": graphql_path})

    return router


def serving_line(settings: Settings, *, graphql_path: str) -> str:
    """The start-up line that tells where to point a browser or a client."""
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
    url = f"http://{host}:{settings.port}{graphql_path}"
    if settings.graphiql_enabled:
        return f"vectorql serves GraphQL at {url}: open it in a browser for GraphiQL"
    return f"vectorql serves GraphQL at {url}"
