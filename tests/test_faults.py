"""Faults of the real server process: SIGKILL and SIGTERM during a rating storm, a read-only or full disk."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import pytest

from storage import SerializedRoom
from tests.peers import Connect, Peer, over_network
from tests.services import ServerProcess, tmpfs

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

SAVE_DELAY, SAVE_MAX_WAIT = 0.05, 0.2
# What may be lost: ratings acknowledged within the maximum save wait (plus scheduling slack) of the kill.
LOSS_WINDOW = SAVE_MAX_WAIT + 0.5
KILLS = 20


def fast_saves() -> dict[str, str]:
    # The storm rates faster than a person; the rate limit is not under test here.
    return {"SAVE_DELAY": str(SAVE_DELAY), "SAVE_MAX_WAIT": str(SAVE_MAX_WAIT), "RATE_LIMIT_PER_SECOND": "1000"}


async def user(connect: Connect, name: str) -> Peer:
    peer = await connect(name)
    await peer.login(name)
    return peer


async def storm(peer: Peer, deck: list[str], acknowledged: list[tuple[float, str]], stop: anyio.Event) -> None:
    """Rate the deck at a steady pace, recording when each rating was acknowledged (its userProgress)."""
    for item in deck:
        if stop.is_set():
            return
        await peer.send("rate", {"mediaId": item, "rating": "dislike"})
        await peer.expect("userProgress")
        acknowledged.append((time.monotonic(), item))
        await anyio.sleep(0.01)


async def remaining(connect: Connect, room: str, member_token: str | None = None) -> list[str]:
    """The cards ann has left; with her token she resumes her seat (with Redis, a killed process's
    members hold their seats until its heartbeat lapses)."""
    peer = await user(connect, "ann")
    return [item["id"] for item in (await peer.join(room, memberToken=member_token))["media"]]


async def storm_then_signal(
    server: ServerProcess, signum: int, room: str, after: float
) -> tuple[list[str], list[tuple[float, str]], float, str]:
    """Create ``room``, rate in it, send ``signum`` after ``after`` seconds; returns deck, acks,
    signal time and ann's member token."""
    acknowledged: list[tuple[float, str]] = []
    stop = anyio.Event()
    async with over_network(server.ws_url) as connect:
        ann = await user(connect, "ann")
        created = await ann.create(room)
        deck = [item["id"] for item in created["media"]]
        signalled = 0.0
        with contextlib.suppress(Exception):  # the connection dies with the server
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(storm, ann, deck, acknowledged, stop)
                try:
                    await anyio.sleep(after)
                finally:
                    server.signal(signum)
                    signalled = time.monotonic()
                    stop.set()
    server.wait(timeout=15)
    return deck, acknowledged, signalled, created["memberToken"]


def check_room_files(directory: Path) -> None:
    """Every room file parses, its progress counts its ratings, and no temp file is left after a start."""
    assert not list(directory.glob(".*.tmp"))
    for path in directory.glob("[!.]*.json"):  # not the index
        room = SerializedRoom.from_json(path.read_bytes())
        rated: dict[str, int] = {}
        for triples in room.ratings.values():
            for user_name, _, _ in triples:
                rated[user_name] = rated.get(user_name, 0) + 1
        assert rated == {name: count for name, count in room.user_progress.items() if count}, path


@pytest.mark.parametrize("backend", ["file", pytest.param("redis", marks=pytest.mark.redis)])
async def test_acknowledged_ratings_survive_repeated_sigkill(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    rooms = tmp_path / "rooms"
    env = fast_saves()
    if backend == "redis":
        env["STORAGE_URL"] = request.getfixturevalue("redis_url")
    server = ServerProcess(rooms, **env)
    rng = random.Random(20)
    lost_windows: list[float] = []
    try:
        previous: tuple[str, list[str], list[tuple[float, str]], float, str] | None = None
        for round_number in range(KILLS + 1):
            server.start()
            if previous is not None and backend == "file":
                # Before anyone connects: a join's save would be a write in progress (a temp file).
                check_room_files(rooms)
            if previous is not None:
                room, deck, acknowledged, killed_at, token = previous
                async with over_network(server.ws_url) as connect:
                    left = set(await remaining(connect, room, token))
                rated = [item for item in deck if item not in left]
                assert rated == deck[: len(rated)], "the survivors are a prefix of the storm"
                must_survive = [item for at, item in acknowledged if at < killed_at - LOSS_WINDOW]
                assert not left & set(must_survive), f"round {round_number}: acknowledged ratings were lost"
                lost = [at for at, item in acknowledged if item in left]
                lost_windows.append(killed_at - min(lost) if lost else 0.0)
            if round_number == KILLS:
                break
            room = f"Storm {round_number}"
            deck, acknowledged, killed_at, token = await storm_then_signal(
                server, signal.SIGKILL, room, rng.uniform(0.3, 0.8)
            )
            assert acknowledged, "nothing was rated before the kill"
            previous = (room, deck, acknowledged, killed_at, token)
    finally:
        server.stop()
    print(f"{backend}: {KILLS} kills, longest loss window {max(lost_windows):.3f} s")
    assert "Traceback" not in server.output()


@pytest.mark.parametrize("backend", ["file", pytest.param("redis", marks=pytest.mark.redis)])
async def test_sigterm_during_a_storm_loses_nothing_acknowledged(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    env = fast_saves() | {"SAVE_DELAY": "1", "SAVE_MAX_WAIT": "5"}  # only the shutdown flush can save them
    if backend == "redis":
        env["STORAGE_URL"] = request.getfixturevalue("redis_url")
    server = ServerProcess(tmp_path / "rooms", **env)
    try:
        server.start()
        deck, acknowledged, _, token = await storm_then_signal(server, signal.SIGTERM, "Calm", 0.5)
        server.start()
        async with over_network(server.ws_url) as connect:
            left = set(await remaining(connect, "Calm", token))
    finally:
        server.stop()
    assert acknowledged
    assert not left & {item for _, item in acknowledged}
    assert len(left) <= len(deck) - len(acknowledged)


# -- the disk fails under a running server ----------------------------------------------------


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True)


@contextlib.contextmanager
def read_only(directory: Path) -> Iterator[None]:
    """New writes under ``directory`` fail with EROFS (a read-only bind mount over it: a remount of
    the whole file system is refused while the server holds its lock file open for writing)."""
    _mount("--bind", str(directory), str(directory))
    try:
        _mount("-o", "remount,bind,ro", str(directory))
        yield
    finally:
        subprocess.run(["umount", str(directory)], check=True)


def small_disk(path: Path, size: str = "256k") -> contextlib.AbstractContextManager[Path]:
    """A tmpfs of its own, so the test can make it read-only or fill it."""
    return tmpfs(path, f"size={size}")


def _fill(directory: Path) -> Path:
    filler = directory / "filler"
    with contextlib.suppress(OSError), filler.open("wb") as out:
        while True:
            out.write(b"\0" * 4096)
            out.flush()
            os.fsync(out.fileno())
    return filler


async def _health(server: ServerProcess) -> int:
    async with httpx.AsyncClient(base_url=server.http_url) as client:
        return (await client.get("/health")).status_code


@pytest.mark.parametrize("fault", ["read-only", "full"])
async def test_storage_failure_is_reported_and_heals_by_itself(tmp_path: Path, fault: str) -> None:
    with small_disk(tmp_path / "disk") as disk:
        # The disk is far below the free space new rooms need by default.
        server = ServerProcess(disk / "rooms", **fast_saves(), MIN_FREE_DISK_MB="0")
        server.log = tmp_path / "server.log"
        try:
            server.start()
            async with over_network(server.ws_url) as connect:
                ann, bob = await user(connect, "ann"), await user(connect, "bob")
                deck = [item["id"] for item in (await ann.create("Night"))["media"]]
                await bob.join("Night")
                await ann.expect("userJoinedRoom")
                with contextlib.ExitStack() as fault_lasts:
                    if fault == "read-only":
                        fault_lasts.enter_context(read_only(disk / "rooms"))
                    else:
                        fault_lasts.callback(_fill(disk).unlink)
                    for item in deck[:3]:
                        await ann.send("rate", {"mediaId": item, "rating": "like"})
                    outage = await ann.wait_for("error")
                    assert outage["name"] == "StorageUnavailable"
                    assert (await bob.wait_for("error"))["name"] == "StorageUnavailable"
                    assert await _health(server) == 503
                    await ann.send("createRoom", {"roomName": "Elsewhere"})
                    assert (await ann.wait_for("createRoomError"))["name"] == "StorageUnavailable"
                    await bob.send("rate", {"mediaId": deck[0], "rating": "like"})  # still served from memory
                    assert (await bob.wait_for("match"))["media"]["id"] == deck[0]
                with anyio.fail_after(10):
                    while await _health(server) != 200:  # noqa: ASYNC110 (polling another process)
                        await anyio.sleep(0.2)
            server.signal(signal.SIGKILL)
            server.wait(timeout=10)
            server.start()
            async with over_network(server.ws_url) as connect:
                assert set(await remaining(connect, "Night")).isdisjoint(deck[:3])
        finally:
            server.stop()
        output = server.output()
    assert "Traceback" not in output
    assert output.count("could not save room 'Night'") == 1, "one error line per outage"
