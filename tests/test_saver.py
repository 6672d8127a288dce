"""The debounced saver: its pure schedule, and its driver on a fake clock (trio's MockClock)."""

from __future__ import annotations

import itertools
import math

import anyio
import pytest
import trio.testing
from hypothesis import given, strategies as st

from server.rooms.saver import PendingSaves, Saver
from storage import MemoryStorage, SerializedRoom, StorageError

DELAY, MAX_WAIT = 1.0, 5.0


def simulate(marks: list[float], delay: float = DELAY, max_wait: float = MAX_WAIT) -> list[float]:
    """Write times for a room marked at these times, stepping the pure core at every instant of interest."""
    pending = PendingSaves(delay, max_wait)
    writes: list[float] = []
    events = sorted(marks)
    index = 0
    while index < len(events) or len(pending):
        deadline = pending.next_deadline()
        if index < len(events) and (deadline is None or events[index] < deadline):
            pending.mark("room", events[index])
            index += 1
            continue
        assert deadline is not None
        writes.extend(deadline for _ in pending.take(pending.due(deadline)))
    return writes


def test_a_single_change_is_written_after_the_delay() -> None:
    assert simulate([10.0]) == [11.0]


def test_a_burst_costs_one_write() -> None:
    assert simulate([0.0, 0.1, 0.2, 0.5, 0.9]) == [1.9]


def test_a_steady_stream_is_written_every_max_wait() -> None:
    marks = [i * 0.5 for i in range(40)]  # two ratings a second for 20 s
    assert simulate(marks) == [5.0, 10.0, 15.0, 20.0]


@given(st.lists(st.floats(min_value=0, max_value=100, allow_nan=False), min_size=1, max_size=60))
def test_schedule_bounds(marks: list[float]) -> None:
    writes = simulate(marks)
    # At most one write per delay window...
    assert all(later - earlier >= DELAY - 1e-9 for earlier, later in itertools.pairwise(writes))
    # ...and no change waits longer than the maximum wait for its write.
    for mark in marks:
        assert any(mark <= write <= mark + MAX_WAIT + 1e-9 for write in writes)


class CountingStorage(MemoryStorage):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[float] = []
        self.failures_left = 0

    async def save_room(self, room: SerializedRoom) -> None:
        if self.failures_left:
            self.failures_left -= 1
            raise StorageError("save_room", room.room_name, "disk full")
        self.writes.append(anyio.current_time())
        await super().save_room(room)


@pytest.mark.parametrize("anyio_backend", [("trio", {"clock": trio.testing.MockClock(autojump_threshold=0)})])
async def test_driver_follows_the_schedule(anyio_backend: object) -> None:
    storage = CountingStorage()
    room = SerializedRoom(room_name="Movie Night")
    saver = Saver(storage, lambda key: room, delay=DELAY, max_wait=MAX_WAIT)
    start = anyio.current_time()
    async with anyio.create_task_group() as tg:
        tg.start_soon(saver.run)
        for _ in range(100):  # ten ratings a second for ten seconds
            saver.mark_dirty(room.room_key)
            await anyio.sleep(0.1)
        await anyio.sleep(30)
        tg.cancel_scope.cancel()
    offsets = [round(write - start, 3) for write in storage.writes]
    assert offsets == [5.0, 10.1]
    assert await storage.get_room("Movie Night") == room


@pytest.mark.parametrize("anyio_backend", [("trio", {"clock": trio.testing.MockClock(autojump_threshold=0)})])
async def test_failed_saves_are_retried_and_flush_reports_them(anyio_backend: object) -> None:
    storage = CountingStorage()
    storage.failures_left = 2
    room = SerializedRoom(room_name="Movie Night")
    saver = Saver(storage, lambda key: room, delay=DELAY, max_wait=MAX_WAIT)
    async with anyio.create_task_group() as tg:
        tg.start_soon(saver.run)
        saver.mark_dirty(room.room_key)
        await anyio.sleep(60)
        tg.cancel_scope.cancel()
    assert len(storage.writes) == 1
    assert not saver.is_dirty(room.room_key)
    storage.failures_left = 1
    saver.mark_dirty(room.room_key)
    assert await saver.flush() == [room.room_key]
    assert saver.is_dirty(room.room_key)
    assert await saver.flush() == []
    assert math.isclose(len(storage.writes), 2)
