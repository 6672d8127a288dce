"""Saves rooms until killed; tests/test_file_crash.py kills it at random moments.

Usage: ``python -m tests.crash_writer DIRECTORY LOG RUN``. Prints ``ready`` once the storage is open.
Before each save it appends ``<room index> <run> <n>`` to LOG, so the test knows every version that
may be on disk: the last one logged for a room, or the one before it. Each version's deck is a
function of its run, so a room read with another run's deck would not be any logged version.
"""

from __future__ import annotations

import functools
import itertools
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

import anyio

from storage import SerializedRoom
from storage.file import FileStorage

ROOM_NAMES = ["Crash Night", "crash/../night", "Crème brûlée", "🎬"]
# Enough ratings to make each write a few tens of KiB, so kills often land inside one.
RATINGS_PER_ROOM = 400
# Each run gives every room a new deck (written by its first save there), so kills also land
# between a deck's write and the room file's, and between the room file's and the old deck's removal.
DECK_SIZE = 5_000
CREATED_AT = datetime(2025, 10, 25, 12, tzinfo=UTC)


def version(room: int, run: int, n: int) -> SerializedRoom:
    """The content of save ``n`` of room ``room`` in writer run ``run``: a pure function of the three."""
    return SerializedRoom(
        room_name=ROOM_NAMES[room],
        created_at=CREATED_AT,
        user_progress={"run": run, "n": n},
        ratings={f"movie-{i}": [("ann", "like", n * RATINGS_PER_ROOM + i)] for i in range(RATINGS_PER_ROOM)},
        media_ids=deck(run),
    )


@functools.cache
def deck(run: int) -> list[str]:
    # One list per run: saves of a run share it, as a room's snapshots share their deck.
    return [f"run-{run}-film-{i}" for i in range(DECK_SIZE)]


async def save_forever(storage: FileStorage, log_fd: int, room: int, run: int) -> None:
    for n in itertools.count():
        # One small O_APPEND write: it lands whole or not at all, even under SIGKILL.
        os.write(log_fd, f"{room} {run} {n}\n".encode())
        await storage.save_room(version(room, run, n))


async def main(directory: Path, log: Path, run: int) -> None:
    log_fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    async with FileStorage(directory) as storage:
        print("ready", flush=True)
        # One task per room: saves of different rooms overlap, saves of one room follow each other.
        async with anyio.create_task_group() as tg:
            for room in range(len(ROOM_NAMES)):
                tg.start_soon(save_forever, storage, log_fd, room, run)


if __name__ == "__main__":
    anyio.run(main, Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]))
