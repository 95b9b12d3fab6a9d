"""Milvus 2.3 standalone from the PyPI package ``milvus``, run as a child process.

The package bundles the Go binary and its libraries (lzma'd); :func:`milvus_binary_dir` unpacks
them once into a cache, and :class:`MilvusStandalone` runs that binary directly (not through the
package's own launcher) so that its process group can be stopped or killed as a whole.
"""

from __future__ import annotations

import logging
import lzma
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from store.milvus.process import MilvusProcess, ServerStartError, wait_until_ready

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


ROOT_USER = "root"
DEFAULT_ROOT_PASSWORD = "Milvus"  # what Milvus 2.3 creates root with; 2.3 cannot configure it

log = logging.getLogger(__name__)


class StandaloneUnavailable(RuntimeError):
    """The ``milvus`` package is not installed here, or its binary cannot be unpacked."""


def default_binary_dir(version: str) -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "vectorql" / f"milvus-{version}" / "bin"


def milvus_binary_dir(target: Path | None = None) -> Path:
    """Unpack the Go binary and libraries bundled in the ``milvus`` package, once, into
    ``target`` (default ``$XDG_CACHE_HOME/vectorql/milvus-<version>/bin``); return it.

    Unpacking takes about 5 s and 250 MB; concurrent processes may race, one copy wins. Raises
    ``StandaloneUnavailable`` when the package is missing or ``target`` cannot be written.
    """
    try:
        import milvus
    except ImportError as e:
        raise StandaloneUnavailable(
            "the Python package `milvus` (Milvus 2.3 standalone) is not installed"
        ) from e
    version = str(milvus.__version__)
    target = target or default_binary_dir(version)
    stamp = target / ".complete"
    if stamp.exists():
        return target
    source = Path(milvus.__file__).parent / "data" / "bin"
    packed_files = sorted(source.glob("*.lzma"))
    if not packed_files:
        raise StandaloneUnavailable(
            f"the `milvus` package has no binary for this platform in {source}"
        )
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".bin-", dir=target.parent))
        for packed in packed_files:
            unpacked = staging / packed.name.removesuffix(".lzma")
            with lzma.open(packed) as src, unpacked.open("wb") as dst:
                while chunk := src.read(1 << 20):
                    dst.write(chunk)
            unpacked.chmod(0o755)
        (staging / ".complete").write_text(version)
    except OSError as e:
        raise StandaloneUnavailable(f"cannot unpack the Milvus binary into {target}: {e}") from e
    try:
        staging.rename(target)
    except OSError:  # another process finished first, or a stale incomplete dir: keep a whole one
        if stamp.exists():
            shutil.rmtree(staging, ignore_errors=True)
        else:
            shutil.rmtree(target, ignore_errors=True)
            staging.rename(target)
    return target


class MilvusStandalone(MilvusProcess):
    """Milvus 2.3.x standalone: the binary from the PyPI package ``milvus``, run directly.

    All components advertise 127.0.0.1; embedded etcd (client and peer), the gRPC ports and the
    metrics/healthz port are free ports. Milvus 2.3 still *binds* its gRPC and metrics ports on
    all interfaces (hard-coded ``":port"``); only etcd is loopback-only. Data, logs and
    configuration live under ``base_dir``. With ``root_password``, clients must authenticate
    (``self.token``): the first start replaces Milvus's default root password with it.
    ``etcd_root`` replaces ``by-dev`` as the metadata's root (fixed for the data's lifetime).
    """

    kind = "milvus-standalone"
    stop_signal = signal.SIGTERM

    def __init__(
        self,
        base_dir: Path | str,
        port: int | None = None,
        *,
        bin_dir: Path | None = None,
        ready_timeout: float = 120.0,
        stop_timeout: float = 10.0,
        die_with_parent: bool = False,
        graceful_stop_seconds: int = 5,
        session_ttl_seconds: int = 10,
        log_level: str = "info",
        extra_config: Mapping[str, Any] | None = None,
        extra_env: Mapping[str, str] | None = None,
        root_password: str | None = None,
        etcd_root: str | None = None,
    ) -> None:
        self.bin_dir = milvus_binary_dir(bin_dir)  # first: StandaloneUnavailable before any file
        self.root_password = root_password
        self.etcd_root = etcd_root
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
            die_with_parent=die_with_parent,
            extra_env=extra_env,
        )

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
        if self.root_password is not None:
            cfg.set("authorization_enabled", True)
            settings["proxy.http.enabled"] = False  # the REST API: nothing here uses it
        if self.etcd_root is not None:
            # Also the key of the metrics port's /expr endpoint (it evaluates code over the
            # server's settings): the default, "by-dev", is public.
            settings["etcd.rootPath"] = self.etcd_root
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

    def ready_tokens(self) -> tuple[str, ...]:
        if self.root_password is None:
            return ("",)
        # A new data directory (or one from before authentication) still has Milvus's default.
        return (f"{ROOT_USER}:{self.root_password}", f"{ROOT_USER}:{DEFAULT_ROOT_PASSWORD}")

    def after_ready(self) -> None:
        """With authentication: replace the default root password, then drop any user created
        while it was valid (the server binds every interface, so that window is exposed)."""
        if self.root_password is None or self.token != f"{ROOT_USER}:{DEFAULT_ROOT_PASSWORD}":
            return
        new_token = f"{ROOT_USER}:{self.root_password}"
        deadline = time.monotonic() + self.ready_timeout
        while True:
            client = self.client(timeout=10, dedicated=True)
            try:
                client.update_password(ROOT_USER, DEFAULT_ROOT_PASSWORD, self.root_password)
                break
            except Exception as exc:  # noqa: BLE001 - pymilvus raises MilvusException and more
                # On a restart, the update's notice to the previous run's proxy fails until that
                # session expires (common.session.ttl); the password itself may be stored.
                try:
                    wait_until_ready(
                        self.uri,
                        time.monotonic() + 3,
                        alive=lambda: self.running,
                        tokens=(new_token,),
                    )
                    break
                except ServerStartError as failed:
                    if failed.exited or time.monotonic() > deadline:
                        raise ServerStartError(
                            f"cannot set the Milvus root password: {exc}", exited=False
                        ) from exc
                time.sleep(1.0)
            finally:
                client.close()
        self.token = new_token
        client = self.client(timeout=10, dedicated=True)
        try:
            for user in client.list_users():
                if user != ROOT_USER:
                    log.warning("dropping Milvus user %r, created before the root password", user)
                    client.drop_user(user)
        finally:
            client.close()

    def environment(self) -> dict[str, str]:
        env = super().environment()
        lib_path = env.get("LD_LIBRARY_PATH", "")
        env.update(
            DEPLOY_MODE="STANDALONE",
            METRICS_PORT=str(self.ports["metrics_port"]),
            MILVUS_RUN_DIR=str(self.base_dir / "run"),
            MILVUSCONF=str(self.config_dir),
            # without this, embedded etcd listens on the fixed 2379/2380 of every instance
            ETCD_CONFIG_PATH=str(self.config_dir / "embedEtcd.yaml"),
            LD_LIBRARY_PATH=f"{self.bin_dir}:{lib_path}" if lib_path else str(self.bin_dir),
        )
        return env
