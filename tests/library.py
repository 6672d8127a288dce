"""A small, fully known media library for room and protocol tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from server.providers import (
    Filters,
    FilterValue,
    Library,
    Media,
    MediaProvider,
    MediaQuery,
    Poster,
    ProviderError,
)


def film(number: int, **fields: Any) -> Media:
    values: dict[str, Any] = {
        "id": f"test:{number}",
        "title": f"Film {number}",
        "year": 1990 + number,
        "linkUrl": f"api/link/test/{number}",
        "genres": ["Comedy" if number % 2 else "Drama"],
        "rating": float(number % 10),
        **fields,
    }
    return Media(**values)


class ListProvider(MediaProvider):
    """Serves a fixed list; ``genre`` filters work so rooms can differ, ``fail`` simulates an outage."""

    id = "test"

    def __init__(self, items: list[Media] | None = None) -> None:
        self.items = items if items is not None else [film(n) for n in range(1, 11)]
        self.fail = False

    def _check(self) -> None:
        if self.fail:
            raise ProviderError("the test library is down")

    async def healthy(self) -> bool:
        return not self.fail

    async def libraries(self) -> list[Library]:
        self._check()
        return [Library(title="Test", key="test", type="movie")]

    async def media(self, query: MediaQuery) -> list[Media]:
        self._check()
        items = self.items
        for condition in query.filters:
            if condition.key == "genre":
                items = [item for item in items if set(item.genres) & set(condition.value)]
        return list(reversed(items))  # the room must not depend on the provider's order

    async def filters(self) -> Filters:
        self._check()
        return Filters.model_validate(
            {
                "filters": [{"title": "Genre", "key": "genre", "type": "tag", "libraryTypes": ["movie"]}],
                "filterTypes": {"tag": [{"key": "=", "title": "is"}]},
            }
        )

    async def filter_values(self, key: str) -> list[FilterValue]:
        self._check()
        if key != "genre":
            raise ProviderError(f"unknown filter {key}", status=404)
        return [FilterValue(title=genre, value=genre) for genre in ("Comedy", "Drama")]

    async def poster(self, key: str, width: int | None) -> Poster:
        async def body() -> AsyncIterator[bytes]:
            yield b"<svg/>"

        return Poster(content_type="image/svg+xml", body=body())

    async def link(self, key: str, user_agent: str) -> str:
        return f"https://example.invalid/{key}"
