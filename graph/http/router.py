"""The GraphQL endpoint: Strawberry's FastAPI router with vectorql's GraphiQL page, bounded JSON
decoding, and GraphQL over HTTP's media types and statuses."""

from __future__ import annotations

import logging
from contextvars import ContextVar
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from strawberry.fastapi import GraphQLRouter
from strawberry.http import GraphQLHTTPResponse
from strawberry.schema import BaseSchema
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
from graph.schema import VERSION_HEADER, Context, LiveSchema
from store import dumps_json

ASSETS_PATH = "/graphiql-assets"

log = logging.getLogger("vectorql.http")


class VectorqlRouter(GraphQLRouter[Context, None]):
    """Serves GraphiQL from vectorql's own static files (no CDN: it works offline), and
    GraphQL over HTTP with the media types and statuses of ``graph.http.transport``.

    With ``live``, each request runs on the schema that is current when it starts (pinned for
    the request, batches included, while a new one may be swapped in), after waiting for a newer
    one when the client says it has seen one; the response says which version answered."""

    def __init__(self, schema: BaseSchema, *, live: LiveSchema | None = None, **kwargs: Any):
        self._live = live
        self._pinned: ContextVar[BaseSchema | None] = ContextVar("vectorql_schema", default=None)
        super().__init__(schema, **kwargs)

    @property  # read per request: the live schema, pinned
    def schema(self) -> BaseSchema:
        pinned = self._pinned.get()
        if pinned is not None:
            return pinned
        return self._live.current if self._live is not None else self._schema

    @schema.setter
    def schema(self, value: BaseSchema) -> None:
        self._schema = value

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
        if self._live is None:
            return await self._run(request, context=context, root_value=root_value)
        live, store = self._live, request.app.state.store
        seen = request.headers.get(VERSION_HEADER, "")
        if seen.isdigit() and int(seen) > live.version:
            await live.at_least(store, int(seen))
        version = live.version
        token = self._pinned.set(live.current)
        try:
            response = await self._run(request, context=context, root_value=root_value)
        finally:
            self._pinned.reset(token)
        if live.changed_here(store):  # this request's DDL: its answer shows the new version
            try:
                await live.refresh(store)
            except Exception:  # the poll catches up; the answer stands
                log.warning("schema refresh after DDL failed", exc_info=True)
            version = live.version
        if isinstance(response, Response) and version >= 0:
            response.headers[VERSION_HEADER] = str(version)
        return response

    async def _run(self, request: Any, *, context: Any, root_value: Any) -> Any:
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
