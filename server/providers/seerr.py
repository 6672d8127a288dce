"""Overseerr and Jellyseerr ("Seerr"): popular titles the library lacks, and requests for them.

What this relies on (Overseerr's OpenAPI description, ``overseerr-api.yml``, which Jellyseerr
keeps): the API under ``/api/v1``, the API key in the ``X-Api-Key`` header (never in a URL);
``/auth/me`` needs a valid key (the reachability and key check); ``/discover/movies`` and
``/discover/tv`` list popular titles in pages of 20, each with Seerr's ``mediaInfo`` when it knows
the title (``status`` 4 or 5: partially or fully available, i.e. the library has it);
``/genres/movie`` and ``/genres/tv`` name the genre ids; ``POST /request`` asks for a title
(``{mediaType, mediaId}``, and ``seasons`` for a show); ``/movie/{id}`` and ``/tv/{id}`` carry the
title's ``mediaInfo`` with its requests. Posters are TMDB's (``posterPath``), fetched by this server
from ``TMDB_IMAGE_URL`` so that the page's CSP stays as strict as it is.

Seerr offers its lists as libraries (``inLibrary: false``), each a room's choice: a room mixes them
in only when it names them (a room that names no library takes the media servers' libraries, not
Seerr's). Their cards carry ``inLibrary: false`` and the id ``tmdb://<id>`` (films, as Jellyfin
writes TMDB ids) or ``tmdb-tv://<id>`` (shows: TMDB numbers them apart).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

import httpx
import msgspec

from server.config import MediaServer
from storage import Filter

from . import filtering
from .base import Filters, FilterValue, Library, Media, MediaProvider, MediaQuery, Poster, ProviderError
from .filtering import shown
from .remote import KnownCards, TtlCache, chosen, proxied_poster, public_url, transport_problem

log = logging.getLogger(__name__)

TIMEOUT = httpx.Timeout(10.0, connect=5.0)
RETRY_DELAYS = (5.0, 120.0)
# Popular titles to mix in, per list: three of Seerr's pages.
PAGES = 3
POSTER_CACHE_CONTROL = "public, max-age=86400"
# TMDB's poster sizes; a request gets the smallest at least as wide as asked.
POSTER_SIZES = (92, 154, 185, 342, 500, 780)
_POSTER_PATH = re.compile(r"/[A-Za-z0-9_-]{1,100}\.(?:jpg|jpeg|png|webp)")
_KEY = re.compile(r"(movie|tv)-([0-9]{1,12})")
# MediaInfo.status: what the library has (partially or fully available).
_IN_LIBRARY = frozenset({4, 5})
UNWATCHED = "unwatched"

Kind = Literal["movie", "tv"]


@dataclass(frozen=True)
class _List:
    library: Library
    kind: Kind
    path: str  # of its discover endpoint


_LISTS = (
    _List(Library(title="Popular movies", key="movies", type="movie", inLibrary=False), "movie", "/discover/movies"),
    _List(Library(title="Popular shows", key="tv", type="show", inLibrary=False), "tv", "/discover/tv"),
)


# -- what Seerr sends ----------------------------------------------------------------------------


class _Request(msgspec.Struct):
    id: int
    status: int


class _MediaInfo(msgspec.Struct):
    status: int = 1
    requests: list[_Request] | None = None


class _Result(msgspec.Struct):
    id: int
    title: str | None = None  # films
    name: str | None = None  # shows
    overview: str | None = None
    releaseDate: str | None = None
    firstAirDate: str | None = None
    genreIds: list[int] | None = None
    posterPath: str | None = None
    voteAverage: float | None = None
    mediaInfo: _MediaInfo | None = None


class _Page(msgspec.Struct):
    results: list[_Result] = []
    totalPages: int = 1


class _Genre(msgspec.Struct):
    id: int
    name: str


class _Details(msgspec.Struct):
    mediaInfo: _MediaInfo | None = None


class _Created(msgspec.Struct):
    id: int
    status: int
    media: _MediaInfo | None = None


_PAGE = msgspec.json.Decoder(_Page, strict=False)
_GENRES = msgspec.json.Decoder(list[_Genre], strict=False)
_DETAILS = msgspec.json.Decoder(_Details, strict=False)
_CREATED = msgspec.json.Decoder(_Created, strict=False)
_ANY = msgspec.json.Decoder(dict[str, Any])


def request_status(info: _MediaInfo | None, latest: _Request | None = None) -> str:
    """A title's state as protocol.md's RequestStatus names it, from Seerr's mediaInfo (and the
    request just made, when Seerr's answer to it is all there is)."""
    if info is not None and info.status in _IN_LIBRARY:
        return "available"
    requests = [*(info.requests or () if info is not None else ()), *([latest] if latest is not None else [])]
    newest = max(requests, key=lambda request: request.id, default=None)
    processing = info is not None and info.status == 3
    if newest is not None:
        if newest.status == 2:
            return "processing" if processing else "approved"
        return {1: "pending", 3: "declined", 4: "failed", 5: "available"}.get(newest.status, "pending")
    if info is not None and info.status in (2, 3):
        return "pending" if info.status == 2 else "processing"
    return "none"


@dataclass(frozen=True, slots=True)
class _Title:
    """A card and the facts ``filtering`` reads; Seerr's lists say nothing of runtime or credits."""

    card: Media
    key: str  # in its poster and link URLs
    poster_path: str | None
    genres: Sequence[str]
    year: int | None
    rating: float | None
    runtime: int | None = None
    contentRating: str | None = None
    directors: Sequence[str] = ()
    actors: Sequence[str] = ()


class SeerrProvider(MediaProvider):
    def __init__(
        self,
        server: MediaServer,
        *,
        provider_id: str,
        image_url: str,
        transport: httpx.AsyncBaseTransport | None = None,
        cache_ttl: float = 900.0,
        clock: Callable[[], float] = time.monotonic,
        timeout: httpx.Timeout = TIMEOUT,
        retry_delays: tuple[float, float] = RETRY_DELAYS,
    ) -> None:
        self.id = provider_id
        self._server = server
        self._where = public_url(server.url)
        self._image_url = image_url.rstrip("/")
        self._transport = transport
        self._timeout = timeout
        self._retry_delays = retry_delays
        self._client: httpx.AsyncClient | None = None
        self._images: httpx.AsyncClient | None = None
        self._problem: str | None = f"Seerr at {self._where} is not connected yet"
        self._retrying: asyncio.Task[None] | None = None
        self._listings: TtlCache[str, list[_Title]] = TtlCache(cache_ttl, clock)
        self._genres: TtlCache[Kind, dict[int, str]] = TtlCache(cache_ttl, clock)
        self._cards = KnownCards()
        self._poster_paths: dict[str, str] = {}

    # -- connection -------------------------------------------------------------------------------

    async def open(self) -> None:
        self._client = httpx.AsyncClient(
            base_url=self._where + "/api/v1",
            headers={"X-Api-Key": self._server.token.get_secret_value(), "Accept": "application/json"},
            timeout=self._timeout,
            verify=self._server.verify_tls,
            transport=self._transport,
        )
        # Another client for TMDB's images: the API key must never go there.
        self._images = httpx.AsyncClient(base_url=self._image_url, timeout=self._timeout, transport=self._transport)
        if not await self._connect():
            self._retrying = asyncio.create_task(self._retry(), name=f"reconnect {self.id}")

    async def close(self) -> None:
        if self._retrying is not None:
            self._retrying.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._retrying
            self._retrying = None
        for cache in (self._listings, self._genres):
            await cache.close()
        for client in (self._client, self._images):
            if client is not None:
                await client.aclose()
        self._client = self._images = None
        self._problem = f"Seerr at {self._where} is closed"

    async def healthy(self) -> bool:
        return self._problem is None

    async def _connect(self) -> bool:
        try:
            await self._send("GET", "/auth/me")
        except ProviderError as exc:
            if str(exc) != self._problem:
                log.warning("%s; retrying in the background", exc)
            self._problem = str(exc)
            return False
        self._problem = None
        log.info("Seerr at %s is reachable", self._where)
        return True

    async def _retry(self) -> None:
        delay, longest = self._retry_delays
        while not await self._connect():
            await asyncio.sleep(delay)
            delay = min(delay * 2, longest)

    # -- requests ---------------------------------------------------------------------------------

    async def _send(
        self, method: str, path: str, params: Mapping[str, str] | None = None, body: object = None
    ) -> httpx.Response:
        """A successful answer, else a ProviderError that is safe to show anyone."""
        if self._client is None:
            raise ProviderError(f"Seerr at {self._where} is not open", status=503)
        try:
            response = await self._client.request(method, path, params=params, json=body)
        except httpx.TimeoutException as exc:
            raise ProviderError(f"Seerr at {self._where} did not answer {path} in time", status=504) from exc
        except httpx.RequestError as exc:
            raise ProviderError(f"Seerr at {self._where} is unreachable: {transport_problem(exc)}", status=503) from exc
        if response.is_success:
            return response
        if response.status_code == 401:
            raise ProviderError(f"Seerr at {self._where} rejected the API key (HTTP 401); check it", status=503)
        message = _message(response.content)
        raise ProviderError(
            f"Seerr at {self._where} answered {path} with HTTP {response.status_code}{message}",
            status=response.status_code if response.status_code in (403, 404, 409) else 502,
        )

    async def _get(self, path: str, decoder: msgspec.json.Decoder[Any], params: Mapping[str, str] | None = None) -> Any:
        if self._problem is not None:
            raise ProviderError(self._problem + " (retrying in the background)", status=503)
        response = await self._send("GET", path, params)
        try:
            return decoder.decode(response.content)
        except msgspec.DecodeError as exc:
            raise ProviderError(f"Seerr at {self._where} sent an unexpected answer to {path}") from exc

    # -- libraries and media ----------------------------------------------------------------------

    def _lists(self) -> list[_List]:
        return [item for item in _LISTS if item.library.type in self._server.library_type_filter]

    async def libraries(self) -> list[Library]:
        return [item.library for item in self._lists()]

    async def media(self, query: MediaQuery) -> list[Media]:
        if not query.libraries:
            return []  # mixed in only when a room names these lists
        lists = {item.library.key: item for item in self._lists()}
        libraries = chosen([item.library for item in lists.values()], query.libraries, _unknown_list)
        wanted = _predicate(query.filters)
        if wanted is None:
            return []
        listings = await asyncio.gather(
            *(self._listings.get(library.key, partial(self._fetch, lists[library.key])) for library in libraries)
        )
        return [title.card for titles in listings for title in titles if wanted(title)]

    async def _fetch(self, listed: _List) -> list[_Title]:
        genres = await self._genres.get(listed.kind, lambda: self._fetch_genres(listed.kind))
        first: _Page = await self._get(listed.path, _PAGE, {"page": "1"})
        rest = await asyncio.gather(
            *(self._get(listed.path, _PAGE, {"page": str(page)}) for page in range(2, min(first.totalPages, PAGES) + 1))
        )
        titles: dict[str, _Title] = {}
        for page in (first, *rest):
            for result in page.results:
                # The library has it (partially, for a show): not a title it lacks.
                if result.mediaInfo is None or result.mediaInfo.status not in _IN_LIBRARY:
                    title = self._title(result, listed.kind, genres)
                    titles.setdefault(title.card.id, title)
        # Poster paths of cards nobody holds any more are forgotten.
        self._poster_paths = {key: path for key, path in self._poster_paths.items() if self._cards.get(key)}
        for title in titles.values():
            if title.poster_path is not None:
                self._poster_paths[title.key] = title.poster_path
        return list(titles.values())

    async def _fetch_genres(self, kind: Kind) -> dict[int, str]:
        listed: list[_Genre] = await self._get(f"/genres/{kind}", _GENRES)
        return {genre.id: genre.name for genre in listed}

    def _title(self, result: _Result, kind: Kind, genres: Mapping[int, str]) -> _Title:
        key = f"{kind}-{result.id}"
        date = result.releaseDate if kind == "movie" else result.firstAirDate
        year = int(date[:4]) if date and date[:4].isdigit() else None
        rating = result.voteAverage if result.voteAverage is not None and 0 <= result.voteAverage <= 10 else None
        poster = result.posterPath if result.posterPath and _POSTER_PATH.fullmatch(result.posterPath) else None
        names = [genres[number] for number in result.genreIds or () if number in genres]
        card = Media(
            id=f"tmdb://{result.id}" if kind == "movie" else f"tmdb-tv://{result.id}",
            type="movie" if kind == "movie" else "show",
            title=(result.title if kind == "movie" else result.name) or "",
            description=result.overview or "",
            year=year,
            posterUrl=f"/api/poster/{self.id}/{key}" if poster else None,
            linkUrl=f"api/link/{self.id}/{key}",
            genres=names,
            rating=rating or 0.0,
            inLibrary=False,
            added=date or None,
        )
        return _Title(self._cards.kept(key, card), key, poster, names, year, rating)

    # -- filters ----------------------------------------------------------------------------------

    async def filters(self) -> Filters:
        # Rooms filter by the media servers' filters; Seerr's titles follow those it can check.
        return Filters(filters=[], filterTypes={})

    async def filter_values(self, key: str) -> list[FilterValue]:
        raise ProviderError(f"unknown filter {shown(key)}", status=404)

    # -- posters and links ------------------------------------------------------------------------

    def _known(self, key: str) -> tuple[Kind, int]:
        found = _KEY.fullmatch(key)
        if found is None or self._cards.get(key) is None:
            raise ProviderError(f"no Seerr title {shown(key)}", status=404)
        kind: Kind = "movie" if found.group(1) == "movie" else "tv"
        return kind, int(found.group(2))

    async def poster(self, key: str, width: int | None) -> Poster:
        self._known(key)
        path = self._poster_paths.get(key)
        if path is None or self._images is None:
            raise ProviderError(f"no poster for Seerr title {key}", status=404)
        size = next((f"w{size}" for size in POSTER_SIZES if size >= (width or 342)), "original")
        try:
            response = await self._images.send(self._images.build_request("GET", f"/{size}{path}"), stream=True)
        except httpx.HTTPError as exc:
            raise ProviderError(f"TMDB's image server failed on a poster: {type(exc).__name__}") from exc
        if not response.is_success:
            await response.aclose()
            status = 404 if response.status_code == 404 else 502
            raise ProviderError(f"TMDB's image server answered HTTP {response.status_code}", status=status)
        return await proxied_poster(response, POSTER_CACHE_CONTROL)

    async def link(self, key: str, user_agent: str) -> str:
        kind, tmdb_id = self._known(key)
        return f"{self._where}/{kind}/{tmdb_id}"

    # -- requests (server.requests) ---------------------------------------------------------------

    def requestable(self, key: str) -> bool:
        """Whether this is the key of a title this server listed."""
        try:
            self._known(key)
        except ProviderError:
            return False
        return True

    async def status(self, key: str) -> str:
        """The title's RequestStatus, read from Seerr now."""
        kind, tmdb_id = self._known(key)
        details: _Details = await self._get(f"/{kind}/{tmdb_id}", _DETAILS)
        return request_status(details.mediaInfo)

    async def request(self, key: str) -> str:
        """Ask Seerr for the title; its RequestStatus after that (also when it was requested before)."""
        kind, tmdb_id = self._known(key)
        body: dict[str, object] = {"mediaType": kind, "mediaId": tmdb_id}
        if kind == "tv":
            body["seasons"] = "all"
        try:
            response = await self._send("POST", "/request", body=body)
        except ProviderError as exc:
            if exc.status == 409:  # requested already, by someone (here or in Seerr itself)
                return await self.status(key)
            raise
        try:
            created = _CREATED.decode(response.content)
        except msgspec.DecodeError as exc:
            raise ProviderError(f"Seerr at {self._where} sent an unexpected answer to /request") from exc
        log.info("requested %s %d from Seerr at %s", kind, tmdb_id, self._where)
        return request_status(created.media, _Request(created.id, created.status))


def _unknown_list(key: str) -> str:
    return f"Seerr has no list {shown(key)}"


def _message(content: bytes) -> str:
    """Seerr's own words for a refusal (``{"message": ...}``), cut short; empty if there are none."""
    try:
        message = _ANY.decode(content).get("message")
    except msgspec.DecodeError:
        return ""
    return f": {str(message)[:200]}" if isinstance(message, str) and message else ""


def _predicate(rules: Sequence[Filter]) -> filtering.Predicate | None:
    """Whether a title passes the room's filters, as far as Seerr's lists can tell; None when a
    filter is one this source cannot check (a studio, say): then it mixes in nothing."""
    checked: list[Filter] = []
    for rule in rules:
        if rule.key == UNWATCHED:
            # Nobody here has watched what the library lacks: it is unwatched.
            asks_unwatched = any(value.strip().lower() in ("1", "true") for value in rule.value)
            if asks_unwatched != (rule.operator == "="):
                return None
        elif rule.key in filtering.FIELDS:
            checked.append(rule)
        else:
            return None
    return filtering.matcher(checked, "Seerr's lists")
