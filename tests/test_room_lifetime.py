"""Rooms have a lifetime and storage a floor: rooms nobody opens expire, creation stops at the cap
on rooms and above a nearly full disk."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from server.app import create_app
from server.config import Settings
from storage import MemoryStorage, SerializedRoom, Storage, create_storage, room_key
from tests.library import ListProvider
from tests.peers import Peer, in_process
from tests.worlds import Shared, World

pytestmark = pytest.mark.anyio

DAY = timedelta(days=1)


async def user(connect: Any, name: str) -> Peer:
    peer: Peer = await connect(name)
    await peer.login(name)
    return peer


def unopened(name: str, days: float) -> SerializedRoom:
    """A room created and last opened ``days`` ago."""
    when = datetime.now(UTC) - days * DAY
    return SerializedRoom(room_name=name, created_at=when, opened_at=when, media_ids=["test:1"])


async def test_rooms_nobody_opened_for_the_retention_period_are_deleted(shared: Shared) -> None:
    app = shared.app("sweeper", room_retention_days=30)
    async with in_process(app) as connect:
        storage: Storage = app.state.context.storage
        for name, days in (("Old", 31), ("Recent", 29), ("Standing", 400), ("Open here", 45)):
            assert await storage.create_room(unopened(name, days))
        registry = app.state.context.registry
        registry.standing.add(room_key("Standing"))
        ann = await user(connect, "ann")
        await ann.join("Open here")  # opened now, and held in memory
        assert await registry.expire_unopened() == ["Old"]
        assert sorted(await storage.list_room_names()) == ["Open here", "Recent", "Standing"]
        assert await registry.expire_unopened() == []


async def test_retention_zero_keeps_rooms_for_ever() -> None:
    storage = MemoryStorage()
    app = create_app(Settings(room_retention_days=0), storage=storage, provider=ListProvider())
    async with in_process(app):
        assert await storage.create_room(unopened("Ancient", 10_000))
        assert await app.state.context.registry.expire_unopened() == []
        assert await storage.has_room("Ancient")


async def test_creation_stops_at_the_cap_on_rooms(make_world: Any) -> None:
    async for world in make_world(max_rooms=2):
        ann = await world_user(world, "ann")
        await ann.create("One")
        await ann.create("Two")
        await ann.send("createRoom", {"roomName": "Three"})
        assert (await ann.wait_for("createRoomError"))["name"] == "StorageFull"


async def world_user(world: World, name: str) -> Peer:
    return await world.user(name)


async def test_creation_stops_above_a_nearly_full_disk(tmp_path: Path) -> None:
    storage = create_storage(f"file:{tmp_path / 'rooms'}")
    # More free disk than any disk has: every creation meets the floor.
    settings = Settings(min_free_disk_mb=2**40)
    app = create_app(settings, storage=storage, provider=ListProvider(), rng=random.Random(1))
    async with in_process(app) as connect:
        ann = await user(connect, "ann")
        await ann.send("createRoom", {"roomName": "Full"})
        error = await ann.wait_for("createRoomError")
    assert error["name"] == "StorageFull"
    assert "disk" in error["message"]
