"""Plex Media Server as a media source: a small async client over httpx.

The token travels in the ``X-Plex-Token`` header only, never in a URL (URLs end up in logs and
browser histories), and posters are proxied so it never reaches a browser. A server that cannot be
reached, or that rejects the token, is reported in one log line and retried in the background;
meanwhile requests fail fast with a ``ProviderError``. Library listings are cached for a while and
shared, so a hundred rooms on one library cost one fetch.

Listings ask for each item's ``Guid`` list (``includeGuids=1``): its IMDb, TMDB and TVDB ids name
the card, so that the same title on another server is the same card (``ids``). A film's trailer is
its primary extra (``primaryExtraKey``), streamed like posters. The server's people and what each of
them watched come from plex.tv and from the server asked with each person's own token
(``plex_home``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Generic, TypeVar
from urllib.parse import quote

import httpx
import msgspec
from pydantic import BaseModel, ConfigDict

from server import __version__
from server.config import MediaServer
from storage import Filter

from . import filtering
from .base import (
    FilterInfo,
    Filters,
    FilterType,
    FilterValue,
    InvalidFilter,
    Library,
    Media,
    MediaProvider,
    MediaQuery,
    Person,
    Poster,
    ProviderError,
    Stream,
)
from .filtering import shown
from .ids import card_ids, plex_external_ids
from .plex_home import PlexHome, Viewer
from .remote import (
    KnownCards,
    TtlCache,
    chosen,
    collector_paused,
    proxied_poster,
    proxied_video,
    public_url,
    transport_problem,
)

logger = logging.getLogger(__name__)

PRODUCT = "MovieMatch"
TIMEOUT = httpx.Timeout(15.0, connect=5.0)
RETRY_DELAYS = (5.0, 60.0)  # first and longest wait between attempts to reach an unreachable server
PAGE_SIZE = 500
# Pages of one listing fetched at once: parsing one overlaps fetching the next, without crowding the server.
PAGE_CONCURRENCY = 4
POSTER_WIDTH = 600
POSTER_WIDTHS = (50, 1000)
POSTER_CACHE_CONTROL = "public, max-age=86400"
ACTORS_SHOWN = 5
# Plex's own certificates name *.plex.direct hosts, so they fail verification on an IP address.
CERTIFICATE_HINT = "for a plex.direct certificate reached by IP address, set verify_tls: false"

# Plex's metadata type numbers (OpenAPI description, "List of Metadata Types").
TYPE_NUMBERS = {"movie": "1", "show": "2"}
# A filter is sent as the query parameter key + operator minus its final "=": genre!=12 is ("genre!", "12").
OPERATORS = frozenset({"=", "!=", "==", "!==", "<=", ">=", ">>=", "<<="})
_FIELD_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.]{0,63}")
_RESERVED_FIELDS = frozenset({"type"})  # set by the provider itself
_RATING_KEY = re.compile(r"[0-9]{1,20}")
_METADATA_PATH = re.compile(r"/library/metadata/[0-9]{1,20}")
_MOBILE = re.compile(r"iPhone|iPad|iPod|Android", re.IGNORECASE)

UNWATCHED = "unwatched"
# The fork's wizard sent true/false for unwatched; Plex wants 1/0.
_BOOLEAN_WORDS = {"true": "1", "false": "0"}
_IS = FilterType(key="=", title="is")
_IS_NOT = FilterType(key="!=", title="is not")
_YES_NO = [FilterValue(title="Yes", value="1"), FilterValue(title="No", value="0")]

Params = Sequence[tuple[str, str]]
Item = TypeVar("Item")


def plex_headers(token: str, client_id: str) -> dict[str, str]:
    """What Plex wants on every request, plex.tv included."""
    return {
        "Accept": "application/json",
        "X-Plex-Token": token,
        "X-Plex-Client-Identifier": client_id,
        "X-Plex-Product": PRODUCT,
        "X-Plex-Version": __version__,
    }


def plex_query(filters: Sequence[Filter]) -> tuple[tuple[str, str], ...]:
    """A room's filters as Plex media-query parameters, as MovieMatch v2 sent them.

    Several values mean "any of" (Plex reads ``genre=12,7`` as an OR); several filters all apply.
    The result is sorted, so two rooms with the same filters in another order share a listing.
    """
    pairs: list[tuple[str, str]] = []
    for rule in filters:
        if not _FIELD_NAME.fullmatch(rule.key) or rule.key in _RESERVED_FIELDS:
            raise InvalidFilter(f"{shown(rule.key)} is not a Plex filter")
        if rule.operator not in OPERATORS:
            wanted = ", ".join(sorted(OPERATORS))
            raise InvalidFilter(
                f"filter {rule.key!r} does not take operator {shown(rule.operator)}; use one of {wanted}"
            )
        values = [value.strip() for value in rule.value if value.strip()]
        if not values:
            raise InvalidFilter(f"filter {rule.key!r} needs a value")
        if filtering.unbounded(rule):
            continue
        if rule.key == UNWATCHED:
            values = [_BOOLEAN_WORDS.get(value.lower(), value) for value in values]
        pairs.append((rule.key + rule.operator[:-1], ",".join(values)))
    return tuple(sorted(pairs))


# -- Plex's answers, as far as MovieMatch reads them --------------------------------------------------


class _Shape(BaseModel):
    # Plex adds fields with every release and is loose about numbers versus strings.
    model_config = ConfigDict(extra="ignore", coerce_numbers_to_str=True)


class _Identity(_Shape):
    machineIdentifier: str


class _Root(_Shape):
    """The server's root (``/``), which needs the token: its name as its owner gave it."""

    friendlyName: str = ""


class _Section(_Shape):
    key: str
    title: str
    type: str


class _Sections(_Shape):
    Directory: list[_Section] = []


# Item listings are the one big answer (some 90 MB of JSON for 100,000 films): they are decoded by
# msgspec straight into these structs, which checks the types in C and skips every field not named
# here (Media, Writer, Country ...), instead of a pydantic model per item, genre and actor. Untracked
# by the garbage collector (they hold no cycles), they cost it nothing while a listing builds up.
# Lax (strict=False): Plex writes numbers as strings now and then.


class _Tag(msgspec.Struct, gc=False):
    tag: str


class _Guid(msgspec.Struct, gc=False):
    id: str  # imdb://tt0111161, tmdb://278, tvdb://81189


class _Item(msgspec.Struct, gc=False):
    ratingKey: str | int
    title: str
    guid: str | None = None
    type: str | None = None
    Guid: list[_Guid] = []
    primaryExtraKey: str | None = None  # the trailer's metadata path, when the item has one
    childCount: int | None = None  # a show's seasons
    leafCount: int | None = None  # a show's episodes
    network: str | None = None
    studio: str | None = None
    summary: str | None = None
    tagline: str | None = None
    year: int | None = None
    thumb: str | None = None
    duration: int | None = None
    rating: float | None = None
    audienceRating: float | None = None
    contentRating: str | None = None
    addedAt: int | None = None
    originallyAvailableAt: str | None = None
    Genre: list[_Tag] = []
    Director: list[_Tag] = []
    Role: list[_Tag] = []


class _Page(msgspec.Struct, gc=False):
    Metadata: list[_Item] = []
    totalSize: int | None = None


class _Listing(msgspec.Struct, gc=False):
    MediaContainer: _Page


_LISTING = msgspec.json.Decoder(_Listing, strict=False)


class _Part(msgspec.Struct, gc=False):
    key: str


class _MediaFile(msgspec.Struct, gc=False):
    Part: list[_Part] = []


class _Details(msgspec.Struct, gc=False):
    """An item of ``/library/metadata/{ratingKey}``: the film (its trailer's key) or the trailer (its file)."""

    primaryExtraKey: str | None = None
    Media: list[_MediaFile] = []


class _DetailsPage(msgspec.Struct, gc=False):
    Metadata: list[_Details] = []


class _DetailsAnswer(msgspec.Struct, gc=False):
    MediaContainer: _DetailsPage


_DETAILS = msgspec.json.Decoder(_DetailsAnswer, strict=False)


class _PlexFilter(_Shape):
    filter: str
    filterType: str
    key: str
    title: str


class _PlexField(_Shape):
    key: str
    type: str


class _MetaType(_Shape):
    type: str
    Filter: list[_PlexFilter] = []
    Field: list[_PlexField] = []


class _FieldType(_Shape):
    type: str
    Operator: list[FilterType] = []


class _Meta(_Shape):
    Type: list[_MetaType] = []
    FieldType: list[_FieldType] = []


class _WithMeta(_Shape):
    Meta: _Meta = _Meta()


class _Choice(_Shape):
    key: str | None = None
    title: str


class _Choices(_Shape):
    Directory: list[_Choice] = []


Shape = TypeVar("Shape", bound=_Shape)


class _Container(_Shape, Generic[Shape]):
    """A whole answer: Plex puts everything inside ``MediaContainer``."""

    MediaContainer: Shape


@dataclass(frozen=True)
class _LibraryFilter:
    info: FilterInfo
    path: str  # where Plex lists the filter's values


@dataclass(frozen=True)
class _LibraryFilters:
    filters: list[_LibraryFilter]
    operators: dict[str, list[FilterType]]


# -- the provider ------------------------------------------------------------------------------------


def _added(item: _Item) -> str | None:
    if item.addedAt is not None:
        try:
            return _day(item.addedAt // 86_400)
        except (OverflowError, OSError, ValueError):
            pass
    return item.originallyAvailableAt


@functools.lru_cache(maxsize=4096)
def _day(days: int) -> str:
    """The ISO date of a day since 1970: a library's items are added a few days at a time."""
    return datetime.fromtimestamp(days * 86_400, UTC).date().isoformat()


class PlexProvider(MediaProvider):
    def __init__(
        self,
        server: MediaServer,
        *,
        provider_id: str,
        client_id: str,
        transport: httpx.AsyncBaseTransport | None = None,
        cache_ttl: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        timeout: httpx.Timeout = TIMEOUT,
        retry_delays: tuple[float, float] = RETRY_DELAYS,
        plex_tv_url: str | None = None,
    ) -> None:
        """``plex_tv_url``: where to ask who the server's people are (none: it has none)."""
        self.id = provider_id
        self.name = "Plex"  # until the server tells its own
        self._server = server
        self._client_id = client_id
        self._transport = transport
        self._timeout = timeout
        self._retry_delays = retry_delays
        self._base_url = public_url(server.url)
        self._name = f"Plex server {self._base_url}"
        self._client: httpx.AsyncClient | None = None
        self._machine_identifier: str | None = None
        self._problem: str | None = f"{self._name} is not connected yet"
        self._connecting: asyncio.Task[None] | None = None
        self._probed = asyncio.Event()  # set once the first attempt to reach the server has ended
        self._sections: TtlCache[str, list[Library]] = TtlCache(cache_ttl, clock)
        self._library_filters: TtlCache[str, _LibraryFilters] = TtlCache(cache_ttl, clock)
        self._choices: TtlCache[str, list[FilterValue]] = TtlCache(cache_ttl, clock)
        self._listings: TtlCache[tuple[str, tuple[tuple[str, str], ...]], list[Media]] = TtlCache(cache_ttl, clock)
        self._trailer_parts: TtlCache[str, str] = TtlCache(cache_ttl, clock)
        # What each person watched (every id and alias), by person id.
        self._watched: TtlCache[str, frozenset[str]] = TtlCache(cache_ttl, clock)
        self._cards = KnownCards()
        self._plex_tv_url = plex_tv_url
        self._cache_ttl, self._clock = cache_ttl, clock
        self._home: PlexHome | None = None

    @property
    def machine_identifier(self) -> str | None:
        """The server's id, known once it has answered; plex.tv lists it for the users it is shared with."""
        return self._machine_identifier

    async def open(self) -> None:
        self._client = httpx.AsyncClient(
            base_url=self._base_url,
            headers=plex_headers(self._server.token.get_secret_value(), self._client_id),
            timeout=self._timeout,
            verify=self._server.verify_tls,
            transport=self._transport,
        )
        if self._plex_tv_url is not None:
            self._home = PlexHome(
                self._plex_tv_url,
                owner_token=self._server.token.get_secret_value(),
                headers=lambda token: plex_headers(token, self._client_id),
                transport=self._transport,
                timeout=self._timeout,
                ttl=self._cache_ttl,
                clock=self._clock,
            )
        self._connecting = asyncio.create_task(self._connect())
        # A server that answers is ready when start-up ends; a slow one is left to the background.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._probed.wait(), self._timeout.connect)

    async def close(self) -> None:
        connecting, self._connecting = self._connecting, None
        if connecting is not None:
            connecting.cancel()
            await asyncio.wait([connecting])
        caches = (self._sections, self._library_filters, self._choices, self._listings, self._trailer_parts)
        for cache in (*caches, self._watched):
            await cache.close()
        if self._home is not None:
            home, self._home = self._home, None
            await home.close()
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()
        self._problem = f"{self._name} is closed"

    async def healthy(self) -> bool:
        return self._problem is None

    # -- reachability ---------------------------------------------------------------------------

    async def _connect(self) -> None:
        delay, longest = self._retry_delays
        while not await self._probe():
            await asyncio.sleep(delay)
            delay = min(delay * 2, longest)

    async def _probe(self) -> bool:
        """Whether the server answers and accepts the token."""
        try:
            identity = await self._fetch("/identity", _Container[_Identity])
            # Plex answers /identity without a token; this request is the one that checks it.
            root = await self._fetch("/", _Container[_Root])
        except ProviderError as exc:
            self._mark_down(str(exc))
            return False
        finally:
            self._probed.set()
        self._machine_identifier = identity.machineIdentifier
        self.name = root.friendlyName or self.name
        self._problem = None
        logger.info("%s is reachable (machine identifier %s)", self._name, identity.machineIdentifier)
        return True

    def _mark_down(self, problem: str) -> None:
        if problem != self._problem:
            logger.warning("%s; retrying in the background", problem)
        self._problem = problem
        if self._client is not None and (self._connecting is None or self._connecting.done()):
            self._connecting = asyncio.create_task(self._connect())

    def _check_up(self) -> None:
        if self._problem is not None:
            retrying = " (retrying in the background)" if self._client is not None else ""
            raise ProviderError(self._problem + retrying, status=503)

    # -- requests ---------------------------------------------------------------------------------

    async def _send(
        self,
        path: str,
        params: Params = (),
        headers: Mapping[str, str] | None = None,
        *,
        stream: bool = False,
        token: str | None = None,
    ) -> httpx.Response:
        """One GET of a server path; every failure is a ProviderError, and one that means the server is
        gone (unreachable, token rejected) also starts the background retries.

        ``token``: a person's own access token instead of the configured one (their watch state); its
        refusal is theirs (a 403), not the server's."""
        if self._client is None:
            raise ProviderError(f"{self._name} is not open", status=503)
        url = httpx.URL(path)
        if url.scheme or url.host or not url.path.startswith("/"):
            # Paths come from Plex's own answers (filter keys): the token goes to the configured server only.
            raise ProviderError(f"{self._name} named a path outside itself", status=502)
        if token is not None:
            headers = {**(headers or {}), "X-Plex-Token": token}
        request = self._client.build_request(
            "GET", url.path, params=[*url.params.multi_items(), *params], headers=headers
        )
        try:
            response = await self._client.send(request, stream=stream)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            problem = f"{self._name} is unreachable: {transport_problem(exc, certificate_hint=CERTIFICATE_HINT)}"
            self._mark_down(problem)
            raise ProviderError(problem, status=503) from exc
        except httpx.TimeoutException as exc:
            raise ProviderError(f"{self._name} did not answer {url.path} in time", status=504) from exc
        except httpx.HTTPError as exc:
            raise ProviderError(f"{self._name} failed on {url.path}: {exc or type(exc).__name__}") from exc
        if response.is_success:
            return response
        await response.aclose()
        if response.status_code in (401, 403) and token is not None:
            raise ProviderError(f"{self._name} refused a user's access to {url.path}", status=403)
        if response.status_code == 401:
            problem = f"{self._name} rejected the token (401 Unauthorized); check the configured token"
            self._mark_down(problem)
            raise ProviderError(problem, status=503)
        if response.status_code in (404, 416):  # 416: a Range beyond the end of a trailer
            raise ProviderError(
                f"{self._name} has no {url.path} (status {response.status_code})", status=response.status_code
            )
        raise ProviderError(f"{self._name} answered {url.path} with status {response.status_code}")

    async def _fetch(
        self, path: str, shape: type[_Container[Shape]], params: Params = (), headers: Mapping[str, str] | None = None
    ) -> Shape:
        response = await self._send(path, params, headers)
        try:
            # Parsed straight from the bytes: a page of 500 films costs half as much as via json.loads.
            return shape.model_validate_json(response.content).MediaContainer
        except ValueError as exc:  # not JSON, or not the expected shape (a ValidationError is a ValueError)
            raise ProviderError(f"{self._name} sent an unexpected answer to {httpx.URL(path).path}") from exc

    async def _get(
        self, path: str, shape: type[_Container[Shape]], params: Params = (), headers: Mapping[str, str] | None = None
    ) -> Shape:
        self._check_up()
        return await self._fetch(path, shape, params, headers)

    # -- libraries and media ------------------------------------------------------------------------

    async def libraries(self) -> list[Library]:
        return list(await self._sections.get("", self._fetch_libraries))

    async def _fetch_libraries(self) -> list[Library]:
        sections = await self._get("/library/sections", _Container[_Sections])
        titles = self._server.library_title_filter
        return [
            Library(title=section.title, key=section.key, type=section.type)
            for section in sections.Directory
            if section.type in self._server.library_type_filter and (not titles or section.title in titles)
        ]

    async def _chosen(self, keys: Sequence[str]) -> list[Library]:
        def unknown(key: str) -> str:
            return f"{self._name} has no library {key[:40]!r} that MovieMatch may use"

        return chosen(await self.libraries(), keys, unknown)

    async def media(self, query: MediaQuery) -> list[Media]:
        plex_query(query.filters)  # every rule checked before anything is asked
        libraries = await self._chosen(query.libraries)
        listings = await asyncio.gather(*(self._library_media(library, query.filters) for library in libraries))
        # One film in two libraries (an HD and a 4K one) is one card.
        unique: dict[str, Media] = {}
        for listing in listings:
            for item in listing:
                unique.setdefault(item.id, item)
        return list(unique.values())

    async def _library_media(self, library: Library, filters: Sequence[Filter]) -> list[Media]:
        rules = await self._by_tag_id(library, filters)
        if rules is None:
            return []
        params = plex_query(rules)
        return await self._listings.get((library.key, params), partial(self._fetch_listing, library, params))

    async def _by_tag_id(self, library: Library, filters: Sequence[Filter]) -> list[Filter] | None:
        """The rules with tag names replaced by the library's tag ids; None if no item can match.

        Plex's tag filters (genre, director ...) take tag ids, which v2 clients send; the fork's
        wizard sends genre names. A name is looked up among the library's values ignoring case; one
        the library does not have matches nothing here.
        """
        if all(value.strip().isdigit() for rule in filters for value in rule.value):
            return list(filters)  # ids only, or no rules: no need to ask for the library's filters
        tags = {
            library_filter.info.key: library_filter.path
            for library_filter in (
                await self._library_filters.get(library.key, partial(self._fetch_library_filters, library))
            ).filters
            if library_filter.info.type == "tag"
        }
        rules: list[Filter] = []
        for rule in filters:
            path = tags.get(rule.key)
            if path is None or all(value.strip().isdigit() for value in rule.value):
                rules.append(rule)
                continue
            choices = await self._choices.get(path, partial(self._fetch_choices, path))
            ids = {choice.title.casefold(): choice.value for choice in choices}
            values = [value if value.strip().isdigit() else ids.get(value.strip().casefold()) for value in rule.value]
            known = [value for value in values if value is not None]
            if known:
                rules.append(rule.model_copy(update={"value": known}))
            elif rule.operator == "=":
                return None  # none of the names is in this library
        return rules

    async def _fetch_listing(self, library: Library, params: Params) -> list[Media]:
        return await self._items(library, params, self._card)

    async def _items(
        self, library: Library, params: Params, convert: Callable[[_Item], Item], token: str | None = None
    ) -> list[Item]:
        """Every item of a library that passes ``params``, in pages, each converted as it arrives;
        ``token``: as a person other than the owner sees them (their watch state)."""
        path = f"/library/sections/{quote(library.key, safe='')}/all"
        # includeGuids: the item's IMDb, TMDB and TVDB ids, which name it on every server.
        selection = [("type", TYPE_NUMBERS[library.type]), ("includeGuids", "1"), *params]

        async def page(start: int, size: int) -> tuple[list[Item], int, int | None]:
            paging = {"X-Plex-Container-Start": str(start), "X-Plex-Container-Size": str(size)}
            self._check_up()
            response = await self._send(path, selection, paging, token=token)
            with collector_paused():
                try:
                    listed = _LISTING.decode(response.content).MediaContainer
                except msgspec.DecodeError as exc:  # not JSON, or not the expected shape
                    raise ProviderError(f"{self._name} sent an unexpected answer to {path}") from exc
                return [convert(item) for item in listed.Metadata], len(listed.Metadata), listed.totalSize

        items, step, total = await page(0, PAGE_SIZE)
        # Without totalSize the server did not page: it sent everything. Otherwise follow the page
        # size it really used, in case it caps the size asked for.
        if total is None or not step or step >= total:
            return items
        gate = asyncio.Semaphore(PAGE_CONCURRENCY)

        async def rest(start: int) -> list[Item]:
            async with gate:
                return (await page(start, step))[0]

        for more in await asyncio.gather(*(rest(start) for start in range(step, total, step))):
            items.extend(more)
        return items

    def _ids(self, item: _Item) -> tuple[str, tuple[str, ...]]:
        """The card id and aliases of an item (``ids``)."""
        kind = "show" if item.type == "show" else "movie"
        # guid is the same on every Plex server (plex://movie/...); local:// guids of unmatched items are not.
        guid = item.guid if item.guid and not item.guid.startswith("local://") else None
        external = plex_external_ids(kind, (tag.id for tag in item.Guid), guid)
        return card_ids(external, guid or f"plex://{self._machine_identifier}/{item.ratingKey}")

    def _card(self, item: _Item) -> Media:
        rating_key = str(item.ratingKey)
        kind = "show" if item.type == "show" else "movie"
        card_id, aliases = self._ids(item)
        rating = item.audienceRating if item.audienceRating is not None else item.rating
        show = kind == "show"
        card = Media(
            id=card_id,
            type=kind,
            title=item.title,
            description=item.summary or "",
            tagline=item.tagline,
            year=item.year,
            posterUrl=f"/api/poster/{self.id}/{rating_key}" if item.thumb else None,
            linkUrl=f"api/link/{self.id}/{rating_key}",
            genres=[tag.tag for tag in item.Genre],
            duration=item.duration or 0,
            rating=rating or 0.0,
            contentRating=item.contentRating,
            directors=[tag.tag for tag in item.Director],
            actors=[tag.tag for tag in item.Role[:ACTORS_SHOWN]],
            seasons=item.childCount if show else None,
            episodes=item.leafCount if show else None,
            # Plex's TV agents name the network as the show's studio; newer servers also say network.
            network=(item.network or item.studio) if show else None,
            trailerUrl=f"/api/trailer/{self.id}/{rating_key}" if item.primaryExtraKey else None,
            added=_added(item),
            aliases=aliases,
        )
        return self._cards.kept(rating_key, card)

    # -- filters ----------------------------------------------------------------------------------

    async def _all_library_filters(self) -> list[_LibraryFilters]:
        libraries = await self.libraries()
        return list(
            await asyncio.gather(
                *(
                    self._library_filters.get(library.key, partial(self._fetch_library_filters, library))
                    for library in libraries
                )
            )
        )

    async def _fetch_library_filters(self, library: Library) -> _LibraryFilters:
        path = f"/library/sections/{quote(library.key, safe='')}/all"
        params = [("type", TYPE_NUMBERS[library.type]), ("includeMeta", "1")]
        container = await self._get(
            path, _Container[_WithMeta], params, {"X-Plex-Container-Start": "0", "X-Plex-Container-Size": "0"}
        )
        filters = [
            _LibraryFilter(
                # The Field's type (tag, integer ...) names the operators; filterType is coarser.
                FilterInfo(
                    title=plex_filter.title,
                    key=plex_filter.filter,
                    type=next((f.type for f in meta.Field if f.key == plex_filter.filter), plex_filter.filterType),
                    libraryTypes=[library.type],
                ),
                plex_filter.key,
            )
            for meta in container.Meta.Type
            if meta.type == library.type
            for plex_filter in meta.Filter
        ]
        operators = {field_type.type: field_type.Operator for field_type in container.Meta.FieldType}
        return _LibraryFilters(filters, operators)

    async def filters(self) -> Filters:
        every = await self._all_library_filters()
        infos: dict[str, FilterInfo] = {}
        operators: dict[str, list[FilterType]] = {}
        for library_filters in every:
            for library_filter in library_filters.filters:
                info = library_filter.info
                known = infos.get(info.key)
                if known is not None:
                    types = sorted({*known.libraryTypes, *info.libraryTypes})
                    info = known.model_copy(update={"libraryTypes": types})
                infos[info.key] = info
            for type_name, listed in library_filters.operators.items():
                merged = operators.setdefault(type_name, [])
                merged.extend(operator for operator in listed if operator not in merged)
        library_types = sorted({library.type for library in await self.libraries()})
        infos.setdefault(
            UNWATCHED, FilterInfo(title="Unwatched", key=UNWATCHED, type="boolean", libraryTypes=library_types)
        )
        operators.setdefault("boolean", [_IS, _IS_NOT])
        return Filters(filters=list(infos.values()), filterTypes=operators)

    async def filter_values(self, key: str) -> list[FilterValue]:
        found = [
            library_filter
            for library_filters in await self._all_library_filters()
            for library_filter in library_filters.filters
            if library_filter.info.key == key
        ]
        if key == UNWATCHED or any(library_filter.info.type == "boolean" for library_filter in found):
            return list(_YES_NO)
        if not found:
            raise ProviderError(f"unknown filter {key[:40]!r}", status=404)
        listings = await asyncio.gather(
            *(self._choices.get(f.path, partial(self._fetch_choices, f.path)) for f in found)
        )
        values: dict[str, FilterValue] = {}
        for listing in listings:
            for value in listing:
                values.setdefault(value.value, value)
        return list(values.values())

    async def _fetch_choices(self, path: str) -> list[FilterValue]:
        choices = await self._get(path, _Container[_Choices])
        # Tag filters (genre, director) take Plex's tag id, which is the key; the others take the key as is.
        return [FilterValue(title=choice.title, value=choice.key or choice.title) for choice in choices.Directory]

    # -- posters and links --------------------------------------------------------------------------

    def _known(self, key: str) -> Media:
        """The card of an item this server listed; anything else is a 404 that Plex never hears of."""
        card = self._cards.get(key)
        # Plex item keys are numbers: anything else must not reach a Plex URL even if it was listed.
        if card is None or not _RATING_KEY.fullmatch(key):
            raise ProviderError(f"no Plex item {key[:40]!r}", status=404)
        return card

    async def poster(self, key: str, width: int | None) -> Poster:
        if self._known(key).posterUrl is None:
            raise ProviderError(f"no poster for Plex item {key}", status=404)
        smallest, largest = POSTER_WIDTHS
        width = min(max(width or POSTER_WIDTH, smallest), largest)
        self._check_up()
        params = [
            # The server resolves this path itself, so it never carries the base URL's path.
            ("url", f"/library/metadata/{key}/thumb"),
            ("width", str(width)),
            ("height", str(width * 3 // 2)),
            ("minSize", "1"),
            ("upscale", "1"),
        ]
        try:
            response = await self._send("/photo/:/transcode", params, stream=True)
        except ProviderError as exc:
            if exc.status == 404:
                raise ProviderError(f"no poster for Plex item {key}", status=404) from exc
            raise
        return await proxied_poster(response, POSTER_CACHE_CONTROL)

    async def link(self, key: str, user_agent: str) -> str:
        self._known(key)
        server = self._machine_identifier
        if server is None:
            raise ProviderError(self._problem or f"{self._name} has not answered yet", status=503)
        metadata_key = quote(f"/library/metadata/{key}", safe="")
        link_type = self._server.link_type or ("app" if _MOBILE.search(user_agent) else "webExternal")
        if link_type == "app":
            return f"plex://preplay/?metadataKey={metadata_key}&server={server}"
        web = f"{self._base_url}/web/index.html" if link_type == "webLocal" else "https://app.plex.tv/desktop"
        return f"{web}#!/server/{server}/details?key={metadata_key}"

    # -- for features built on this server (server.players) --------------------------------------

    def http(self) -> httpx.AsyncClient:
        """The open client of this server: its URL, TLS settings and token, for requests other
        features make (playback on its players), which read the answers in their own terms."""
        self._check_up()
        if self._client is None:
            raise ProviderError(f"{self._name} is not open", status=503)
        return self._client

    # -- trailers ---------------------------------------------------------------------------------

    async def trailer(self, key: str, byte_range: str | None) -> Stream:
        if self._known(key).trailerUrl is None:
            raise ProviderError(f"no trailer for Plex item {key}", status=404)
        self._check_up()
        part = await self._trailer_parts.get(key, partial(self._trailer_part, key))
        response = await self._send(part, headers={"Range": byte_range} if byte_range else None, stream=True)
        return await proxied_video(response)

    async def _trailer_part(self, key: str) -> str:
        """The file of the item's trailer: its primary extra's first media part."""
        extra = (await self._details(f"/library/metadata/{key}")).primaryExtraKey
        if not extra or not _METADATA_PATH.fullmatch(extra):
            raise ProviderError(f"no trailer for Plex item {key}", status=404)
        parts = [part.key for media in (await self._details(extra)).Media for part in media.Part]
        if not parts:
            raise ProviderError(f"the trailer of Plex item {key} has no file", status=404)
        return parts[0]

    async def _details(self, path: str) -> _Details:
        response = await self._send(path)
        try:
            found = _DETAILS.decode(response.content).MediaContainer.Metadata
        except msgspec.DecodeError as exc:
            raise ProviderError(f"{self._name} sent an unexpected answer to {path}") from exc
        if not found:
            raise ProviderError(f"{self._name} has no {path}", status=404)
        return found[0]

    # -- people and what they watched ---------------------------------------------------------------

    async def _viewers(self) -> dict[str, Viewer]:
        if self._home is None:
            return {}
        self._check_up()
        return await self._home.viewers(self._machine_identifier or "")

    async def people(self) -> list[Person]:
        return [viewer.person for viewer in (await self._viewers()).values()]

    async def watched(self, person_ids: Collection[str], *, refresh: bool = False) -> set[str]:
        wanted = [person_id for person_id in dict.fromkeys(person_ids) if person_id.startswith("plex:")]
        if not wanted:
            return set()
        if refresh and self._home is not None:
            self._home.forget()
        viewers = await self._viewers()
        known = [viewers[person_id] for person_id in wanted if person_id in viewers]
        if refresh:
            for viewer in known:
                self._watched.forget(viewer.person.id)
        found = await asyncio.gather(
            *(self._watched.get(viewer.person.id, partial(self._fetch_watched, viewer.token)) for viewer in known)
        )
        return set().union(*found)

    async def _fetch_watched(self, token: str) -> frozenset[str]:
        """Every id and alias of what the holder of ``token`` watched (shows: all of their episodes),
        in the libraries MovieMatch may use that are shared with them."""

        async def watched_in(library: Library) -> list[tuple[str, tuple[str, ...]]]:
            try:
                return await self._items(library, [("unwatched", "0")], self._ids, token)
            except ProviderError as exc:
                if exc.status in (403, 404):  # not shared with this person
                    return []
                raise

        listings = await asyncio.gather(*(watched_in(library) for library in await self.libraries()))
        return frozenset(name for listing in listings for card_id, aliases in listing for name in (card_id, *aliases))
