"""The Plex provider against a fake Plex Media Server over real HTTP (tests/fake_plex.py)."""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from server.config import MediaServer
from server.providers import InvalidFilter, Media, MediaQuery, ProviderError, Stream
from server.providers.plex import PAGE_SIZE, PlexProvider
from tests import fakes
from tests.fake_plex import (
    MACHINE_IDENTIFIER,
    PLEX_TOKEN,
    SERVER_NAME,
    TRAILER_BYTES,
    FakeLibrary,
    FakePlex,
    trailer_key,
    trailer_video,
)
from tests.fakes import (
    Fault,
    bound_socket,
    eventually,
    no_secret_logged,
    png_size,
    rule,
    self_signed_certificate,
    serving,
    socket_url,
)

pytestmark = pytest.mark.anyio

WRONG_TOKEN = "wrong-token-Kp40sQ"
SECRETS = (PLEX_TOKEN, WRONG_TOKEN)
LOGGER = "server.providers.plex"
FAST_RETRIES = (0.05, 0.2)
ARCHIVE = "4"  # the fake's 20,000-item library


no_token_logged = no_secret_logged(*SECRETS)
assert_clean = partial(fakes.assert_clean, SECRETS)


@pytest.fixture
def fake() -> FakePlex:
    return FakePlex()


@pytest.fixture
def plex_url(fake: FakePlex) -> Iterator[str]:
    with serving(fake) as url:
        yield url


def server_at(url: str, **options: Any) -> MediaServer:
    return MediaServer.model_validate({"url": url, "token": PLEX_TOKEN, **options})


@asynccontextmanager
async def opened(server: MediaServer, **options: Any) -> AsyncIterator[PlexProvider]:
    options.setdefault("retry_delays", FAST_RETRIES)
    provider = PlexProvider(server, provider_id="plex-test", client_id="test-client", **options)
    await provider.open()
    try:
        yield provider
    finally:
        await provider.close()


@pytest.fixture
async def provider(plex_url: str) -> AsyncIterator[PlexProvider]:
    async with opened(server_at(plex_url)) as provider:
        yield provider


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno >= logging.WARNING]


def listing_fetches(fake: FakePlex, key: str) -> int:
    """Item pages fetched from a library (not the filter metadata, which asks for none)."""
    return sum(1 for seen in fake.requests_to(f"/library/sections/{key}/all") if seen.param("includeMeta") != "1")


def by_title(media: list[Media]) -> dict[str, Media]:
    return {item.title: item for item in media}


async def listed(provider: PlexProvider) -> list[Media]:
    """The first library's cards: posters and links are served only for items the server has listed."""
    return await provider.media(MediaQuery(libraries=["1"]))


# -- connecting -----------------------------------------------------------------------------------


async def test_open_learns_the_machine_identifier(provider: PlexProvider) -> None:
    assert provider.machine_identifier == MACHINE_IDENTIFIER
    assert provider.name == SERVER_NAME
    assert await provider.healthy()


async def test_the_token_travels_in_a_header_only(fake: FakePlex, provider: PlexProvider) -> None:
    await provider.media(MediaQuery(libraries=["1"]))
    await provider.filter_values("genre")
    poster = await provider.poster("100001", 300)
    assert_clean(b"".join([chunk async for chunk in poster.body]), poster.headers)
    assert fake.received
    for seen in fake.received:
        assert seen.headers["x-plex-token"] == PLEX_TOKEN
        assert seen.headers["x-plex-client-identifier"] == "test-client"
        assert seen.headers["x-plex-product"] == "MovieMatch"
        assert seen.headers["x-plex-version"]
        assert seen.headers["accept"] == "application/json"
        assert PLEX_TOKEN not in seen.query
        assert "token" not in seen.query.lower()


async def test_a_rejected_token_is_one_log_line_and_no_crash(
    plex_url: str, fake: FakePlex, caplog: pytest.LogCaptureFixture
) -> None:
    async with opened(server_at(plex_url, token=WRONG_TOKEN)) as provider:
        # Several background retries happen meanwhile; they must not repeat the warning.
        await eventually(lambda: len(fake.requests_to("/")) >= 3)
        assert not await provider.healthy()
        for attempt in (provider.libraries(), provider.media(MediaQuery())):
            with pytest.raises(ProviderError) as caught:
                await attempt
            assert caught.value.status == 503
            assert "rejected the token" in str(caught.value)
            assert_clean(caught.value)
    [warning] = warnings_of(caplog)
    assert "rejected the token" in warning
    assert plex_url in warning


async def test_an_unreachable_server_is_retried_until_it_answers(
    fake: FakePlex, caplog: pytest.LogCaptureFixture
) -> None:
    sock = bound_socket()  # a port nothing listens on yet: connections are refused
    url = socket_url(sock)
    async with opened(server_at(url)) as provider:
        assert not await provider.healthy()
        assert provider.machine_identifier is None
        with pytest.raises(ProviderError) as caught:
            await provider.media(MediaQuery())
        assert caught.value.status == 503
        assert "unreachable" in str(caught.value)
        with pytest.raises(ProviderError) as unknown:
            await provider.link("100001", "")  # never listed
        assert unknown.value.status == 404
        await anyio.sleep(0.3)  # a few failed retries
        [warning] = warnings_of(caplog)
        assert url in warning
        assert "Connection refused" in warning
        with serving(fake, sock):
            await eventually(provider.healthy)
            assert provider.machine_identifier == MACHINE_IDENTIFIER
            assert [library.key for library in await provider.libraries()] == ["1", ARCHIVE]
    assert any("is reachable" in record.getMessage() for record in caplog.records if record.name == LOGGER)


async def test_a_slow_server_does_not_hold_up_start_up(fake: FakePlex, plex_url: str) -> None:
    fake.fault = Fault("slow", "/identity", seconds=1.0)
    started = anyio.current_time()
    async with opened(server_at(plex_url), timeout=httpx.Timeout(3.0, connect=0.2)) as provider:
        assert anyio.current_time() - started < 0.8
        assert not await provider.healthy()
        await eventually(provider.healthy)  # the first answer, which arrives after a second


async def test_a_token_revoked_while_running_is_noticed_and_recovered(
    fake: FakePlex, provider: PlexProvider, caplog: pytest.LogCaptureFixture
) -> None:
    fake.token = "another-token"
    with pytest.raises(ProviderError) as caught:
        await provider.media(MediaQuery(libraries=["1"]))
    assert caught.value.status == 503
    assert not await provider.healthy()
    with pytest.raises(ProviderError, match="rejected the token"):
        await provider.filters()
    [warning] = warnings_of(caplog)
    assert "rejected the token" in warning
    fake.token = PLEX_TOKEN
    await eventually(provider.healthy)
    assert len(await provider.media(MediaQuery(libraries=["1"]))) == 40


async def test_a_tls_failure_is_reported_with_its_cause(plex_url: str, caplog: pytest.LogCaptureFixture) -> None:
    # The fake speaks plain HTTP, so a TLS handshake with it fails.
    async with opened(server_at(plex_url.replace("http://", "https://"))) as provider:
        assert not await provider.healthy()
    [warning] = warnings_of(caplog)
    assert "TLS" in warning


async def test_an_untrusted_certificate_needs_verify_tls_off(
    fake: FakePlex, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Plex's plex.direct certificates do not match an IP address; verify_tls: false accepts them.
    with serving(fake, tls=self_signed_certificate(tmp_path)) as url:
        async with opened(server_at(url)) as provider:
            assert not await provider.healthy()
        [warning] = warnings_of(caplog)
        assert "certificate is not trusted" in warning
        assert "verify_tls: false" in warning
        async with opened(server_at(url, verify_tls=False)) as provider:
            assert await provider.healthy()
            assert len(await listed(provider)) == 40


async def test_a_closed_provider_refuses_requests(plex_url: str) -> None:
    async with opened(server_at(plex_url)) as provider:
        pass
    assert not await provider.healthy()
    with pytest.raises(ProviderError) as caught:
        await provider.libraries()
    assert caught.value.status == 503


# -- libraries and media --------------------------------------------------------------------------


async def test_libraries_of_the_configured_types_and_titles(plex_url: str) -> None:
    cases = [
        ({}, ["Movies", "Archive"]),
        ({"library_type_filter": ["movie", "show"]}, ["Movies", "TV Shows", "Archive"]),
        ({"library_type_filter": ["show"]}, ["TV Shows"]),
        (
            {"library_type_filter": ["movie", "show"], "library_title_filter": ["TV Shows", "Archive"]},
            ["TV Shows", "Archive"],
        ),
        ({"library_title_filter": ["Music", "Nothing"]}, []),  # Music is not a movie library
    ]
    for options, titles in cases:
        async with opened(server_at(plex_url, **options)) as provider:
            libraries = await provider.libraries()
        assert [library.title for library in libraries] == titles, options
    async with opened(server_at(plex_url, library_type_filter=["movie", "show"])) as provider:
        assert {(library.key, library.type) for library in await provider.libraries()} == {
            ("1", "movie"),
            ("2", "show"),
            (ARCHIVE, "movie"),
        }


async def test_a_library_of_20000_items_is_fetched_in_pages(fake: FakePlex, provider: PlexProvider) -> None:
    media = await provider.media(MediaQuery(libraries=[ARCHIVE]))
    assert len(media) == 20_000
    assert len({item.id for item in media}) == 20_000
    pages = [seen for seen in fake.requests_to(f"/library/sections/{ARCHIVE}/all") if seen.param("includeMeta") != "1"]
    assert len(pages) == 20_000 // PAGE_SIZE
    starts = sorted(int(seen.param("X-Plex-Container-Start") or -1) for seen in pages)  # fetched a few at once
    assert starts == list(range(0, 20_000, PAGE_SIZE))
    assert {seen.param("X-Plex-Container-Size") for seen in pages} == {str(PAGE_SIZE)}
    assert {seen.param("type") for seen in pages} == {"1"}


async def test_one_copy_of_a_library_however_many_listings_hold_it(provider: PlexProvider) -> None:
    everything = {item.id: item for item in await provider.media(MediaQuery(libraries=[ARCHIVE]))}
    again = await provider.media(MediaQuery(libraries=[ARCHIVE]))  # cached
    comedies = await provider.media(MediaQuery(filters=[rule("genre", "=", "2")], libraries=[ARCHIVE]))
    assert comedies
    assert all(item is everything[item.id] for item in [*again, *comedies])


async def test_all_allowed_libraries_when_none_are_chosen() -> None:
    libraries = [FakeLibrary("1", "Movies", "movie", 40), FakeLibrary("2", "Shows", "show", 6)]
    libraries.append(FakeLibrary("5", "Classics", "movie", 30))
    with serving(FakePlex(libraries=libraries)) as url:
        async with opened(server_at(url)) as provider:
            media = await provider.media(MediaQuery())
    assert len(media) == 40 + 30
    assert {item.type for item in media} == {"movie"}


async def test_show_libraries_are_asked_for_shows(fake: FakePlex, plex_url: str) -> None:
    async with opened(server_at(plex_url, library_type_filter=["show"])) as provider:
        media = await provider.media(MediaQuery())
    assert len(media) == 6
    assert {item.type for item in media} == {"show"}
    assert {seen.param("type") for seen in fake.requests_to("/library/sections/2/all")} == {"2"}


async def test_an_unknown_or_excluded_library_is_refused(provider: PlexProvider) -> None:
    for key in ("2", "3", "99"):  # a show library, a music library, none at all
        with pytest.raises(ProviderError) as caught:
            await provider.media(MediaQuery(libraries=[key]))
        assert caught.value.status == 400


async def test_items_map_to_cards(fake: FakePlex, provider: PlexProvider) -> None:
    library = fake.libraries["1"]
    cards = by_title(await provider.media(MediaQuery(libraries=["1"])))
    assert len(cards) == library.size

    full = cards["Movies 1"]  # index 1: everything, an audience rating as well as a critic one
    raw = library.item(1, guids=True)
    imdb, tmdb, tvdb = (guid["id"] for guid in raw["Guid"])
    assert full.id == imdb == "imdb://tt1000001"  # the IMDb id names a film on every server
    assert full.aliases == (tmdb, tvdb.replace("tvdb://", "tvdb://movie/"), raw["guid"])
    assert raw["guid"].startswith("plex://movie/")  # the id earlier versions gave it, which rooms hold
    assert full.type == "movie"
    assert full.description == raw["summary"]
    assert full.tagline == raw["tagline"]
    assert full.year == raw["year"]
    assert full.posterUrl == f"/api/poster/plex-test/{raw['ratingKey']}"
    assert full.linkUrl == f"api/link/plex-test/{raw['ratingKey']}"
    assert full.genres == [tag["tag"] for tag in raw["Genre"]]
    assert full.duration == raw["duration"]
    assert full.rating == raw["audienceRating"]
    assert full.contentRating == raw["contentRating"]
    assert full.directors == [tag["tag"] for tag in raw["Director"]]
    assert full.actors == [tag["tag"] for tag in raw["Role"]]
    assert full.added == "2014-08-20"  # addedAt 1408525217 + 3600 s
    assert not {"seasons", "episodes", "network", "trailerUrl", "aliases", "added"} & set(full.wire())

    assert cards["Movies 0"].rating == library.item(0)["rating"]  # no audience rating: the critic one
    assert len(cards["Movies 11"].actors) == 5  # of six

    for index in (3, 4):  # no guid; a local:// guid, which another server may reuse for another film
        assert cards[f"Movies {index}"].id == f"plex://{MACHINE_IDENTIFIER}/{library.rating_key(index)}"
        assert cards[f"Movies {index}"].aliases == ()
    assert all(seen.param("includeGuids") == "1" for seen in fake.requests_to("/library/sections/1/all"))
    no_year, no_poster, no_rating = cards["Movies 5"], cards["Movies 6"], cards["Movies 7"]
    assert no_year.year is None
    assert no_poster.posterUrl is None
    assert no_rating.rating == 0.0
    for card in cards.values():
        assert_clean(card.wire_json())


async def test_a_film_without_an_external_id_keeps_its_plex_guid(plex_url: str) -> None:
    fake = FakePlex(libraries=[FakeLibrary("1", "Movies", "movie", 10)])
    with serving(fake) as url:
        async with opened(server_at(url)) as provider:
            [unmatched_tmdb] = [card for card in await listed(provider) if card.title == "Movies 2"]
    assert unmatched_tmdb.id == "imdb://tt1000002"
    assert unmatched_tmdb.aliases[0] == "tmdb://1500002"  # IMDb and TMDB only: no TVDB alias


async def test_an_old_agent_s_guid_names_the_imdb_id() -> None:
    fake = FakePlex(libraries=[FakeLibrary("1", "Movies", "movie", 10, legacy_agent=True)])
    with serving(fake) as url:
        async with opened(server_at(url)) as provider:
            cards = by_title(await listed(provider))
    assert cards["Movies 1"].id == "imdb://tt1000001"
    assert cards["Movies 1"].aliases == ("com.plexapp.agents.imdb://tt1000001?lang=en",)
    assert cards["Movies 3"].id == f"plex://{MACHINE_IDENTIFIER}/100004"  # never matched


async def test_shows_have_seasons_episodes_and_a_network(fake: FakePlex, plex_url: str) -> None:
    library = fake.libraries["2"]
    async with opened(server_at(plex_url, library_type_filter=["movie", "show"])) as provider:
        shows = by_title(await provider.media(MediaQuery(libraries=["2"])))
    first, second = shows["TV Shows 0"], shows["TV Shows 1"]
    assert (first.type, first.seasons, first.episodes, first.network) == ("show", 1, 8, "HBO")
    assert (second.seasons, second.episodes, second.network) == (2, 16, "BBC One")
    assert second.id == "imdb://tt3000001"
    assert second.aliases[:2] == ("tvdb://3700001", "tmdb://tv/3500001")  # TMDB numbers shows apart
    assert first.trailerUrl is None
    wire = second.wire()
    assert (wire["seasons"], wire["episodes"], wire["network"]) == (2, 16, "BBC One")
    assert "endYear" not in wire  # Plex lists no last year
    assert library.size == len(shows)


async def test_filters_and_watched_state_work_for_shows(fake: FakePlex, plex_url: str) -> None:
    library = fake.libraries["2"]
    async with opened(server_at(plex_url, library_type_filter=["show"])) as provider:
        unwatched = await provider.media(MediaQuery([rule("unwatched", "=", "1"), rule("genre", "=", "2")], ["2"]))
    expected = {
        f"TV Shows {index}"
        for index in range(library.size)
        if not library.watched(index) and "2" in library.genre_ids(index)
    }
    assert {show.title for show in unwatched} == expected
    [sent] = [seen for seen in fake.requests_to("/library/sections/2/all") if seen.param("unwatched")]
    assert (sent.param("type"), sent.param("unwatched"), sent.param("genre")) == ("2", "1", "2")


async def test_filters_become_plex_query_parameters(fake: FakePlex, provider: PlexProvider) -> None:
    library = fake.libraries["1"]
    filters = [
        rule("genre", "=", "1", "2"),  # Action or Comedy
        rule("genre", "!=", "4"),
        rule("year", ">>=", "1960"),
        rule("year", "<<=", "1985"),
        rule("unwatched", "=", "true"),  # the fork's wizard spelling of 1
    ]
    media = await provider.media(MediaQuery(filters=filters, libraries=["1"]))
    [seen] = [seen for seen in fake.requests_to("/library/sections/1/all") if seen.param("includeMeta") != "1"]
    sent = httpx.QueryParams(seen.query)
    assert sent.get_list("genre") == ["1,2"]
    assert sent.get_list("genre!") == ["4"]
    assert sent.get_list("year>>") == ["1960"]
    assert sent.get_list("year<<") == ["1985"]
    assert sent.get_list("unwatched") == ["1"]
    expected = {
        f"Movies {index}"
        for index in range(library.size)
        if {"1", "2"} & set(library.genre_ids(index))
        and "4" not in library.genre_ids(index)
        and 1960 <= (library.year(index) or 0) <= 1985
        and not library.watched(index)
    }
    assert expected
    assert {item.title for item in media} == expected


def item_query(fake: FakePlex, key: str = "1") -> httpx.QueryParams:
    """What the one listing request of a library asked for."""
    [seen] = [seen for seen in fake.requests_to(f"/library/sections/{key}/all") if seen.param("includeMeta") != "1"]
    return httpx.QueryParams(seen.query)


async def test_the_fork_s_filters_become_plex_query_parameters(fake: FakePlex, provider: PlexProvider) -> None:
    library = fake.libraries["1"]
    filters = [
        rule("contentRating", "=", "PG", "R"),
        rule("rating", ">>=", "5"),
        rule("rating", "<<=", "8.5"),
        rule("unwatched", "=", "0"),  # watched only
    ]
    media = await provider.media(MediaQuery(filters=filters, libraries=["1"]))
    sent = item_query(fake)
    assert (sent.get_list("contentRating"), sent.get_list("rating>>"), sent.get_list("rating<<")) == (
        ["PG,R"],
        ["5"],
        ["8.5"],
    )
    expected = {
        f"Movies {index}"
        for index in range(library.size)
        if library.content_rating(index) in ("PG", "R")
        and 5 <= (library.rating(index) or -1) <= 8.5
        and library.watched(index)
    }
    assert expected
    assert {item.title for item in media} == expected


async def test_a_rating_bound_at_an_end_of_the_scale_is_not_sent(fake: FakePlex, provider: PlexProvider) -> None:
    # The fork's wizard always sends 0..10; Plex would drop the unrated items for it.
    media = await provider.media(
        MediaQuery(filters=[rule("rating", ">>=", "0"), rule("rating", "<<=", "10")], libraries=["1"])
    )
    assert len(media) == fake.libraries["1"].size
    assert not [name for name in item_query(fake) if name.startswith("rating")]


async def test_genre_names_are_looked_up_as_tag_ids(fake: FakePlex, provider: PlexProvider) -> None:
    library = fake.libraries["1"]
    # The fork's wizard sends names, not Plex's tag ids; one the library lacks matches nothing.
    media = await provider.media(MediaQuery(filters=[rule("genre", "=", "comedy", "Western")], libraries=["1"]))
    assert item_query(fake).get_list("genre") == ["2"]
    assert {item.title for item in media} == {
        f"Movies {index}" for index in range(library.size) if "2" in library.genre_ids(index)
    }
    # Both of two genres (the fork's AND mode: one rule each); a name it lacks among them: nothing at all.
    both = [rule("genre", "=", "Action"), rule("genre", "=", "Comedy")]
    assert {item.title for item in await provider.media(MediaQuery(filters=both, libraries=["1"]))} == {
        f"Movies {index}" for index in range(library.size) if {"1", "2"} <= set(library.genre_ids(index))
    }
    fetched = listing_fetches(fake, "1")
    lacking = [rule("genre", "=", "Action"), rule("genre", "=", "Western")]
    assert await provider.media(MediaQuery(filters=lacking, libraries=["1"])) == []
    assert listing_fetches(fake, "1") == fetched  # known without asking


async def test_bad_filters_are_refused_before_asking_plex(fake: FakePlex, provider: PlexProvider) -> None:
    before = len(fake.received)
    for bad in (rule("genre", "~", "1"), rule("genre", "="), rule("type", "=", "2"), rule("x&y", "=", "1")):
        with pytest.raises(InvalidFilter) as caught:
            await provider.media(MediaQuery(filters=[bad]))
        assert caught.value.status == 400
    assert len(fake.received) == before


# -- caching --------------------------------------------------------------------------------------


async def test_listings_are_cached_for_their_time_to_live(fake: FakePlex, plex_url: str) -> None:
    now = [1000.0]
    async with opened(server_at(plex_url), cache_ttl=60, clock=lambda: now[0]) as provider:
        first_room = MediaQuery(filters=[rule("genre", "=", "1"), rule("year", ">>=", "1960")], libraries=["1"])
        second_room = MediaQuery(filters=[rule("year", ">>=", "1960"), rule("genre", "=", "1")], libraries=["1"])
        first = await provider.media(first_room)
        second = await provider.media(second_room)
        assert listing_fetches(fake, "1") == 1
        assert first == second
        assert all(a is b for a, b in zip(first, second, strict=True))  # one copy, shared
        await provider.media(MediaQuery(filters=[rule("genre", "=", "2")], libraries=["1"]))
        assert listing_fetches(fake, "1") == 2  # other filters: another listing
        now[0] += 59
        await provider.media(first_room)
        assert listing_fetches(fake, "1") == 2
        now[0] += 2
        await provider.media(first_room)
        assert listing_fetches(fake, "1") == 3


async def test_concurrent_requests_share_one_fetch(fake: FakePlex, provider: PlexProvider) -> None:
    await provider.libraries()
    fake.fault = Fault("slow", "/library/sections/1/all", seconds=0.3)
    results: list[list[Media]] = []

    async def room() -> None:
        results.append(await provider.media(MediaQuery(libraries=["1"])))

    async with anyio.create_task_group() as group:
        for _ in range(10):
            group.start_soon(room)
    assert listing_fetches(fake, "1") == 1
    assert len(results) == 10
    assert all(result == results[0] for result in results)


async def test_a_failed_fetch_is_not_cached(fake: FakePlex, provider: PlexProvider) -> None:
    fake.fault = Fault("status", "/library/sections/1/all", status=500)
    with pytest.raises(ProviderError) as caught:
        await provider.media(MediaQuery(libraries=["1"]))
    assert caught.value.status == 502
    assert "500" in str(caught.value)
    fake.fault = None
    assert len(await provider.media(MediaQuery(libraries=["1"]))) == 40
    assert await provider.healthy()  # a server error is not an outage


# -- misbehaving servers --------------------------------------------------------------------------


async def test_a_slow_server_times_out(fake: FakePlex, plex_url: str) -> None:
    async with opened(server_at(plex_url), timeout=httpx.Timeout(0.3)) as provider:
        fake.fault = Fault("slow", "/library/sections/1/all", seconds=1.0)
        with pytest.raises(ProviderError) as caught:
            await provider.media(MediaQuery(libraries=["1"]))
        assert caught.value.status == 504
        assert "in time" in str(caught.value)
        assert isinstance(caught.value.__cause__, httpx.TimeoutException)
        assert await provider.healthy()


async def test_malformed_json_is_a_provider_error(fake: FakePlex, provider: PlexProvider) -> None:
    fake.fault = Fault("malformed", "/library/sections/1/all")
    with pytest.raises(ProviderError) as caught:
        await provider.media(MediaQuery(libraries=["1"]))
    assert caught.value.status == 502
    assert "unexpected answer" in str(caught.value)
    assert caught.value.__cause__ is not None


async def test_malformed_json_at_start_up_keeps_retrying(
    fake: FakePlex, plex_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    fake.fault = Fault("malformed", "/identity")
    async with opened(server_at(plex_url)) as provider:
        assert not await provider.healthy()
        fake.fault = None
        await eventually(provider.healthy)
    [warning] = warnings_of(caplog)
    assert "unexpected answer" in warning


# -- filters --------------------------------------------------------------------------------------


async def test_filters_come_from_the_library_metadata(plex_url: str) -> None:
    async with opened(server_at(plex_url, library_type_filter=["movie", "show"])) as provider:
        filters = await provider.filters()
    info = {item.key: item for item in filters.filters}
    assert list(info) == ["genre", "year", "decade", "contentRating", "director", "unwatched"]
    assert info["genre"].title == "Genre"
    assert info["genre"].type == "tag"  # the Field type, not the coarser filterType "string"
    assert info["year"].type == "integer"
    assert info["unwatched"].type == "boolean"
    assert info["genre"].libraryTypes == ["movie", "show"]
    assert "episode.unwatched" not in info  # episode filters of the show library
    operators = {type_name: [op.key for op in ops] for type_name, ops in filters.filterTypes.items()}
    assert operators["tag"] == ["=", "!="]
    assert operators["integer"] == ["=", "!=", ">>=", "<<="]
    assert operators["boolean"] == ["=", "!="]


async def test_filter_metadata_is_asked_for_without_items(fake: FakePlex, provider: PlexProvider) -> None:
    await provider.filters()
    [meta] = [seen for seen in fake.requests_to("/library/sections/1/all") if seen.param("includeMeta") == "1"]
    assert meta.param("type") == "1"
    assert meta.param("X-Plex-Container-Start") == "0"
    assert meta.param("X-Plex-Container-Size") == "0"


async def test_filter_values(fake: FakePlex, provider: PlexProvider) -> None:
    genres = await provider.filter_values("genre")
    assert [(value.title, value.value) for value in genres][:2] == [("Action", "1"), ("Comedy", "2")]
    assert len(genres) == 6  # two libraries list the same genres: merged
    decades = await provider.filter_values("decade")
    assert (decades[0].title, decades[0].value) == ("2010s", "2010")
    before = len(fake.received)
    assert [(value.title, value.value) for value in await provider.filter_values("unwatched")] == [
        ("Yes", "1"),
        ("No", "0"),
    ]
    assert len(fake.received) == before  # a boolean's values need no request
    with pytest.raises(ProviderError) as caught:
        await provider.filter_values("nonsense")
    assert caught.value.status == 404


# -- trailers -------------------------------------------------------------------------------------


async def body_of(stream: Stream) -> bytes:
    return b"".join([chunk async for chunk in stream.body])


async def test_films_with_a_trailer_say_where_it_streams(provider: PlexProvider) -> None:
    cards = by_title(await listed(provider))
    assert cards["Movies 0"].trailerUrl == "/api/trailer/plex-test/100001"
    assert cards["Movies 1"].trailerUrl is None  # no primaryExtraKey
    assert cards["Movies 0"].trailerLink is None


async def test_a_trailer_is_streamed_from_its_media_part(fake: FakePlex, provider: PlexProvider) -> None:
    await listed(provider)
    trailer = await provider.trailer("100001", None)
    assert trailer.status == 200
    assert trailer.content_type == "video/mp4"
    assert trailer.headers["accept-ranges"] == "bytes"
    assert trailer.headers["content-length"] == str(TRAILER_BYTES)
    assert await body_of(trailer) == trailer_video("100001")
    # The film's details name its trailer; the trailer's details name its file; the file is streamed.
    assert [seen.path for seen in fake.received[-3:]] == [
        "/library/metadata/100001",
        f"/library/metadata/{trailer_key('100001')}",
        "/library/parts/100001/1434341184/file.mp4",
    ]
    assert all(seen.headers["x-plex-token"] == PLEX_TOKEN for seen in fake.received)
    assert_clean(trailer.headers)


async def test_a_trailer_seeks_with_byte_ranges(fake: FakePlex, provider: PlexProvider) -> None:
    await listed(provider)
    video = trailer_video("100001")
    part = await provider.trailer("100001", "bytes=1000-1999")
    assert part.status == 206
    assert part.headers["content-range"] == f"bytes 1000-1999/{TRAILER_BYTES}"
    assert await body_of(part) == video[1000:2000]
    assert fake.requests_to("/library/parts/100001/1434341184/file.mp4")[-1].headers["range"] == "bytes=1000-1999"
    tail = await provider.trailer("100001", "bytes=199000-")
    assert await body_of(tail) == video[199_000:]
    # The file's path is kept: seeking asks for the file only.
    assert len(fake.requests_to("/library/metadata/100001")) == 1
    with pytest.raises(ProviderError) as beyond:
        await provider.trailer("100001", f"bytes={TRAILER_BYTES}-")
    assert beyond.value.status == 416


async def test_trailers_only_for_listed_films_that_have_one(fake: FakePlex, provider: PlexProvider) -> None:
    await listed(provider)
    before = len(fake.received)
    for key in ("100002", "999", "../identity", "400001"):  # no trailer; unknown; not a key; not listed
        with pytest.raises(ProviderError) as caught:
            await provider.trailer(key, None)
        assert caught.value.status == 404
    assert len(fake.received) == before


# -- posters and links ----------------------------------------------------------------------------


async def test_posters_are_streamed_from_the_photo_transcoder(fake: FakePlex, provider: PlexProvider) -> None:
    fake.poster_gate = gate = threading.Event()
    await listed(provider)
    # The fake holds back the second half until told: the first arrives only if nothing buffers it all.
    with anyio.fail_after(3):
        poster = await provider.poster("100001", 300)
        first = await poster.body.__anext__()
    assert poster.content_type == "image/png"
    assert poster.headers == {"Cache-Control": "public, max-age=86400"}
    gate.set()
    image = first + b"".join([chunk async for chunk in poster.body])
    assert png_size(image) == (300, 450)
    [seen] = fake.requests_to("/photo/:/transcode")
    assert (seen.param("url"), seen.param("width"), seen.param("height")) == (
        "/library/metadata/100001/thumb",
        "300",
        "450",
    )
    assert (seen.param("minSize"), seen.param("upscale")) == ("1", "1")


class CountingTransport(httpx.AsyncBaseTransport):
    """Real HTTP, counting the responses not yet closed."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.open = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        self.open += 1
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            stream=_Counted(self, response),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self.inner.aclose()


class _Counted(httpx.AsyncByteStream):
    def __init__(self, transport: CountingTransport, response: httpx.Response) -> None:
        self.transport = transport
        self.response = response

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self.response.aiter_raw():
            yield chunk

    async def aclose(self) -> None:
        self.transport.open -= 1
        await self.response.aclose()


async def test_a_poster_dropped_unread_releases_its_connection(plex_url: str) -> None:
    # Browsers give up on posters all the time (a fast swipe); each must not pin a pooled connection.
    transport = CountingTransport()
    async with opened(server_at(plex_url), transport=transport) as provider:
        await listed(provider)
        for _ in range(3):
            poster = await provider.poster("100001", 300)
            del poster
        gc.collect()
        await eventually(lambda: transport.open == 0)


async def test_poster_widths_are_clamped(fake: FakePlex, provider: PlexProvider) -> None:
    await listed(provider)
    for asked, sent in ((None, "600"), (5000, "1000"), (10, "50"), (0, "600")):
        poster = await provider.poster("100001", asked)
        _ = [chunk async for chunk in poster.body]
        assert fake.requests_to("/photo/:/transcode")[-1].param("width") == sent


async def test_a_missing_poster_is_404(fake: FakePlex, provider: PlexProvider) -> None:
    await listed(provider)
    # Unknown; an item without a thumb; in another library, not listed yet; not keys.
    for key in ("999999", "100007", "400001", "../../identity", "1?x=1"):
        with pytest.raises(ProviderError) as caught:
            await provider.poster(key, 300)
        assert caught.value.status == 404
    assert fake.requests_to("/photo/:/transcode") == []  # known without asking


async def test_posters_and_links_only_for_listed_items(fake: FakePlex, provider: PlexProvider) -> None:
    made_up = [str(100_000 + n) for n in range(2, 102)]  # real keys of the fake, but never listed
    for key in made_up:
        for attempt in (provider.poster(key, 300), provider.link(key, DESKTOP)):
            with pytest.raises(ProviderError) as caught:
                await attempt
            assert caught.value.status == 404
    assert fake.requests_to("/photo/:/transcode") == []
    await listed(provider)
    poster = await provider.poster("100002", 300)
    assert png_size(b"".join([chunk async for chunk in poster.body])) == (300, 450)
    assert (await provider.link("100002", DESKTOP)).startswith("https://app.plex.tv/")
    assert len(fake.requests_to("/photo/:/transcode")) == 1


LINK_KEY = "%2Flibrary%2Fmetadata%2F100001"
APP_LINK = f"plex://preplay/?metadataKey={LINK_KEY}&server={MACHINE_IDENTIFIER}"
WEB_LINK = f"https://app.plex.tv/desktop#!/server/{MACHINE_IDENTIFIER}/details?key={LINK_KEY}"
IPHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148"
ANDROID = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 Chrome/124.0 Mobile Safari/537.36"
DESKTOP = "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0"


async def test_links_by_configured_type(plex_url: str) -> None:
    expected = {
        "app": APP_LINK,
        "webExternal": WEB_LINK,
        "webLocal": f"{plex_url}/web/index.html#!/server/{MACHINE_IDENTIFIER}/details?key={LINK_KEY}",
    }
    for link_type, link in expected.items():
        async with opened(server_at(plex_url, link_type=link_type)) as provider:
            await listed(provider)
            for agent in (IPHONE, DESKTOP):
                assert await provider.link("100001", agent) == link


async def test_links_follow_the_device_when_not_configured(provider: PlexProvider) -> None:
    await listed(provider)
    assert await provider.link("100001", IPHONE) == APP_LINK
    assert await provider.link("100001", ANDROID) == APP_LINK
    assert await provider.link("100001", DESKTOP) == WEB_LINK
    assert await provider.link("100001", "") == WEB_LINK
    with pytest.raises(ProviderError) as caught:
        await provider.link("javascript:alert(1)", DESKTOP)
    assert caught.value.status == 404


# -- a server behind a path -----------------------------------------------------------------------


async def test_a_server_url_with_a_path_works_everywhere() -> None:
    fake = FakePlex(prefix="/plex")
    with serving(fake) as url:
        assert url.endswith("/plex")
        async with opened(server_at(url + "/", link_type="webLocal")) as provider:
            assert provider.machine_identifier == MACHINE_IDENTIFIER
            assert [library.key for library in await provider.libraries()] == ["1", ARCHIVE]
            assert len(await listed(provider)) == 40
            assert await provider.filters()
            assert len(await provider.filter_values("genre")) == 6  # a path Plex itself named, prefixed too
            poster = await provider.poster("100001", 200)
            assert png_size(b"".join([chunk async for chunk in poster.body])) == (200, 300)
            assert (await provider.link("100001", DESKTOP)).startswith(f"{url}/web/index.html#!/server/")
    assert fake.received
    assert all(seen.path.startswith("/plex/") for seen in fake.received)
    [poster_request] = fake.requests_to("/photo/:/transcode")
    assert poster_request.param("url") == "/library/metadata/100001/thumb"  # the server's own path, unprefixed


async def test_a_token_pasted_into_the_url_stays_off_the_wire(fake: FakePlex, plex_url: str) -> None:
    async with opened(server_at(f"{plex_url}/?X-Plex-Token={WRONG_TOKEN}", link_type="webLocal")) as provider:
        assert await provider.healthy()
        await listed(provider)
        assert WRONG_TOKEN not in await provider.link("100001", DESKTOP)
    assert all(WRONG_TOKEN not in seen.query for seen in fake.received)
