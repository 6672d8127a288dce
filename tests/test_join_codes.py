"""Join codes: every room has a six-character code people can read out, accepted wherever a room
name is (in any case, grouped or not), on every kind of server (``tests/worlds.py``)."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable

import pytest

from server.rooms.join_codes import ALPHABET, LENGTH, new_join_code, read_join_code
from storage import SerializedRoom
from tests.worlds import World

pytestmark = pytest.mark.anyio

Worlds = Callable[..., AsyncIterator[World]]


def grouped(code: str) -> str:
    """As someone types a code they were read: lower case, in two groups."""
    return f"{code[:3]}-{code[3:]}".lower()


def test_codes_are_six_characters_without_look_alikes() -> None:
    rng = random.Random(1)
    codes = {new_join_code(rng) for _ in range(2000)}
    assert len(codes) == 2000
    assert all(len(code) == LENGTH and set(code) <= set(ALPHABET) for code in codes)
    assert not set(ALPHABET) & set("01ILOU")


@pytest.mark.parametrize(
    ("typed", "code"),
    [("K7FM2Q", "K7FM2Q"), ("k7fm2q", "K7FM2Q"), (" k7f-m2q ", "K7FM2Q"), ("K7F M2Q", "K7FM2Q")],
)
def test_a_code_is_read_in_any_case_and_grouping(typed: str, code: str) -> None:
    assert read_join_code(typed) == code


@pytest.mark.parametrize("typed", ["K7FM2", "K7FM2QQ", "K7FM2O", "K7FM21", "Movie Night", "", "ÄÄÄÄÄÄ"])
def test_other_text_spells_no_code(typed: str) -> None:
    assert read_join_code(typed) is None


async def test_people_join_with_the_code_in_any_case(make_world: Worlds) -> None:
    async for world in make_world():
        ann, bob = await world.user("ann"), await world.user("bob")
        created = await ann.create("Movie Night")
        code = created["joinCode"]
        assert read_join_code(code) == code
        joined = await bob.join(grouped(code))
        assert (joined["roomName"], joined["joinCode"]) == ("Movie Night", code)
        assert (await ann.wait_for("userJoinedRoom"))["user"]["userName"] == "bob"
        # Rejoining by name is the same seat in the same room.
        assert (await bob.join("Movie Night"))["userName"] == "bob"
        assert (await world.stored("Movie Night")).join_code == code


async def test_every_room_has_its_own_code(make_world: Worlds) -> None:
    async for world in make_world():
        ann = await world.user("ann")
        codes = {(await ann.create(f"Room {number}"))["joinCode"] for number in range(5)}
        assert len(codes) == 5
        for number in range(5):
            stored = await world.stored(f"Room {number}")
            assert stored.join_code is not None
            assert await world.storage.room_of_join_code(stored.join_code) == f"Room {number}"


async def test_a_code_of_no_room_is_not_found(make_world: Worlds) -> None:
    async for world in make_world():
        ann = await world.user("ann")
        await ann.create("Movie Night")
        bob = await world.user("bob")
        await bob.send("joinRoom", {"roomName": "ZZZ-ZZZ"})
        assert (await bob.wait_for("joinRoomError"))["name"] == "RoomNotFoundError"


async def test_a_room_name_wins_over_a_code_and_no_new_room_takes_a_code_as_its_name(make_world: Worlds) -> None:
    async for world in make_world():
        ann, bob = await world.user("ann"), await world.user("bob")
        code = (await ann.create("Movie Night"))["joinCode"]
        await bob.send("createRoom", {"roomName": code.lower()})
        error = await bob.wait_for("createRoomError")
        assert (error["name"], "join code" in error["message"]) == ("RoomExistsError", True)
        # A name that spells a code no room has is a name like any other, and no room draws it later.
        named = await bob.create("K7FM2Q")
        assert named["roomName"] == "K7FM2Q"
        carl = await world.user("carl")
        assert (await carl.join("k7fm2q"))["roomName"] == "K7FM2Q"


async def test_a_room_stored_before_codes_gets_one_when_opened(make_world: Worlds) -> None:
    async for world in make_world():
        assert await world.storage.create_room(
            SerializedRoom(room_name="Old Night", media_ids=["test:1", "test:2"], owner="host")
        )
        ann = await world.user("ann")
        code = (await ann.join("Old Night"))["joinCode"]
        assert read_join_code(code) == code
        stored = await world.stored("Old Night")
        assert (stored.join_code, stored.media_ids) == (code, ["test:1", "test:2"])
        bob = await world.user("bob")
        assert (await bob.join(code))["joinCode"] == code


async def test_the_owner_deletes_a_room_by_its_code_and_the_code_is_free(make_world: Worlds) -> None:
    async for world in make_world():
        ann = await world.user("ann")
        code = (await ann.create("Movie Night"))["joinCode"]
        await ann.send("deleteRoom", {"roomName": code.lower()})
        assert await ann.wait_for("deleteRoomSuccess") == {"roomName": "Movie Night"}
        assert await world.storage.room_of_join_code(code) is None
        bob = await world.user("bob")
        await bob.send("joinRoom", {"roomName": code})
        assert (await bob.wait_for("joinRoomError"))["name"] == "RoomNotFoundError"
