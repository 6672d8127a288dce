"""Overseerr/Jellyseerr as the source of titles the library lacks, against a fake Seerr and a fake
TMDB image server over real HTTP (tests/fake_seerr.py): its lists, filters, posters streamed
through without the API key, links, requests and their states, and a key Seerr refuses."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from server.config import MediaServer
from server.providers import MediaQuery, ProviderError
from server.providers.seerr import SeerrProvider, _MediaInfo, _Request, request_status
from tests.fake_seerr import SEERR_API_KEY, FakeSeerr, FakeTmdbImages
from tests.fakes import Fault, eventually, log_lines, no_secret_logged, png_size, rule, serving

pytestmark = pytest.mark.anyio

clean_logs = no_secret_logged(SEERR_API_KEY)


@pytest.fixture
def seerr() -> FakeSeerr:
    return FakeSeerr()


@pytest.fixture
def images() -> FakeTmdbImages:
    return FakeTmdbImages()


@pytest.fixture
def urls(seerr: FakeSeerr, images: FakeTmdbImages) -> Iterator[tuple[str, str]]:
    with serving(seerr) as seerr_url, serving(images) as image_url:
        yield seerr_url.removesuffix("/api/v1"), image_url


async def opened(urls: tuple[str, str], **server: Any) -> AsyncIterator[SeerrProvider]:
    config = MediaServer.model_validate(
        {"type": "seerr", "url": urls[0], "token": server.pop("token", SEERR_API_KEY), **server}
    )
    provider = SeerrProvider(config, provider_id="seerr-test", image_url=urls[1], retry_delays=(0.05, 0.2))
    await provider.open()
    try:
        yield provider
    finally:
        await provider.close()


@pytest.fixture
async def provider(urls: tuple[str, str]) -> AsyncIterator[SeerrProvider]:
    async for opened_provider in opened(urls, library_type_filter=["movie", "show"]):
        yield opened_provider


async def test_seerrs_lists_are_libraries_a_room_must_name(provider: SeerrProvider, seerr: FakeSeerr) -> None:
    libraries = await provider.libraries()
    assert [(library.key, library.type, library.inLibrary) for library in libraries] == [
        ("movies", "movie", False),
        ("tv", "show", False),
    ]
    assert await provider.media(MediaQuery()) == []  # a room naming no library takes none of Seerr's
    assert not seerr.requests_to("/discover/movies")


async def test_popular_titles_the_library_lacks_become_cards(provider: SeerrProvider, seerr: FakeSeerr) -> None:
    films = await provider.media(MediaQuery(libraries=["movies"]))
    # 30 popular films on two pages; every fifth one the library has (mediaInfo.status 5).
    assert len(films) == 24
    assert {seen.param("page") for seen in seerr.requests_to("/discover/movies")} == {"1", "2"}
    first = next(film for film in films if film.id == "tmdb://551")
    assert first.wire() == {
        "id": "tmdb://551",
        "type": "movie",
        "title": "Popular Film 1",
        "description": "Overview of Popular Film 1.",
        "year": 2001,
        "posterUrl": "/api/poster/seerr-test/movie-551",
        "linkUrl": "api/link/seerr-test/movie-551",
        "genres": ["Comedy"],
        "duration": 0,
        "rating": 6.0,
        "directors": [],
        "actors": [],
        "inLibrary": False,
    }
    assert "tmdb://554" not in {film.id for film in films}  # available in the library
    no_poster = next(film for film in films if film.id == "tmdb://550")  # number 0: no posterPath
    assert no_poster.posterUrl is None
    shows = await provider.media(MediaQuery(libraries=["tv"]))
    assert {show.id for show in shows} == {f"tmdb-tv://{1400 + number}" for number in range(6)}
    assert {show.type for show in shows} == {"show"}
    # Kept a while and shared: a second room costs nothing.
    await provider.media(MediaQuery(libraries=["movies"]))
    assert len(seerr.requests_to("/discover/movies")) == 2


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ([rule("genre", "=", "Comedy")], {550 + n for n in range(1, 30, 2) if n % 5 != 4}),
        ([rule("year", ">>=", "2025")], {550 + n for n in range(25, 30) if n % 5 != 4}),
        ([rule("unwatched", "=", "1")], {550 + n for n in range(30) if n % 5 != 4}),
        ([rule("unwatched", "=", "0")], set()),
        ([rule("director", "=", "Agnès Varda")], set()),  # Seerr's lists name no director
        ([rule("studio", "=", "A24")], set()),  # a filter these lists cannot check: nothing mixed in
    ],
)
async def test_the_rooms_filters_apply_as_far_as_seerr_can_tell(
    provider: SeerrProvider, filters: list[Any], expected: set[int]
) -> None:
    films = await provider.media(MediaQuery(filters=filters, libraries=["movies"]))
    assert {film.id for film in films} == {f"tmdb://{number}" for number in expected}


async def test_posters_come_from_tmdb_through_this_server_without_the_key(
    provider: SeerrProvider, images: FakeTmdbImages
) -> None:
    await provider.media(MediaQuery(libraries=["movies"]))
    poster = await provider.poster("movie-551", 300)
    body = b"".join([chunk async for chunk in poster.body])
    assert png_size(body) == (342, 513)
    assert poster.headers["Cache-Control"].startswith("public")
    [seen] = images.received
    assert seen.path == "/t/p/w342/poster01.jpg"
    assert "x-api-key" not in seen.headers
    assert SEERR_API_KEY not in json.dumps(seen.headers)
    for key in ("movie-550", "movie-9999", "../etc", "tv-551"):  # no poster, never listed, not a key
        with pytest.raises(ProviderError) as caught:
            await provider.poster(key, 300)
        assert caught.value.status == 404
    assert len(images.received) == 1


async def test_links_open_the_title_in_seerr(provider: SeerrProvider, urls: tuple[str, str]) -> None:
    await provider.media(MediaQuery(libraries=["movies", "tv"]))
    assert await provider.link("movie-551", "Mozilla/5.0") == f"{urls[0]}/movie/551"
    assert await provider.link("tv-1401", "Mozilla/5.0") == f"{urls[0]}/tv/1401"


async def test_requests_and_their_states(provider: SeerrProvider, seerr: FakeSeerr) -> None:
    await provider.media(MediaQuery(libraries=["movies", "tv"]))
    assert await provider.status("movie-551") == "none"
    assert await provider.request("movie-551") == "pending"
    [made] = seerr.requests_to("/request")
    assert made.method == "POST"
    assert made.headers["x-api-key"] == SEERR_API_KEY
    assert seerr.title("movie", 551).requests[0].status == 1
    # Asked again (by anyone, here or in Seerr): Seerr answers 409, the state is read instead.
    assert await provider.request("movie-551") == "pending"
    seerr.auto_approve = True
    assert await provider.request("tv-1401") == "processing"  # approved at once, and on its way
    seerr.title("movie", 551).requests[0].status = 2
    seerr.title("movie", 551).media_status = 3
    assert await provider.status("movie-551") == "processing"
    seerr.title("movie", 551).media_status = 5
    assert await provider.status("movie-551") == "available"
    seerr.refuse_requests = True
    with pytest.raises(ProviderError, match="HTTP 403: You do not have permission") as caught:
        await provider.request("movie-553")
    assert caught.value.status == 403
    with pytest.raises(ProviderError) as unknown:
        await provider.request("movie-12345")
    assert unknown.value.status == 404


def test_request_states_from_seerrs_numbers() -> None:
    assert request_status(None) == "none"
    assert request_status(_MediaInfo(status=1)) == "none"
    assert request_status(_MediaInfo(status=2)) == "pending"
    assert request_status(_MediaInfo(status=4)) == "available"
    assert request_status(_MediaInfo(status=2, requests=[_Request(1, 3)])) == "declined"
    assert request_status(_MediaInfo(status=2, requests=[_Request(1, 3), _Request(2, 1)])) == "pending"
    assert request_status(_MediaInfo(status=3, requests=[_Request(1, 2)])) == "processing"
    assert request_status(_MediaInfo(status=2, requests=[_Request(1, 4)])) == "failed"
    assert request_status(None, _Request(7, 2)) == "approved"


async def test_a_refused_api_key_is_reported_once_and_retried(
    urls: tuple[str, str], seerr: FakeSeerr, caplog: pytest.LogCaptureFixture
) -> None:
    warnings = log_lines(caplog, "server.providers.seerr")
    async for provider in opened(urls, token="wrong-key-Zz91"):
        assert not await provider.healthy()
        with pytest.raises(ProviderError, match="rejected the API key") as caught:
            await provider.media(MediaQuery(libraries=["movies"]))
        assert caught.value.status == 503
        await eventually(lambda: len(seerr.requests_to("/auth/me")) >= 3)
        assert len([line for line in warnings(30) if "rejected the API key" in line]) == 1
        assert all("wrong-key-Zz91" not in line for line in warnings(30))


async def test_a_failing_seerr_is_a_provider_error(provider: SeerrProvider, seerr: FakeSeerr) -> None:
    seerr.fault = Fault("malformed", "/discover")
    with pytest.raises(ProviderError, match="unexpected answer"):
        await provider.media(MediaQuery(libraries=["movies"]))
    seerr.fault = Fault("status", "/discover", status=500)
    with pytest.raises(ProviderError, match="HTTP 500"):
        await provider.media(MediaQuery(libraries=["movies"]))


async def test_an_unreachable_seerr_is_unhealthy(images: FakeTmdbImages) -> None:
    with serving(images) as image_url:
        async for provider in opened(("http://127.0.0.1:9", image_url)):
            assert not await provider.healthy()
            with pytest.raises(ProviderError, match="is unreachable"):
                await provider.media(MediaQuery(libraries=["movies"]))
