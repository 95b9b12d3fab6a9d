"""GraphQL-shaped error responses sent straight from ASGI middleware, before GraphQL runs."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from starlette.types import Send

from store import dumps_json


def error_body(message: str, *, code: str, extensions: dict[str, Any] | None = None) -> bytes:
    error = {"message": message, "extensions": {"code": code, **(extensions or {})}}
    return dumps_json({"data": None, "errors": [error]})


async def send_error(
    send: Send,
    *,
    status: int,
    message: str,
    code: str,
    extensions: dict[str, Any] | None = None,
    headers: Iterable[tuple[bytes, bytes]] = (),
) -> None:
    """Answer with a JSON GraphQL error and close the connection: a request refused here may
    have a body that was never read."""
    body = error_body(message, code=code, extensions=extensions)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
