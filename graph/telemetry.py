"""OpenTelemetry set-up: the tracer and meter providers of one app, built from its settings.

Nothing here touches OpenTelemetry's process-global providers. ``create_app`` builds a
``Telemetry`` and hands its providers down: to the store (``store.instruments.Instruments``), to the
SQL instrumentation of the store's engine, to the request middleware and the GraphQL extension
(``graph.http.instrumentation``); the app shuts it down when it stops. Tests build one with an
in-memory span exporter and pass it to ``create_app``.

- ``VECTORQL_OTEL_EXPORTER``: ``none`` (default: nothing leaves the process; spans are not
  recorded, but their trace ids still tie log lines together), ``console`` (spans and, every
  minute, metrics on stdout), ``otlp-grpc`` or ``otlp-http`` (to ``VECTORQL_OTEL_ENDPOINT``, else
  the standard ``OTEL_EXPORTER_OTLP_*`` variables, else localhost).
- ``VECTORQL_METRICS``: Prometheus text at ``GET /metrics``, behind ``Authorization: Bearer
  <VECTORQL_METRICS_TOKEN>`` when that is set. The page names every collection with its record
  counts, so in production with API keys on it is served only behind a token: without one, it
  is not served (a warning says why), and an explicit ``VECTORQL_METRICS=true`` refuses to
  start (``check_metrics``).
The standard ``OTEL_*`` variables (service name, resource attributes, sampler, export interval)
apply as usual.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
import random
from collections.abc import Iterable, Iterator, Sequence
from importlib import metadata

from fastapi import APIRouter, Request, Response
from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    MetricExporter,
    MetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import SpanLimits, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pydantic import SecretStr
from sqlalchemy import Engine

from graph.settings import ENV_PREFIX, InsecureSettings, Settings
from store import SECONDS_BUCKETS, Instruments, Store

log = logging.getLogger("vectorql.telemetry")

SCOPE = "vectorql.graph"
BACKLOG_TIMEOUT = 5.0
# Long SQL statements (a 500-row upsert) are cut in span attributes unless OTEL_* says otherwise.
ATTRIBUTE_LENGTH = 4096


class Telemetry:
    """One app's providers and the instruments of the API layer."""

    def __init__(
        self,
        *,
        tracer_provider: TracerProvider,
        meter_provider: MeterProvider,
        registry: CollectorRegistry | None = None,
        pushes_metrics: bool = False,
    ) -> None:
        self.tracer_provider = tracer_provider
        self.meter_provider = meter_provider
        self.registry = registry
        self.pushes_metrics = pushes_metrics
        self.tracer = tracer_provider.get_tracer(SCOPE)
        self.store = Instruments(tracer_provider=tracer_provider, meter_provider=meter_provider)
        meter = meter_provider.get_meter(SCOPE)
        self.requests = meter.create_counter(
            "vectorql.requests",
            unit="{request}",
            description="GraphQL requests by operation (root field) and outcome (ok or a code).",
        )
        self.request_duration = meter.create_histogram(
            "vectorql.request.duration",
            unit="s",
            description="GraphQL request latency (HTTP in to HTTP out) by operation and outcome.",
            explicit_bucket_boundaries_advisory=SECONDS_BUCKETS,
        )
        self._pending: dict[str, int] = {}
        meter.create_observable_gauge(
            "vectorql.reconciler.pending",
            callbacks=[self._observe_pending],
            unit="{record}",
            description="Records stored in SQL and not yet indexed in Milvus, by collection.",
        )
        self._sql_connections = meter.create_up_down_counter(
            "db.client.connections.usage",
            unit="{connection}",
            description="SQL connections in the pool, by state (idle, used).",
        )

    @classmethod
    def from_settings(
        cls, settings: Settings, *, span_exporter: SpanExporter | None = None
    ) -> Telemetry:
        """Providers for ``settings``; ``span_exporter`` (tests, benchmarks) receives every span
        synchronously as it ends, in addition to the configured exporter."""
        resource = _resource()
        processors: list[SpanProcessor] = [BatchSpanProcessor(e) for e in _span_exporters(settings)]
        if span_exporter is not None:
            processors.append(SimpleSpanProcessor(span_exporter))
        tracer_provider = TracerProvider(
            resource=resource,
            # Not recording when nothing exports: spans cost next to nothing, trace ids remain.
            sampler=None if processors else ALWAYS_OFF,
            span_limits=_span_limits(),
        )
        for processor in processors:
            tracer_provider.add_span_processor(processor)
        readers: list[MetricReader] = [
            PeriodicExportingMetricReader(e) for e in _metric_exporters(settings)
        ]
        registry = None
        if serves_metrics(settings):
            from opentelemetry.exporter.prometheus import PrometheusMetricReader

            registry = CollectorRegistry(auto_describe=True)
            readers.append(PrometheusMetricReader(scope_info_enabled=False, registry=registry))
        meter_provider = MeterProvider(resource=resource, metric_readers=readers)
        return cls(
            tracer_provider=tracer_provider,
            meter_provider=meter_provider,
            registry=registry,
            pushes_metrics=settings.otel_exporter != "none",
        )

    def instrument_engine(self, engine: Engine) -> None:
        """One span per SQL statement on ``engine`` (OpenTelemetry's SQLAlchemy instrumentation,
        attached to this engine only: its ``SQLAlchemyInstrumentor`` would patch
        ``create_engine`` process-wide)."""
        EngineTracer(  # type: ignore[no-untyped-call]  # the instrumentation has no annotations
            self.tracer_provider.get_tracer("vectorql.sql"),
            engine,
            self._sql_connections,
        )

    def request_finished(self, *, operation: str, outcome: str, seconds: float) -> None:
        labels = {"operation": operation, "outcome": outcome}
        self.requests.add(1, labels)
        self.request_duration.record(seconds, labels)

    # -- reconciler backlog ---------------------------------------------------------------------

    async def refresh_backlog(self, store: Store) -> None:
        """Re-read the pending rows per collection (a gauge reports the last values read)."""
        names = [c.name for c in await store.collections.all()]
        self._pending = await store.reconciler.pending_by_collection(names)

    async def refresh_backlog_forever(self, store: Store, interval: float) -> None:
        """For OTLP export, which reads the gauge on its own schedule."""
        with untraced():
            while True:
                await self._refresh_quietly(store)
                await asyncio.sleep(interval)

    async def _refresh_quietly(self, store: Store) -> None:
        try:
            await asyncio.wait_for(self.refresh_backlog(store), timeout=BACKLOG_TIMEOUT)
        except Exception as e:  # noqa: BLE001  (metrics are served with the last values read)
            log.warning("could not read the reconciler backlog: %s", e)

    def _observe_pending(self, _options: metrics.CallbackOptions) -> Iterable[metrics.Observation]:
        return [metrics.Observation(n, {"collection": c}) for c, n in self._pending.items()]

    # -- Prometheus -----------------------------------------------------------------------------

    async def prometheus_text(self, store: Store) -> bytes:
        assert self.registry is not None
        await self._refresh_quietly(store)
        return generate_latest(self.registry)

    def shutdown(self) -> None:
        """Flush and stop the exporters (blocking: call it off the event loop)."""
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()


@contextlib.contextmanager
def untraced() -> Iterator[None]:
    """Run under an unsampled parent: spans started inside (SQL, Milvus) are not recorded, rather
    than each becoming a trace of its own (health probes, scrapes, background reads)."""
    parent = NonRecordingSpan(
        SpanContext(
            trace_id=random.getrandbits(128) or 1,
            span_id=random.getrandbits(64) or 1,
            is_remote=False,
            trace_flags=TraceFlags(TraceFlags.DEFAULT),
        )
    )
    token = otel_context.attach(trace.set_span_in_context(parent))
    try:
        yield
    finally:
        otel_context.detach(token)


def _metrics_unguarded(settings: Settings) -> bool:
    """Metrics on in production with API keys, and no token: anyone could read the page."""
    return (
        settings.metrics
        and settings.production
        and settings.auth_mode == "apikey"
        and settings.metrics_token is None
    )


def serves_metrics(settings: Settings) -> bool:
    return settings.metrics and not _metrics_unguarded(settings)


def check_metrics(settings: Settings) -> str | None:
    """Raise ``InsecureSettings`` when ``/metrics`` was explicitly asked for in production with
    API keys and has no token; return the warning to log when it is left out by default."""
    if not _metrics_unguarded(settings):
        return None
    why = (
        "it names every collection with its record counts, and in production with API keys "
        f"it needs {ENV_PREFIX}METRICS_TOKEN (scrapers send Authorization: Bearer <token>)"
    )
    if "metrics" in settings.model_fields_set:
        raise InsecureSettings(
            f"refusing to serve /metrics ({ENV_PREFIX}METRICS=true) without a token: {why}. "
            f"Set {ENV_PREFIX}METRICS_TOKEN, or {ENV_PREFIX}METRICS=false."
        )
    return (
        f"/metrics is not served: {why}. Set {ENV_PREFIX}METRICS_TOKEN to serve it, or "
        f"{ENV_PREFIX}METRICS=false to silence this warning."
    )


def metrics_router(telemetry: Telemetry, *, token: SecretStr | None) -> APIRouter:
    router = APIRouter()
    expected = f"Bearer {token.get_secret_value()}".encode() if token else None

    @router.get("/metrics", tags=["telemetry"], include_in_schema=False)
    async def prometheus(request: Request) -> Response:
        if expected is not None:
            given = request.headers.get("authorization", "").encode()
            if not hmac.compare_digest(given, expected):
                return Response(
                    "metrics need Authorization: Bearer <VECTORQL_METRICS_TOKEN>\n",
                    status_code=401,
                    headers={"WWW-Authenticate": "Bearer"},
                    media_type="text/plain",
                )
        body = await telemetry.prometheus_text(request.app.state.store)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    return router


def _version() -> str:
    try:
        return metadata.version("vectorql")
    except metadata.PackageNotFoundError:
        return "unknown"


def _resource() -> Resource:
    resource = Resource.create({"service.version": _version()})
    # OTEL_SERVICE_NAME or OTEL_RESOURCE_ATTRIBUTES win; without them the service is "vectorql".
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: "vectorql"}))
    return resource


def _span_limits() -> SpanLimits:
    configured = any(
        v in os.environ
        for v in ("OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT", "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT")
    )
    return SpanLimits(max_span_attribute_length=None if configured else ATTRIBUTE_LENGTH)


def _otlp_http_endpoint(settings: Settings, path: str) -> str | None:
    if settings.otel_endpoint is None:
        return None  # the exporter reads OTEL_EXPORTER_OTLP_* or uses localhost:4318
    base = settings.otel_endpoint.rstrip("/")
    return base if base.endswith(path) else base + path


def _span_exporters(settings: Settings) -> Sequence[SpanExporter]:
    kind = settings.otel_exporter
    if kind == "console":
        return [ConsoleSpanExporter()]
    if kind == "otlp-grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return [OTLPSpanExporter(endpoint=settings.otel_endpoint)]
    if kind == "otlp-http":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
            OTLPSpanExporter as HttpSpanExporter,
        )

        return [HttpSpanExporter(endpoint=_otlp_http_endpoint(settings, "/v1/traces"))]
    return []


def _metric_exporters(settings: Settings) -> Sequence[MetricExporter]:
    kind = settings.otel_exporter
    if kind == "console":
        return [ConsoleMetricExporter()]
    if kind == "otlp-grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

        return [OTLPMetricExporter(endpoint=settings.otel_endpoint)]
    if kind == "otlp-http":
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
            OTLPMetricExporter as HttpMetricExporter,
        )

        return [HttpMetricExporter(endpoint=_otlp_http_endpoint(settings, "/v1/metrics"))]
    return []


__all__ = ["Telemetry", "check_metrics", "metrics_router", "serves_metrics", "untraced"]
