"""Settings from ``VECTORQL_*`` environment variables (and ``.env``).

Built by the CLI or by tests; never instantiated at import time."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from resolvers.limits import Limits
from store import (
    EMBED_CACHE_SIZE,
    EMBED_WINDOW,
    LOCAL,
    MILVUS_TIMEOUT,
    SQL_POOL_SIZE,
    EmbedderConfigError,
    EmbedderSpec,
    SqlPooler,
    default_embedders,
    local_data_dir,
    parse_embedders,
)

ENV_PREFIX = "VECTORQL_"
LIMITS = Limits()  # the defaults of the limits the use cases enforce


class InsecureSettings(ValueError):
    """Settings that would expose data (auth off on an address others can reach, an unguarded
    metrics page), and that was not explicitly allowed."""


class Settings(BaseSettings):
    """Every setting has a working default: the managed Milvus standalone (or Milvus Lite) and
    SQLite under ``./data/``."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=".env", extra="ignore", frozen=True
    )

    # Stores
    milvus_uri: str = Field(
        LOCAL,
        description="local: a Milvus 2.3 standalone that vectorql runs itself, data in "
        "./data/milvus/ (local:DIR for another directory), or Milvus Lite at ./data/milvus.db "
        "where it cannot run or that file exists; a Milvus Lite file (*.db); or a server URI "
        "(http://host:19530).",
    )
    milvus_bin_dir: Path | None = Field(
        None,
        description="Where the managed standalone's binary is unpacked from the milvus package "
        "(default: ~/.cache/vectorql/milvus-VERSION/bin).",
    )
    milvus_token: SecretStr | None = Field(None, description="Milvus token (user:password).")
    milvus_timeout: float = Field(
        MILVUS_TIMEOUT, gt=0, le=600, description="Seconds per Milvus call."
    )
    database_url: str = Field(
        "sqlite+aiosqlite:///./data/vectorql.db",
        description="SQLAlchemy URL: sqlite+aiosqlite:///... or postgresql+asyncpg://...",
    )
    sql_pool_size: int = Field(
        SQL_POOL_SIZE, ge=1, le=1000, description="PostgreSQL connection pool size."
    )
    sql_pooler: SqlPooler = Field(
        "none",
        description="transaction: PostgreSQL is reached through PgBouncer (or another pooler) in "
        "transaction mode, so no prepared statement outlives its transaction.",
    )

    # Server
    host: str = Field("127.0.0.1", description="Address to bind.")
    port: int = Field(8000, ge=1, le=65535, description="Port to bind.")
    workers: int = Field(1, ge=1, le=64, description="uvicorn worker processes.")
    env: Literal["development", "production"] = Field(
        "development", description="production: no GraphiQL, no introspection, masked errors."
    )
    graphiql: bool | None = Field(None, description="Serve GraphiQL (default: on in development).")
    introspection: bool | None = Field(
        None, description="Allow introspection (default: on in development)."
    )
    cors_origins: list[str] = Field(default_factory=list, description="Allowed CORS origins.")
    examples: bool = Field(
        False, description="Serve the worked example page (examples/web) at /examples/."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO")
    log_format: Literal["auto", "json", "console"] = Field(
        "auto", description="auto: console on a terminal, JSON lines otherwise."
    )

    # Security
    auth: Literal["apikey", "off"] | None = Field(
        None, description="apikey or off (default: off on loopback, apikey elsewhere)."
    )
    allow_insecure: bool = Field(False, description="Allow auth=off on a non-loopback address.")
    # Above what one API process serves (a few hundred searches/s): the default guards against
    # a runaway client, not one busy frontend. With auth off no rate limit applies.
    rate_limit_per_second: float = Field(
        1000.0, ge=0, description="Requests/s per key and process (0 = off)."
    )
    rate_limit_burst: int = Field(2000, ge=1, description="Token bucket size per key.")
    auth_failure_rate: float = Field(
        1.0,
        ge=0,
        description="Refused requests/s per client address, once the burst is spent (0 = off).",
    )
    auth_failure_burst: int = Field(
        20, ge=1, description="Refused requests per client address before it is throttled."
    )
    key_cache_seconds: float = Field(
        2.0,
        ge=0,
        le=3600,
        description="Seconds a verified API key is trusted before its row is read again "
        "(a revoked key stops working within this time).",
    )

    # Limits
    max_top_k: int = Field(
        LIMITS.max_top_k, ge=1, le=16384, description="Largest topK (and offset + topK)."
    )
    max_batch_size: int = Field(
        LIMITS.max_batch_size, ge=1, le=100_000, description="Records per upsert."
    )
    max_search_batch: int = Field(
        LIMITS.max_search_batch, ge=1, le=10_000, description="Vectors per searchBatch."
    )
    max_body_bytes: int = Field(32 * 1024 * 1024, ge=1024, description="Request body limit.")
    body_timeout: float = Field(
        30.0, gt=0, le=3600, description="Seconds a client has to send a request body."
    )
    max_depth: int = Field(8, ge=1, le=64, description="GraphQL query depth limit.")
    max_aliases: int = Field(15, ge=1, le=1000, description="GraphQL aliases limit.")
    max_tokens: int = Field(2000, ge=10, le=100_000, description="GraphQL tokens limit.")
    max_cost: int = Field(50_000, ge=1, description="Query cost limit (see README).")
    max_filter_depth: int = Field(
        LIMITS.max_filter_depth, ge=1, le=64, description="Filter nesting limit."
    )
    max_filter_list: int = Field(
        LIMITS.max_filter_list, ge=1, le=100_000, description="Items in an in/notIn list."
    )
    max_page_size: int = Field(
        LIMITS.max_page_size, ge=1, le=100_000, description="Largest `first` in records."
    )
    max_batched_operations: int = Field(
        0,
        ge=0,
        le=100,
        description="Operations one request may batch as a JSON array; each is limited as a "
        "request of its own (0 = query batching off).",
    )

    # Write path
    flush_threshold: int = Field(
        10_000, ge=0, description="Unflushed rows per collection before a Milvus flush (0 = never)."
    )
    flush_idle: float = Field(
        5.0,
        ge=0,
        description=(
            "Seconds without writes after which a collection with at least flush_idle_rows "
            "unflushed rows is flushed (0 = never)."
        ),
    )
    flush_idle_rows: int = Field(
        1_000, ge=1, description="Unflushed rows that arm the idle flush (small trickles do not)."
    )
    reconcile_interval: float = Field(
        30.0, ge=0, description="Seconds between reconciler passes (0 = off)."
    )
    statistics_interval: float = Field(
        30.0,
        ge=0,
        description="Seconds between checks of PostgreSQL's planner statistics: tables changed "
        "past autovacuum's rule since their last analysis are ANALYZEd (0 = off).",
    )

    # Embedding
    embedders: str | None = Field(
        None,
        description=(
            "Embedding models, a JSON list or the path of a file holding one (README, Search by "
            "text); unset: the packaged all-MiniLM-L6-v2 when installed; [] for none."
        ),
    )
    embed_batch_window_ms: float = Field(
        EMBED_WINDOW * 1000,
        ge=0,
        le=1000,
        description="Milliseconds concurrent query texts wait to share a model call (0 = off).",
    )
    embed_cache_size: int = Field(
        EMBED_CACHE_SIZE, ge=0, description="Query texts each embedder keeps in its LRU."
    )
    embed_warmup: bool = Field(
        True, description="Load in-process models at start-up (in the background)."
    )

    # Telemetry
    otel_exporter: Literal["none", "console", "otlp-grpc", "otlp-http"] = Field(
        "none", description="Where traces and metrics go."
    )
    otel_endpoint: str | None = Field(None, description="OTLP endpoint.")
    metrics: bool = Field(True, description="Serve Prometheus metrics at /metrics.")
    metrics_token: SecretStr | None = Field(None, description="Bearer token for /metrics.")

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, v: str) -> str:
        if not v.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("must start with sqlite+aiosqlite:// or postgresql+asyncpg://")
        return v

    @field_validator("embedders")
    @classmethod
    def _known_embedders(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                parse_embedders(v)
            except EmbedderConfigError as e:
                raise ValueError(str(e)) from e
        return v

    @property
    def embedder_specs(self) -> tuple[EmbedderSpec, ...]:
        return default_embedders() if self.embedders is None else parse_embedders(self.embedders)

    @field_validator("milvus_uri")
    @classmethod
    def _known_milvus(cls, v: str) -> str:
        if local_data_dir(v) is not None:
            return v
        if not (v.endswith(".db") or v.startswith(("http://", "https://", "tcp://", "unix:"))):
            raise ValueError(
                "must be local (or local:DIR), a Milvus Lite file ending in .db, "
                "or an http(s):// URI"
            )
        return v

    @property
    def production(self) -> bool:
        return self.env == "production"

    @property
    def graphiql_enabled(self) -> bool:
        return self.graphiql if self.graphiql is not None else not self.production

    @property
    def introspection_enabled(self) -> bool:
        return self.introspection if self.introspection is not None else not self.production

    @property
    def milvus_is_lite_file(self) -> bool:
        return self.milvus_uri.endswith(".db")

    @property
    def milvus_local_dir(self) -> Path | None:
        """The data directory of the managed local engine, when the URI asks for it."""
        return local_data_dir(self.milvus_uri)

    @property
    def loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    @property
    def auth_mode(self) -> Literal["apikey", "off"]:
        if self.auth is not None:
            return self.auth
        return "off" if self.loopback else "apikey"


def describe_error(error: ValidationError | SettingsError) -> str:
    """One line naming the variable(s) at fault, for start-up failures."""
    if isinstance(error, SettingsError):
        # Raised before validation when a complex value (a list, say) is not valid JSON.
        found = re.search(r'field "([^"]+)"', str(error))
        name = ENV_PREFIX + found.group(1).upper() if found else "a setting"
        return f"invalid setting {name}: not valid JSON (lists are written as JSON, e.g. '[\"a\"]')"
    parts = []
    for e in error.errors():
        name = ENV_PREFIX + "_".join(str(p) for p in e["loc"]).upper()
        parts.append(f"{name}: {e['msg']}")
    return "invalid setting " + "; ".join(parts)
