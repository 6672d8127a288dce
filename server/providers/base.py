"""The provider interface and the media shapes of protocol.md."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field

from storage import Filter


class ProviderError(Exception):
    """A media source failed or refused a request; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, *, status: int = 502) -> None:
        super().__init__(message)
        self.status = status


class _Shape(BaseModel):
    model_config = ConfigDict(frozen=True)


class Media(_Shape):
    """One card. ``id`` is unique across providers and stable across restarts."""

    id: str
    type: str = "movie"
    title: str
    description: str = ""
    tagline: str | None = None
    year: int | None = None
    posterUrl: str | None = None
    linkUrl: str
    genres: list[str] = []
    duration: int = 0  # milliseconds
    rating: float = 0.0  # 0-10
    contentRating: str | None = None
    directors: list[str] = []
    actors: list[str] = []
    # ISO date the item was added to its library (else released), for the newest/oldest orders.
    added: str | None = Field(default=None, exclude=True)


class Library(_Shape):
    title: str
    key: str
    type: str


class FilterInfo(_Shape):
    title: str
    key: str
    type: str
    libraryTypes: list[str]


class FilterType(_Shape):
    key: str
    title: str


class Filters(_Shape):
    filters: list[FilterInfo]
    filterTypes: dict[str, list[FilterType]]


class FilterValue(_Shape):
    title: str
    value: str


@dataclass(frozen=True)
class MediaQuery:
    """What a room asks its provider for; the room orders the result itself."""

    filters: list[Filter] = field(default_factory=list)
    libraries: list[str] = field(default_factory=list)


@dataclass
class Poster:
    """A poster body to stream to the browser, never buffered whole for remote sources."""

    content_type: str
    body: AsyncIterator[bytes]
    headers: dict[str, str] = field(default_factory=dict)


class MediaProvider(ABC):
    """A media source. ``id`` appears in poster and link URLs (``/api/poster/{id}/{key}``)."""

    id: str

    async def open(self) -> None:  # noqa: B027 (optional hook)
        """Connect or load; a provider that cannot reach its server logs why and keeps retrying."""

    async def close(self) -> None:  # noqa: B027 (optional hook)
        """Release connections."""

    @abstractmethod
    async def libraries(self) -> list[Library]: ...

    @abstractmethod
    async def media(self, query: MediaQuery) -> list[Media]:
        """Every item matching the query, in any order."""

    @abstractmethod
    async def filters(self) -> Filters: ...

    @abstractmethod
    async def filter_values(self, key: str) -> list[FilterValue]:
        """The values a filter can take; an unknown key is a ``ProviderError`` with status 404."""

    @abstractmethod
    async def poster(self, key: str, width: int | None) -> Poster:
        """The poster of the item with this key; unknown key: ``ProviderError`` status 404."""

    @abstractmethod
    async def link(self, key: str, user_agent: str) -> str:
        """Where ``/api/link/{id}/{key}`` redirects: the item in its media server's app or web UI."""

    async def healthy(self) -> bool:
        """Whether the source answers now (reported by ``/health``)."""
        return True
