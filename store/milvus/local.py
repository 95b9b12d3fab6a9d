"""The default engine: a Milvus 2.3 standalone that vectorql starts, shares and stops itself.

``VECTORQL_MILVUS_URI=local`` (the default; ``local:DIR`` for a data directory other than
``./data``) names no server: :func:`local_engine` chooses one.

- ``DIR/milvus.db`` exists (an existing Milvus Lite install): keep using it, and log how to
  switch, so that nobody's data is silently left behind in favour of an empty engine.
- Otherwise the managed standalone in ``DIR/milvus/`` (data, logs, configuration, the ports it
  was given, and who runs it), on free loopback ports, started if no vectorql process runs it.
- If the ``milvus`` package is missing or the server does not start: a warning, and Milvus Lite
  at ``DIR/milvus.db``; but if the standalone already holds data there, ``LocalEngineError``
  (an empty Lite engine would hide that data, and be chosen from then on).

One instance per directory, shared by every vectorql process on it (``serve`` and its workers,
``import``, ``reconcile``): each holds a shared ``flock`` on ``users.lock`` while it uses the
server, ``start.lock`` makes starting and stopping one at a time, and ``server.json`` says which
process group and URI it is. Milvus 2.3 binds its ports on every interface, so the standalone
requires a login: ``secrets.json`` (mode 0600, made on first use) holds its root password, which
every user connects with, and the key of its debugging endpoint. The last user to leave (the one
that can turn its lock exclusive) stops the server. A user that crashes loses its lock with it;
a server every user of which crashed keeps running, and the next claim reuses it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from store.milvus.process import (
    ServerStartError,
    group_alive,
    process_alive,
    stop_group,
    wait_until_ready,
)
from store.milvus.standalone import ROOT_USER, MilvusStandalone, StandaloneUnavailable

log = logging.getLogger(__name__)

LOCAL = "local"
DEFAULT_DATA_DIR = Path("data")
LITE_FILE = "milvus.db"
STANDALONE_DIR = "milvus"
STATE_FILE = "server.json"
SECRETS_FILE = "secrets.json"  # 0600; the server binds every interface, so it needs a login
ETCD_DATA = Path("data") / "etcd.data"  # exists once the server has run on the directory
DEFAULT_ETCD_ROOT = "by-dev"
ATTACH_SECONDS = 10.0  # how long a running server has to answer before it is replaced
STOP_SECONDS = 15.0  # graceful stop, then SIGKILL (Milvus 2.3's SIGTERM can hang: design.md 9)


def local_data_dir(uri: str) -> Path | None:
    """The data directory ``uri`` names if it means the managed local engine, else None."""
    if uri == LOCAL:
        return DEFAULT_DATA_DIR
    if uri.startswith(LOCAL + ":") and len(uri) > len(LOCAL) + 1:
        return Path(uri[len(LOCAL) + 1 :])
    return None


class LocalEngineError(RuntimeError):
    """The managed standalone of a directory that holds its data cannot be used."""


@dataclass(frozen=True)
class LocalEngine:
    """The engine :func:`local_engine` chose: what to connect to, and why."""

    uri: str  # http://127.0.0.1:PORT for the standalone, a .db path for Milvus Lite
    kind: Literal["standalone", "lite"]
    directory: Path  # the data directory
    reason: str  # one sentence for the log
    pid: int | None = None  # the standalone's process (and group) id; None for Milvus Lite
    # user:password for the standalone; None for Milvus Lite
    token: str | None = field(default=None, repr=False)

    @property
    def lite(self) -> bool:
        return self.kind == "lite"


@contextlib.contextmanager
def local_engine(
    data_dir: Path,
    *,
    bin_dir: Path | None = None,
    ready_timeout: float = 180.0,
) -> Iterator[LocalEngine]:
    """Choose the local engine for ``data_dir`` (see the module's rules), claim it for the
    duration of the ``with`` block, and leave it (the last user stops the standalone)."""
    data_dir = data_dir.resolve()
    lite = data_dir / LITE_FILE
    if lite.exists():
        reason = (
            f"{lite} exists, so vectorql keeps using Milvus Lite. To move to the managed Milvus "
            f"standalone, export the data, move {lite} away and import it again; to keep Lite "
            f"and silence this, set VECTORQL_MILVUS_URI={lite}"
        )
        log.warning(reason)
        yield LocalEngine(uri=str(lite), kind="lite", directory=data_dir, reason=reason)
        return
    try:
        claim = ManagedMilvus.claim(
            data_dir / STANDALONE_DIR, bin_dir=bin_dir, ready_timeout=ready_timeout
        )
    except (StandaloneUnavailable, ServerStartError, OSError) as e:
        standalone = data_dir / STANDALONE_DIR
        if (standalone / ETCD_DATA).exists():
            # Its data is there: an empty Milvus Lite in its place would hide it (and, once
            # made, be chosen from then on).
            raise LocalEngineError(
                f"the managed Milvus standalone in {standalone} holds data but cannot start: "
                f"{e}. Fix the cause (its logs are in {standalone / 'logs'}) and start again"
            ) from e
        reason = (
            f"the managed Milvus standalone cannot run here ({e}); using Milvus Lite at {lite} "
            "instead (slower searches; one process at a time)"
        )
        log.warning(reason)
        yield LocalEngine(uri=str(lite), kind="lite", directory=data_dir, reason=reason)
        return
    try:
        how = "started" if claim.started else "already running"
        reason = f"managed Milvus standalone {how} at {claim.uri} (data in {claim.directory})"
        log.info(reason)
        yield LocalEngine(
            uri=claim.uri,
            kind="standalone",
            directory=data_dir,
            reason=reason,
            pid=claim.pgid,
            token=claim.token,
        )
    finally:
        claim.release()


@contextlib.contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


@dataclass(frozen=True)
class ManagedSecrets:
    root_password: str = field(repr=False)
    # the metadata's root in etcd; also the key of the metrics port's /expr
    etcd_root: str = field(repr=False)


def managed_secrets(directory: Path) -> ManagedSecrets:
    """The managed server's secrets, from ``directory/secrets.json``; made (random, readable by
    this user only) on first use, under ``start.lock``. A directory the server ran on before
    keeps its etcd root (``by-dev``): its metadata lives there."""
    path = directory / SECRETS_FILE
    if path.exists():
        try:
            saved = json.loads(path.read_text())
            return ManagedSecrets(str(saved["root_password"]), str(saved["etcd_root"]))
        except (ValueError, KeyError, TypeError) as e:
            raise OSError(
                f"{path} is damaged ({e!r}): restore it, or move {directory} away to start anew"
            ) from e
    old = (directory / ETCD_DATA).exists()
    made = ManagedSecrets(
        root_password=secrets.token_urlsafe(24),
        etcd_root=DEFAULT_ETCD_ROOT if old else f"vq-{secrets.token_hex(16)}",
    )
    staging = path.with_name(f".{SECRETS_FILE}.{os.getpid()}")
    fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"root_password": made.root_password, "etcd_root": made.etcd_root}, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(staging, path)  # whole or absent, never half-written
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # the rename itself survives a power cut
    finally:
        os.close(dir_fd)
    return made


def _is_milvus(pid: int) -> bool:
    """Whether ``pid`` still is a Milvus binary (not a process that reused the number)."""
    try:
        return b"milvus" in (Path("/proc") / str(pid) / "cmdline").read_bytes()
    except OSError:
        return False


class ManagedMilvus:
    """One process's claim on the shared standalone of a directory: :meth:`claim` starts the
    server or joins the one running; :meth:`release` leaves it, stopping it if last."""

    def __init__(
        self,
        directory: Path,
        *,
        users_fd: int,
        uri: str,
        token: str,
        pgid: int,
        server: MilvusStandalone | None,
    ) -> None:
        self.directory = directory
        self.uri = uri
        self.token = token
        self.pgid = pgid  # the server's process group (its pid: it leads its own session)
        self.started = server is not None  # this claim started the server
        self._server = server
        self._users_fd: int | None = users_fd

    @classmethod
    def claim(
        cls, directory: Path, *, bin_dir: Path | None = None, ready_timeout: float = 180.0
    ) -> ManagedMilvus:
        directory.mkdir(parents=True, exist_ok=True)
        users = os.open(directory / "users.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            with _exclusive(directory / "start.lock"):
                fcntl.flock(users, fcntl.LOCK_SH)
                secret = managed_secrets(directory)
                if secret.etcd_root == DEFAULT_ETCD_ROOT:
                    log.warning(
                        "the Milvus standalone in %s predates vectorql's generated secrets: its "
                        "metrics port's /expr endpoint keeps Milvus's public default key. To "
                        "close it, export the records, move the directory away and import them "
                        "again. (If this directory had a secrets.json, restore it instead: its "
                        "data is under the etcd root that file names.)",
                        directory,
                    )
                token = f"{ROOT_USER}:{secret.root_password}"
                running = cls._running(directory, token)
                if running is not None:
                    pgid, uri = running
                    return cls(
                        directory, users_fd=users, uri=uri, token=token, pgid=pgid, server=None
                    )
                server = MilvusStandalone(
                    directory,
                    bin_dir=bin_dir,
                    ready_timeout=ready_timeout,
                    root_password=secret.root_password,
                    etcd_root=secret.etcd_root,
                )
                server.start()
                assert server.pid is not None
                state = {"pid": server.pid, "uri": server.uri, "started": time.time()}
                (directory / STATE_FILE).write_text(json.dumps(state))
                return cls(
                    directory,
                    users_fd=users,
                    uri=server.uri,
                    token=server.token,
                    pgid=server.pid,
                    server=server,
                )
        except BaseException:
            os.close(users)
            raise

    @staticmethod
    def _running(directory: Path, token: str) -> tuple[int, str] | None:
        """The (process group, URI) of a server left running here that answers; a stale one
        (hung, or whose process is gone) is stopped and forgotten."""
        try:
            state = json.loads((directory / STATE_FILE).read_text())
            pid, uri = int(state["pid"]), str(state["uri"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if process_alive(pid) and _is_milvus(pid):
            try:
                wait_until_ready(
                    uri,
                    time.monotonic() + ATTACH_SECONDS,
                    alive=lambda: process_alive(pid),
                    tokens=(token,),
                )
                return pid, uri
            except ServerStartError as e:
                log.warning(
                    "the Milvus standalone in %s (pid %d) does not answer, replacing it: %s",
                    directory,
                    pid,
                    e,
                )
                stop_group(pid, timeout=STOP_SECONDS)
        elif group_alive(pid) and _is_milvus(pid):
            stop_group(pid, timeout=STOP_SECONDS)
        (directory / STATE_FILE).unlink(missing_ok=True)
        return None

    def release(self) -> None:
        """Leave the server; the last user stops it (gracefully, SIGKILL after a timeout)."""
        users = self._users_fd
        if users is None:
            return
        self._users_fd = None
        try:
            with _exclusive(self.directory / "start.lock"):
                try:
                    # Not atomic (flock drops the shared lock first), but every other user that
                    # could take or drop one holds start.lock, which is ours.
                    fcntl.flock(users, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    return  # others still use it
                if self._server is not None and self._server.running:
                    self._server.stop(timeout=STOP_SECONDS)
                elif _is_milvus(self.pgid):
                    stop_group(self.pgid, timeout=STOP_SECONDS)
                (self.directory / STATE_FILE).unlink(missing_ok=True)
                log.info("managed Milvus standalone at %s stopped", self.uri)
        finally:
            os.close(users)
