"""The room registry: lazy restore, idle eviction, and the media order kept across restores, with
rooms decided in this process and rooms shared through the in-memory stand-in for Redis."""

from __future__ import annotations

import itertools
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import anyio.lowlevel
import pytest

from server.metrics import Metrics
from server.offload import Offload
from server.protocol import CreateRoomRequest, Frame, Reply, encode
from server.rooms.changes import RoomChanges
from server.rooms.local import LocalChanges
from server.rooms.registry import RoomRegistry
from server.rooms.room import Room
from server.rooms.shared import MemoryHub, MemoryLive, SharedChanges
from server.user import User
from storage import MemoryStorage, SerializedRoom
from tests.library import ListProvider

pytestmark = pytest.mark.anyio


class FakeSeat:
    def __init__(self, name: str) -> None:
        self.user = User(userName=name)
        self.seat_id = f"seat-{name}"
        self.window: int | None = None
        self.frames: list[str] = []
        self.room: Room | None = None

    def send(self, frame: Frame) -> None:
        assert isinstance(frame, str), "a deck of ten films is sent whole"
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


MODES = ["local", "shared"]
DAY = 24 * 3600 * 1000


def registry(storage: MemoryStorage, clock: Clock, idle_timeout: float = 60, mode: str = "local") -> RoomRegistry:
    """A registry of one process; ``shared`` rooms are decided by a hub that all registries built on
    the same storage share (a stand-in for their Redis)."""
    counter = itertools.count(1)
    changes: RoomChanges
    if mode == "local":
        changes = LocalChanges(
            storage, max_members=50, absence_ms=DAY, now_ms=lambda: next(counter), save_delay=1, save_max_wait=5
        )
    else:
        hub = HUBS.setdefault(id(storage), MemoryHub(storage))
        live = MemoryLive(hub, f"process-{next(PROCESSES)}")
        changes = SharedChanges(
            live, presence_timeout=15, max_members=50, absence_ms=DAY, now_ms=lambda: next(counter), metrics=Metrics()
        )
    return RoomRegistry(
        storage,
        ListProvider(),
        changes,
        offload=Offload(workers=1, queue=4, per_client=2),
        idle_timeout=idle_timeout,
        rng=random.Random(3),
        clock=clock,
    )


HUBS: dict[int, MemoryHub] = {}
PROCESSES = itertools.count(1)


async def flushed(rooms: RoomRegistry) -> None:
    """Everything acknowledged is stored (shared rooms store each change as it is decided)."""
    if isinstance(rooms.changes, LocalChanges):
        assert await rooms.changes.saver.flush() == []


async def delivered() -> None:
    """Give the shared rooms' events time to reach every replica (they travel asynchronously)."""
    for _ in range(20):
        await anyio.lowlevel.checkpoint()


@pytest.mark.parametrize("mode", MODES)
async def test_idle_rooms_leave_memory_but_not_storage(mode: str) -> None:
    storage, clock = CountingStorage(), Clock()
    rooms = registry(storage, clock, idle_timeout=60, mode=mode)
    async with running(rooms):
        room = await rooms.create(
            "Movie Night", CreateRoomRequest(roomName="Movie Night"), User(userName="ann"), "client"
        )
        seat = FakeSeat("ann")
        await rooms.seat(room, seat, seat.user, Reply.CREATE_ROOM_SUCCESS)
        await rooms.rate(room, "ann", room.deck.ids[0], "like")
        await delivered()
        await idle_then_evicted(rooms, room, seat, clock)
    stored = await storage.get_room("Movie Night")
    assert stored is not None
    assert [(user, rating) for user, rating, _ in stored.ratings[room.deck.ids[0]]] == [("ann", "like")]


async def idle_then_evicted(rooms: RoomRegistry, room: Room, seat: FakeSeat, clock: Clock) -> None:
    clock.now = 1000
    assert await rooms.evict_idle() == 0  # still connected
    await rooms.leave(room, seat, permanently=False)
    clock.now = 1059
    assert await rooms.evict_idle() == 0  # not idle long enough
    clock.now = 1061
    assert await rooms.evict_idle() == 1  # flushed first
    assert rooms.rooms == {}


@asynccontextmanager
async def running(*registries: RoomRegistry) -> AsyncIterator[None]:
    """The registries' background work (the saver; shared rooms' event delivery) runs meanwhile."""
    async with anyio.create_task_group() as tasks:
        for rooms in registries:
            tasks.start_soon(rooms.run)
        await delivered()
        yield
        tasks.cancel_scope.cancel()


@pytest.mark.parametrize("mode", MODES)
async def test_concurrent_joins_restore_a_room_once(mode: str) -> None:
    storage, clock = CountingStorage(), Clock()
    first = registry(storage, clock, mode=mode)
    second = registry(storage, clock, mode=mode)  # a restarted process, or another one
    seats = [FakeSeat(f"user{i}") for i in range(10)]
    joined: list[Room] = []

    async def join(seat: FakeSeat) -> None:
        room = await second.join("movie night", seat, seat.user, password=None, member_token=None, client="client")
        joined.append(room)

    async with running(first, second):
        created = await first.create(
            "Movie Night", CreateRoomRequest(roomName="Movie Night"), User(userName="ann"), "client"
        )
        gets = storage.gets
        async with anyio.create_task_group() as tg:
            for seat in seats:
                tg.start_soon(join, seat)
        await delivered()
    if mode == "local":
        assert storage.gets == gets + 1
    assert len({id(room) for room in joined}) == 1
    assert [item.id for item in joined[0].deck] == [item.id for item in created.deck]
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
    await flushed(rooms)
    stored = await storage.get_room("old")
    assert stored is not None
    assert stored.media_ids == order
    again = await registry(storage, clock).get("old")
    assert again is not None
    assert [item.id for item in again.deck] == order


@pytest.mark.parametrize("mode", MODES)
async def test_room_broadcasts_reach_every_seat_in_order(mode: str) -> None:
    storage, clock = MemoryStorage(), Clock()
    rooms = registry(storage, clock, mode=mode)
    a, b = FakeSeat("a"), FakeSeat("b")
    async with running(rooms):
        room = await rooms.create("r", CreateRoomRequest(roomName="r"), User(userName="a"), "client")
        await rooms.seat(room, a, a.user, Reply.CREATE_ROOM_SUCCESS)
        await rooms.seat(room, b, b.user, Reply.JOIN_ROOM_SUCCESS)
        await rooms.rate(room, "a", "test:1", "like")
        await rooms.rate(room, "b", "test:1", "like")
        await delivered()
    assert b.frames[-3:] == [
        encode(Reply.USER_PROGRESS, {"user": {"userName": "a", "permissions": []}, "progress": 0.1}),
        encode(Reply.USER_PROGRESS, {"user": {"userName": "b", "permissions": []}, "progress": 0.1}),
        b.frames[-1],
    ]
    assert '"type":"match"' in b.frames[-1]
