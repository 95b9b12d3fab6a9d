"""A real PgBouncer (Debian's ``pgbouncer``) on loopback in front of the test PostgreSQL, in
transaction pooling mode, for the tests that run vectorql behind it (test_pgbouncer,
test_many_processes).

``start_pgbouncer(directory, upstream)`` writes a config into ``directory``, starts ``pgbouncer``
on a free loopback port and yields a handle whose ``url(database)`` is the SQLAlchemy URL of a
database through it; the process is stopped afterwards. PgBouncer refuses to run as root, so as
root it drops to the ``postgres`` user (``-u``), which must be able to read ``directory``.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from tests.servers import LOOPBACK, free_port

# Small on purpose: many client connections (every API process holds up to 2 x its pool size)
# share each server connection, which is the situation prepared statements break in.
DEFAULT_POOL_SIZE = 2


@dataclass(frozen=True)
class PgBouncer:
    port: int
    user: str
    process: subprocess.Popen[bytes]
    log: Path

    def url(self, database: str) -> str:
        """The SQLAlchemy URL of ``database`` through this PgBouncer."""
        return f"postgresql+asyncpg://{self.user}@{LOOPBACK}:{self.port}/{database}"

    def admin_dsn(self) -> str:
        """PgBouncer's admin console (SHOW POOLS, SHOW STATS; simple query protocol only)."""
        return f"postgresql://{self.user}@{LOOPBACK}:{self.port}/pgbouncer"


def pgbouncer_binary() -> str | None:
    return shutil.which("pgbouncer") or next(
        (p for p in ("/usr/sbin/pgbouncer",) if os.access(p, os.X_OK)), None
    )


@contextlib.contextmanager
def start_pgbouncer(
    directory: Path, upstream: str, *, pool_size: int = DEFAULT_POOL_SIZE
) -> Iterator[PgBouncer]:
    """PgBouncer in transaction mode on a free loopback port, forwarding every database to the
    PostgreSQL server of ``upstream`` (a ``postgresql+asyncpg://user@host:port/db`` URL; trust
    authentication, as the test PostgreSQL has)."""
    binary = pgbouncer_binary()
    if binary is None:
        raise FileNotFoundError("pgbouncer is not installed (Debian's package pgbouncer)")
    target = urlsplit(upstream.replace("postgresql+asyncpg://", "postgresql://"))
    user = target.username or "postgres"
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = directory / "pgbouncer.log"
    (directory / "userlist.txt").write_text(f'"{user}" ""\n')
    (directory / "pgbouncer.ini").write_text(
        "[databases]\n"
        f"* = host={target.hostname or LOOPBACK} port={target.port or 5432}\n"
        "[pgbouncer]\n"
        f"listen_addr = {LOOPBACK}\n"
        f"listen_port = {port}\n"
        "unix_socket_dir =\n"
        "auth_type = trust\n"
        f"auth_file = {directory / 'userlist.txt'}\n"
        f"admin_users = {user}\n"
        "pool_mode = transaction\n"
        f"default_pool_size = {pool_size}\n"
        "max_client_conn = 1000\n"
        # the server connection is reused by the next client at once, whatever the last one left
        "server_reset_query =\n"
        f"logfile = {log}\n"
    )
    command = [binary, str(directory / "pgbouncer.ini")]
    if os.geteuid() == 0:
        owner = pwd.getpwnam("postgres")
        os.chown(directory, owner.pw_uid, owner.pw_gid)
        for path in directory.iterdir():
            os.chown(path, owner.pw_uid, owner.pw_gid)
        _open_path_to(directory)
        command[1:1] = ["-u", "postgres"]
    with (directory / "pgbouncer.out").open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_for_port(port, process, log)
        yield PgBouncer(port=port, user=user, process=process, log=log)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)  # SIGINT: safe shutdown; SIGTERM waits for clients
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _open_path_to(directory: Path) -> None:
    """Let the ``postgres`` user reach ``directory``: pytest's temporary directories are 0700."""
    for parent in [directory, *directory.parents]:
        if parent == Path("/"):
            break
        mode = parent.stat().st_mode
        if not mode & 0o001:
            parent.chmod(mode | 0o001)


def _wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            out = (log.parent / "pgbouncer.out").read_text(errors="replace")
            text = log.read_text(errors="replace") if log.exists() else ""
            raise RuntimeError(f"pgbouncer exited with {process.returncode}:\n{out}\n{text}")
        with contextlib.suppress(OSError), socket.create_connection((LOOPBACK, port), timeout=1):
            return
        time.sleep(0.05)
    raise RuntimeError(f"pgbouncer did not listen on {LOOPBACK}:{port} in 15 s")
