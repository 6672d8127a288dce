"""Real services for tests: free loopback ports, a redis-server (alone, or replicated and watched by
Redis Sentinel), and the CI rule for missing tools."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def require_tool(name: str) -> str:
    """The tool's path; skip the test on a laptop without it, but fail under CI=true."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (Debian package {name!r})"
        if in_ci():
            pytest.fail(message + "; CI must install it")
        pytest.skip(message)
    return path


# Every port free_port has handed out in this test run. The kernel may offer a port again as soon
# as its probe socket closes: two servers launched together could then be given the same one, and
# the one that loses the race to bind it exits while its test talks to the other, unawares.
_handed_out: set[int] = set()


def free_port() -> int:
    """A loopback port nothing listens on now, never handed out before in this run."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s") from None
            time.sleep(0.02)


class RedisServer:
    """A redis-server process on a free loopback port, in its own directory; ``args`` are more
    command-line options (``--replicaof``, ``--logfile`` ...)."""

    def __init__(self, directory: Path, *, appendonly: bool = False, args: Sequence[str] = ()) -> None:
        self.directory = directory
        self.appendonly = appendonly
        self.args = list(args)
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = require_tool("redis-server")
        args = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory)]
        args += ["--save", "", "--appendonly", "yes" if self.appendonly else "no", "--appendfsync", "always"]
        self.process = subprocess.Popen([*args, *self.args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None

    def kill(self) -> None:
        """SIGKILL: no shutdown, nothing saved, clients' connections reset."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None

    def freeze(self, frozen: bool = True) -> None:
        """SIGSTOP (or SIGCONT): the process keeps its connections but answers nothing, like a host
        cut off the network; once thawed it carries on as if nothing happened."""
        assert self.process is not None, "not running"
        self.process.send_signal(signal.SIGSTOP if frozen else signal.SIGCONT)

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, decode_responses=True, socket_timeout=5)

    def role(self) -> str:
        """``master`` or ``slave``, as the server itself says."""
        with self.client() as client:
            return str(client.info("replication")["role"])


@contextmanager
def running_redis(directory: Path, *, appendonly: bool = False) -> Iterator[RedisServer]:
    server = RedisServer(directory, appendonly=appendonly)
    server.start()
    try:
        yield server
    finally:
        server.stop()


SENTINEL_SERVICE = "moviematch"
READY_TIMEOUT = 60.0


class SentinelSet:
    """One primary, ``replicas`` replicas and ``sentinels`` Redis Sentinels (quorum: a majority),
    each a process on loopback with a directory (and log file) of its own under ``directory``.

    ``down_after_ms`` is how long the primary must be unreachable before a sentinel takes it for
    down (Sentinel's ``down-after-milliseconds``); a failover follows at once.
    """

    def __init__(self, directory: Path, *, replicas: int = 2, sentinels: int = 3, down_after_ms: int = 2000) -> None:
        self.directory = directory
        self.down_after_ms = down_after_ms
        self.servers = [RedisServer(directory / f"redis-{number}") for number in range(1 + replicas)]
        primary = self.servers[0]
        for number, server in enumerate(self.servers):
            # No wait before a full sync (5 s by default, for more replicas to share it).
            server.args = ["--logfile", str(server.directory / "redis.log"), "--repl-diskless-sync-delay", "0"]
            if number:
                server.args += ["--replicaof", "127.0.0.1", str(primary.port)]
        self.sentinel_ports = [free_port() for _ in range(sentinels)]
        self.sentinels: list[subprocess.Popen[bytes]] = []

    def url(self, **options: str) -> str:
        """The ``redis+sentinel://`` storage URL of this set (database 0)."""
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)
        query = "&".join(f"{name}={value}" for name, value in options.items())
        return f"redis+sentinel://{hosts}/{SENTINEL_SERVICE}/0" + (f"?{query}" if query else "")

    def start(self) -> None:
        binary = require_tool("redis-server")
        for server in self.servers:
            server.directory.mkdir(parents=True, exist_ok=True)
            server.start()
        for number, port in enumerate(self.sentinel_ports):
            directory = self.directory / f"sentinel-{number}"
            directory.mkdir(parents=True, exist_ok=True)
            # Sentinel rewrites its config file with what it learns (replicas, other sentinels, failovers).
            conf = directory / "sentinel.conf"
            quorum = len(self.sentinel_ports) // 2 + 1
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {directory}\nlogfile {directory / 'sentinel.log'}\n"
                f"sentinel monitor {SENTINEL_SERVICE} 127.0.0.1 {self.servers[0].port} {quorum}\n"
                f"sentinel down-after-milliseconds {SENTINEL_SERVICE} {self.down_after_ms}\n"
                f"sentinel failover-timeout {SENTINEL_SERVICE} 10000\n"
                f"sentinel parallel-syncs {SENTINEL_SERVICE} 1\n"
            )
            process = subprocess.Popen(
                [binary, str(conf), "--sentinel"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            self.sentinels.append(process)
            wait_for_port(port)
        self.wait_until_settled(self.servers[0])

    def stop(self) -> None:
        for process in self.sentinels:
            process.terminate()
            process.wait(timeout=10)
        self.sentinels.clear()
        for server in self.servers:
            server.stop()

    def _sentinel(self, port: int) -> redis.Redis:
        return redis.Redis(port=port, decode_responses=True, socket_timeout=2)

    def reported_primary(self, port: int) -> int | None:
        """The primary's port as the sentinel on ``port`` reports it (None when it cannot say)."""
        try:
            with self._sentinel(port) as sentinel:
                address = sentinel.sentinel_get_master_addr_by_name(SENTINEL_SERVICE)
        except redis.RedisError:
            return None
        return int(address[1]) if address else None

    def primary(self) -> RedisServer:
        """The server every sentinel reports as the primary (waits until they agree)."""
        return self._wait(lambda: self._agreed(lambda port: True), "the sentinels to agree on a primary")

    def wait_for_failover(self, old: RedisServer) -> RedisServer:
        """The new primary, once every sentinel reports one other than ``old`` and it says it is one."""
        return self._wait(lambda: self._agreed(lambda port: port != old.port), "a failover")

    def switch_by_hand(self, new: RedisServer) -> None:
        """Make ``new`` the primary the way an operator would, without Sentinel: once it has caught
        up, the others become its replicas (their clients stay connected, and writes there now get
        READONLY), then the sentinels are told to watch ``new``."""
        self.wait_until_settled(self.primary())
        with new.client() as client:
            client.replicaof("NO", "ONE")
        for server in self.servers:
            if server is not new and server.process is not None:
                with server.client() as client:
                    client.replicaof("127.0.0.1", new.port)
        quorum = len(self.sentinel_ports) // 2 + 1
        for port in self.sentinel_ports:
            with self._sentinel(port) as sentinel:
                sentinel.sentinel_remove(SENTINEL_SERVICE)
                sentinel.sentinel_monitor(SENTINEL_SERVICE, "127.0.0.1", new.port, quorum)
                sentinel.sentinel_set(SENTINEL_SERVICE, "down-after-milliseconds", self.down_after_ms)
        self.wait_until_settled(new)

    def wait_until_settled(self, primary: RedisServer) -> None:
        """Until every running server replicates from ``primary`` with its link up and has caught up
        with it, and every sentinel knows them all and the other sentinels."""

        def settled() -> RedisServer | None:
            running = [server for server in self.servers if server.process is not None]
            for server in running:
                if server is not primary:
                    with server.client() as client:
                        info = client.info("replication")
                    if info.get("master_port") != primary.port or info.get("master_link_status") != "up":
                        return None
            with primary.client() as client:
                info = client.info("replication")
            # What each replica last confirmed having (replicas confirm every second).
            confirmed = [info[f"slave{number}"]["offset"] for number in range(info["connected_slaves"])]
            if len(confirmed) != len(running) - 1 or any(offset != info["master_repl_offset"] for offset in confirmed):
                return None
            for port in self.sentinel_ports:
                with self._sentinel(port) as sentinel:
                    state = sentinel.sentinel_master(SENTINEL_SERVICE)
                    replicas = sentinel.sentinel_slaves(SENTINEL_SERVICE)
                healthy = [r for r in replicas if not (r["is_sdown"] or r["is_odown"])]
                if (
                    state["port"] != primary.port
                    or len(healthy) != len(running) - 1
                    or state["num-other-sentinels"] != len(self.sentinel_ports) - 1
                ):
                    return None
            return primary

        self._wait(settled, "the replicas and sentinels to settle")

    def _agreed(self, acceptable: Callable[[int], bool]) -> RedisServer | None:
        ports = {self.reported_primary(port) for port in self.sentinel_ports}
        [port] = ports if len(ports) == 1 else [None]
        if port is None or not acceptable(port):
            return None
        [server] = [server for server in self.servers if server.port == port]
        if server.process is None:
            return None
        try:
            return server if server.role() == "master" else None
        except redis.RedisError:
            return None

    def _wait(self, found: Callable[[], RedisServer | None], what: str) -> RedisServer:
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            try:
                result = found()
            except redis.RedisError:
                result = None
            if result is not None:
                return result
            if time.monotonic() > deadline:
                raise TimeoutError(f"waited {READY_TIMEOUT:g} s for {what}; logs under {self.directory}")
            time.sleep(0.1)


@contextmanager
def running_sentinels(directory: Path, **options: int) -> Iterator[SentinelSet]:
    """A started ``SentinelSet`` (primary, replicas and sentinels settled), stopped afterwards."""
    servers = SentinelSet(directory, **options)
    try:
        servers.start()
        yield servers
    finally:
        servers.stop()


START_TIMEOUT = 20.0


class ServerProcess:
    """``python -m server`` on a free loopback port, as an operator would run it."""

    module = "server"

    def __init__(self, data_dir: Path, **env: str) -> None:
        self.port = free_port()
        self.data_dir = data_dir
        self.env = {
            **os.environ,
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
            "STORAGE_URL": f"file:{data_dir}",
            "LOG_LEVEL": "INFO",
            **env,
        }
        self.env.pop("CONFIG_PATH", None)
        self.process: subprocess.Popen[bytes] | None = None
        self.log = data_dir.parent / f"server-{self.port}.log"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/api/ws"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def launch(self) -> None:
        """Start the process without waiting (several can then start together)."""
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", self.module],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.data_dir.parent,
                start_new_session=True,  # a test can SIGKILL it alone
            )

    def ready(self, timeout: float = START_TIMEOUT) -> None:
        """Wait until it listens (uvicorn listens once the app's startup is done); fail at once,
        with its output, if it exits."""
        deadline = time.monotonic() + timeout
        while True:
            assert self.process is not None, "not launched"
            code = self.process.poll()
            if code is not None:
                raise RuntimeError(f"the server on port {self.port} exited with {code}:\n{self.output()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"nothing listens on 127.0.0.1:{self.port} after {timeout}s") from None
                time.sleep(0.02)

    def start(self, timeout: float = START_TIMEOUT) -> None:
        self.launch()
        self.ready(timeout)

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def wait(self, timeout: float) -> int:
        assert self.process is not None
        code = self.process.wait(timeout=timeout)
        self.process = None
        return code

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None


@contextmanager
def running_server(data_dir: Path, **env: str) -> Iterator[ServerProcess]:
    server = ServerProcess(data_dir, **env)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def tmpfs(path: Path, options: str) -> Iterator[Path]:
    """A tmpfs of its own at ``path`` (root only): read-only or tiny, for disk-failure tests.
    Skipped on a laptop where it cannot be mounted, failed under CI=true."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], check=False)
    if mounted.returncode != 0:
        message = f"cannot mount a tmpfs ({options}) here; it needs root"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


@contextmanager
def read_only_directory(path: Path) -> Iterator[Path]:
    """A directory nobody can write to, root included: a read-only tmpfs when root, else mode 0500."""
    if os.geteuid() == 0:
        with tmpfs(path, "ro,size=1m"):
            yield path
        return
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o500)
    try:
        yield path
    finally:
        path.chmod(0o700)


def nginx_main_conf(directory: Path, http_block: str) -> Path:
    """A whole nginx.conf around ``http_block`` (what a distribution's nginx.conf includes from
    conf.d/), with every path in ``directory``; the access log names the upstream of each request."""
    temp = {name: directory / name for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")}
    # As root, nginx runs its workers as nobody, who may not enter the test's private temp directory.
    user = "user root root;" if os.geteuid() == 0 else ""
    conf = directory / "nginx.conf"
    conf.write_text(
        f"""
daemon off;
{user}
worker_processes 1;
pid {directory}/nginx.pid;
error_log {directory}/error.log info;
events {{ worker_connections 128; }}
http {{
    log_format upstreams '$upstream_addr "$request" $status';
    access_log {directory}/access.log upstreams;
    client_body_temp_path {temp["client_body"]};
    proxy_temp_path {temp["proxy"]};
    fastcgi_temp_path {temp["fastcgi"]};
    uwsgi_temp_path {temp["uwsgi"]};
    scgi_temp_path {temp["scgi"]};
{http_block}
}}
"""
    )
    return conf


@contextmanager
def running_nginx(directory: Path, http_block: str, port: int) -> Iterator[Path]:
    """nginx serving ``http_block`` (which listens on ``port``); yields its access log."""
    binary = require_tool("nginx")
    directory.mkdir(parents=True, exist_ok=True)
    conf = nginx_main_conf(directory, http_block)
    # -e: the error log before the config is read (the default path may not be writable).
    process = subprocess.Popen(
        [binary, "-c", str(conf), "-p", str(directory), "-e", str(directory / "error.log")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        yield directory / "access.log"
    finally:
        process.terminate()
        process.wait(timeout=10)
