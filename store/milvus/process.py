"""A Milvus-compatible server run as a child process: ports, start, readiness, stop.

:class:`MilvusProcess` is the handle (``standalone.MilvusStandalone`` is the product's one kind;
the tests add ``milvus-lite server``). Each handle runs in a directory of its own and listens on
free loopback ports, kept in ``<base_dir>/ports.json`` so a restart comes back on the same ones
with the same data. The server runs in a process group of its own: a stop asks nicely, then
SIGKILLs the whole group, so nothing it spawned is left behind.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Self

LOOPBACK = "127.0.0.1"
READY_POLL_SECONDS = 0.25
AUTH_REFUSED_SECONDS = 5.0  # a server up and refusing the credentials this long: a wrong password


class ServerStartError(RuntimeError):
    """The server exited or did not answer before its deadline; the message has its log tail."""

    def __init__(self, message: str, *, exited: bool = False) -> None:
        super().__init__(message)
        self.exited = exited  # it never ran or exited early (e.g. its port was taken meanwhile)


def free_ports(count: int, host: str = LOOPBACK) -> list[int]:
    """Return `count` distinct ports that were free a moment ago (all held open while choosing)."""
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((host, 0))
            socks.append(sock)
        return [s.getsockname()[1] for s in socks]
    finally:
        for sock in socks:
            sock.close()


def free_port(host: str = LOOPBACK) -> int:
    return free_ports(1, host)[0]


def port_is_free(port: int, host: str = LOOPBACK) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def _proc_stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (state ppid pgrp ...), or None."""
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def process_alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie, dead but not yet reaped by its parent, is not)."""
    fields = _proc_stat(pid)
    if fields is None:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return fields[0] not in ("Z", "X")


def group_alive(pgid: int) -> bool:
    """True while any process of process group ``pgid`` runs."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _proc_stat(int(entry.name))
            if fields and int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
                return True
    return False


def rss_bytes_of_group(pgid: int) -> int:
    """Resident memory of every process in process group `pgid` (Linux /proc), in bytes."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _proc_stat(int(entry.name))
        if not fields or int(fields[2]) != pgid:
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            for line in (entry / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
    return total


def signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def stop_group(pgid: int, *, sig: signal.Signals = signal.SIGTERM, timeout: float = 10.0) -> None:
    """Stop process group ``pgid`` that this process did not spawn (so cannot wait for): ``sig``,
    then SIGKILL to the group if anything of it still runs after ``timeout`` seconds."""
    signal_group(pgid, sig)
    deadline = time.monotonic() + timeout
    while group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.1)
    signal_group(pgid, signal.SIGKILL)


# Exec wrapper: ask Linux to SIGKILL the server when the thread that spawned it dies, then exec
# the server. (A preexec_fn would do the same but forces fork() in a process that has gRPC
# threads, which gRPC complains about.) argv: expected parent pid, command...
_PDEATHSIG_EXEC = (
    "import ctypes, os, signal, sys\n"
    "ctypes.CDLL(None).prctl(1, int(signal.SIGKILL))\n"  # PR_SET_PDEATHSIG
    "if os.getppid() != int(sys.argv[1]): sys.exit(70)\n"  # parent already gone
    "os.execv(sys.argv[2], sys.argv[2:])\n"
)


@contextlib.contextmanager
def quiet_pymilvus() -> Iterator[None]:
    """Silence pymilvus's error logging (it logs every failed RPC with a traceback)."""
    logger = logging.getLogger("pymilvus")
    level = logger.level
    logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        logger.setLevel(level)


def wait_until_ready(
    uri: str,
    deadline: float,
    alive: Callable[[], bool] | None = None,
    poll_interval: float = READY_POLL_SECONDS,
    tokens: Sequence[str] = ("",),
) -> str:
    """Poll `uri` with a pymilvus MilvusClient until `list_collections` answers; return the
    token (of `tokens`, tried in turn) it answered to.

    `deadline` is a `time.monotonic()` value; `alive` is an optional callable returning False once
    the server process has exited (then waiting stops at once). A server that is up but refuses
    every token for ``AUTH_REFUSED_SECONDS`` raises at once: waiting would not change its mind.
    """
    from pymilvus import MilvusClient

    last: BaseException | None = None
    refused_since: float | None = None
    with quiet_pymilvus():
        while time.monotonic() < deadline:
            if alive is not None and not alive():
                raise ServerStartError(
                    f"server for {uri} exited while starting (last error: {last})", exited=True
                )
            refused = 0
            for token in tokens:
                client: Any = None
                try:
                    remaining = max(0.5, min(3.0, deadline - time.monotonic()))
                    client = MilvusClient(uri=uri, token=token, timeout=remaining, dedicated=True)
                    client.list_collections(timeout=remaining)
                    return token
                except Exception as exc:  # noqa: BLE001 - not up yet (pymilvus: MilvusException)
                    last = exc
                    refused += is_auth_refusal(exc)
                finally:
                    if client is not None:
                        with contextlib.suppress(Exception):
                            client.close()
            now = time.monotonic()
            if refused < len(tokens):
                refused_since = None
            elif refused_since is None:
                refused_since = now
            elif now - refused_since >= AUTH_REFUSED_SECONDS:
                raise ServerStartError(f"server for {uri} refuses the credentials: {last}")
            time.sleep(poll_interval)
    raise ServerStartError(f"server for {uri} not ready before the deadline (last error: {last})")


def is_auth_refusal(exc: BaseException) -> bool:
    """Whether a failed pymilvus call was refused for its credentials (the server is up): the
    gRPC status UNAUTHENTICATED somewhere in its chain (pymilvus's own message hides it)."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        code = getattr(cause, "code", None)
        if callable(code) and getattr(code(), "name", None) == "UNAUTHENTICATED":
            return True
        cause = cause.__cause__ or cause.__context__
    return False


def wait_until_collections_queryable(
    uri: str, deadline: float, poll_interval: float = READY_POLL_SECONDS, token: str = ""
) -> None:
    """Wait until every collection the server is (re)loading answers a ``count(*)`` query.

    After a restart Milvus 2.3 reloads the collections that were loaded, which takes seconds
    (``get_load_state`` may say Loading for a while after queries work). Milvus Lite brings
    indexed collections back unloaded: those are left alone (NotLoad).
    """
    from pymilvus import MilvusClient

    with quiet_pymilvus():
        client = MilvusClient(uri=uri, token=token, timeout=10, dedicated=True)
        try:
            for name in client.list_collections():
                state = client.get_load_state(name).get("state")
                if getattr(state, "name", str(state)) not in ("Loading", "Loaded"):
                    continue
                last: BaseException | None = None
                while True:
                    try:
                        client.query(name, filter="", output_fields=["count(*)"], timeout=5)
                        break
                    except Exception as exc:  # noqa: BLE001 - not loaded yet
                        last = exc
                    if time.monotonic() >= deadline:
                        raise ServerStartError(f"collection {name!r} not queryable: {last}")
                    time.sleep(poll_interval)
        finally:
            client.close()


class MilvusProcess:
    """A Milvus-compatible server running as a child process (base class).

    `start()` waits until a pymilvus client can list collections; `stop()` asks nicely then
    SIGKILLs after `stop_timeout`; `kill()` SIGKILLs at once (fault tests); `restart()` starts
    again on the same data directory and port. Usable as a context manager (stops on exit).
    `die_with_parent`: the server is SIGKILLed when the thread that started it dies (for a
    server nobody else shares, such as a test's).
    """

    kind: ClassVar[str] = "milvus"
    stop_signal: ClassVar[signal.Signals] = signal.SIGTERM

    def __init__(
        self,
        base_dir: Path | str,
        port: int | None = None,
        *,
        ready_timeout: float = 120.0,
        stop_timeout: float = 10.0,
        die_with_parent: bool = False,
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        self.base_dir = Path(base_dir).resolve()
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.host = LOOPBACK
        self.ready_timeout = ready_timeout
        self.stop_timeout = stop_timeout
        self.die_with_parent = die_with_parent
        self.extra_env = dict(extra_env or {})
        self.log_dir = self.base_dir / "logs"
        self.log_dir.mkdir(exist_ok=True)
        self.stdout_log = self.log_dir / "stdout.log"
        self.start_seconds: float | None = None  # last start(): spawn -> everything queryable
        self.ready_seconds: float | None = None  # last start(): spawn -> API answers
        self.starts = 0
        self.token = ""  # what clients pass (user:password) once it runs; "" without auth
        self._proc: subprocess.Popen[bytes] | None = None
        self._ports_file = self.base_dir / "ports.json"
        self._port_was_chosen = port is not None
        self.ports: dict[str, int] = self._load_or_pick_ports(port)

    # -- to override ---------------------------------------------------------------------------

    def port_names(self) -> tuple[str, ...]:
        """Names of every port this server listens on; the client port is called ``port``."""
        return ("port",)

    def prepare(self) -> None:
        """Write configuration files before each start."""

    def command(self) -> list[str]:
        raise NotImplementedError

    def environment(self) -> dict[str, str]:
        return {**os.environ, **self.extra_env}

    def ready_tokens(self) -> tuple[str, ...]:
        """The credentials to try while waiting for the server to answer."""
        return (self.token,)

    def after_ready(self) -> None:
        """Run once the server answers to ``self.token``, before its collections are awaited."""

    # -- public API ----------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self.ports["port"]

    @property
    def uri(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, *, wait_for_collections: bool = True) -> Self:
        """Spawn the server and wait until it answers (and, if `wait_for_collections`, until the
        collections it reloads by itself are queryable), at most ``ready_timeout`` seconds."""
        if self.running:
            raise RuntimeError(f"{self.kind} already running (pid {self.pid})")
        attempts = 1 if self._port_was_chosen or self.starts else 3
        for attempt in range(attempts):
            try:
                self._start_once(wait_for_collections)
                return self
            except ServerStartError as exc:
                # A freshly picked port may have been taken in between: pick again, retry.
                if not exc.exited or attempt + 1 == attempts:
                    raise
                self.ports = self._load_or_pick_ports(None, repick=True)
        return self  # pragma: no cover

    def stop(self, timeout: float | None = None) -> int | None:
        """Graceful stop (``stop_signal``), SIGKILL after `timeout`. Returns the exit code."""
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            self._signal(self.stop_signal)
            try:
                proc.wait(timeout=self.stop_timeout if timeout is None else timeout)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                proc.wait()
        self._signal(signal.SIGKILL)  # anything left in its process group
        self._proc = None
        return proc.returncode

    def kill(self) -> None:
        """SIGKILL the server (and its process group) and reap it: a crash, for fault tests."""
        proc = self._proc
        if proc is None:
            return
        self._signal(signal.SIGKILL)
        proc.wait()
        self._proc = None

    def restart(self, *, hard: bool = False, wait_for_collections: bool = True) -> Self:
        """Stop (or kill, if `hard`) and start again on the same data directory and ports."""
        if hard:
            self.kill()
        else:
            self.stop()
        return self.start(wait_for_collections=wait_for_collections)

    def rss_bytes(self) -> int:
        """Resident memory of the server process (and any children), in bytes."""
        return rss_bytes_of_group(self._proc.pid) if self.running and self._proc else 0

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.stdout_log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def client(self, **kwargs: Any) -> Any:
        """A new pymilvus ``MilvusClient`` on this server."""
        from pymilvus import MilvusClient

        return MilvusClient(uri=self.uri, **{"token": self.token, **kwargs})

    def __enter__(self) -> Self:
        if not self.running:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.uri} pid={self.pid} dir={self.base_dir}>"

    # -- internals -----------------------------------------------------------------------------

    def _load_or_pick_ports(self, port: int | None, *, repick: bool = False) -> dict[str, int]:
        names = self.port_names()
        if not repick and self._ports_file.exists():
            saved = {k: int(v) for k, v in json.loads(self._ports_file.read_text()).items()}
            if set(saved) >= set(names) and (port is None or saved["port"] == port):
                return saved
        picked = dict(zip(names, free_ports(len(names)), strict=True))
        if port is not None:
            picked["port"] = port
        self._ports_file.write_text(json.dumps(picked, indent=1))
        return picked

    def _start_once(self, wait_for_collections: bool) -> None:
        busy = [f"{k}={v}" for k, v in self.ports.items() if not port_is_free(v)]
        if busy:
            raise ServerStartError(
                f"{self.kind}: ports already in use: {', '.join(busy)}", exited=True
            )
        self.prepare()
        began = time.monotonic()
        command = self.command()
        if self.die_with_parent and threading.current_thread() is threading.main_thread():
            # PDEATHSIG follows the spawning *thread*: only from the main thread.
            command = [sys.executable, "-c", _PDEATHSIG_EXEC, str(os.getpid()), *command]
        with self.stdout_log.open("ab") as out:
            out.write(f"\n==== start {time.strftime('%H:%M:%S')} {command}\n".encode())
            out.flush()
            self._proc = subprocess.Popen(
                command,
                cwd=self.base_dir,
                env=self.environment(),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group: killpg reaches everything it spawns
            )
        deadline = began + self.ready_timeout
        try:
            self.token = wait_until_ready(
                self.uri, deadline, alive=lambda: self.running, tokens=self.ready_tokens()
            )
            self.after_ready()
            self.ready_seconds = time.monotonic() - began
            if wait_for_collections:
                wait_until_collections_queryable(self.uri, deadline, token=self.token)
        except ServerStartError as exc:
            code = self._proc.poll() if self._proc else None
            self.kill()
            raise ServerStartError(
                f"{self.kind} in {self.base_dir} did not start (exit code {code}): {exc}\n"
                f"--- {self.stdout_log} (more in {self.log_dir}) ---\n{self.log_tail()}",
                exited=exc.exited,
            ) from exc
        except BaseException:  # interrupted while waiting: leave no half-started server behind
            self.kill()
            raise
        self.start_seconds = time.monotonic() - began
        self.starts += 1

    def _signal(self, sig: signal.Signals) -> None:
        proc = self._proc
        if proc is None:
            return
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            with contextlib.suppress(ProcessLookupError):
                if proc.poll() is None:
                    proc.send_signal(sig)
