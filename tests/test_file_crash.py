"""SIGKILL at random moments never leaves a torn, unknown or rolled-back room, nor a stuck directory."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import anyio
import pytest

from storage.atomic import TEMP_SUFFIX
from storage.file import DECK_FILE, ROOM_FILE, FileStorage, room_file_name
from tests.crash_writer import ROOM_NAMES, version

PROJECT = Path(__file__).resolve().parent.parent
KILLS = 50
MAX_DELAY = 0.2  # seconds between the writer's "ready" and the kill
ROOM_OF_FILE = {room_file_name(name): name for name in ROOM_NAMES}
# (writer run, save number) of one room version; None: the room was never saved.
Version = tuple[int, int] | None


def run_and_kill_writer(directory: Path, log: Path, run: int, delay: float) -> None:
    with subprocess.Popen(
        [sys.executable, "-m", "tests.crash_writer", str(directory), str(log), str(run)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=PROJECT,
    ) as writer:
        assert writer.stdout is not None
        assert writer.stderr is not None
        if writer.stdout.readline() != b"ready\n":
            pytest.fail(f"writer did not start: {writer.stderr.read().decode()}")
        time.sleep(delay)
        writer.kill()
        _, errors = writer.communicate(timeout=30)
    # Killed by us, not dead of its own accord earlier.
    assert writer.returncode == -signal.SIGKILL, errors.decode()


def read_logged_versions(log: Path, offset: int) -> tuple[dict[int, list[Version]], int]:
    """Versions the writer announced since ``offset``, per room, in order; and the new offset."""
    with log.open("rb") as lines:
        lines.seek(offset)
        text = lines.read()
    complete = text[: text.rfind(b"\n") + 1]
    logged: dict[int, list[Version]] = defaultdict(list)
    for line in complete.decode().splitlines():
        room, run, n = map(int, line.split())
        logged[room].append((run, n))
    return logged, offset + len(complete)


async def versions_on_disk(directory: Path) -> dict[int, Version]:
    """The version of every room, read as the killed writer left the directory (read-only: nothing
    repaired yet), each checked to be whole and exactly as the writer built it, deck included."""
    found: dict[int, Version] = {}
    async with FileStorage(directory, read_only=True) as reader:
        assert reader.unreadable_rooms() == []
        for name in os.listdir(directory):
            if name.startswith(".") or DECK_FILE.fullmatch(name):
                continue
            assert ROOM_FILE.fullmatch(name), name
            room = await reader.get_room(ROOM_OF_FILE[name])
            assert room is not None
            assert name == room_file_name(room.room_name)
            index = ROOM_NAMES.index(room.room_name)
            saved = (room.user_progress["run"], room.user_progress["n"])
            assert room == version(index, *saved)
            found[index] = saved
    return found


def deck_files(directory: Path) -> list[str]:
    return [name for name in os.listdir(directory) if DECK_FILE.fullmatch(name)]


async def names_after_restart(directory: Path) -> list[str]:
    async with FileStorage(directory) as storage:
        return sorted(await storage.list_room_names())


@pytest.mark.slow
def test_sigkill_at_random_moments(rooms_dir: Path, tmp_path: Path) -> None:
    log = tmp_path / "versions.log"
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    on_disk: dict[int, Version] = dict.fromkeys(range(len(ROOM_NAMES)))
    offset = 0
    kills_mid_write = kills_between_decks = 0
    for run in range(KILLS):
        run_and_kill_writer(rooms_dir, log, run, rng.uniform(0, MAX_DELAY))
        logged, offset = read_logged_versions(log, offset)
        kills_mid_write += any(name.endswith(TEMP_SUFFIX) for name in os.listdir(rooms_dir))
        found = anyio.run(versions_on_disk, rooms_dir)
        kills_between_decks += len(deck_files(rooms_dir)) > len(found)
        for room, before in on_disk.items():
            # Saves of one room are sequential: the last announced one, or the one it was replacing.
            allowed = [before, *logged[room]][-2:]
            assert found.get(room) in allowed, f"seed {seed}, run {run}, {ROOM_NAMES[room]!r}: not in {allowed}"
        on_disk = found
        # The kernel released the killed writer's lock, and open() sweeps its temp files and the
        # decks no room refers to any more: one deck per room is left.
        assert anyio.run(names_after_restart, rooms_dir) == sorted(ROOM_NAMES[room] for room in on_disk)
        assert not [name for name in os.listdir(rooms_dir) if name.endswith(TEMP_SUFFIX)]
        assert len(deck_files(rooms_dir)) == len(on_disk)
    print(
        f"{KILLS} kills: {kills_mid_write} left a temp file, {kills_between_decks} a deck no room file "
        f"referred to (seed {seed})"
    )
