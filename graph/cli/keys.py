"""``vectorql keys create | list | revoke``: the key repository opened from the server's settings
(SQL only: Milvus is not touched, so this works beside a running server on a Milvus Lite file)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import TypeVar

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from graph.app import store_config
from graph.settings import Settings
from store import KeyInfo, Store, VectorqlError

T = TypeVar("T")


def run_create(
    settings: Settings,
    *,
    scope: str,
    tenant: str | None,
    collections: Sequence[str] | None,
    name: str | None,
) -> int:
    err = Console(stderr=True, soft_wrap=True)
    created = _with_store(
        settings,
        lambda store: store.keys.create(
            scope=scope.lower(), tenant=tenant, collections=collections or None, name=name
        ),
        err,
    )
    if created is None:
        return 1
    # The key alone on stdout (scripts read it); the explanation on stderr.
    print(created.secret)
    err.print(
        f"created key {created.info.id}: {_describe(created.info)}. Store it now: only its "
        "hash is kept, it cannot be shown again. Send it as `Authorization: Bearer <key>`."
    )
    if settings.auth_mode == "off":
        err.print("note: auth is off for this configuration (VECTORQL_AUTH); keys are not checked")
    return 0


def run_list(settings: Settings, *, as_json: bool) -> int:
    err = Console(stderr=True, soft_wrap=True)
    keys = _with_store(settings, lambda store: store.keys.all(), err)
    if keys is None:
        return 1
    if as_json:
        for k in keys:
            print(json.dumps(_as_dict(k)))
        return 0
    columns = ("id", "name", "scope", "tenant", "collections", "created_at", "last_used_at")
    table = Table(*(c.replace("_at", "").replace("_", " ") for c in columns), "revoked")
    for k in keys:
        d = _as_dict(k)
        cells = [_cell(d[c]) for c in (*columns, "revoked_at")]
        table.add_row(*cells)
    out = Console(soft_wrap=True)
    if not out.is_terminal:  # piped: no terminal width to fit, keep every cell whole
        out.width = 240
    out.print(table)
    return 0


def run_revoke(settings: Settings, *, key_id: str) -> int:
    err = Console(stderr=True, soft_wrap=True)
    revoked = _with_store(settings, lambda store: store.keys.revoke(key_id), err)
    if revoked is None:
        return 1
    assert revoked.revoked_at is not None
    print(f"revoked key {revoked.id} at {revoked.revoked_at.isoformat(timespec='seconds')}")
    return 0


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return escape(", ".join(str(v) for v in value))
    return escape(str(value))


def _describe(k: KeyInfo) -> str:
    parts = [f"scope {k.scope.value}"]
    if k.tenant is not None:
        parts.append(f"tenant {k.tenant!r}")
    if k.collections is not None:
        parts.append(f"collections {', '.join(k.collections)}")
    return escape(", ".join(parts))


def _as_dict(k: KeyInfo) -> dict[str, object]:
    def ts(value: datetime | None) -> str | None:
        return value.isoformat(timespec="seconds") if value is not None else None

    return {
        "id": k.id,
        "name": k.name,
        "scope": k.scope.value,
        "tenant": k.tenant,
        "collections": list(k.collections) if k.collections is not None else None,
        "created_at": ts(k.created_at),
        "last_used_at": ts(k.last_used_at),
        "revoked_at": ts(k.revoked_at),
    }


def _with_store(settings: Settings, fn: Callable[[Store], Awaitable[T]], err: Console) -> T | None:
    async def main() -> T:
        store = await Store.open(store_config(settings), connect_milvus=False)
        try:
            return await fn(store)
        finally:
            await store.close()

    try:
        return asyncio.run(main())
    except VectorqlError as e:
        err.print(f"vectorql: {escape(e.message)}")
        return None
