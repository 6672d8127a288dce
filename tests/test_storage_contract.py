"""One contract, run unchanged against every backend."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import anyio
import pytest
from hypothesis import given, settings

from storage import SerializedRoom, Storage, Unwatched, create_storage
from storage.errors import JoinCodeTaken
from storage.schema import SCHEMA_VERSION
from storage.summary import summarise
from tests.strategies import rooms

pytestmark = pytest.mark.anyio

BACKENDS = ["memory", "file", pytest.param("redis", marks=pytest.mark.redis)]


def url_for(kind: str, request: pytest.FixtureRequest, directory: Path) -> str:
    if kind == "memory":
        return "memory://"
    if kind == "file":
        return f"file:{directory}"
    url: str = request.getfixturevalue("redis_url")
    return url


@pytest.fixture(params=BACKENDS)
async def storage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Storage]:
    async with create_storage(url_for(request.param, request, tmp_path / "rooms")) as backend:
        yield backend


def make_room(name: str = "Movie Night", **fields: object) -> SerializedRoom:
    return SerializedRoom.model_validate({"roomName": name, **fields})


async def test_absent_room(storage: Storage) -> None:
    assert await storage.get_room("nothing here") is None
    assert not await storage.has_room("nothing here")
    assert await storage.list_room_names() == []
    assert await storage.list_rooms() == []


async def test_save_then_get_returns_an_equal_room(storage: Storage) -> None:
    room = make_room(ratings={"m1": [["ann", "like", 1], ["bob", "dislike", 2]]}, userProgress={"ann": 1, "bob": 1})
    await storage.save_room(room)
    assert await storage.get_room("Movie Night") == room
    assert await storage.has_room("Movie Night")


async def test_create_stores_a_new_room_once(storage: Storage) -> None:
    first = make_room(members={"ann": {"joinedAt": 1}}, matches={"m1": 2}, ratings={"m1": [["ann", "like", 2]]})
    assert await storage.create_room(first)
    assert not await storage.create_room(make_room("MOVIE NIGHT", roomType="solo"))
    assert await storage.get_room("movie night") == first
    assert await storage.list_room_names() == ["Movie Night"]
    await storage.delete_room("Movie Night")
    assert await storage.create_room(make_room())


async def test_concurrent_creations_store_exactly_one_room(storage: Storage) -> None:
    created: list[bool] = []

    async def create(room_type: str) -> None:
        created.append(await storage.create_room(make_room(roomType=room_type)))

    async with anyio.create_task_group() as tasks:
        for room_type in ["standard", "solo", "unanimous"] * 3:
            tasks.start_soon(create, room_type)
    assert sorted(created) == [False] * 8 + [True]


async def test_any_spelling_of_the_name_finds_the_room(storage: Storage) -> None:
    await storage.save_room(make_room("Café Night"))
    for spelling in ["café night", "CAFÉ NIGHT", "Cafe\u0301 Night", "  Café Night "]:
        assert await storage.has_room(spelling)
        found = await storage.get_room(spelling)
        assert found is not None
        assert found.room_name == "Café Night"


async def test_save_replaces_the_stored_version(storage: Storage) -> None:
    await storage.save_room(make_room(userProgress={"ann": 1}))
    await storage.save_room(make_room(userProgress={"ann": 2}))
    room = await storage.get_room("movie night")
    assert room is not None
    assert room.user_progress == {"ann": 2}
    assert await storage.list_room_names() == ["Movie Night"]


async def test_delete_is_idempotent(storage: Storage) -> None:
    await storage.save_room(make_room())
    await storage.delete_room("MOVIE NIGHT")
    await storage.delete_room("MOVIE NIGHT")
    assert not await storage.has_room("Movie Night")
    assert await storage.get_room("Movie Night") is None
    assert await storage.list_room_names() == []


async def test_list_rooms_and_names(storage: Storage) -> None:
    names = ["a b", "a_b", "A B!", "ünï", "🎬"]
    for name in names:
        await storage.save_room(make_room(name))
    assert sorted(await storage.list_room_names()) == sorted(["a b", "a_b", "A B!", "ünï", "🎬"])
    assert sorted(room.room_name for room in await storage.list_rooms()) == sorted(names)


async def test_mutating_a_returned_room_does_not_change_storage(storage: Storage) -> None:
    room = make_room(userProgress={"ann": 1})
    await storage.save_room(room)
    room.user_progress["ann"] = 99
    fetched = await storage.get_room("Movie Night")
    assert fetched is not None
    fetched.user_progress["ann"] = 42
    again = await storage.get_room("Movie Night")
    assert again is not None
    assert again.user_progress == {"ann": 1}


async def test_concurrent_saves_of_one_room_leave_one_complete_version(storage: Storage) -> None:
    versions = [make_room(userProgress={"ann": n}) for n in range(30)]
    async with anyio.create_task_group() as tg:
        for version in versions:
            tg.start_soon(storage.save_room, version)
    stored = await storage.get_room("Movie Night")
    assert stored in versions


@pytest.mark.parametrize("kind", BACKENDS)
def test_any_room_round_trips(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    url = url_for(kind, request, tmp_path / "rooms")

    @settings(max_examples=40, deadline=None)
    @given(room=rooms())
    def round_trip(room: SerializedRoom) -> None:
        async def check() -> None:
            async with create_storage(url) as backend:
                await backend.save_room(room)
                stored = await backend.get_room(room.room_name)
                assert stored == room
                # Byte for byte: a room moved between backends comes back as it left.
                assert stored is not None
                assert stored.to_json() == room.to_json()
                [summary] = await backend.list_summaries()
                assert summary == summarise(room, summary.size)
                await backend.delete_room(room.room_name)

        anyio.run(check)

    round_trip()


async def test_a_deck_round_trips_and_can_be_replaced(storage: Storage) -> None:
    deck = [f"plex:{n}" for n in range(20_000)] + ["", "ünï", '"]', "\\"]
    await storage.save_room(make_room(mediaIds=deck, mediaSeed=7))
    await storage.save_room(make_room(mediaIds=deck, mediaSeed=7, userProgress={"ann": 1}))
    stored = await storage.get_room("Movie Night")
    assert stored is not None
    assert (stored.media_ids, stored.user_progress) == (deck, {"ann": 1})
    await storage.save_room(make_room(mediaIds=deck[::-1]))
    stored = await storage.get_room("Movie Night")
    assert stored is not None
    assert stored.media_ids == deck[::-1]
    await storage.save_room(make_room(mediaIds=[]))
    stored = await storage.get_room("Movie Night")
    assert stored is not None
    assert stored.media_ids == []
    assert await storage.create_room(make_room("Created", mediaIds=deck))
    created = await storage.get_room("created")
    assert created is not None
    assert created.media_ids == deck


async def test_rooms_are_stored_in_the_current_schema_with_when_they_were_opened(storage: Storage) -> None:
    room = make_room(
        createdAt="2026-01-02T03:04:05.123456Z",
        openedAt="2026-03-04T05:06:07.654321Z",
        roomType="async",
        unwatched={"people": ["plex:1", "jellyfin:s:u"], "members": True},
    )
    await storage.save_room(room)
    stored = await storage.get_room("Movie Night")
    assert stored is not None
    assert (stored.schema_version, stored.room_type) == (SCHEMA_VERSION, "async")
    assert stored.unwatched == Unwatched(people=("plex:1", "jellyfin:s:u"), members=True)
    assert stored.opened_at == datetime(2026, 3, 4, 5, 6, 7, 654321, tzinfo=UTC)


async def test_summaries_say_what_each_room_holds(storage: Storage) -> None:
    rooms = [
        make_room(
            "One",
            members={"ann": {"joinedAt": 1}, "bob": {"joinedAt": 2}},
            ratings={"m1": [["ann", "like", 3], ["bob", "like", 4]], "m2": [["bob", "dislike", 5]]},
            userProgress={"ann": 1, "bob": 2},
            matches={"m1": 4},
            mediaIds=["m1", "m2", "m3", "m4"],
        ),
        make_room("Two", createdAt="2025-05-05T00:00:00Z"),
        make_room("Three", ratings={"m1": [["ann", "like", 1]]}, userProgress={"ann": 1, "bob": 0}),
    ]
    for room in rooms:
        await storage.save_room(room)
    summaries = {summary.name: summary for summary in await storage.list_summaries()}
    assert sorted(summaries) == ["One", "Three", "Two"]
    for room in rooms:
        summary = summaries[room.room_name]
        assert summary == summarise(room, summary.size)
        assert summary.size > 0
    assert (summaries["One"].members, summaries["One"].ratings, summaries["One"].matches) == (2, 3, 1)
    assert (summaries["One"].films, summaries["Two"].films) == (4, None)
    assert summaries["Three"].ratings == 1
    # Size grows with what the room holds.
    assert summaries["One"].size > summaries["Two"].size
    await storage.delete_room("One")
    assert sorted(summary.name for summary in await storage.list_summaries()) == ["Three", "Two"]


async def test_a_healthy_storage_has_no_unreadable_rooms(storage: Storage) -> None:
    await storage.save_room(make_room(mediaIds=["a"]))
    assert storage.unreadable_rooms() == []
    assert await storage.check() == []


async def test_a_join_code_names_one_room(storage: Storage) -> None:
    assert await storage.create_room(make_room("One", joinCode="K7FM2Q"))
    assert await storage.room_of_join_code("K7FM2Q") == "One"
    assert await storage.room_of_join_code("K7FM2R") is None
    with pytest.raises(JoinCodeTaken):
        await storage.create_room(make_room("Two", joinCode="K7FM2Q"))
    with pytest.raises(JoinCodeTaken):
        await storage.save_room(make_room("Two", joinCode="K7FM2Q"))
    assert not await storage.has_room("Two")  # a refused code stores nothing
    [summary] = await storage.list_summaries()
    assert summary.join_code == "K7FM2Q"
    # A room saved with another code frees its old one; a deleted room frees its code.
    await storage.save_room(make_room("One", joinCode="AAAAAA"))
    assert await storage.room_of_join_code("K7FM2Q") is None
    assert await storage.create_room(make_room("Two", joinCode="K7FM2Q"))
    await storage.delete_room("one")
    assert await storage.room_of_join_code("AAAAAA") is None
    assert await storage.create_room(make_room("Three", joinCode="AAAAAA"))
    assert await storage.room_of_join_code("AAAAAA") == "Three"


async def test_a_room_stored_without_a_join_code_is_given_one_once(storage: Storage) -> None:
    await storage.save_room(make_room("Old", mediaIds=["m1", "m2"], userProgress={"ann": 1}))
    await storage.save_room(make_room("Coded", joinCode="BBBBBB"))
    assert await storage.give_join_code("Nowhere", "CCCCCC") is None
    with pytest.raises(JoinCodeTaken):
        await storage.give_join_code("Old", "BBBBBB")
    assert await storage.give_join_code("old", "CCCCCC") == "CCCCCC"
    assert await storage.give_join_code("Old", "DDDDDD") == "CCCCCC"  # it has one now
    stored = await storage.get_room("Old")
    assert stored is not None
    assert (stored.join_code, stored.media_ids, stored.user_progress) == ("CCCCCC", ["m1", "m2"], {"ann": 1})
    assert await storage.room_of_join_code("CCCCCC") == "Old"


@pytest.mark.parametrize("kind", BACKENDS[1:])
async def test_join_codes_survive_reopening(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    url = url_for(kind, request, tmp_path / "rooms")
    async with create_storage(url) as first:
        await first.save_room(make_room("Kept", joinCode="EEEEEE"))
    async with create_storage(url) as second:
        assert await second.room_of_join_code("EEEEEE") == "Kept"
        with pytest.raises(JoinCodeTaken):
            await second.create_room(make_room("Other", joinCode="EEEEEE"))


# -- per-person lists -----------------------------------------------------------------------------

ANN = "device:" + "a" * 64
BOB = "plex:4242"


async def test_a_person_without_a_list_has_an_empty_one(storage: Storage) -> None:
    assert await storage.read_list(ANN, "watchlist") == {}


async def test_list_entries_are_set_replaced_and_removed(storage: Storage) -> None:
    await storage.change_list(ANN, "watchlist", put={"m1": "one", "m2": "two"})
    await storage.change_list(ANN, "watchlist", put={"m2": "TWO", "m3": "three"}, drop=["m1", "never there"])
    assert await storage.read_list(ANN, "watchlist") == {"m2": "TWO", "m3": "three"}
    await storage.change_list(ANN, "watchlist", drop=["m2", "m3"])
    assert await storage.read_list(ANN, "watchlist") == {}


async def test_a_key_both_set_and_removed_is_removed(storage: Storage) -> None:
    await storage.change_list(ANN, "watchlist", put={"m1": "one", "m2": "two"}, drop=["m1"])
    assert await storage.read_list(ANN, "watchlist") == {"m2": "two"}


async def test_lists_are_per_person_and_per_name(storage: Storage) -> None:
    await storage.change_list(ANN, "watchlist", put={"m1": "ann"})
    await storage.change_list(BOB, "watchlist", put={"m1": "bob"})
    await storage.change_list(ANN, "other", put={"m9": "elsewhere"})
    assert await storage.read_list(ANN, "watchlist") == {"m1": "ann"}
    assert await storage.read_list(BOB, "watchlist") == {"m1": "bob"}
    assert await storage.read_list(ANN, "other") == {"m9": "elsewhere"}
    await storage.change_list(ANN, "watchlist", drop=["m1"])
    assert await storage.read_list(BOB, "watchlist") == {"m1": "bob"}


async def test_lists_are_kept_apart_from_rooms(storage: Storage) -> None:
    await storage.save_room(make_room())
    await storage.change_list(ANN, "watchlist", put={"Movie Night": "a key that looks like a room"})
    assert await storage.list_room_names() == ["Movie Night"]
    assert [room.room_name for room in await storage.list_rooms()] == ["Movie Night"]
    await storage.delete_room("Movie Night")
    assert await storage.read_list(ANN, "watchlist") == {"Movie Night": "a key that looks like a room"}


async def test_any_text_is_a_list_key_or_value(storage: Storage) -> None:
    entries = {"plex://movie/5d77": '{"title": "Amélie"}', "🎬 film": '\n"quoted"\t', "imdb://tt0111161": ""}
    await storage.change_list(ANN, "watchlist", put=entries)
    assert await storage.read_list(ANN, "watchlist") == entries


async def test_mutating_a_returned_list_does_not_change_storage(storage: Storage) -> None:
    await storage.change_list(ANN, "watchlist", put={"m1": "one"})
    read = await storage.read_list(ANN, "watchlist")
    read["m2"] = "two"
    assert await storage.read_list(ANN, "watchlist") == {"m1": "one"}


async def test_concurrent_changes_of_one_list_lose_no_entry(storage: Storage) -> None:
    async with anyio.create_task_group() as tasks:
        for number in range(30):
            tasks.start_soon(partial(storage.change_list, ANN, "watchlist", put={f"m{number}": str(number)}))
    assert await storage.read_list(ANN, "watchlist") == {f"m{number}": str(number) for number in range(30)}


async def test_a_list_name_is_a_word_of_the_server(storage: Storage) -> None:
    for name in ("", "../rooms", "Watch List", "x" * 41):
        with pytest.raises(ValueError, match="cannot name a list"):
            await storage.change_list(ANN, name, put={"m1": "one"})


@pytest.mark.parametrize("kind", ["file", pytest.param("redis", marks=pytest.mark.redis)])
async def test_lists_survive_a_restart(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    url = url_for(kind, request, tmp_path / "rooms")
    async with create_storage(url) as first:
        await first.change_list(ANN, "watchlist", put={"m1": "one", "m2": "two"})
        await first.change_list(ANN, "watchlist", drop=["m1"])
    async with create_storage(url) as second:
        assert await second.read_list(ANN, "watchlist") == {"m2": "two"}
        assert await second.list_room_names() == []
