"""Requests to ``/graphql`` that never become an operation (GET, a content type other than JSON, a
body that is not a JSON object, no query) are answered like every other error: a JSON GraphQL
error body with ``extensions.code`` ``BAD_USER_INPUT``, keeping the HTTP status Strawberry chose
(400, or 405 for a method it does not serve). Strawberry's router answers them as text/plain."""

from __future__ import annotations

from cross_web import HTTPException
from fastapi import Response

from graph.http_errors import error_body
from store.text import shown

TRANSPORT_CODE = "BAD_USER_INPUT"


def transport_error(error: HTTPException) -> Response:
    """The response to Strawberry's ``HTTPException``, with its status and reason."""
    # The reason may quote the client (an unknown operation name), lone surrogates included.
    body = error_body(shown(error.reason), code=TRANSPORT_CODE)
    return Response(body, status_code=error.status_code, media_type="application/json")


def check_body(data: object) -> object:
    """A decoded request body that Strawberry can read: an object, or a list for a batch
    (Strawberry fails with an ``AttributeError``, a 500, on any other JSON value)."""
    if not isinstance(data, dict | list):
        raise HTTPException(400, "The request body must be a JSON object.")
    return data


__all__ = ["TRANSPORT_CODE", "HTTPException", "check_body", "transport_error"]
