"""The bundled demo library: public-domain feature films with generated posters, so that MovieMatch
works out of the box with no media server and no internet.

The films live in ``demo_films.json`` next to this module; its ``_note`` says where the data comes
from and that the audience ratings are approximations.
"""

from __future__ import annotations

import importlib.resources
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from . import filtering
from .base import Filters, FilterValue, Library, Media, MediaProvider, MediaQuery, Poster, ProviderError
from .filtering import shown
from .local import card, generated_poster, search_link

LIBRARY = Library(title="Public Domain Classics", key="demo", type="movie")
# Posters are a pure function of the film and the width, so browsers may keep them.

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


def _load_films() -> tuple[_Film, ...]:
    raw = importlib.resources.files("server.providers").joinpath("demo_films.json").read_bytes()
    return _Catalogue.model_validate_json(raw).films


class DemoProvider(MediaProvider):
    id = "demo"
    name = LIBRARY.title

    def __init__(self) -> None:
        self._films = {film.id: film for film in _load_films()}
        self._media = {film.id: card(self.id, film.id, film) for film in self._films.values()}

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
