"""The SQL database may be down when the store opens: its tables are created the first time it
answers, and every session waits for that.

``SqlSetup.ensure()`` runs before each session's first statement
(``store.sql.sessions.SqlSession``).
Until the tables exist it tries to create them, at most once per ``retry_after`` seconds (the
calls in between fail at once with the last failure, so a flood of requests during an outage does
not queue up behind connection timeouts), and raises ``Unavailable``: requests answer
``UNAVAILABLE`` and recover by themselves when the database is back. ``problem`` describes the
last failure for an operator in one line, naming the database and what to do
(``createdb <name>`` for one that does not exist). ``wait_ready`` keeps trying in the background,
logging that line once per change rather than a traceback per attempt.
"""

from __future__ import annotations

import asyncio
import logging
import time

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from store.errors import Unavailable
from store.sql.engines import create_tables
from store.sql.sessions import sql_unavailable

log = logging.getLogger(__name__)

MISSING_DATABASE = "3D000"  # SQLSTATE invalid_catalog_name: the database does not exist


class SqlSetup:
    """Creates the tables of ``engine`` once; ``ready`` when they exist."""

    def __init__(self, engine: AsyncEngine, *, retry_after: float = 1.0) -> None:
        self._engine = engine
        self._retry_after = retry_after
        self._lock = asyncio.Lock()
        self._ready = False
        self._failure: Unavailable | None = None
        self._failed_at = 0.0
        self.problem: str | None = None

    @property
    def ready(self) -> bool:
        return self._ready

    async def ensure(self) -> None:
        """Return once the tables exist; ``Unavailable`` while the database does not answer.
        Any other failure (a permission, a bug) is raised as it is."""
        if self._ready:
            return
        async with self._lock:
            if self._ready:
                return
            if self._failure is not None and time.monotonic() - self._failed_at < self._retry_after:
                raise self._failure
            try:
                await create_tables(self._engine)
            except Exception as e:
                outage = sql_unavailable(e)
                if outage is None:
                    raise
                self._failure, self._failed_at = outage, time.monotonic()
                self.problem = describe_outage(self._engine, e)
                raise outage from e
            self._ready, self._failure, self.problem = True, None, None

    async def wait_ready(self, interval: float) -> None:
        """Try every ``interval`` seconds until the tables exist, logging each new problem once
        (one line, no traceback) and the recovery."""
        logged: str | None = None
        while True:
            try:
                await self.ensure()
            except Exception as e:  # noqa: BLE001  (a grant may be fixed meanwhile: keep trying)
                problem = (
                    self.problem or str(e)
                    if isinstance(e, Unavailable)
                    else f"could not create the SQL tables ({type(e).__name__}: {e})"
                )
                if problem != logged:
                    logged = problem
                    log.warning("%s; retrying every %gs", problem.splitlines()[0], interval)
                await asyncio.sleep(interval)
                continue
            if logged is not None:
                log.warning("the SQL database %s answers again: tables ready", _where(self._engine))
            return


def describe_outage(engine: AsyncEngine, error: BaseException) -> str:
    """One line for an operator: which database, what went wrong, what to do."""
    url = engine.url
    cause = _driver_error(error)
    if getattr(cause, "sqlstate", None) == MISSING_DATABASE and url.database:
        options = [
            f"-h {url.host}" if url.host else "",
            f"-p {url.port}" if url.port else "",
            f"-U {url.username}" if url.username else "",
        ]
        createdb = " ".join(["createdb", *(o for o in options if o), url.database])
        return (
            f'the PostgreSQL database "{url.database}" does not exist on '
            f"{url.host or 'localhost'}:{url.port or 5432}: create it with `{createdb}` "
            "(vectorql then creates its tables in it)"
        )
    reason = f"{type(cause).__name__}: {cause}".strip().rstrip(":")
    return f"the SQL database {_where(engine)} is not reachable ({reason.splitlines()[0]})"


def _where(engine: AsyncEngine) -> str:
    return make_url(engine.url).render_as_string(hide_password=True)


def _driver_error(error: BaseException) -> BaseException:
    """The innermost error of the chain (the driver's own, for its SQLSTATE and message)."""
    seen = [error]
    current: BaseException | None = error
    while current is not None and len(seen) < 8:
        current = getattr(current, "orig", None) or current.__cause__
        if current is None or any(current is s for s in seen):
            break
        seen.append(current)
    return seen[-1]
