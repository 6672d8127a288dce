"""Films this server describes itself (the demo library, catalogue files): cards, generated
posters and links, shared so both sources look and behave the same."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Protocol
from urllib.parse import urlencode

from . import posters
from .base import Media, Poster
from .filtering import Filterable

# Generated posters depend only on the film and the width: browsers may keep them.
GENERATED_POSTER_CACHE_CONTROL = "public, max-age=86400, immutable"


class LocalFilm(Filterable, Protocol):
    @property
    def title(self) -> str: ...
    @property
    def synopsis(self) -> str: ...
    @property
    def tagline(self) -> str | None: ...


def card(
    provider_id: str, key: str, film: LocalFilm, *, trailer_link: str | None = None, trailer_file: bool = False
) -> Media:
    """The card of a film; ``trailer_file``: this server streams its trailer (``trailer()``)."""
    return Media(
        id=f"{provider_id}:{key}",
        title=film.title,
        description=film.synopsis,
        tagline=film.tagline,
        year=film.year,
        # Under any root path: a poster path from the app root (MovieMatch v2 clients put their root
        # path before it), a link relative to the page (v2 clients use it as the href it is).
        posterUrl=f"/api/poster/{provider_id}/{key}",
        linkUrl=f"api/link/{provider_id}/{key}",
        genres=list(film.genres),
        duration=(film.runtime or 0) * 60_000,
        rating=film.rating or 0.0,
        contentRating=film.contentRating,
        directors=list(film.directors),
        actors=list(film.actors),
        trailerUrl=f"/api/trailer/{provider_id}/{key}" if trailer_file else None,
        trailerLink=None if trailer_file else trailer_link,
        added=None if film.year is None else f"{film.year}-01-01",
    )


def search_link(title: str, year: int | None) -> str:
    """An encyclopedia search for a film: the next best thing where there is no media server to open."""
    words = f"{title} film" if year is None else f"{title} {year} film"
    return "https://en.wikipedia.org/wiki/Special:Search?" + urlencode({"search": words})


def generated_poster(
    key: str,
    title: str,
    *,
    year: int | None,
    genres: Sequence[str],
    width: int | None,
    cache_control: str = GENERATED_POSTER_CACHE_CONTROL,
) -> Poster:
    """A generated SVG poster, for films that have no artwork of their own."""
    svg = posters.render_poster(key, title, year=year, genres=genres, width=width)
    return Poster(content_type=posters.CONTENT_TYPE, body=_once(svg), headers={"Cache-Control": cache_control})


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data
