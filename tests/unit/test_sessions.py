"""Which SQL failures are outages (``Unavailable``) and which are not, without I/O: the errors
are built as the drivers and SQLAlchemy raise them."""

from __future__ import annotations

import sqlite3

import asyncpg.exceptions as pg
import pytest
from sqlalchemy import exc as sa

from store.errors import InvalidInput, Unavailable
from store.sql.sessions import sql_unavailable


def wrapped(cls: type[sa.DBAPIError], orig: BaseException, **kw: bool) -> sa.DBAPIError:
    """``orig`` as SQLAlchemy wraps a driver error, raised ``from`` it as SQLAlchemy does."""
    try:
        raise cls("SELECT 1", None, orig, **kw) from orig
    except sa.DBAPIError as e:
        return e


OUTAGES = {
    "connection refused (asyncpg connecting)": ConnectionRefusedError(111, "Connect call failed"),
    "connection reset": ConnectionResetError(104, "reset by peer"),
    "connect timeout": TimeoutError(),
    "pool timeout": sa.TimeoutError("QueuePool limit reached"),
    "sqlite cannot open the file": wrapped(
        sa.OperationalError, sqlite3.OperationalError("unable to open database file")
    ),
    "sqlite disk I/O": wrapped(sa.OperationalError, sqlite3.OperationalError("disk I/O error")),
    "sqlite locked": wrapped(sa.OperationalError, sqlite3.OperationalError("database is locked")),
    "server shut down (57P01)": wrapped(sa.DBAPIError, pg.AdminShutdownError("terminating")),
    "database dropped (3D000)": wrapped(sa.DBAPIError, pg.InvalidCatalogNameError("no such db")),
    "too many connections (53300)": wrapped(sa.DBAPIError, pg.TooManyConnectionsError("full")),
    "connection gone (08003)": pg.ConnectionDoesNotExistError("connection was closed"),
    "invalidated connection": wrapped(
        sa.DBAPIError, RuntimeError("lost"), connection_invalidated=True
    ),
    "interface error": wrapped(sa.InterfaceError, RuntimeError("connection is closed")),
}
NOT_OUTAGES = {
    "unique violation": wrapped(sa.IntegrityError, pg.UniqueViolationError("duplicate key")),
    "sqlite missing table (a bug)": wrapped(
        sa.OperationalError, sqlite3.OperationalError("no such table: vq_record")
    ),
    "sqlite syntax (a bug)": wrapped(
        sa.OperationalError, sqlite3.OperationalError('near "SELEC": syntax error')
    ),
    "a bug": ValueError("bad"),
    # Already typed: a Milvus outage inside a session block stays a Milvus outage.
    "milvus unavailable": Unavailable("Milvus upsert failed"),
    "bad input": InvalidInput("nope"),
}


@pytest.mark.parametrize("case", list(OUTAGES))
def test_an_unreachable_database_is_unavailable_naming_sql(case: str) -> None:
    outage = sql_unavailable(OUTAGES[case])
    assert isinstance(outage, Unavailable)
    assert outage.code == "UNAVAILABLE"
    assert outage.message.startswith("the SQL database is not reachable (")
    assert outage.extensions == {"backend": "sql"}


@pytest.mark.parametrize("case", list(NOT_OUTAGES))
def test_other_failures_are_left_alone(case: str) -> None:
    assert sql_unavailable(NOT_OUTAGES[case]) is None


def test_a_milvus_outage_caused_by_a_socket_error_is_not_reported_as_sql() -> None:
    with pytest.raises(Unavailable) as caught:
        raise Unavailable("Milvus search failed") from ConnectionRefusedError(111, "refused")
    assert sql_unavailable(caught.value) is None


def test_the_message_names_the_failure_but_not_the_address() -> None:
    outage = sql_unavailable(ConnectionRefusedError(111, "Connect call failed ('10.0.0.5', 5432)"))
    assert outage is not None
    assert "ConnectionRefusedError" in outage.message
    assert "10.0.0.5" not in outage.message
