"""The media account a person signed in with, and the titles it keeps for them.

"Save for later" is written to the person's account too: the Plex watchlist (kept by plex.tv's
metadata provider) for a Plex sign-in, the favourites for a Jellyfin sign-in. Both are
``SavedTitles``: a title the account can hold has a ``ref`` there (a Plex guid's key, a Jellyfin
item id), which is added, removed and listed.

The account's token is the person's key to it: it stays on their connection (never stored, logged
or sent to a browser) and goes to the account's service in a header only.
"""

from __future__ import annotations

import logging
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import ClassVar
from urllib.parse import quote

import httpx
import msgspec

from server.providers.jellyfin import JellyfinProvider
from server.providers.origin import origin
from server.providers.plex import TIMEOUT, plex_headers
from server.providers.remote import transport_problem

log = logging.getLogger(__name__)

# A watchlist or favourites list is read this far at most: far beyond any person's, and bounded.
MOST_TITLES = 2000
PAGE_SIZE = 200
# Plex's own guid of a film or show (the same on every server): its last part is the key the
# watchlist knows it by.
_PLEX_GUID = re.compile(r"plex://(?:movie|show)/([0-9a-f]{24})")


class AccountError(Exception):
    """The account's service failed or refused; the message names the service, never a token."""


class SavedTitles(ABC):
    """What a person's account keeps for later (a watchlist, favourites)."""

    # How the protocol names the account's kind (``account.service`` in replies).
    service: ClassVar[str]

    @abstractmethod
    def ref(self, names: Sequence[str], links: Sequence[str]) -> str | None:
        """How the account names this card (by its id and aliases, and its links: protocol.md's
        Media ``linkUrl`` and ``openIn``), or None when the account cannot hold it (a film of
        another server)."""

    @abstractmethod
    async def add(self, ref: str) -> None: ...

    @abstractmethod
    async def remove(self, ref: str) -> None: ...

    @abstractmethod
    async def refs(self) -> set[str]:
        """Every title the account keeps, as refs."""


def _failed(service: str, exc: httpx.HTTPError) -> AccountError:
    if isinstance(exc, httpx.TimeoutException):
        return AccountError(f"{service} did not answer in time")
    if isinstance(exc, httpx.RequestError):
        return AccountError(f"{service} cannot be reached: {transport_problem(exc)}")
    return AccountError(f"{service} failed: {type(exc).__name__}")


def _checked(service: str, response: httpx.Response) -> httpx.Response:
    if response.is_success:
        return response
    if response.status_code in (401, 403):
        raise AccountError(f"{service} did not accept this sign-in (HTTP {response.status_code}); sign in again")
    raise AccountError(f"{service} answered HTTP {response.status_code}")


# -- Plex ------------------------------------------------------------------------------------------


class _WatchlistItem(msgspec.Struct):
    guid: str | None = None


class _WatchlistPage(msgspec.Struct):
    Metadata: list[_WatchlistItem] = []
    totalSize: int | None = None


class _WatchlistAnswer(msgspec.Struct):
    MediaContainer: _WatchlistPage


_WATCHLIST = msgspec.json.Decoder(_WatchlistAnswer, strict=False)


class PlexAccounts:
    """plex.tv's metadata provider, where Plex accounts keep their watchlists: one client for all."""

    def __init__(
        self,
        url: str,
        *,
        client_id: str,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: httpx.Timeout = TIMEOUT,
    ) -> None:
        self._url = url
        self._client_id = client_id
        self._transport = transport
        self._timeout = timeout
        self._client: httpx.AsyncClient | None = None

    async def open(self) -> None:
        self._client = httpx.AsyncClient(base_url=self._url, timeout=self._timeout, transport=self._transport)

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    def watchlist(self, token: str, plex_client_id: str) -> PlexWatchlist:
        """The watchlist of the account this token signs in (as the browser's Plex client)."""
        return PlexWatchlist(self, plex_headers(token, plex_client_id or self._client_id))

    async def send(
        self, method: str, path: str, headers: Mapping[str, str], params: Mapping[str, str] | None = None
    ) -> httpx.Response:
        if self._client is None:
            raise AccountError("the Plex watchlist is not open")
        try:
            response = await self._client.request(method, path, params=params, headers=headers)
        except httpx.HTTPError as exc:
            raise _failed("the Plex watchlist", exc) from exc
        return _checked("the Plex watchlist", response)


class PlexWatchlist(SavedTitles):
    service = "plex"

    def __init__(self, accounts: PlexAccounts, headers: Mapping[str, str]) -> None:
        self._accounts = accounts
        self._headers = headers

    def ref(self, names: Sequence[str], links: Sequence[str]) -> str | None:
        # Plex's guid is the same on every Plex server and plex.tv: a card keeps it as an alias.
        found = (_PLEX_GUID.fullmatch(name) for name in names)
        return next((match.group(1) for match in found if match), None)

    async def add(self, ref: str) -> None:
        await self._accounts.send("PUT", "/actions/addToWatchlist", self._headers, {"ratingKey": ref})

    async def remove(self, ref: str) -> None:
        await self._accounts.send("PUT", "/actions/removeFromWatchlist", self._headers, {"ratingKey": ref})

    async def refs(self) -> set[str]:
        found: set[str] = set()
        start = 0
        while start < MOST_TITLES:
            paging = {"X-Plex-Container-Start": str(start), "X-Plex-Container-Size": str(PAGE_SIZE)}
            response = await self._accounts.send(
                "GET", "/library/sections/watchlist/all", {**self._headers, **paging}, {"includeFields": "guid"}
            )
            try:
                page = _WATCHLIST.decode(response.content).MediaContainer
            except msgspec.DecodeError as exc:
                raise AccountError("the Plex watchlist sent an unexpected answer") from exc
            for item in page.Metadata:
                ref = self.ref([item.guid or ""], [])
                if ref is not None:
                    found.add(ref)
            start += len(page.Metadata)
            if not page.Metadata or page.totalSize is None or start >= page.totalSize:
                break
        return found


# -- Jellyfin --------------------------------------------------------------------------------------


class _FavouriteItem(msgspec.Struct, rename="pascal"):
    id: str


class _Favourites(msgspec.Struct, rename="pascal"):
    items: list[_FavouriteItem] | None = None


_FAVOURITES = msgspec.json.Decoder(_Favourites)


class JellyfinFavourites(SavedTitles):
    """A Jellyfin user's favourites on a configured server, changed with that user's own token or,
    for a Jellyfin sign-in (whose own token was let go at once), with the server's API key, which
    may act for every user."""

    service = "jellyfin"

    def __init__(self, server: JellyfinProvider, user_id: str, token: str | None = None) -> None:
        self._server = server
        self._user = quote(user_id, safe="")
        # Without a token, the server's client presents its API key.
        self._headers = {"Authorization": server.authorization(token)} if token else {}

    def ref(self, names: Sequence[str], links: Sequence[str]) -> str | None:
        found = (origin(link) for link in links)
        return next((place.key for place in found if place is not None and place.provider_id == self._server.id), None)

    async def _send(self, method: str, path: str, params: Mapping[str, str] | None = None) -> httpx.Response:
        try:
            response = await self._server.http().request(method, path, params=params, headers=self._headers)
        except httpx.HTTPError as exc:
            raise _failed("the Jellyfin favourites", exc) from exc
        return _checked("the Jellyfin favourites", response)

    async def add(self, ref: str) -> None:
        await self._send("POST", f"Users/{self._user}/FavoriteItems/{quote(ref, safe='')}")

    async def remove(self, ref: str) -> None:
        await self._send("DELETE", f"Users/{self._user}/FavoriteItems/{quote(ref, safe='')}")

    async def refs(self) -> set[str]:
        params = {
            "Filters": "IsFavorite",
            "Recursive": "true",
            "IncludeItemTypes": "Movie,Series",
            "EnableUserData": "false",
            "EnableImages": "false",
            "Limit": str(MOST_TITLES),
        }
        response = await self._send("GET", f"Users/{self._user}/Items", params)
        try:
            favourites = _FAVOURITES.decode(response.content)
        except msgspec.DecodeError as exc:
            raise AccountError("the Jellyfin favourites sent an unexpected answer") from exc
        return {item.id for item in favourites.items or ()}
