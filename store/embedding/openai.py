"""The ``openai`` provider: any OpenAI-compatible ``POST /v1/embeddings`` endpoint (OpenAI,
Ollama, vLLM, text-embeddings-inference, LiteLLM) over an async httpx client.

Timeouts, connection failures and 5xx/429 answers are retried with exponential backoff and end in
``Unavailable``; a 400/413/422 names an input the endpoint refuses (``InvalidInput``); 401/403 is
a misconfigured key, the operator's problem, so ``Unavailable`` too. An answer with the wrong
number of vectors or the wrong dimension is never stored or searched with: ``Unavailable``.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from typing import Any

import httpx
import numpy as np

from store.embedding.spec import EmbedderSpec, FromSpec
from store.errors import InvalidInput, Unavailable

RETRIED_STATUSES = frozenset({429, 500, 502, 503, 504})
REFUSED_INPUT_STATUSES = frozenset({400, 413, 422})


class OpenAIEmbedder(FromSpec):
    provider = "openai"

    def __init__(
        self, spec: EmbedderSpec, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        assert spec.url is not None, "parse_embedders requires url"
        super().__init__(spec)
        url = spec.url.rstrip("/")
        self._url = url if url.endswith("/embeddings") else f"{url}/v1/embeddings"
        headers = {}
        if spec.api_key_env:
            # Read once at start: the key lives in the environment, never in the config.
            key = os.environ.get(spec.api_key_env)
            if key:
                headers["Authorization"] = f"Bearer {key}"
        self._client = httpx.AsyncClient(timeout=spec.timeout, headers=headers, transport=transport)

    async def load(self) -> None:
        return None  # nothing to load: the endpoint is asked on first use

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        parts = [
            await self._embed_batch(list(texts[start : start + self.batch_size]))
            for start in range(0, len(texts), self.batch_size)
        ]
        if not parts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.concatenate(parts)

    async def close(self) -> None:
        await self._client.aclose()

    async def _embed_batch(self, texts: list[str]) -> np.ndarray:
        body = {"model": self._spec.model, "input": texts}
        problem = "no attempt made"
        for attempt in range(self._spec.retries + 1):
            if attempt:
                await asyncio.sleep(self._spec.backoff * 2 ** (attempt - 1))
            try:
                response = await self._client.post(self._url, json=body)
            except httpx.TimeoutException:
                problem = f"no answer within {self._spec.timeout:g} s"
                continue
            except httpx.HTTPError as e:
                problem = f"{type(e).__name__}: {e}"
                continue
            if response.status_code in RETRIED_STATUSES:
                problem = f"HTTP {response.status_code}"
                continue
            return self._vectors(response, count=len(texts))
        raise Unavailable(
            f"embedder {self.name!r} did not answer after {self._spec.retries + 1} attempts "
            f"({problem})",
            extensions={"embedder": self.name},
        )

    def _vectors(self, response: httpx.Response, *, count: int) -> np.ndarray:
        status = response.status_code
        if status in REFUSED_INPUT_STATUSES:
            raise InvalidInput(
                f"embedder {self.name!r} refused the input (HTTP {status}): {response.text[:200]}",
                extensions={"embedder": self.name},
            )
        if status in (401, 403):
            raise Unavailable(
                f"embedder {self.name!r}: the endpoint refused the API key (HTTP {status}); "
                f"check {self._spec.api_key_env or 'the api_key_env setting'}",
                extensions={"embedder": self.name},
            )
        if status != 200:
            raise Unavailable(f"embedder {self.name!r}: HTTP {status}")
        try:
            data = _ordered(response.json())
            vectors = np.asarray(data, dtype=np.float32)
        except (ValueError, KeyError, TypeError) as e:
            raise Unavailable(f"embedder {self.name!r}: malformed answer ({e})") from e
        if vectors.ndim != 2 or vectors.shape[0] != count:
            raise Unavailable(
                f"embedder {self.name!r}: {count} texts sent, answer has shape {vectors.shape}"
            )
        if vectors.shape[1] != self.dimension:
            raise Unavailable(
                f"embedder {self.name!r}: answered {vectors.shape[1]}-d vectors, configured "
                f"dimension is {self.dimension}",
                extensions={"expected": self.dimension, "actual": int(vectors.shape[1])},
            )
        return vectors


def _ordered(payload: Any) -> list[list[float]]:
    """The embeddings in input order (the API gives each an ``index``)."""
    items = payload["data"]
    return [item["embedding"] for item in sorted(items, key=lambda item: item["index"])]
