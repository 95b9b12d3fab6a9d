"""Attacks on a real ``vectorql serve`` with API keys on, over HTTP: what a stranger can make the
server do before it knows who is calling, and what a caller's document can cost.

The time bounds are generous (they guard against seconds of stalled event loop, not
milliseconds); a concurrent ``/healthz`` probe checks that the loop stays responsive meanwhile.
Clients bind to different loopback addresses (127.0.0.x) to act as different client addresses.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.servers import ApiServer, serve_api

BODY_TIMEOUT = 2.0
STALL = 1.0  # the longest /healthz may take while an attack runs
FAST = 1.0  # the longest a refused attack may take
COLLECTIONS = {"query": "{ collections { name } }"}


@contextlib.contextmanager
def serve(data: Path, **settings: Any) -> Iterator[ApiServer]:
    """``vectorql serve`` with API keys on and an admin key, on a free loopback port."""
    with serve_api(
        data,
        admin_key=True,
        auth="apikey",
        body_timeout=BODY_TIMEOUT,
        reconcile_interval=0,
        **settings,
    ) as server:
        yield server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    # no model loading in the background: the memory checks below measure the request alone
    with serve(tmp_path_factory.mktemp("preauth"), embed_warmup=False) as running:
        yield running


_next_address = iter(range(10, 250))


def client(server: ApiServer, **kwargs: Any) -> httpx.AsyncClient:
    """A client from a loopback address of its own: to the server, another client address."""
    transport = httpx.AsyncHTTPTransport(local_address=f"127.0.0.{next(_next_address)}")
    return httpx.AsyncClient(base_url=server.url, transport=transport, timeout=60, **kwargs)


@contextlib.asynccontextmanager
async def responsive(server: ApiServer) -> AsyncIterator[list[float]]:
    """Probes ``/healthz`` every 50 ms meanwhile; yields the list of probe latencies."""
    latencies: list[float] = []
    stop = asyncio.Event()

    async def probe() -> None:
        async with client(server) as c:
            while not stop.is_set():
                start = time.perf_counter()
                assert (await c.get("/healthz")).status_code == 200
                latencies.append(time.perf_counter() - start)
                await asyncio.sleep(0.05)

    task = asyncio.create_task(probe())
    await asyncio.sleep(0.1)
    try:
        yield latencies
    finally:
        await asyncio.sleep(0.1)
        stop.set()
        await task
    assert latencies, "the probe never ran"
    assert max(latencies) < STALL, f"/healthz stalled {max(latencies):.2f} s"


def fragment_bomb(levels: int = 8, fanout: int = 10) -> str:
    """A few hundred bytes that spread to fanout**levels fields if walked naively."""
    fragments = " ".join(
        f"fragment F{i} on Query {{ " + " ".join([f"...F{i + 1}"] * fanout) + " }"
        for i in range(levels)
    )
    return f"query {{ ...F0 }} {fragments} fragment F{levels} on Query {{ __typename }}"


def error_of(response: httpx.Response) -> dict[str, Any]:
    assert response.headers["content-type"].startswith("application/json"), response.text
    body = response.json()
    assert body["data"] is None
    [error] = body["errors"]
    return dict(error)


async def timed_post(c: httpx.AsyncClient, **kwargs: Any) -> tuple[httpx.Response, float]:
    start = time.perf_counter()
    response = await c.post("/graphql", **kwargs)
    return response, time.perf_counter() - start


# -- nothing before authentication ----------------------------------------------------------------


async def test_a_fragment_bomb_without_a_key_costs_a_header_check(server: ApiServer) -> None:
    document = fragment_bomb()
    assert len(document) < 1000
    before = server.rss()
    async with responsive(server), client(server) as c:
        response, took = await timed_post(c, json={"query": document})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert error_of(response)["extensions"]["code"] == "UNAUTHENTICATED"
    assert took < FAST
    assert server.rss() - before < 50 * 2**20


async def raw_post(
    server: ApiServer, headers: dict[str, str], body: bytes, *, trickle: bool = False
) -> tuple[int, dict[str, Any], float]:
    """POST ``/graphql`` over a bare socket, sending the headers and then only ``body`` (a part
    of what they announce), then read the answer: (status, JSON body, seconds). With
    ``trickle``, one more byte follows every 0.2 s until the server answers."""
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    request = f"POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\n{head}\r\n".encode() + body
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    start = time.perf_counter()

    async def dribble() -> None:
        with contextlib.suppress(ConnectionError):
            for _ in range(200):
                await asyncio.sleep(0.2)
                writer.write(b" ")
                await writer.drain()

    chunks: list[bytes] = []

    async def read_to_end() -> None:
        while True:
            try:
                block = await reader.read(2**16)
            except ConnectionResetError:
                # The server closed with our unread body in its buffer, which resets the
                # connection after its answer: the answer read so far is all there is.
                if chunks:
                    return
                raise
            if not block:
                return
            chunks.append(block)

    dribbling = asyncio.create_task(dribble()) if trickle else None
    try:
        writer.write(request)
        await writer.drain()
        await asyncio.wait_for(read_to_end(), timeout=BODY_TIMEOUT + 20)
        answer = b"".join(chunks)
    finally:
        if dribbling is not None:
            dribbling.cancel()
        writer.close()
    took = time.perf_counter() - start
    status_line, _, rest = answer.partition(b"\r\n")
    payload = rest.split(b"\r\n\r\n", 1)[1]
    return int(status_line.split(b" ")[1]), json.loads(payload), took


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
async def test_a_32_mib_body_without_a_key_is_refused_unread(
    server: ApiServer, framing: str
) -> None:
    """The server answers after the headers and the first 64 KiB of a 32 MiB body: it did not
    wait for (let alone decode) the rest."""
    headers = {"Content-Type": "application/json"}
    if framing == "content-length":
        headers["Content-Length"] = str(32 * 2**20 - 1)
        first = b'{"variables": {"x": [' + b"[1], " * (64 * 1024 // 5)
    else:
        headers["Transfer-Encoding"] = "chunked"
        first = b"10000\r\n" + b"[" * 0x10000 + b"\r\n"
    before = server.rss()
    async with responsive(server):
        status, body, took = await raw_post(server, headers, first)
    assert status == 401
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert took < FAST
    assert server.rss() - before < 50 * 2**20


@pytest.mark.parametrize(
    "authorization",
    [None, "Basic dXNlcjpwYXNz", "Bearer vq_0123456789ab_" + "x" * 43, "Bearer " + "x" * 5000],
)
async def test_requests_without_a_valid_key_are_refused_with_a_json_error(
    server: ApiServer, authorization: str | None
) -> None:
    headers = {"authorization": authorization} if authorization else {}
    async with client(server) as c:
        for query in ("{ nosuchfield }", "not graphql at all {{{", fragment_bomb()):
            response = await c.post("/graphql", json={"query": query}, headers=headers)
            assert response.status_code == 401
            error = error_of(response)
            assert error["extensions"]["code"] == "UNAUTHENTICATED"
            assert "nosuchfield" not in error["message"]


async def test_requests_without_a_key_are_throttled_per_client_address(server: ApiServer) -> None:
    async with client(server) as stranger, client(server) as other:
        codes = [(await stranger.post("/graphql", json=COLLECTIONS)).status_code for _ in range(30)]
        assert codes[:20] == [401] * 20  # the default burst of refusals
        assert codes[-1] == 429
        throttled = await stranger.post("/graphql", json=COLLECTIONS)
        assert error_of(throttled)["extensions"]["code"] == "LIMIT_EXCEEDED"
        assert int(throttled.headers["retry-after"]) >= 1
        # Another address is not affected.
        assert (await other.post("/graphql", json=COLLECTIONS)).status_code == 401
        ok = await other.post("/graphql", json=COLLECTIONS, headers=bearer(server.key))
        assert ok.status_code == 200
        assert not ok.json().get("errors")


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


async def test_strangers_who_know_a_key_id_cannot_lock_it_out(tmp_path: Path) -> None:
    """A fresh server (no secret verified yet): wrong secrets for the real key id, sent from
    several addresses as fast as they are answered, never make the right secret fail."""
    with serve(tmp_path) as server:
        wrong = server.key[:-6] + ("A" * 6 if not server.key.endswith("A" * 6) else "B" * 6)

        async def guess() -> list[int]:
            async with client(server) as c:
                return [
                    (await c.post("/graphql", json=COLLECTIONS, headers=bearer(wrong))).status_code
                    for _ in range(25)
                ]

        async def owner() -> httpx.Response:
            await asyncio.sleep(0.5)  # while the guessing runs
            async with client(server) as c:
                return await c.post("/graphql", json=COLLECTIONS, headers=bearer(server.key))

        *guesses, right = await asyncio.gather(guess(), guess(), guess(), owner())
        assert right.status_code == 200, right.text
        assert not right.json().get("errors")
        for codes in guesses:
            assert set(codes) <= {401, 429}
            assert 429 in codes  # each guessing address got throttled


# -- walks of a document are linear, with a key ---------------------------------------------------


@pytest.mark.parametrize(
    "document",
    [
        fragment_bomb(),
        fragment_bomb(levels=30, fanout=2),
        # Aliases and depth hidden behind spreads.
        "query { ...A0 } "
        + " ".join(
            f"fragment A{i} on Query {{ a{i}: __typename ...A{i + 1} ...A{i + 1} }}"
            for i in range(40)
        )
        + " fragment A40 on Query { __typename }",
        "query { ...D0 } "
        + " ".join(
            f"fragment D{i} on Query {{ collections {{ name }} "
            + f"...D{i + 1} ...D{i + 1} ...D{i + 1} }}"
            for i in range(60)
        )
        + " fragment D60 on Query { __typename }",
    ],
    ids=["8x10", "30x2", "aliases", "fields"],
)
async def test_a_few_kb_document_with_a_key_is_refused_fast(
    server: ApiServer, document: str
) -> None:
    assert len(document) < 8000
    async with responsive(server), client(server) as c:
        response, took = await timed_post(c, json={"query": document}, headers=bearer(server.key))
    assert response.status_code in (200, 400)
    assert error_of(response)["extensions"]["code"] == "LIMIT_EXCEEDED"
    assert took < FAST


# -- bodies ---------------------------------------------------------------------------------------


async def test_a_chunked_body_over_the_limit_is_cut_off(tmp_path: Path) -> None:
    """With a key: a body without Content-Length that streams past the limit gets 413."""
    limit = 64 * 1024
    with serve(tmp_path, max_body_bytes=limit) as server:

        async def chunks() -> AsyncIterator[bytes]:
            yield b'{"query": "{ __typename }", "variables": {"x": "'
            for _ in range(10):
                yield b"x" * limit

        async with client(server) as c:
            try:
                response = await c.post(
                    "/graphql",
                    content=chunks(),
                    headers={**bearer(server.key), "content-type": "application/json"},
                )
            except httpx.WriteError:
                return  # closed while still sending: refused all the same
        assert response.status_code == 413
        assert error_of(response)["extensions"]["code"] == "LIMIT_EXCEEDED"


@pytest.mark.parametrize("authorized", [True, False], ids=["key", "no-key"])
async def test_a_slow_sender_is_cut_off(server: ApiServer, authorized: bool) -> None:
    """A body trickling in, a byte every 0.2 s, is answered 408 after the body timeout instead
    of holding the connection (without a key: 401 at once, the body never waited for)."""
    headers = {"Content-Type": "application/json", "Content-Length": "1000"}
    if authorized:
        headers["Authorization"] = f"Bearer {server.key}"
    status, body, took = await raw_post(server, headers, b'{"query": ', trickle=True)
    code = body["errors"][0]["extensions"]["code"]
    if authorized:
        assert (status, code) == (408, "LIMIT_EXCEEDED"), body
        # The timeout runs from the first read of the body; a loaded machine adds to the rest.
        assert BODY_TIMEOUT - 0.5 < took < BODY_TIMEOUT + 15
    else:
        assert (status, code) == (401, "UNAUTHENTICATED")
        assert took < FAST
