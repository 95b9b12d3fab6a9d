"""Liveness and readiness: ``/healthz`` answers while the process runs; ``/readyz`` asks SQL and
Milvus and answers 503 while either is unreachable, naming it (``unavailable: ["sql"]``) with
the reason in its check. Nothing is remembered between probes, so readiness recovers by
itself when the dependency is back. The SQL check also creates the tables of a database that was
down at start-up (``store.sql.setup``), and names a database that does not exist."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from store import Store, Unavailable, sql_ping

CHECK_TIMEOUT = 3.0


async def _check(probe: Callable[[], Awaitable[None]]) -> dict[str, Any]:
    start = time.perf_counter()
    try:
        await asyncio.wait_for(probe(), timeout=CHECK_TIMEOUT)
    except TimeoutError:
        status: dict[str, Any] = {"ok": False, "error": f"no answer within {CHECK_TIMEOUT:g}s"}
    except Exception as e:  # noqa: BLE001  (any failure means "not ready"; the reason is reported)
        status = {"ok": False, "error": f"{type(e).__name__}: {e}"[:500]}
    else:
        status = {"ok": True}
    status["latencyMs"] = round((time.perf_counter() - start) * 1000, 2)
    return status


class SqlNotReady(Exception):
    """The SQL database does not answer, or its tables could not be created yet."""


async def _sql_ready(store: Store) -> None:
    try:
        await store.sql.ensure()
    except Unavailable as e:
        raise SqlNotReady(store.sql.problem or e.message) from None
    await sql_ping(store.engine)


async def readiness(store: Store) -> tuple[bool, dict[str, Any]]:
    sql, milvus = await asyncio.gather(
        _check(lambda: _sql_ready(store)), _check(store.vectors.ping)
    )
    checks = {"sql": sql, "milvus": milvus}
    down = [name for name, check in checks.items() if not check["ok"]]
    body: dict[str, Any] = {"status": "unavailable" if down else "ready", "checks": checks}
    if down:
        body["unavailable"] = down  # which dependency: "sql", "milvus" or both
    return not down, body


def health_router() -> APIRouter:
    router = APIRouter()

    @router.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz", tags=["health"])
    async def readyz(request: Request) -> JSONResponse:
        ready, body = await readiness(request.app.state.store)
        return JSONResponse(body, status_code=200 if ready else 503)

    return router
