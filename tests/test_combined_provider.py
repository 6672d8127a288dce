"""Several media sources behind one: qualified libraries, merged cards, routing of posters."""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from server.app import create_app
from server.config import MediaServer, Settings
from server.providers import Library, Media, MediaQuery, ProviderError
from server.providers.combined import CombinedProvider
from server.providers.jellyfin import JellyfinProvider
from server.providers.plex import PlexProvider
from storage import Filter, MemoryStorage
from tests.fake_jellyfin import (
    API_KEY,
    SERVER_NAME as JELLYFIN_NAME,
    FakeJellyfin,
    default_libraries as jellyfin_libraries,
)
from tests.fake_plex import PLEX_TOKEN, SERVER_NAME, FakePlex
from tests.fakes import serving
from tests.library import ListProvider, film

JELLYFIN_LIBRARIES = jellyfin_libraries()

pytestmark = pytest.mark.anyio


def two_sources() -> tuple[ListProvider, ListProvider, CombinedProvider]:
    first = ListProvider([film(1), film(2), film(3)])
    second = ListProvider([film(3, title="Film 3 (elsewhere)"), film(4)])
    second.id = "other"
    return first, second, CombinedProvider([first, second])


async def test_libraries_are_qualified_by_their_source() -> None:
    _, _, combined = two_sources()
    assert [library.key for library in await combined.libraries()] == ["test:test", "other:test"]


async def test_media_from_every_source_one_card_per_film() -> None:
    _, _, combined = two_sources()
    items = await combined.media(MediaQuery())
    assert sorted(item.id for item in items) == ["test:1", "test:2", "test:3", "test:4"]
    assert next(item for item in items if item.id == "test:3").title == "Film 3"  # the first source's copy


async def test_a_room_can_draw_from_chosen_libraries() -> None:
    _, _, combined = two_sources()
    items = await combined.media(MediaQuery(libraries=["other:test"]))
    assert sorted(item.id for item in items) == ["test:3", "test:4"]
    with pytest.raises(ProviderError) as unknown:
        await combined.media(MediaQuery(libraries=["nowhere:1"]))
    assert unknown.value.status == 400


async def test_filters_apply_in_every_source() -> None:
    _, _, combined = two_sources()
    comedy = [Filter(key="genre", operator="=", value=["Comedy"])]
    assert sorted(item.id for item in await combined.media(MediaQuery(filters=comedy))) == ["test:1", "test:3"]


async def test_filter_values_skip_a_source_that_is_down() -> None:
    first, second, combined = two_sources()
    second.fail = True
    assert [value.value for value in await combined.filter_values("genre")] == ["Comedy", "Drama"]
    first.fail = True
    with pytest.raises(ProviderError):
        await combined.filter_values("genre")
    second.fail = first.fail = False
    with pytest.raises(ProviderError) as unknown:
        await combined.filter_values("nope")
    assert unknown.value.status == 404


async def test_posters_and_links_go_to_the_source_in_the_url() -> None:
    app = create_app(Settings(), storage=MemoryStorage(), provider=ListProvider())
    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(transport=httpx.ASGITransport(manager.app), base_url="http://test") as client,
    ):
        poster = await client.get("/api/poster/test/1?width=300")
        assert poster.status_code == 200
        assert poster.headers["content-type"].startswith("image/svg+xml")
        link = await client.get("/api/link/test/1")
        assert link.status_code == 302
        assert link.headers["location"] == "https://example.invalid/1"
        assert (await client.get("/api/poster/nowhere/1")).status_code == 404
        health = (await client.get("/health")).json()
        assert health["providers"] == {"test": "ok"}


async def test_a_media_server_down_leaves_the_process_in_service() -> None:
    provider = ListProvider()
    app = create_app(Settings(), storage=MemoryStorage(), provider=provider)
    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(transport=httpx.ASGITransport(manager.app), base_url="http://test") as client,
    ):
        provider.fail = True
        response = await client.get("/health")
        assert response.status_code == 200
        assert response.json() == {"status": "degraded", "storage": "ok", "providers": {"test": "unavailable"}}


# -- one deck across Plex and Jellyfin ----------------------------------------------------------


class TitledProvider(ListProvider):
    """A list provider with its own id, name and kind of library, and a watch state per person."""

    def __init__(
        self,
        provider_id: str,
        name: str,
        items: list[Media],
        watched: dict[str, set[str]] | None = None,
        kind: str = "movie",
    ) -> None:
        super().__init__(items)
        self.id, self.name, self.kind = provider_id, name, kind
        self.seen = watched or {}
        self.refreshed: list[bool] = []

    async def libraries(self) -> list[Library]:
        return [Library(title="Test", key="test", type=self.kind)]

    async def watched(self, person_ids: Collection[str], *, refresh: bool = False) -> set[str]:
        self.refreshed.append(refresh)
        return {
            name
            for card in self.items
            if any(card.id in self.seen.get(person, ()) for person in person_ids)
            for name in (card.id, *card.aliases)
        }


def copy(number: int, provider_id: str, card_id: str, *aliases: str, **fields: Any) -> Media:
    return film(number, id=card_id, aliases=aliases, linkUrl=f"api/link/{provider_id}/{number}", **fields)


async def test_a_title_on_several_servers_is_one_card_named_by_its_best_id() -> None:
    plex = TitledProvider(
        "plex-1",
        "Basement",
        [
            copy(1, "plex-1", "tmdb://278", "plex://movie/a", posterUrl=None),  # no IMDb id known here
            copy(2, "plex-1", "imdb://tt2", "tmdb://2", "plex://movie/b", trailerUrl="/api/trailer/plex-1/2"),
            copy(3, "plex-1", "plex://movie/c"),
        ],
    )
    jellyfin = TitledProvider(
        "jellyfin-1",
        "Living Room",
        [
            copy(11, "jellyfin-1", "imdb://tt1", "tmdb://278", posterUrl="/api/poster/jellyfin-1/11"),
            copy(12, "jellyfin-1", "imdb://tt2", trailerLink="https://www.youtube.com/watch?v=2"),
            copy(14, "jellyfin-1", "imdb://tt4"),
        ],
    )
    combined = CombinedProvider([plex, jellyfin])
    cards = {card.title: card for card in await combined.media(MediaQuery())}
    assert sorted(cards) == ["Film 1", "Film 14", "Film 2", "Film 3"]  # the first server's details
    one = cards["Film 1"]
    assert one.id == "imdb://tt1"  # the other server knows its IMDb id: the better name
    assert set(one.aliases) == {"tmdb://278", "plex://movie/a"}
    assert one.posterUrl == "/api/poster/jellyfin-1/11"  # the first copy that has one
    assert one.linkUrl == "api/link/plex-1/1"
    assert one.openIn == [
        {"title": "Basement", "linkUrl": "api/link/plex-1/1"},
        {"title": "Living Room", "linkUrl": "api/link/jellyfin-1/11"},
    ]
    two = cards["Film 2"]
    assert (two.trailerUrl, two.trailerLink) == ("/api/trailer/plex-1/2", None)  # played here, not a link
    assert cards["Film 3"] is plex.items[2]  # on one server only: its own card, as it was
    assert cards["Film 3"].openIn is None
    assert "openIn" in one.wire()
    assert "openIn" not in cards["Film 3"].wire()
    # The same merged card object for every listing that holds it.
    again = {card.title: card for card in await combined.media(MediaQuery())}
    assert again["Film 1"] is one


async def test_cards_chained_by_aliases_are_one() -> None:
    first = TitledProvider("a", "A", [copy(1, "a", "tmdb://5", "plex://movie/x")])
    second = TitledProvider("b", "B", [copy(2, "b", "imdb://tt5", "tvdb://movie/9")])
    third = TitledProvider("c", "C", [copy(3, "c", "tvdb://movie/9", "tmdb://5")])
    [card] = await CombinedProvider([first, second, third]).media(MediaQuery())
    assert card.id == "imdb://tt5"
    assert [entry["title"] for entry in card.openIn or []] == ["A", "B", "C"]


async def test_a_watched_copy_counts_for_the_merged_card() -> None:
    plex = TitledProvider("plex-1", "P", [copy(1, "plex-1", "tmdb://278")], watched={"plex:7": {"tmdb://278"}})
    jellyfin = TitledProvider("jellyfin-1", "J", [copy(2, "jellyfin-1", "imdb://tt1", "tmdb://278")])
    combined = CombinedProvider([plex, jellyfin])
    [card] = await combined.media(MediaQuery())
    assert card.id == "imdb://tt1"
    # plex:7 watched it on Plex, which knows it by its TMDB id only.
    assert card.id in await combined.watched(["plex:7"], refresh=True)
    assert plex.refreshed == jellyfin.refreshed == [True]
    assert card.id not in await combined.watched(["plex:8"])


async def test_without_chosen_libraries_a_room_takes_films_only() -> None:
    shows = TitledProvider("tv", "TV", [film(1, id="tv:1", type="show")], kind="show")
    movies = TitledProvider("mv", "Movies", [film(2, id="mv:2")])
    combined = CombinedProvider([shows, movies])
    assert [card.id for card in await combined.media(MediaQuery())] == ["mv:2"]
    picked = await combined.media(MediaQuery(libraries=["tv:test", "mv:test"]))
    assert sorted(card.id for card in picked) == ["mv:2", "tv:1"]  # both, when both are picked
    assert [card.id for card in await CombinedProvider([shows]).media(MediaQuery())] == ["tv:1"]  # only shows


@pytest.fixture
async def plex_and_jellyfin() -> AsyncIterator[tuple[PlexProvider, JellyfinProvider]]:
    """A fake Plex and a fake Jellyfin holding the same films ("Movies" of both, IMDb base 1)."""
    with serving(FakePlex()) as plex_url, serving(FakeJellyfin()) as jellyfin_url:
        plex = PlexProvider(
            MediaServer.model_validate({"url": plex_url, "token": PLEX_TOKEN}), provider_id="plex-1", client_id="c"
        )
        jellyfin = JellyfinProvider(
            MediaServer.model_validate({"type": "jellyfin", "url": jellyfin_url, "token": API_KEY}),
            provider_id="jellyfin-1",
            client_id="c",
        )
        await plex.open()
        await jellyfin.open()
        try:
            yield plex, jellyfin
        finally:
            await plex.close()
            await jellyfin.close()


async def test_one_deck_from_plex_and_jellyfin(plex_and_jellyfin: tuple[PlexProvider, JellyfinProvider]) -> None:
    plex, jellyfin = plex_and_jellyfin
    combined = CombinedProvider([plex, jellyfin])
    movies = JELLYFIN_LIBRARIES[0]
    cards = await combined.media(MediaQuery(libraries=["plex-1:1", f"jellyfin-1:{movies.id}"]))
    # 40 films on each; only those without an external id on one side (3, 13 ... on both; 4, 14 ... on
    # Plex, a local guid) stay apart.
    assert len(cards) == 40 + 8
    assert len({card.id for card in cards}) == len(cards)
    by_id = {card.id: card for card in cards}
    both = by_id["imdb://tt1000000"]
    assert both.openIn == [
        {"title": SERVER_NAME, "linkUrl": "api/link/plex-1/100001"},
        {"title": JELLYFIN_NAME, "linkUrl": f"api/link/jellyfin-1/{movies.item_id(0)}"},
    ]
    assert both.linkUrl == "api/link/plex-1/100001"
    assert both.posterUrl == "/api/poster/plex-1/100001"
    assert both.trailerUrl == "/api/trailer/plex-1/100001"  # both have one: the first server's
    # Jellyfin knows only the TMDB id of film 2; Plex also its IMDb id: one card, named by the IMDb id.
    assert by_id["imdb://tt1000002"].openIn is not None
    assert "tmdb://1500002" not in by_id
    # A remote trailer of Jellyfin's where Plex has none.
    assert by_id["imdb://tt1000001"].trailerLink == "https://www.youtube.com/watch?v=trailer1"
    # Posters and links still go to the server each URL names.
    assert (await plex.poster("100001", 100)).content_type == "image/png"
    assert (await jellyfin.link(movies.item_id(0), "")).startswith("http://127.0.0.1:")
