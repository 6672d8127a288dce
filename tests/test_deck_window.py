"""Decks of big libraries: windows of a room's deck for clients that ask (``login {window}``,
``getCards``), the whole list for MovieMatch v2 clients made a piece at a time, and rooms on one
listing sharing its cards. Libraries of 20,000 films, large enough that a quadratic step or a
frame built in one go shows as a hang; no test asserts wall time (``bench/library.py`` measures).
"""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from websockets.asyncio.client import connect as connect_ws

from server.app import create_app
from server.config import Settings
from server.protocol import LongFrame, Reply
from server.providers import Media
from tests import fake_plex
from tests.fakes import serving
from tests.library import ListProvider, film
from tests.peers import Connect, Peer, in_process
from tests.services import running_server

pytestmark = pytest.mark.anyio

FILMS = 20_000
WINDOW = 40
WIRE_LIMIT = 64 * 1024
ROOM = "Big Night"


@pytest.fixture(scope="module")
def library() -> list[Media]:
    return [film(number) for number in range(1, FILMS + 1)]


@asynccontextmanager
async def serving_rooms(library: list[Media]) -> AsyncIterator[Connect]:
    settings = Settings.model_validate({"storage": {"url": "memory:"}, "rate_limit_burst": 10_000})
    app = create_app(settings, provider=ListProvider(library), rng=random.Random(5))
    async with in_process(app) as connect:
        yield connect


async def member(connect: Connect, name: str, window: int | None = WINDOW) -> Peer:
    peer = await connect(name)
    await peer.send("login", {"userName": name} | ({"window": window} if window else {}))
    await peer.expect("loginSuccess")
    return peer


async def raw(peer: Peer, message_type: str) -> str:
    """The next frame's text (of this type), as it came."""
    text = await peer.socket.receive_text()
    assert json.loads(text)["type"] == message_type, text[:300]
    return text


async def whole_deck(peer: Peer, window: dict[str, Any], cards: list[dict[str, Any]]) -> list[str]:
    """The ids of ``cards`` and of every window after them, asked for with getCards."""
    ids = [card["id"] for card in cards]
    while window["more"]:
        await peer.send("getCards", {"after": window["after"], "count": 200})
        window = await peer.wait_for("getCardsSuccess")
        ids += [card["id"] for card in window["media"]]
    return ids


async def test_a_windowed_join_is_small_and_its_windows_make_the_whole_deck_in_order(library: list[Media]) -> None:
    async with serving_rooms(library) as connect:
        ann = await member(connect, "ann")
        await ann.send("createRoom", {"roomName": ROOM})
        created = json.loads(await raw(ann, "createRoomSuccess"))["payload"]
        assert len(created["media"]) == WINDOW
        assert created["window"] == {"after": WINDOW, "more": True}
        bob = await member(connect, "bob")
        await bob.send("joinRoom", {"roomName": ROOM})
        frame = await raw(bob, "joinRoomSuccess")
        assert len(frame.encode()) < WIRE_LIMIT
        joined = json.loads(frame)["payload"]
        # A client of MovieMatch v2 gets the room's list whole; the windows add up to it.
        carl = await member(connect, "carl", window=None)
        whole = await carl.join(ROOM)
        everything = [card["id"] for card in whole["media"]]
        assert len(everything) == FILMS
        assert "window" not in whole
        assert await whole_deck(bob, joined["window"], joined["media"]) == everything
        assert joined["media"] == created["media"]


async def test_windows_follow_the_members_own_position_and_skip_what_it_rated(library: list[Media]) -> None:
    async with serving_rooms(library) as connect:
        ann = await member(connect, "ann")
        first = await ann.create(ROOM)
        deck = await whole_deck(ann, first["window"], first["media"])
        for media_id in deck[:50]:
            await ann.rate(media_id, "dislike")
        await ann.rate(deck[70], "dislike")  # out of order, as another device of hers may rate
        bob = await member(connect, "bob")
        await bob.join(ROOM)
        for media_id in deck[:5]:
            await bob.rate(media_id, "dislike")

        again = await member(connect, "ann")  # a reload: a new connection, the same member
        resumed = await again.join(ROOM, memberToken=first["memberToken"])
        assert [card["id"] for card in resumed["media"]] == deck[50:70] + deck[71:91]
        assert resumed["window"] == {"after": 91, "more": True}
        await again.send("getCards", {"after": resumed["window"]["after"], "count": 3})
        assert [card["id"] for card in (await again.expect("getCardsSuccess"))["media"]] == deck[91:94]

        await again.send("undoRate", {"mediaId": deck[10]})
        await again.wait_for("undoRateSuccess")
        later = await member(connect, "ann")
        rejoined = await later.join(ROOM, memberToken=resumed["memberToken"])
        assert [card["id"] for card in rejoined["media"]][:2] == [deck[10], deck[50]]


async def test_the_last_window_says_no_more_and_then_nothing_is_left(library: list[Media]) -> None:
    async with serving_rooms(library) as connect:
        ann = await member(connect, "ann")
        created = await ann.create(ROOM)
        deck = await whole_deck(ann, created["window"], created["media"])
        await ann.send("getCards", {"after": FILMS - 3, "count": 10})
        last = await ann.expect("getCardsSuccess")
        assert ([card["id"] for card in last["media"]], last["after"], last["more"]) == (deck[-3:], FILMS, False)
        await ann.send("getCards", {"after": FILMS + 5})
        assert await ann.expect("getCardsSuccess") == {"media": [], "after": FILMS + 5, "more": False}


async def test_a_windowed_join_lists_every_match(library: list[Media]) -> None:
    async with serving_rooms(library) as connect:
        ann, bob = await member(connect, "ann"), await member(connect, "bob")
        created = await ann.create(ROOM)
        await bob.join(ROOM)
        deck = await whole_deck(ann, created["window"], created["media"])
        liked = [deck[100], deck[5_000], deck[19_999]]  # far beyond any window
        for media_id in liked:
            await ann.rate(media_id, "like")
            await bob.rate(media_id, "like")
        carl = await member(connect, "carl")
        joined = await carl.join(ROOM)
        assert sorted(match["media"]["id"] for match in joined["previousMatches"]) == sorted(liked)
        assert len(joined["media"]) == WINDOW


async def test_get_cards_outside_a_room_or_malformed_is_refused(library: list[Media]) -> None:
    async with serving_rooms(library[:100]) as connect:
        ann = await member(connect, "ann")
        await ann.send("getCards", {"after": 0})
        assert (await ann.expect("getCardsError"))["name"] == "NotInRoom"
        await ann.create(ROOM)
        for bad in ({"after": -1}, {"after": 0, "count": 0}, {"after": 0, "count": 10_000}, {"after": "x"}, None):
            await ann.send("getCards", bad)
            assert (await ann.expect("getCardsError"))["name"] == "MalformedMessage"
        await ann.send("login", {"userName": "ann", "window": 0})
        assert (await ann.expect("loginError"))["name"] == "MalformedMessage"


async def test_a_v2_client_gets_its_whole_unrated_deck(library: list[Media]) -> None:
    async with serving_rooms(library) as connect:
        ann = await member(connect, "ann", window=None)
        created = await ann.create(ROOM)
        deck = [card["id"] for card in created["media"]]
        assert len(deck) == FILMS
        assert "window" not in created
        for media_id in deck[:3]:
            await ann.rate(media_id, "dislike")
        again = await member(connect, "ann", window=None)
        rejoined = await again.join(ROOM, memberToken=created["memberToken"])
        assert [card["id"] for card in rejoined["media"]] == deck[3:]


async def test_a_long_frame_lets_the_event_loop_serve_others_between_its_pieces(library: list[Media]) -> None:
    others = 0

    async def other_room() -> None:
        nonlocal others
        while True:
            others += 1
            await anyio.lowlevel.checkpoint()

    frame = LongFrame(Reply.JOIN_ROOM_SUCCESS, {"roomName": ROOM}, iter(library))
    seen: list[int] = []
    pieces: list[bytes] = []
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(other_room)
        async for piece in frame.pieces():
            seen.append(others)
            pieces.append(piece)
        tasks.cancel_scope.cancel()
    assert len(pieces) > 10
    assert seen == sorted(seen)
    assert seen[-1] - seen[0] >= len(pieces) - 2
    message = json.loads(b"".join(pieces))
    assert message["type"] == "joinRoomSuccess"
    assert message["payload"]["roomName"] == ROOM
    assert [card["id"] for card in message["payload"]["media"]] == [item.id for item in library]


async def test_a_long_frame_of_no_cards_is_still_a_frame() -> None:
    frame = LongFrame(Reply.JOIN_ROOM_SUCCESS, {}, iter([]))
    assert json.loads(await frame.text()) == {"type": "joinRoomSuccess", "payload": {"media": []}}


async def test_rooms_on_one_listing_share_its_cards(library: list[Media]) -> None:
    settings = Settings.model_validate({"storage": {"url": "memory:"}, "max_rooms_per_user": 100})
    app = create_app(settings, provider=ListProvider(library), rng=random.Random(5))
    async with in_process(app) as connect:
        ann = await member(connect, "ann")
        for number in range(3):
            await ann.create(f"{ROOM} {number}")
        rooms = list(app.state.context.registry.rooms.values())
        assert len({id(room.deck.library) for room in rooms}) == 1
        assert len({tuple(room.deck.ids) for room in rooms}) == 3  # each its own order
        cards = rooms[0].deck.library.cards
        assert all(room.deck.ids[0] is cards[room.deck.ids[0]].id for room in rooms)


# -- through the real server ------------------------------------------------------------------------


@pytest.mark.slow
async def test_through_the_server_a_v2_deck_comes_whole_and_other_rooms_are_served_meanwhile(tmp_path: Path) -> None:
    plex = fake_plex.FakePlex(libraries=[fake_plex.FakeLibrary("1", "Movies", "movie", FILMS)])
    with serving(plex) as url:
        env = {"PLEX_URL": url, "PLEX_TOKEN": fake_plex.PLEX_TOKEN, "RATE_LIMIT_BURST": "10000"}
        with running_server(tmp_path / "rooms", **env) as server:
            await _v2_joins_and_a_neighbour(server.ws_url)


async def _session(url: str, name: str, window: int | None) -> Any:
    socket = await connect_ws(url, max_size=None, ping_interval=None, open_timeout=60)
    await socket.recv()  # config
    await socket.send(json.dumps({"type": "login", "payload": {"userName": name, "window": window}}))
    assert json.loads(await socket.recv())["type"] == "loginSuccess"
    return socket


async def _reply(socket: Any, *types: str) -> dict[str, Any]:
    with anyio.fail_after(300):  # a hang, not a speed: a busy machine takes seconds per big frame
        while True:
            message: dict[str, Any] = json.loads(await socket.recv())
            if message["type"] in types:
                return message


async def _v2_joins_and_a_neighbour(url: str) -> None:
    host = await _session(url, "host", None)
    await host.send(json.dumps({"type": "createRoom", "payload": {"roomName": ROOM}}))
    with anyio.fail_after(300):
        fragments = [fragment async for fragment in host.recv_streaming()]
    assert len(fragments) > 10  # sent as it was made, not made whole first
    created = json.loads("".join(fragments))
    assert created["type"] == "createRoomSuccess"
    deck = [card["id"] for card in created["payload"]["media"]]
    assert len(deck) == FILMS

    windowed = await _session(url, "wendy", WINDOW)
    await windowed.send(json.dumps({"type": "joinRoom", "payload": {"roomName": ROOM}}))
    text = await windowed.recv()
    assert len(text.encode()) < WIRE_LIMIT
    assert json.loads(text)["payload"]["window"]["after"] == WINDOW

    neighbour = await _session(url, "nina", WINDOW)
    await neighbour.send(json.dumps({"type": "createRoom", "payload": {"roomName": "Small Night"}}))
    cards = (await _reply(neighbour, "createRoomSuccess"))["payload"]["media"]
    joiners = [await _session(url, f"v2 {number}", None) for number in range(3)]
    rated = 0

    async def join_again_and_again(socket: Any) -> None:
        for _ in range(3):
            await socket.send(json.dumps({"type": "joinRoom", "payload": {"roomName": ROOM}}))
            media = (await _reply(socket, "joinRoomSuccess"))["payload"]["media"]
            assert [card["id"] for card in media] == deck

    async def rate_meanwhile() -> None:
        nonlocal rated
        for card in cards[:20]:
            await neighbour.send(json.dumps({"type": "rate", "payload": {"mediaId": card["id"], "rating": "like"}}))
            await _reply(neighbour, "userProgress")
            rated += 1

    async with anyio.create_task_group() as tasks:
        for socket in joiners:
            tasks.start_soon(join_again_and_again, socket)
        tasks.start_soon(rate_meanwhile)
    assert rated == 20
    for socket in [host, windowed, neighbour, *joiners]:
        await socket.close()
