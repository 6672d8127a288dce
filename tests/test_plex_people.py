"""The people of a Plex server and what each of them watched: plex.tv (the owner, the Plex Home with
user switching, the users the server is shared with) and the Plex server answering each person's
own token with their own watch state; against the fakes over real HTTP."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import pytest

from server.config import MediaServer
from server.providers import MediaQuery, Person, ProviderError
from server.providers.combined import CombinedProvider
from server.providers.plex import PlexProvider
from tests import fakes
from tests.fake_plex import (
    MACHINE_IDENTIFIER,
    PLEX_TOKEN,
    FakeLibrary,
    FakePlex,
    FakePlexTv,
    FakeViewer,
    PlexAccount,
)
from tests.fakes import Fault, bound_socket, log_lines, no_secret_logged, serving, socket_url

pytestmark = pytest.mark.anyio

BOB_TV, BOB_SERVER = "bob-plex-tv-Qz18Ln", "bob-server-Wk52Rc"  # the server is shared with Bob
KID_TV, KID_SERVER = "kid-plex-tv-Hd73Vb", "kid-server-Mp46Ts"  # a managed Home user
DAD_TV, DAD_SERVER = "dad-plex-tv-Jn95Gx", "dad-server-Ce31Yq"  # a Home user with a PIN
SECRETS = (PLEX_TOKEN, BOB_TV, BOB_SERVER, KID_TV, KID_SERVER, DAD_TV, DAD_SERVER)
OWNER_AVATAR = "https://plex.tv/users/o1/avatar?c=1"
BOB_AVATAR = "https://plex.tv/users/b2/avatar?c=2"
KID_AVATAR = "https://plex.tv/users/k3/avatar?c=3"

no_token_logged = no_secret_logged(*SECRETS)
assert_clean = partial(fakes.assert_clean, SECRETS)

MOVIES = FakeLibrary("1", "Movies", "movie", 40)
SHOWS = FakeLibrary("2", "TV Shows", "show", 6, imdb_base=3)
KIDS = FakeLibrary("5", "Kids", "movie", 10)


def plex_tv() -> FakePlexTv:
    machine = MACHINE_IDENTIFIER
    accounts = {
        PLEX_TOKEN: PlexAccount(1, "owner", "Owner", OWNER_AVATAR, [machine], {machine: PLEX_TOKEN}, owned=[machine]),
        BOB_TV: PlexAccount(2, "bob", "Bob", BOB_AVATAR, [machine], {machine: BOB_SERVER}),
        KID_TV: PlexAccount(3, "", "Kid", KID_AVATAR, [machine], {machine: KID_SERVER}),
        DAD_TV: PlexAccount(4, "", "Dad", None, [machine], {machine: DAD_SERVER}, pin="1234"),
    }
    return FakePlexTv(accounts=accounts, home=[PLEX_TOKEN, KID_TV, DAD_TV], shared={machine: [BOB_TV]})


def plex() -> FakePlex:
    viewers = [
        FakeViewer(BOB_SERVER, watched_every=2, libraries=("1",)),  # shared Movies only
        FakeViewer(KID_SERVER, watched_every=5),
        FakeViewer(DAD_SERVER, watched_every=7),
    ]
    return FakePlex(libraries=[MOVIES, SHOWS, KIDS], viewers=viewers)


@pytest.fixture
def fakes_of_plex() -> Iterator[tuple[FakePlex, FakePlexTv, str, str]]:
    server, tv = plex(), plex_tv()
    with serving(server) as server_url, serving(tv) as tv_url:
        yield server, tv, server_url, tv_url


@asynccontextmanager
async def opened(server_url: str, tv_url: str | None, **options: Any) -> AsyncIterator[PlexProvider]:
    server = MediaServer.model_validate({"url": server_url, "token": PLEX_TOKEN, **options})
    provider = PlexProvider(server, provider_id="plex-1", client_id="moviematch", plex_tv_url=tv_url)
    await provider.open()
    try:
        yield provider
    finally:
        await provider.close()


def names_of(library: FakeLibrary, watched: Any) -> set[str]:
    """Every id and alias of the items of ``library`` that ``watched(index)`` says were watched."""
    found: set[str] = set()
    kind = "show" if library.type == "show" else "movie"
    for index in range(library.size):
        if not watched(index):
            continue
        guids = library.guids(index)
        if not guids:  # no guid, or a local one: the card's own Plex id
            found.add(f"plex://{MACHINE_IDENTIFIER}/{library.rating_key(index)}")
            continue
        imdb, tmdb, *tvdb = guids
        found.add(imdb)
        found.add(tmdb if kind == "movie" else tmdb.replace("tmdb://", "tmdb://tv/"))
        found.update(spelled.replace("tvdb://", "tvdb://movie/") if kind == "movie" else spelled for spelled in tvdb)
        found.add(library.item(index)["guid"])
    return found


async def test_the_people_of_the_server(
    fakes_of_plex: tuple[FakePlex, FakePlexTv, str, str], caplog: pytest.LogCaptureFixture
) -> None:
    logs = log_lines(caplog, "server.providers.plex_home", logging.INFO)
    _, tv, server_url, tv_url = fakes_of_plex
    async with opened(server_url, tv_url) as provider:
        people = await provider.people()
    assert people == [
        Person("plex:1", "owner", OWNER_AVATAR),
        Person("plex:2", "bob", BOB_AVATAR),  # shared with: the avatar from the owner's friends
        Person("plex:3", "Kid", KID_AVATAR),  # a managed Home user goes by their title
    ]
    assert_clean(people, [person.wire() for person in people])
    # Dad's PIN keeps his watch state closed: left out, and said so once.
    assert [line for line in logs(logging.INFO) if "Dad" in line] == [
        "Plex Home user 'Dad' is protected by a PIN: their watch state cannot be read"
    ]
    # plex.tv was asked with the owner's token; the Kid's resources with the Kid's own, from the switch.
    [switch] = tv.requests_to(f"/api/v2/home/users/{tv.accounts[KID_TV].uuid}/switch")
    assert switch.headers["x-plex-token"] == PLEX_TOKEN
    assert [seen.headers["x-plex-token"] for seen in tv.requests_to("/api/v2/resources")] == [KID_TV]
    assert not tv.requests_to(f"/api/v2/home/users/{tv.accounts[DAD_TV].uuid}/switch")
    assert all(seen.headers["x-plex-token"] == PLEX_TOKEN for seen in tv.requests_to("/api/users"))


async def test_each_person_s_watch_state_is_read_with_their_own_token(
    fakes_of_plex: tuple[FakePlex, FakePlexTv, str, str],
) -> None:
    server, _, server_url, tv_url = fakes_of_plex
    async with opened(server_url, tv_url) as provider:
        owner = await provider.watched(["plex:1"])
        bob = await provider.watched(["plex:2"])
        kid = await provider.watched(["plex:3"])
        both = await provider.watched(["plex:1", "plex:2", "plex:4", "jellyfin:x:y", "plex:99"])
    assert owner == names_of(MOVIES, lambda i: i % 3 == 0) | names_of(KIDS, lambda i: i % 3 == 0)
    assert bob == names_of(MOVIES, lambda i: i % 2 == 0)  # Kids is not shared with him
    assert kid == names_of(MOVIES, lambda i: i % 5 == 0) | names_of(KIDS, lambda i: i % 5 == 0)
    assert both == owner | bob  # Dad (unreadable) and people of other servers are no one here
    listings = [seen for seen in server.received if seen.path.endswith("/all") and seen.param("unwatched") == "0"]
    assert {seen.headers["x-plex-token"] for seen in listings} == {PLEX_TOKEN, BOB_SERVER, KID_SERVER}
    assert all(seen.param("includeGuids") == "1" for seen in listings)


async def test_watch_state_is_kept_until_refreshed(fakes_of_plex: tuple[FakePlex, FakePlexTv, str, str]) -> None:
    server, tv, server_url, tv_url = fakes_of_plex
    async with opened(server_url, tv_url) as provider:
        first = await provider.watched(["plex:2"])
        before = (len(server.received), len(tv.received))
        assert await provider.watched(["plex:2"]) == first
        assert (len(server.received), len(tv.received)) == before  # kept
        server.viewers[BOB_SERVER] = FakeViewer(BOB_SERVER, watched_every=4, libraries=("1",))
        assert await provider.watched(["plex:2"], refresh=True) == names_of(MOVIES, lambda i: i % 4 == 0)
        assert len(tv.received) > before[1]  # who the people are is asked again too


async def test_watched_shows_are_those_with_every_episode_watched(
    fakes_of_plex: tuple[FakePlex, FakePlexTv, str, str],
) -> None:
    _, _, server_url, tv_url = fakes_of_plex
    async with opened(server_url, tv_url, library_type_filter=["movie", "show"]) as provider:
        shows = await provider.media(MediaQuery(libraries=["2"]))
        watched = await provider.watched(["plex:3"])
    assert {show.id for show in shows if show.id in watched} == {
        show.id for show in shows if int(show.linkUrl.rpartition("/")[2]) - 200_001 in (0, 5)
    }


async def test_without_plex_tv_a_server_has_no_people(fakes_of_plex: tuple[FakePlex, FakePlexTv, str, str]) -> None:
    server, _, server_url, _ = fakes_of_plex
    async with opened(server_url, None) as provider:
        assert await provider.people() == []
        assert await provider.watched(["plex:1"]) == set()
    assert not [seen for seen in server.received if seen.param("unwatched") == "0"]


async def test_an_unreachable_plex_tv_leaves_the_server_out(
    fakes_of_plex: tuple[FakePlex, FakePlexTv, str, str], caplog: pytest.LogCaptureFixture
) -> None:
    server_url = fakes_of_plex[2]
    sock = bound_socket()
    async with opened(server_url, socket_url(sock)) as provider:
        with pytest.raises(ProviderError) as caught:
            await provider.people()
        assert caught.value.status == 503
        assert await CombinedProvider([provider]).people() == []
    sock.close()
    assert any("people of plex-1 cannot be listed" in record.getMessage() for record in caplog.records)


async def test_a_failing_plex_tv_is_a_provider_error(fakes_of_plex: tuple[FakePlex, FakePlexTv, str, str]) -> None:
    _, tv, server_url, tv_url = fakes_of_plex
    for fault in (Fault("status", "/api/v2/user", status=500), Fault("malformed", "/api/servers")):
        tv.fault = fault
        async with opened(server_url, tv_url) as provider:
            with pytest.raises(ProviderError) as caught:
                await provider.people()
        assert caught.value.status == 503
        assert_clean(caught.value)
