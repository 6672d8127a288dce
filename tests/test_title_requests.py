"""Requests through the protocol: a room mixes in Seerr's popular titles the library lacks (marked,
their posters proxied), the owner requests a matched one with one message, and every member is
told its state, read again from Seerr while the room is open. Against the fake Seerr over real HTTP."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from server.app import create_app
from server.config import Settings
from storage import MemoryStorage
from tests.fake_seerr import SEERR_API_KEY, FakeSeerr, FakeTmdbImages
from tests.fakes import Fault, assert_clean, eventually, no_secret_logged, serving
from tests.peers import Connect, Peer, in_process_with_http
from tests.test_identity import person
from tests.worlds import World

pytestmark = pytest.mark.anyio

clean_logs = no_secret_logged(SEERR_API_KEY)


@pytest.fixture
def seerr() -> FakeSeerr:
    return FakeSeerr()


@pytest.fixture
def settings(seerr: FakeSeerr) -> Iterator[Settings]:
    with serving(seerr) as seerr_url, serving(FakeTmdbImages()) as image_url:
        yield Settings.model_validate(
            {
                "servers": [{"type": "seerr", "url": seerr_url.removesuffix("/api/v1"), "token": SEERR_API_KEY}],
                "tmdb_image_url": image_url,
                "request_refresh_interval": 0.1,
            }
        )


@pytest.fixture
async def running(settings: Settings) -> AsyncIterator[tuple[Connect, httpx.AsyncClient]]:
    async with in_process_with_http(create_app(settings, storage=MemoryStorage())) as app:
        yield app


async def answer(peer: Peer, message_type: str, payload: dict[str, Any] | None, reply: str) -> Any:
    await peer.send(message_type, payload)
    body = await peer.wait_for(reply)
    assert SEERR_API_KEY not in json.dumps(body)
    return body


async def two_in_a_mixed_room(connect: Connect) -> tuple[Peer, Peer, dict[str, Any]]:
    world = World(connect, MemoryStorage(), None)  # type: ignore[arg-type]
    ann, _ = await person(world, "Ann")
    libraries = await answer(ann, "getLibraries", None, "getLibrariesSuccess")
    assert SEERR_API_KEY not in json.dumps(libraries)
    mixed = [library["key"] for library in libraries if library["type"] == "movie"]
    seerr_list = next(library for library in libraries if library.get("inLibrary") is False)
    assert seerr_list["key"].startswith("seerr-")
    assert seerr_list["key"] in mixed
    created = await ann.create("Mixed", libraries=mixed)
    bob, _ = await person(world, "Bob")
    await bob.join("Mixed")
    await ann.wait_for("userJoinedRoom")
    return ann, bob, created


async def told(peer: Peer, media_id: str, status: str, *earlier: str) -> None:
    """The member is told the title's state ``status``, perhaps after some of ``earlier`` (a state
    read from Seerr may reach it before the news does, never after)."""
    while True:
        message = await peer.wait_for("requestStatus")
        assert message["mediaId"] == media_id
        if message["status"] == status:
            return
        assert message["status"] in earlier, message


async def a_missing_match(connect: Connect) -> tuple[Peer, Peer, dict[str, Any]]:
    """Ann (the owner) and Bob in a mixed room, having matched a title the library lacks."""
    ann, bob, created = await two_in_a_mixed_room(connect)
    wanted = next(item for item in created["media"] if item.get("inLibrary") is False)
    await both_like(ann, bob, wanted["id"])
    return ann, bob, wanted


async def both_like(ann: Peer, bob: Peer, media_id: str) -> None:
    for peer in (ann, bob):
        await peer.send("rate", {"mediaId": media_id, "rating": "like"})
    for peer in (ann, bob):
        assert (await peer.wait_for("match"))["media"]["id"] == media_id


async def test_a_room_mixes_in_popular_titles_the_library_lacks(
    running: tuple[Connect, httpx.AsyncClient],
) -> None:
    connect, client = running
    _, _, created = await two_in_a_mixed_room(connect)
    missing = [item for item in created["media"] if item.get("inLibrary") is False]
    library = [item for item in created["media"] if "inLibrary" not in item]
    assert len(missing) == 24
    assert library  # the demo library's films, unmarked
    assert {item["id"][:7] for item in missing} == {"tmdb://"}
    with_poster = next(item for item in missing if "posterUrl" in item)
    poster = await client.get(with_poster["posterUrl"], params={"width": 400})
    assert poster.status_code == 200
    assert poster.headers["content-type"] == "image/png"
    assert "img-src 'self' data: blob:;" in poster.headers["content-security-policy"]
    link = await client.get("/" + with_poster["linkUrl"])
    assert link.status_code == 302
    assert link.headers["location"].endswith("/movie/" + with_poster["id"].removeprefix("tmdb://"))


async def test_the_owner_requests_a_matched_title_and_everyone_sees_its_state(
    running: tuple[Connect, httpx.AsyncClient], seerr: FakeSeerr
) -> None:
    connect, _ = running
    ann, bob, created = await two_in_a_mixed_room(connect)
    missing = [item for item in created["media"] if item.get("inLibrary") is False]
    wanted, unmatched = missing[0], missing[1]
    in_library = next(item for item in created["media"] if "inLibrary" not in item)

    error = await answer(ann, "requestMedia", {"mediaId": unmatched["id"]}, "requestMediaError")
    assert (error["name"], error["mediaId"]) == ("NotAMatch", unmatched["id"])
    await both_like(ann, bob, in_library["id"])
    error = await answer(ann, "requestMedia", {"mediaId": in_library["id"]}, "requestMediaError")
    assert error["name"] == "NotRequestable"
    error = await answer(ann, "requestMedia", {"mediaId": "tmdb://0"}, "requestMediaError")
    assert error["name"] == "UnknownMedia"

    await both_like(ann, bob, wanted["id"])
    # A new match the library lacks: everyone learns its state (nobody has requested it).
    for peer in (ann, bob):
        await told(peer, wanted["id"], "none")
    error = await answer(bob, "requestMedia", {"mediaId": wanted["id"]}, "requestMediaError")
    assert (error["name"], error["mediaId"]) == ("NotRoomOwner", wanted["id"])
    assert not seerr.requests_to("/request")

    # Both can ask what the state is; nobody has requested it yet.
    assert (await answer(bob, "getRequests", None, "getRequestsSuccess"))["requests"] == [
        {"mediaId": wanted["id"], "status": "none"}
    ]
    done = await answer(ann, "requestMedia", {"mediaId": wanted["id"]}, "requestMediaSuccess")
    assert done == {"mediaId": wanted["id"], "status": "pending"}
    for peer in (ann, bob):
        await told(peer, wanted["id"], "pending")
    [made] = seerr.requests_to("/request")
    assert made.headers["x-api-key"] == SEERR_API_KEY

    # Seerr approves it and it becomes available: the room is told as Seerr is read again.
    tmdb_id = int(wanted["id"].removeprefix("tmdb://"))
    seerr.title("movie", tmdb_id).requests[0].status = 2
    seerr.title("movie", tmdb_id).media_status = 3
    for peer in (ann, bob):
        await told(peer, wanted["id"], "processing")
    seerr.title("movie", tmdb_id).media_status = 5
    for peer in (ann, bob):
        await told(peer, wanted["id"], "available")
    # Told once per change: nothing more while nothing changes.
    ann.backlog = [message for message in ann.backlog if message["type"] != "userProgress"]
    await ann.no_message(within=0.5)
    assert (await answer(bob, "getRequests", None, "getRequestsSuccess"))["requests"] == [
        {"mediaId": wanted["id"], "status": "available"}
    ]


async def test_a_request_read_back_before_its_reply_is_told_once(
    running: tuple[Connect, httpx.AsyncClient], seerr: FakeSeerr
) -> None:
    connect, _ = running
    ann, bob, wanted = await a_missing_match(connect)
    for peer in (ann, bob):
        await told(peer, wanted["id"], "none")
    # Seerr records the request at once and answers late: the room's readings (every 0.1 s) see it first.
    seerr.request_reply_delay = 0.5
    done = await answer(ann, "requestMedia", {"mediaId": wanted["id"]}, "requestMediaSuccess")
    assert done == {"mediaId": wanted["id"], "status": "pending"}
    await told(bob, wanted["id"], "pending")
    readings = "/movie/" + wanted["id"].removeprefix("tmdb://")
    replied = len(seerr.requests_to(readings))
    await eventually(lambda: len(seerr.requests_to(readings)) >= replied + 2, within=30)  # two more readings
    bob.backlog = [message for message in bob.backlog if message["type"] != "userProgress"]
    await bob.no_message(within=0.3)


async def test_seerr_failing_a_request_is_said_plainly(
    running: tuple[Connect, httpx.AsyncClient], seerr: FakeSeerr
) -> None:
    connect, _ = running
    ann, _, wanted = await a_missing_match(connect)
    seerr.refuse_requests = True
    error = await answer(ann, "requestMedia", {"mediaId": wanted["id"]}, "requestMediaError")
    assert error["name"] == "ProviderError"
    assert "You do not have permission to make requests" in error["message"]
    seerr.refuse_requests = False
    seerr.fault = Fault("status", "/request", status=500)
    error = await answer(ann, "requestMedia", {"mediaId": wanted["id"]}, "requestMediaError")
    assert (error["name"], "HTTP 500" in error["message"]) == ("ProviderError", True)
    assert_clean((SEERR_API_KEY,), json.dumps(error))


async def test_requests_need_a_room(running: tuple[Connect, httpx.AsyncClient]) -> None:
    connect, _ = running
    peer = await connect("lone")
    await peer.login("Lone")
    error = await answer(peer, "requestMedia", {"mediaId": "tmdb://551"}, "requestMediaError")
    assert (error["name"], error["mediaId"]) == ("NotInRoom", "tmdb://551")
    assert (await answer(peer, "getRequests", None, "getRequestsError"))["name"] == "NotInRoom"
    error = await answer(peer, "requestMedia", {"mediaId": 5}, "requestMediaError")
    assert error["name"] == "MalformedMessage"


async def test_in_a_solo_room_only_the_member_whose_match_it_is_hears_of_it(
    running: tuple[Connect, httpx.AsyncClient],
) -> None:
    connect, _ = running
    world = World(connect, MemoryStorage(), None)  # type: ignore[arg-type]
    ann, _ = await person(world, "Ann")
    libraries = await answer(ann, "getLibraries", None, "getLibrariesSuccess")
    created = await ann.create("Solo", roomType="solo", libraries=[library["key"] for library in libraries])
    bob, _ = await person(world, "Bob")
    await bob.join("Solo")
    wanted = next(item for item in created["media"] if item.get("inLibrary") is False)
    await ann.send("rate", {"mediaId": wanted["id"], "rating": "like"})
    assert (await ann.wait_for("match"))["users"] == ["Ann"]
    await told(ann, wanted["id"], "none")
    assert (await answer(ann, "requestMedia", {"mediaId": wanted["id"]}, "requestMediaSuccess"))["status"] == "pending"
    await told(ann, wanted["id"], "pending")
    # Bob never matched it: he hears nothing of it, and cannot ask for it.
    assert (await answer(bob, "getRequests", None, "getRequestsSuccess"))["requests"] == []
    bob.backlog = [message for message in bob.backlog if message["type"] != "userProgress"]
    assert not [message for message in bob.backlog if message["type"] == "requestStatus"]
    await bob.no_message(within=0.4)


async def test_seerr_down_is_said_once_while_rooms_wait(
    running: tuple[Connect, httpx.AsyncClient], seerr: FakeSeerr, caplog: pytest.LogCaptureFixture
) -> None:
    connect, _ = running
    ann, bob, created = await two_in_a_mixed_room(connect)
    missing = [item for item in created["media"] if item.get("inLibrary") is False][:2]
    for item in missing:
        await both_like(ann, bob, item["id"])
    caplog.set_level(logging.INFO, logger="server.title_requests")
    seerr.fault = Fault("status", "/movie", status=503)
    await eventually(lambda: len(seerr.requests_to("/movie/" + missing[0]["id"].removeprefix("tmdb://"))) >= 4)
    seerr.fault = None
    await eventually(lambda: any("again" in record.getMessage() for record in caplog.records))
    lines = [record.getMessage() for record in caplog.records if record.name == "server.title_requests"]
    assert len([line for line in lines if "could not read" in line]) == 1, lines
