"""Play the winner through the protocol: the room's owner lists the players of the match's media
server and starts the film on one; every member hears of it; a player that is gone, refuses, or
belongs to another server is said plainly. Against the fake Plex and Jellyfin over real HTTP
(tests/fake_plex_extras.py, tests/fake_jellyfin_extras.py)."""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from server.app import create_app
from server.config import Settings
from server.rooms.shared import MemoryHub, MemoryLive
from storage import MemoryStorage
from tests.fake_jellyfin import API_KEY, FakeLibrary as JellyfinLibrary
from tests.fake_jellyfin_extras import FakeJellyfinPlus, FakeSession
from tests.fake_plex import MACHINE_IDENTIFIER, PLEX_TOKEN, FakeLibrary as PlexLibrary
from tests.fake_plex_extras import FakePlayer, FakePlexWithPlayers
from tests.fakes import no_secret_logged, serving
from tests.peers import Connect, Peer, in_process, in_processes
from tests.test_identity import person
from tests.worlds import World

pytestmark = pytest.mark.anyio

clean_logs = no_secret_logged(PLEX_TOKEN, API_KEY)


async def answer(peer: Peer, message_type: str, payload: dict[str, Any], reply: str) -> Any:
    await peer.send(message_type, payload)
    body = await peer.wait_for(reply)
    text = json.dumps(body)
    assert PLEX_TOKEN not in text
    assert API_KEY not in text
    return body


async def running(server: dict[str, Any]) -> AsyncIterator[Connect]:
    settings = Settings.model_validate({"servers": [server]})
    async with in_process(create_app(settings, storage=MemoryStorage())) as connect:
        yield connect


async def matched(connect: Connect) -> tuple[Peer, Peer, dict[str, Any], dict[str, Any]]:
    """Ann's room, Bob in it, a card they both liked (a match) and one nobody rated."""
    world = World(connect, MemoryStorage(), None)  # type: ignore[arg-type]
    ann, _ = await person(world, "Ann")
    created = await ann.create("Film Night")
    bob, _ = await person(world, "Bob")
    await bob.join("Film Night")
    winner, other = created["media"][0], created["media"][1]
    for peer in (ann, bob):
        await peer.send("rate", {"mediaId": winner["id"], "rating": "like"})
    for peer in (ann, bob):
        await peer.wait_for("match")
    return ann, bob, winner, other


# -- Plex -------------------------------------------------------------------------------------------


@pytest.fixture
def plex() -> FakePlexWithPlayers:
    return FakePlexWithPlayers(
        libraries=[PlexLibrary("1", "Movies", "movie", 40)],
        players=[
            FakePlayer("tv-livingroom", "Living Room TV"),
            FakePlayer("remote-only", "Phone", product="Plex for iOS", capabilities="navigation,timeline"),
            FakePlayer("kids-tv", "Kids' TV", refuses=True),
        ],
    )


@pytest.fixture
async def plex_app(plex: FakePlexWithPlayers) -> AsyncIterator[tuple[Connect, str]]:
    with serving(plex) as url:
        async for connect in running({"url": url, "token": PLEX_TOKEN}):
            yield connect, url


async def test_the_owner_starts_a_match_on_a_plex_player(
    plex_app: tuple[Connect, str], plex: FakePlexWithPlayers
) -> None:
    connect, url = plex_app
    ann, bob, winner, _ = await matched(connect)
    listed = await answer(ann, "getPlayers", {"mediaId": winner["id"]}, "getPlayersSuccess")
    provider = winner["linkUrl"].split("/")[2]
    assert listed == {
        "mediaId": winner["id"],
        "players": [
            {"id": f"{provider}/tv-livingroom", "name": "Living Room TV", "product": "Plex for Android (TV)"},
            {"id": f"{provider}/kids-tv", "name": "Kids' TV", "product": "Plex for Android (TV)"},
        ],
    }
    started = await answer(
        ann, "playMedia", {"mediaId": winner["id"], "playerId": f"{provider}/tv-livingroom"}, "playMediaSuccess"
    )
    assert started == {"mediaId": winner["id"], "playerId": f"{provider}/tv-livingroom", "player": "Living Room TV"}
    for peer in (ann, bob):
        assert await peer.wait_for("playbackStarted") == {"mediaId": winner["id"], "player": "Living Room TV"}

    # The server got a play queue of the film, and passed the command to that player.
    rating_key = winner["linkUrl"].rsplit("/", 1)[-1]
    [queue] = plex.requests_to("/playQueues")
    assert queue.method == "POST"
    assert (
        queue.param("uri") == f"server://{MACHINE_IDENTIFIER}/com.plexapp.plugins.library/library/metadata/{rating_key}"
    )
    [command] = plex.players["tv-livingroom"].played
    host_port = url.removeprefix("http://")
    assert command["key"] == f"/library/metadata/{rating_key}"
    assert (command["machineIdentifier"], f"{command['address']}:{command['port']}") == (MACHINE_IDENTIFIER, host_port)
    assert command["containerKey"] == f"/playQueues/{next(iter(plex.queues))}?window=100&own=1"
    [sent] = plex.requests_to("/player/playback/playMedia")
    assert sent.headers["x-plex-target-client-identifier"] == "tv-livingroom"
    assert PLEX_TOKEN not in sent.query  # in the header only
    assert sent.headers["x-plex-token"] == PLEX_TOKEN


async def test_players_are_the_owners_and_for_matches_only(
    plex_app: tuple[Connect, str], plex: FakePlexWithPlayers
) -> None:
    connect, _ = plex_app
    ann, bob, winner, other = await matched(connect)
    error = await answer(bob, "getPlayers", {"mediaId": winner["id"]}, "getPlayersError")
    assert (error["name"], error["mediaId"]) == ("NotRoomOwner", winner["id"])
    provider = winner["linkUrl"].split("/")[2]
    error = await answer(
        bob, "playMedia", {"mediaId": winner["id"], "playerId": f"{provider}/tv-livingroom"}, "playMediaError"
    )
    assert (error["name"], error["playerId"]) == ("NotRoomOwner", f"{provider}/tv-livingroom")
    error = await answer(ann, "getPlayers", {"mediaId": other["id"]}, "getPlayersError")
    assert error["name"] == "NotAMatch"
    error = await answer(ann, "getPlayers", {"mediaId": "plex://movie/nothing"}, "getPlayersError")
    assert error["name"] == "UnknownMedia"
    assert not plex.requests_to("/clients")
    assert not plex.requests_to("/playQueues")


async def test_a_player_gone_refusing_or_of_another_server_is_said_plainly(
    plex_app: tuple[Connect, str], plex: FakePlexWithPlayers
) -> None:
    connect, _ = plex_app
    ann, _, winner, _ = await matched(connect)
    provider = winner["linkUrl"].split("/")[2]

    async def play(player_id: str) -> Any:
        return await answer(ann, "playMedia", {"mediaId": winner["id"], "playerId": player_id}, "playMediaError")

    error = await play(f"{provider}/kids-tv")
    assert (error["name"], "Kids' TV" in error["message"]) == ("PlaybackRefused", True)
    plex.players["tv-livingroom"].reachable = False  # still listed, no longer reached
    assert (await play(f"{provider}/tv-livingroom"))["name"] == "PlayerGone"
    del plex.players["tv-livingroom"]  # not even listed
    error = await play(f"{provider}/tv-livingroom")
    assert (error["name"], "gone" in error["message"]) == ("PlayerGone", True)
    assert (await play("jellyfin-0123abcd/5f2a9c8e"))["name"] == "NotOnServer"
    assert (await play("no-separator"))["name"] == "PlayerGone"
    assert (await play(f"{provider}/../../identity"))["name"] == "PlayerGone"
    error = await answer(ann, "playMedia", {"mediaId": winner["id"]}, "playMediaError")
    assert error["name"] == "MalformedMessage"


async def test_a_title_no_media_server_holds_plays_nowhere() -> None:
    async for connect in running_demo():
        ann, _, winner, _ = await matched(connect)
        error = await answer(ann, "getPlayers", {"mediaId": winner["id"]}, "getPlayersError")
        assert (error["name"], error["mediaId"]) == ("NotOnServer", winner["id"])


async def running_demo() -> AsyncIterator[Connect]:
    async with in_process(create_app(Settings(), storage=MemoryStorage())) as connect:
        yield connect


# -- Jellyfin ---------------------------------------------------------------------------------------


async def test_members_on_other_processes_hear_that_the_match_plays(plex: FakePlexWithPlayers) -> None:
    """The owner's process starts the film; a member served by another process sharing the room is
    told as well (the news passes through the rooms' channel, nothing is stored)."""
    storage = MemoryStorage()
    hub = MemoryHub(storage)
    with serving(plex) as url:
        settings = Settings.model_validate({"servers": [{"url": url, "token": PLEX_TOKEN}]})
        apps = [create_app(settings, storage=storage, live=MemoryLive(hub, f"process-{n}")) for n in range(2)]
        async with in_processes(*apps) as connects:
            turns = itertools.cycle(connects)

            async def connect(name: str = "") -> Peer:
                return await next(turns)(name)

            ann, bob, winner, _ = await matched(connect)  # Ann on the first process, Bob on the second
            provider = winner["linkUrl"].split("/")[2]
            playing = {"mediaId": winner["id"], "playerId": f"{provider}/tv-livingroom"}
            await answer(ann, "playMedia", playing, "playMediaSuccess")
            for peer in (ann, bob):
                assert await peer.wait_for("playbackStarted") == {"mediaId": winner["id"], "player": "Living Room TV"}


@pytest.fixture
def jellyfin() -> FakeJellyfinPlus:
    return FakeJellyfinPlus(
        libraries=[JellyfinLibrary(1, "Movies", "movies", 40, imdb_base=1)],
        sessions=[
            FakeSession("a1" * 16, "Living Room TV"),
            FakeSession("b2" * 16, "Phone", client="Jellyfin Mobile", remote_control=False),
            FakeSession("c3" * 16, "Kitchen Speaker", client="Finamp", media_types=("Audio",)),
            FakeSession("d4" * 16, "Bob's Laptop", client="Jellyfin Web", refuses=True),
        ],
    )


async def test_the_owner_starts_a_match_in_a_jellyfin_session(jellyfin: FakeJellyfinPlus) -> None:
    with serving(jellyfin) as url:
        async for connect in running({"type": "jellyfin", "url": url, "token": API_KEY}):
            ann, bob, winner, _ = await matched(connect)
            provider = winner["linkUrl"].split("/")[2]
            listed = await answer(ann, "getPlayers", {"mediaId": winner["id"]}, "getPlayersSuccess")
            assert listed["players"] == [
                {"id": f"{provider}/{'a1' * 16}", "name": "Living Room TV", "product": "Jellyfin Android TV"},
                {"id": f"{provider}/{'d4' * 16}", "name": "Bob's Laptop", "product": "Jellyfin Web"},
            ]
            tv = f"{provider}/{'a1' * 16}"
            started = await answer(ann, "playMedia", {"mediaId": winner["id"], "playerId": tv}, "playMediaSuccess")
            assert started["player"] == "Living Room TV"
            for peer in (ann, bob):
                assert (await peer.wait_for("playbackStarted"))["player"] == "Living Room TV"
            item = winner["linkUrl"].rsplit("/", 1)[-1]
            assert jellyfin.sessions["a1" * 16].played == [("PlayNow", [item])]

            laptop = f"{provider}/{'d4' * 16}"
            error = await answer(ann, "playMedia", {"mediaId": winner["id"], "playerId": laptop}, "playMediaError")
            assert error["name"] == "PlaybackRefused"
            del jellyfin.sessions["a1" * 16]
            error = await answer(ann, "playMedia", {"mediaId": winner["id"], "playerId": tv}, "playMediaError")
            assert error["name"] == "PlayerGone"
