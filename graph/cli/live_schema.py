"""``vectorql schema --live``: the SDL a running server serves, typed collections included, read
by introspection (what a client's code generator reads)."""

from __future__ import annotations

import httpx
from graphql import build_client_schema, get_introspection_query, print_schema

from graph.schema import VERSION_HEADER

TIMEOUT = 30.0


def live_sdl(url: str, *, api_key: str | None) -> tuple[str, str | None]:
    """The SDL served at ``url`` and its schema version (None when the server does not say)."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    response = httpx.post(
        url, json={"query": get_introspection_query()}, headers=headers, timeout=TIMEOUT
    )
    response.raise_for_status()
    body = response.json()
    if body.get("errors"):
        raise RuntimeError("; ".join(e.get("message", "") for e in body["errors"]))
    return print_schema(build_client_schema(body["data"])), response.headers.get(VERSION_HEADER)
