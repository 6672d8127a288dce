"""Shared rooms at the Redis level: the scripts decide as one process does, events, presence."""

from __future__ import annotations

import json
import logging
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest
import redis.asyncio
from hypothesis import given, settings, strategies as st
from starlette.applications import Starlette

from server.app import create_app
from server.config import Settings
from server.protocol import ProtocolError
from server.rooms.events import EVENTS, Event, Joined, Left, Rated, Undone
from server.rooms.room import Room, new_member
from server.rooms.shared.redis import RedisLive, Refusal
from server.rooms.shared.subscriber import Subscriber
from server.user import User
from storage import RatingValue, SerializedRoom
from storage.redis import RedisStorage
from tests.library import ListProvider, film
from tests.peers import Peer, in_process, in_processes
from tests.services import RedisServer, running_redis

pytestmark = pytest.mark.anyio

ROOM = "Movie Night"
ITEMS = ['a"]', "b,[", "c"]
USERS = ["ann", "bob", 'c"d']
MAX_MEMBERS = 2

Step = tuple[str, str, str, str]  # action, user, item, rating


def _decision(event: Event) -> tuple[Any, ...]:
    """What a script decides, without what only one side knows (seats, tokens, numbers)."""
    if isinstance(event, Joined):
        return ("join", event.name, event.resumed, event.progress)
    if isinstance(event, Left):
        return ("leave", event.name, event.permanent, sorted(event.matched))
    if isinstance(event, Rated):
        return ("rate", event.name, event.mediaId, event.rating, event.progress, event.matchedAt)
    if isinstance(event, Undone):
        return ("undo", event.name, event.mediaId, event.progress, event.matchRemoved)
    return ("delete",)


class _Seat:
    def __init__(self, name: str) -> None:
        self.seat_id = f"seat-{name}"

    def send(self, frame: str) -> None:
        pass

    def detach(self, room: Room) -> None:
        pass


REFUSALS = {
    "RoomFull": Refusal.ROOM_FULL,
    "RoomEnded": Refusal.ROOM_ENDED,
    "AlreadyRated": Refusal.NOTHING_TO_DO,
    "NotRated": Refusal.NOTHING_TO_DO,
}


async def run_in_process(start: SerializedRoom, steps: list[Step]) -> tuple[list[Any], SerializedRoom]:
    now = [1000]
    decided: list[Any] = []
    room = Room(
        start.copy_deep(),
        [film(1, id=item) for item in ITEMS],
        now_ms=lambda: now[0],
        on_change=lambda _: None,
        max_members=MAX_MEMBERS,
    )
    applied = room.apply

    def record(event: Event) -> None:
        decided.append(_decision(event))
        applied(event)

    room.apply = record  # type: ignore[method-assign]
    seats = {name: _Seat(name) for name in USERS}
    for step, (action, user, item, rating) in enumerate(steps):
        now[0] = 1000 + step
        try:
            if action == "join":
                room.join(seats[user], User(userName=user), None, "joinRoomSuccess")
            elif action in ("leave", "disconnect"):
                room.leave(seats[user], permanently=action == "leave")
            elif action == "rate":
                room.rate(user, item, "like" if rating == "like" else "dislike")
            else:
                room.undo(user, item)
        except ProtocolError as refused:
            decided.append(REFUSALS[refused.name])
    return decided, room.state


async def run_in_redis(
    live: RedisLive, client: redis.asyncio.Redis, start: SerializedRoom, steps: list[Step]
) -> tuple[list[Any], SerializedRoom]:
    storage = live.storage
    await storage.delete_room(ROOM)
    await client.delete(live.keys(ROOM).seq)
    assert await storage.create_room(start)
    decided: list[Any] = []
    room_type, threshold = start.room_type, start.match_threshold
    ended = "EndOnFirstMatch" in start.options
    async with client.pubsub() as pubsub:
        await pubsub.subscribe(live.keys(ROOM).events)
        await pubsub.get_message(timeout=1)  # the confirmation
        for step, (action, user, item, rating) in enumerate(steps):
            now = 1000 + step
            outcome: Any
            if action == "join":
                member = new_member(User(userName=user), None, now)[0]
                outcome = await live.join(
                    ROOM,
                    user,
                    presented_token_hash="",
                    member=member,
                    user_json=json.dumps({"userName": user}),
                    seat=f"seat-{user}",
                    max_members=MAX_MEMBERS,
                )
            elif action in ("leave", "disconnect"):
                outcome = await live.leave(
                    ROOM, user, f"seat-{user}", permanent=action == "leave", room_type=room_type, now_ms=now
                )
            elif action == "rate":
                value: RatingValue = "like" if rating == "like" else "dislike"
                outcome = await live.rate(
                    ROOM, user, item, value, now, room_type=room_type, threshold=threshold, end_on_first_match=ended
                )
            else:
                outcome = await live.undo(ROOM, user, item, room_type=room_type, threshold=threshold)
            if isinstance(outcome, Refusal):
                decided.append(outcome)
            elif outcome is not None:
                message = await pubsub.get_message(timeout=1)
                assert message is not None
                decided.append(_decision(EVENTS.validate_json(message["data"])))
    stored = await storage.get_room(ROOM)
    assert stored is not None
    return decided, stored


steps_strategy = st.lists(
    st.tuples(
        st.sampled_from(["join", "join", "leave", "disconnect", "rate", "rate", "rate", "undo"]),
        st.sampled_from(USERS),
        st.sampled_from(ITEMS),
        st.sampled_from(["like", "like", "dislike"]),
    ),
    max_size=30,
)


@settings(max_examples=80, deadline=None)
@given(
    room_type=st.sampled_from(["standard", "unanimous", "solo"]),
    threshold=st.integers(1, 3),
    end_on_first=st.booleans(),
    steps=steps_strategy,
)
def test_the_scripts_decide_as_one_process_does(
    redis_server: RedisServer, room_type: str, threshold: int, end_on_first: bool, steps: list[Step]
) -> None:
    """Any sequence of joins, leaves, ratings and undos, on ids made of JSON's own syntax, gets the
    same refusals, matches and removed matches from the Redis scripts as from the in-process room,
    and ends in the same stored room."""
    start = SerializedRoom.model_validate(
        {
            "roomName": ROOM,
            "roomType": room_type,
            "matchThreshold": threshold,
            "options": ["EndOnFirstMatch"] if end_on_first else [],
            "mediaIds": ITEMS,
        }
    )

    async def compare() -> None:
        async with RedisStorage(url=redis_server.url, key_prefix="live-model") as storage:
            live = RedisLive(storage, "model")
            expected, in_process = await run_in_process(start, steps)
            decided, stored = await run_in_redis(live, storage.client, start, steps)
            assert decided == expected
            assert stored.ratings == in_process.ratings
            assert stored.user_progress == in_process.user_progress
            assert stored.matches == in_process.matches
            assert sorted(stored.members) == sorted(in_process.members)

    anyio.run(compare)


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


async def test_missed_events_are_made_up_for_when_the_subscription_returns(
    redis_prefix: str, raw: redis.asyncio.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "server.rooms.shared")
    async with two_members(redis_prefix) as (apps, ann, bob):
        # Both apps lose their subscription; bob's like is published while they are away.
        for client in await raw.client_list():
            if int(client.get("sub", 0)) > 0:
                await raw.client_kill_filter(_id=client["id"])
        await bob.send("rate", {"mediaId": "test:1", "rating": "like"})
        assert (await ann.wait_for("userProgress"))["user"]["userName"] == "bob"
        await ann.send("rate", {"mediaId": "test:1", "rating": "like"})
        for peer in (ann, bob):
            assert sorted((await peer.wait_for("match"))["users"]) == ["ann", "bob"]
            # The match is announced once.
            assert all(message["type"] != "match" for message in peer.backlog)
            peer.backlog.clear()
            await peer.no_message(0.5)
    assert [r for r in caplog.records if r.getMessage().startswith(f"room {ROOM!r} read again")]
    assert sum(app.state.context.metrics.room_rereads for app in apps) >= 1


async def test_the_members_of_a_process_that_stopped_heartbeating_leave(redis_prefix: str) -> None:
    app = shared_app(redis_prefix, "alive", presence_timeout=0.6)
    async with in_process(app) as connect:
        ann = await user(connect, "ann")
        await ann.create(ROOM)
        storage = app.state.context.storage
        dead = RedisLive(storage, "dead")
        await dead.heartbeat(0.3)
        member = new_member(User(userName="ghost"), None, 1)[0]
        seq = await dead.join(
            ROOM,
            "ghost",
            presented_token_hash="",
            member=member,
            user_json='{"userName":"ghost"}',
            seat="ghost-seat",
            max_members=50,
        )
        assert isinstance(seq, int)
        assert (await ann.expect("userJoinedRoom"))["user"]["userName"] == "ghost"
        with anyio.fail_after(3):
            assert (await ann.wait_for("userLeftRoom"))["userName"] == "ghost"
        live = await dead.read(ROOM)
        assert live is not None
        assert list(live.online) == ["ann"]
        assert "ghost" in live.room.members  # a lapsed process's members stay members
        assert app.state.context.metrics.members_reaped == 1


async def test_a_process_stopping_overwrites_nothing_and_its_members_leave_at_once(redis_prefix: str) -> None:
    first, second = shared_app(redis_prefix, "first"), shared_app(redis_prefix, "second")
    async with in_process(first) as on_first:
        ann = await user(on_first, "ann")
        await ann.create(ROOM)
        await ann.send("rate", {"mediaId": "test:1", "rating": "like"})
        await ann.expect("userProgress")
        async with in_process(second) as on_second:
            bob = await user(on_second, "bob")
            await bob.join(ROOM)
            await ann.expect("userJoinedRoom")
            for item in ("test:2", "test:3"):
                await bob.send("rate", {"mediaId": item, "rating": "dislike"})
                assert (await ann.expect("userProgress"))["user"]["userName"] == "bob"
        # The second process stopped: its member left the room at once, and nothing it held in
        # memory replaced what the first one records next.
        with anyio.fail_after(2):
            assert (await ann.expect("userLeftRoom"))["userName"] == "bob"
        await ann.send("rate", {"mediaId": "test:4", "rating": "like"})
        await ann.expect("userProgress")
        stored = await first.state.context.storage.get_room(ROOM)
    assert stored is not None
    assert stored.user_progress == {"ann": 2, "bob": 2}
    assert {item: [user for user, _, _ in triples] for item, triples in stored.ratings.items()} == {
        "test:1": ["ann"],
        "test:2": ["bob"],
        "test:3": ["bob"],
        "test:4": ["ann"],
    }


async def test_a_process_taken_for_dead_takes_its_seats_back(redis_prefix: str) -> None:
    async with two_members(redis_prefix) as ((_, second), ann, bob):
        # As if the first app had stalled past its presence timeout: another process reaps it.
        assert await RedisLive(second.state.context.storage, "reaper").reap("first", 1) == 1
        assert (await bob.expect("userLeftRoom"))["userName"] == "ann"
        assert (await bob.expect("userJoinedRoom"))["user"]["userName"] == "ann"
        await bob.send("rate", {"mediaId": "test:1", "rating": "like"})
        assert (await ann.wait_for("userProgress"))["user"]["userName"] == "bob"
        live = await RedisLive(second.state.context.storage, "reader").read(ROOM)
        assert live is not None
        assert sorted(live.online) == ["ann", "bob"]


async def test_batched_script_calls_survive_a_flushed_script_cache(redis_url: str) -> None:
    """Calls made together travel in one pipeline; after a Redis restart (simulated: its script
    cache flushed) every call of a batch still runs, once."""
    async with RedisStorage.from_url(redis_url + "?prefix=batches") as storage:
        live = RedisLive(storage, "batching")
        await storage.delete_room(ROOM)
        assert await storage.create_room(SerializedRoom(room_name=ROOM, media_ids=ITEMS))
        outcomes: list[Any] = []

        async def rate(name: str, item: str) -> None:
            outcomes.append(
                await live.rate(
                    ROOM, name, item, "like", 5, room_type="standard", threshold=99, end_on_first_match=False
                )
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
