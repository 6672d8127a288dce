"""The bundled demo library: public-domain feature films with generated posters, so that MovieMatch
works out of the box with no media server and no internet.

The films live in ``demo_films.json`` next to this module; its ``_note`` says where the data comes
from and that the audience ratings are approximations.
"""

from __future__ import annotations

import importlib.resources
from collections.abc import AsyncIterator, Sequence
from typing import Literal
from urllib.parse import urlencode

from pydantic import BaseModel, ConfigDict, Field, field_validator

from . import filtering, posters
from .base import Filters, FilterValue, Library, Media, MediaProvider, MediaQuery, Poster, ProviderError
from .filtering import shown

LIBRARY = Library(title="Public Domain Classics", key="demo", type="movie")
# Posters are a pure function of the film and the width, so browsers may keep them.
POSTER_CACHE_CONTROL = "public, max-age=86400, immutable"

Genre = Literal[
    "Action",
    "Adventure",
    "Animation",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Science Fiction",
    "Thriller",
    "War",
    "Western",
]


class _Film(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$")
    title: str = Field(min_length=1)
    year: int = Field(ge=1888, le=2100)
    runtime: int = Field(gt=0)  # minutes
    genres: tuple[Genre, ...] = Field(min_length=1)
    directors: tuple[str, ...] = Field(min_length=1)
    actors: tuple[str, ...] = ()
    contentRating: str | None = None
    rating: float = Field(ge=0, le=10)
    tagline: str | None = None
    synopsis: str = Field(min_length=1, max_length=400)


class _Catalogue(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: str = Field(alias="_note")
    films: tuple[_Film, ...]

    @field_validator("films")
    @classmethod
    def _unique_ids(cls, films: tuple[_Film, ...]) -> tuple[_Film, ...]:
        seen: set[str] = set()
        for film in films:
            if film.id in seen:
                raise ValueError(f"film id {film.id!r} appears twice")
            seen.add(film.id)
        return films


def search_link(title: str, year: int | None) -> str:
    """An encyclopedia search for a film: the next best thing where there is no media server to open."""
    words = f"{title} film" if year is None else f"{title} {year} film"
    return "https://en.wikipedia.org/wiki/Special:Search?" + urlencode({"search": words})


def _load_films() -> tuple[_Film, ...]:
    raw = importlib.resources.files("server.providers").joinpath("demo_films.json").read_bytes()
    return _Catalogue.model_validate_json(raw).films


def generated_poster(
    key: str,
    title: str,
    *,
    year: int | None,
    genres: Sequence[str],
    width: int | None,
    cache_control: str = POSTER_CACHE_CONTROL,
) -> Poster:
    """A generated SVG poster, for films that have no artwork of their own."""
    svg = posters.render_poster(key, title, year=year, genres=genres, width=width)
    return Poster(content_type=posters.CONTENT_TYPE, body=_once(svg), headers={"Cache-Control": cache_control})


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


class DemoProvider(MediaProvider):
    id = "demo"

    def __init__(self) -> None:
        self._films = {film.id: film for film in _load_films()}
        self._media = {film.id: self._card(film) for film in self._films.values()}

    async def libraries(self) -> list[Library]:
        return [LIBRARY]

    async def media(self, query: MediaQuery) -> list[Media]:
        # Check every filter before looking at libraries, so a bad request fails the same way always.
        wanted = filtering.matcher(query.filters, "the demo library")
        if query.libraries and LIBRARY.key not in query.libraries:
            return []
        return [self._media[slug] for slug, film in self._films.items() if wanted(film)]

    async def filters(self) -> Filters:
        return filtering.filters(LIBRARY.type)

    async def filter_values(self, key: str) -> list[FilterValue]:
        return filtering.filter_values(key, self._films.values())

    async def poster(self, key: str, width: int | None) -> Poster:
        film = self._film(key)
        return generated_poster(film.id, film.title, year=film.year, genres=film.genres, width=width)

    async def link(self, key: str, user_agent: str) -> str:
        film = self._film(key)
        return search_link(film.title, film.year)

    def _film(self, key: str) -> _Film:
        film = self._films.get(key)
        if film is None:
            raise ProviderError(f"no demo film {shown(key)}", status=404)
        return film

    def _card(self, film: _Film) -> Media:
        return Media(
            id=f"{self.id}:{film.id}",
            title=film.title,
            description=film.synopsis,
            tagline=film.tagline,
            year=film.year,
            # Relative to the app root, so they work under any root path.
            posterUrl=f"api/poster/{self.id}/{film.id}",
            linkUrl=f"api/link/{self.id}/{film.id}",
            genres=list(film.genres),
            duration=film.runtime * 60_000,
            rating=film.rating,
            contentRating=film.contentRating,
            directors=list(film.directors),
            actors=list(film.actors),
            added=f"{film.year}-01-01",
        )
