"""Clusters for tests: several real server processes (``tests.cluster_server``) sharing rooms
through one real redis-server, each cluster under a Redis key prefix of its own."""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from storage.redis import RedisStorage
from tests.cluster_server import SwitchableProvider
from tests.services import ServerProcess, running_redis

ROOT = Path(__file__).resolve().parents[1]


class ClusterProcess(ServerProcess):
    """``python -m tests.cluster_server``: the real server with the test library."""

    module = "tests.cluster_server"


class Cluster:
    """``size`` server processes sharing rooms on one redis-server, under a fresh key prefix."""

    def __init__(self, directory: Path, redis_url: str, size: int = 3, **env: str) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.prefix = f"t{uuid.uuid4().hex[:12]}"
        self.storage_url = f"{redis_url}?prefix={self.prefix}"
        self.fail_flag = directory / "library-down"
        env = {
            # The processes run this checkout's server, whatever else is installed.
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
            "STORAGE_URL": self.storage_url,
            "CLUSTER_FAIL_FLAG": str(self.fail_flag),
            **env,
        }
        self.processes = [ClusterProcess(directory / "rooms", **env) for _ in range(size)]

    @property
    def ws_urls(self) -> list[str]:
        return [process.ws_url for process in self.processes]

    def launch(self) -> None:
        for process in self.processes:
            process.launch()

    def ready(self) -> None:
        for process in self.processes:
            process.ready()

    def stop(self) -> None:
        """SIGKILL whatever still runs (each test's cluster is thrown away, nothing needs saving)."""
        for process in self.processes:
            process.stop()

    def output(self) -> str:
        return "\n".join(f"--- server on port {p.port} ---\n{p.output()}" for p in self.processes)

    def storage(self) -> RedisStorage:
        """A handle on the cluster's rooms (not opened yet: ``async with cluster.storage() as storage``)."""
        return RedisStorage.from_url(self.storage_url)

    def provider(self) -> SwitchableProvider:
        """The switch of the processes' library: ``provider.fail = True`` takes it down in all of them."""
        return SwitchableProvider(flag=self.fail_flag)


@contextmanager
def running(cluster: Cluster) -> Iterator[Cluster]:
    """Start the cluster, stop it after use, then print its logs (pytest shows them when a test fails)."""
    try:
        cluster.launch()
        cluster.ready()
        yield cluster
    finally:
        cluster.stop()
        print(cluster.output())


class ClusterPool:
    """Starts each test's cluster on the pool's redis-server. With ``prefetch``, the next default
    cluster (three processes, default settings) is started while the current test runs."""

    def __init__(self, directory: Path, redis_url: str, *, prefetch: bool = False) -> None:
        self.directory = directory
        self.redis_url = redis_url
        self.prefetch = prefetch
        self._numbers = itertools.count()
        self._spare: Cluster | None = None
        self._launched: list[Cluster] = []

    def _launch(self, size: int, env: dict[str, str]) -> Cluster:
        cluster = Cluster(self.directory / f"cluster-{next(self._numbers)}", self.redis_url, size, **env)
        self._launched.append(cluster)
        cluster.launch()
        return cluster

    @contextmanager
    def cluster(self, env: Mapping[str, str] | None = None, size: int = 3) -> Iterator[Cluster]:
        """A fresh, running cluster (``env``: the processes' extra environment); stopped, and its
        logs printed, afterwards."""
        env = dict(env or {})
        default = self.prefetch and size == 3 and not env
        cluster: Cluster | None = None
        if default and self._spare is not None:
            cluster, self._spare = self._spare, None
        try:
            if cluster is None:
                cluster = self._launch(size, env)
            cluster.ready()
            if default:
                self._spare = self._launch(3, {})
            yield cluster
        finally:
            if cluster is not None:
                cluster.stop()
                print(cluster.output())

    def close(self) -> None:
        """Stop the spare, and any cluster a failed test left running (an async generator that
        holds one may be finalised only after the event loop is gone)."""
        for cluster in self._launched:
            cluster.stop()
        self._launched.clear()
        self._spare = None


@contextmanager
def cluster_pool(directory: Path, *, prefetch: bool = False) -> Iterator[ClusterPool]:
    """A redis-server of the pool's own (no other test flushes it under running servers), and the pool."""
    redis_dir = directory / "redis"
    redis_dir.mkdir(parents=True)
    with running_redis(redis_dir) as redis:
        pool = ClusterPool(directory, redis.url, prefetch=prefetch)
        try:
            yield pool
        finally:
            pool.close()
