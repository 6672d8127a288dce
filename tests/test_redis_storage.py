"""What the Redis backend promises beyond the contract: its key layout, its index, failures."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import pytest
import redis.asyncio
from redis.crc import key_slot
from redis.exceptions import NoScriptError

from storage import SerializedRoom, StorageError, room_key, verify_password
from storage.keys import key_digest
from storage.redis import MAX_CONNECTIONS, SOCKET_TIMEOUT, RedisStorage, run_commands
from storage.schema import SCHEMA_VERSION
from storage.summary import summarise
from tests.services import free_port, running_redis

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "rooms"
ROOM = "Movie Night"


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


async def test_a_snapshot_rating_twice_keeps_the_first(storage: RedisStorage) -> None:
    await storage.save_room(make_room(ratings={"m1": [["ann", "dislike", 2], ["ann", "like", 1]]}))
    room = await storage.get_room(ROOM)
    assert room is not None
    assert room.ratings == {"m1": [("ann", "like", 1)]}


async def test_key_layout(storage: RedisStorage, raw: redis.asyncio.Redis) -> None:
    await storage.save_room(
        make_room(
            ratings={"m1": [["ann", "like", 7]]},
            userProgress={"ann": 1},
            members={"ann": {"joinedAt": 5}},
            matches={"m9": 8},
            mediaIds=["m1", "m9", "m3"],
            createdAt="2026-01-02T03:04:05Z",
            openedAt="2026-02-03T04:05:06.789Z",
        )
    )
    keys = storage.room_keys("movie night")
    digest = key_digest(room_key(ROOM))
    assert keys.meta == f"mm:room:{{{digest}}}:meta"
    types = [await raw.type(key) for key in keys.stored()]
    # owner a string; nobody removed, nothing picked, nobody online: no such keys
    assert types == ["string", "hash", "hash", "hash", "hash", "string", "none", "list", "string", "none", "none"]
    assert await raw.hgetall(keys.ratings) == {"ann": '[["m1","like","7"]]'}
    assert await raw.hgetall(keys.progress) == {"ann": "1"}
    assert await raw.hgetall(keys.members) == {"ann": '{"joinedAt":5}'}
    assert await raw.hgetall(keys.matches) == {"m9": "8"}
    assert await raw.lrange(keys.deck, 0, -1) == ["m1", "m9", "m3"]
    assert await raw.get(keys.opened) == "2026-02-03T04:05:06.789000Z"
    meta = await raw.get(keys.meta)
    assert isinstance(meta, str)
    stored = json.loads(meta)
    assert not {"ratings", "userProgress", "members", "matches", "mediaIds", "openedAt"} & set(stored)
    assert stored["deck"] == {"size": 3}
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


def redis_fixture(name: str) -> dict[str, dict[str, Any]]:
    dump: dict[str, dict[str, Any]] = json.loads((FIXTURES / f"{name}.json").read_text())
    return dump


async def restore_dump(raw: redis.asyncio.Redis, dump: dict[str, dict[str, Any]]) -> None:
    """Put back every key of a fixture (see tests/fixtures/rooms/README.md)."""
    for key, stored in dump.items():
        kind, value = stored["type"], stored["value"]
        if kind == "string":
            await raw.set(key, value)
        elif kind == "hash":
            await raw.hset(key, mapping=value)
        elif kind == "list":
            await raw.rpush(key, *value)
        else:
            assert kind == "zset", kind
            await raw.zadd(key, dict(value))


@pytest.mark.parametrize(
    "fixture", ["1-redis-first-layout", "1-redis-members-in-meta", "1-redis", "2-redis", "3-redis"]
)
async def test_rooms_of_every_version_and_layout_load(
    storage: RedisStorage, raw: redis.asyncio.Redis, fixture: str
) -> None:
    await restore_dump(raw, redis_fixture(fixture))
    assert await storage.list_room_names() == [ROOM]
    room = await storage.get_room(ROOM)
    assert room is not None
    assert room.schema_version == SCHEMA_VERSION
    assert (room.unwatched is not None) == (fixture == "3-redis")
    assert room.password_hash is not None
    assert verify_password("popcorn", room.password_hash)
    assert {name: member.joined_at for name, member in room.members.items()} == {
        "ann": 1795822200000,
        "bob": 1795822260000,
    }
    assert room.ratings == {
        "demo:1": [("ann", "dislike", 1795822290000)],
        "demo:3": [("ann", "like", 1795822300000), ("bob", "like", 1795822310000)],
    }
    assert room.user_progress == {"ann": 2, "bob": 1}
    assert room.matches == {"demo:3": 1795822310000}
    assert (room.media_ids, room.media_seed) == (["demo:1", "demo:3", "demo:2", "demo:5", "demo:4"], 42)
    # Before version 2 the last activity stands in for when the room was last opened.
    opened = (
        datetime(2026, 12, 1, 20, 15, 30, 250000, tzinfo=UTC)
        if fixture in ("2-redis", "3-redis")
        else datetime.fromtimestamp(1795822310, UTC)
    )
    assert room.opened_at == opened
    [summary] = await storage.list_summaries()
    assert summary == summarise(room, summary.size)
    assert summary.size > 0
    # Written back in the current layout, it reads the same.
    await storage.save_room(room)
    assert await storage.get_room(ROOM) == room


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


@pytest.mark.redis
async def test_a_server_stopped_mid_session_gives_storage_errors(tmp_path: Path) -> None:
    with running_redis(tmp_path) as server:
        async with RedisStorage.from_url(server.url) as storage:
            await storage.save_room(make_room())
            server.stop()
            with anyio.fail_after(5):
                for operation in [
                    storage.get_room(ROOM),
                    storage.create_room(make_room("Another")),
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
        assert await other.get_room(ROOM) is None
        room = await storage.get_room(ROOM)
        assert room is not None
        assert room.user_progress == {"ann": 1}


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


async def test_a_burst_beyond_the_connection_pool_waits_instead_of_failing(redis_url: str) -> None:
    async with RedisStorage.from_url(redis_url + "?prefix=burst") as storage:
        await storage.save_room(make_room())
        found: list[bool] = []

        async def look_up() -> None:
            found.append(await storage.has_room(ROOM))

        async with anyio.create_task_group() as tasks:
            for _ in range(3 * MAX_CONNECTIONS):  # more at once than the pool has connections
                tasks.start_soon(look_up)
        assert found == [True] * 3 * MAX_CONNECTIONS


# -- commands sent together, replies read in bulk (the shared rooms' batches) ---------------------


async def test_commands_run_together_each_reply_in_its_place(storage: RedisStorage) -> None:
    replies = await run_commands(
        storage.client,
        [("SET", "batch:n", 1), ("EVALSHA", "0" * 40, 0), ("INCRBY", "batch:n", 41), ("GET", "batch:n")],
    )
    assert replies[0] == "OK"
    assert isinstance(replies[1], NoScriptError)
    assert replies[2:] == [42, "42"]
    # Hundreds of replies span several socket reads.
    many = await run_commands(storage.client, [("INCR", "batch:many")] * 2000)
    assert many == list(range(1, 2001))


async def test_a_batch_whose_replies_are_late_fails_and_leaves_no_reply_behind(
    storage: RedisStorage, raw: redis.asyncio.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its connection is dropped: the late reply would otherwise answer the next batch."""
    monkeypatch.setattr("storage.redis.SOCKET_TIMEOUT", 0.3)
    await raw.client_pause(1000)
    with pytest.raises(TimeoutError):
        await run_commands(storage.client, [("INCR", "late:n")])
    with anyio.fail_after(10):
        (reply,) = await run_commands(storage.client, [("GET", "late:n")])
    # The GET's own reply, whether or not Redis did the INCR of the dropped connection (the INCR's
    # reply would be the number 1).
    assert reply in (None, "1")


async def test_a_batch_after_its_connection_was_killed_goes_on_a_new_one(
    storage: RedisStorage, raw: redis.asyncio.Redis
) -> None:
    assert await run_commands(storage.client, [("INCR", "killed:n")]) == [1]
    assert await raw.client_kill_filter(_type="normal", skipme=True) >= 1
    assert await run_commands(storage.client, [("INCR", "killed:n")]) == [2]
