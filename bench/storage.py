"""Latency of each storage backend at 10, 1,000 and 10,000 stored rooms, beside the design's figures;
then what one save of a room costs at 100 and at 100,000 films.

``python -m bench.storage [--sizes 10,1000] [--backends memory,file] [--samples 200] [--decks 100,100000]``;
``make bench`` runs everything. Every room holds 500 ratings (5 users x 100 items, about 23 KB of
JSON). Per-room operations are timed one call at a time on random stored rooms; the list operations
are repeated within a small time budget. Timings are reported, never asserted: they depend on the
machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, ExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Protocol, Self, TypeVar

import anyio
import anyio.to_thread
import redis.asyncio

from storage import Member, SerializedRoom, create_storage, readable_id, room_key
from tests.services import running_redis

DESCRIPTION = "Latency of each storage backend at several stored-room counts, beside the design's figures."
BACKENDS = ("memory", "file", "redis")
SIZES = (10, 1_000, 10_000)
SAMPLES = 200
USERS = 5
ITEMS = 100
# Enough concurrent writers to overlap the file backend's fsyncs and Redis round trips while seeding.
SEED_WRITERS = 32
LIST_MIN_REPEATS, LIST_MAX_REPEATS = 3, 20
LIST_BUDGET_SECONDS = 3.0

# "save_room (new)" creates a room (the delete_room samples put their room back this way); a file
# backend's index changes only then, so it costs more than replacing a stored room.
PER_ROOM_OPS = ("save_room", "save_room (new)", "get_room", "has_room", "delete_room")
# The design's list operations, and the host's tools' cheaper one (summaries, for `rooms list`).
DESIGN_LIST_OPS = ("list_room_names", "list_rooms")
LIST_OPS = (*DESIGN_LIST_OPS, "list_summaries")
OPERATIONS = PER_ROOM_OPS + LIST_OPS

# The storage design's "Performance Characteristics" (storage-architecture.md), in milliseconds.
DESIGN_MS: dict[str, dict[str, str]] = {
    "memory": dict.fromkeys(OPERATIONS, "~0"),
    "file": {
        "save_room": "5-20",
        "save_room (new)": "5-20",
        "get_room": "1-10",
        "has_room": "1-5",
        "delete_room": "1-10",
        **dict.fromkeys(DESIGN_LIST_OPS, "10-100"),
        "list_summaries": "-",
    },
    "redis": {**dict.fromkeys(PER_ROOM_OPS, "1-5"), **dict.fromkeys(DESIGN_LIST_OPS, "5-50"), "list_summaries": "-"},
}
# The targets for a 2-core machine, as medians in milliseconds; list_room_names is the
# figure for 10,000 rooms, and fewer rooms must not take longer.
TARGET_MS: dict[tuple[str, str], float] = {
    ("file", "save_room"): 3.0,
    ("file", "get_room"): 1.0,
    ("file", "has_room"): 0.1,
    ("file", "list_room_names"): 50.0,
    ("file", "list_summaries"): 1000.0,
    ("redis", "save_room"): 1.0,
    ("redis", "get_room"): 1.0,
    ("redis", "list_summaries"): 1000.0,
}
# Films in the deck of the room whose saves are costed; issue #14's sizes.
DECK_SIZES = (100, 100_000)
DECK_SAVES = 30

Timings = dict[str, list[float]]
T = TypeVar("T")


class Subject(Protocol):
    """What is timed: a storage backend, or the raw baseline it is compared with."""

    async def save_room(self, room: SerializedRoom) -> None: ...
    async def get_room(self, room_name: str) -> object: ...
    async def has_room(self, room_name: str) -> bool: ...
    async def delete_room(self, room_name: str) -> None: ...
    async def list_room_names(self) -> Sequence[str]: ...
    async def list_rooms(self) -> Sequence[object]: ...
    async def list_summaries(self) -> Sequence[object]: ...


Opener = Callable[[int], AbstractAsyncContextManager[Subject]]


class RoomMaker:
    """Bench room ``i`` is always the same room; all share one set of ratings, so making one is cheap."""

    def __init__(self) -> None:
        rng = random.Random(0)
        users = [f"user {u}" for u in range(USERS)]
        self._media_ids = [f"/library/metadata/{100_000 + m}" for m in range(ITEMS)]
        start_ms = 1_760_000_000_000
        self._ratings = {
            media_id: [(user, rng.choice(("like", "dislike")), start_ms + rng.randrange(10**8)) for user in users]
            for media_id in self._media_ids
        }
        self._members = {user: Member(joined_at=start_ms) for user in users}
        self._progress = dict.fromkeys(users, ITEMS)

    @staticmethod
    def name(i: int) -> str:
        return f"Bench room {i:05d}"

    def make(self, i: int) -> SerializedRoom:
        return SerializedRoom(
            room_name=self.name(i),
            created_at=datetime(2025, 10, 25, tzinfo=UTC) + timedelta(seconds=i),
            creator_plex_user_id="12345",
            creator_plex_username="john",
            members=self._members,
            ratings=self._ratings,
            user_progress=self._progress,
            media_ids=self._media_ids,
            media_seed=i,
        )


def raw_body(room: SerializedRoom) -> bytes:
    return json.dumps(room.to_dict()).encode()


def raw_file_name(room_name: str) -> str:
    return readable_id(room_key(room_name)) + ".json"


class RawFiles:
    """The file floor: ``json.dumps``, a plain write and one fsync; read back with ``json.loads``.

    Disk work runs in a worker thread, as any file backend's must so as not to block the event loop.
    """

    def __init__(self, directory: Path) -> None:
        self._directory = directory

    async def __aenter__(self) -> Self:
        self._directory.mkdir()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        pass

    def _path(self, room_name: str) -> Path:
        return self._directory / raw_file_name(room_name)

    async def save_room(self, room: SerializedRoom) -> None:
        await anyio.to_thread.run_sync(_write_and_fsync, self._path(room.room_name), raw_body(room))

    async def get_room(self, room_name: str) -> object:
        return await anyio.to_thread.run_sync(_read_json, self._path(room_name))

    async def has_room(self, room_name: str) -> bool:
        return await anyio.to_thread.run_sync(self._path(room_name).exists)

    async def delete_room(self, room_name: str) -> None:
        await anyio.to_thread.run_sync(self._path(room_name).unlink)

    async def list_room_names(self) -> list[str]:
        return await anyio.to_thread.run_sync(os.listdir, self._directory)

    async def list_rooms(self) -> list[object]:
        return await anyio.to_thread.run_sync(_read_all_json, self._directory)

    async def list_summaries(self) -> list[object]:
        # The floor has no cheaper call: a summary needs the room.
        return await self.list_rooms()


def _write_and_fsync(path: Path, data: bytes) -> None:
    with path.open("wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())


def _read_json(path: Path) -> object:
    return json.loads(path.read_bytes())


def _read_all_json(directory: Path) -> list[object]:
    return [_read_json(path) for path in directory.iterdir()]


class RawRedis:
    """The Redis floor: one JSON string per room (``SET``/``GET``/``EXISTS``/``DEL``), listed by ``SCAN``."""

    PREFIX = "raw:"

    def __init__(self, url: str) -> None:
        self._client = redis.asyncio.Redis.from_url(url)

    async def __aenter__(self) -> Self:
        await self._client.flushall()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._client.aclose()

    def _key(self, room_name: str) -> str:
        return self.PREFIX + raw_file_name(room_name)

    async def save_room(self, room: SerializedRoom) -> None:
        await self._client.set(self._key(room.room_name), raw_body(room))

    async def get_room(self, room_name: str) -> object:
        body = await self._client.get(self._key(room_name))
        return None if body is None else json.loads(body)

    async def has_room(self, room_name: str) -> bool:
        return bool(await self._client.exists(self._key(room_name)))

    async def delete_room(self, room_name: str) -> None:
        await self._client.delete(self._key(room_name))

    async def list_room_names(self) -> list[str]:
        return [key.decode() async for key in self._client.scan_iter(match=self.PREFIX + "*", count=1000)]

    async def list_rooms(self) -> list[object]:
        keys = await self.list_room_names()
        rooms: list[object] = []
        for start in range(0, len(keys), 100):
            bodies = await self._client.mget(keys[start : start + 100])
            rooms.extend(json.loads(body) for body in bodies if body is not None)
        return rooms

    async def list_summaries(self) -> list[object]:
        return await self.list_rooms()


@asynccontextmanager
async def flushed_redis_storage(url: str) -> AsyncIterator[Subject]:
    """The Redis backend on an emptied server, so each size starts from nothing."""
    async with redis.asyncio.Redis.from_url(url) as client:
        await client.flushall()
    async with create_storage(url) as storage:
        yield storage


@dataclass(frozen=True)
class Backend:
    name: str
    open: Opener
    raw: Opener | None = None


@dataclass(frozen=True)
class Result:
    backend: str
    timings: Timings
    raw: Timings | None
    seed_seconds: float
    raw_seed_seconds: float | None


@contextmanager
def timed(into: list[float]) -> Iterator[None]:
    start = time.perf_counter()
    yield
    into.append(time.perf_counter() - start)


async def seed(subject: Subject, size: int, rooms: RoomMaker) -> float:
    """Store rooms 0..size-1 through the subject, a bounded number at a time; the seconds it took."""
    # One iterator shared by all writers: each room is taken by exactly one of them.
    pending = iter(range(size))

    async def writer() -> None:
        for i in pending:
            await subject.save_room(rooms.make(i))

    start = time.perf_counter()
    async with anyio.create_task_group() as group:
        for _ in range(SEED_WRITERS):
            group.start_soon(writer)
    return time.perf_counter() - start


async def repeat_within_budget(operation: Callable[[], Awaitable[object]], into: list[float]) -> None:
    while len(into) < LIST_MAX_REPEATS and (len(into) < LIST_MIN_REPEATS or sum(into) < LIST_BUDGET_SECONDS):
        with timed(into):
            await operation()


async def measure(subject: Subject, size: int, rooms: RoomMaker, samples: int) -> Timings:
    timings: Timings = {operation: [] for operation in OPERATIONS}
    # The same random rooms for every backend of one size, so they do the same work.
    picks = random.Random(size).choices(range(size), k=samples)
    for i in picks:
        room = rooms.make(i)
        with timed(timings["save_room"]):
            await subject.save_room(room)
    for name, lookup in (("get_room", subject.get_room), ("has_room", subject.has_room)):
        for i in picks:
            with timed(timings[name]):
                await lookup(rooms.name(i))
    for i in picks:
        with timed(timings["delete_room"]):
            await subject.delete_room(rooms.name(i))
        room = rooms.make(i)
        with timed(timings["save_room (new)"]):
            await subject.save_room(room)
    await repeat_within_budget(subject.list_room_names, timings["list_room_names"])
    await repeat_within_budget(subject.list_rooms, timings["list_rooms"])
    await repeat_within_budget(subject.list_summaries, timings["list_summaries"])
    return timings


async def run(opener: Opener, size: int, rooms: RoomMaker, samples: int) -> tuple[Timings, float]:
    async with opener(size) as subject:
        seed_seconds = await seed(subject, size, rooms)
        listed = len(await subject.list_room_names())
        if listed != size:
            raise RuntimeError(f"seeded {size} rooms, but {listed} are listed")
        return await measure(subject, size, rooms, samples), seed_seconds


async def measure_size(backends: Sequence[Backend], size: int, rooms: RoomMaker, samples: int) -> list[Result]:
    results = []
    for backend in backends:
        timings, seed_seconds = await run(backend.open, size, rooms, samples)
        raw, raw_seed_seconds = (None, None) if backend.raw is None else await run(backend.raw, size, rooms, samples)
        results.append(Result(backend.name, timings, raw, seed_seconds, raw_seed_seconds))
    return results


def p99(samples: Sequence[float]) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[98]


def milliseconds(seconds: float) -> str:
    ms = seconds * 1000
    return f"{ms:.3f}" if ms < 1 else f"{ms:.2f}" if ms < 100 else f"{ms:.0f}"


def times(ratio: float) -> str:
    return "<0.01" if ratio < 0.01 else f"{ratio:.2f}" if ratio < 10 else f"{ratio:.0f}"


def target_verdict(backend: str, operation: str, median_seconds: float) -> str:
    target = TARGET_MS.get((backend, operation))
    if target is None:
        return ""
    where = " @10k" if operation == "list_room_names" else ""
    met = "met" if median_seconds * 1000 <= target else "MISSED"
    return f"<= {target:g} ms{where}: {met}"


HEADER = (
    f"{'backend':8} {'operation':16} {'n':>4} {'median':>9} {'p99':>9} {'raw med':>9} {'x raw':>6}  "
    f"{'design ms':10} target (median)"
)


def print_table(size: int, results: Sequence[Result]) -> None:
    print(f"\n== {size:,} rooms ==  (milliseconds)")
    seeding = ", ".join(
        f"{result.backend} {result.seed_seconds:.1f} s"
        + ("" if result.raw_seed_seconds is None else f" (raw {result.raw_seed_seconds:.1f} s)")
        for result in results
    )
    print(f"seeding: {seeding}")
    print(HEADER)
    print("-" * len(HEADER))
    for result in results:
        for operation in OPERATIONS:
            samples = result.timings[operation]
            median = statistics.median(samples)
            raw_median = ratio = ""
            if result.raw is not None:
                baseline = statistics.median(result.raw[operation])
                raw_median, ratio = milliseconds(baseline), times(median / baseline)
            row = (
                f"{result.backend:8} {operation:16} {len(samples):>4} {milliseconds(median):>9} "
                f"{milliseconds(p99(samples)):>9} {raw_median:>9} {ratio:>6}  "
                f"{DESIGN_MS[result.backend][operation]:10} {target_verdict(result.backend, operation, median)}"
            )
            print(row.rstrip())


# Save cost by deck size.


def written_bytes() -> int:
    """Bytes this process has passed to write(2) so far (Linux ``/proc/self/io`` ``wchar``)."""
    with open("/proc/self/io") as io:
        for line in io:
            if line.startswith("wchar:"):
                return int(line.split()[1])
    raise RuntimeError("/proc/self/io has no wchar line")


@dataclass(frozen=True)
class SaveCost:
    films: int
    ms: list[float]
    bytes_per_save: float
    raw_ms: list[float]
    raw_bytes_per_save: float


async def save_cost(directory: Path, films: int, rooms: RoomMaker) -> SaveCost:
    """Saves of one room whose progress changes between them, as the server's debounced saves go
    (each a copy of the room, sharing its deck), against the floor: the whole room, deck included,
    in one plain fsync'ed write (the layout before decks had files of their own)."""
    room = rooms.make(0).model_copy(update={"media_ids": [f"/library/metadata/{n}" for n in range(films)]})
    timings: dict[str, list[float]] = {"file": [], "raw": []}
    written: dict[str, int] = {}
    storage = create_storage(f"file:{directory / f'decks-{films}'}")
    async with storage, RawFiles(directory / f"raw-decks-{films}") as raw:
        await storage.save_room(room)  # created: the deck is written here, once
        await raw.save_room(room)
        for name, subject in (("file", storage), ("raw", raw)):
            before = written_bytes()
            for n in range(DECK_SAVES):
                room.user_progress = {**room.user_progress, "user 0": n}
                with timed(timings[name]):
                    await subject.save_room(room.copy_deep())
            written[name] = written_bytes() - before
    return SaveCost(films, timings["file"], written["file"] / DECK_SAVES, timings["raw"], written["raw"] / DECK_SAVES)


def print_save_costs(costs: Sequence[SaveCost]) -> None:
    print(f"\n== one save of a room with 500 ratings, by deck size ==  ({DECK_SAVES} saves each, file backend)")
    header = (
        f"{'films':>8} {'median ms':>10} {'p99 ms':>9} {'bytes/save':>11}  {'raw ms':>8} {'raw bytes':>11} {'x raw':>6}"
    )
    print(header)
    print("-" * len(header))
    for cost in costs:
        median, raw_median = statistics.median(cost.ms), statistics.median(cost.raw_ms)
        print(
            f"{cost.films:>8,} {milliseconds(median):>10} {milliseconds(p99(cost.ms)):>9} {cost.bytes_per_save:>11,.0f}"
            f"  {milliseconds(raw_median):>8} {cost.raw_bytes_per_save:>11,.0f} {times(median / raw_median):>6}"
        )
    if len(costs) >= 2:
        small, large = costs[0], costs[-1]
        ratio = statistics.median(large.ms) / statistics.median(small.ms)
        print(
            f"{large.films:,} vs {small.films:,} films: {times(ratio)}x the time, "
            f"{times(large.bytes_per_save / small.bytes_per_save)}x the bytes (target: the same)"
        )


def comma_list(convert: Callable[[str], T]) -> Callable[[str], list[T]]:
    return lambda text: [convert(part.strip()) for part in text.split(",") if part.strip()]


def backend_name(name: str) -> str:
    if name not in BACKENDS:
        raise argparse.ArgumentTypeError(f"unknown backend {name!r} (choose from {', '.join(BACKENDS)})")
    return name


def room_count(text: str) -> int:
    count = int(text.replace("_", ""))
    if count < 1:
        raise argparse.ArgumentTypeError(f"a size must be at least 1, not {count}")
    return count


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.storage", description=DESCRIPTION)
    parser.add_argument("--sizes", type=comma_list(room_count), default=list(SIZES), help="room counts, e.g. 10,1000")
    parser.add_argument(
        "--backends", type=comma_list(backend_name), default=list(BACKENDS), help="e.g. memory,file (default: all)"
    )
    parser.add_argument("--samples", type=room_count, default=SAMPLES, help="timed calls per per-room operation")
    parser.add_argument(
        "--decks", type=comma_list(room_count), default=list(DECK_SIZES), help="films in the saved room's deck"
    )
    return parser.parse_args(argv)


def available_backends(names: Sequence[str], workdir: Path, stack: ExitStack) -> list[Backend]:
    backends = []
    if "memory" in names:
        backends.append(Backend("memory", lambda size: create_storage("memory://")))
    if "file" in names:
        print(f"file: rooms under {workdir} (fsync'ed writes)")
        backends.append(
            Backend(
                "file",
                lambda size: create_storage(f"file:{workdir / f'file-{size}'}"),
                lambda size: RawFiles(workdir / f"raw-file-{size}"),
            )
        )
    if "redis" in names:
        if shutil.which("redis-server") is None:
            print("redis-server is not installed (Debian package redis-server): the redis column is skipped")
        else:
            (workdir / "redis").mkdir()
            url = stack.enter_context(running_redis(workdir / "redis")).url
            print(f"redis: a private redis-server at {url}, no persistence (appendonly no, no snapshots)")
            backends.append(Backend("redis", lambda size: flushed_redis_storage(url), lambda size: RawRedis(url)))
    return backends


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    rooms = RoomMaker()
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="moviematch-bench-")))
        print(f"python {platform.python_version()} on {platform.platform()}, {os.cpu_count()} CPUs")
        print(f"rooms: {USERS * ITEMS} ratings ({USERS} users x {ITEMS} items), {len(rooms.make(0).to_json()):,} bytes")
        backends = available_backends(args.backends, workdir, stack)
        print(
            f"per-room operations: {args.samples} calls each on random rooms; list operations: "
            f"{LIST_MIN_REPEATS}-{LIST_MAX_REPEATS} calls within ~{LIST_BUDGET_SECONDS:g} s"
        )
        print(
            "raw = the floor in the same run: file = json.dumps + plain write + fsync / read + json.loads / "
            "stat / unlink / listdir; redis = SET / GET + json.loads / EXISTS / DEL / SCAN (+ MGET); memory has none"
        )
        for size in args.sizes:
            print_table(size, anyio.run(measure_size, backends, size, rooms, args.samples))
            sys.stdout.flush()
        if "file" in args.backends and args.decks:
            print_save_costs([anyio.run(save_cost, workdir, films, rooms) for films in args.decks])


if __name__ == "__main__":
    main()
