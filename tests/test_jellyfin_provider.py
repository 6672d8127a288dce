"""The Jellyfin provider against a fake Jellyfin server on loopback (tests/fake_jellyfin.py)."""

from __future__ import annotations

import base64
import contextlib
import logging
import ssl
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, quote

import anyio
import httpx
import pytest
from pydantic import SecretStr

from server.config import MediaServer
from server.providers import InvalidFilter, Media, MediaQuery, Person, Poster, ProviderError
from server.providers.jellyfin import JellyfinProvider
from storage import Filter
from tests.fake_jellyfin import (
    ALICE,
    API_KEY,
    BOB,
    CAROL,
    IMAGE_TYPE,
    SERVER_ID,
    TRAILER_BYTES,
    TRAILER_TYPE,
    FakeJellyfin,
    FakeLibrary,
    default_libraries,
    guid,
    poster_png,
    trailer_video,
)
from tests.fakes import (
    Fault,
    Received,
    bound_socket,
    eventually,
    log_lines,
    png_size,
    rule,
    self_signed_certificate,
    serving,
    socket_url,
)

pytestmark = pytest.mark.anyio

LOGGER = "server.providers.jellyfin"
MOVIES, MOVIES_4K, SHOWS, MUSIC, ARCHIVE, HOME_VIDEOS = default_libraries()

OpenProvider = Callable[..., Awaitable[JellyfinProvider]]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[FakeJellyfin, str]]:
    fake = FakeJellyfin()
    with serving(fake) as url:
        yield fake, url


@pytest.fixture
def fake(server: tuple[FakeJellyfin, str]) -> FakeJellyfin:
    """The module's fake server, with a clean request log and no fault."""
    jellyfin = server[0]
    jellyfin.received.clear()
    jellyfin.fault = None
    jellyfin.poster_gate = None
    return jellyfin


@pytest.fixture
def url(server: tuple[FakeJellyfin, str], fake: FakeJellyfin) -> str:
    """The module's fake server's URL (``fake`` so that it starts clean)."""
    return server[1]


def settings(url: str, *, key: str = API_KEY, **options: Any) -> MediaServer:
    return MediaServer(type="jellyfin", url=url, token=SecretStr(key), **options)


@pytest.fixture
async def opened() -> AsyncIterator[OpenProvider]:
    """Opens providers, and closes them after the test."""
    providers: list[JellyfinProvider] = []

    async def open_provider(url: str, *, key: str = API_KEY, **options: Any) -> JellyfinProvider:
        provider_options = ("transport", "cache_ttl", "clock", "timeout", "retry_delays")
        extra = {name: options.pop(name) for name in provider_options if name in options}
        provider = JellyfinProvider(
            settings(url, key=key, **options), provider_id="jellyfin-1", client_id="client-1", **extra
        )
        providers.append(provider)
        await provider.open()
        return provider

    yield open_provider
    for provider in providers:
        await provider.close()


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> Callable[[int], list[str]]:
    """The provider's log messages at exactly one level."""
    return log_lines(caplog, LOGGER)


async def media(provider: JellyfinProvider, *filters: Filter) -> list[Media]:
    """The cards of the "Movies" library that pass ``filters``."""
    return await provider.media(MediaQuery(filters=list(filters), libraries=[MOVIES.id]))


def indexes(items: list[Media], library: FakeLibrary = MOVIES) -> set[int]:
    """The fake's item indexes of cards, read back from their link URLs."""
    found = set()
    for item in items:
        index = library.index_of(item.linkUrl.rpartition("/")[2])
        assert index is not None
        found.add(index)
    return found


def item_requests(fake: FakeJellyfin) -> list[Received]:
    return [seen for seen in fake.received if seen.path.endswith("/Items")]


def query_of(seen: Received) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(seen.query).items()}


# -- connecting ---------------------------------------------------------------------------------


async def test_opens_and_lists_the_movie_libraries_of_the_first_administrator(
    url: str, fake: FakeJellyfin, opened: OpenProvider, logs: Callable[[int], list[str]]
) -> None:
    provider = await opened(url)
    assert await provider.healthy()
    libraries = await provider.libraries()
    # Carol is an administrator too, but disabled; "Music" and "Home Videos" hold no movies.
    assert [(library.title, library.key, library.type) for library in libraries] == [
        ("Movies", MOVIES.id, "movie"),
        ("Movies 4K", MOVIES_4K.id, "movie"),
        ("Archive", ARCHIVE.id, "movie"),
    ]
    assert any("using administrator 'alice'" in line for line in logs(logging.INFO))
    assert any("connected to Jellyfin server 'Living Room'" in line for line in logs(logging.INFO))
    assert fake.requests_to(f"/Users/{ALICE.id}/Views")


async def test_library_type_and_title_filters(url: str, opened: OpenProvider) -> None:
    both = await opened(url, library_type_filter=("movie", "show"))
    assert [library.title for library in await both.libraries()] == ["Movies", "Movies 4K", "Shows", "Archive"]
    shows = await opened(url, library_type_filter=("show",))
    assert [(library.title, library.type) for library in await shows.libraries()] == [("Shows", "show")]
    # Titles match whatever their case, as the original MovieMatch's libraryTitleFilter did.
    titled = await opened(url, library_title_filter=("movies", "SHOWS"), library_type_filter=("movie", "show"))
    assert [library.title for library in await titled.libraries()] == ["Movies", "Shows"]


async def test_a_configured_user_sees_only_its_own_libraries(
    url: str, opened: OpenProvider, logs: Callable[[int], list[str]]
) -> None:
    provider = await opened(url, user_id=BOB.id, library_type_filter=("movie", "show"))
    assert [library.title for library in await provider.libraries()] == ["Movies", "Shows"]
    assert any("using user 'bob'" in line for line in logs(logging.INFO))
    with pytest.raises(ProviderError) as caught:
        await provider.media(MediaQuery(libraries=[ARCHIVE.id]))
    assert caught.value.status == 400


async def test_an_unknown_configured_user_keeps_the_server_unavailable(
    url: str, opened: OpenProvider, logs: Callable[[int], list[str]]
) -> None:
    provider = await opened(url, user_id=guid(0xDEAD))
    assert not await provider.healthy()
    [warning] = logs(logging.WARNING)
    assert f"has no user '{guid(0xDEAD)}' (the configured user_id)" in warning


async def test_without_users_or_an_administrator_the_whole_server_is_used(
    opened: OpenProvider, logs: Callable[[int], list[str]]
) -> None:
    with serving(FakeJellyfin(users=[BOB])) as url:
        provider = await opened(url)
        assert [library.title for library in await provider.libraries()] == ["Movies", "Movies 4K", "Archive"]
        cards = await media(provider)
        assert len(cards) == MOVIES.size
        # Local trailers are listed per user: only the remote ones can be offered.
        assert not any(card.trailerUrl for card in cards)
        assert {index for index in indexes([card for card in cards if card.trailerLink])} == {
            index for index in range(MOVIES.size) if index % 4 == 1 or index % 8 == 6
        }
        assert any("no administrator found" in line for line in logs(logging.WARNING))
        assert "unwatched" not in [info.key for info in (await provider.filters()).filters]
        with pytest.raises(ProviderError) as caught:
            await media(provider, rule("unwatched", "=", "1"))
        assert caught.value.status == 400
        assert "set user_id" in str(caught.value)
        with pytest.raises(ProviderError) as unknown:
            await provider.filter_values("unwatched")
        assert unknown.value.status == 404


async def test_a_base_url_with_a_path(opened: OpenProvider) -> None:
    fake = FakeJellyfin("/jellyfin")
    with serving(fake) as url:
        assert url.endswith("/jellyfin")
        provider = await opened(url + "/")
        assert await provider.healthy()
        items = await media(provider)
        assert len(items) == MOVIES.size
        poster = await provider.poster(MOVIES.item_id(0), 200)
        assert b"".join([chunk async for chunk in poster.body]) == poster_png(MOVIES.item_id(0), 200)
        link = await provider.link(MOVIES.item_id(0), "")
        assert link.startswith(url + "/web/index.html#!/details?")
        assert all(seen.path.startswith("/jellyfin/") for seen in fake.received)


async def test_a_rejected_key_is_one_clear_log_line_and_no_crash(
    url: str, fake: FakeJellyfin, opened: OpenProvider, logs: Callable[[int], list[str]]
) -> None:
    provider = await opened(url, key="not-the-key", retry_delays=(0.02, 0.05))
    assert not await provider.healthy()
    await anyio.sleep(0.3)  # several retries
    assert len(fake.requests_to("/System/Info")) > 2
    warnings = logs(logging.WARNING)
    assert len(warnings) == 1
    assert "rejected the API key (HTTP 401)" in warnings[0]
    assert url in warnings[0]
    with pytest.raises(ProviderError) as caught:
        await provider.libraries()
    assert caught.value.status == 503
    assert "rejected the API key" in str(caught.value)


async def test_an_unreachable_server_is_retried_until_it_answers(
    opened: OpenProvider, logs: Callable[[int], list[str]]
) -> None:
    sock = bound_socket()  # a port nobody listens on yet
    url = socket_url(sock)
    provider = await opened(url, retry_delays=(0.02, 0.1))
    assert not await provider.healthy()
    [warning] = logs(logging.WARNING)
    assert "cannot connect" in warning
    assert url in warning
    with pytest.raises(ProviderError) as caught:
        await media(provider)
    assert caught.value.status == 503
    with serving(FakeJellyfin(), sock):
        await eventually(provider.healthy)
        assert len(await media(provider)) == MOVIES.size
    assert any("connected to Jellyfin server" in line for line in logs(logging.INFO))


async def test_https_to_a_plain_http_server_says_so(
    opened: OpenProvider, logs: Callable[[int], list[str]], url: str
) -> None:
    provider = await opened(url.replace("http://", "https://"), retry_delays=(60.0, 60.0))
    assert not await provider.healthy()
    [warning] = logs(logging.WARNING)
    assert "the TLS handshake failed" in warning


@contextmanager
def self_signed_tls(directory: Path) -> Iterator[str]:
    """An https:// URL whose certificate nobody trusts; it completes handshakes and then hangs up."""
    cert, key = self_signed_certificate(directory, "127.0.0.1")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    listener = bound_socket()
    listener.listen()
    listener.settimeout(0.05)  # to notice the end of the test
    done = threading.Event()

    def serve() -> None:
        while not done.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            with contextlib.suppress(OSError):
                context.wrap_socket(connection, server_side=True).close()
            connection.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield socket_url(listener).replace("http://", "https://")
    finally:
        done.set()
        thread.join(5)
        listener.close()


async def test_an_untrusted_certificate_says_what_to_do(
    tmp_path: Path, opened: OpenProvider, logs: Callable[[int], list[str]]
) -> None:
    with self_signed_tls(tmp_path) as url:
        trusting = await opened(url, retry_delays=(60.0, 60.0))
        assert not await trusting.healthy()
        [warning] = logs(logging.WARNING)
        assert "its TLS certificate is not trusted" in warning
        assert "set verify_tls: false" in warning
        # With verify_tls off the handshake succeeds; this listener then hangs up, which is another problem.
        await opened(url, verify_tls=False, retry_delays=(60.0, 60.0))
        assert "certificate" not in logs(logging.WARNING)[1]


async def test_a_404_for_the_api_points_at_the_url(
    opened: OpenProvider, logs: Callable[[int], list[str]], url: str
) -> None:
    provider = await opened(url + "/emby", retry_delays=(60.0, 60.0))
    assert not await provider.healthy()
    [warning] = logs(logging.WARNING)
    assert "check the URL and its path" in warning


async def test_a_revoked_key_is_noticed_and_a_restored_one_too(opened: OpenProvider) -> None:
    fake = FakeJellyfin()
    with serving(fake) as url:
        provider = await opened(url, retry_delays=(0.02, 0.05))
        assert await provider.healthy()
        fake.key = "revoked"
        with pytest.raises(ProviderError) as caught:
            await media(provider)
        assert caught.value.status == 502
        assert not await provider.healthy()
        fake.key = API_KEY
        await eventually(provider.healthy)


async def test_a_slow_server_times_out(url: str, fake: FakeJellyfin, opened: OpenProvider) -> None:
    provider = await opened(url, timeout=0.3)
    fake.fault = Fault("slow", f"/Users/{ALICE.id}/Items", seconds=1.0)
    with anyio.fail_after(3):
        with pytest.raises(ProviderError) as caught:
            await media(provider)
    assert caught.value.status == 504
    assert "did not answer within 0.3 s" in str(caught.value)
    # Slowness is not absence: the server stays healthy, and answers once it is quick again.
    assert await provider.healthy()
    fake.fault = None
    assert len(await media(provider)) == MOVIES.size


@pytest.mark.parametrize(
    ("fault", "message"),
    [(Fault("malformed", "/Users"), "malformed answer"), (Fault("status", "/Users", status=500), "HTTP 500")],
)
async def test_a_broken_answer_is_a_502(
    url: str, fake: FakeJellyfin, opened: OpenProvider, fault: Fault, message: str
) -> None:
    provider = await opened(url)
    fake.fault = fault
    with pytest.raises(ProviderError) as caught:
        await media(provider)
    assert caught.value.status == 502
    assert message in str(caught.value)
    fake.fault = None
    # Failures are not cached.
    assert len(await media(provider)) == MOVIES.size


# -- media --------------------------------------------------------------------------------------


async def test_items_become_cards(url: str, opened: OpenProvider) -> None:
    provider = await opened(url)
    cards = {index: card for card in await media(provider) for index in indexes([card])}
    assert set(cards) == set(range(MOVIES.size))
    first = cards[1]
    assert first.wire() == {
        "id": "imdb://tt1000001",
        "type": "movie",
        "title": "Movies 1",
        "description": "Overview of Movies 1.",
        "tagline": "Tagline 1.",
        "year": 1951,
        "posterUrl": f"/api/poster/jellyfin-1/{MOVIES.item_id(1)}",
        "linkUrl": f"api/link/jellyfin-1/{MOVIES.item_id(1)}",
        "genres": ["Comedy", "Action"],
        "duration": 81 * 60_000,
        "rating": 4.1,
        "contentRating": "PG",
        "directors": ["Akira Kurosawa"],
        "actors": ["Ben Stiller", "Owen Wilson"],
        "trailerLink": "https://www.youtube.com/watch?v=trailer1",  # a remote trailer only
    }
    assert first.aliases == ("tmdb://1500001",)  # the id it had before too: no former id to keep
    assert first.added == "2021-03-01T01:00:00.0000000Z"
    assert cards[0].tagline is None
    assert len(cards[6].actors) == 5  # of seven
    # What a real library lacks now and then.
    assert cards[2].id == "tmdb://1500002"  # no IMDb id
    assert cards[3].id == f"jellyfin://{SERVER_ID}/{MOVIES.item_id(3)}"  # no external id at all
    assert cards[5].year is None
    assert cards[6].posterUrl is None
    assert cards[7].rating == 0.0
    assert cards[8].contentRating is None
    assert cards[9].description == ""


async def test_series_are_shows_and_keep_their_own_ids(url: str, opened: OpenProvider) -> None:
    provider = await opened(url, library_type_filter=("show",))
    cards = await provider.media(MediaQuery(libraries=[SHOWS.id]))
    assert len(cards) == SHOWS.size
    assert {card.type for card in cards} == {"show"}
    # TVDB numbers series apart from movies: a series' fallback after IMDb is its TVDB id, never TMDb.
    by_index = {index: card for card in cards for index in indexes([card], SHOWS)}
    assert by_index[0].id == "imdb://tt3000000"
    assert by_index[0].aliases[0] == "tvdb://3500000"
    # Only a TMDB id: spelled as a show's, since TMDB numbers films apart. (Earlier versions gave it
    # the fallback id, which rooms may hold: an alias.)
    assert by_index[2].id == "tmdb://tv/3500002"
    assert by_index[2].aliases == (f"jellyfin://{SERVER_ID}/{SHOWS.item_id(2)}",)
    assert by_index[3].id == f"jellyfin://{SERVER_ID}/{SHOWS.item_id(3)}"


async def test_shows_have_seasons_episodes_years_and_a_network(
    url: str, fake: FakeJellyfin, opened: OpenProvider
) -> None:
    provider = await opened(url, library_type_filter=("movie", "show"))
    cards = await provider.media(MediaQuery(libraries=[SHOWS.id]))
    by_index = {index: card for card in cards for index in indexes([card], SHOWS)}
    running, ended = by_index[0], by_index[1]
    assert (running.seasons, running.episodes, running.network, running.endYear) == (1, 10, "HBO", None)
    assert (ended.seasons, ended.episodes, ended.network) == (2, 20, "BBC One")
    assert (ended.year, ended.endYear) == (1951, 1956)
    [shows] = [query_of(seen) for seen in item_requests(fake) if query_of(seen)["ParentId"] == SHOWS.id]
    assert {"ChildCount", "RecursiveItemCount", "Studios"} <= set(shows["Fields"].split(","))
    assert shows["EnableUserData"] == "true"  # the episode count comes with a user's data
    movies = await provider.media(MediaQuery(libraries=[MOVIES.id]))
    [films] = [query_of(seen) for seen in item_requests(fake) if query_of(seen)["ParentId"] == MOVIES.id]
    assert films["EnableUserData"] == "false"  # costly per item, and films need none
    assert not {"seasons", "episodes", "endYear", "network"} & {key for card in movies for key in card.wire()}


async def test_filters_and_watched_state_work_for_shows(url: str, fake: FakeJellyfin, opened: OpenProvider) -> None:
    provider = await opened(url, library_type_filter=("show",))
    shows = await provider.media(MediaQuery([rule("unwatched", "=", "1"), rule("genre", "=", "Comedy")], [SHOWS.id]))
    expected = {index for index in range(SHOWS.size) if not ALICE.watched(index) and "Comedy" in SHOWS.genres(index)}
    assert indexes(shows, SHOWS) == expected
    [sent] = [query_of(seen) for seen in item_requests(fake) if "IsPlayed" in query_of(seen)]
    assert (sent["IncludeItemTypes"], sent["IsPlayed"], sent["Genres"]) == ("Series", "false", "Comedy")


async def test_one_film_in_two_libraries_is_one_card(url: str, opened: OpenProvider) -> None:
    provider = await opened(url)
    both = await provider.media(MediaQuery(libraries=[MOVIES.id, MOVIES_4K.id]))
    # The 4K library repeats the first five films of "Movies"; one of them has no external id to tell.
    assert len(both) == MOVIES.size + 1
    assert len({card.id for card in both}) == len(both)


async def test_20000_items_come_in_pages(url: str, fake: FakeJellyfin, opened: OpenProvider) -> None:
    provider = await opened(url)
    cards = await provider.media(MediaQuery(libraries=[ARCHIVE.id]))
    assert len(cards) == ARCHIVE.size
    assert indexes(cards, ARCHIVE) == set(range(ARCHIVE.size))
    requests = [query_of(seen) for seen in item_requests(fake)]
    assert len(requests) == ARCHIVE.size // 500
    assert sorted(int(query["StartIndex"]) for query in requests) == list(range(0, ARCHIVE.size, 500))
    assert {query["Limit"] for query in requests} == {"500"}
    assert {query["ParentId"] for query in requests} == {ARCHIVE.id}


async def test_one_copy_of_a_library_however_many_listings_hold_it(url: str, opened: OpenProvider) -> None:
    provider = await opened(url)
    everything = {item.id: item for item in await provider.media(MediaQuery(libraries=[ARCHIVE.id]))}
    again = await provider.media(MediaQuery(libraries=[ARCHIVE.id]))  # cached
    dramas = await provider.media(MediaQuery(filters=[rule("genre", "=", "Drama")], libraries=[ARCHIVE.id]))
    assert dramas
    assert all(item is everything[item.id] for item in [*again, *dramas])


async def test_an_unknown_library_is_a_400(url: str, opened: OpenProvider) -> None:
    provider = await opened(url)
    with pytest.raises(ProviderError) as caught:
        await provider.media(MediaQuery(libraries=[MUSIC.id]))
    assert caught.value.status == 400


# -- filters ------------------------------------------------------------------------------------


async def test_the_filters_offered(url: str, opened: OpenProvider) -> None:
    provider = await opened(url)
    filters = await provider.filters()
    assert [(info.key, info.type) for info in filters.filters] == [
        ("genre", "tag"),
        ("year", "integer"),
        ("decade", "integer"),
        ("duration", "integer"),
        ("rating", "integer"),
        ("contentRating", "string"),
        ("unwatched", "boolean"),
    ]
    assert all(info.libraryTypes == ["movie"] for info in filters.filters)
    assert [operator.key for operator in filters.filterTypes["integer"]] == ["=", "!=", ">>=", "<<="]
    assert [(operator.key, operator.title) for operator in filters.filterTypes["boolean"]] == [
        ("=", "is"),
        ("!=", "is not"),
    ]


async def test_filter_values(url: str, fake: FakeJellyfin, opened: OpenProvider) -> None:
    provider = await opened(url)
    genres = await provider.filter_values("genre")
    assert [value.value for value in genres] == sorted(
        ["Action", "Animation", "Comedy", "Drama", "Horror", "Science Fiction"]
    )
    years = [value.value for value in await provider.filter_values("year")]
    assert years[0] == "2019"
    assert years[-1] == "1950"
    decades = await provider.filter_values("decade")
    assert [(value.title, value.value) for value in decades][:2] == [("2010s", "2010"), ("2000s", "2000")]
    assert [value.value for value in await provider.filter_values("contentRating")] == [
        "G",
        "NC-17",
        "PG",
        "PG-13",
        "R",
    ]
    assert [value.value for value in await provider.filter_values("rating")] == ["5", "6", "6.5", "7", "7.5", "8"]
    assert [value.value for value in await provider.filter_values("unwatched")] == ["1", "0"]
    # One /Items/Filters per library, kept for the next question.
    assert len(fake.requests_to("/Items/Filters")) == 3
    with pytest.raises(ProviderError) as caught:
        await provider.filter_values("director")
    assert caught.value.status == 404


def ground_truth(test: Callable[[int], bool], library: FakeLibrary = MOVIES) -> set[int]:
    return {index for index in range(library.size) if test(index)}


@pytest.mark.parametrize(
    ("filters", "sent", "expected"),
    [
        (
            [rule("genre", "=", "action", "Comedy")],
            {"Genres": "action|Comedy"},
            lambda index: bool({"Action", "Comedy"} & set(MOVIES.genres(index))),
        ),
        ([rule("genre", "!=", "Action")], {}, lambda index: "Action" not in MOVIES.genres(index)),
        (
            [rule("genre", "=", "Action"), rule("genre", "=", "Comedy")],  # both, not either
            {"Genres": "Action"},
            lambda index: {"Action", "Comedy"} <= set(MOVIES.genres(index)),
        ),
        ([rule("year", "=", "1951", "1960")], {"Years": "1951,1960"}, lambda index: MOVIES.year(index) in (1951, 1960)),
        ([rule("year", ">>=", "1980")], {}, lambda index: (MOVIES.year(index) or 0) >= 1980),
        (
            [rule("decade", "=", "1970")],
            {"Years": ",".join(str(year) for year in range(1970, 1980))},
            lambda index: (MOVIES.year(index) or 0) // 10 == 197,
        ),
        ([rule("year", "!=", "1951")], {}, lambda index: MOVIES.year(index) != 1951),
        (
            [rule("rating", ">>=", "7")],
            {"MinCommunityRating": "7"},
            lambda index: (MOVIES.rating(index) or 0) >= 7,
        ),
        ([rule("rating", "<<=", "5")], {}, lambda index: (rating := MOVIES.rating(index)) is not None and rating <= 5),
        # The fork's untouched range: nothing narrowed (Jellyfin would drop the unrated films).
        ([rule("rating", ">>=", "0"), rule("rating", "<<=", "10")], {}, lambda index: True),
        ([rule("contentRating", "==", "pg")], {}, lambda index: MOVIES.content_rating(index) == "PG"),
        ([rule("actor", "=", "Will Ferrell")], {}, lambda index: index % 7 >= 3),
        (
            [rule("contentRating", "=", "PG", "R")],
            {"OfficialRatings": "PG|R"},
            lambda index: MOVIES.content_rating(index) in ("PG", "R"),
        ),
        ([rule("contentRating", "!=", "PG")], {}, lambda index: MOVIES.content_rating(index) != "PG"),
        ([rule("duration", ">>=", "110")], {}, lambda index: MOVIES.minutes(index) >= 110),
        ([rule("unwatched", "=", "1")], {"IsPlayed": "false"}, lambda index: not ALICE.watched(index)),
        ([rule("unwatched", "=", "0")], {"IsPlayed": "true"}, ALICE.watched),
        ([rule("unwatched", "!=", "true")], {"IsPlayed": "true"}, ALICE.watched),
        ([rule("unwatched", "=", "1", "0")], {}, lambda index: True),
    ],
)
async def test_filters_match_as_jellyfin_would(
    url: str,
    fake: FakeJellyfin,
    opened: OpenProvider,
    filters: list[Filter],
    sent: dict[str, str],
    expected: Callable[[int], bool],
) -> None:
    provider = await opened(url)
    assert indexes(await media(provider, *filters)) == ground_truth(expected)
    [request] = item_requests(fake)
    narrowing = {"Genres", "Years", "OfficialRatings", "MinCommunityRating", "IsPlayed"}
    assert {name: value for name, value in query_of(request).items() if name in narrowing} == sent


async def test_unwatched_is_asked_for_the_configured_user(url: str, fake: FakeJellyfin, opened: OpenProvider) -> None:
    provider = await opened(url, user_id=BOB.id)
    cards = await media(provider, rule("unwatched", "=", "1"), rule("genre", "=", "Drama"))
    assert indexes(cards) == ground_truth(lambda index: not BOB.watched(index) and "Drama" in MOVIES.genres(index))
    [request] = item_requests(fake)
    assert request.path == f"/Users/{BOB.id}/Items"
    assert query_of(request)["IsPlayed"] == "false"


async def test_contradicting_unwatched_rules_match_nothing_without_asking(
    url: str, fake: FakeJellyfin, opened: OpenProvider
) -> None:
    provider = await opened(url)
    assert await media(provider, rule("unwatched", "=", "1"), rule("unwatched", "=", "0")) == []
    assert item_requests(fake) == []


@pytest.mark.parametrize(
    "bad",
    [
        rule("studio", "=", "A24"),
        rule("genre", ">>=", "Action"),
        rule("year", "=", "nineteen"),
        rule("rating", ">>=", "nan"),
        rule("genre", "="),
        rule("unwatched", ">>=", "1"),
        rule("unwatched", "=", "maybe"),
    ],
)
async def test_a_filter_that_cannot_apply_is_a_400(url: str, opened: OpenProvider, bad: Filter) -> None:
    provider = await opened(url)
    with pytest.raises(InvalidFilter) as caught:
        await media(provider, bad)
    assert caught.value.status == 400


# -- caching ------------------------------------------------------------------------------------


async def test_listings_are_cached_and_shared(url: str, fake: FakeJellyfin, opened: OpenProvider) -> None:
    clock = Clock()
    provider = await opened(url, cache_ttl=300.0, clock=clock)
    drama = rule("genre", "=", "Drama")
    # Twenty rooms at once ask one question: one fetch.
    results = await gather(*(media(provider, drama) for _ in range(20)))
    assert len(item_requests(fake)) == 1
    assert all(result == results[0] for result in results)
    clock.now += 299
    await media(provider, drama)
    # Other filters that Jellyfin narrows by are another listing; predicates alone are not.
    await media(provider, rule("genre", "=", "Comedy"))
    await media(provider, drama, rule("year", "!=", "1951"))
    assert len(item_requests(fake)) == 2
    views = len(fake.requests_to(f"/Users/{ALICE.id}/Views"))
    clock.now += 2
    await media(provider, drama)
    assert len(item_requests(fake)) == 3
    assert len(fake.requests_to(f"/Users/{ALICE.id}/Views")) == views + 1


async def gather(*calls: Awaitable[list[Media]]) -> list[list[Media]]:
    results: list[list[Media]] = [[] for _ in calls]

    async def run(index: int, call: Awaitable[list[Media]]) -> None:
        results[index] = await call

    async with anyio.create_task_group() as group:
        for index, call in enumerate(calls):
            group.start_soon(run, index, call)
    return results


async def test_a_caller_that_gives_up_does_not_cancel_the_shared_fetch(
    url: str, fake: FakeJellyfin, opened: OpenProvider
) -> None:
    provider = await opened(url)
    fake.fault = Fault("slow", f"/Users/{ALICE.id}/Items", seconds=0.3)
    with anyio.move_on_after(0.05):
        await media(provider)
    assert len(await media(provider)) == MOVIES.size
    assert len(item_requests(fake)) == 1


# -- trailers -------------------------------------------------------------------------------------


async def test_local_trailers_stream_and_remote_ones_are_links(url: str, opened: OpenProvider) -> None:
    provider = await opened(url)
    cards = {index: card for card in await media(provider) for index in indexes([card])}
    assert cards[0].trailerUrl == f"/api/trailer/jellyfin-1/{MOVIES.item_id(0)}"
    assert cards[0].trailerLink is None  # a local trailer is played here, no need to leave
    assert (cards[1].trailerUrl, cards[1].trailerLink) == (None, "https://www.youtube.com/watch?v=trailer1")
    assert (cards[2].trailerUrl, cards[2].trailerLink) == (None, None)  # a javascript: link is no trailer
    assert (cards[3].trailerUrl, cards[3].trailerLink) == (None, None)


async def test_a_local_trailer_streams_with_byte_ranges(url: str, fake: FakeJellyfin, opened: OpenProvider) -> None:
    provider = await opened(url)
    await media(provider)
    trailer_id = MOVIES.trailer_id(0)
    whole = await provider.trailer(MOVIES.item_id(0), None)
    assert (whole.status, whole.content_type) == (200, TRAILER_TYPE)
    assert whole.headers["content-length"] == str(TRAILER_BYTES)
    assert await poster_body(whole) == trailer_video(trailer_id)
    part = await provider.trailer(MOVIES.item_id(0), "bytes=100-199")
    assert part.status == 206
    assert part.headers["content-range"] == f"bytes 100-199/{TRAILER_BYTES}"
    assert await poster_body(part) == trailer_video(trailer_id)[100:200]
    # The user's list of local trailers is asked once; the file is streamed as it is.
    assert len(fake.requests_to(f"/Users/{ALICE.id}/Items/{MOVIES.item_id(0)}/LocalTrailers")) == 1
    streams = fake.requests_to(f"/Videos/{trailer_id}/stream")
    assert [query_of(seen)["static"] for seen in streams] == ["true", "true"]
    assert streams[-1].headers["range"] == "bytes=100-199"
    with pytest.raises(ProviderError) as beyond:
        await provider.trailer(MOVIES.item_id(0), f"bytes={TRAILER_BYTES}-")
    assert beyond.value.status == 416


async def test_trailers_only_for_listed_items_with_one(url: str, fake: FakeJellyfin, opened: OpenProvider) -> None:
    provider = await opened(url)
    await media(provider)
    fake.received.clear()
    for key in (MOVIES.item_id(1), MOVIES.item_id(4 + 40), "../System/Info", ARCHIVE.item_id(0)):
        with pytest.raises(ProviderError) as caught:
            await provider.trailer(key, None)
        assert caught.value.status == 404
    assert not fake.received


# -- people and what they watched -------------------------------------------------------------


def played_names(library: FakeLibrary, user: Any, kind: str = "movie") -> set[str]:
    """Every id and alias of the items of ``library`` that ``user`` played."""
    found: set[str] = set()
    for index in range(library.size):
        if not user.watched(index):
            continue
        ids = library.provider_ids(index)
        tmdb, tvdb = ids.get("Tmdb"), ids.get("Tvdb")
        if "Imdb" in ids:
            found.add(f"imdb://{ids['Imdb']}")
        if tmdb:
            found.add(f"tmdb://{tmdb}" if kind == "movie" else f"tmdb://tv/{tmdb}")
        if tvdb:
            found.add(f"tvdb://movie/{tvdb}" if kind == "movie" else f"tvdb://{tvdb}")
        # Its own id where it had that before: no IMDb id nor the usual database's of its kind.
        if "Imdb" not in ids and not (tmdb if kind == "movie" else tvdb):
            found.add(f"jellyfin://{SERVER_ID}/{library.item_id(index)}")
    return found


async def test_the_people_are_the_server_s_enabled_users(url: str, opened: OpenProvider) -> None:
    provider = await opened(url)
    people = await provider.people()
    assert people == [
        Person(f"jellyfin:{SERVER_ID}:{BOB.id}", "bob", f"api/avatar/jellyfin-1/{BOB.id}"),
        Person(f"jellyfin:{SERVER_ID}:{ALICE.id}", "alice"),
    ]  # carol is disabled


async def test_avatars_are_proxied_for_the_server_s_users_only(
    url: str, fake: FakeJellyfin, opened: OpenProvider
) -> None:
    provider = await opened(url)
    avatar = await provider.avatar(BOB.id)
    assert avatar.content_type == IMAGE_TYPE
    assert png_size(await poster_body(avatar)) == (64, 64)
    fake.received.clear()
    for key in (ALICE.id, "../System/Info", guid(0xDEAD)):  # no picture; not a user id; no such user
        with pytest.raises(ProviderError) as caught:
            await provider.avatar(key)
        assert caught.value.status == 404
    assert not [seen for seen in fake.received if "/Images/" in seen.path]


async def test_each_user_s_played_items_are_read_per_user(url: str, fake: FakeJellyfin, opened: OpenProvider) -> None:
    provider = await opened(url, library_type_filter=("movie", "show"))
    bob = await provider.watched([f"jellyfin:{SERVER_ID}:{BOB.id}"])
    alice = await provider.watched([f"jellyfin:{SERVER_ID}:{ALICE.id}"])
    # Bob sees "Movies" and "Shows" only.
    assert bob == played_names(MOVIES, BOB) | played_names(SHOWS, BOB, "show")
    assert alice == {
        *played_names(MOVIES, ALICE),
        *played_names(MOVIES_4K, ALICE),
        *played_names(SHOWS, ALICE, "show"),
        *played_names(ARCHIVE, ALICE),
    }
    asked = [seen for seen in item_requests(fake) if query_of(seen).get("IsPlayed") == "true"]
    assert {seen.path for seen in asked} == {f"/Users/{BOB.id}/Items", f"/Users/{ALICE.id}/Items"}
    others = ["plex:1", f"jellyfin:another-server:{BOB.id}", f"jellyfin:{SERVER_ID}:{CAROL.id}"]
    assert await provider.watched(others) == set()  # not this server's, or disabled


async def test_played_state_is_kept_until_refreshed(url: str, fake: FakeJellyfin, opened: OpenProvider) -> None:
    provider = await opened(url)
    person = f"jellyfin:{SERVER_ID}:{BOB.id}"
    first = await provider.watched([person])
    before = len(fake.received)
    assert await provider.watched([person]) == first
    assert len(fake.received) == before
    assert await provider.watched([person], refresh=True) == first
    assert len(fake.received) > before


async def test_a_key_that_may_not_list_users_has_no_people_and_stays_up(opened: OpenProvider) -> None:
    fake = FakeJellyfin()
    with serving(fake) as url:
        provider = await opened(url, user_id=ALICE.id)
        fake.fault = Fault("status", "/Users", status=403)  # /Users and everything under it
        assert await provider.people() == []
        assert await provider.healthy()


# -- posters and links --------------------------------------------------------------------------


async def test_posters_are_streamed(url: str, fake: FakeJellyfin, opened: OpenProvider) -> None:
    provider = await opened(url)
    await media(provider)  # posters are served only for items the server has listed
    fake.poster_gate = gate = threading.Event()
    item = MOVIES.item_id(4)
    with anyio.fail_after(3):
        # The first half arrives while the server still holds the second: nothing waits for the whole.
        poster = await provider.poster(item, 300)
        first = await anext(poster.body)
    assert poster.content_type == IMAGE_TYPE
    assert poster.headers["Cache-Control"].startswith("public, max-age=")
    expected = poster_png(item, 300)
    assert expected.startswith(first)
    assert len(first) < len(expected)
    gate.set()
    rest = b"".join([chunk async for chunk in poster.body])
    assert first + rest == expected
    [request] = fake.requests_to(f"/Items/{item}/Images/Primary")
    assert query_of(request) == {"maxWidth": "300"}


# An item without a poster, one of another library not listed yet, one of no library, not ids.
@pytest.mark.parametrize("key", [MOVIES.item_id(6), ARCHIVE.item_id(1), guid(77, 1), "../System/Info", "a/b", "x" * 65])
async def test_no_poster_is_a_404(url: str, fake: FakeJellyfin, opened: OpenProvider, key: str) -> None:
    provider = await opened(url)
    await media(provider)
    fake.received.clear()
    with pytest.raises(ProviderError) as caught:
        await provider.poster(key, 300)
    assert caught.value.status == 404
    if key != MOVIES.item_id(6):  # a listed item has a link, poster or not
        with pytest.raises(ProviderError) as caught:
            await provider.link(key, "")
        assert caught.value.status == 404
    assert fake.received == []  # known without asking


@pytest.mark.parametrize("link_type", [None, "webLocal", "webExternal", "app"])
async def test_links_open_the_web_ui(
    url: str, opened: OpenProvider, link_type: Literal["app", "webLocal", "webExternal"] | None
) -> None:
    provider = await opened(url, link_type=link_type)
    await media(provider)
    item = MOVIES.item_id(1)
    link = await provider.link(item, "Mozilla/5.0 (iPhone)")
    assert link == f"{url}/web/index.html#!/details?id={item}&serverId={SERVER_ID}"


async def test_links_never_carry_credentials_of_the_url(url: str, opened: OpenProvider) -> None:
    provider = await opened(url.replace("http://", "http://admin:hunter2@") + "/?api_key=abc")
    await media(provider)
    link = await provider.link(MOVIES.item_id(1), "")
    assert link.startswith(f"{url}/web/index.html#!/details?id=")
    assert "hunter2" not in link
    assert "abc" not in link


# -- secrets ------------------------------------------------------------------------------------


async def test_the_api_key_never_leaks(opened: OpenProvider, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # httpx, httpcore, uvicorn and ours
    canary = "canary-4f1d2c3b9a8e7d6c5b4a3f2e1d0c9b8a"
    wrong = "wrong-canary-0a1b2c3d4e5f60718293a4b5c6d7e8f9"
    forms = {
        form for key in (canary, wrong) for form in (key, quote(key, safe=""), base64.b64encode(key.encode()).decode())
    }
    fake = FakeJellyfin(key=canary)
    seen: list[str] = []
    with serving(fake) as url:
        provider = await opened(url, key=canary, retry_delays=(0.02, 0.05))
        cards = await media(provider, rule("genre", "=", "Drama"), rule("unwatched", "=", "1"))
        seen += [card.wire_json() for card in cards]
        seen.append((await provider.filters()).model_dump_json())
        seen += [value.model_dump_json() for value in await provider.filter_values("genre")]
        key = next(card.linkUrl.rpartition("/")[2] for card in cards if card.posterUrl)
        poster = await provider.poster(key, 100)
        seen += [poster.content_type, repr(poster.headers), repr(await poster_body(poster))]
        seen.append(await provider.link(key, ""))
        for failing in (provider.poster(MOVIES.item_id(6), 100), provider.poster("../System/Info", 100)):
            with pytest.raises(ProviderError) as caught:
                await failing
            seen.append(repr(caught.value))
        fake.fault = Fault("malformed", "/Users")
        with pytest.raises(ProviderError) as malformed:
            await media(provider, rule("genre", "=", "Comedy"))
        seen.append(repr(malformed.value))
        rejected = await opened(url, key=wrong, retry_delays=(0.02, 0.05))
        await anyio.sleep(0.1)
        with pytest.raises(ProviderError) as refused:
            await rejected.libraries()
        seen.append(repr(refused.value))
    assert "HTTP Request" in caplog.text  # httpx's own lines were captured
    everything = "\n".join([caplog.text, *seen])
    assert not [form for form in forms if form in everything]
    # On the wire the key went in the Authorization header, never in a URL.
    assert fake.received
    for request in fake.received:
        assert not [form for form in forms if form in request.path + request.query]
        assert not [name for name, value in request.headers.items() if canary in value and name != "authorization"]
        if request.headers.get("authorization"):
            assert request.headers["authorization"].startswith("MediaBrowser ")


async def poster_body(poster: Poster) -> bytes:
    return b"".join([chunk async for chunk in poster.body])


async def test_closing_while_retrying_is_quiet(opened: OpenProvider) -> None:
    sock = bound_socket()
    provider = await opened(socket_url(sock), retry_delays=(0.01, 0.01))
    await anyio.sleep(0.05)
    await provider.close()
    assert not await provider.healthy()
    sock.close()


async def test_requests_go_through_the_given_transport(opened: OpenProvider) -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(401)

    provider = await opened(
        "http://jellyfin.test:8096", transport=httpx.MockTransport(answer), retry_delays=(60.0, 60.0)
    )
    assert not await provider.healthy()
    assert [str(request.url) for request in seen] == ["http://jellyfin.test:8096/System/Info"]
    assert 'DeviceId="client-1"' in seen[0].headers["authorization"]
