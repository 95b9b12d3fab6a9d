"""Real Milvus backends started as child processes, for the test suite.

Two backends, one handle API (:class:`MilvusProcess`):

* :func:`start_milvus_standalone` -- Milvus 2.3.x standalone from the PyPI package ``milvus``
  (its bundled Go binary, run directly so the test process can SIGKILL it).
* :func:`start_milvus_lite_server` -- ``milvus-lite server`` (the gRPC front of Milvus Lite).

Every handle runs in a directory of its own, listens on free loopback ports (kept in
``<base_dir>/ports.json`` so :meth:`MilvusProcess.restart` comes back on the same ones with the same
data), and is killed when the test process exits. Example fixture::

    @pytest.fixture(scope="session")
    def milvus(tmp_path_factory):
        with start_milvus_standalone(tmp_path_factory.mktemp("milvus")) as server:
            yield server            # server.uri == "http://127.0.0.1:PORT"

Run ``python -m tests.servers`` for a smoke test of both with timings.

And vectorql itself as users run it: :func:`serve_api` starts ``vectorql serve`` on the embedded
stores of a directory (the one helper for every test that needs a real server process).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import lzma
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Self

LOOPBACK = "127.0.0.1"
ROOT = Path(__file__).resolve().parents[1]

# Milvus 2.3 components whose advertised address must be loopback (design.md section 9); without
# it they register the first non-loopback address of the machine.
STANDALONE_COMPONENTS = (
    "rootCoord",
    "proxy",
    "queryCoord",
    "queryNode",
    "indexNode",
    "dataCoord",
    "dataNode",
)

# Extra ports that are not in the milvus package's template: embedded etcd's peer listener and the
# metrics/healthz HTTP port (METRICS_PORT). The client port of embedded etcd is `etcd_port`.
_EXTRA_STANDALONE_PORTS = ("etcd_peer_port", "metrics_port")


class ServerStartError(RuntimeError):
    """The server exited or did not answer before its deadline; the message has its log tail."""

    def __init__(self, message: str, *, exited: bool = False) -> None:
        super().__init__(message)
        self.exited = exited  # it never ran or exited early (e.g. its port was taken meanwhile)


# --------------------------------------------------------------------------------------------
# Ports, processes


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


def rss_bytes_of_group(pgid: int) -> int:
    """Resident memory of every process in process group `pgid` (Linux /proc), in bytes."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            # fields after the ")" of the command name: state ppid pgrp ...
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[2]) != pgid:
                continue
            for line in (entry / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except (OSError, IndexError, ValueError):
            continue
    return total


# Exec wrapper: ask Linux to SIGKILL the server when the thread that spawned it dies, then exec
# the server. (A preexec_fn would do the same but forces fork() in a process that has gRPC
# threads, which gRPC complains about.) argv: expected parent pid, command...
_PDEATHSIG_EXEC = (
    "import ctypes, os, signal, sys\n"
    "ctypes.CDLL(None).prctl(1, int(signal.SIGKILL))\n"  # PR_SET_PDEATHSIG
    "if os.getppid() != int(sys.argv[1]): sys.exit(70)\n"  # parent already gone
    "os.execv(sys.argv[2], sys.argv[2:])\n"
)


_LIVE: set[MilvusProcess] = set()  # strong refs: a running server is killed at exit even if dropped


@atexit.register
def _kill_leftovers() -> None:
    for server in list(_LIVE):
        with contextlib.suppress(Exception):
            server.kill()


@contextlib.contextmanager
def quiet_pymilvus() -> Iterator[None]:
    """Silence pymilvus's error logging (it logs every failed RPC with a traceback)."""
    import logging

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
    alive: Any = None,
    poll_interval: float = 0.25,
) -> None:
    """Poll `uri` with a pymilvus MilvusClient until `list_collections` answers.

    `deadline` is a `time.monotonic()` value; `alive` is an optional callable returning False once
    the server process has exited (then waiting stops at once).
    """
    from pymilvus import MilvusClient

    last: BaseException | None = None
    with quiet_pymilvus():
        while time.monotonic() < deadline:
            if alive is not None and not alive():
                raise ServerStartError(
                    f"server for {uri} exited while starting (last error: {last})", exited=True
                )
            client: Any = None
            try:
                remaining = max(0.5, min(3.0, deadline - time.monotonic()))
                client = MilvusClient(uri=uri, timeout=remaining, dedicated=True)
                client.list_collections(timeout=remaining)
                return
            except Exception as exc:  # noqa: BLE001 - not up yet (pymilvus: MilvusException)
                last = exc
            finally:
                if client is not None:
                    with contextlib.suppress(Exception):
                        client.close()
            time.sleep(poll_interval)
    raise ServerStartError(f"server for {uri} not ready before the deadline (last error: {last})")


def wait_until_collections_queryable(
    uri: str, deadline: float, poll_interval: float = 0.25
) -> None:
    """Wait until every collection the server is (re)loading answers a ``count(*)`` query.

    After a restart Milvus 2.3 reloads the collections that were loaded, which takes seconds
    (``get_load_state`` may say Loading for a while after queries work). Milvus Lite brings
    indexed collections back unloaded: those are left alone (NotLoad).
    """
    from pymilvus import MilvusClient

    with quiet_pymilvus():
        client = MilvusClient(uri=uri, timeout=10, dedicated=True)
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
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        self.base_dir = Path(base_dir).resolve()
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.host = LOOPBACK
        self.ready_timeout = ready_timeout
        self.stop_timeout = stop_timeout
        self.extra_env = dict(extra_env or {})
        self.log_dir = self.base_dir / "logs"
        self.log_dir.mkdir(exist_ok=True)
        self.stdout_log = self.log_dir / "stdout.log"
        self.start_seconds: float | None = None  # last start(): spawn -> everything queryable
        self.ready_seconds: float | None = None  # last start(): spawn -> API answers
        self.starts = 0
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
        _LIVE.discard(self)
        return proc.returncode

    def kill(self) -> None:
        """SIGKILL the server (and its process group) and reap it: a crash, for fault tests."""
        proc = self._proc
        if proc is None:
            return
        self._signal(signal.SIGKILL)
        proc.wait()
        self._proc = None
        _LIVE.discard(self)

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

        return MilvusClient(uri=self.uri, **kwargs)

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
        if threading.current_thread() is threading.main_thread():
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
        _LIVE.add(self)
        deadline = began + self.ready_timeout
        try:
            wait_until_ready(self.uri, deadline, alive=lambda: self.running)
            self.ready_seconds = time.monotonic() - began
            if wait_for_collections:
                wait_until_collections_queryable(self.uri, deadline)
        except ServerStartError as exc:
            code = self._proc.poll() if self._proc else None
            self.kill()
            raise ServerStartError(
                f"{self.kind} in {self.base_dir} did not start (exit code {code}): {exc}\n"
                f"--- {self.stdout_log} (more in {self.log_dir}) ---\n{self.log_tail()}",
                exited=exc.exited,
            ) from exc
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


# --------------------------------------------------------------------------------------------
# Milvus 2.3 standalone (PyPI `milvus`)


def milvus_binary_dir() -> Path:
    """Unpack the Go binary and libraries bundled (lzma'd) in the `milvus` package, once.

    Cached in ``$VECTORQL_MILVUS_BIN_DIR`` or ``$XDG_CACHE_HOME/vectorql/milvus-<version>/bin``
    (unpacking takes about 5 s and 250 MB); safe against concurrent test runs.
    """
    import milvus

    version = str(milvus.__version__)
    source = Path(milvus.__file__).parent / "data" / "bin"
    explicit = os.environ.get("VECTORQL_MILVUS_BIN_DIR")
    if explicit:
        target = Path(explicit)
    else:
        cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        target = cache / "vectorql" / f"milvus-{version}" / "bin"
    stamp = target / ".complete"
    if stamp.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".bin-", dir=target.parent))
    for packed in sorted(source.glob("*.lzma")):
        unpacked = staging / packed.name.removesuffix(".lzma")
        with lzma.open(packed) as src, unpacked.open("wb") as dst:
            while chunk := src.read(1 << 20):
                dst.write(chunk)
        unpacked.chmod(0o755)
    (staging / ".complete").write_text(version)
    try:
        staging.rename(target)
    except OSError:  # another run finished first, or a stale incomplete dir: keep theirs if whole
        if not stamp.exists():
            import shutil

            shutil.rmtree(target, ignore_errors=True)
            staging.rename(target)
        else:
            import shutil

            shutil.rmtree(staging, ignore_errors=True)
    return target


class MilvusStandalone(MilvusProcess):
    """Milvus 2.3.x standalone: the binary from the PyPI package ``milvus``, run directly.

    All components advertise 127.0.0.1; embedded etcd (client and peer), the gRPC ports and the
    metrics/healthz port are free ports. Milvus 2.3 still *binds* its gRPC and metrics ports on
    all interfaces (hard-coded ``":port"``); only etcd is loopback-only.
    """

    kind = "milvus-standalone"
    stop_signal = signal.SIGTERM

    def __init__(
        self,
        base_dir: Path | str,
        port: int | None = None,
        *,
        ready_timeout: float = 120.0,
        stop_timeout: float = 10.0,
        graceful_stop_seconds: int = 5,
        session_ttl_seconds: int = 10,
        log_level: str = "info",
        extra_config: Mapping[str, Any] | None = None,
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        self.graceful_stop_seconds = graceful_stop_seconds
        self.session_ttl_seconds = session_ttl_seconds
        self.log_level = log_level
        self.extra_config = dict(extra_config or {})
        self._template_keys: tuple[str, ...] | None = None
        super().__init__(
            base_dir,
            port,
            ready_timeout=ready_timeout,
            stop_timeout=stop_timeout,
            extra_env=extra_env,
        )
        self.bin_dir = milvus_binary_dir()

    @staticmethod
    def _config() -> Any:
        from milvus import MilvusServerConfig

        return MilvusServerConfig()

    def port_names(self) -> tuple[str, ...]:
        if self._template_keys is None:
            keys = self._config().configurable_items
            self._template_keys = tuple(
                k for k in keys if k.endswith("_port") and k != "proxy_port"
            )
        return ("port", *self._template_keys, *_EXTRA_STANDALONE_PORTS)

    @property
    def config_dir(self) -> Path:
        return self.base_dir / "configs"

    @property
    def metrics_url(self) -> str:
        return f"http://{self.host}:{self.ports['metrics_port']}"

    def prepare(self) -> None:
        cfg = self._config()
        cfg.update(data_dir=str(self.base_dir))
        for name, value in self.ports.items():
            if name not in _EXTRA_STANDALONE_PORTS:
                cfg.set("proxy_port" if name == "port" else name, value)
        cfg.set("etcd_log_level", "warn")
        settings: dict[str, Any] = {f"{c}.ip": self.host for c in STANDALONE_COMPONENTS}
        settings["common.gracefulStopTimeout"] = self.graceful_stop_seconds
        # etcd session lease of each component (default 30 s): after a SIGKILL or a stop, the
        # restarted server waits for the old sessions to expire before collections are queryable.
        settings["common.session.ttl"] = self.session_ttl_seconds
        settings["log.level"] = self.log_level
        settings["log.stdout"] = "false"  # the log files are in logs/; panics still reach stdout
        settings.update(self.extra_config)
        for key, value in settings.items():
            cfg.set(key, value)
        cfg.resolve_storage()  # data/, logs/, configs/ under base_dir
        # (not cfg.resolve(): it test-binds every port without SO_REUSEADDR and so fails on a
        # restart while the old process's connections are in TIME_WAIT)
        cfg.write_config()
        etcd, peer = self.ports["etcd_port"], self.ports["etcd_peer_port"]
        (self.config_dir / "embedEtcd.yaml").write_text(
            "name: default\n"
            f"listen-client-urls: http://{self.host}:{etcd}\n"
            f"advertise-client-urls: http://{self.host}:{etcd}\n"
            f"listen-peer-urls: http://{self.host}:{peer}\n"
            f"initial-advertise-peer-urls: http://{self.host}:{peer}\n"
            f"initial-cluster: default=http://{self.host}:{peer}\n"
        )

    def command(self) -> list[str]:
        return [str(self.bin_dir / "milvus"), "run", "standalone"]

    def environment(self) -> dict[str, str]:
        env = super().environment()
        lib_path = env.get("LD_LIBRARY_PATH", "")
        env.update(
            DEPLOY_MODE="STANDALONE",
            METRICS_PORT=str(self.ports["metrics_port"]),
            MILVUS_RUN_DIR=str(self.base_dir / "run"),
            MILVUSCONF=str(self.config_dir),
            # without this, embedded etcd listens on the fixed 2379/2380 of all test runs
            ETCD_CONFIG_PATH=str(self.config_dir / "embedEtcd.yaml"),
            LD_LIBRARY_PATH=f"{self.bin_dir}:{lib_path}" if lib_path else str(self.bin_dir),
        )
        return env


def start_milvus_standalone(
    base_dir: Path | str,
    port: int | None = None,
    **kwargs: Any,
) -> MilvusStandalone:
    """Start Milvus 2.3 standalone in `base_dir` (free port unless `port`); wait until ready."""
    return MilvusStandalone(base_dir, port, **kwargs).start()


# --------------------------------------------------------------------------------------------
# Milvus Lite gRPC server


class MilvusLiteServer(MilvusProcess):
    """``milvus-lite server --data-dir <base_dir>/data --host 127.0.0.1 --port P``.

    Stopped with SIGINT (its graceful path: drain for up to 5 s, close the DB); SIGTERM would end
    it without closing the DB.
    """

    kind = "milvus-lite-server"
    stop_signal = signal.SIGINT

    def __init__(
        self,
        base_dir: Path | str,
        port: int | None = None,
        *,
        ready_timeout: float = 60.0,
        stop_timeout: float = 10.0,
        max_workers: int = 10,
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        self.max_workers = max_workers
        super().__init__(
            base_dir,
            port,
            ready_timeout=ready_timeout,
            stop_timeout=stop_timeout,
            extra_env=extra_env,
        )
        self.data_dir = self.base_dir / "data"

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "milvus_lite",
            "server",
            "--data-dir",
            str(self.data_dir),
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--max-workers",
            str(self.max_workers),
        ]

    def environment(self) -> dict[str, str]:
        return {**super().environment(), "PYTHONUNBUFFERED": "1"}


def start_milvus_lite_server(
    base_dir: Path | str,
    port: int | None = None,
    **kwargs: Any,
) -> MilvusLiteServer:
    """Start ``milvus-lite server`` on `base_dir`/data (free port unless `port`); wait."""
    return MilvusLiteServer(base_dir, port, **kwargs).start()


def milvus_lite_db_uri(base_dir: Path | str, name: str = "milvus.db") -> str:
    """URI for in-process Milvus Lite (one process per file): a ``.db`` path in `base_dir`."""
    return str(Path(base_dir).resolve() / name)


# --------------------------------------------------------------------------------------------
# vectorql serve


VECTORQL = (sys.executable, "-m", "graph.cli")  # the CLI as users run it


@dataclass(frozen=True)
class ApiServer:
    """A running ``vectorql serve``: its URL, its admin key (when keys are on), its log."""

    url: str
    log: Path
    process: subprocess.Popen[bytes]
    env: Mapping[str, str]
    key: str = ""  # the admin key ("" unless admin_key)

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    @property
    def graphql(self) -> str:
        return f"{self.url}/graphql"

    def rss(self) -> int:
        return rss_bytes_of_group(self.process.pid)


def api_env(data: Path, **settings: Any) -> dict[str, str]:
    """The environment of a ``vectorql`` command on the embedded stores in ``data`` (a Milvus Lite
    file and SQLite), plus ``settings`` as ``VECTORQL_<NAME>`` variables. Nothing from the
    developer's own ``VECTORQL_*`` variables leaks in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VECTORQL_")}
    env.update(
        VECTORQL_MILVUS_URI=str(data / "milvus.db"),
        VECTORQL_DATABASE_URL=f"sqlite+aiosqlite:///{data / 'vectorql.db'}",
        VECTORQL_LOG_LEVEL="WARNING",
        VECTORQL_LOG_FORMAT="console",
        PYTHONUNBUFFERED="1",
        # the code under test is the checkout these tests are in, whatever the working directory
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    )
    env.update({f"VECTORQL_{k.upper()}": str(v) for k, v in settings.items()})
    return env


@contextlib.contextmanager
def serve_api(
    data: Path,
    *,
    admin_key: bool = False,
    args: tuple[str, ...] = (),
    timeout: float = 180.0,
    **settings: Any,
) -> Iterator[ApiServer]:
    """``vectorql serve`` on a free loopback port with its data in ``data`` (see ``api_env``),
    run from ``data`` (no stray .env), ready (``/readyz`` 200) when this yields, stopped after
    (SIGTERM to its process group, SIGKILL after 30 s). ``admin_key``: an admin key is made first
    with ``vectorql keys create`` (for servers with ``auth="apikey"``)."""
    import httpx

    data.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = api_env(data, host=LOOPBACK, port=port, **settings)
    key = ""
    if admin_key:
        key = subprocess.run(
            [*VECTORQL, "keys", "create", "--scope", "admin"],
            cwd=data,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
            check=True,
        ).stdout.strip()
    log = data / f"server-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*VECTORQL, "serve", *args],
            cwd=data,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = ApiServer(url=f"http://{LOOPBACK}:{port}", log=log, process=process, env=env, key=key)
    try:
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        while True:
            if process.poll() is not None:
                raise ServerStartError(
                    f"vectorql serve exited with {process.returncode}:\n{log.read_text()[-4000:]}",
                    exited=True,
                )
            try:
                response = httpx.get(f"{server.url}/readyz", timeout=2)
                if response.status_code == 200:
                    break
                last = f"{response.status_code} {response.text}"
            except httpx.TransportError as e:
                last = repr(e)
            if time.monotonic() > deadline:
                raise ServerStartError(
                    f"vectorql serve not ready in {timeout:.0f} s ({last}):\n"
                    f"{log.read_text()[-4000:]}"
                )
            time.sleep(0.2)
        yield server
    finally:
        _stop_group(process)


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the process group (uvicorn's workers too), SIGKILL if it has not ended in 30 s."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


# --------------------------------------------------------------------------------------------
# Self-check: python -m tests.servers


def smoke_test(uri: str, collection: str = "servers_smoke") -> dict[str, float]:
    """Create, insert, index, search, count and drop a small collection; return timings (s)."""
    import random

    from pymilvus import DataType, MilvusClient

    timings: dict[str, float] = {}
    t0 = time.monotonic()
    client = MilvusClient(uri=uri, timeout=30)
    try:
        if client.has_collection(collection):
            client.drop_collection(collection)
        schema = client.create_schema(auto_id=False)
        schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=64)
        schema.add_field("tenant", DataType.VARCHAR, max_length=64, is_partition_key=True)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=16)
        index = client.prepare_index_params()
        index.add_index(
            "vector", index_type="HNSW", metric_type="COSINE", params={"M": 8, "efConstruction": 64}
        )
        client.create_collection(collection, schema=schema, index_params=index)
        timings["create+load"] = time.monotonic() - t0
        rng = random.Random(7)
        rows = [
            {"id": f"r{i}", "tenant": f"t{i % 3}", "vector": [rng.random() for _ in range(16)]}
            for i in range(500)
        ]
        t = time.monotonic()
        # insert, not upsert: Milvus 2.3.5 upsert routes rows by the wrong field when the schema
        # has a partition key (milvus-io/milvus#30607, fixed in 2.3.10), so they vanish from
        # partition-key filters.
        client.insert(collection, rows)
        client.flush(collection)
        timings["insert+flush"] = time.monotonic() - t
        t = time.monotonic()
        hits = client.search(
            collection,
            data=[rows[0]["vector"]],
            limit=3,
            filter='tenant == "t0"',
            consistency_level="Strong",
        )
        timings["search"] = time.monotonic() - t
        if hits[0][0]["id"] != "r0":
            raise AssertionError(f"unexpected top hit: {hits[0][0]}")
        count = client.query(
            collection, filter="", output_fields=["count(*)"], consistency_level="Strong"
        )
        if count[0]["count(*)"] != 500:
            raise AssertionError(f"count(*) = {count}")
        client.drop_collection(collection)
    finally:
        client.close()
    timings["total"] = time.monotonic() - t0
    return timings


def smoke_collection_kept(uri: str, *, check: bool = False) -> None:
    """Create a loaded collection with 10 rows (or, with `check`, assert it is all still there)."""
    from pymilvus import DataType, MilvusClient

    client = MilvusClient(uri=uri, timeout=30)
    try:
        if not check:
            schema = client.create_schema(auto_id=False)
            schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=16)
            schema.add_field("vector", DataType.FLOAT_VECTOR, dim=2)
            index = client.prepare_index_params()
            index.add_index("vector", index_type="FLAT", metric_type="L2")
            client.create_collection("kept", schema=schema, index_params=index)
            client.insert("kept", [{"id": f"k{i}", "vector": [i, 1.0]} for i in range(10)])
            return
        client.load_collection("kept")  # Milvus Lite comes back with it unloaded
        rows = client.query(
            "kept", filter="", output_fields=["count(*)"], consistency_level="Strong"
        )
        if rows[0]["count(*)"] != 10:
            raise AssertionError(f"restart lost rows: {rows}")
    finally:
        client.close()


def _self_check() -> int:
    def fmt(timings: Mapping[str, float]) -> str:
        return ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in timings.items())

    failures = 0
    with tempfile.TemporaryDirectory(prefix="vectorql-servers-") as tmp:
        root = Path(tmp)

        t = time.monotonic()
        print(f"milvus-lite in-process: {fmt(smoke_test(milvus_lite_db_uri(root)))}")
        print(f"  (whole: {time.monotonic() - t:.2f} s)")

        starters: list[tuple[str, Any]] = [
            ("milvus-lite server", start_milvus_lite_server),
            ("milvus standalone", start_milvus_standalone),
        ]
        for label, starter in starters:
            try:
                server: MilvusProcess = starter(root / label.replace(" ", "-"))
            except Exception as exc:  # noqa: BLE001 - report and go on
                failures += 1
                print(f"{label}: FAILED to start: {exc}")
                continue
            try:
                print(
                    f"{label}: {server.uri} pid {server.pid} ready in "
                    f"{server.start_seconds:.2f} s, RSS {server.rss_bytes() / 2**20:.0f} MiB"
                )
                print(f"  smoke: {fmt(smoke_test(server.uri))}")
                print(f"  RSS after smoke {server.rss_bytes() / 2**20:.0f} MiB")
                smoke_collection_kept(server.uri)
                for hard in (False, True):
                    t = time.monotonic()
                    server.restart(hard=hard)
                    whole = time.monotonic() - t
                    smoke_collection_kept(server.uri, check=True)
                    print(
                        f"  restart after {'SIGKILL' if hard else 'stop'}: {whole:.2f} s in all, "
                        f"API after {server.ready_seconds:.2f} s, collections queryable after "
                        f"{server.start_seconds:.2f} s; data kept"
                    )
            except Exception as exc:  # noqa: BLE001 - report and go on
                failures += 1
                print(f"{label}: FAILED: {type(exc).__name__}: {exc}")
            finally:
                t = time.monotonic()
                code = server.stop()
                print(f"  stopped in {time.monotonic() - t:.2f} s (exit code {code})")
    print("self-check", "FAILED" if failures else "OK")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(_self_check())
