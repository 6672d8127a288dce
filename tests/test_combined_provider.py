"""Several media sources behind one: qualified libraries, merged cards, routing of posters."""

from __future__ import annotations

import httpx
import pytest
from asgi_lifespan import LifespanManager

from server.app import create_app
from server.config import Settings
from server.providers import MediaQuery, ProviderError
from server.providers.combined import CombinedProvider
from storage import Filter, MemoryStorage
from tests.library import ListProvider, film

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
