"""GraphQL over HTTP at ``/graphql``: the response media type, request errors and transport
errors, as the GraphQL-over-HTTP specification and its clients expect them.

- **Media type.** A client that accepts ``application/graphql-response+json`` gets it; any other
  client gets ``application/json`` (``response_media_type``).
- **Request errors** (the request failed before execution: parse, validation, variable coercion,
  a limit refused): with ``application/graphql-response+json`` they answer HTTP 400 (500 for an
  ``INTERNAL`` error) and the body has no ``data`` entry; with ``application/json`` they keep
  HTTP 200 and ``"data": null``, as before (``request_error_status``).
- **Transport errors.** Requests that never become an operation (a content type other than JSON,
  a body that is not a JSON object, no query, a mutation sent with GET) answer a JSON GraphQL
  error body with ``extensions.code`` ``BAD_USER_INPUT`` in the negotiated media type, keeping
  the HTTP status Strawberry chose (400), except a mutation over GET: 405 with ``Allow: POST``.
  Strawberry's router answers them as text/plain.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from cross_web import HTTPException
from fastapi import Request, Response
from fastapi.exception_handlers import http_exception_handler
from starlette.exceptions import HTTPException as StarletteHTTPException
from strawberry.schema.exceptions import InvalidOperationTypeError

from store import dumps_json, shown

TRANSPORT_CODE = "BAD_USER_INPUT"
JSON = "application/json"
GRAPHQL_RESPONSE = "application/graphql-response+json"


def response_media_type(accept: str | None) -> str:
    """``application/graphql-response+json`` when the ``Accept`` header allows it (q > 0), else
    ``application/json`` (also with no ``Accept`` at all, as the specification asks)."""
    for entry in (accept or "").split(","):
        media, *params = (part.strip() for part in entry.split(";"))
        if media.lower() != GRAPHQL_RESPONSE:
            continue
        quality = next((p[2:].strip() for p in params if p.lower().startswith("q=")), "1")
        try:
            if float(quality) > 0:
                return GRAPHQL_RESPONSE
        except ValueError:
            continue
    return JSON


def request_error_status(result: Mapping[str, object]) -> int | None:
    """The HTTP status of a result that failed before execution (no ``data``, and no error
    tied to a field path), or ``None`` for a result of an operation that ran."""
    errors = result.get("errors")
    if result.get("data") is not None or not isinstance(errors, list) or not errors:
        return None
    if any(not isinstance(e, Mapping) or e.get("path") for e in errors):
        return None  # a field error: execution started
    codes = {(e.get("extensions") or {}).get("code") for e in errors}
    return 500 if "INTERNAL" in codes else 400


def transport_error(error: HTTPException, *, media_type: str = JSON) -> Response:
    """The response to Strawberry's ``HTTPException``, with its status and reason."""
    status, headers = error.status_code, {}
    if isinstance(error.__cause__, InvalidOperationTypeError):
        # Only GET restricts the operation type; the specification asks for 405 there.
        status, headers = 405, {"Allow": "POST"}
    elif status == 405:
        headers = {"Allow": "GET, POST"}
    # The reason may quote the client (an unknown operation name), lone surrogates included.
    errors = [{"message": shown(error.reason), "extensions": {"code": TRANSPORT_CODE}}]
    document: dict[str, object] = {"errors": errors}
    if media_type == JSON:
        document = {"data": None, **document}
    return Response(
        dumps_json(document), status_code=status, media_type=media_type, headers=headers
    )


def method_not_allowed(path: str) -> Callable[[Request, Exception], Awaitable[Response]]:
    """An exception handler for the app: a method the GraphQL path does not serve (PUT, DELETE,
    ...) answers 405 with a JSON GraphQL error too; other paths keep FastAPI's answer."""

    async def handle(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if request.url.path.rstrip("/") != path or exc.status_code != 405:
            return await http_exception_handler(request, exc)
        media_type = response_media_type(request.headers.get("accept"))
        return transport_error(
            HTTPException(405, f"{request.method} is not served here: use GET or POST"),
            media_type=media_type,
        )

    return handle


def check_body(data: object) -> object:
    """A decoded request body that Strawberry can read: an object, or a list for a batch
    (Strawberry fails with an ``AttributeError``, a 500, on any other JSON value)."""
    if not isinstance(data, dict | list):
        raise HTTPException(400, "The request body must be a JSON object.")
    return data


__all__ = [
    "GRAPHQL_RESPONSE",
    "JSON",
    "TRANSPORT_CODE",
    "HTTPException",
    "check_body",
    "method_not_allowed",
    "request_error_status",
    "response_media_type",
    "transport_error",
]
