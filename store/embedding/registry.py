"""The embedders this server knows, by name; a collection's own is the one its ``model.name``
names."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from store.embedding.openai import OpenAIEmbedder
from store.embedding.protocol import Embedder
from store.embedding.sentence_transformers import SentenceTransformerEmbedder
from store.embedding.served import ServedEmbedder
from store.embedding.spec import EmbedderSpec
from store.errors import InvalidInput
from store.instruments import Instruments
from store.records import CollectionInfo, CollectionSpec

EMBED_WINDOW = 0.002  # seconds: a few ms of waiting buys whole batches under load
EMBED_CACHE_SIZE = 4096  # query texts per embedder


def build_embedder(spec: EmbedderSpec) -> Embedder:
    if spec.provider == "openai":
        return OpenAIEmbedder(spec)
    return SentenceTransformerEmbedder(spec)


class Embedders:
    """``owned``: close the providers with the store (providers passed in by a caller, such as a
    test session sharing one loaded model between apps, stay the caller's)."""

    def __init__(
        self,
        embedders: Sequence[Embedder],
        *,
        window: float = EMBED_WINDOW,
        cache_size: int = EMBED_CACHE_SIZE,
        instruments: Instruments | None = None,
        owned: bool = True,
    ) -> None:
        instruments = instruments or Instruments()
        self._served = {
            e.name: ServedEmbedder(e, window=window, cache_size=cache_size, instruments=instruments)
            for e in embedders
        }
        self._owned = owned

    def all(self) -> list[ServedEmbedder]:
        return list(self._served.values())

    def find(self, name: str) -> ServedEmbedder | None:
        return self._served.get(name)

    def for_collection(self, info: CollectionInfo) -> ServedEmbedder | None:
        """The collection's own model, when this server runs it."""
        return self.find(info.model.name) if info.model is not None else None

    def require(self, info: CollectionInfo) -> ServedEmbedder:
        found = self.for_collection(info)
        if found is None:
            model = f"model {info.model.name!r}" if info.model else "no model"
            raise InvalidInput(
                f"collection {info.name!r} has {model}, and this server has no embedder for it: "
                "send vectors, or create the collection with model.name naming one of "
                "Query.embedders",
                extensions={"embedders": sorted(self._served)},
            )
        return found

    def resolve(self, spec: CollectionSpec) -> CollectionSpec:
        """A new collection whose model is served here: its dimension is the model's (taken
        when omitted, refused when different)."""
        served = self.find(spec.model.name) if spec.model is not None else None
        if served is None:
            return spec
        if spec.dimension is None:
            return dataclasses.replace(spec, dimension=served.dimension)
        if spec.dimension != served.dimension:
            raise InvalidInput(
                f"dimension {spec.dimension} does not match embedder {served.name!r}, which "
                f"makes {served.dimension}-d vectors (omit dimension to take the model's)",
                extensions={"expected": served.dimension, "actual": spec.dimension},
            )
        return spec

    async def warm(self) -> None:
        """Load in-process models now rather than on the first request."""
        for served in self._served.values():
            await served.embedder.load()

    async def close(self) -> None:
        for served in self._served.values():
            await served.close()
            if self._owned:
                await served.embedder.close()
