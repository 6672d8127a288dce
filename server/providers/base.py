"""The provider interface and the media shapes of protocol.md."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from storage import Filter


class ProviderError(Exception):
    """A media source failed or refused a request; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, *, status: int = 502) -> None:
        super().__init__(message)
        self.status = status


class InvalidFilter(ProviderError):
    """A room's filter that this source cannot apply: an unknown key, an operator the key does not
    take, or a value it cannot use. The message names it, for the client to show."""

    def __init__(self, message: str) -> None:
        super().__init__(message, status=400)


class _Shape(BaseModel):
    model_config = ConfigDict(frozen=True)


@dataclass(frozen=True, slots=True, weakref_slot=True, kw_only=True)
class Media:
    """One card. ``id`` is unique across providers and stable across restarts.

    A plain slotted dataclass rather than a model: a 100,000-film library is 100,000 of these,
    built from trusted provider code (the media server's answer is checked where it is read), and
    shared by every room on that library, which must neither change them nor copy them.
    """

    id: str
    type: str = "movie"
    title: str
    description: str = ""
    tagline: str | None = None
    year: int | None = None
    posterUrl: str | None = None
    linkUrl: str
    genres: list[str] = field(default_factory=list)
    duration: int = 0  # milliseconds
    rating: float = 0.0  # 0-10
    contentRating: str | None = None
    directors: list[str] = field(default_factory=list)
    actors: list[str] = field(default_factory=list)
    # (ext) False for a title the library lacks (a popular title from Overseerr/Jellyseerr, to
    # request); None, and left out of the wire form, for everything the library has.
    inLibrary: bool | None = None
    # Shows (type "show"): seasons, episodes, the last year (year is the first), the network.
    seasons: int | None = None
    episodes: int | None = None
    endYear: int | None = None
    network: str | None = None
    # The trailer: streamed by this server (a path from the app root, as posterUrl), or a page elsewhere.
    trailerUrl: str | None = None
    trailerLink: str | None = None
    # A film on several servers: each one's name and link (linkUrl is the first one's).
    openIn: list[dict[str, str]] | None = None
    # Not sent: the ISO date the item was added to its library (else released), for the newest/oldest
    # orders; and the other ids the same film goes by (its external ids, the id an older version gave
    # it), by which cards of several servers are merged and watched state and stored rooms find it.
    added: str | None = None
    aliases: tuple[str, ...] = ()
    _wire: dict[str, Any] | None = field(default=None, init=False, repr=False, compare=False)
    _wire_json: str | None = field(default=None, init=False, repr=False, compare=False)

    def wire(self) -> dict[str, Any]:
        """The card as protocol.md's Media (unset optional fields left out), made once per card.

        Every room and frame shares this one dict: never change it.
        """
        wire = self._wire
        if wire is None:
            wire = {name: getattr(self, name) for name in _WIRE_FIELDS}
            wire = {name: value for name, value in wire.items() if value is not None}
            object.__setattr__(self, "_wire", wire)
        return wire

    def wire_json(self) -> str:
        """``wire()`` encoded as JSON, made once per card: frames can be joined from these as they are."""
        encoded = self._wire_json
        if encoded is None:
            encoded = _WIRE_ENCODER.encode(self.wire())
            object.__setattr__(self, "_wire_json", encoded)
        return encoded


_UNSENT = frozenset({"added", "aliases"})
_WIRE_FIELDS = tuple(name for name in Media.__dataclass_fields__ if not name.startswith("_") and name not in _UNSENT)
# The frames' own encoding (server.protocol): compact, UTF-8 as it is.
_WIRE_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


class Library(_Shape):
    title: str
    key: str
    type: str
    # (ext) False for a list of titles the library lacks (Seerr's popular titles); None otherwise.
    inLibrary: bool | None = None


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
class Stream:
    """A body to stream to the browser (a poster, a trailer, an avatar), never buffered whole for
    remote sources; ``status`` is 206 for part of a video asked for by a Range header."""

    content_type: str
    body: AsyncIterator[bytes]
    headers: dict[str, str] = field(default_factory=dict)
    status: int = 200


Poster = Stream


@dataclass(frozen=True, slots=True)
class Person:
    """Someone a media server knows (a Plex account, a Jellyfin user), whose watch state it can read.

    ``id`` is the person's identity (``server.identity``): ``plex:<account id>`` or
    ``jellyfin:<server id>:<user id>``, the same as a sign-in of that person gets. ``avatar`` is a
    URL the page may show (plex.tv's, or a path from the app root for avatars this server proxies).
    """

    id: str
    name: str
    avatar: str | None = None

    def wire(self) -> dict[str, str]:
        return {"id": self.id, "name": self.name} | ({"avatar": self.avatar} if self.avatar else {})


class MediaProvider(ABC):
    """A media source. ``id`` appears in poster and link URLs (``/api/poster/{id}/{key}``); ``name``
    is what people call it (a media server's own name), shown where a film is on several sources."""

    id: str
    name: str = ""

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

    async def trailer(self, key: str, byte_range: str | None) -> Stream | Path:
        """The trailer of the item with this key (``/api/trailer/{id}/{key}``): streamed from the media
        server with the browser's ``Range`` header passed on, or a local file to serve; 404 if none."""
        raise ProviderError(f"no trailer for {key[:40]!r}", status=404)

    async def avatar(self, key: str) -> Stream:
        """The picture of one of ``people()`` that this server proxies (``/api/avatar/{id}/{key}``)."""
        raise ProviderError(f"no avatar {key[:40]!r}", status=404)

    async def people(self) -> list[Person]:
        """The people whose watch state this source can read (none, for sources without users)."""
        return []

    async def watched(self, person_ids: Collection[str], *, refresh: bool = False) -> set[str]:
        """The ids of the items any of these people watched, every id each goes by (``Media.id`` and
        ``Media.aliases``), so ``card.id in watched`` holds for a card of any source. Each person's
        state is read with their own access and kept for a while; ``refresh`` reads it again. Ids of
        people this source does not know are ignored."""
        return set()

    async def healthy(self) -> bool:
        """Whether the source answers now (reported by ``/health``)."""
        return True
