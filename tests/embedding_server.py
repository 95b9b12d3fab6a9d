"""A small OpenAI-compatible embeddings endpoint (``POST /v1/embeddings``) serving the local
model, on a free loopback port in a thread, for the ``openai`` provider's tests and the
benchmark. Its behaviour is set per test: the API key it wants, a delay, a number of 503s to
answer first, vectors cut to another dimension."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse


@dataclass
class Behaviour:
    api_key: str | None = None
    delay: float = 0.0
    fail_next: int = 0  # answer this many requests with 503 first
    dimension: int | None = None  # cut vectors to this many numbers
    requests: int = 0


@dataclass(frozen=True)
class EmbeddingServer:
    url: str
    behaviour: Behaviour


def embeddings_app(embedder: Any, behaviour: Behaviour) -> FastAPI:
    app = FastAPI()

    @app.post("/v1/embeddings")
    async def embeddings(request: Request) -> JSONResponse:
        behaviour.requests += 1
        wanted = behaviour.api_key
        if wanted is not None and request.headers.get("authorization") != f"Bearer {wanted}":
            return JSONResponse({"error": {"message": "invalid api key"}}, status_code=401)
        if behaviour.fail_next > 0:
            behaviour.fail_next -= 1
            return JSONResponse({"error": {"message": "overloaded"}}, status_code=503)
        if behaviour.delay:
            await asyncio.sleep(behaviour.delay)
        body = await request.json()
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        if any(not t for t in texts):  # as OpenAI's API answers an empty string
            return JSONResponse({"error": {"message": "empty input"}}, status_code=400)
        vectors = await embedder.embed(texts)
        if behaviour.dimension is not None:
            vectors = vectors[:, : behaviour.dimension]
        data = [
            {"object": "embedding", "index": i, "embedding": v.tolist()}
            for i, v in reversed(list(enumerate(vectors)))  # the index orders them, not the list
        ]
        return JSONResponse({"object": "list", "data": data, "model": body.get("model")})

    return app


@contextlib.contextmanager
def serve_embeddings(embedder: Any) -> Iterator[EmbeddingServer]:
    """The endpoint on 127.0.0.1 at a free port until the block ends."""
    behaviour = Behaviour()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = uvicorn.Config(
        embeddings_app(embedder, behaviour), host="127.0.0.1", port=port, log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="embedding-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the embedding test server did not start")
        time.sleep(0.02)
    try:
        yield EmbeddingServer(url=f"http://127.0.0.1:{port}", behaviour=behaviour)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
