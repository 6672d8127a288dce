"""The clients that already exist, frame for frame: the storage fork's room wizard (its create
payloads, as its CreateRoomWizard.tsx builds them) and the original MovieMatch v2 web client (login
by name, setLocale with the browser's language, a reload that joins again by name alone).

In-process, as tests/test_protocol.py; the rooms are drawn from the bundled demo library, or from
the fake Plex and Jellyfin servers over real HTTP, and must hold exactly the films asked for.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from httpx_ws import aconnect_ws

from server.app import create_app
from server.config import Settings
from server.connection import MESSAGES
from server.protocol import CreateRoomRequest, parse_message
from server.providers import Media, MediaQuery
from server.providers.demo import DemoProvider
from storage import Filter, MemoryStorage
from tests import fake_jellyfin, fake_plex
from tests.fakes import serving
from tests.peers import Connect, Peer, Socket, in_process_with_http

pytestmark = pytest.mark.anyio

# The fork's wizard with its defaults: one library chosen, one genre, the rating sliders untouched.
FORK_CREATE: dict[str, Any] = {
    "type": "createRoom",
    "payload": {
        "roomName": "Movie Night",
        "filters": [
            {"key": "library", "operator": "=", "value": ["demo:demo"]},
            {"key": "genre", "operator": "=", "value": ["Comedy"]},
            {"key": "rating", "operator": ">=", "value": [">=0", "<=10"]},
        ],
        "roomType": "standard",
        "sortOrder": "random",
        "genreFilterMode": "or",
    },
}


def fork_create(*filters: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """The wizard's payload with other filters after the library one (it always sends the library)."""
    payload = {**FORK_CREATE["payload"], "filters": [FORK_CREATE["payload"]["filters"][0], *filters], **fields}
    return {"type": "createRoom", "payload": payload}


def genre(*names: str) -> dict[str, Any]:
    return {"key": "genre", "operator": "=", "value": list(names)}


def rating_range(low: float, high: float) -> dict[str, Any]:
    return {"key": "rating", "operator": ">=", "value": [f">={low:g}", f"<={high:g}"]}


def content_ratings(*ratings: str) -> dict[str, Any]:
    return {"key": "contentRating", "operator": "=", "value": list(ratings)}


def watched_status(status: str) -> dict[str, Any]:
    """The wizard's watched status: "unwatched" or "watched" ("all" sends no filter)."""
    return {"key": "unwatched", "operator": "=", "value": ["true" if status == "unwatched" else "false"]}


@asynccontextmanager
async def server(settings: Settings) -> AsyncIterator[tuple[Connect, httpx.AsyncClient]]:
    async with in_process_with_http(create_app(settings, storage=MemoryStorage())) as running:
        yield running


async def user(connect: Connect, name: str) -> Peer:
    peer = await connect(name)
    await peer.send("login", {"userName": name})  # v2's anonymous login
    assert (await peer.expect("loginSuccess"))["userName"] == name
    return peer


async def created_by(peer: Peer, frame: dict[str, Any]) -> dict[str, Any]:
    await peer.send_raw(json.dumps(frame))
    kind, payload = await peer.wait_for_any("createRoomSuccess", "createRoomError", "error")
    assert kind == "createRoomSuccess", payload
    reply: dict[str, Any] = payload
    return reply


def titles(media: list[dict[str, Any]]) -> set[str]:
    return {item["title"] for item in media}


async def demo_films(*rules: Filter) -> list[Media]:
    return await DemoProvider().media(MediaQuery(filters=list(rules)))


def rule(key: str, operator: str, *values: str) -> Filter:
    return Filter(key=key, operator=operator, value=list(values))


# -- the fork's wizard on the demo library ---------------------------------------------------------


def test_the_fork_s_payload_is_read_in_the_vocabulary_providers_take() -> None:
    frame = fork_create(
        genre("Comedy", "Romance"),
        rating_range(0, 10),
        content_ratings("PG", "R"),
        watched_status("watched"),
        {"key": "watched", "operator": "=", "value": ["false"]},  # the fork's server-side spelling
        genreFilterMode="and",
        ratingFilter={"min": 6.5},
        contentRatingFilter={"ratings": ["G"]},
    )
    kind, request = parse_message(json.dumps(frame), MESSAGES)
    assert kind == "createRoom"
    assert isinstance(request, CreateRoomRequest)
    assert request.libraries == ["demo:demo"]
    assert request.filters == [
        rule("genre", "=", "Comedy"),
        rule("genre", "=", "Romance"),
        rule("rating", ">>=", "0"),
        rule("rating", "<<=", "10"),
        rule("contentRating", "=", "PG", "R"),
        rule("unwatched", "=", "0"),  # watched only
        rule("unwatched", "=", "1"),  # not watched
        rule("rating", ">>=", "6.5"),
        rule("contentRating", "=", "G"),
    ]


async def test_the_fork_s_wizard_creates_the_room_it_asked_for() -> None:
    async with server(Settings()) as (connect, _):
        host = await user(connect, "host")
        room = await created_by(host, FORK_CREATE)
    assert (room["roomName"], room["roomType"]) == ("Movie Night", "standard")
    comedies = await demo_films(rule("genre", "=", "Comedy"))
    assert comedies
    assert titles(room["media"]) == {film.title for film in comedies}


FORK_VARIANTS: dict[str, tuple[dict[str, Any], Callable[[Media], bool]]] = {
    "genres any of": (fork_create(genre("Comedy", "Romance")), lambda m: bool({"Comedy", "Romance"} & {*m.genres})),
    "genres all of": (
        fork_create(genre("Comedy", "Romance"), genreFilterMode="and"),
        lambda m: {"Comedy", "Romance"} <= {*m.genres},
    ),
    "a rating range": (fork_create(rating_range(7, 7.8)), lambda m: 7 <= m.rating <= 7.8),
    "content ratings": (
        fork_create(content_ratings("G", "PG", "PG-13", "R", "NC-17", "Approved")),
        lambda m: m.contentRating in ("G", "PG", "PG-13", "R", "NC-17", "Approved"),
    ),
    "the fork's own ratingFilter and contentRatingFilter fields": (
        fork_create(
            ratingFilter={"min": 7, "max": 10, "type": "audience"}, contentRatingFilter={"ratings": ["Approved"]}
        ),
        lambda m: m.rating >= 7 and m.contentRating == "Approved",
    ),
    "no library chosen: every library": (
        {**FORK_CREATE, "payload": {**FORK_CREATE["payload"], "filters": [genre("Horror")]}},
        lambda m: "Horror" in m.genres,
    ),
}


@pytest.mark.parametrize("case", FORK_VARIANTS.values(), ids=FORK_VARIANTS.keys())
async def test_the_fork_s_filters_select_the_films(case: tuple[dict[str, Any], Callable[[Media], bool]]) -> None:
    frame, wanted = case
    expected = {film.title for film in await demo_films() if wanted(film)}
    assert expected  # a case that selects nothing would prove little
    async with server(Settings()) as (connect, _):
        room = await created_by(await user(connect, "host"), frame)
    assert titles(room["media"]) == expected


@pytest.mark.parametrize(
    ("frame", "named"),
    [
        (fork_create({"key": "studio", "operator": "=", "value": ["A24"]}), "studio"),
        (fork_create({"key": "year", "operator": "~", "value": ["1927"]}), "~"),
        # The demo library knows nothing of who watched what.
        (fork_create(watched_status("unwatched")), "unwatched"),
    ],
)
async def test_a_filter_the_library_cannot_apply_is_a_clear_error(frame: dict[str, Any], named: str) -> None:
    async with server(Settings()) as (connect, _):
        host = await user(connect, "host")
        await host.send_raw(json.dumps(frame))
        error = await host.expect("createRoomError")
    assert error["name"] == "InvalidFilter"
    assert named in error["message"]


async def test_an_async_room_is_echoed_and_matched_like_standard() -> None:
    async with server(Settings()) as (connect, _):
        host, guest = await user(connect, "host"), await user(connect, "guest")
        room = await created_by(host, {**FORK_CREATE, "payload": {**FORK_CREATE["payload"], "roomType": "async"}})
        assert room["roomType"] == "async"
        joined = await guest.join("Movie Night")
        assert joined["roomType"] == "async"
        film = room["media"][0]["id"]
        for peer in (host, guest):
            await peer.send("rate", {"mediaId": film, "rating": "like"})
        match = await host.wait_for("match")
    assert (match["media"]["id"], sorted(match["users"])) == (film, ["guest", "host"])


# -- the fork's wizard on Plex and Jellyfin ------------------------------------------------------


@pytest.fixture(scope="module")
def plex_url() -> Iterator[str]:
    with serving(fake_plex.FakePlex()) as url:
        yield url


@pytest.fixture(scope="module")
def jellyfin_url() -> Iterator[str]:
    with serving(fake_jellyfin.FakeJellyfin()) as url:
        yield url


PLEX_MOVIES = fake_plex.default_libraries()[0]
JELLYFIN_MOVIES = fake_jellyfin.default_libraries()[0]


def plex_wanted(index: int) -> bool:
    library = PLEX_MOVIES
    rating = library.rating(index)  # Plex's rating filter is on the critic rating
    return (
        "Comedy" in {fake_plex.GENRES[tag] for tag in library.genre_ids(index)}
        and rating is not None
        and 5 <= rating <= 9
        and library.content_rating(index) in ("PG", "R")
        and not library.watched(index)
    )


def jellyfin_wanted(index: int) -> bool:
    library = JELLYFIN_MOVIES
    rating = library.rating(index)
    return (
        "Comedy" in library.genres(index)
        and rating is not None
        and 5 <= rating <= 9
        and library.content_rating(index) in ("PG", "R")
        and not fake_jellyfin.ALICE.watched(index)  # the first administrator's watched state
    )


@pytest.mark.parametrize("source", ["plex", "jellyfin"])
async def test_the_fork_s_wizard_on_a_media_server(source: str, request: pytest.FixtureRequest) -> None:
    if source == "plex":
        server_entry = {"url": request.getfixturevalue("plex_url"), "token": fake_plex.PLEX_TOKEN}
        library_title, size, wanted = PLEX_MOVIES.title, PLEX_MOVIES.size, plex_wanted
    else:
        url = request.getfixturevalue("jellyfin_url")
        server_entry = {"type": "jellyfin", "url": url, "token": fake_jellyfin.API_KEY}
        library_title, size, wanted = JELLYFIN_MOVIES.name, JELLYFIN_MOVIES.size, jellyfin_wanted
    async with server(Settings.model_validate({"servers": [server_entry]})) as (connect, _):
        host = await user(connect, "host")
        await host.send("getLibraries")
        [library] = [found for found in await host.expect("getLibrariesSuccess") if found["title"] == library_title]
        filters = [
            {"key": "library", "operator": "=", "value": [library["key"]]},
            genre("Comedy"),  # a name, as the wizard sends it (Plex wants a tag id)
            rating_range(5, 9),
            content_ratings("PG", "R"),
            watched_status("unwatched"),
        ]
        room = await created_by(host, {**FORK_CREATE, "payload": {**FORK_CREATE["payload"], "filters": filters}})
    expected = {f"{library_title} {index}" for index in range(size) if wanted(index)}
    assert expected
    assert titles(room["media"]) == expected


# -- the original v2 web client ------------------------------------------------------------------


async def test_the_v2_client_sets_its_locale_logs_in_and_rejoins_by_name_after_a_reload() -> None:
    async with server(Settings()) as (connect, client):
        guest = await user(connect, "guest")
        socket: Socket
        async with aconnect_ws("http://testserver/api/ws", client) as socket:
            first = await Peer.greeted(socket, "ann")
            await first.send("setLocale", {"language": "en-US"})  # navigator.language
            translations = await first.expect("translations")
            assert translations["LANG"] == "en"
            await first.send("login", {"userName": "ann"})
            assert (await first.expect("loginSuccess"))["userName"] == "ann"
            created = await first.create("Friday")
            assert {"previousMatches", "media", "users"} <= created.keys()
            await guest.join("Friday")
            await first.expect("userJoinedRoom")
            rated = created["media"][0]["id"]
            await first.send("rate", {"mediaId": rated, "rating": "like"})
            await first.expect("userProgress")
        # The page reloads: the socket closes, the new page logs in by name and joins by name only.
        assert (await guest.wait_for("userLeftRoom"))["userName"] == "ann"
        again = await connect("ann")
        await again.send("setLocale", {"language": "en-US"})
        await again.expect("translations")
        await again.send("login", {"userName": "ann"})
        await again.expect("loginSuccess")
        await again.send("joinRoom", {"roomName": "Friday"})
        resumed = await again.expect("joinRoomSuccess")
    assert [item["id"] for item in resumed["media"]] == [item["id"] for item in created["media"][1:]]
    assert {entry["user"]["userName"] for entry in resumed["users"]} == {"ann", "guest"}
    assert resumed["previousMatches"] == []
