"""What the Redis backend promises beyond the contract: many writer processes, its index, failures."""

from __future__ import annotations

import json
import logging
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import anyio
import pytest
import redis.asyncio
from anyio.streams.buffered import BufferedByteReceiveStream
from hypothesis import given, settings, strategies as st
from redis.crc import key_slot

from storage import MemoryStorage, RatingValue, SerializedRoom, Storage, StorageError, room_key
from storage.keys import key_digest
from storage.redis import SOCKET_TIMEOUT, RedisStorage
from tests.redis_rating_writer import Plan
from tests.services import RedisServer, free_port, running_redis

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[1]
ROOM = "Movie Night"
# (add or remove, media id, user, rating)
Operations = list[tuple[bool, str, str, RatingValue]]
MEDIA = [f"m{n}" for n in range(30)]
OWN_USERS = 8
# Both writers rate every item as this user: exactly one of each pair of attempts may win.
SHARED_USER = "both"
SHARED_RATING: tuple[RatingValue, RatingValue] = ("like", "dislike")


def make_room(name: str = ROOM, **fields: object) -> SerializedRoom:
    return SerializedRoom.model_validate({"roomName": name, **fields})


@pytest.fixture
async def raw(redis_url: str) -> AsyncIterator[redis.asyncio.Redis]:
    client = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture
async def storage(redis_url: str) -> AsyncIterator[RedisStorage]:
    async with RedisStorage.from_url(redis_url) as backend:
        yield backend


async def run_writers(url: str, plans: list[Plan]) -> list[list[bool]]:
    """One writer process per plan, released together once all are connected; each one's results."""
    with anyio.fail_after(60):
        async with AsyncExitStack() as stack:
            processes = []
            for plan in plans:
                command = [sys.executable, "-m", "tests.redis_rating_writer", url, ROOM, json.dumps(plan)]
                # stderr is inherited: pytest captures a writer's traceback with the test's output.
                process = await anyio.open_process(command, cwd=ROOT, stderr=None)
                processes.append(await stack.enter_async_context(process))
            streams = []
            for process in processes:
                assert process.stdout is not None
                streams.append(BufferedByteReceiveStream(process.stdout))
                assert await streams[-1].receive_until(b"\n", 100) == b"ready"
            for process in processes:
                assert process.stdin is not None
                await process.stdin.send(b"go\n")
            results = [json.loads(await stream.receive_until(b"\n", 1 << 20)) for stream in streams]
            assert [await process.wait() for process in processes] == [0] * len(processes)
            return results


def writer_plan(worker: int) -> Plan:
    """300 ratings: per item, 8 of the worker's own users, the shared user, and one repeat of its own."""
    plan: Plan = []
    for at_ms, media_id in enumerate(MEDIA):
        own: Plan = [(media_id, f"w{worker}-user{n}", "like", at_ms) for n in range(OWN_USERS)]
        plan += [*own, (media_id, SHARED_USER, SHARED_RATING[worker], at_ms), own[0]]
    return plan


async def test_two_processes_rating_one_room_keep_every_rating_once(storage: RedisStorage, redis_url: str) -> None:
    await storage.save_room(make_room())
    plans = [writer_plan(0), writer_plan(1)]
    results = await run_writers(redis_url, plans)

    room = await storage.get_room(ROOM)
    assert room is not None
    stored = {(media_id, user): rating for media_id, triples in room.ratings.items() for user, rating, _ in triples}
    assert sum(len(triples) for triples in room.ratings.values()) == len(stored)
    assert set(stored) == {(media_id, user) for plan in plans for media_id, user, _, _ in plan}
    users = {user for plan in plans for _, user, _, _ in plan}
    assert room.user_progress == dict.fromkeys(users, len(MEDIA))

    for plan, outcome in zip(plans, results, strict=True):
        seen = set()
        for (media_id, user, _, _), recorded in zip(plan, outcome, strict=True):
            if user != SHARED_USER:
                assert recorded == ((media_id, user) not in seen)
                seen.add((media_id, user))
    for index, (media_id, user, _, _) in enumerate(plans[0]):
        if user == SHARED_USER:
            winners = [worker for worker, outcome in enumerate(results) if outcome[index]]
            assert len(winners) == 1
            assert stored[media_id, user] == SHARED_RATING[winners[0]]


async def test_a_repeated_rating_is_refused_whichever_process_sends_it(storage: RedisStorage, redis_url: str) -> None:
    await storage.save_room(make_room())
    assert await run_writers(redis_url, [[("m1", "ann", "like", 1)]]) == [[True]]
    assert await run_writers(redis_url, [[("m1", "ann", "dislike", 2), ("m2", "bob", "like", 3)]]) == [[False, True]]
    assert await run_writers(redis_url, [[("m2", "bob", "dislike", 4)]]) == [[False]]
    assert not await storage.add_rating(ROOM, "m2", "bob", "like", 5)
    room = await storage.get_room(ROOM)
    assert room is not None
    assert room.ratings == {"m1": [("ann", "like", 1)], "m2": [("bob", "like", 3)]}
    assert room.user_progress == {"ann": 1, "bob": 1}


async def test_undoing_a_rating_never_makes_progress_negative(storage: RedisStorage) -> None:
    await storage.save_room(make_room(ratings={"m1": [["ann", "like", 1]]}))
    assert await storage.remove_rating(ROOM, "m1", "ann")
    room = await storage.get_room(ROOM)
    assert room is not None
    assert room.ratings == {}
    assert room.user_progress == {"ann": 0}


async def test_a_snapshot_rating_twice_keeps_the_first(storage: RedisStorage) -> None:
    await storage.save_room(make_room(ratings={"m1": [["ann", "dislike", 2], ["ann", "like", 1]]}))
    room = await storage.get_room(ROOM)
    assert room is not None
    assert room.ratings == {"m1": [("ann", "like", 1)]}


async def test_ids_and_names_with_separators_stay_apart(storage: RedisStorage) -> None:
    """Ids and names made of the scripts' own syntax (brackets, quotes, commas) are plain text."""
    await storage.save_room(make_room())
    tricky = ['a"', '"a', 'a",', '["a",', "]", "[", "a]", "a\\", "\\", ",", "a\x1fb", 'm1","like","1"],["x']
    for at, media_id in enumerate(tricky):
        assert await storage.add_rating(ROOM, media_id, "c", "like", at)
        assert not await storage.add_rating(ROOM, media_id, "c", "dislike", at)
    assert await storage.add_rating(ROOM, "a", "b\x1fc", "like", 99)
    assert await storage.remove_rating(ROOM, "]", "c")
    assert await storage.remove_rating(ROOM, 'a"', "c")
    room = await storage.get_room(ROOM)
    assert room is not None
    expected = {media_id: [("c", "like", at)] for at, media_id in enumerate(tricky) if media_id not in ("]", 'a"')}
    assert room.ratings == {**expected, "a": [("b\x1fc", "like", 99)]}


async def test_key_layout(storage: RedisStorage, raw: redis.asyncio.Redis) -> None:
    await storage.save_room(make_room(userProgress={"ann": 0}, members={"ann": {"joinedAt": 5}}, matches={"m9": 8}))
    await storage.add_rating(ROOM, "m1", "ann", "like", 7)
    keys = storage.room_keys("movie night")
    digest = key_digest(room_key(ROOM))
    assert keys.meta == f"mm:room:{{{digest}}}:meta"
    assert [await raw.type(key) for key in keys.stored()] == ["string", "hash", "hash", "hash", "hash", "none"]
    assert await raw.hgetall(keys.ratings) == {"ann": '[["m1","like","7"]]'}
    assert await raw.hgetall(keys.progress) == {"ann": "1"}
    assert await raw.hgetall(keys.members) == {"ann": '{"joinedAt":5}'}
    assert await raw.hgetall(keys.matches) == {"m9": "8"}
    meta = await raw.get(keys.meta)
    assert isinstance(meta, str)
    assert not {"ratings", "userProgress", "members", "matches"} & set(json.loads(meta))
    assert await raw.zrange("mm:rooms", 0, -1) == [digest]
    assert await raw.hgetall("mm:room-names") == {digest: ROOM}
    # One hash slot for all of a room's keys: the rating scripts are valid on a Redis Cluster.
    assert len({key_slot(key.encode()) for key in (*keys.stored(), keys.seq)}) == 1


async def test_rooms_stored_with_members_and_matches_in_meta_still_load(
    storage: RedisStorage, raw: redis.asyncio.Redis
) -> None:
    keys = storage.room_keys(ROOM)
    await raw.set(keys.meta, json.dumps({"roomName": ROOM, "members": {"ann": {"joinedAt": 1}}, "matches": {"m1": 3}}))
    await raw.hset(keys.members, "bob", '{"joinedAt":2}')
    room = await storage.get_room(ROOM)
    assert room is not None
    assert sorted(room.members) == ["ann", "bob"]
    assert room.matches == {"m1": 3}


async def command_calls(raw: redis.asyncio.Redis) -> dict[str, int]:
    stats = await raw.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(stat["calls"]) for name, stat in stats.items()}


async def test_the_room_index_needs_no_keyspace_scan(storage: RedisStorage, raw: redis.asyncio.Redis) -> None:
    for day, name in enumerate(["one", "two", "three"], start=1):
        await storage.save_room(make_room(name, createdAt=f"2025-01-0{day}T00:00:00Z"))
    before = await command_calls(raw)
    assert await storage.list_room_names() == ["one", "two", "three"]
    assert await storage.has_room("TWO")
    assert not await storage.has_room("four")
    names_only = await command_calls(raw)
    assert [room.room_name for room in await storage.list_rooms()] == ["one", "two", "three"]
    after = await command_calls(raw)
    for command in ["keys", "scan"]:
        assert after.get(command, 0) == before.get(command, 0)
    # Listing names and testing existence read no room body.
    assert names_only.get("get", 0) == before.get("get", 0)


async def test_unreachable_redis_is_a_quick_storage_error() -> None:
    url = f"redis://ann:sekret@127.0.0.1:{free_port()}/0"
    with anyio.fail_after(5), pytest.raises(StorageError) as caught:
        async with RedisStorage.from_url(url):
            pass
    assert caught.value.operation == "open"
    assert isinstance(caught.value.__cause__, redis.ConnectionError)
    assert "sekret" not in str(caught.value)


async def test_a_server_that_never_answers_is_a_storage_error() -> None:
    with socket.socket() as listener:
        # Connections complete in the kernel's backlog but nothing ever reads or answers them.
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        url = f"redis://127.0.0.1:{listener.getsockname()[1]}/0"
        with anyio.fail_after(SOCKET_TIMEOUT + 2), pytest.raises(StorageError) as caught:
            async with RedisStorage.from_url(url):
                pass
    assert isinstance(caught.value.__cause__, redis.TimeoutError)


async def test_a_server_stopped_mid_session_gives_storage_errors(tmp_path: Path) -> None:
    with running_redis(tmp_path) as server:
        async with RedisStorage.from_url(server.url) as storage:
            await storage.save_room(make_room())
            server.stop()
            with anyio.fail_after(5):
                for operation in [
                    storage.get_room(ROOM),
                    storage.add_rating(ROOM, "m1", "ann", "like", 1),
                    storage.save_room(make_room()),
                    storage.list_room_names(),
                ]:
                    with pytest.raises(StorageError) as caught:
                        await operation
                    assert isinstance(caught.value.__cause__, redis.ConnectionError)


@pytest.mark.parametrize(
    ("key", "field", "value"),
    [
        ("meta", None, "{not json"),
        ("meta", None, "[1, 2]"),
        ("meta", None, '{"roomName": ""}'),
        ("ratings", "ann", "like:1"),
        ("ratings", "ann", '[["m1", "like"]]'),
        ("ratings", "ann", '[["m1", "like", "soon"]]'),
        ("progress", "ann", "many"),
    ],
)
async def test_an_unreadable_room_is_an_error_and_skipped_in_listings(
    storage: RedisStorage,
    raw: redis.asyncio.Redis,
    caplog: pytest.LogCaptureFixture,
    key: str,
    field: str | None,
    value: str,
) -> None:
    await storage.save_room(make_room("Fine"))
    await storage.save_room(make_room("Broken Room"))
    name = getattr(storage.room_keys("Broken Room"), key)
    await (raw.set(name, value) if field is None else raw.hset(name, field, value))

    with pytest.raises(StorageError, match="broken room") as caught:
        await storage.get_room("broken room")
    assert caught.value.__cause__ is not None
    with caplog.at_level(logging.WARNING, logger="storage.redis"):
        assert [room.room_name for room in await storage.list_rooms()] == ["Fine"]
    [warning] = [record for record in caplog.records if record.name == "storage.redis"]
    assert "Broken Room" in warning.getMessage()


async def test_key_prefixes_keep_storages_apart(storage: RedisStorage, redis_url: str) -> None:
    async with RedisStorage.from_url(f"{redis_url}?prefix=other") as other:
        await storage.save_room(make_room(userProgress={"ann": 1}))
        await other.save_room(make_room(userProgress={"bob": 2}))
        await other.save_room(make_room("Only Other"))
        assert await storage.list_room_names() == [ROOM]
        assert sorted(await other.list_room_names()) == sorted([ROOM, "Only Other"])
        assert not await storage.has_room("Only Other")
        await other.delete_room(ROOM)
        with pytest.raises(StorageError):
            await other.add_rating(ROOM, "m1", "bob", "like", 1)
        assert await storage.add_rating(ROOM, "m1", "bob", "like", 1)
        room = await storage.get_room(ROOM)
        assert room is not None
        assert room.user_progress == {"ann": 1, "bob": 1}


async def test_an_injected_client_is_left_open(redis_url: str, raw: redis.asyncio.Redis) -> None:
    async with RedisStorage(raw, key_prefix="injected") as storage:
        await storage.save_room(make_room())
    assert await raw.hget("injected:room-names", key_digest(room_key(ROOM))) == ROOM


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("redis://ann:sekret@localhost/0?password=sekret&frobnicate=1", "frobnicate, password"),
        ("http://localhost/0", "not a Redis URL"),
        ("redis://localhost/0?prefix=a{b}", "bad key prefix"),
        ("redis://localhost/0?prefix=", "bad key prefix"),
    ],
)
def test_bad_urls_are_refused_without_leaking_secrets(url: str, complaint: str) -> None:
    with pytest.raises(StorageError, match=complaint) as caught:
        RedisStorage.from_url(url)
    assert "sekret" not in str(caught.value)


async def test_a_storage_used_before_open_says_so(redis_url: str) -> None:
    with pytest.raises(StorageError, match="not open"):
        await RedisStorage.from_url(redis_url).get_room(ROOM)


@settings(max_examples=60, deadline=None)
@given(
    operations=st.lists(
        st.tuples(
            st.booleans(),
            st.text(alphabet='ab"[],\\:x\x1f', max_size=4),
            st.sampled_from(["ann", "bob", 'c"d']),
            st.sampled_from(["like", "dislike"]),
        ),
        max_size=25,
    )
)
def test_rating_scripts_agree_with_the_in_process_model(redis_server: RedisServer, operations: Operations) -> None:
    """Any sequence of adds and removes, on ids made of the scripts' own syntax, ends where the
    generic (in-process) implementation ends."""

    start = make_room()

    async def apply(storage: Storage) -> tuple[list[bool], SerializedRoom | None]:
        await storage.save_room(start)
        outcomes = []
        for at, (adding, media_id, user, rating) in enumerate(operations):
            if adding:
                outcomes.append(await storage.add_rating(ROOM, media_id, user, rating, at))
            else:
                outcomes.append(await storage.remove_rating(ROOM, media_id, user))
        return outcomes, await storage.get_room(ROOM)

    async def compare() -> None:
        async with RedisStorage(url=redis_server.url, key_prefix="model") as shared:
            await shared.delete_room(ROOM)
            assert await apply(shared) == await apply(MemoryStorage())

    anyio.run(compare)


async def test_a_burst_beyond_the_connection_pool_waits_instead_of_failing(redis_url: str) -> None:
    async with RedisStorage.from_url(redis_url + "?prefix=burst") as storage:
        await storage.save_room(make_room())

        async def rate(number: int) -> None:
            assert await storage.add_rating(ROOM, f"m{number}", "ann", "like", number)

        async with anyio.create_task_group() as tasks:
            for number in range(300):  # six times the pool's connections at once
                tasks.start_soon(rate, number)
        room = await storage.get_room(ROOM)
        assert room is not None
        assert room.user_progress == {"ann": 300}
