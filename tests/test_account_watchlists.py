"""Save for later is written to the person's media account too: a Plex sign-in's Plex watchlist
(plex.tv's metadata provider), a Jellyfin user's favourites; against fakes over real HTTP
(tests/fake_plex_metadata.py, tests/fake_jellyfin_extras.py), tokens never in a frame or a log line."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from server.accounts import AccountError, JellyfinFavourites, PlexAccounts
from server.app import create_app
from server.config import MediaServer, Settings
from server.providers import MediaQuery
from server.providers.jellyfin import JellyfinProvider
from server.watchlists import Watchlists
from storage import MemoryStorage
from tests.fake_jellyfin import API_KEY, BOB, guid
from tests.fake_jellyfin_extras import FakeJellyfinPlus
from tests.fake_plex import PLEX_TOKEN, FakeLibrary, FakePlex, FakePlexTv, PlexAccount
from tests.fake_plex_metadata import FakePlexMetadata
from tests.fakes import Fault, assert_clean, no_secret_logged, serving
from tests.library import film
from tests.peers import Peer, in_process

pytestmark = pytest.mark.anyio

ALICE = "alice-token-Wl37Qp"
BOB_TOKEN = "bob-jellyfin-token-Ty20Ls"
SECRETS = (ALICE, PLEX_TOKEN, API_KEY, BOB_TOKEN)
MOVIES = FakeLibrary("1", "Movies", "movie", 40)
clean_logs = no_secret_logged(*SECRETS)


@pytest.fixture
def metadata() -> FakePlexMetadata:
    return FakePlexMetadata({ALICE: []})


@pytest.fixture
def urls(metadata: FakePlexMetadata) -> Iterator[dict[str, str]]:
    accounts = {ALICE: PlexAccount(7, "alice", "Alice")}
    with (
        serving(FakePlex(libraries=[MOVIES])) as plex,
        serving(FakePlexTv(accounts=accounts)) as plex_tv,
        serving(metadata) as plex_metadata,
    ):
        yield {"plex": plex, "plex_tv": plex_tv, "plex_metadata": plex_metadata}


async def plex_user(urls: dict[str, str]) -> AsyncIterator[Peer]:
    settings = Settings.model_validate(
        {
            "servers": [{"url": urls["plex"], "token": PLEX_TOKEN}],
            "plex_tv_url": urls["plex_tv"],
            "plex_metadata_url": urls["plex_metadata"],
        }
    )
    async with in_process(create_app(settings, storage=MemoryStorage())) as connect:
        peer = await connect("alice")
        await peer.send("login", {"plexToken": ALICE, "plexClientId": "alice-browser"})
        assert (await peer.expect("loginSuccess"))["userName"] == "alice"
        yield peer


async def reply(peer: Peer, message_type: str, payload: dict[str, Any], answer: str) -> Any:
    await peer.send(message_type, payload)
    body = await peer.wait_for(answer)
    assert_clean(SECRETS, json.dumps(body))
    return body


def plex_guid(media: dict[str, Any]) -> str | None:
    """The Plex guid of a card's item (cards are named by their IMDb id where they have one)."""
    index = MOVIES.index_of(str(media["linkUrl"]).rsplit("/", 1)[-1])
    assert index is not None
    guid = MOVIES.item(index).get("guid", "")
    return guid if guid.startswith("plex://movie/") else None


def guid_key(media: dict[str, Any]) -> str:
    guid = plex_guid(media)
    assert guid is not None
    return guid.removeprefix("plex://movie/")


async def test_a_plex_users_saved_cards_go_to_their_plex_watchlist(
    urls: dict[str, str], metadata: FakePlexMetadata
) -> None:
    async for alice in plex_user(urls):
        created = await reply(alice, "createRoom", {"roomName": "Plex Night"}, "createRoomSuccess")
        matched = [item for item in created["media"] if plex_guid(item)]
        unmatched = next(item for item in created["media"] if not plex_guid(item))
        first, second = matched[:2]

        saved = await reply(alice, "addToWatchlist", {"mediaId": first["id"]}, "addToWatchlistSuccess")
        assert saved["account"] == {"service": "plex", "updated": True}
        assert metadata.watchlists[ALICE] == [guid_key(first)]
        [put] = metadata.requests_to("/actions/addToWatchlist")
        assert (put.method, put.param("ratingKey"), put.headers["x-plex-token"]) == ("PUT", guid_key(first), ALICE)
        assert ALICE not in put.query
        assert put.headers["x-plex-client-identifier"] == "alice-browser"

        # A film Plex's agents never matched has no place on a Plex watchlist: kept here only.
        saved = await reply(alice, "addToWatchlist", {"mediaId": unmatched["id"]}, "addToWatchlistSuccess")
        assert saved["account"] == {"service": "plex", "updated": False, "problem": "unsupported"}

        # plex.tv failing: saved here all the same, and the reply says Plex was not updated.
        metadata.fault = Fault("status", "/actions", status=503)
        saved = await reply(alice, "addToWatchlist", {"mediaId": second["id"]}, "addToWatchlistSuccess")
        assert saved["account"] == {"service": "plex", "updated": False, "problem": "failed"}
        metadata.fault = None
        listed = await reply(alice, "getWatchlist", {}, "getWatchlistSuccess")
        assert [item["media"]["id"] for item in listed["items"]] == [second["id"], unmatched["id"], first["id"]]

        removed = await reply(alice, "removeFromWatchlist", {"mediaId": first["id"]}, "removeFromWatchlistSuccess")
        assert removed == {"mediaId": first["id"], "account": {"service": "plex", "updated": True}}
        assert metadata.watchlists[ALICE] == []
        assert [seen.param("ratingKey") for seen in metadata.requests_to("/actions/removeFromWatchlist")] == [
            guid_key(first)
        ]


async def test_a_plex_users_watchlist_room_takes_in_what_they_saved_in_plex(
    urls: dict[str, str], metadata: FakePlexMetadata
) -> None:
    async for alice in plex_user(urls):
        library = await reply(alice, "createRoom", {"roomName": "All"}, "createRoomSuccess")
        films = [item for item in library["media"] if plex_guid(item)]
        await reply(alice, "addToWatchlist", {"mediaId": films[0]["id"]}, "addToWatchlistSuccess")
        # Saved in a Plex app: two films of the library, and one it does not have.
        metadata.watchlists[ALICE] += [guid_key(films[1]), guid_key(films[2]), "f" * 24]
        ours = await reply(alice, "createRoom", {"roomName": "Ours", "source": "watchlists"}, "createRoomSuccess")
        assert {item["id"] for item in ours["media"]} == {films[0]["id"], films[1]["id"], films[2]["id"]}
        # Taken in for good: the list here has them now.
        listed = await reply(alice, "getWatchlist", {}, "getWatchlistSuccess")
        assert {item["media"]["id"] for item in listed["items"]} == {item["id"] for item in films[:3]}
        pages = metadata.requests_to("/library/sections/watchlist/all")
        assert pages
        assert {seen.headers["x-plex-token"] for seen in pages} == {ALICE}

        # plex.tv down: the room is made from the list kept here.
        metadata.fault = Fault("status", "/library", status=500)
        again = await reply(alice, "createRoom", {"roomName": "Again", "source": "watchlists"}, "createRoomSuccess")
        assert {item["id"] for item in again["media"]} == {item["id"] for item in films[:3]}


# -- Jellyfin favourites, with a user's own token (a sign-in's go with the API key: test_jellyfin_sign_in)


@pytest.fixture
async def jellyfin() -> AsyncIterator[tuple[FakeJellyfinPlus, JellyfinProvider]]:
    fake = FakeJellyfinPlus(user_tokens={BOB_TOKEN: BOB.id})
    with serving(fake) as url:
        server = MediaServer.model_validate({"type": "jellyfin", "url": url, "token": API_KEY})
        provider = JellyfinProvider(server, provider_id="jellyfin-test", client_id="moviematch-test")
        await provider.open()
        try:
            yield fake, provider
        finally:
            await provider.close()


async def test_a_jellyfin_users_favourites_are_changed_with_their_own_token(
    jellyfin: tuple[FakeJellyfinPlus, JellyfinProvider],
) -> None:
    fake, provider = jellyfin
    favourites = JellyfinFavourites(provider, BOB.id, BOB_TOKEN)
    item = guid(1, 4)  # the fifth film of the "Movies" library
    assert favourites.ref(["imdb://tt1000004"], ["api/link/plex-abc/123", f"api/link/{provider.id}/{item}"]) == item
    assert favourites.ref(["plex://movie/" + "a" * 24], ["api/link/plex-abc/123"]) is None  # another server's film
    await favourites.add(item)
    await favourites.add(guid(1, 7))
    assert fake.favourites[BOB.id] == [item, guid(1, 7)]
    assert await favourites.refs() == {item, guid(1, 7)}
    await favourites.remove(item)
    assert await favourites.refs() == {guid(1, 7)}
    changes = [seen for seen in fake.received if "/FavoriteItems/" in seen.path]
    assert [seen.method for seen in changes] == ["POST", "POST", "DELETE"]
    for seen in changes:
        assert f'Token="{BOB_TOKEN}"' in seen.headers["authorization"]
        assert API_KEY not in seen.headers["authorization"]
        assert BOB_TOKEN not in seen.query


async def test_jellyfin_refusing_a_token_is_an_account_error_that_names_no_secret(
    jellyfin: tuple[FakeJellyfinPlus, JellyfinProvider],
) -> None:
    _, provider = jellyfin
    # A valid token of another user: Jellyfin answers 403 for Bob's favourites.
    stranger = JellyfinFavourites(provider, BOB.id, "not-bobs-token")
    with pytest.raises(AccountError, match="did not accept this sign-in") as caught:
        await stranger.add(guid(1, 1))
    assert_clean((*SECRETS, "not-bobs-token"), caught.value)


async def test_an_unreachable_plex_watchlist_is_an_account_error() -> None:
    accounts = PlexAccounts("http://127.0.0.1:9", client_id="c", timeout=httpx.Timeout(2.0))
    await accounts.open()
    try:
        with pytest.raises(AccountError, match="cannot be reached") as caught:
            await accounts.watchlist(ALICE, "browser").add("a" * 24)
    finally:
        await accounts.close()
    assert_clean(SECRETS, caught.value)


async def test_a_jellyfin_sign_in_saves_to_its_favourites_through_the_watchlist(
    jellyfin: tuple[FakeJellyfinPlus, JellyfinProvider],
) -> None:
    """What a Jellyfin sign-in's connection will do (its account: JellyfinFavourites), end to end
    below the protocol: saved here and among the favourites; another server's film here only."""
    fake, provider = jellyfin
    [movies] = [library for library in await provider.libraries() if library.title == "Movies"]
    films = await provider.media(MediaQuery(libraries=[movies.key]))
    watchlists = Watchlists(MemoryStorage(), lambda: 1_700_000_000_000)
    account = JellyfinFavourites(provider, BOB.id, BOB_TOKEN)
    identity = "jellyfin:" + BOB.id
    saved = await watchlists.add(identity, films[0], account)
    assert saved["account"] == {"service": "jellyfin", "updated": True}
    elsewhere = film(1)  # a film of another source
    saved = await watchlists.add(identity, elsewhere, account)
    assert saved["account"] == {"service": "jellyfin", "updated": False, "problem": "unsupported"}
    item_id = films[0].linkUrl.rsplit("/", 1)[-1]
    assert fake.favourites[BOB.id] == [item_id]
    removed = await watchlists.remove(identity, films[0].id, account)
    assert removed["account"] == {"service": "jellyfin", "updated": True}
    assert fake.favourites[BOB.id] == []
    assert [item["media"]["id"] for item in await watchlists.items(identity)] == [elsewhere.id]
