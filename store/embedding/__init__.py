"""Embedding models: the server turns text into vectors with a collection's own model.

- ``spec``: ``EmbedderSpec``, configuration as plain values (``VECTORQL_EMBEDDERS``).
- ``protocol``: ``Embedder``, what the store asks of a model.
- ``sentence_transformers``: in process on CPU (the only importer of torch, lazily);
  ``openai``: any OpenAI-compatible ``/v1/embeddings`` endpoint.
- ``batcher``, ``cache``, ``served``: micro-batching, the query LRU, metrics and spans.
- ``registry``: ``Embedders``, the configured models by name.
- ``incoming``: records without vectors embedded before the write protocol starts.
"""

from store.embedding.incoming import NOT_EMBEDDED, embed_incoming, upsert_with_text
from store.embedding.openai import OpenAIEmbedder
from store.embedding.protocol import Embedder
from store.embedding.registry import EMBED_CACHE_SIZE, EMBED_WINDOW, Embedders, build_embedder
from store.embedding.sentence_transformers import SentenceTransformerEmbedder
from store.embedding.served import ServedEmbedder
from store.embedding.spec import (
    DEFAULT_MODEL,
    EmbedderConfigError,
    EmbedderSpec,
    default_embedders,
    parse_embedders,
)

__all__ = [
    "DEFAULT_MODEL",
    "EMBED_CACHE_SIZE",
    "EMBED_WINDOW",
    "NOT_EMBEDDED",
    "Embedder",
    "EmbedderConfigError",
    "EmbedderSpec",
    "Embedders",
    "OpenAIEmbedder",
    "SentenceTransformerEmbedder",
    "ServedEmbedder",
    "build_embedder",
    "default_embedders",
    "embed_incoming",
    "parse_embedders",
    "upsert_with_text",
]
