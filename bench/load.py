"""Closed-loop load: R rooms x U users rate the whole deck, each sending its next rating when its
own ``userProgress`` arrives, against bench.baseline_server (the transport ceiling) and the real
server with file storage, with Redis, and as two processes sharing one Redis (clients spread over
both in turn, so every room spans both). Then 2,000 idle connections held by the real server.
Prints figures and ratios against the baseline of the same run, asserts nothing.

    python -m bench.load                # or: make bench-load
    python -m bench.load --redis-only   # baseline, Redis x1 and Redis x2 only; no idle connections
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import redis
from websockets.exceptions import ConnectionClosed

from tests.peers import Peer, over_network
from tests.services import free_port, running_redis, wait_for_port

SHAPES = ((20, 5), (100, 5))
# Baseline and server runs alternate, and each figure is the median of its runs: a 2-core machine
# shared with the load generator (and whatever else runs) swings too much for one run to tell.
REPEATS = 3
IDLE_CONNECTIONS = 2000


@dataclass
class Run:
    ratings_per_second: float
    p50_ms: float
    p99_ms: float
    peak_rss_mb: float
    # CPU time per rating while rating: the server processes' (summed), and the load generator's,
    # which shares the machine (on 2 cores, what the two take together bounds the throughput).
    server_cpu_us: float
    load_cpu_us: float


def cpu_seconds(pid: int) -> float:
    """User and system time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def memory_mb(pid: int, field: str) -> float:
    """``VmHWM`` (peak) or ``VmRSS`` (now) of a process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise LookupError(field)


@dataclass(frozen=True)
class Variant:
    """What serves the clients: the baseline server (``storage`` None), or ``processes`` real
    server processes on one storage."""

    label: str
    storage: str | None = None  # "file" or "redis"
    processes: int = 1


BASELINE = Variant("baseline")
FILE = Variant("file", "file")
REDIS = Variant("redis x1", "redis")
REDIS_PAIR = Variant("redis x2", "redis", processes=2)
TARGETS = {
    FILE: "   (targets: throughput >= 0.70, p99 <= 1.50)",
    REDIS: "   (targets: throughput >= 0.80, p99 <= 1.50)",
}


@dataclass
class Served:
    port: int
    pid: int


@contextmanager
def server_process(storage_url: str | None) -> Iterator[Served]:
    """The baseline server (``storage_url`` None) or the real one on that storage, on a free port."""
    port = free_port()
    if storage_url is None:
        command, env = [sys.executable, "-m", "bench.baseline_server", "--port", str(port)], dict(os.environ)
    else:
        command = [sys.executable, "-m", "server"]
        env = {
            **os.environ,
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "STORAGE_URL": storage_url,
            "LOG_LEVEL": "WARNING",
            # Closed-loop clients rate as fast as the server answers, and all share one address:
            # the limits are policy, not cost, so they are lifted (their checks still run).
            "RATE_LIMIT_PER_SECOND": "1000000",
            "RATE_LIMIT_BURST": "1000000",
            "MAX_ROOMS_PER_USER": "1000000",
            "MAX_CONNECTIONS_PER_ADDRESS": "1000000",
        }
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, timeout=20)
        yield Served(port, process.pid)
    finally:
        process.terminate()
        process.wait(timeout=20)


def persist_as_recommended(url: str) -> None:
    """The README's Redis settings: the append-only file, fsynced every second."""
    client = redis.Redis.from_url(url)
    try:
        client.config_set("appendfsync", "everysec")
        client.config_set("appendonly", "yes")  # starts writing the file with a (tiny) rewrite
        while client.info("persistence")["aof_rewrite_in_progress"]:
            time.sleep(0.01)
    finally:
        client.close()


@contextmanager
def deployment(variant: Variant, directory: Path) -> Iterator[list[Served]]:
    """The variant's processes, with a redis-server of their own for a Redis variant."""
    with ExitStack() as stack:
        storage_url = None if variant.storage is None else f"file:{directory / 'rooms'}"
        if variant.storage == "redis":
            (directory / "redis").mkdir()
            server = stack.enter_context(running_redis(directory / "redis"))
            persist_as_recommended(server.url)
            storage_url = server.url
        yield [stack.enter_context(server_process(storage_url)) for _ in range(variant.processes)]


async def rate_deck(peer: Peer, deck: list[str], latencies: list[float]) -> None:
    for item in deck:
        sent = time.perf_counter()
        await peer.send("rate", {"mediaId": item, "rating": "dislike"})
        while True:  # the others' progress arrives on this socket too
            message = await peer.next()
            if message["type"] == "userProgress" and message["payload"]["user"]["userName"] == peer.name:
                break
            if message["type"] in ("rateError", "error"):  # no progress will come for this rating
                raise RuntimeError(f"{peer.name} rating {item}: the server answered {message}")
        latencies.append(time.perf_counter() - sent)


@dataclass
class Loop:
    ratings: int
    seconds: float
    latencies: list[float]
    server_cpu_seconds: float
    load_cpu_seconds: float


async def closed_loop(served: list[Served], rooms: int, users: int) -> Loop:
    """Clients connect to the servers in turn: with two processes, every room spans both."""
    urls = [f"ws://127.0.0.1:{one.port}/api/ws" for one in served]
    async with over_network(urls, ping_interval=None, max_queue=None) as connect:
        groups: list[tuple[list[Peer], list[str]]] = []
        for room_number in range(rooms):
            peers = [await connect(f"user{index}") for index in range(users)]
            for peer in peers:
                await peer.login(peer.name)
            room = f"load {room_number}"
            deck = [item["id"] for item in (await peers[0].create(room))["media"]]
            for peer in peers[1:]:
                await peer.join(room)
            groups.append((peers, deck))
        latencies: list[float] = []
        server_cpu, load_cpu = sum(cpu_seconds(one.pid) for one in served), own_cpu_seconds()
        started = time.perf_counter()
        await asyncio.gather(*(rate_deck(peer, deck, latencies) for peers, deck in groups for peer in peers))
        seconds = time.perf_counter() - started
        server_cpu = sum(cpu_seconds(one.pid) for one in served) - server_cpu
        return Loop(len(latencies), seconds, latencies, server_cpu, own_cpu_seconds() - load_cpu)


async def measure(variant: Variant, rooms: int, users: int) -> Run:
    with tempfile.TemporaryDirectory() as data, deployment(variant, Path(data)) as served:
        loop = await closed_loop(served, rooms, users)
        peak = sum(memory_mb(one.pid, "VmHWM") for one in served)
    cuts = statistics.quantiles(loop.latencies, n=100)
    per_rating = 1e6 / loop.ratings
    return Run(
        loop.ratings / loop.seconds,
        cuts[49] * 1000,
        cuts[98] * 1000,
        peak,
        loop.server_cpu_seconds * per_rating,
        loop.load_cpu_seconds * per_rating,
    )


def median_run(runs: list[Run]) -> Run:
    return Run(
        statistics.median(run.ratings_per_second for run in runs),
        statistics.median(run.p50_ms for run in runs),
        statistics.median(run.p99_ms for run in runs),
        max(run.peak_rss_mb for run in runs),
        statistics.median(run.server_cpu_us for run in runs),
        statistics.median(run.load_cpu_us for run in runs),
    )


async def idle(connections: int) -> tuple[float, float, float]:
    """RSS before, RSS with ``connections`` idle sockets open, and the difference per connection (KB)."""
    with tempfile.TemporaryDirectory() as data, deployment(FILE, Path(data)) as [served]:
        url = f"ws://127.0.0.1:{served.port}/api/ws"
        async with over_network(url, ping_interval=None) as connect:
            await connect()  # the first connection imports and warms up what every connection uses
            before = memory_mb(served.pid, "VmRSS")
            for _ in range(connections - 1):
                await connect()
            await asyncio.sleep(1.0)
            during = memory_mb(served.pid, "VmRSS")
    return before, during, (during - before) * 1024 / (connections - 1)


def raise_fd_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(needed, hard), hard))


def ratio_row(label: str, ours: Run, base: Run, note: str = "") -> str:
    return (
        f"{label:>24} {ours.ratings_per_second / base.ratings_per_second:>10.2f}"
        f" {ours.p50_ms / base.p50_ms:>8.2f} {ours.p99_ms / base.p99_ms:>8.2f}"
        f" {ours.peak_rss_mb / base.peak_rss_mb:>12.2f}{note}"
    )


async def main(shapes: tuple[tuple[int, int], ...], variants: list[Variant], idle_connections: int) -> bool:
    """Print the figures; False when some variant could not complete its load."""
    raise_fd_limit(2 * idle_connections + 1000)  # both ends of every socket; the server inherits it
    print(f"closed loop, {os.cpu_count()} CPUs, load generator on the same machine; medians of {REPEATS} runs")
    if any(variant.storage == "redis" for variant in variants):
        print("redis: its own redis-server, appendonly yes, appendfsync everysec; peak RSS sums the server processes")
    print(
        f"{'rooms x users':>14} {'server':>9} {'ratings/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'peak RSS MB':>12}"
        f" {'CPU us/rating: server':>22} {'load':>5}"
    )
    completed = True
    for rooms, users in shapes:
        samples: dict[Variant, list[Run]] = {variant: [] for variant in variants}
        failures: dict[Variant, str] = {}
        for _ in range(REPEATS):
            for variant, kept in samples.items():
                if variant in failures:
                    continue
                try:
                    kept.append(await measure(variant, rooms, users))
                except (RuntimeError, TimeoutError, ConnectionClosed) as exc:  # an error reply, no reply, a drop
                    failures[variant] = str(exc) or f"{type(exc).__name__}: a reply did not come"
        runs = {variant: median_run(kept) for variant, kept in samples.items() if variant not in failures}
        for variant in variants:
            shape = f"{rooms} x {users}"
            if variant in failures:
                print(f"{shape:>14} {variant.label:>9} FAILED: {failures[variant]}")
                continue
            run = runs[variant]
            print(
                f"{shape:>14} {variant.label:>9} {run.ratings_per_second:>10.0f} {run.p50_ms:>8.2f}"
                f" {run.p99_ms:>8.2f} {run.peak_rss_mb:>12.1f} {run.server_cpu_us:>22.0f} {run.load_cpu_us:>5.0f}"
            )
        for variant, run in runs.items():
            if variant != BASELINE and BASELINE in runs:
                note = TARGETS.get(variant, "")
                print(ratio_row(f"{variant.label} / base", run, runs[BASELINE], note))
        if REDIS in runs and REDIS_PAIR in runs:
            print(ratio_row("redis x2 / x1", runs[REDIS_PAIR], runs[REDIS]))
        completed = completed and not failures
    if idle_connections:
        before, during, per_connection = await idle(idle_connections)
        print(
            f"{idle_connections} idle connections: server RSS {before:.1f} MB -> {during:.1f} MB"
            f" (target <= 250 MB), {per_connection:.1f} KB per connection"
        )
    return completed


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--idle", type=int, default=IDLE_CONNECTIONS, help="idle connections to hold (0: none)")
    parser.add_argument(
        "--redis-only", action="store_true", help="only the baseline, Redis x1 and Redis x2; no idle connections"
    )
    arguments = parser.parse_args()
    chosen = [BASELINE, REDIS, REDIS_PAIR] if arguments.redis_only else [BASELINE, FILE, REDIS, REDIS_PAIR]
    if shutil.which("redis-server") is None:
        if arguments.redis_only:
            sys.exit("redis-server is not installed (Debian package redis-server)")
        print("redis-server is not installed (Debian package redis-server): Redis variants skipped")
        chosen = [variant for variant in chosen if variant.storage != "redis"]
    if not asyncio.run(main(SHAPES, chosen, 0 if arguments.redis_only else arguments.idle)):
        sys.exit("some variants failed under load (see FAILED above)")
