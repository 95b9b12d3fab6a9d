"""Writes: the write protocol of design.md section 3 and what keeps it whole.

- ``incoming``: step 1, a batch of records as clients send them, validated.
- ``protocol``: ``Writer``, steps 2-4 (SQL pending, Milvus upsert, SQL indexed) and deletes.
- ``rows``: the SQL of steps 2 and 4 per dialect (arrays on PostgreSQL, executemany on SQLite).
- ``flushing``: when Milvus is flushed after writes.
- ``reconciler``: makes Milvus agree with SQL after failures, crashes and restarts.
- ``lease``: the one lease implementation (the reconciler's pass, creation claims).
- ``lines`` and ``importer``: bulk import of JSON Lines through the same protocol.
"""

from store.writes.flushing import Flusher
from store.writes.importer import (
    DEFAULT_BATCH,
    BatchOutcome,
    ImportProgress,
    ImportSummary,
    ProgressCallback,
    import_batches,
    import_jsonl,
)
from store.writes.incoming import IncomingRecord, validate_records
from store.writes.lease import Lease, LeaseLost
from store.writes.lines import Batch, decode_line, first_bad, record_errors
from store.writes.protocol import Writer
from store.writes.reconciler import Reconciler, ReconcileReport

__all__ = [
    "DEFAULT_BATCH",
    "Batch",
    "BatchOutcome",
    "Flusher",
    "ImportProgress",
    "ImportSummary",
    "IncomingRecord",
    "Lease",
    "LeaseLost",
    "ProgressCallback",
    "ReconcileReport",
    "Reconciler",
    "Writer",
    "decode_line",
    "first_bad",
    "import_batches",
    "import_jsonl",
    "record_errors",
    "validate_records",
]
