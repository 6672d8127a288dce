"""The room rules in both their languages: Python (``server/rooms/rules.py`` and the decisions) and
Lua (``rules.lua`` and the scripts of shared rooms), run on the same random histories.

The Python side runs through ``MemoryLive``, the in-memory stand-in for Redis, which decides with
the very functions rooms of one process use; the Lua side through ``RedisLive`` on a real
redis-server. Both must refuse the same steps, publish the same decisions and end in the same room.
Ids and names are made of JSON's own syntax, which the scripts find and splice as text.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from hypothesis import event, given, settings, strategies as st

from server.rooms.decisions import token_hash
from server.rooms.events import EVENTS, Event, Joined, Left, Rated, Undone
from server.rooms.rules import Refusal
from server.rooms.shared import Live, MemoryHub, MemoryLive, RedisLive
from server.user import User
from storage import MemoryStorage, RatingValue, SerializedRoom
from storage.redis import RedisStorage
from tests.services import RedisServer

pytestmark = pytest.mark.redis

ROOM = "Movie Night"
ITEMS = ['a"]', "c/d\u00e9\\", 'm","like","1"],["x']
USERS = ["ann", "bob", 'c"d']
SEATS = ["phone", "laptop"]

# action, user, seat, item, rating / whether a join presents the member's token
Step = tuple[str, str, str, str, str]


def decision(event: Event) -> tuple[Any, ...]:
    """What a decision says, without what only one side spells its own way (seats' JSON, numbers)."""
    if isinstance(event, Joined):
        return ("join", event.name, event.online.seat, event.resumed, event.progress, event.member.token_hash)
    if isinstance(event, Left):
        return ("leave", event.name, event.seat, event.permanent, sorted(event.matched), event.matchedAt)
    if isinstance(event, Rated):
        return ("rate", event.name, event.mediaId, event.rating, event.at, event.progress, event.matchedAt)
    if isinstance(event, Undone):
        return ("undo", event.name, event.mediaId, event.progress, event.matchRemoved)
    return ("delete",)


class Recorder:
    """The events a live publishes on the room's channel, in order."""

    def __init__(self, live: Live) -> None:
        self.events: list[Event] = []
        self.arrived = anyio.Event()
        self.subscription = live.subscription(self._event, lambda _: None)
        self.channel = live.channel(ROOM)

    def _event(self, channel: str, data: str) -> None:
        if channel == self.channel:
            self.events.append(EVENTS.validate_json(data))
            self.arrived.set()

    async def next(self) -> Event:
        with anyio.fail_after(30):
            while not self.events:
                await self.arrived.wait()
                self.arrived = anyio.Event()
        return self.events.pop(0)


async def run(live: Live, steps: list[Step], max_members: int) -> list[Any]:
    """Every step's outcome: its refusal, or the decision it published."""
    recorder = Recorder(live)
    outcomes: list[Any] = []
    tokens: dict[str, str] = {}
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(recorder.subscription.run)
        with anyio.fail_after(30):
            await recorder.subscription.connected.wait()
        await recorder.subscription.subscribe(recorder.channel)
        for number, (action, user, seat, item, detail) in enumerate(steps):
            now = 1000 + number
            seat_id = f"{user}-{seat}"
            outcome: Any
            if action == "join":
                token = f"token-{number}"
                presented = token_hash(tokens[user]) if detail == "token" and user in tokens else ""
                outcome = await live.join(
                    ROOM,
                    user=User(userName=user),
                    seat=seat_id,
                    presented_token_hash=presented,
                    new_token_hash=token_hash(token),
                    joined_at=now,
                    max_members=max_members,
                )
                if not isinstance(outcome, Refusal):
                    tokens[user] = token
            elif action in ("leave", "disconnect"):
                room_type = (await _room_type(live)) or ""
                outcome = await live.leave(
                    ROOM, user, seat_id, permanent=action == "leave", room_type=room_type, now_ms=now
                )
            elif action == "rate":
                rating: RatingValue = "like" if detail in ("like", "token") else "dislike"
                room = await live.read(ROOM)
                assert room is not None
                outcome = await live.rate(
                    ROOM,
                    user,
                    item,
                    rating,
                    now,
                    room_type=room.room.room_type,
                    threshold=room.room.match_threshold,
                    end_on_first_match="EndOnFirstMatch" in room.room.options,
                )
            else:
                room = await live.read(ROOM)
                assert room is not None
                outcome = await live.undo(
                    ROOM, user, item, room_type=room.room.room_type, threshold=room.room.match_threshold
                )
            if isinstance(outcome, Refusal) or outcome is None:
                outcomes.append(outcome)
            else:
                outcomes.append(decision(await recorder.next()))
        tasks.cancel_scope.cancel()
    return outcomes


async def _room_type(live: Live) -> str | None:
    room = await live.read(ROOM)
    return None if room is None else room.room.room_type


@asynccontextmanager
async def python_side(start: SerializedRoom) -> AsyncIterator[tuple[Live, MemoryStorage]]:
    storage = MemoryStorage()
    assert await storage.create_room(start)
    yield MemoryLive(MemoryHub(storage), "model"), storage


@asynccontextmanager
async def lua_side(server: RedisServer, start: SerializedRoom) -> AsyncIterator[tuple[Live, RedisStorage]]:
    async with RedisStorage(url=server.url, key_prefix="rules") as storage:
        live = RedisLive(storage, "model")
        await storage.client.delete(*live.keys(ROOM).stored(), live.keys(ROOM).seq)
        await storage.delete_room(ROOM)
        assert await storage.create_room(start)
        yield live, storage


step_strategy = st.tuples(
    st.sampled_from(["join", "join", "leave", "disconnect", "rate", "rate", "rate", "rate", "rate", "undo"]),
    st.sampled_from(USERS),
    st.sampled_from(SEATS),
    st.sampled_from(ITEMS),
    st.sampled_from(["like", "like", "dislike", "token"]),
)
# Histories begin with everyone (or some) joining, so matches, full rooms and departures that
# complete matches are reached often, not only in long histories.
steps_strategy = st.tuples(
    st.permutations(USERS).flatmap(lambda order: st.integers(0, 3).map(lambda count: order[:count])),
    st.lists(step_strategy, min_size=10, max_size=40),
).map(lambda start: [("join", user, "phone", "", "") for user in start[0]] + start[1])


@settings(max_examples=300, deadline=None)
@given(
    room_type=st.sampled_from(["standard", "unanimous", "unanimous", "solo", "async"]),
    threshold=st.integers(1, 3),
    end_on_first=st.booleans(),
    max_members=st.sampled_from([2, 3]),
    steps=steps_strategy,
)
def test_python_and_lua_decide_alike(
    redis_server: RedisServer, room_type: str, threshold: int, end_on_first: bool, max_members: int, steps: list[Step]
) -> None:
    """Any history of joins (from two devices, with or without the member's token), leaves,
    disconnects, ratings and undos, by three people: the same refusals, the same decisions (matches,
    matches a departure completes, removed matches, progress, member tokens), the same room."""
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
        async with python_side(start) as (python, python_storage), lua_side(redis_server, start) as (lua, lua_storage):
            expected = await run(python, steps, max_members)
            decided = await run(lua, steps, max_members)
            assert decided == expected
            for outcome in expected:  # what the histories reach (pytest --hypothesis-show-statistics)
                label = outcome.name if isinstance(outcome, Refusal) else "nothing" if outcome is None else outcome[0]
                if isinstance(outcome, tuple) and outcome[0] == "leave" and outcome[4]:
                    label = "leave completing matches"
                elif isinstance(outcome, tuple) and outcome[0] == "rate" and outcome[-1] is not None:
                    label = "rate matching"
                event(label)
            in_python, in_lua = await python_storage.get_room(ROOM), await lua_storage.get_room(ROOM)
            assert in_python is not None
            assert in_lua is not None
            assert in_lua.ratings == in_python.ratings
            assert in_lua.user_progress == in_python.user_progress
            assert in_lua.matches == in_python.matches
            assert in_lua.members == in_python.members
            python_online, lua_online = await python.read(ROOM), await lua.read(ROOM)
            assert python_online is not None
            assert lua_online is not None
            assert {n: s["seat"] for n, s in lua_online.online.items()} == {
                n: s["seat"] for n, s in python_online.online.items()
            }

    anyio.run(compare)


def test_a_departure_completes_the_unanimous_matches_of_those_who_stay(redis_server: RedisServer) -> None:
    """The path a history of two members cannot reach, spelled out: three members, two like an
    item, the third leaves for good and the item matches at once, on both sides."""
    start = SerializedRoom.model_validate({"roomName": ROOM, "roomType": "unanimous", "mediaIds": ITEMS})
    steps: list[Step] = [
        ("join", "ann", "phone", "", ""),
        ("join", "bob", "phone", "", ""),
        ("join", 'c"d', "phone", "", ""),
        ("rate", "ann", "phone", ITEMS[2], "like"),
        ("rate", "bob", "phone", ITEMS[2], "like"),
        ("rate", "ann", "phone", ITEMS[0], "like"),
        ("leave", 'c"d', "phone", "", ""),
    ]

    async def compare() -> None:
        async with python_side(start) as (python, _), lua_side(redis_server, start) as (lua, _):
            expected = await run(python, steps, 3)
            assert expected[-1][:5] == ("leave", 'c"d', 'c"d-phone', True, [ITEMS[2]])
            assert await run(lua, steps, 3) == expected

    anyio.run(compare)
