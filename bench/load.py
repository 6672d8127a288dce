"""Closed-loop load: R rooms x U users rate the whole deck, each sending its next rating when its
own ``userProgress`` arrives; the real server (file storage) against bench.baseline_server, the
transport ceiling. Then 2,000 idle connections held by the real server. Prints figures, asserts
nothing.

    python -m bench.load            # or: make bench-load
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.peers import Peer, over_network
from tests.services import free_port, wait_for_port

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


def memory_mb(pid: int, field: str) -> float:
    """``VmHWM`` (peak) or ``VmRSS`` (now) of a process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise LookupError(field)


@contextmanager
def server_process(kind: str, data_dir: Path) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    port = free_port()
    if kind == "baseline":
        command, env = [sys.executable, "-m", "bench.baseline_server", "--port", str(port)], dict(os.environ)
    else:
        command = [sys.executable, "-m", "server"]
        env = {
            **os.environ,
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "STORAGE_URL": f"file:{data_dir}",
            "LOG_LEVEL": "WARNING",
            # Closed-loop clients rate as fast as the server answers, and all share one address:
            # the limits are policy, not cost, so they are lifted (their checks still run).
            "RATE_LIMIT_PER_SECOND": "1000000",
            "RATE_LIMIT_BURST": "1000000",
            "MAX_ROOMS_PER_USER": "1000000",
        }
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, timeout=20)
        yield port, process
    finally:
        process.terminate()
        process.wait(timeout=20)


async def rate_deck(peer: Peer, deck: list[str], latencies: list[float]) -> None:
    for item in deck:
        sent = time.perf_counter()
        await peer.send("rate", {"mediaId": item, "rating": "dislike"})
        while True:  # the others' progress arrives on this socket too
            message = await peer.next()
            if message["type"] == "userProgress" and message["payload"]["user"]["userName"] == peer.name:
                break
        latencies.append(time.perf_counter() - sent)


async def closed_loop(port: int, rooms: int, users: int) -> tuple[int, float, list[float]]:
    url = f"ws://127.0.0.1:{port}/api/ws"
    async with over_network(url, ping_interval=None, max_queue=None) as connect:
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
        started = time.perf_counter()
        await asyncio.gather(*(rate_deck(peer, deck, latencies) for peers, deck in groups for peer in peers))
        return len(latencies), time.perf_counter() - started, latencies


async def measure(kind: str, rooms: int, users: int) -> Run:
    with tempfile.TemporaryDirectory() as data, server_process(kind, Path(data) / "rooms") as (port, process):
        count, seconds, latencies = await closed_loop(port, rooms, users)
        peak = memory_mb(process.pid, "VmHWM")
    cuts = statistics.quantiles(latencies, n=100)
    return Run(count / seconds, cuts[49] * 1000, cuts[98] * 1000, peak)


def median_run(runs: list[Run]) -> Run:
    return Run(
        statistics.median(run.ratings_per_second for run in runs),
        statistics.median(run.p50_ms for run in runs),
        statistics.median(run.p99_ms for run in runs),
        max(run.peak_rss_mb for run in runs),
    )


async def idle(connections: int) -> tuple[float, float, float]:
    """RSS before, RSS with ``connections`` idle sockets open, and the difference per connection (KB)."""
    with tempfile.TemporaryDirectory() as data, server_process("server", Path(data) / "rooms") as (port, process):
        url = f"ws://127.0.0.1:{port}/api/ws"
        async with over_network(url, ping_interval=None) as connect:
            await connect()  # the first connection imports and warms up what every connection uses
            before = memory_mb(process.pid, "VmRSS")
            for _ in range(connections - 1):
                await connect()
            await asyncio.sleep(1.0)
            during = memory_mb(process.pid, "VmRSS")
    return before, during, (during - before) * 1024 / (connections - 1)


def raise_fd_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(needed, hard), hard))


async def main(shapes: tuple[tuple[int, int], ...], idle_connections: int) -> None:
    raise_fd_limit(2 * idle_connections + 1000)  # both ends of every socket; the server inherits it
    print(f"closed loop, {os.cpu_count()} CPUs, load generator on the same machine; medians of {REPEATS} runs")
    header = f"{'rooms x users':>14} {'server':>9} {'ratings/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'peak RSS MB':>12}"
    print(header)
    for rooms, users in shapes:
        samples: dict[str, list[Run]] = {"baseline": [], "server": []}
        for _ in range(REPEATS):
            for kind, kept in samples.items():
                kept.append(await measure(kind, rooms, users))
        runs = {kind: median_run(kept) for kind, kept in samples.items()}
        for kind, run in runs.items():
            print(
                f"{f'{rooms} x {users}':>14} {kind:>9} {run.ratings_per_second:>10.0f} {run.p50_ms:>8.2f}"
                f" {run.p99_ms:>8.2f} {run.peak_rss_mb:>12.1f}"
            )
        base, ours = runs["baseline"], runs["server"]
        print(
            f"{'':>14} {'ratio':>9} {ours.ratings_per_second / base.ratings_per_second:>10.2f}"
            f" {ours.p50_ms / base.p50_ms:>8.2f} {ours.p99_ms / base.p99_ms:>8.2f}"
            f" {ours.peak_rss_mb / base.peak_rss_mb:>12.2f}   (targets: throughput >= 0.70, p99 <= 1.50)"
        )
    before, during, per_connection = await idle(idle_connections)
    print(
        f"{idle_connections} idle connections: server RSS {before:.1f} MB -> {during:.1f} MB"
        f" (target <= 250 MB), {per_connection:.1f} KB per connection"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--idle", type=int, default=IDLE_CONNECTIONS, help="idle connections to hold")
    arguments = parser.parse_args()
    asyncio.run(main(SHAPES, arguments.idle))
