"""What the store reports to OpenTelemetry: one tracer and the store's metric instruments.

Built from the providers the caller hands in (the app builds SDK providers from its settings; the
CLI, tests and benchmarks may pass nothing and get no-ops), so the store only ever uses the
OpenTelemetry API and never a process-global provider.

Spans: ``milvus <operation>`` for every Milvus call, ``loader <name>`` for each DataLoader batch,
``reconciler pass``. Attributes are sizes and names (collection, topK, nq, index type,
consistency, key counts), never vectors, filter values or credentials.

Metrics (Prometheus names as ``/metrics`` renders them):

- ``vectorql_backend_errors_total{backend}``: failed Milvus calls and SQL statements;
- ``vectorql_ingested_records_total{collection}``: records written (stored in SQL);
- ``vectorql_upsert_batch_size``: records per write;
- ``vectorql_loader_batch_size{loader}``: keys per DataLoader batch;
- ``vectorql_search_duration_seconds{collection,stage}``: stage ``milvus``, ``sql`` or ``total``;
- ``vectorql_embedding_duration_seconds{embedder,kind}``: one model call (kind ``query`` or
  ``record``), with a span ``embed <embedder>`` around it;
- ``vectorql_embedding_batch_size{embedder,kind}``: texts per model call;
- ``vectorql_embedding_cache_total{embedder,result}``: query texts found (``hit``) in the LRU or
  sent to the model (``miss``).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

from opentelemetry import metrics, trace
from sqlalchemy import Engine, event

SCOPE = "vectorql.store"

# Latency buckets from 1 ms to 30 s: Milvus Lite's floor is tens of ms, a server's a few ms.
SECONDS_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)
# Sizes from 1 to the largest upsert batch (max_batch_size is at most 100,000).
SIZE_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000, 50_000, 100_000)

BACKENDS = ("milvus", "sql")


class Instruments:
    """The store's tracer and instruments; no-ops unless providers are given."""

    def __init__(
        self,
        *,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
    ) -> None:
        tracer_provider = tracer_provider or trace.NoOpTracerProvider()
        meter = (meter_provider or metrics.NoOpMeterProvider()).get_meter(SCOPE)
        self.tracer = tracer_provider.get_tracer(SCOPE)
        self.backend_errors = meter.create_counter(
            "vectorql.backend.errors",
            unit="{error}",
            description="Failed Milvus calls and SQL statements, by backend.",
        )
        for backend in BACKENDS:
            # Series exist from the start, so rate() and alerts see a 0 rather than no data.
            self.backend_errors.add(0, {"backend": backend})
        self.ingested_records = meter.create_counter(
            "vectorql.ingested.records",
            unit="{record}",
            description="Records written (stored in SQL, then indexed), by collection.",
        )
        self.upsert_batch_size = meter.create_histogram(
            "vectorql.upsert.batch_size",
            unit="{record}",
            description="Records per write.",
            explicit_bucket_boundaries_advisory=SIZE_BUCKETS,
        )
        self.loader_batch_size = meter.create_histogram(
            "vectorql.loader.batch_size",
            unit="{key}",
            description="Keys per DataLoader batch (one SQL statement each).",
            explicit_bucket_boundaries_advisory=SIZE_BUCKETS,
        )
        self.search_duration = meter.create_histogram(
            "vectorql.search.duration",
            unit="s",
            description="Search latency by collection and stage (milvus, sql, total).",
            explicit_bucket_boundaries_advisory=SECONDS_BUCKETS,
        )

        self.embedding_duration = meter.create_histogram(
            "vectorql.embedding.duration",
            unit="s",
            description="One embedding model call, by embedder and kind (query, record).",
            explicit_bucket_boundaries_advisory=SECONDS_BUCKETS,
        )
        self.embedding_batch_size = meter.create_histogram(
            "vectorql.embedding.batch_size",
            unit="{text}",
            description="Texts per embedding model call.",
            explicit_bucket_boundaries_advisory=SIZE_BUCKETS,
        )
        self.embedding_cache = meter.create_counter(
            "vectorql.embedding.cache",
            unit="{text}",
            description="Query texts answered from the LRU (hit) or by the model (miss).",
        )

    def backend_error(self, backend: str) -> None:
        self.backend_errors.add(1, {"backend": backend})

    def ingested(self, collection: str, count: int) -> None:
        self.ingested_records.add(count, {"collection": collection})
        self.upsert_batch_size.record(count)

    def search_finished(
        self, collection: str, *, milvus_s: float, sql_s: float, total_s: float
    ) -> None:
        for stage, seconds in (("milvus", milvus_s), ("sql", sql_s), ("total", total_s)):
            self.search_duration.record(seconds, {"collection": collection, "stage": stage})

    @contextlib.contextmanager
    def embedding_call(self, embedder: str, *, kind: str, texts: int) -> Iterator[None]:
        """A span and the duration of one model call."""
        labels = {"embedder": embedder, "kind": kind}
        self.embedding_batch_size.record(texts, labels)
        start = time.perf_counter()
        with self.tracer.start_as_current_span(
            f"embed {embedder}",
            attributes={
                "vectorql.embedder": embedder,
                "vectorql.embedding.kind": kind,
                "vectorql.embedding.texts": texts,
            },
        ):
            try:
                yield
            finally:
                self.embedding_duration.record(time.perf_counter() - start, labels)

    def embedding_cache_lookups(self, embedder: str, *, hits: int, misses: int) -> None:
        if hits:
            self.embedding_cache.add(hits, {"embedder": embedder, "result": "hit"})
        if misses:
            self.embedding_cache.add(misses, {"embedder": embedder, "result": "miss"})

    @contextlib.contextmanager
    def loader_batch(self, loader: str, keys: int) -> Iterator[None]:
        """A span around one DataLoader batch, and its size."""
        self.loader_batch_size.record(keys, {"loader": loader})
        with self.tracer.start_as_current_span(
            f"loader {loader}", attributes={"vectorql.loader": loader, "vectorql.loader.keys": keys}
        ):
            yield

    def watch_sql_errors(self, engine: Engine) -> None:
        """Count every failed statement or connection attempt on ``engine``."""
        event.listen(engine, "handle_error", self._sql_error)

    def _sql_error(self, _context: Any) -> None:
        self.backend_error("sql")
