"""Jellyfin as a media source; Emby too, where it answers the same API.

What this relies on (checked against jellyfin/jellyfin's controllers and Emby's REST docs):

- The API key goes in ``Authorization: MediaBrowser ..., Token="..."`` and nowhere else. Jellyfin 12
  ignores the legacy ``X-Emby-Token`` header and ``api_key`` query parameter unless the admin turns
  them back on, Emby reads this header too, and a key in a query string ends up in access logs.
- ``GET /System/Info`` needs a valid key and names the server (``Id``, ``ServerName``, ``Version``):
  it is both the reachability and the key check.
- Per-user data (the unwatched filter) needs a user: ``/Users/{userId}/Items`` and
  ``/Users/{userId}/Views`` are the per-user forms, native in Emby and kept by Jellyfin for
  compatibility. Without a user, ``/Items`` and ``/Library/VirtualFolders`` list everything the key
  may see.
- ``/Items`` takes ``Genres`` and ``OfficialRatings`` pipe-separated and ``Years`` comma-separated,
  each meaning "any of"; ``MinCommunityRating``; ``IsPlayed`` (per user). These only narrow the
  fetch: every rule is checked again here, on the fetched items, which also covers what Jellyfin
  cannot say ("is not", "at most", a second rule on the same field, duration, director).
- ``/Items/Filters`` (``QueryFiltersLegacy``: ``Genres``, ``OfficialRatings``, ``Years``) lists the
  values of a library in one request, on Jellyfin and Emby alike, where ``/Genres``, ``/Years`` and
  the content ratings would take three.
- Item ids are GUIDs (Jellyfin, 32 hex digits) or numbers (Emby); images at
  ``/Items/{id}/Images/Primary?maxWidth=N``.
- ``ProviderIds`` name a card (``ids``); ``LocalTrailerCount`` and ``RemoteTrailers`` (asked for in
  ``Fields``) say whether an item has a trailer: a local one is listed per user
  (``/Users/{userId}/Items/{id}/LocalTrailers``) and streamed as it is
  (``/Videos/{id}/stream?static=true``, which takes a Range); a remote one is a link. Series count
  their seasons (``ChildCount``) and, with a user's data, episodes (``RecursiveItemCount``).
- The people are the server's enabled users (``/Users``), their pictures at
  ``/Users/{id}/Images/Primary``; what each played is asked per user id (``IsPlayed``).
  Sign-in with a user's account is ``jellyfin_sign_in``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import re
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import quote, urlencode, urlsplit

import httpx
import msgspec
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator
from pydantic.alias_generators import to_pascal

from server import __version__
from server.config import MediaServer
from server.identity import jellyfin_identity
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
from .ids import card_ids, external_ids, rank
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

log = logging.getLogger(__name__)

PAGE_SIZE = 500
# Pages of one listing fetched at once: quick for 20,000 items without crowding the server.
PAGE_CONCURRENCY = 4
# Without the item's image tag in our URL, a changed poster must show up eventually.
POSTER_CACHE_CONTROL = "public, max-age=86400"
MAX_POSTER_WIDTH = 2000
AVATAR_CACHE_CONTROL = "private, max-age=3600"
NAME_LENGTH = 100
ACTORS_SHOWN = 5
MAX_YEARS_SENT = 200
# Jellyfin's ItemFields beyond the base set (OfficialRating, CommunityRating, ProductionYear,
# RunTimeTicks and ImageTags always come); an unknown name makes older servers answer 400.
ITEM_FIELDS = "Overview,Genres,People,ProviderIds,DateCreated,Taglines,LocalTrailerCount,RemoteTrailers"
# Series also count their seasons and episodes (RecursiveItemCount comes with a user's data only) and
# name their network (the first studio).
SERIES_FIELDS = ITEM_FIELDS + ",ChildCount,RecursiveItemCount,Studios"
# Jellyfin GUIDs are hex with or without dashes, Emby ids are numbers: nothing else may reach a path.
_ITEM_KEY = re.compile(r"[A-Za-z0-9-]{1,64}")

Params = tuple[tuple[str, str], ...]


# -- what Jellyfin sends ------------------------------------------------------------------------


class Dto(BaseModel):
    """A Jellyfin answer, read by pydantic (the small ones; item listings are msgspec structs)."""

    # Jellyfin names fields in PascalCase and may send null for anything: null means "not set".
    model_config = ConfigDict(alias_generator=to_pascal, frozen=True, extra="ignore")

    @model_validator(mode="before")
    @classmethod
    def _drop_nulls(cls, data: Any) -> Any:
        return {key: value for key, value in data.items() if value is not None} if isinstance(data, dict) else data


class _SystemInfo(Dto):
    id: str = Field(min_length=1)
    server_name: str = ""
    version: str = ""


class _Policy(Dto):
    is_administrator: bool = False
    is_disabled: bool = False


class UserDto(Dto):
    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9-]{1,64}$")
    name: str = ""
    policy: _Policy = _Policy()
    primary_image_tag: str | None = None


class _View(Dto):
    """A BaseItemDto of ``/Users/{userId}/Views``: a library."""

    id: str = Field(min_length=1)
    name: str = ""
    collection_type: str | None = None


class _Views(Dto):
    items: list[_View] = []


# Item listings are the one big answer (some 100 MB of JSON for 100,000 films): they are decoded by
# msgspec straight into these structs, which checks the types in C and skips every field not named
# here, instead of a pydantic model (and a null-dropping validator) per item and person. Untracked
# by the garbage collector (they hold no cycles), they cost it nothing while a listing builds up.


class _Person(msgspec.Struct, gc=False, rename="pascal"):
    name: str | None = None
    type: str | None = None


class _ProviderIds(msgspec.Struct, gc=False):
    """The external ids that name a film across servers (a struct, not a dict: no garbage-collected object per item)."""

    Imdb: str | None = None
    Tmdb: str | None = None
    Tvdb: str | None = None


class _ImageTags(msgspec.Struct, gc=False):
    Primary: str | None = None


class _Named(msgspec.Struct, gc=False, rename="pascal"):
    """A NameGuidPair (a studio) or a MediaUrl (a remote trailer: its URL is the name that matters)."""

    name: str | None = None
    url: str | None = None


class _Entry(msgspec.Struct, gc=False, rename="pascal"):
    """A BaseItemDto of a listing; null means "not set"."""

    id: Annotated[str, msgspec.Meta(min_length=1)]
    name: str | None = None
    overview: str | None = None
    taglines: list[str] | None = None
    production_year: int | None = None
    premiere_date: str | None = None
    date_created: str | None = None
    genres: list[str] | None = None
    run_time_ticks: int | None = None
    community_rating: float | None = None
    official_rating: str | None = None
    people: list[_Person] | None = None
    provider_ids: _ProviderIds | None = None
    image_tags: _ImageTags | None = None
    local_trailer_count: int | None = None
    remote_trailers: list[_Named] | None = None
    # Series only
    child_count: int | None = None  # seasons
    recursive_item_count: int | None = None  # episodes
    studios: list[_Named] | None = None
    end_date: str | None = None
    status: str | None = None  # "Continuing" or "Ended"


class _Entries(msgspec.Struct, gc=False, rename="pascal"):
    """A QueryResult of BaseItemDto."""

    items: list[_Entry] | None = None
    total_record_count: int = 0


_ENTRIES = msgspec.json.Decoder(_Entries)
_NO_IDS = _ProviderIds()
_YEAR = re.compile(r"\d{4}")


class _Folder(Dto):
    """A VirtualFolderInfo of ``/Library/VirtualFolders``."""

    name: str = ""
    item_id: str = Field(min_length=1)
    collection_type: str | None = None


class _Choices(Dto):
    """A QueryFiltersLegacy of ``/Items/Filters``."""

    genres: list[str] = []
    official_ratings: list[str] = []
    years: list[int] = []


_SYSTEM_INFO = TypeAdapter(_SystemInfo)
_USER = TypeAdapter(UserDto)
_USERS = TypeAdapter(list[UserDto])
_VIEWS = TypeAdapter(_Views)
_FOLDERS = TypeAdapter(list[_Folder])
_CHOICES = TypeAdapter(_Choices)


class _Item(Dto):
    """A BaseItemDto of which only the id matters (a local trailer)."""

    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9-]{1,64}$")


_TRAILERS = TypeAdapter(list[_Item])

T = TypeVar("T")
Item = TypeVar("Item")


def authorization(device_id: str, token: str | None = None) -> str:
    """The ``Authorization`` header of a request from MovieMatch: who asks (Jellyfin needs a client,
    device, device id and version for sign-ins too) and, unless signing in, with which token."""
    fields = {"Client": "MovieMatch", "Device": "MovieMatch server", "DeviceId": device_id, "Version": __version__}
    if token is not None:
        fields["Token"] = token
    return "MediaBrowser " + ", ".join(f'{name}="{value}"' for name, value in fields.items())


class _ServerError(ProviderError):
    """A request the server failed: ``problem`` says how, after "the Jellyfin server" (it goes into
    log lines too); ``answer`` is the server's HTTP status, if it answered."""

    def __init__(self, problem: str, *, status: int = 502, answer: int | None = None) -> None:
        super().__init__(f"the Jellyfin server {problem}", status=status)
        self.problem = problem
        self.answer = answer


# -- libraries ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Kind:
    type: Literal["movie", "show"]  # Library.type and Media.type
    item_type: str  # Jellyfin's BaseItemKind of the library's cards


# Jellyfin's CollectionType of a library; mixed-content folders (no type) hold no single kind of card.
_KINDS = {"movies": _Kind("movie", "Movie"), "tvshows": _Kind("show", "Series")}


@dataclass(frozen=True)
class _Section:
    key: str
    title: str
    kind: _Kind


# -- filters ------------------------------------------------------------------------------------

UNWATCHED = "unwatched"
# Jellyfin cannot list a library's directors (``/Persons`` has no ParentId), so that filter is not
# offered; a room that sends one is still matched, by name.
OFFERED = ("genre", "year", "decade", "duration", "rating", "contentRating")
# The shared operators and titles; "boolean" is Plex's type for yes/no filters such as unwatched.
OPERATORS: dict[str, list[FilterType]] = {name: operators for name, operators in filtering.OPERATORS.items()}
OPERATORS["boolean"] = filtering.OPERATORS["tag"]
_YES_NO = [FilterValue(title="Yes", value="1"), FilterValue(title="No", value="0")]


def _end_year(item: _Entry) -> int | None:
    """The last year of a show that has ended."""
    if item.status != "Ended" or not item.end_date or not _YEAR.match(item.end_date):
        return None
    return int(item.end_date[:4])


def _remote_trailer(item: _Entry) -> str | None:
    """The first remote trailer that is a web page (it becomes a link: no other scheme may)."""
    for trailer in item.remote_trailers or ():
        url = (trailer.url or "").strip()
        if urlsplit(url).scheme.lower() in ("http", "https") and urlsplit(url).hostname:
            return url
    return None


def _pipe(values: list[str]) -> str | None:
    # "|" separates values in Jellyfin's parameter: such a value is left to the predicates.
    return None if any("|" in value for value in values) else "|".join(values)


def _years(values: list[str], span: int) -> str | None:
    years = [year for value in values for year in range(int(value), int(value) + span)]
    # A URL has its limits; the predicates do not.
    return ",".join(map(str, years)) if len(years) <= MAX_YEARS_SENT else None


# What ``/Items`` can narrow a fetch by: the operator it can express, its parameter, and the
# parameter's value from the rule's values (already checked by ``filtering``), or None if unsendable.
_NARROWING: dict[str, tuple[str, str, Callable[[list[str]], str | None]]] = {
    "genre": ("=", "Genres", _pipe),
    "contentRating": ("=", "OfficialRatings", _pipe),
    "year": ("=", "Years", lambda values: _years(values, 1)),
    "decade": ("=", "Years", lambda values: _years(values, 10)),
    "rating": (">>=", "MinCommunityRating", lambda values: f"{float(values[0]):g}"),
}


def _watched_states(rule: Filter) -> set[bool]:
    """The watched states an item may have to pass an unwatched rule (Plex spells yes/no 1/0)."""
    if rule.operator not in ("=", "!="):
        raise InvalidFilter(f"filter {rule.key!r} does not take operator {shown(rule.operator)}; use = or !=")
    if not rule.value:
        raise InvalidFilter(f"filter {rule.key!r} needs a value")
    unwatched: set[bool] = set()
    for value in rule.value:
        word = value.strip().lower()
        if word not in ("1", "0", "true", "false"):
            raise InvalidFilter(f"filter {rule.key!r} needs 1 or 0, not {shown(value)}")
        unwatched.add(word in ("1", "true"))
    wanted = {not flag for flag in unwatched}
    return wanted if rule.operator == "=" else {True, False} - wanted


@dataclass(frozen=True, slots=True)
class _Film:
    """A card, and the facts ``filtering`` reads (None where Jellyfin knows nothing; cards say 0)."""

    card: Media
    genres: Sequence[str]
    year: int | None
    runtime: int | None  # minutes
    rating: float | None
    contentRating: str | None
    directors: Sequence[str]
    actors: Sequence[str]


@dataclass(frozen=True)
class _Plan:
    """How to answer a query: what Jellyfin narrows the fetch by, and what decides here."""

    params: Params  # part of the cache key
    wanted: filtering.Predicate
    nothing: bool  # contradictory rules (watched and unwatched): no need to ask


# -- the provider -------------------------------------------------------------------------------


class JellyfinProvider(MediaProvider):
    def __init__(
        self,
        server: MediaServer,
        *,
        provider_id: str,
        client_id: str,
        transport: httpx.AsyncBaseTransport | None = None,
        cache_ttl: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        timeout: float = 10.0,
        retry_delays: tuple[float, float] = (1.0, 60.0),
    ) -> None:
        """``retry_delays``: the first and the largest wait between reconnection attempts."""
        self.id = provider_id
        self.name = "Jellyfin"  # until the server tells its own
        self._server = server
        self._client_id = client_id
        self._transport = transport
        self._timeout = timeout
        self._retry_delays = retry_delays
        self._where = public_url(server.url)
        self._client: httpx.AsyncClient | None = None
        self._online = False
        self._problem: str | None = None
        self._retrying: asyncio.Task[None] | None = None
        self._server_id: str | None = None
        self._user_id: str | None = None
        self._sections = TtlCache[str, list[_Section]](cache_ttl, clock)
        self._listings = TtlCache[tuple[str, Params], list[_Film]](cache_ttl, clock)
        self._choices = TtlCache[str, _Choices](cache_ttl, clock)
        self._trailers = TtlCache[str, str](cache_ttl, clock)
        self._users = TtlCache[str, dict[str, UserDto]](cache_ttl, clock)
        # What each user played (every id and alias), by user id.
        self._watched = TtlCache[str, frozenset[str]](cache_ttl, clock)
        self._cards = KnownCards()

    # -- connection -----------------------------------------------------------------------------

    async def open(self) -> None:
        self._client = httpx.AsyncClient(
            base_url=self._where,
            headers={
                "Authorization": authorization(self._client_id, self._server.token.get_secret_value()),
                "Accept": "application/json",
            },
            # A dead host should fail fast; a 20,000-item page may take a while to build.
            timeout=httpx.Timeout(self._timeout, connect=min(self._timeout, 5.0)),
            verify=self._server.verify_tls,
            transport=self._transport,
        )
        if not await self._connect():
            self._start_retrying()

    async def close(self) -> None:
        if self._retrying is not None:
            self._retrying.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._retrying
            self._retrying = None
        for cache in (self._sections, self._listings, self._choices, self._trailers, self._users, self._watched):
            await cache.close()
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        self._online = False

    async def healthy(self) -> bool:
        return self._online

    async def _connect(self) -> bool:
        try:
            info = await self._json("System/Info", _SYSTEM_INFO)
            user = await self._pick_user()
        except _ServerError as exc:
            if exc.answer == 404:
                self._report("has no Jellyfin API at this URL (HTTP 404 for System/Info); check the URL and its path")
            else:
                self._report(exc.problem)
            return False
        if info.id != self._server_id:
            # Fallback media ids carry the server id: cards of another server must not be reused.
            for cache in (self._sections, self._listings, self._choices, self._trailers, self._users, self._watched):
                cache.clear()
            self._cards.clear()
        self._server_id = info.id
        self.name = info.server_name or self.name
        self._user_id = user.id if user is not None else None
        self._online = True
        self._problem = None
        log.info("connected to Jellyfin server %r (version %s) at %s", info.server_name, info.version, self._where)
        return True

    async def _pick_user(self) -> UserDto | None:
        """The user whose watched state the unwatched filter uses: the configured one, else the first
        administrator; None when the key may not list users or there is no administrator."""
        wanted = self._server.user_id
        if wanted:
            try:
                user = await self._json(f"Users/{quote(wanted, safe='')}", _USER)
            except _ServerError as exc:
                if exc.answer in (400, 404):
                    raise _ServerError(f"has no user {wanted!r} (the configured user_id)") from exc
                raise
            log.info("Jellyfin at %s: using user %r for per-user filters such as unwatched", self._where, user.name)
            return user
        try:
            users = await self._json("Users", _USERS)
        except _ServerError as exc:
            if exc.answer not in (401, 403):
                raise
            log.warning(
                "Jellyfin at %s: no user_id configured and the API key may not list users (HTTP %d); the "
                "unwatched filter is unavailable (set user_id for this server)",
                self._where,
                exc.answer,
            )
            return None
        admin = next((user for user in users if user.policy.is_administrator and not user.policy.is_disabled), None)
        if admin is None:
            log.warning(
                "Jellyfin at %s: no user_id configured and no administrator found; the unwatched filter is "
                "unavailable (set user_id for this server)",
                self._where,
            )
        else:
            log.info(
                "Jellyfin at %s: no user_id configured, using administrator %r for per-user filters such as "
                "unwatched (set user_id to choose another user)",
                self._where,
                admin.name,
            )
        return admin

    def _report(self, problem: str) -> None:
        """One log line per cause: a server that stays down does not fill the log."""
        if problem != self._problem:
            log.warning("the Jellyfin server at %s %s; retrying in the background", self._where, problem)
        else:
            log.debug("the Jellyfin server at %s still %s", self._where, problem)
        self._problem = problem

    def _start_retrying(self) -> None:
        if self._retrying is None or self._retrying.done():
            self._retrying = asyncio.create_task(self._retry(), name=f"reconnect {self.id}")

    async def _retry(self) -> None:
        delay, largest = self._retry_delays
        while True:
            await asyncio.sleep(delay)
            if await self._connect():
                return
            delay = min(delay * 2, largest)

    def _lost(self, problem: str) -> None:
        if self._online:
            self._online = False
            self._report(problem)
            self._start_retrying()

    def _require_online(self) -> None:
        if not self._online:
            raise _ServerError(self._problem or "has not answered yet", status=503)

    # -- requests -------------------------------------------------------------------------------

    async def _send(
        self,
        path: str,
        params: Mapping[str, str] | None = None,
        *,
        stream: bool = False,
        headers: Mapping[str, str] | None = None,
        fatal: bool = True,
    ) -> httpx.Response:
        """A successful answer to GET ``path``, else a ProviderError that is safe to show anyone.

        ``fatal``: whether a refusal means the key was revoked (the server is then taken for gone);
        not so for what the key may simply not ask (the users, when it is not an administrator's)."""
        client = self._client
        if client is None:
            raise ProviderError("the Jellyfin provider is not open", status=503)
        try:
            request = client.build_request("GET", path, params=params, headers=headers)
            response = await client.send(request, stream=stream)
        except httpx.TimeoutException as exc:
            raise _ServerError(f"did not answer within {self._timeout:g} s", status=504) from exc
        except httpx.ConnectError as exc:
            problem = f"is unreachable: {transport_problem(exc)}"
            self._lost(problem)
            raise _ServerError(problem, status=503) from exc
        except httpx.RequestError as exc:
            raise _ServerError(f"failed: {transport_problem(exc)}") from exc
        if response.is_success:
            return response
        await response.aclose()
        answer = response.status_code
        if answer in (401, 403) and not fatal:
            raise _ServerError(f"refused {path} (HTTP {answer})", status=403, answer=answer)
        if answer in (401, 403):
            problem = f"rejected the API key (HTTP {answer})"
            self._lost(problem)
            raise _ServerError(problem, answer=answer)
        if answer in (404, 416):  # 416: a Range beyond the end of a trailer
            raise _ServerError(f"has no {path} (HTTP {answer})", status=answer, answer=answer)
        hint = " (a redirect: configure the URL it points to)" if response.is_redirect else ""
        raise _ServerError(f"answered HTTP {answer} to {path}{hint}", answer=answer)

    async def _json(
        self, path: str, shape: TypeAdapter[T], params: Mapping[str, str] | None = None, *, fatal: bool = True
    ) -> T:
        response = await self._send(path, params, fatal=fatal)
        try:
            return shape.validate_json(response.content)
        except ValidationError:
            # The details quote the body: they stay out of messages that reach browsers.
            raise _ServerError(f"sent a malformed answer to {path}") from None

    def _items_path(self) -> str:
        return f"Users/{quote(self._user_id, safe='')}/Items" if self._user_id else "Items"

    # -- libraries and media --------------------------------------------------------------------

    async def libraries(self) -> list[Library]:
        self._require_online()
        return [Library(title=section.title, key=section.key, type=section.kind.type) for section in await self._all()]

    async def _all(self) -> list[_Section]:
        return await self._sections.get("", self._load_sections)

    async def _load_sections(self) -> list[_Section]:
        if self._user_id:
            views = await self._json(f"Users/{quote(self._user_id, safe='')}/Views", _VIEWS)
            found = [(view.name, view.id, view.collection_type) for view in views.items]
        else:
            folders = await self._json("Library/VirtualFolders", _FOLDERS)
            found = [(folder.name, folder.item_id, folder.collection_type) for folder in folders]
        titles = {title.casefold() for title in self._server.library_title_filter}
        sections: list[_Section] = []
        for title, key, collection in found:
            kind = _KINDS.get((collection or "").casefold())
            if kind is None or kind.type not in self._server.library_type_filter:
                continue
            if titles and title.casefold() not in titles:
                continue
            sections.append(_Section(key=key, title=title, kind=kind))
        return sections

    async def _selected(self, keys: list[str]) -> list[_Section]:
        return chosen(await self._all(), keys, lambda key: f"unknown library {shown(key)}")

    async def media(self, query: MediaQuery) -> list[Media]:
        plan = self._plan(query.filters)
        self._require_online()
        sections = await self._selected(query.libraries)
        if plan.nothing:
            return []
        listings = await asyncio.gather(*(self._listing(section, plan.params) for section in sections))
        # One film in two libraries (HD and 4K, say) is one card.
        unique: dict[str, Media] = {}
        for films in listings:
            for film in films:
                if plan.wanted(film):
                    unique.setdefault(film.card.id, film.card)
        return list(unique.values())

    def _plan(self, rules: list[Filter]) -> _Plan:
        """Every rule is checked before anything is fetched, so a bad request fails the same way always."""
        others = [rule for rule in rules if rule.key != UNWATCHED]
        # The predicates decide; Jellyfin only narrows the fetch. A second rule on one parameter is
        # left to the predicates, so the two never disagree.
        wanted = filtering.matcher(others, "Jellyfin")
        params: dict[str, str] = {}
        for rule in others:
            narrowing = _NARROWING.get(rule.key)
            if narrowing is None or rule.operator != narrowing[0] or filtering.unbounded(rule):
                continue
            _, name, write = narrowing
            value = write(rule.value)
            if value is not None:
                params.setdefault(name, value)
        # Watched state is per user and known only to Jellyfin: it can only be asked for.
        played = {True, False}
        for rule in rules:
            if rule.key == UNWATCHED:
                if not self._per_user:
                    raise InvalidFilter(
                        "the unwatched filter needs a Jellyfin user: set user_id for this server in the configuration"
                    )
                played &= _watched_states(rule)
        if len(played) == 1:
            params["IsPlayed"] = "true" if True in played else "false"
        return _Plan(params=tuple(sorted(params.items())), wanted=wanted, nothing=not played)

    async def _listing(self, section: _Section, params: Params) -> list[_Film]:
        return await self._listings.get((section.key, params), lambda: self._fetch(section, params))

    async def _fetch(self, section: _Section, params: Params) -> list[_Film]:
        query = {
            "Fields": SERIES_FIELDS if section.kind.type == "show" else ITEM_FIELDS,
            "EnableImageTypes": "Primary",
            "ImageTypeLimit": "1",
            # A user's data costs a query per item: only series need it (their episode count).
            "EnableUserData": "true" if section.kind.type == "show" and self._user_id else "false",
            **dict(params),
        }
        listed = await self._paged(self._items_path(), section, query, lambda item: self._film(item, section.kind))
        films: dict[str, _Film] = {}
        for film in listed:
            films.setdefault(film.card.id, film)
        return list(films.values())

    async def _paged(
        self,
        path: str,
        section: _Section,
        query: Mapping[str, str],
        convert: Callable[[_Entry], Item],
        *,
        fatal: bool = True,
    ) -> list[Item]:
        """The items of a library that ``query`` asks for (at ``path``: all of them, or a user's), in
        pages fetched a few at a time, each converted as it arrives: decoded pages kept till the end
        would only feed the garbage collector."""
        query = {
            "ParentId": section.key,
            "IncludeItemTypes": section.kind.item_type,
            "Recursive": "true",
            # A stable order keeps pages from overlapping; new items sort last.
            "SortBy": "DateCreated,SortName",
            "SortOrder": "Ascending",
            "EnableTotalRecordCount": "true",  # the paging below relies on it
            **query,
        }

        async def page(start: int, limit: int) -> tuple[list[Item], int, int]:
            entries = await self._entries(path, {**query, "StartIndex": str(start), "Limit": str(limit)}, fatal)
            items = entries.items or []
            with collector_paused():
                return [convert(item) for item in items], len(items), entries.total_record_count

        listed, step, total = await page(0, PAGE_SIZE)
        # Follow the page size the server really used, in case it caps Limit.
        if step:
            gate = asyncio.Semaphore(PAGE_CONCURRENCY)

            async def rest(start: int) -> list[Item]:
                async with gate:
                    return (await page(start, step))[0]

            for more in await asyncio.gather(*(rest(start) for start in range(step, total, step))):
                listed.extend(more)
        return listed

    async def _entries(self, path: str, params: Mapping[str, str], fatal: bool = True) -> _Entries:
        response = await self._send(path, params, fatal=fatal)
        try:
            with collector_paused():
                return _ENTRIES.decode(response.content)
        except msgspec.DecodeError:
            # The details quote the body: they stay out of messages that reach browsers.
            raise _ServerError(f"sent a malformed answer to {path}") from None

    def _film(self, item: _Entry, kind: _Kind) -> _Film:
        rating = item.community_rating
        if rating is not None:
            rating = round(min(max(rating, 0.0), 10.0), 1) if math.isfinite(rating) else None
        people = item.people or ()
        directors = [person.name for person in people if person.type == "Director" and person.name is not None]
        actors = [person.name for person in people if person.type == "Actor" and person.name is not None]
        ticks = item.run_time_ticks or 0
        show = kind.type == "show"
        card_id, aliases = self._media_id(item, kind)
        card = Media(
            id=card_id,
            type=kind.type,
            title=item.name or "",
            description=item.overview or "",
            tagline=next((line for line in item.taglines or () if line.strip()), None),
            year=item.production_year,
            # Relative to the app root, so they work under any root path.
            posterUrl=f"/api/poster/{self.id}/{item.id}" if item.image_tags and item.image_tags.Primary else None,
            linkUrl=f"api/link/{self.id}/{item.id}",
            genres=item.genres or [],
            duration=ticks // 10_000,  # ticks of 100 ns
            rating=rating or 0.0,
            contentRating=item.official_rating or None,
            directors=directors,
            actors=actors[:ACTORS_SHOWN],
            seasons=item.child_count if show else None,
            episodes=item.recursive_item_count if show else None,
            endYear=_end_year(item) if show else None,
            network=next((studio.name for studio in item.studios or () if studio.name), None) if show else None,
            # Local trailers are listed per user; without one only the remote ones can be offered.
            trailerUrl=f"/api/trailer/{self.id}/{item.id}" if item.local_trailer_count and self._user_id else None,
            trailerLink=None if item.local_trailer_count and self._user_id else _remote_trailer(item),
            added=item.date_created or item.premiere_date,
            aliases=aliases,
        )
        card = self._cards.kept(item.id, card)
        return _Film(
            card=card,
            genres=card.genres,
            year=card.year,
            runtime=round(ticks / 600_000_000) or None,
            rating=rating,
            contentRating=card.contentRating,
            directors=directors,
            actors=actors,
        )

    def _media_id(self, item: _Entry, kind: _Kind) -> tuple[str, tuple[str, ...]]:
        """The title's IMDb, TMDB or TVDB id (``ids``): the same film on Plex and Jellyfin is then one
        card. Items without one get ``jellyfin://<serverId>/<itemId>``, stable while the server is.

        Earlier versions used the fallback id where only the kind's less usual database knew the
        title (a film's TVDB id, a show's TMDB id): only then is it an alias (stored rooms hold it)."""
        ids = item.provider_ids or _NO_IDS
        external = external_ids(kind.type, ids.Imdb, ids.Tmdb, ids.Tvdb)
        former = bool(external) and rank(external[0]) == 2
        return card_ids(external, f"jellyfin://{self._server_id}/{item.id}", former=former)

    # -- filters --------------------------------------------------------------------------------

    async def filters(self) -> Filters:
        library_types = list(self._server.library_type_filter)
        infos = [
            FilterInfo(
                title=filtering.FIELDS[key].title, key=key, type=filtering.FIELDS[key].type, libraryTypes=library_types
            )
            for key in OFFERED
        ]
        if self._per_user:
            infos.append(FilterInfo(title="Unwatched", key=UNWATCHED, type="boolean", libraryTypes=library_types))
        return Filters(filters=infos, filterTypes=OPERATORS)

    @property
    def _per_user(self) -> bool:
        """Whether there is a user to ask about watched state (the configured one counts before connecting)."""
        return self._user_id is not None or bool(self._server.user_id)

    async def filter_values(self, key: str) -> list[FilterValue]:
        if key == UNWATCHED and self._per_user:
            return list(_YES_NO)
        if key not in OFFERED:
            raise ProviderError(f"unknown filter {shown(key)}", status=404)
        if key in ("duration", "rating"):
            return filtering.filter_values(key, ())  # its presets
        self._require_online()
        found = await asyncio.gather(*(self._section_choices(section) for section in await self._all()))
        if key in ("genre", "contentRating"):
            # As filtering offers names: one value per spelling that matching would not tell apart.
            names: dict[str, str] = {}
            for choices in found:
                for name in choices.genres if key == "genre" else choices.official_ratings:
                    names.setdefault(name.casefold(), name)
            return [FilterValue(title=name, value=name) for name in sorted(names.values(), key=str.casefold)]
        span, suffix = (1, "") if key == "year" else (10, "s")
        numbers = sorted({year // span * span for choices in found for year in choices.years}, reverse=True)
        return [FilterValue(title=f"{number}{suffix}", value=str(number)) for number in numbers]

    async def _section_choices(self, section: _Section) -> _Choices:
        params = {"ParentId": section.key, "IncludeItemTypes": section.kind.item_type}
        if self._user_id:
            params["UserId"] = self._user_id
        return await self._choices.get(section.key, lambda: self._json("Items/Filters", _CHOICES, params))

    # -- posters and links ----------------------------------------------------------------------

    async def poster(self, key: str, width: int | None) -> Poster:
        if self._known(key).posterUrl is None:
            raise ProviderError(f"no poster for Jellyfin item {shown(key)}", status=404)
        self._require_online()
        params = {"maxWidth": str(min(width, MAX_POSTER_WIDTH))} if width and width > 0 else {}
        response = await self._send(f"Items/{key}/Images/Primary", params, stream=True)
        return await proxied_poster(response, POSTER_CACHE_CONTROL)

    async def link(self, key: str, user_agent: str) -> str:
        # The web UI's details page for every link type: Jellyfin has no hosted web app (unlike
        # app.plex.tv), so "webExternal" can only mean the configured URL too, and its mobile apps
        # open such links. The "#!/" form is what web clients up to 10.8 route, and newer ones redirect it.
        self._known(key)
        query = {"id": key} | ({"serverId": self._server_id} if self._server_id else {})
        return f"{self._where}/web/index.html#!/details?{urlencode(query)}"

    def _known(self, key: str) -> Media:
        """The card of an item this server listed; anything else is a 404 that Jellyfin never hears of."""
        card = self._cards.get(key)
        # Listed or not, only an id of Jellyfin's (or Emby's) own form may reach a path.
        if card is None or _ITEM_KEY.fullmatch(key) is None:
            raise ProviderError(f"no Jellyfin item {shown(key)}", status=404)
        return card

    # -- for features built on this server (server.accounts, server.players) --------------------

    def authorization(self, token: str) -> str:
        """The ``Authorization`` header presenting ``token``: the API key, or a user's access token."""
        return authorization(self._client_id, token)

    def http(self) -> httpx.AsyncClient:
        """The open client of this server: its URL, TLS settings and API key (a request may present
        another token with ``authorization``)."""
        if self._client is None:
            raise ProviderError("the Jellyfin provider is not open", status=503)
        return self._client

    # -- trailers -------------------------------------------------------------------------------

    async def trailer(self, key: str, byte_range: str | None) -> Stream:
        if self._known(key).trailerUrl is None or self._user_id is None:
            raise ProviderError(f"no trailer for Jellyfin item {shown(key)}", status=404)
        self._require_online()
        video = await self._trailers.get(key, lambda: self._local_trailer(key))
        response = await self._send(
            f"Videos/{quote(video, safe='')}/stream",
            {"static": "true"},  # the file as it is, which a Range can seek in
            stream=True,
            headers={"Range": byte_range} if byte_range else None,
        )
        return await proxied_video(response)

    async def _local_trailer(self, key: str) -> str:
        """The id of the item's first local trailer (a path per user, which Emby knows too)."""
        user = quote(self._user_id or "", safe="")
        trailers = await self._json(f"Users/{user}/Items/{key}/LocalTrailers", _TRAILERS)
        if not trailers:
            raise ProviderError(f"no trailer for Jellyfin item {shown(key)}", status=404)
        return trailers[0].id

    # -- people and what they watched -------------------------------------------------------------

    @property
    def config(self) -> MediaServer:
        return self._server

    @property
    def server_id(self) -> str | None:
        """The server's own id (``System/Info``), known once it has answered."""
        return self._server_id

    @property
    def base_url(self) -> str:
        """The configured URL without credentials, query or trailing slash: where requests go."""
        return self._where

    def identity(self, user_id: str) -> str:
        """A user's person id and sign-in identity (``server.identity``): ``jellyfin:<server>:<user>``."""
        return jellyfin_identity(self._server_id or "", user_id)

    def person(self, user: UserDto) -> Person:
        avatar = f"api/avatar/{self.id}/{user.id}" if user.primary_image_tag else None
        return Person(id=self.identity(user.id), name=user.name.strip()[:NAME_LENGTH] or user.id, avatar=avatar)

    async def users(self) -> dict[str, UserDto]:
        """The server's users that may sign in, by id (kept a while); none when the key may not list them."""
        self._require_online()
        return await self._users.get("", self._load_users)

    async def _load_users(self) -> dict[str, UserDto]:
        try:
            users = await self._json("Users", _USERS, fatal=False)
        except _ServerError as exc:
            if exc.answer not in (401, 403):
                raise
            return {}
        return {user.id: user for user in users if not user.policy.is_disabled}

    async def user(self, user_id: str) -> UserDto | None:
        """One user as the server has them now (no cache: a sign-in must see a deletion at once);
        None if there is no such user, or they are disabled."""
        self._require_online()
        try:
            user = await self._json(f"Users/{quote(user_id, safe='')}", _USER, fatal=False)
        except _ServerError as exc:
            if exc.answer in (400, 404):
                return None
            raise
        return None if user.policy.is_disabled else user

    async def people(self) -> list[Person]:
        return [self.person(user) for user in (await self.users()).values()]

    async def avatar(self, key: str) -> Stream:
        user = (await self.users()).get(key)
        if user is None or not user.primary_image_tag:
            raise ProviderError(f"no avatar {shown(key)}", status=404)
        response = await self._send(f"Users/{quote(key, safe='')}/Images/Primary", stream=True, fatal=False)
        return await proxied_poster(response, AVATAR_CACHE_CONTROL)

    async def watched(self, person_ids: Collection[str], *, refresh: bool = False) -> set[str]:
        prefix = self.identity("")
        wanted = [person.removeprefix(prefix) for person in dict.fromkeys(person_ids) if person.startswith(prefix)]
        if not wanted or not self._server_id:
            return set()
        if refresh:
            self._users.forget("")
        users = await self.users()
        known = [user_id for user_id in wanted if user_id in users]
        if refresh:
            for user_id in known:
                self._watched.forget(user_id)
        found = await asyncio.gather(
            *(self._watched.get(user_id, partial(self._fetch_watched, user_id)) for user_id in known)
        )
        return set().union(*found)

    async def _fetch_watched(self, user_id: str) -> frozenset[str]:
        """Every id and alias of what a user played (series: all of their episodes), in the libraries
        MovieMatch may use that the user sees."""
        user = quote(user_id, safe="")
        views = await self._json(f"Users/{user}/Views", _VIEWS, fatal=False)
        seen = {view.id for view in views.items}
        query = {"IsPlayed": "true", "Fields": "ProviderIds", "EnableImageTypes": "None", "EnableUserData": "false"}
        sections = [section for section in await self._all() if section.key in seen]
        listings = await asyncio.gather(
            *(
                self._paged(
                    f"Users/{user}/Items",
                    section,
                    query,
                    partial(self._media_id, kind=section.kind),
                    fatal=False,
                )
                for section in sections
            )
        )
        return frozenset(name for listing in listings for card_id, aliases in listing for name in (card_id, *aliases))
