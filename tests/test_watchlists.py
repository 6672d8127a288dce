"""Save for later: a person's watchlist through the protocol, on every kind of server (in this event
loop, shared in memory, three real processes on Redis: tests/worlds.py), across rooms and restarts;
rooms drawn from watchlists; the refusals."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from server.app import create_app
from server.config import Settings
from storage import create_storage
from tests.library import ListProvider
from tests.peers import Peer, in_process
from tests.test_identity import person, v2_client
from tests.worlds import World

pytestmark = pytest.mark.anyio

Worlds = Callable[..., AsyncIterator[World]]


async def save(peer: Peer, media_id: str) -> Any:
    await peer.send("addToWatchlist", {"mediaId": media_id})
    return await peer.wait_for("addToWatchlistSuccess")


async def watchlist(peer: Peer) -> list[dict[str, Any]]:
    await peer.send("getWatchlist")
    items: list[dict[str, Any]] = (await peer.wait_for("getWatchlistSuccess"))["items"]
    return items


async def refusal(peer: Peer, message_type: str, payload: dict[str, Any] | None = None) -> Any:
    await peer.send(message_type, payload)
    return await peer.wait_for("watchlistError")


async def test_saved_cards_are_kept_per_person_across_rooms(make_world: Worlds) -> None:
    async for world in make_world():
        ann, token = await person(world, "Ann")
        created = await ann.create("Friday")
        first, second = created["media"][0], created["media"][1]
        saved = await save(ann, first["id"])
        assert saved == {"item": {"media": first, "savedAt": saved["item"]["savedAt"]}}
        await save(ann, second["id"])
        again = await save(ann, first["id"])  # saving twice keeps the first date
        assert again["item"]["savedAt"] == saved["item"]["savedAt"]
        assert [item["media"]["id"] for item in await watchlist(ann)] == [second["id"], first["id"]]

        # The same person in another room, on another connection (another process in a cluster).
        again_ann, _ = await person(world, "Ann", token)
        await again_ann.create("Saturday")
        assert [item["media"] for item in await watchlist(again_ann)] == [second, first]

        # Someone else's list is their own.
        bob, _ = await person(world, "Bob")
        await bob.join("Friday")
        assert await watchlist(bob) == []

        await again_ann.send("removeFromWatchlist", {"mediaId": second["id"]})
        assert await again_ann.wait_for("removeFromWatchlistSuccess") == {"mediaId": second["id"]}
        assert [item["media"]["id"] for item in await watchlist(ann)] == [first["id"]]
        # Removing what is not there is no error: the card is not on the list either way.
        await ann.send("removeFromWatchlist", {"mediaId": "test:99"})
        assert await ann.wait_for("removeFromWatchlistSuccess") == {"mediaId": "test:99"}


async def test_saving_needs_an_identity_a_room_and_a_card_of_it(make_world: Worlds) -> None:
    async for world in make_world():
        v2 = await v2_client(world, "Old")
        for message_type, payload in (("getWatchlist", None), ("addToWatchlist", {"mediaId": "test:1"})):
            error = await refusal(v2, message_type, payload)
            assert error["name"] == "NoIdentity"
        ann, _ = await person(world, "Ann")
        error = await refusal(ann, "addToWatchlist", {"mediaId": "test:1"})
        assert (error["name"], error["mediaId"]) == ("NotInRoom", "test:1")
        await ann.create("Friday")
        error = await refusal(ann, "addToWatchlist", {"mediaId": "test:404"})
        assert (error["name"], error["mediaId"]) == ("UnknownMedia", "test:404")
        error = await refusal(ann, "addToWatchlist", {"mediaId": ""})
        assert (error["name"], error["requestType"]) == ("MalformedMessage", "addToWatchlist")
        assert await watchlist(ann) == []
        stranger = await world.connect("stranger")
        error = await refusal(stranger, "getWatchlist")
        assert error["name"] == "NotLoggedInError"


async def test_a_room_drawn_from_the_creators_watchlist(make_world: Worlds) -> None:
    async for world in make_world():
        ann, _ = await person(world, "Ann")
        first = await ann.create("Friday")
        comedies = [item["id"] for item in first["media"] if "Comedy" in item["genres"]]
        dramas = [item["id"] for item in first["media"] if "Comedy" not in item["genres"]]
        chosen = {*comedies[:2], dramas[0]}
        for media_id in chosen:
            await save(ann, media_id)
        bob, _ = await person(world, "Bob")
        await bob.join("Friday")
        await save(bob, dramas[1])  # not the creator's list: not in the new room

        ours = await ann.create("Our list", source="watchlists")
        assert {item["id"] for item in ours["media"]} == chosen
        # Filters still apply: the watchlist, as far as the library (and the filters) have it.
        funny = await ann.create("Our comedies", source="watchlists", filters=[genre("Comedy")])
        assert {item["id"] for item in funny["media"]} == set(comedies[:2])
        # Bob joins and sees the same cards in the same order.
        joined = await bob.join("Our list")
        assert joined["media"] == ours["media"]


async def test_a_watchlist_room_is_asked_for_by_source_never_by_a_filter(make_world: Worlds) -> None:
    async for world in make_world():
        ann, _ = await person(world, "Ann")
        await ann.send("createRoom", {"roomName": "Empty", "source": "watchlists"})
        assert (await ann.wait_for("createRoomError"))["name"] == "NoMediaError"
        # A filter naming someone's identity would be a way into their list: refused.
        forged = {"key": "watchlist", "operator": "=", "value": ["plex:4242"]}
        await ann.send("createRoom", {"roomName": "Forged", "filters": [forged]})
        error = await ann.wait_for("createRoomError")
        assert (error["name"], "watchlists" in error["message"]) == ("InvalidFilter", True)
        await ann.send("createRoom", {"roomName": "Odd", "source": "elsewhere"})
        assert (await ann.wait_for("createRoomError"))["name"] == "MalformedMessage"
        v2 = await v2_client(world, "Old")
        await v2.send("createRoom", {"roomName": "Old's", "source": "watchlists"})
        assert (await v2.wait_for("createRoomError"))["name"] == "NoIdentity"


def genre(name: str) -> dict[str, Any]:
    return {"key": "genre", "operator": "=", "value": [name]}


async def test_watchlists_and_their_rooms_survive_a_restart(tmp_path: Path) -> None:
    """On file storage, the server stopped and started again (Redis: the cluster world above)."""
    url = f"file:{tmp_path / 'rooms'}"

    def app() -> Any:
        return create_app(Settings(), storage=create_storage(url), provider=ListProvider(), rng=random.Random(3))

    async with in_process(app()) as connect:
        ann = await connect("ann")
        await ann.send("login", {"userName": "Ann", "newIdentity": True})
        token = (await ann.expect("loginSuccess"))["identityToken"]
        created = await ann.create("Friday")
        for item in created["media"][:2]:
            await save(ann, item["id"])
        ours = await ann.create("Our list", source="watchlists")
    async with in_process(app()) as connect:
        ann = await connect("ann")
        await ann.send("login", {"userName": "Ann", "identityToken": token})
        await ann.expect("loginSuccess")
        assert [item["media"] for item in await watchlist(ann)] == created["media"][:2][::-1]
        again = await ann.join("Our list")
        assert again["media"] == ours["media"]
