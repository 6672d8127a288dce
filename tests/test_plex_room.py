"""The whole path with Plex configured: sign in through plex.tv, a room drawn from the Plex server,
its posters and links; against the fake Plex and plex.tv over real HTTP."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from server.addresses import reachable_hosts
from server.app import create_app
from server.config import Settings
from storage import MemoryStorage
from tests.fake_plex import (
    MACHINE_IDENTIFIER,
    PLEX_TOKEN,
    TRAILER_BYTES,
    FakePlex,
    FakePlexTv,
    PlexAccount,
    trailer_video,
)
from tests.fakes import serving
from tests.peers import Connect, in_process_with_http

pytestmark = pytest.mark.anyio

ALICE = "alice-token-Rv20Kd"  # has access to the configured server
BOB = "bob-token-Xw93Lp"  # has not
SECRETS = (ALICE, BOB, PLEX_TOKEN)


@pytest.fixture(scope="module")
def plex_urls() -> Iterator[tuple[str, str]]:
    accounts = {
        ALICE: PlexAccount(7, "alice", "Alice", "https://plex.tv/users/7/avatar", servers=[MACHINE_IDENTIFIER]),
        BOB: PlexAccount(8, "bob", "Bob", None, servers=["e" * 32]),
    }
    with serving(FakePlex()) as plex, serving(FakePlexTv(accounts=accounts)) as plex_tv:
        yield plex, plex_tv


def settings(plex_urls: tuple[str, str], **overrides: Any) -> Settings:
    plex, plex_tv = plex_urls
    return Settings.model_validate(
        {"servers": [{"url": plex, "token": PLEX_TOKEN}], "plex_tv_url": plex_tv, **overrides}
    )


async def running(settings: Settings) -> AsyncIterator[tuple[Connect, httpx.AsyncClient]]:
    async with in_process_with_http(create_app(settings, storage=MemoryStorage())) as running_app:
        yield running_app


async def test_plex_users_sign_in_and_rooms_draw_from_plex(plex_urls: tuple[str, str]) -> None:
    async for connect, client in running(settings(plex_urls)):
        raw = await connect("raw")
        await raw.send("login", {"plexToken": ALICE, "plexClientId": "browser-1"})
        user = await raw.expect("loginSuccess")
        assert user == {
            "userName": "alice",
            "avatarImage": "https://plex.tv/users/7/avatar",
            "permissions": ["CanCreateRoom"],
        }
        await raw.send("getLibraries")
        libraries = await raw.expect("getLibrariesSuccess")
        assert libraries
        assert all(library["key"].startswith("plex-") for library in libraries)
        created = await raw.create("Plex Night", libraries=[libraries[0]["key"]])
        media = created["media"]
        assert media
        first = next(item for item in media if "posterUrl" in item)
        poster = await client.get(first["posterUrl"], params={"width": 300})  # a path from the app root
        assert poster.status_code == 200
        assert poster.headers["content-type"].startswith("image/")
        link = await client.get("/" + first["linkUrl"], headers={"user-agent": "Mozilla/5.0 (X11; Linux)"})
        assert link.status_code == 302
        assert MACHINE_IDENTIFIER in link.headers["location"]
        for text in [json.dumps(created), poster.headers.get("location", ""), link.headers["location"]]:
            assert not any(secret in text for secret in SECRETS)
        health = (await client.get("/health")).json()
        assert list(health["providers"].values()) == ["ok"]


async def test_a_rejected_plex_token(plex_urls: tuple[str, str]) -> None:
    async for connect, _ in running(settings(plex_urls)):
        peer = await connect()
        await peer.send("login", {"plexToken": "not-a-plex-token", "plexClientId": "browser-1"})
        error = await peer.expect("loginError")
        assert error["name"] == "PlexAuthInvalid"
        assert "not-a-plex-token" not in json.dumps(error)


async def test_only_users_of_this_server_create_rooms_when_configured(plex_urls: tuple[str, str]) -> None:
    async for connect, _ in running(settings(plex_urls, room_creators="server-users")):
        bob = await connect("bob")
        await bob.send("login", {"plexToken": BOB, "plexClientId": "browser-2"})
        assert (await bob.expect("loginSuccess"))["permissions"] == []
        await bob.send("createRoom", {"roomName": "Bob's"})
        assert (await bob.expect("createRoomError"))["name"] == "PlexAuthRequiredError"
        alice = await connect("alice")
        await alice.send("login", {"plexToken": ALICE, "plexClientId": "browser-1"})
        await alice.expect("loginSuccess")
        await alice.create("Alice's")
        await bob.join("Alice's")  # joining needs no permission


async def test_plex_sign_in_is_announced_to_browsers(plex_urls: tuple[str, str]) -> None:
    async for connect, _ in running(settings(plex_urls)):
        peer = await connect()
        assert peer.config == {
            "requiresConfiguration": False,
            "requirePlexLogin": False,
            "plexSignIn": True,
            "plexTvUrl": plex_urls[1],
            "plexAppUrl": "https://app.plex.tv",
            "lanAddresses": reachable_hosts(Settings().host),
            "maxRoomMembers": 50,
        }


async def test_no_plex_sign_in_without_a_plex_server() -> None:
    async for connect, _ in running(Settings()):
        peer = await connect()
        lan = reachable_hosts(Settings().host)
        assert peer.config == {
            "requiresConfiguration": False,
            "requirePlexLogin": False,
            "lanAddresses": lan,
            "maxRoomMembers": 50,
        }


async def test_posters_and_links_of_made_up_ids_never_reach_plex(plex_urls: tuple[str, str]) -> None:
    fake = FakePlex()
    with serving(fake) as plex:
        async for connect, client in running(settings((plex, plex_urls[1]))):
            provider_id = next(iter((await client.get("/health")).json()["providers"]))
            made_up = [str(100_000 + n) for n in range(1, 101)]  # ids of the server's form, never listed
            for key in made_up:
                assert (await client.get(f"/api/poster/{provider_id}/{key}", params={"width": 300})).status_code == 404
                assert (await client.get(f"/api/link/{provider_id}/{key}")).status_code == 404
            assert fake.requests_to("/photo/:/transcode") == []
            # Once a room holds the film, its poster and link are served.
            peer = await connect("raw")
            await peer.login("alice")
            created = await peer.create("Plex Night")
            card = next(item for item in created["media"] if "posterUrl" in item)
            assert (await client.get(card["posterUrl"], params={"width": 300})).status_code == 200
            assert (await client.get("/" + card["linkUrl"])).status_code == 302
            assert len(fake.requests_to("/photo/:/transcode")) == 1


async def test_a_card_s_trailer_plays_through_this_server(plex_urls: tuple[str, str]) -> None:
    async for connect, client in running(settings(plex_urls)):
        peer = await connect("raw")
        await peer.login("alice")
        created = await peer.create("Trailers", sortOrder="oldest")
        card = next(item for item in created["media"] if "trailerUrl" in item)
        url = card["trailerUrl"]
        assert url.startswith("/api/trailer/plex-")  # a path from the app root, as posterUrl
        whole = await client.get(url)
        assert whole.status_code == 200
        assert whole.headers["content-type"] == "video/mp4"
        assert whole.headers["accept-ranges"] == "bytes"
        rating_key = url.rpartition("/")[2]
        assert whole.content == trailer_video(rating_key)
        # A video element seeks with ranges.
        part = await client.get(url, headers={"Range": "bytes=5000-5999"})
        assert part.status_code == 206
        assert part.headers["content-range"] == f"bytes 5000-5999/{TRAILER_BYTES}"
        assert part.content == trailer_video(rating_key)[5000:6000]
        # An odd Range is not passed on: the whole file comes.
        odd = await client.get(url, headers={"Range": "bytes=1-2,5-6"})
        assert (odd.status_code, len(odd.content)) == (200, TRAILER_BYTES)
        beyond = await client.get(url, headers={"Range": f"bytes={TRAILER_BYTES}-"})
        assert beyond.status_code == 416
        assert "media-src 'self'" in whole.headers["content-security-policy"]
        for response in (whole, part, beyond):
            assert not any(secret in str(response.headers) for secret in SECRETS)
        # Films without a trailer, and films never listed, have none.
        provider_id = url.split("/")[3]
        bare = next(item for item in created["media"] if "trailerUrl" not in item)
        assert (await client.get(f"/api/trailer/{provider_id}/{bare['linkUrl'].rpartition('/')[2]}")).status_code == 404
        assert (await client.get(f"/api/trailer/{provider_id}/100099")).status_code == 404


def plex_guid_of(fake: FakePlex, card: dict[str, Any]) -> str | None:
    """The Plex guid of a card's item, by which versions before cards had IMDb ids named it."""
    rating_key = card["linkUrl"].rpartition("/")[2]
    for library in fake.libraries.values():
        index = library.index_of(rating_key)
        if index is not None:
            guid = library.item(index).get("guid", "")
            return guid if guid.startswith("plex://") else None
    return None


async def test_a_room_stored_when_cards_had_plex_guids_keeps_them() -> None:
    """Upgrading must not lose a room: one stored when Plex cards were named by their Plex guid (now
    an alias) opens with its cards under the names it stored, its ratings and matches whole, and a
    like after the upgrade completes a match begun before it."""
    fake = FakePlex()
    storage = MemoryStorage()
    with serving(fake) as plex:
        config = Settings.model_validate({"servers": [{"url": plex, "token": PLEX_TOKEN}]})
        async with in_process_with_http(create_app(config, storage=storage)) as (connect, _):
            ann = await connect("ann")
            await ann.login("ann")
            created = await ann.create("Old Night", sortOrder="oldest")
            bob = await connect("bob")
            await bob.login("bob")
            await bob.join("Old Night")
            cards = created["media"]
            renamed = {card["id"]: guid for card in cards if (guid := plex_guid_of(fake, card))}
            first = next(card for card in cards if card["id"] in renamed and card["id"].startswith("imdb://"))
            await ann.send("rate", {"mediaId": first["id"], "rating": "like"})
            await ann.wait_for("userProgress")
        # What an earlier version stored: the same room, every card named by its Plex guid.
        stored = await storage.get_room("Old Night")
        assert stored is not None
        stored.media_ids = [renamed.get(media_id, media_id) for media_id in stored.media_ids or []]
        stored.ratings = {renamed.get(media_id, media_id): value for media_id, value in stored.ratings.items()}
        await storage.save_room(stored)
        old_first = renamed[first["id"]]

        async with in_process_with_http(create_app(config, storage=storage)) as (connect, _):
            bob = await connect("bob")
            await bob.login("bob")
            joined = await bob.join("Old Night")
            ids = [card["id"] for card in joined["media"]]
            assert old_first in ids
            assert first["id"] not in ids
            assert len(ids) == len(cards)  # every card is still the room's
            await bob.send("rate", {"mediaId": old_first, "rating": "like"})
            match = await bob.wait_for("match")
            assert match["media"]["id"] == old_first
            assert sorted(match["users"]) == ["ann", "bob"]
        assert old_first in (await storage.get_room("Old Night") or stored).matches
