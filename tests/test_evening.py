"""The end of the evening: end conditions chosen at creation and announced when they happen, the
results of a room (matches ranked, closest calls), and "pick one for us", on every kind of server
that shares rooms or not (``tests/worlds.py``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import pytest

from tests.peers import Peer
from tests.worlds import World

pytestmark = pytest.mark.anyio

Worlds = Callable[..., AsyncIterator[World]]
ROOM = "Movie Night"


async def person(world: World, name: str) -> Peer:
    peer = await world.connect(name)
    await peer.send("login", {"userName": name, "newIdentity": True})
    await peer.expect("loginSuccess")
    return peer


async def room_of(world: World, count: int = 2, **request: Any) -> list[Peer]:
    peers = [await person(world, f"user{number}") for number in range(count)]
    await peers[0].create(ROOM, **request)
    for peer in peers[1:]:
        await peer.join(ROOM)
    return peers


async def like(peers: list[Peer], *items: str) -> None:
    for item in items:
        for peer in peers:
            await peer.rate(item)


async def test_a_room_ends_after_its_matches_and_says_so(make_world: Worlds) -> None:
    async for world in make_world():
        a, b = await room_of(world, endConditions={"matches": 2})
        await like([a, b], "test:1")
        await like([a, b], "test:2")
        for peer in (a, b):
            assert await peer.wait_for("roomEnded") == {"roomName": ROOM, "reason": "matches"}
        await a.send("rate", {"mediaId": "test:3", "rating": "like"})
        assert (await a.wait_for("rateError"))["name"] == "RoomEnded"
        late = await person(world, "late")
        joined = await late.join(ROOM)
        assert joined["ended"] == {"reason": "matches"}
        assert joined["rules"] == {"roomType": "standard", "matchThreshold": 2, "matchLimit": 2}


async def test_the_first_match_ends_a_room_that_asked_for_it(make_world: Worlds) -> None:
    async for world in make_world():
        a, b = await room_of(world, options=["EndOnFirstMatch"])
        await like([a, b], "test:5")
        assert (await b.wait_for("roomEnded"))["reason"] == "matches"
        assert (await b.wait_for("match"))["media"]["id"] == "test:5"


async def test_a_time_limit_ends_the_room_when_it_passes(make_world: Worlds) -> None:
    async for world in make_world():
        a, b = await room_of(world, endConditions={"minutes": 0.02})  # 1.2 s
        assert "endsAt" in (await b.join(ROOM))["rules"]
        with anyio.fail_after(30):
            for peer in (a, b):
                assert (await peer.wait_for("roomEnded"))["reason"] == "time"
        await a.send("rate", {"mediaId": "test:1", "rating": "like"})
        assert (await a.wait_for("rateError"))["name"] == "RoomEnded"


async def test_a_like_cap_leaves_dislikes_free(make_world: Worlds) -> None:
    async for world in make_world():
        a, b = await room_of(world, endConditions={"likes": 2})
        rejoined = await b.join(ROOM)
        assert rejoined["likesLeft"] == 2
        await like([a], "test:1", "test:2")
        await a.send("rate", {"mediaId": "test:3", "rating": "like"})
        assert (await a.wait_for("rateError"))["name"] == "LikeCapReached"
        assert (await a.rate("test:3", "dislike"))["progress"] == 0.3


async def test_results_rank_matches_and_show_the_closest_calls_once_the_deck_is_done(make_world: Worlds) -> None:
    async for world in make_world():
        a, b, c = await room_of(world, 3)
        await like([a, b, c], "test:1")  # three likes
        await like([a, b], "test:2")  # two
        await like([a], "test:3")  # one: no match
        # A match is told again when another member likes it (who liked it so far), in the order the
        # likes were decided; the results are asked for once a's process has applied both matches.
        told = [await a.wait_for("match") for _ in range(3)]
        assert [(match["media"]["id"], sorted(match["users"])) for match in told] == [
            ("test:1", ["user0", "user1"]),
            ("test:1", ["user0", "user1", "user2"]),
            ("test:2", ["user0", "user1"]),
        ]
        await a.send("getResults")
        results = await a.wait_for("getResultsSuccess")
        assert [(m["media"]["id"], m["likes"]) for m in results["matches"]] == [("test:1", 3), ("test:2", 2)]
        assert results["deckDone"] is False
        assert "closestCalls" not in results
        for item in range(4, 11):
            await a.rate(f"test:{item}", "dislike")
        await a.send("getResults")
        done = await a.wait_for("getResultsSuccess")
        assert done["deckDone"] is True
        assert [(call["media"]["id"], call["likes"]) for call in done["closestCalls"]] == [("test:3", 1)]


async def test_pick_one_for_us_is_the_same_for_everyone_and_the_owners_to_redo(make_world: Worlds) -> None:
    async for world in make_world():
        owner, member = await room_of(world)
        await member.send("pickForUs")
        assert (await member.wait_for("pickForUsError"))["name"] == "NoMatches"
        await like([owner, member], "test:1", "test:2")
        await member.send("pickForUs")
        first = await member.wait_for("pickForUsSuccess")
        for peer in (owner, member):
            assert (await peer.wait_for("picked"))["mediaId"] == first["mediaId"]
        # Asking again gives the same pick; picking again is the owner's.
        await member.send("pickForUs")
        assert (await member.wait_for("pickForUsSuccess"))["mediaId"] == first["mediaId"]
        await member.send("pickForUs", {"again": True})
        assert (await member.wait_for("pickForUsError"))["name"] == "NotRoomOwner"
        await owner.send("pickForUs", {"again": True})
        again = await owner.wait_for("pickForUsSuccess")
        assert again["mediaId"] != first["mediaId"]  # another match
        assert (await member.wait_for("picked"))["mediaId"] == again["mediaId"]
        late = await person(world, "late")
        assert (await late.join(ROOM))["pick"]["mediaId"] == again["mediaId"]
