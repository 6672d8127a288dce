"""Rooms shared by several processes: the logic of ``SharedChanges`` (replicas, event order, missed
events, presence, deletion), each situation on the in-memory stand-in for Redis (no redis-server
needed) and on a real redis-server. What only Redis has (its connections, scripts, outages) is in
``tests/test_redis_live.py``."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from starlette.applications import Starlette

from server.names import skeleton
from server.rooms.decisions import JoinRequest
from server.user import User
from tests.peers import Peer, in_process, in_processes
from tests.worlds import InMemory, Shared

pytestmark = pytest.mark.anyio

ROOM = "Movie Night"


def ghost_joins(process: str) -> JoinRequest:
    """A member named ghost, seated by ``process``."""
    ghost = User(userName="ghost")
    return JoinRequest(
        user=ghost,
        name="ghost",
        identity=None,
        skeleton=skeleton("ghost"),
        seat="ghost-seat",
        process=process,
        presented_token_hash="",
        seat_code_hash="",
        new_token_hash="",
        avatar=None,
        plex_user_id=None,
        now=1,
        max_members=50,
        absence_ms=1000,
    )


async def user(connect: Any, name: str) -> Peer:
    peer: Peer = await connect(name)
    await peer.login(name)
    return peer


@asynccontextmanager
async def two_members(shared: Shared) -> AsyncIterator[tuple[tuple[Starlette, Starlette], Peer, Peer]]:
    """Apps "first" and "second"; ann (on the first) created the room, bob (on the second) joined."""
    first, second = shared.app("first"), shared.app("second")
    async with in_processes(first, second) as (on_first, on_second):
        ann, bob = await user(on_first, "ann"), await user(on_second, "bob")
        await ann.create(ROOM)
        await bob.join(ROOM)
        await ann.expect("userJoinedRoom")
        yield (first, second), ann, bob


async def test_events_reach_every_process_in_one_order(shared: Shared) -> None:
    async with two_members(shared) as (_, ann, bob):
        await ann.send("rate", {"mediaId": "test:1", "rating": "like"})
        await bob.send("rate", {"mediaId": "test:1", "rating": "like"})
        seen = []
        for peer in (ann, bob):
            progress = [(await peer.expect("userProgress"))["user"]["userName"] for _ in range(2)]
            match = await peer.expect("match")
            seen.append((progress, match["users"]))
        assert seen[0] == seen[1]
        assert sorted(seen[0][1]) == ["ann", "bob"]


async def test_missed_events_are_made_up_for_when_the_subscription_returns(
    shared: Shared, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "server.rooms.shared")
    async with two_members(shared) as (apps, ann, bob):
        # Both apps lose their subscription; bob's like is published while they are away.
        await shared.lose_subscriptions()
        await bob.send("rate", {"mediaId": "test:1", "rating": "like"})
        assert (await ann.wait_for("userProgress"))["user"]["userName"] == "bob"
        await ann.send("rate", {"mediaId": "test:1", "rating": "like"})
        for peer in (ann, bob):
            assert sorted((await peer.wait_for("match"))["users"]) == ["ann", "bob"]
            assert all(message["type"] != "match" for message in peer.backlog)  # announced once
            peer.backlog.clear()
            await peer.no_message(0.3)
    assert [r for r in caplog.records if r.getMessage().startswith(f"room {ROOM!r} read again")]
    assert sum(app.state.context.metrics.room_rereads for app in apps) >= 1


async def test_a_gap_in_the_numbers_makes_a_process_read_the_room_again() -> None:
    shared = InMemory()
    async with two_members(shared) as ((first, _), ann, bob):
        # An event the first process never receives: its next one shows the gap.
        shared.lives["first"].subscriptions[0].miss(1)
        await bob.send("rate", {"mediaId": "test:1", "rating": "dislike"})
        await bob.expect("userProgress")
        await bob.send("rate", {"mediaId": "test:2", "rating": "dislike"})
        progress = await ann.wait_for("userProgress")
        assert (progress["user"]["userName"], progress["progress"]) == ("bob", 0.2)
        await ann.no_message(0.3)
    assert first.state.context.metrics.room_rereads == 1


async def test_the_members_of_a_process_that_stopped_heartbeating_leave(shared: Shared) -> None:
    app = shared.app("alive", presence_timeout=0.6)
    async with in_process(app) as connect:
        ann = await user(connect, "ann")
        await ann.create(ROOM)
        dead = shared.live(app, "dead")
        await dead.heartbeat(0.3)
        seq = await dead.join(ROOM, ghost_joins(dead.process_id))
        assert isinstance(seq, int)
        assert (await ann.expect("userJoinedRoom"))["user"]["userName"] == "ghost"
        with anyio.fail_after(30):
            assert (await ann.wait_for("userLeftRoom"))["userName"] == "ghost"
        live = await dead.read(ROOM)
        assert live is not None
        assert list(live.online) == ["ann"]
        assert "ghost" in live.room.members  # a lapsed process's members stay members
        assert app.state.context.metrics.members_reaped == 1


async def test_a_process_taken_for_dead_takes_its_seats_back(shared: Shared) -> None:
    async with two_members(shared) as ((_, second), ann, bob):
        # As if the first app had stalled past its presence timeout: another process reaps it.
        assert await shared.live(second, "reaper").reap("first", 1) == 1
        assert (await bob.expect("userLeftRoom"))["userName"] == "ann"
        assert (await bob.expect("userJoinedRoom"))["user"]["userName"] == "ann"
        await bob.send("rate", {"mediaId": "test:1", "rating": "like"})
        assert (await ann.wait_for("userProgress"))["user"]["userName"] == "bob"
        live = await shared.live(second, "reader").read(ROOM)
        assert live is not None
        assert sorted(live.online) == ["ann", "bob"]


async def test_a_deletion_reaches_the_members_of_every_process(shared: Shared) -> None:
    async with two_members(shared) as ((first, second), ann, bob):
        await ann.send("deleteRoom", {"roomName": ROOM})
        assert (await bob.wait_for("roomDeleted"))["roomName"] == ROOM
        await ann.wait_for("deleteRoomSuccess")
        assert ROOM.casefold() not in first.state.context.registry.rooms
        assert ROOM.casefold() not in second.state.context.registry.rooms
        await bob.send("rate", {"mediaId": "test:1", "rating": "like"})
        assert (await bob.expect("rateError"))["name"] == "NotInRoom"
        assert await shared.stored(first) is None


async def test_a_process_stopping_overwrites_nothing_and_its_members_leave_at_once(shared: Shared) -> None:
    first, second = shared.app("first"), shared.app("second")
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
        with anyio.fail_after(30):
            assert (await ann.expect("userLeftRoom"))["userName"] == "bob"
        await ann.send("rate", {"mediaId": "test:4", "rating": "like"})
        await ann.expect("userProgress")
        stored = await shared.stored(first)
    assert stored is not None
    assert stored.user_progress == {"ann": 2, "bob": 2}
    assert {item: [user for user, _, _ in triples] for item, triples in stored.ratings.items()} == {
        "test:1": ["ann"],
        "test:2": ["bob"],
        "test:3": ["bob"],
        "test:4": ["ann"],
    }
