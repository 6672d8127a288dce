"""The bundled demo library: public-domain feature films with generated posters, so that MovieMatch
works out of the box with no media server and no internet.

The films live in ``demo_films.json`` next to this module; its ``_note`` says where the data comes
from and that the audience ratings are approximations.
"""

from __future__ import annotations

import importlib.resources
import math
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlencode

from pydantic import BaseModel, ConfigDict, Field, field_validator

from storage import Filter

from . import posters
from .base import (
    FilterInfo,
    Filters,
    FilterType,
    FilterValue,
    Library,
    Media,
    MediaProvider,
    MediaQuery,
    Poster,
    ProviderError,
)

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


FieldType = Literal["tag", "string", "integer"]
Predicate = Callable[[_Film], bool]

_IS = FilterType(key="=", title="is")
_IS_NOT = FilterType(key="!=", title="is not")
# Plex's operator spellings, which MovieMatch v2 clients send.
OPERATORS: dict[FieldType, list[FilterType]] = {
    "tag": [_IS, _IS_NOT],
    "string": [_IS, _IS_NOT],
    "integer": [_IS, _IS_NOT, FilterType(key=">>=", title="is at least"), FilterType(key="<<=", title="is at most")],
}


@dataclass(frozen=True)
class _Words:
    """A filter on names a film has (genres, directors, its content rating), matched case-insensitively."""

    title: str
    type: FieldType
    of: Callable[[_Film], Iterable[str]]

    def predicate(self, key: str, operator: str, values: list[str]) -> Predicate:
        wanted = {value.casefold() for value in values}

        def named(film: _Film) -> bool:
            return any(name.casefold() in wanted for name in self.of(film))

        return named if operator == "=" else lambda film: not named(film)

    def choices(self, films: Iterable[_Film]) -> list[FilterValue]:
        names = sorted({name for film in films for name in self.of(film)}, key=str.casefold)
        return [FilterValue(title=name, value=name) for name in names]


@dataclass(frozen=True)
class _Number:
    """A numeric filter; ``presets`` are offered as values where the data's own values would be noise."""

    title: str
    of: Callable[[_Film], float]
    whole: bool
    label: Callable[[float], str]
    presets: tuple[float, ...] = ()
    type: FieldType = "integer"

    def predicate(self, key: str, operator: str, values: list[str]) -> Predicate:
        numbers = [self._parse(key, value) for value in values]
        if operator == ">>=":
            return lambda film: self.of(film) >= numbers[0]
        if operator == "<<=":
            return lambda film: self.of(film) <= numbers[0]
        if operator == "=":
            return lambda film: self.of(film) in numbers
        return lambda film: self.of(film) not in numbers

    def choices(self, films: Iterable[_Film]) -> list[FilterValue]:
        numbers = self.presets or sorted({self.of(film) for film in films}, reverse=True)
        return [FilterValue(title=self.label(number), value=f"{number:g}") for number in numbers]

    def _parse(self, key: str, value: str) -> float:
        try:
            number = int(value) if self.whole else float(value)
        except ValueError:
            number = math.nan
        if not math.isfinite(number):
            kind = "a whole number" if self.whole else "a number"
            raise ProviderError(f"filter {key!r} needs {kind}, not {_shown(value)}", status=400)
        return number


_FIELDS: dict[str, _Words | _Number] = {
    "genre": _Words("Genre", "tag", lambda film: film.genres),
    "year": _Number("Year", lambda film: film.year, whole=True, label=lambda year: f"{year:g}"),
    "decade": _Number("Decade", lambda film: film.year // 10 * 10, whole=True, label=lambda decade: f"{decade:g}s"),
    "duration": _Number(
        "Duration (minutes)",
        lambda film: film.runtime,
        whole=True,
        label=lambda minutes: f"{minutes:g} min",
        presets=(60, 75, 90, 105, 120, 150),
    ),
    "rating": _Number(
        "Rating",
        lambda film: film.rating,
        whole=False,
        label=lambda rating: f"{rating:g} / 10",
        presets=(5, 6, 6.5, 7, 7.5, 8),
    ),
    "contentRating": _Words(
        "Content Rating", "string", lambda film: () if film.contentRating is None else (film.contentRating,)
    ),
    "director": _Words("Director", "tag", lambda film: film.directors),
}


def _shown(value: str) -> str:
    """A value quoted for an error message, cut short because it goes back to the client."""
    return repr(value if len(value) <= 40 else value[:40] + "…")


def _load_films() -> tuple[_Film, ...]:
    raw = importlib.resources.files("server.providers").joinpath("demo_films.json").read_bytes()
    return _Catalogue.model_validate_json(raw).films


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
        tests = [self._predicate(rule) for rule in query.filters]
        if query.libraries and LIBRARY.key not in query.libraries:
            return []
        return [self._media[slug] for slug, film in self._films.items() if all(test(film) for test in tests)]

    async def filters(self) -> Filters:
        return Filters(
            filters=[
                FilterInfo(title=field.title, key=key, type=field.type, libraryTypes=[LIBRARY.type])
                for key, field in _FIELDS.items()
            ],
            filterTypes=dict(OPERATORS),
        )

    async def filter_values(self, key: str) -> list[FilterValue]:
        field = _FIELDS.get(key)
        if field is None:
            raise ProviderError(f"unknown filter {_shown(key)}", status=404)
        return field.choices(self._films.values())

    async def poster(self, key: str, width: int | None) -> Poster:
        film = self._film(key)
        svg = posters.render_poster(film.id, film.title, year=film.year, genres=film.genres, width=width)
        return Poster(
            content_type=posters.CONTENT_TYPE, body=_once(svg), headers={"Cache-Control": POSTER_CACHE_CONTROL}
        )

    async def link(self, key: str, user_agent: str) -> str:
        # There is no media server to open; an encyclopedia search is the next best thing.
        film = self._film(key)
        return "https://en.wikipedia.org/wiki/Special:Search?" + urlencode({"search": f"{film.title} {film.year} film"})

    def _film(self, key: str) -> _Film:
        film = self._films.get(key)
        if film is None:
            raise ProviderError(f"no demo film {_shown(key)}", status=404)
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

    def _predicate(self, rule: Filter) -> Predicate:
        field = _FIELDS.get(rule.key)
        if field is None:
            known = ", ".join(_FIELDS)
            raise ProviderError(f"unknown filter {_shown(rule.key)}; the demo library filters by {known}", status=400)
        operators = [operator.key for operator in OPERATORS[field.type]]
        if rule.operator not in operators:
            wanted = ", ".join(operators)
            raise ProviderError(
                f"filter {rule.key!r} does not take operator {_shown(rule.operator)}; use one of {wanted}", status=400
            )
        if not rule.value:
            raise ProviderError(f"filter {rule.key!r} needs a value", status=400)
        return field.predicate(rule.key, rule.operator, rule.value)
