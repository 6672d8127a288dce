"""Server startup time with 10,000 stored rooms against an empty store.

Starts ``python -m server`` on file storage and times process start to the first ``/health`` 200,
several times each; startup must read no room bodies, so the two should be close.

    python -m bench.startup [--rooms 10000] [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

import anyio

from bench.storage import RoomMaker, seed
from storage.file import FileStorage
from tests.services import free_port


def seconds_to_healthy(rooms_dir: Path) -> float:
    port = free_port()
    env = {"HOST": "127.0.0.1", "PORT": str(port), "STORAGE_URL": f"file:{rooms_dir}", "LOG_LEVEL": "WARNING"}
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "server"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as response:
                    if response.status == 200:
                        return time.perf_counter() - started
            except OSError:
                if process.poll() is not None:
                    raise RuntimeError("the server exited during startup") from None
                time.sleep(0.005)
    finally:
        process.terminate()
        process.wait(timeout=15)


async def fill(rooms_dir: Path, count: int) -> None:
    async with FileStorage(rooms_dir) as storage:
        await seed(storage, count, RoomMaker())


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rooms", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as work:
        empty, full = Path(work, "empty"), Path(work, "full")
        print(f"seeding {args.rooms:,} rooms (about 500 ratings each)...", flush=True)
        anyio.run(fill, full, args.rooms)
        anyio.run(fill, empty, 0)
        figures = {}
        for label, directory in (("empty store", empty), (f"{args.rooms:,} rooms", full)):
            runs = [seconds_to_healthy(directory) for _ in range(args.runs)]
            figures[label] = statistics.median(runs)
            print(f"{label:>14}: median {figures[label] * 1000:7.0f} ms to healthy (runs: {len(runs)})")
        baseline, loaded = figures.values()
        print(f"{'ratio':>14}: {loaded / baseline:.2f}x the empty store's startup time")


if __name__ == "__main__":
    main()
