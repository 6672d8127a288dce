"""What shared rooms do on a real Redis only: one subscription per process, script batches, a
silent subscription, shared limits, garbage in Redis, outages. (``tests/test_shared_rooms.py``
runs the shared rooms' logic on Redis and on its in-memory stand-in; ``tests/test_room_rules.py``
checks that the scripts decide as the Python decisions do.)
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest
import redis.asyncio
from starlette.applications import Starlette

from server.app import create_app
from server.config import Settings
from server.rooms.rules import Ending, Refusal
from server.rooms.shared.redis import RedisLive
from server.rooms.shared.subscriber import Subscriber
from storage import Member, SerializedRoom
from storage.redis import RedisStorage
from tests.library import ListProvider
from tests.peers import Peer, in_process, in_processes
from tests.services import running_redis

pytestmark = pytest.mark.anyio

ROOM = "Movie Night"
# Ids made of JSON's own syntax: the scripts find and splice ratings as text.
ITEMS = ['a"]', "b,[", "c"]
# -- several processes in this event loop ---------------------------------------------------------


def shared_app(redis_url: str, process_id: str, **overrides: Any) -> Starlette:
    settings = Settings.model_validate({"storage": {"url": redis_url}, **overrides})
    return create_app(settings, provider=ListProvider(), rng=random.Random(3), process_id=process_id)


@pytest.fixture
def redis_prefix(redis_url: str, request: pytest.FixtureRequest) -> str:
    return f"{redis_url}?prefix=t-{abs(hash(request.node.nodeid))}"


async def user(connect: Any, name: str) -> Peer:
    peer: Peer = await connect(name)
    await peer.login(name)
    return peer


@pytest.fixture
async def raw(redis_url: str) -> AsyncIterator[redis.asyncio.Redis]:
    client = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
    yield client
    await client.aclose()


@asynccontextmanager
async def two_members(redis_prefix: str) -> AsyncIterator[tuple[tuple[Starlette, Starlette], Peer, Peer]]:
    """Apps "first" and "second"; ann (on the first) created the room, bob (on the second) joined."""
    first, second = shared_app(redis_prefix, "first"), shared_app(redis_prefix, "second")
    async with in_processes(first, second) as (on_first, on_second):
        ann, bob = await user(on_first, "ann"), await user(on_second, "bob")
        await ann.create(ROOM)
        await bob.join(ROOM)
        await ann.expect("userJoinedRoom")
        yield (first, second), ann, bob


async def subscribed_connections(raw: redis.asyncio.Redis) -> int:
    return sum(1 for client in await raw.client_list() if int(client.get("sub", 0)) > 0)


async def test_each_process_has_one_subscription_connection(redis_prefix: str, raw: redis.asyncio.Redis) -> None:
    before = await subscribed_connections(raw)
    first, second = shared_app(redis_prefix, "first"), shared_app(redis_prefix, "second")
    async with in_processes(first, second) as (on_first, on_second):
        peers = [await user(on_first if i % 2 else on_second, f"user{i}") for i in range(6)]
        for index, peer in enumerate(peers):
            await peer.create(f"Room {index}")
        for index, peer in enumerate(peers):
            await peer.join(f"Room {(index + 1) % 6}")
        # Every room is followed by both apps (the creator's and the joiner's), each on its one connection.
        keys = [first.state.context.storage.room_keys(f"Room {index}").events for index in range(6)]
        assert [count for _, count in await raw.pubsub_numsub(*keys)] == [2] * 6
        assert await subscribed_connections(raw) - before == 2


async def test_batched_script_calls_survive_a_flushed_script_cache(redis_url: str) -> None:
    """Calls made together travel in one pipeline; after a Redis restart (simulated: its script
    cache flushed) every call of a batch still runs, once."""
    async with RedisStorage.from_url(redis_url + "?prefix=batches") as storage:
        live = RedisLive(storage, "batching")
        await storage.delete_room(ROOM)
        members = {f"user{number}": Member(joined_at=1) for number in range(60)}
        assert await storage.create_room(SerializedRoom(room_name=ROOM, media_ids=ITEMS, members=members))
        outcomes: list[Any] = []

        async def rate(name: str, item: str) -> None:
            outcomes.append(
                await live.rate(ROOM, name, item, "like", 5, room_type="standard", threshold=99, ending=Ending(0, 0, 0))
            )

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(live.run)
            await anyio.lowlevel.checkpoint()
            await storage.client.script_flush()
            async with anyio.create_task_group() as raters:
                for number in range(60):
                    for item in ITEMS:
                        raters.start_soon(rate, f"user{number}", item)
            # A second rating of the same item by the same user, in a batch of its own.
            async with anyio.create_task_group() as raters:
                raters.start_soon(rate, "user0", ITEMS[0])
            tasks.cancel_scope.cancel()
        assert outcomes[-1] is Refusal.NOTHING_TO_DO
        assert sorted(outcome.seq for outcome in outcomes[:-1]) == list(range(1, 181))
        stored = await storage.get_room(ROOM)
        assert stored is not None
        assert set(stored.user_progress.values()) == {3}


async def test_a_silent_subscription_is_replaced(redis_url: str, raw: redis.asyncio.Redis) -> None:
    """Redis stops answering without closing the connection (a network cut looks like this): the
    subscriber's ping goes unanswered, so it connects and subscribes again by itself."""
    confirmed: list[str] = []
    subscriber = Subscriber(raw, "silence:control", lambda channel, data: None, confirmed.append)
    subscriber.PING_EVERY = 0.2
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(subscriber.run)
        await subscriber.subscribe("silence:room")
        assert confirmed == ["silence:room"]
        await raw.client_pause(1000)
        with anyio.fail_after(5):
            while confirmed == ["silence:room"]:  # noqa: ASYNC110 (the subscriber runs in this loop)
                await anyio.sleep(0.05)
        assert confirmed == ["silence:room", "silence:room"]
        tasks.cancel_scope.cancel()


async def test_rooms_leave_memory_and_come_back_current(redis_prefix: str, raw: redis.asyncio.Redis) -> None:
    """An idle room leaves a process (and its subscription); changed elsewhere meanwhile, it comes
    back as it is now. A room deleted elsewhere leaves every process."""
    first = shared_app(redis_prefix, "first", room_idle_timeout=0.2)
    second = shared_app(redis_prefix, "second")
    async with in_processes(first, second) as (on_first, on_second):
        ann, bob = await user(on_first, "ann"), await user(on_second, "bob")
        created = await ann.create(ROOM)
        await ann.send("leaveRoom")
        await ann.expect("leaveRoomSuccess")
        registry = first.state.context.registry
        events = first.state.context.storage.room_keys(ROOM).events
        with anyio.fail_after(3):
            while registry.rooms:  # noqa: ASYNC110 (eviction runs in this event loop)
                await anyio.sleep(0.05)
        assert await raw.pubsub_numsub(events) == [(events, 0)]
        await bob.join(ROOM)
        await bob.send("rate", {"mediaId": "test:1", "rating": "like"})
        await bob.expect("userProgress")
        again = await ann.join(ROOM)
        assert again["users"] == [
            {"user": {"userName": "bob", "permissions": []}, "progress": 0.1},
            {"user": {"userName": "ann", "permissions": []}, "progress": 0.0},
        ]
        assert ids(again["media"]) == ids(created["media"])
        await ann.send("rate", {"mediaId": "test:1", "rating": "like"})
        assert (await bob.wait_for("match"))["users"] == ["bob", "ann"]
        await ann.send("deleteRoom", {"roomName": ROOM})
        assert await bob.wait_for("roomDeleted") == {"roomName": ROOM}
        assert await ann.wait_for("deleteRoomSuccess") == {"roomName": ROOM}
        assert registry.rooms == {}
        assert second.state.context.registry.rooms == {}
        await bob.send("rate", {"mediaId": "test:2", "rating": "like"})
        assert (await bob.wait_for("rateError"))["name"] == "NotInRoom"


def ids(media: list[dict[str, Any]]) -> list[str]:
    return [item["id"] for item in media]


async def test_limits_per_client_count_on_every_process(redis_prefix: str) -> None:
    limits = {"max_password_attempts": 2, "max_rooms_per_user": 2}
    first, second = shared_app(redis_prefix, "first", **limits), shared_app(redis_prefix, "second", **limits)
    async with in_processes(first, second) as (on_first, on_second):
        ann, eve = await user(on_first, "ann"), await user(on_second, "eve")
        await ann.create("Secret", password="right")
        await eve.create("Eve's")
        guesses = [await user(connect, f"guess{n}") for n, connect in enumerate([on_first, on_second, on_first])]
        for guesser in guesses[:2]:
            await guesser.send("joinRoom", {"roomName": "Secret", "password": "wrong"})
            assert (await guesser.expect("joinRoomError"))["name"] == "AccessDeniedError"
        await guesses[2].send("joinRoom", {"roomName": "Secret", "password": "right"})
        assert (await guesses[2].expect("joinRoomError"))["name"] == "TooManyAttempts"
        # Rooms per user: one client address here, whichever process it reaches.
        await ann.send("createRoom", {"roomName": "Third"})
        assert (await ann.expect("createRoomError"))["name"] == "TooManyRooms"


async def test_garbage_in_redis_never_stops_a_process(
    redis_prefix: str, raw: redis.asyncio.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """A stray publisher on a room's channel, a corrupt presence entry: logged, and the room goes on."""
    async with two_members(redis_prefix) as ((first, _), ann, bob):
        keys = first.state.context.storage.room_keys(ROOM)
        await raw.publish(keys.events, "not an event")
        await raw.publish(keys.events, '{"seq": 99, "t": "rate"}')
        await raw.hset(keys.online, mapping={"mallory": "{broken", "trudy": '{"seat": 1}'})
        await bob.send("rate", {"mediaId": "test:1", "rating": "like"})
        assert (await ann.wait_for("userProgress"))["user"]["userName"] == "bob"
        await ann.send("rate", {"mediaId": "test:1", "rating": "like"})
        assert sorted((await bob.wait_for("match"))["users"]) == ["ann", "bob"]
        # The room can still be read (restored by a process that did not hold it).
        third = shared_app(redis_prefix, "third")
        async with in_process(third) as on_third:
            cy = await user(on_third, "cy")
            joined = await cy.join(ROOM)
            assert sorted(entry["user"]["userName"] for entry in joined["users"]) == ["ann", "bob", "cy"]
    assert any("unreadable event" in record.getMessage() for record in caplog.records)


@pytest.mark.redis
async def test_a_departure_during_an_outage_is_recorded_once_redis_is_back(tmp_path: Path) -> None:
    with running_redis(tmp_path, appendonly=True) as redis_server:
        timing = {"presence_timeout": 1.5}
        first = shared_app(redis_server.url, "first", **timing)
        second = shared_app(redis_server.url, "second", **timing)
        async with in_processes(first, second) as (on_first, on_second):
            ann, bob = await user(on_first, "ann"), await user(on_second, "bob")
            await ann.create(ROOM)
            await bob.join(ROOM)
            await ann.expect("userJoinedRoom")
            redis_server.stop()
            await bob.send("rate", {"mediaId": "test:1", "rating": "like"})
            assert await bob.wait_for("rateError") == {
                "name": "StorageUnavailable",
                "message": "ratings cannot be recorded right now",
                "mediaId": "test:1",
            }
            # Bob leaves his seat (logs out) while Redis is away: his process records it later.
            await bob.send("logout")
            await bob.wait_for("logoutSuccess")
            redis_server.start()
            with anyio.fail_after(10):
                assert (await ann.wait_for("userLeftRoom"))["userName"] == "bob"


async def test_a_burst_of_events_is_delivered_whole_and_in_order(raw: redis.asyncio.Redis) -> None:
    """Many events arrive in one socket read (a batch of script calls publishes them at once)."""
    delivered: list[tuple[str, str]] = []
    subscriber = Subscriber(
        raw, "burst:control", lambda channel, data: delivered.append((channel, data)), lambda _: None
    )
    sent = [(f"burst:room{number % 3}", f"event {number}") for number in range(3000)]
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(subscriber.run)
        for channel in ("burst:room0", "burst:room1", "burst:room2"):
            await subscriber.subscribe(channel)
        async with raw.pipeline(transaction=False) as pipe:
            for channel, data in sent:
                pipe.publish(channel, data)
            await pipe.execute()
        with anyio.fail_after(10):
            while len(delivered) < len(sent):  # noqa: ASYNC110 (the subscriber runs in this loop)
                await anyio.sleep(0.01)
        tasks.cancel_scope.cancel()
    assert delivered == sent
