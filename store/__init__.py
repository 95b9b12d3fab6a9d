"""vectorql's engine: Milvus adapter, SQL repositories, write protocol, filters, loaders.

Knows nothing of GraphQL or HTTP; configured with plain values through ``StoreConfig``. This is
the store's one public face: ``graph`` and ``resolvers`` import from here only (an import-linter
contract keeps it so).
"""

from store.codec import VectorFormatError, dumps_json, from_bytes, parse_vector
from store.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    LimitExceeded,
    NotFound,
    Problem,
    Unauthenticated,
    Unavailable,
    VectorqlError,
)
from store.filters import Filter, check_shape, parse_filter
from store.instruments import SECONDS_BUCKETS, Instruments
from store.keys import ApiKeys, KeyInfo, Scope, StoredKey, parse_key, secret_matches
from store.loaders import Loaders
from store.milvus import MILVUS_TIMEOUT, lite_file_in_use
from store.records import (
    CollectionInfo,
    CollectionSpec,
    CollectionStats,
    Consistency,
    FieldSpec,
    FieldType,
    IndexSpec,
    IndexType,
    Metric,
    ModelSpec,
    RecordState,
    StoredRecord,
    UpsertOutcome,
)
from store.search import ScoredHit, SearchParams, SearchPlan
from store.service import Store, StoreConfig
from store.sql import SQL_POOL_SIZE, SqlPooler
from store.sql import ping as sql_ping
from store.sql.listing import Page, encode_cursor
from store.text import identifier_problem, shown, text_problem
from store.validation import validate_name
from store.writes import (
    DEFAULT_BATCH,
    Batch,
    BatchOutcome,
    ImportProgress,
    ImportSummary,
    IncomingRecord,
    ProgressCallback,
    ReconcileReport,
    decode_line,
    first_bad,
    import_batches,
    import_jsonl,
    record_errors,
)

__all__ = [
    "DEFAULT_BATCH",
    "MILVUS_TIMEOUT",
    "SECONDS_BUCKETS",
    "SQL_POOL_SIZE",
    "ApiKeys",
    "Batch",
    "BatchOutcome",
    "CollectionInfo",
    "CollectionSpec",
    "CollectionStats",
    "Conflict",
    "Consistency",
    "FieldSpec",
    "FieldType",
    "Filter",
    "Forbidden",
    "ImportProgress",
    "ImportSummary",
    "IncomingRecord",
    "IndexSpec",
    "IndexType",
    "Instruments",
    "InvalidInput",
    "KeyInfo",
    "LimitExceeded",
    "Loaders",
    "Metric",
    "ModelSpec",
    "NotFound",
    "Page",
    "Problem",
    "ProgressCallback",
    "ReconcileReport",
    "RecordState",
    "Scope",
    "ScoredHit",
    "SearchParams",
    "SearchPlan",
    "SqlPooler",
    "Store",
    "StoreConfig",
    "StoredKey",
    "StoredRecord",
    "Unauthenticated",
    "Unavailable",
    "UpsertOutcome",
    "VectorFormatError",
    "VectorqlError",
    "check_shape",
    "decode_line",
    "dumps_json",
    "encode_cursor",
    "first_bad",
    "from_bytes",
    "identifier_problem",
    "import_batches",
    "import_jsonl",
    "lite_file_in_use",
    "parse_filter",
    "parse_key",
    "parse_vector",
    "record_errors",
    "secret_matches",
    "shown",
    "sql_ping",
    "text_problem",
    "validate_name",
]
