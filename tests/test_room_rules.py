"""The room rules in both their languages: Python (``server/rooms/rules.py`` and the decisions) and
Lua (``rules.lua`` and the scripts of shared rooms), run on the same random histories.

The Python side runs through ``MemoryLive``, the in-memory stand-in for Redis, which decides with
the very functions rooms of one process use; the Lua side through ``RedisLive`` on a real
redis-server. Both must refuse the same steps, publish the same decisions and end in the same room.
Ids and names are made of JSON's own syntax, which the scripts find and splice as text.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from hypothesis import event, given, settings, strategies as st

from server.names import skeleton
from server.rooms.decisions import Actor, JoinRequest, token_hash
from server.rooms.events import EVENTS, Event, Joined, Left, Rated, Removed, Undone, numbered
from server.rooms.rules import Ending, Refusal, owner_of
from server.rooms.shared import Live, MemoryHub, MemoryLive, RedisLive
from server.user import User
from storage import MemoryStorage, SerializedRoom
from storage.redis import RedisStorage
from tests.services import RedisServer

pytestmark = pytest.mark.redis

ROOM = "Movie Night"
ITEMS = ['a"]', "c/d\u00e9\\", 'm","like","1"],["x']
USERS = ["ann", "bob", 'c"d']
SEATS = ["phone", "laptop"]

# The identities people may present: their own (a device identity), none (a v2 client), or an
# impostor's. bob never has an identity, so his seat is held by name as in v2.
IDENTITIES = {"ann": "device:ann", "bob": None, 'c"d': "plex:42"}
IMPOSTOR = "device:mallory"
OWNER = "device:ann"

# action, user, seat, item, detail: for a join, how it presents itself ("name", "token": with the
# member's token, "identity", "impostor", "code": the last seat code offered); for a rating, like or
# dislike; for the owner's actions, who asks ("identity" or "impostor").
Step = tuple[str, str, str, str, str]


def decision(event: Event) -> tuple[Any, ...]:
    """What a decision says, as a tuple both languages must give alike."""
    if isinstance(event, Joined):
        return (
            "join",
            event.name,
            event.seat,
            event.resumed,
            event.replaces,
            event.progress,
            event.member,
            event.owner,
        )
    if isinstance(event, Left):
        return ("leave", event.name, event.seat, event.permanent, sorted(event.matched), event.at)
    if isinstance(event, Removed):
        return ("remove", event.name, event.ban, sorted(event.matched), event.at)
    if isinstance(event, Rated):
        return ("rate", event.name, event.mediaId, event.rating, event.at, event.progress, event.matchedAt)
    if isinstance(event, Undone):
        return ("undo", event.name, event.mediaId, event.progress, event.matchRemoved)
    return (event.t, event.model_dump(exclude={"seq"}))


class Recorder:
    """The events a live publishes on the room's channel, in order."""

    def __init__(self, live: Live) -> None:
        self.events: list[Event] = []
        self.numbers: list[int | None] = []  # each event's seq as read from its first bytes
        self.arrived = anyio.Event()
        self.subscription = live.subscription(self._event, lambda _: None)
        self.channel = live.channel(ROOM)

    def _event(self, channel: str, data: str) -> None:
        if channel == self.channel:
            self.events.append(EVENTS.validate_json(data))
            self.numbers.append(numbered(data))
            self.arrived.set()

    async def next(self) -> Event:
        with anyio.fail_after(30):
            while not self.events:
                await self.arrived.wait()
                self.arrived = anyio.Event()
        event = self.events.pop(0)
        # Both languages write the number first: a process drops its own events' copies by it.
        assert self.numbers.pop(0) == event.seq > 0
        return event


class History:
    """Plays steps against a live; the secrets people hold (member tokens, seat codes) are made here,
    the same for both languages."""

    def __init__(self, live: Live, max_members: int) -> None:
        self.live = live
        self.max_members = max_members
        self.tokens: dict[str, str] = {}
        self.code = ""

    def identity(self, user: str, detail: str) -> str | None:
        if detail == "impostor":
            return IMPOSTOR
        return IDENTITIES[user] if detail in ("identity", "code") else None

    async def step(self, number: int, action: str, user: str, seat: str, item: str, detail: str) -> Any:
        now = 1000 + number * 60_000  # a minute a step: seat offers expire, absences grow
        seat_id = f"{user}-{seat}"
        live = self.live
        room = await live.read(ROOM)
        assert room is not None
        if action == "join":
            token = f"token-{number}"
            identity = self.identity(user, detail)
            request = JoinRequest(
                user=User(userName=user),
                name=user,
                identity=identity,
                skeleton=skeleton(user),
                seat=seat_id,
                process="model",
                presented_token_hash=token_hash(self.tokens[user]) if detail == "token" and user in self.tokens else "",
                seat_code_hash=token_hash(self.code) if detail == "code" and self.code else "",
                new_token_hash=token_hash(token),
                avatar=None,
                plex_user_id=None,
                now=now,
                max_members=self.max_members,
                absence_ms=5 * 60_000,
                owner=owner_of(room.room),
            )
            outcome = await live.join(ROOM, request)
            if not isinstance(outcome, Refusal):
                self.tokens[user] = token
            return outcome
        if action in ("leave", "disconnect"):
            return await live.leave(
                ROOM, user, seat_id, permanent=action == "leave", room_type=room.room.room_type, now_ms=now
            )
        if action == "rate":
            return await live.rate(
                ROOM,
                user,
                item,
                "like" if detail in ("like", "token", "identity") else "dislike",
                now,
                room_type=room.room.room_type,
                threshold=room.room.match_threshold,
                ending=Ending.of(room.room),
            )
        if action == "undo":
            return await live.undo(ROOM, user, item, room_type=room.room.room_type, threshold=room.room.match_threshold)
        # The owner's actions, asked by ann (as herself, or an impostor) on ``user``.
        actor = Actor(identity=self.identity("ann", detail), skeleton=skeleton("ann"), seated_as="ann")
        if action == "delete":
            return await live.delete(ROOM, actor=actor, owner=owner_of(room.room))
        code = f"CODE{number}"
        outcome = await live.manage(
            ROOM,
            actor=actor,
            action=action,
            name=user,
            code_hash=token_hash(code),
            owner=owner_of(room.room),
            now_ms=now,
        )
        if action == "offerSeat" and not isinstance(outcome, Refusal):
            self.code = code
        return outcome


async def run(live: Live, steps: list[Step], max_members: int) -> list[Any]:
    """Every step's outcome: its refusal, or the decision it published."""
    recorder = Recorder(live)
    history = History(live, max_members)
    outcomes: list[Any] = []
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(recorder.subscription.run)
        with anyio.fail_after(30):
            await recorder.subscription.connected.wait()
        await recorder.subscription.subscribe(recorder.channel)
        for number, step in enumerate(steps):
            if outcomes and isinstance(outcomes[-1], tuple) and outcomes[-1][0] == "delete":
                break  # the room is gone
            outcome = await history.step(number, *step)
            if isinstance(outcome, Refusal) or outcome is None:
                outcomes.append(outcome)
            else:
                outcomes.append(decision(await recorder.next()))
        tasks.cancel_scope.cancel()
    return outcomes


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


ACTIONS = ["join"] * 3 + ["leave", "disconnect"] + ["rate"] * 5 + ["undo"]
ACTIONS += ["remove", "readmit", "makeOwner", "offerSeat", "delete"]
step_strategy = st.tuples(
    st.sampled_from(ACTIONS),
    st.sampled_from(USERS),
    st.sampled_from(SEATS),
    st.sampled_from(ITEMS),
    st.sampled_from(["like", "like", "dislike", "token", "identity", "identity", "impostor", "code", "name"]),
)
# Histories begin with everyone (or some) joining as themselves, so matches, full rooms and
# departures that complete matches are reached often, not only in long histories.
steps_strategy = st.tuples(
    st.permutations(USERS).flatmap(lambda order: st.integers(0, 3).map(lambda count: order[:count])),
    st.lists(step_strategy, min_size=10, max_size=40),
).map(lambda start: [("join", user, "phone", "", "identity") for user in start[0]] + start[1])


@settings(max_examples=int(os.environ.get("RULES_EXAMPLES", "150")), deadline=None)
@given(
    room_type=st.sampled_from(["standard", "unanimous", "unanimous", "solo", "async"]),
    threshold=st.integers(1, 3),
    end_on_first=st.booleans(),
    match_limit=st.sampled_from([None, None, 1, 2]),
    minutes=st.sampled_from([None, None, 10, 25]),
    like_cap=st.sampled_from([None, None, 1, 2]),
    max_members=st.sampled_from([2, 3]),
    steps=steps_strategy,
)
def test_python_and_lua_decide_alike(
    redis_server: RedisServer,
    room_type: str,
    threshold: int,
    end_on_first: bool,
    match_limit: int | None,
    minutes: int | None,
    like_cap: int | None,
    max_members: int,
    steps: list[Step],
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
            "owner": OWNER,
            "matchLimit": match_limit,
            # Steps are a minute apart from 1000 ms: the room may end in the middle of a history.
            "endsAt": None if minutes is None else 1000 + minutes * 60_000,
            "likeCap": like_cap,
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
            assert (in_python is None) == (in_lua is None)
            if in_python is None or in_lua is None:
                return
            assert in_lua.ratings == in_python.ratings
            assert in_lua.user_progress == in_python.user_progress
            assert in_lua.matches == in_python.matches
            assert in_lua.members == in_python.members
            python_online, lua_online = await python.read(ROOM), await lua.read(ROOM)
            assert python_online is not None
            assert lua_online is not None
            assert {n: sorted(s["seats"]) for n, s in lua_online.online.items()} == {
                n: sorted(s["seats"]) for n, s in python_online.online.items()
            }
            assert in_lua.owner == in_python.owner
            assert in_lua.removed == in_python.removed

    anyio.run(compare)


def test_a_departure_completes_the_unanimous_matches_of_those_who_stay(redis_server: RedisServer) -> None:
    """The path a history of two members cannot reach, spelled out: three members, two like an
    item, the third leaves for good and the item matches at once, on both sides."""
    start = SerializedRoom.model_validate({"roomName": ROOM, "roomType": "unanimous", "mediaIds": ITEMS})
    steps: list[Step] = [
        ("join", "ann", "phone", "", "identity"),
        ("join", "bob", "phone", "", "name"),
        ("join", 'c"d', "phone", "", "identity"),
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


@pytest.mark.parametrize(
    ("data", "seq"),
    [
        ('{"seq":12,"t":"undo"}', 12),
        ('{"seq":7}', None),  # not an event the scripts write: parsed, and refused, in full
        ('{"seq":-1,"t":"undo"}', None),
        ('{"seq":"3","t":"undo"}', None),
        ('{"t":"undo","seq":3}', None),
        ('{"t":"notice","mediaId":"m"}', None),
        ('{"seq":²,"t":"undo"}', None),
        ("", None),
    ],
)
def test_an_events_number_is_read_from_its_first_bytes_or_not_at_all(data: str, seq: int | None) -> None:
    assert numbered(data) == seq
