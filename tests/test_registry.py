"""The room registry: lazy restore, idle eviction, and the media order kept across restores."""

from __future__ import annotations

import itertools
import random

import anyio
import pytest

from server.protocol import CreateRoomRequest, encode
from server.rooms.registry import RoomRegistry
from server.rooms.room import Room
from server.user import User
from storage import MemoryStorage, SerializedRoom
from tests.library import ListProvider

pytestmark = pytest.mark.anyio


class FakeSeat:
    def __init__(self, name: str) -> None:
        self.user = User(userName=name)
        self.seat_id = f"seat-{name}"
        self.frames: list[str] = []
        self.room: Room | None = None

    def send(self, frame: str) -> None:
        self.frames.append(frame)

    def detach(self, room: Room) -> None:
        self.room = None


class CountingStorage(MemoryStorage):
    def __init__(self) -> None:
        super().__init__()
        self.gets = 0

    async def get_room(self, room_name: str) -> SerializedRoom | None:
        self.gets += 1
        await anyio.sleep(0.01)  # a slow disk, so concurrent joins overlap
        return await super().get_room(room_name)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def registry(storage: MemoryStorage, clock: Clock, idle_timeout: float = 60) -> RoomRegistry:
    counter = itertools.count(1)
    return RoomRegistry(
        storage,
        ListProvider(),
        save_delay=1,
        save_max_wait=5,
        idle_timeout=idle_timeout,
        now_ms=lambda: next(counter),
        rng=random.Random(3),
        clock=clock,
    )


async def test_idle_rooms_leave_memory_but_not_storage() -> None:
    storage, clock = CountingStorage(), Clock()
    rooms = registry(storage, clock, idle_timeout=60)
    room = await rooms.create(CreateRoomRequest(roomName="Movie Night"), User(userName="ann"))
    seat = FakeSeat("ann")
    await rooms.seat(room, seat, seat.user, None, "createRoomSuccess")
    room.rate("ann", room.media[0].id, "like")
    clock.now = 1000
    assert await rooms.evict_idle() == 0  # still connected
    await rooms.leave(room, seat, permanently=False)
    clock.now = 1059
    assert await rooms.evict_idle() == 0  # not idle long enough
    clock.now = 1061
    assert await rooms.evict_idle() == 1
    assert rooms.rooms == {}
    stored = await storage.get_room("Movie Night")
    assert stored is not None
    assert stored.ratings == {room.media[0].id: [("ann", "like", 2)]}  # flushed before eviction


async def test_concurrent_joins_restore_a_room_once() -> None:
    storage, clock = CountingStorage(), Clock()
    first = registry(storage, clock)
    created = await first.create(CreateRoomRequest(roomName="Movie Night"), User(userName="ann"))
    second = registry(storage, clock)  # a restarted process
    seats = [FakeSeat(f"user{i}") for i in range(10)]
    joined: list[Room] = []

    async def join(seat: FakeSeat) -> None:
        room = await second.join("movie night", seat, seat.user, None, None)
        joined.append(room)

    async with anyio.create_task_group() as tg:
        for seat in seats:
            tg.start_soon(join, seat)
    assert storage.gets == 1
    assert len({id(room) for room in joined}) == 1
    assert [item.id for item in joined[0].media] == [item.id for item in created.media]
    assert set(joined[0].seats) == {seat.user.userName for seat in seats}


async def test_a_room_from_the_original_movematch_gets_a_fixed_order() -> None:
    storage, clock = MemoryStorage(), Clock()
    legacy = SerializedRoom.from_dict(
        {
            "roomName": "old",
            "password": "pw",
            "createdAt": "2025-10-25T12:00:00.000Z",
            "creatorPlexUserId": "1",
            "creatorPlexUsername": "john",
            "ratings": {"test:1": [["john", "like", 1]]},
            "userProgress": {"john": 1},
        }
    )
    await storage.save_room(legacy)
    rooms = registry(storage, clock)
    room = await rooms.get("old")
    assert room is not None
    assert room.state.media_ids is not None
    order = list(room.state.media_ids)
    assert await rooms.saver.flush() == []
    stored = await storage.get_room("old")
    assert stored is not None
    assert stored.media_ids == order
    again = await registry(storage, clock).get("old")
    assert again is not None
    assert [item.id for item in again.media] == order


async def test_room_broadcasts_reach_every_seat_in_order() -> None:
    storage, clock = MemoryStorage(), Clock()
    rooms = registry(storage, clock)
    room = await rooms.create(CreateRoomRequest(roomName="r"), User(userName="a"))
    a, b = FakeSeat("a"), FakeSeat("b")
    await rooms.seat(room, a, a.user, None, "createRoomSuccess")
    await rooms.seat(room, b, b.user, None, "joinRoomSuccess")
    room.rate("a", "test:1", "like")
    room.rate("b", "test:1", "like")
    assert b.frames[-3:] == [
        encode("userProgress", {"user": {"userName": "a", "permissions": []}, "progress": 0.1}),
        encode("userProgress", {"user": {"userName": "b", "permissions": []}, "progress": 0.1}),
        b.frames[-1],
    ]
    assert '"type":"match"' in b.frames[-1]
