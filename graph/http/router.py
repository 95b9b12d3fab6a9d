"""The GraphQL endpoint: Strawberry's FastAPI router with vectorql's GraphiQL page, bounded JSON
decoding, and GraphQL over HTTP's media types and statuses."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from strawberry.fastapi import GraphQLRouter
from strawberry.http import GraphQLHTTPResponse
from strawberry.types.execution import ExecutionResult
from strawberry.types.unset import UNSET

from graph.http.graphiql import graphiql_html
from graph.http.limits import decode_json
from graph.http.transport import (
    JSON,
    HTTPException,
    check_body,
    request_error_status,
    response_media_type,
    transport_error,
)
from graph.schema import Context
from store import dumps_json

ASSETS_PATH = "/graphiql-assets"


class VectorqlRouter(GraphQLRouter[Context, None]):
    """Serves GraphiQL from vectorql's own static files (no CDN: it works offline), and
    GraphQL over HTTP with the media types and statuses of ``graph.http.transport``."""

    async def render_graphql_ide(self, request: Request) -> HTMLResponse:
        keys = request.app.state.settings.auth_mode == "apikey"  # placeholder key only then
        return HTMLResponse(
            graphiql_html(keys=keys, endpoint=request.url.path, assets_path=ASSETS_PATH)
        )

    def decode_json(self, data: str | bytes) -> object:
        return check_body(decode_json(data))  # bounded nesting: see graph.http.limits

    async def process_result(
        self, request: Request, result: ExecutionResult
    ) -> GraphQLHTTPResponse:
        response = await super().process_result(request, result)
        if response_media_type(request.headers.get("accept")) == JSON:
            return response
        status = request_error_status(response)
        if status is None:
            return response
        # Read back by ``run``, which sets the status of a single result.
        request.state.request_errors = [*getattr(request.state, "request_errors", []), status]
        return {key: value for key, value in response.items() if key != "data"}  # type: ignore[return-value]  # a TypedDict without one of its keys

    async def run(self, request: Any, context: Any = UNSET, root_value: Any = UNSET) -> Any:
        media_type = response_media_type(request.headers.get("accept"))
        try:
            response = await super().run(request, context=context, root_value=root_value)
        except HTTPException as e:  # answered as JSON GraphQL errors, not text/plain
            return transport_error(e, media_type=media_type)
        # A JSON result (not the GraphiQL page) in the media type the client asked for.
        is_result = isinstance(response, Response) and response.headers.get("content-type") == JSON
        if media_type != JSON and is_result:
            response.headers["content-type"] = media_type
            statuses = getattr(request.state, "request_errors", [])
            if len(statuses) == 1 and not response.body.startswith(b"["):  # a batch stays 200
                response.status_code = statuses[0]
        return response

    def encode_json(self, data: object) -> bytes:
        return dumps_json(data)
