"""``vectorql import`` through a running server: the same batches, line numbers and summary as an
import into this process's store, written with the server's own ``upsertRecords``.

A Milvus Lite file opens in one process only, so while ``vectorql serve`` runs on the default
setup the command cannot open the store: it finds the server (``find_server``) and imports through
its API instead. Lines are read and checked as ``store.writes.importer`` reads them; each record
is then validated by the server, whose per-record errors (``UpsertResult.errors``, or the problems
of a ``BAD_USER_INPUT`` with ``atomic: true`` under ``--strict``) are mapped back to their lines.
Vectors go as base64 float32 (the compact form), except those this process cannot parse, which go
as they were so that the server names what is wrong with them in its own words.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from graph.app import GRAPHQL_PATH
from graph.settings import Settings
from store import (
    DEFAULT_BATCH,
    Batch,
    BatchOutcome,
    Conflict,
    Forbidden,
    ImportSummary,
    InvalidInput,
    LimitExceeded,
    NotFound,
    ProgressCallback,
    Unauthenticated,
    Unavailable,
    VectorFormatError,
    VectorqlError,
    decode_line,
    first_bad,
    import_batches,
    parse_vector,
    record_errors,
)

PROBE_TIMEOUT = 2.0
REQUEST_TIMEOUT = httpx.Timeout(300.0, connect=10.0)
RATE_LIMIT_RETRIES = 5

COLLECTION = """query VectorqlImportCollection($name: String!) {
  collection(name: $name) { name }
}"""
UPSERT = """mutation VectorqlImport(
  $collection: String!, $records: [RecordInput!]!, $atomic: Boolean!
) {
  upsertRecords(collection: $collection, records: $records, atomic: $atomic) {
    upserted
    errors { index message }
  }
}"""

_ERRORS: dict[str, type[VectorqlError]] = {
    "BAD_USER_INPUT": InvalidInput,
    "NOT_FOUND": NotFound,
    "CONFLICT": Conflict,
    "UNAUTHENTICATED": Unauthenticated,
    "FORBIDDEN": Forbidden,
    "UNAVAILABLE": Unavailable,
    "LIMIT_EXCEEDED": LimitExceeded,
}

ApiRecord = dict[str, Any]


def local_url(settings: Settings) -> str:
    """The GraphQL endpoint of a ``vectorql serve`` started with ``settings`` on this machine."""
    host = settings.host
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    elif ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.port}{GRAPHQL_PATH}"


def server_answers(url: str) -> bool:
    """Whether a server answers ``/healthz`` next to the GraphQL endpoint ``url``."""
    base = url.removesuffix("/").removesuffix(GRAPHQL_PATH)
    try:
        response = httpx.get(f"{base}/healthz", timeout=PROBE_TIMEOUT)
        return response.status_code == 200 and response.json().get("status") == "ok"
    except (httpx.HTTPError, ValueError, AttributeError):
        return False


def parse_api_line(raw: bytes) -> ApiRecord | str:
    """One JSON line as the variables of a ``RecordInput``, or why it cannot be one.

    What GraphQL would refuse for the whole request (a missing vector, an id that is not a
    string) is a bad line here; everything else is the server's to judge."""
    obj = decode_line(raw)
    if isinstance(obj, str):
        return obj
    if not isinstance(obj["id"], str):
        return "id must be a string"
    vector = obj.get("vector")
    if vector is None:
        return "vector is missing"
    # A vector this process cannot parse goes as it is: the server reports it as we would.
    with contextlib.suppress(VectorFormatError):
        obj["vector"] = base64.b64encode(parse_vector(vector).tobytes()).decode()
    return obj


def _api_id(record: ApiRecord) -> str | None:
    record_id = record.get("id")
    return record_id if isinstance(record_id, str) else None


class ApiClient:
    """Just enough of a GraphQL client for importing: errors come back as the store's errors,
    with the server's ``extensions`` (so ``InvalidInput`` keeps its ``problems``)."""

    def __init__(self, url: str, *, api_key: str | None) -> None:
        self.url = url
        headers = {"Content-Type": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._http = httpx.AsyncClient(headers=headers, timeout=REQUEST_TIMEOUT)

    async def close(self) -> None:
        await self._http.aclose()

    async def check_collection(self, name: str) -> None:
        data = await self.request(COLLECTION, {"name": name})
        if data.get("collection") is None:
            raise NotFound(f"collection {name!r} does not exist")

    async def upsert(
        self, collection: str, records: Sequence[ApiRecord], *, atomic: bool
    ) -> dict[str, Any]:
        variables = {"collection": collection, "records": list(records), "atomic": atomic}
        data = await self.request(UPSERT, variables)
        result: dict[str, Any] = data["upsertRecords"]
        return result

    async def request(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        body = orjson.dumps({"query": query, "variables": variables})
        for attempt in range(RATE_LIMIT_RETRIES + 1):
            try:
                response = await self._http.post(self.url, content=body)
            except httpx.HTTPError as e:
                raise Unavailable(f"no answer from {self.url} ({type(e).__name__}: {e})") from e
            if response.status_code == 429 and attempt < RATE_LIMIT_RETRIES:
                await asyncio.sleep(_retry_after(response))
                continue
            return _data_of(response, self.url)
        raise AssertionError("unreachable")  # pragma: no cover


def _retry_after(response: httpx.Response) -> float:
    try:
        return min(max(float(response.headers.get("Retry-After", "1")), 0.1), 30.0)
    except ValueError:
        return 1.0


def _data_of(response: httpx.Response, url: str) -> dict[str, Any]:
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        body = None
    if not isinstance(body, dict):
        raise Unavailable(f"{url} answered HTTP {response.status_code}, not a GraphQL response")
    errors = body.get("errors")
    if errors:
        first = errors[0] if isinstance(errors[0], dict) else {}
        extensions = dict(first.get("extensions") or {})
        code = str(extensions.pop("code", "INTERNAL"))
        message = str(first.get("message", f"HTTP {response.status_code}"))
        raise _ERRORS.get(code, VectorqlError)(message, extensions=extensions)
    data = body.get("data")
    if not isinstance(data, dict):
        raise Unavailable(f"{url} answered HTTP {response.status_code} without data")
    return data


@dataclass
class _ApiWriter:
    """Writes batches with ``upsertRecords``: ``atomic: false``, or with ``strict`` ``atomic:
    true`` and, when records are refused, again with the records before the first bad line."""

    client: ApiClient
    collection: str
    strict: bool

    async def __call__(self, batch: Batch[ApiRecord]) -> BatchOutcome:
        records = [r for _, r in batch.records]
        if not self.strict:
            result = await self._upsert(records, atomic=False)
            errors = ((e["index"], e["message"]) for e in result["errors"])
            return BatchOutcome(result["upserted"], record_errors(batch, errors, _api_id))
        try:
            result = await self._upsert(records, atomic=True)
        except InvalidInput as e:
            problems = [
                (p["index"], str(p.get("message", "")))
                for p in e.extensions.get("problems", [])
                if isinstance(p, dict) and isinstance(p.get("index"), int)
            ]
            if not problems:
                raise
            bad, stopped_at = first_bad(record_errors(batch, problems, _api_id), strict=True)
            assert stopped_at is not None
            before = [r for line, r in batch.records if line < stopped_at]
            written = (await self._upsert(before, atomic=True))["upserted"]
            return BatchOutcome(written, bad, stopped_at)
        bad, stopped_at = first_bad(list(batch.unparsed), strict=True)
        return BatchOutcome(result["upserted"], bad, stopped_at)

    async def _upsert(self, records: list[ApiRecord], *, atomic: bool) -> dict[str, Any]:
        if not records:
            return {"upserted": 0, "errors": []}
        return await self.client.upsert(self.collection, records, atomic=atomic)


async def import_through_api(
    client: ApiClient,
    *,
    path: str | os.PathLike[str],
    collection: str,
    batch_size: int = DEFAULT_BATCH,
    strict: bool = False,
    on_progress: ProgressCallback | None = None,
) -> ImportSummary:
    """Import a JSON Lines file through the server of ``client``; as
    ``store.writes.importer.import_jsonl`` but written with ``upsertRecords`` (the server flushes
    Milvus as it goes). Raises ``NotFound`` for an unknown collection before reading a line."""
    await client.check_collection(collection)
    return await import_batches(
        path,
        collection=collection,
        parse=parse_api_line,
        key=_api_id,
        write=_ApiWriter(client, collection, strict),
        batch_size=batch_size,
        strict=strict,
        on_progress=on_progress,
    )
