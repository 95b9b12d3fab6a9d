"""SQL, the system of record: SQLModel tables (never exported above the store), engines and
sessions, table set-up and migrations, record reads and listing.

- ``tables``: the tables and the tenant column's encoding.
- ``engines``: the async engine, the inline SQLite engine for small reads, sessions, table creation.
- ``sessions``: sessions that turn an unreachable database into ``Unavailable``.
- ``setup``: tables created the first time the database answers.
- ``migrations``: upgrades of tables made by earlier versions.
- ``reads`` and ``listing``: records by key, and pages of records by filter.
- ``candidates``: the rows (and vectors) a filtered search may return, for exact search.

``listing`` and ``candidates`` are imported by their paths: they use ``store.filters``, which
compiles filters over ``tables``, so exporting them here would make the two packages import each
other.
"""

from store.sql.engines import (
    SQL_POOL_SIZE,
    SqlPooler,
    make_engine,
    make_inline_engine,
    ping,
    sessionmaker,
)
from store.sql.reads import Reader
from store.sql.setup import SqlSetup
from store.sql.tables import utcnow

__all__ = [
    "SQL_POOL_SIZE",
    "Reader",
    "SqlPooler",
    "SqlSetup",
    "make_engine",
    "make_inline_engine",
    "ping",
    "sessionmaker",
    "utcnow",
]
