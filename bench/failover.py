"""Redis failover under load: two server processes on one primary, two replicas and three Redis
Sentinels (``down-after-milliseconds`` as the README recommends), four members rating steadily;
the primary is killed with SIGKILL. Prints, with REDIS_MIN_REPLICAS=0 and =1, the time until both
processes serve again (a rating sent after the kill acknowledged on each), against the time
Sentinel itself takes to promote a replica (the baseline, measured in the same run), and how many
acknowledged ratings the store lost. Asserts nothing.

    python -m bench.failover [--runs 3] [--down-after-ms 5000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import anyio

from tests.cluster import Cluster
from tests.failover import STORM_ENV, STORM_ROOM, Storm
from tests.services import RedisServer, running_sentinels

TARGET = 15.0  # seconds until the processes serve again


@dataclass
class Run:
    promoted: float  # seconds from the kill until every sentinel names the new primary
    served: float  # seconds from the kill until both processes acknowledged a rating sent after it
    acknowledged: int
    lost: int


async def measure(directory: Path, min_replicas: int, down_after_ms: int) -> Run:
    with running_sentinels(directory / "redis", down_after_ms=down_after_ms) as servers:
        env = {**STORM_ENV, "REDIS_MIN_REPLICAS": str(min_replicas), "LOG_LEVEL": "WARNING"}
        cluster = Cluster(directory / "cluster", servers.url(), size=2, **env)
        try:
            cluster.launch()
            cluster.ready()
            old = servers.primary()
            promoted: list[float] = []
            watchers: list[threading.Thread] = []

            def kill() -> None:
                old.kill()
                killed = time.monotonic()

                def watch() -> None:
                    servers.wait_for_failover(old)  # polls the sentinels every 0.1 s
                    promoted.append(time.monotonic() - killed)

                watchers.append(threading.Thread(target=watch, daemon=True))
                watchers[0].start()

            with anyio.fail_after(120):
                outcome = await Storm(cluster).run(kill)
            await anyio.to_thread.run_sync(watchers[0].join)
            new: RedisServer = await anyio.to_thread.run_sync(servers.wait_for_failover, old)
            await anyio.to_thread.run_sync(servers.wait_until_settled, new)
            async with cluster.storage() as storage:
                room = await storage.get_room(STORM_ROOM)
        finally:
            cluster.stop()
    assert room is not None, "the storm's room is gone"
    served = outcome.served_after()
    if len(served) != 2:
        raise RuntimeError(f"a process did not serve again (served: {served})")
    return Run(promoted[0], max(served.values()), len(outcome.acknowledged()), len(outcome.lost(room)))


async def main(runs: int, down_after_ms: int) -> None:
    print(
        f"{os.cpu_count()} CPUs, everything on this machine; 2 processes, 4 raters; "
        f"down-after-milliseconds {down_after_ms}; medians of {runs} runs (lost: totals)"
    )
    print(f"{'min_replicas':>12} {'sentinel s':>11} {'served s':>9} {'ratio':>6} {'acknowledged':>13} {'lost':>5}")
    with tempfile.TemporaryDirectory() as work:
        for min_replicas in (0, 1):
            directories = [Path(work, f"{min_replicas}-{number}") for number in range(runs)]
            samples = [await measure(directory, min_replicas, down_after_ms) for directory in directories]
            promoted = statistics.median(run.promoted for run in samples)
            served = statistics.median(run.served for run in samples)
            print(
                f"{min_replicas:>12} {promoted:>11.2f} {served:>9.2f} {served / promoted:>6.2f}"
                f" {sum(run.acknowledged for run in samples):>13} {sum(run.lost for run in samples):>5}"
            )
    print(f"served: kill to serving again on both processes (target: within {TARGET:g} s); ratio: served / sentinel")


def cli(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--down-after-ms", type=int, default=5000)
    args = parser.parse_args(argv)
    anyio.run(main, args.runs, args.down_after_ms)


if __name__ == "__main__":
    cli()
