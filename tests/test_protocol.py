"""docs/protocol.md, message by message, against every kind of server (``tests/worlds.py``): in
this event loop, shared through the in-memory stand-in for Redis, a real process on files, and
three real processes sharing rooms through a real redis-server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import pytest

from tests.peers import Peer
from tests.worlds import World

pytestmark = pytest.mark.anyio


# RACING: two members' likes sent one after the other, without waiting for the first to be
# acknowledged, race each other (two connections; in the cluster, two processes). A match lists its
# users in the order their likes were decided, which is the order they were sent only when one event
# loop serves both connections; protocol.md gives `users` no order.


def ids(media: list[dict[str, Any]]) -> list[str]:
    return [item["id"] for item in media]


async def created_deck(world: World) -> list[str]:
    deck = (await world.stored("movie night")).media_ids
    assert deck is not None
    return deck


# -- connection, login, logout ---------------------------------------------------------------


async def test_config_is_sent_first_and_holds_no_secret(world: World) -> None:
    peer = await world.connect("a")
    # lanAddresses (ext): this machine's addresses, for share links (tests/test_addresses.py).
    config = dict(peer.config)
    assert isinstance(config.pop("lanAddresses"), list)
    assert config == {"requiresConfiguration": False, "requirePlexLogin": False, "maxRoomMembers": 50}
    await peer.send("setLocale", {"language": "en"})
    assert (await peer.expect("translations"))["LANG"] == "en"


async def test_login_with_a_name(world: World) -> None:
    peer = await world.connect()
    await peer.send("login", {"userName": "  Ann  "})
    assert await peer.expect("loginSuccess") == {"userName": "Ann", "permissions": []}


@pytest.mark.parametrize("bad", ["", "   ", "a\x00b", "x" * 101])
async def test_login_refuses_bad_names(world: World, bad: str) -> None:
    peer = await world.connect()
    await peer.send("login", {"userName": bad})
    assert (await peer.expect("loginError"))["name"] == "InvalidUserName"
    await peer.login("fine")  # the session stays usable


async def test_login_without_name_or_token_is_malformed(world: World) -> None:
    peer = await world.connect()
    await peer.send("login", {})
    assert (await peer.expect("loginError"))["name"] == "MalformedMessage"


async def test_plex_login_unconfigured_is_refused_with_a_reply(world: World) -> None:
    peer = await world.connect()
    await peer.send("login", {"plexToken": "token-123", "plexClientId": "c"})
    error = await peer.expect("loginError")
    assert error["name"] == "PlexAuthInvalid"
    assert "token-123" not in str(error)


async def test_anonymous_login_refused_when_plex_required(make_world: Callable[..., AsyncIterator[World]]) -> None:
    async for world in make_world(require_plex_login=True):
        peer = await world.connect()
        await peer.send("login", {"userName": "ann"})
        assert (await peer.expect("loginError"))["name"] == "PlexLoginRequired"


async def test_logout(world: World) -> None:
    ann, bob = await world.room_of()
    await ann.send("logout")
    await ann.expect("logoutSuccess")
    assert (await bob.expect("userLeftRoom"))["userName"] == "user0"
    await ann.send("logout")
    assert (await ann.expect("logoutError"))["name"] == "NotLoggedIn"


async def test_renaming_while_in_a_room_leaves_it(world: World) -> None:
    ann, bob = await world.room_of()
    await ann.send("login", {"userName": "someone else"})
    await ann.expect("loginSuccess")
    assert (await bob.expect("userLeftRoom"))["userName"] == "user0"
    await ann.send("rate", {"mediaId": "test:1", "rating": "like"})
    assert (await ann.expect("rateError"))["name"] == "NotInRoom"


# -- createRoom --------------------------------------------------------------------------------


async def test_create_room_reply_and_storage(world: World) -> None:
    ann = await world.user("ann")
    reply = await ann.create("  Movie Night ")
    assert reply["roomName"] == "Movie Night"
    assert reply["roomType"] == "standard"
    assert reply["previousMatches"] == []
    assert sorted(ids(reply["media"])) == sorted(f"test:{n}" for n in range(1, 11))
    assert reply["users"] == [{"user": {"userName": "ann", "permissions": []}, "progress": 0.0}]
    assert len(reply["memberToken"]) >= 40
    stored = await world.storage.get_room("movie night")
    assert stored is not None
    assert stored.media_ids == ids(reply["media"])
    assert stored.creator_plex_username == "ann"


async def test_create_room_errors(world: World) -> None:
    peer = await world.connect()
    await peer.send("createRoom", {"roomName": "x"})
    assert (await peer.expect("createRoomError"))["name"] == "NotLoggedInError"
    await peer.login("ann")
    await peer.create("Café")
    for duplicate in ["café", "CAFE\u0301"]:
        await peer.send("createRoom", {"roomName": duplicate})
        assert (await peer.expect("createRoomError"))["name"] == "RoomExistsError"
    for bad in ["", "  ", "x" * 101, "tab\there"]:
        await peer.send("createRoom", {"roomName": bad})
        assert (await peer.expect("createRoomError"))["name"] == "InvalidRoomName"
    opera = [{"key": "genre", "operator": "=", "value": ["Opera"]}]
    await peer.send("createRoom", {"roomName": "nothing", "filters": opera})
    assert (await peer.expect("createRoomError"))["name"] == "NoMediaError"
    world.provider.fail = True
    await peer.send("createRoom", {"roomName": "down"})
    assert (await peer.expect("createRoomError"))["name"] == "UnknownError"


async def test_a_raised_name_length_limit_applies_to_rooms_and_users(
    make_world: Callable[..., AsyncIterator[World]],
) -> None:
    async for world in make_world(max_name_length=200):
        long_name = "n" * 200
        ann = await world.user(long_name)
        created = await ann.create("r" * 200)
        assert created["roomName"] == "r" * 200
        await ann.send("createRoom", {"roomName": "r" * 201})
        assert (await ann.expect("createRoomError"))["name"] == "InvalidRoomName"
        bob = await world.user("bob")
        await bob.join("R" * 200)
        assert (await ann.expect("userJoinedRoom"))["user"]["userName"] == "bob"


@pytest.mark.parametrize("creators", ["plex", "server-users"])
async def test_only_plex_users_may_create_rooms_when_configured(
    make_world: Callable[..., AsyncIterator[World]], creators: str
) -> None:
    async for world in make_world(room_creators=creators):
        ann = await world.user("ann")
        await ann.send("createRoom", {"roomName": "mine"})
        assert (await ann.expect("createRoomError"))["name"] == "PlexAuthRequiredError"


async def test_password_is_stored_hashed(world: World) -> None:
    ann = await world.user("ann")
    await ann.create("Secret", password="hunter2")
    stored = await world.storage.get_room("Secret")
    assert stored is not None
    assert stored.password_hash is not None
    assert "hunter2" not in stored.to_json().decode()


async def test_sort_orders(world: World) -> None:
    ann = await world.user("ann")
    newest = await ann.create("newest", sortOrder="newest")
    assert ids(newest["media"]) == [f"test:{n}" for n in range(10, 0, -1)]
    oldest = await ann.create("oldest", sortOrder="oldest")
    assert ids(oldest["media"]) == [f"test:{n}" for n in range(1, 11)]
    rated = await ann.create("rated", sortOrder="rating")
    ratings = [item["rating"] for item in rated["media"]]
    assert ratings == sorted(ratings, reverse=True)


# -- joinRoom, leaveRoom -----------------------------------------------------------------------


async def test_join_errors(world: World) -> None:
    ann = await world.user("ann")
    await ann.create("Locked", password="pw")
    stranger = await world.connect()
    await stranger.send("joinRoom", {"roomName": "Locked"})
    assert (await stranger.expect("joinRoomError"))["name"] == "NotLoggedInError"
    await stranger.login("bob")
    await stranger.send("joinRoom", {"roomName": "nope"})
    assert (await stranger.expect("joinRoomError"))["name"] == "RoomNotFoundError"
    for password in [None, "wrong"]:
        await stranger.send("joinRoom", {"roomName": "Locked", "password": password})
        assert (await stranger.expect("joinRoomError"))["name"] == "AccessDeniedError"
    twin = await world.user("ann")
    await twin.send("joinRoom", {"roomName": "locked", "password": "pw"})
    assert (await twin.expect("joinRoomError"))["name"] == "UserAlreadyJoinedError"
    joined = await stranger.join("LOCKED", password="pw")
    assert joined["roomName"] == "Locked"
    assert (await ann.expect("userJoinedRoom"))["user"]["userName"] == "bob"


async def test_member_token_resumes_a_connected_name(world: World) -> None:
    ann = await world.user("ann")
    created = await ann.create("Room")
    await ann.send("rate", {"mediaId": created["media"][0]["id"], "rating": "like"})
    await ann.expect("userProgress")
    again = await world.user("ann")  # a reload before the old socket is noticed gone
    resumed = await again.join("Room", memberToken=created["memberToken"])
    assert ids(resumed["media"]) == ids(created["media"])[1:]
    assert resumed["memberToken"] != created["memberToken"]
    await again.send("rate", {"mediaId": created["media"][1]["id"], "rating": "like"})
    assert (await again.expect("userProgress"))["progress"] == pytest.approx(0.2)
    await ann.no_message()  # the old socket no longer gets the room's messages


async def test_leave_room(world: World) -> None:
    ann, bob = await world.room_of()
    await bob.send("leaveRoom")
    await bob.expect("leaveRoomSuccess")
    assert (await ann.expect("userLeftRoom"))["userName"] == "user1"
    await bob.send("leaveRoom")
    assert (await bob.expect("leaveRoomError"))["errorType"] == "NOT_JOINED"
    stored = await world.storage.get_room("Movie Night")
    assert stored is not None


async def test_rejoin_resumes_media_and_matches(world: World) -> None:
    ann, bob = await world.room_of()
    await ann.send("rate", {"mediaId": "test:3", "rating": "like"})
    await bob.send("rate", {"mediaId": "test:3", "rating": "like"})
    await bob.send("rate", {"mediaId": "test:4", "rating": "dislike"})
    await bob.wait_for("match")
    await bob.send("leaveRoom")
    await bob.wait_for("leaveRoomSuccess")
    again = await bob.join("Movie Night")
    assert ids(again["media"]) == [item for item in await created_deck(world) if item not in ("test:3", "test:4")]
    assert [match["media"]["id"] for match in again["previousMatches"]] == ["test:3"]
    assert sorted(again["previousMatches"][0]["users"]) == ["user0", "user1"]  # racing likes: see RACING


# -- rate, match rules ------------------------------------------------------------------------


async def test_rate_errors(world: World) -> None:
    ann = await world.user("ann")
    await ann.send("rate", {"mediaId": "test:1", "rating": "like"})
    assert await ann.expect("rateError") == {"name": "NotInRoom", "message": "join a room first", "mediaId": "test:1"}
    await ann.create("Room")
    await ann.send("rate", {"mediaId": "nope", "rating": "like"})
    assert (await ann.expect("rateError"))["name"] == "UnknownMedia"
    await ann.send("rate", {"mediaId": "test:1", "rating": "like"})
    assert await ann.expect("userProgress") == {"user": {"userName": "ann", "permissions": []}, "progress": 0.1}
    await ann.send("rate", {"mediaId": "test:1", "rating": "dislike"})
    assert (await ann.expect("rateError"))["name"] == "AlreadyRated"


async def test_standard_match_at_the_threshold_and_updates(world: World) -> None:
    a, b, c = await world.room_of(members=3)
    await a.send("rate", {"mediaId": "test:1", "rating": "like"})
    for peer in (a, b, c):
        assert (await peer.expect("userProgress"))["user"]["userName"] == "user0"
    await b.send("rate", {"mediaId": "test:1", "rating": "like"})
    for peer in (a, b, c):
        await peer.expect("userProgress")
        match = await peer.expect("match")
        assert match["users"] == ["user0", "user1"]
        assert match["media"]["id"] == "test:1"
    first_at = match["matchedAt"]
    await c.send("rate", {"mediaId": "test:1", "rating": "like"})
    for peer in (a, b, c):
        await peer.expect("userProgress")
        update = await peer.expect("match")
        assert update["users"] == ["user0", "user1", "user2"]
        assert update["matchedAt"] == first_at
    # A dislike never re-sends a match.
    d = await world.user("user3")
    await d.join("Movie Night")
    for peer in (a, b, c):
        await peer.expect("userJoinedRoom")
    await d.send("rate", {"mediaId": "test:1", "rating": "dislike"})
    await d.expect("userProgress")
    await d.no_message()


async def test_threshold_three(world: World) -> None:
    a, b, c = await world.room_of(members=3, matchThreshold=3)
    for peer in (a, b):
        await peer.send("rate", {"mediaId": "test:2", "rating": "like"})
    await c.wait_for("userProgress")
    await c.wait_for("userProgress")
    await c.no_message()
    await c.send("rate", {"mediaId": "test:2", "rating": "like"})
    assert sorted((await c.wait_for("match"))["users"]) == ["user0", "user1", "user2"]  # racing likes: see RACING


async def test_unanimous_needs_every_member(world: World) -> None:
    a, b, c = await world.room_of("unanimous", members=3)
    await a.send("rate", {"mediaId": "test:5", "rating": "like"})
    await b.send("rate", {"mediaId": "test:5", "rating": "like"})
    await a.wait_for("userProgress")
    await a.wait_for("userProgress")
    await a.no_message()
    # A member who only disconnects still counts; one who leaves does not.
    await c.send("leaveRoom")
    assert sorted((await a.wait_for("match"))["users"]) == ["user0", "user1"]  # racing likes: see RACING


async def test_unanimous_last_like_matches(world: World) -> None:
    a, b = await world.room_of("unanimous")
    await a.send("rate", {"mediaId": "test:5", "rating": "like"})
    await b.send("rate", {"mediaId": "test:5", "rating": "like"})
    assert sorted((await a.wait_for("match"))["users"]) == ["user0", "user1"]  # racing likes: see RACING


async def test_solo_matches_only_the_rater(world: World) -> None:
    a, b = await world.room_of("solo")
    await a.send("rate", {"mediaId": "test:1", "rating": "like"})
    await a.expect("userProgress")
    assert (await a.expect("match"))["users"] == ["user0"]
    await b.expect("userProgress")
    await b.no_message()
    await b.send("rate", {"mediaId": "test:1", "rating": "like"})
    assert (await b.wait_for("match"))["users"] == ["user1"]
    await b.send("leaveRoom")
    await b.wait_for("leaveRoomSuccess")
    again = await b.join("Movie Night")
    assert [m["users"] for m in again["previousMatches"]] == [["user1"]]


async def test_end_on_first_match(world: World) -> None:
    a, b = await world.room_of(options=["EndOnFirstMatch"])
    await a.send("rate", {"mediaId": "test:1", "rating": "like"})
    await b.send("rate", {"mediaId": "test:1", "rating": "like"})
    await b.wait_for("match")
    await b.send("rate", {"mediaId": "test:2", "rating": "like"})
    assert (await b.wait_for("rateError"))["name"] == "RoomEnded"


async def test_undo(world: World) -> None:
    a, b = await world.room_of()
    await a.send("rate", {"mediaId": "test:1", "rating": "like"})
    await b.send("rate", {"mediaId": "test:1", "rating": "like"})
    await b.wait_for("match")
    b.backlog.clear()  # the two userProgress messages before the match
    await b.send("undoRate", {"mediaId": "test:1"})
    assert await b.wait_for("undoRateSuccess") == {"mediaId": "test:1"}
    assert (await b.expect("userProgress"))["progress"] == 0.0
    assert await b.expect("matchRemoved") == {"mediaId": "test:1"}
    assert await a.wait_for("matchRemoved") == {"mediaId": "test:1"}
    await b.send("undoRate", {"mediaId": "test:1"})
    assert (await b.expect("rateError"))["name"] == "NotRated"
    await b.send("rate", {"mediaId": "test:1", "rating": "like"})
    assert (await b.wait_for("match"))["users"] == ["user0", "user1"]


async def test_simultaneous_ratings_never_corrupt_a_room(world: World) -> None:
    peers = await world.room_of(members=6)
    items = [f"test:{n}" for n in range(1, 11)]

    async def swipe(peer: Peer) -> None:
        for item in items:
            await peer.send("rate", {"mediaId": item, "rating": "like"})

    async with anyio.create_task_group() as tg:
        for peer in peers:
            tg.start_soon(swipe, peer)
    progress_messages = len(items) * len(peers)
    for peer in peers:
        seen_progress, new_matches = 0, []
        while seen_progress < progress_messages:
            message = await peer.next()
            if message["type"] == "userProgress":
                seen_progress += 1
            elif message["type"] == "match" and len(message["payload"]["users"]) == 2:
                new_matches.append(message["payload"]["media"]["id"])
        assert sorted(new_matches) == sorted(items)  # each item became a match exactly once
    room = await world.stored("movie night")
    assert room.user_progress == {peer.name: len(items) for peer in peers}
    assert all(len(room.ratings[item]) == len(peers) for item in items)
    assert sorted(room.matches) == sorted(items)


# -- deleteRoom ---------------------------------------------------------------------------------


async def test_owner_deletes_the_room(world: World) -> None:
    a, b = await world.room_of()
    await b.send("deleteRoom", {"roomName": "Movie Night"})
    refused = await b.expect("deleteRoomError")
    # A room that does not exist gets the same answer: nobody learns which rooms exist.
    await b.send("deleteRoom", {"roomName": "nope"})
    assert await b.expect("deleteRoomError") == refused
    assert refused["name"] == "NotRoomOwner"
    await a.send("deleteRoom", {"roomName": "movie night"})
    assert await b.expect("roomDeleted") == {"roomName": "Movie Night"}
    assert await a.expect("roomDeleted") == {"roomName": "Movie Night"}
    await a.expect("deleteRoomSuccess")
    assert not await world.storage.has_room("Movie Night")
    await b.send("rate", {"mediaId": "test:1", "rating": "like"})
    assert (await b.expect("rateError"))["name"] == "NotInRoom"


# -- locale, filters, libraries, setup --------------------------------------------------------


async def test_set_locale_falls_back_to_english(world: World) -> None:
    peer = await world.connect()
    await peer.send("setLocale", {"language": "xx-YY"})
    assert (await peer.expect("translations"))["LOGIN_SIGN_IN"] == "Sign in"


async def test_filters_values_and_libraries(world: World) -> None:
    peer = await world.user("ann")
    await peer.send("requestFilters")
    assert (await peer.expect("requestFiltersSuccess"))["filters"][0]["key"] == "genre"
    await peer.send("requestFilterValues", {"key": "genre"})
    values = await peer.expect("requestFilterValuesSuccess")
    assert values == {
        "request": {"key": "genre"},
        "values": [{"title": "Comedy", "value": "Comedy"}, {"title": "Drama", "value": "Drama"}],
    }
    await peer.send("requestFilterValues", {"key": "nope"})
    await peer.expect("requestFilterValuesError")
    await peer.send("getLibraries")
    assert await peer.expect("getLibrariesSuccess") == [{"title": "Test", "key": "test:test", "type": "movie"}]
    world.provider.fail = True
    for message_type in ["requestFilters", "getLibraries"]:
        await peer.send(message_type)
        assert "down" in (await peer.expect(f"{message_type}Error"))["message"]


async def test_setup_is_refused(world: World) -> None:
    peer = await world.connect()
    await peer.send("setup", {"servers": []})
    assert (await peer.expect("setupError"))["type"] == "NOT_SUPPORTED"


# -- bad frames -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "reply", "name"),
    [
        ("not json", "error", "MalformedMessage"),
        ("[1,2]", "error", "MalformedMessage"),
        ('{"payload": {}}', "error", "MalformedMessage"),
        # A request with an error reply of its own gets the payload's error there (v2 clients
        # show errors only in the reply they wait for).
        ('{"type": "rate", "payload": {"mediaId": "x", "rating": "meh"}}', "rateError", "MalformedMessage"),
        ('{"type": "joinRoom", "payload": 5}', "joinRoomError", "MalformedMessage"),
        ('{"type": "setLocale", "payload": {}}', "error", "MalformedMessage"),
        ('{"type": "fly"}', "error", "UnknownMessageType"),
    ],
)
async def test_bad_frames_get_an_error_and_the_session_goes_on(world: World, frame: str, reply: str, name: str) -> None:
    a, b = await world.room_of()
    await a.send_raw(frame)
    error = await a.expect(reply)
    assert error["name"] == name
    await a.send("rate", {"mediaId": "test:1", "rating": "like"})
    assert (await a.expect("userProgress"))["progress"] == 0.1
    await b.expect("userProgress")


async def test_unknown_type_names_the_request(world: World) -> None:
    peer = await world.connect()
    await peer.send("fly")
    assert (await peer.expect("error"))["requestType"] == "fly"


async def test_oversized_frame(make_world: Callable[..., AsyncIterator[World]]) -> None:
    async for world in make_world(max_message_bytes=1024):
        peer = await world.user("ann")
        await peer.send("login", {"userName": "x" * 2000})
        assert (await peer.expect("error"))["name"] == "MessageTooLarge"
        await peer.login("still here")
