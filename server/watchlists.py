"""Watchlists: the films a person saved for later, kept per identity across rooms and restarts.

An entry is the card as it was when saved (so the list shows it whatever the library holds today)
and when it was saved, in a per-person list of the storage (``Storage.read_list``). A person signed
in with a media account (``server.accounts``) has every change written there too, as far as the
account can hold the title.

A room may take its films from watchlists (createRoom ``source: "watchlists"``): the request gets
a filter rule naming the identities whose lists count, which ``WatchlistMedia`` (the media of every
room) applies to the library's films. Rooms store and restore that rule like any filter, so room
code knows nothing of watchlists; a person cannot name someone else's list, as the rule is the
server's to add (a request carrying one is refused).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

import msgspec

from server.accounts import AccountError, SavedTitles
from server.protocol import CreateRoomRequest, ErrorName, ProtocolError, Reply, storage_unavailable
from server.providers import Media, MediaProvider, MediaQuery, ProviderError
from server.providers.combined import CombinedProvider
from server.user import User
from storage import Filter, Storage, StorageError

log = logging.getLogger(__name__)

LIST_NAME = "watchlist"
# The filter rule of a room drawn from watchlists; its values are identities.
RULE_KEY = "watchlist"
# Bounds what one person's list (and the frame that lists it) can grow to.
MOST_ENTRIES = 500


class _Entry(msgspec.Struct, omit_defaults=True):
    savedAt: int
    media: dict[str, Any]
    # The card's other ids (not sent: ``Media.aliases``), by which an account names it.
    aliases: list[str] = []


def _links(media: dict[str, Any]) -> list[str]:
    """A card's links (protocol.md's Media): its own, and those of every server that has it."""
    return [
        str(link)
        for link in [media.get("linkUrl"), *(place.get("linkUrl") for place in media.get("openIn") or [])]
        if link
    ]


_ENTRY = msgspec.json.Decoder(_Entry)


def no_identity(reply_type: Reply, **extra: Any) -> ProtocolError:
    return ProtocolError(
        reply_type, ErrorName.NO_IDENTITY, "this login has no identity to keep a watchlist for; sign in again", **extra
    )


class Watchlists:
    def __init__(self, storage: Storage, now_ms: Callable[[], int]) -> None:
        self._storage = storage
        self._now_ms = now_ms

    async def _read(self, identity: str, reply_type: Reply) -> dict[str, _Entry]:
        try:
            stored = await self._storage.read_list(identity, LIST_NAME)
        except StorageError as exc:
            log.error("could not read a watchlist: %s", exc)
            raise storage_unavailable(reply_type, "watchlists cannot be read right now") from exc
        entries: dict[str, _Entry] = {}
        for media_id, value in stored.items():
            try:
                entries[media_id] = _ENTRY.decode(value)
            except msgspec.DecodeError:
                log.warning("skipping an unreadable watchlist entry for %r", media_id[:80])
        return entries

    async def _change(
        self, identity: str, reply_type: Reply, *, put: dict[str, str] | None = None, drop: Sequence[str] = ()
    ) -> None:
        try:
            await self._storage.change_list(identity, LIST_NAME, put=put, drop=drop)
        except StorageError as exc:
            log.error("could not change a watchlist: %s", exc)
            raise storage_unavailable(reply_type, "the watchlist cannot be changed right now") from exc

    def _next_time(self, entries: dict[str, _Entry]) -> int:
        """Now, or just after the newest entry: the list's order (newest first) never has a tie."""
        return max(self._now_ms(), max((entry.savedAt for entry in entries.values()), default=0) + 1)

    async def items(self, identity: str) -> list[dict[str, Any]]:
        """The person's watchlist, newest first: protocol.md's WatchlistItem."""
        entries = await self._read(identity, Reply.WATCHLIST_ERROR)
        ordered = sorted(entries.values(), key=lambda entry: entry.savedAt, reverse=True)
        return [{"media": entry.media, "savedAt": entry.savedAt} for entry in ordered]

    async def add(self, identity: str, item: Media, account: SavedTitles | None) -> dict[str, Any]:
        """Save a card for later (again: it keeps its first date); the reply, with what the account did."""
        entries = await self._read(identity, Reply.WATCHLIST_ERROR)
        entry = entries.get(item.id)
        if entry is None:
            if len(entries) >= MOST_ENTRIES:
                raise ProtocolError(
                    Reply.WATCHLIST_ERROR,
                    ErrorName.WATCHLIST_FULL,
                    f"a watchlist holds {MOST_ENTRIES} titles; remove some first",
                    mediaId=item.id,
                )
            entry = _Entry(savedAt=self._next_time(entries), media=item.wire(), aliases=list(item.aliases))
            await self._change(identity, Reply.WATCHLIST_ERROR, put={item.id: _encoded(entry)})
        reply: dict[str, Any] = {"item": {"media": entry.media, "savedAt": entry.savedAt}}
        if account is not None:
            reply["account"] = await _update(account, account.add, entry)
        return reply

    async def remove(self, identity: str, media_id: str, account: SavedTitles | None) -> dict[str, Any]:
        entry = (await self._read(identity, Reply.WATCHLIST_ERROR)).get(media_id)
        if entry is not None:
            await self._change(identity, Reply.WATCHLIST_ERROR, drop=[media_id])
        reply: dict[str, Any] = {"mediaId": media_id}
        if account is not None and entry is not None:
            reply["account"] = await _update(account, account.remove, entry)
        return reply

    async def saved_ids(self, identities: Iterable[str]) -> set[str]:
        """The ids of every card on any of these watchlists."""
        found: set[str] = set()
        for identity in identities:
            found.update(await self._storage.read_list(identity, LIST_NAME))
        return found

    async def prepare_room(
        self, request: CreateRoomRequest, user: User, account: SavedTitles | None, media: MediaProvider
    ) -> CreateRoomRequest:
        """The request as the room is created from it: with the rule of its watchlists when its
        source is ``watchlists`` (the creator's, with what their account keeps for later taken in)."""
        if any(rule.key == RULE_KEY for rule in request.filters):
            raise ProtocolError(
                Reply.CREATE_ROOM_ERROR,
                ErrorName.INVALID_FILTER,
                f"{RULE_KEY!r} is not a filter; ask for source 'watchlists' instead",
            )
        if request.source != "watchlists":
            return request
        if user.identity is None:
            raise no_identity(Reply.CREATE_ROOM_ERROR)
        if account is not None:
            await self._take_in(user.identity, account, media, MediaQuery(request.filters, request.libraries))
        rule = Filter(key=RULE_KEY, operator="=", value=[user.identity])
        return request.model_copy(update={"filters": [*request.filters, rule]})

    async def _take_in(self, identity: str, account: SavedTitles, media: MediaProvider, query: MediaQuery) -> None:
        """Add the films of the library that the account keeps for later (saved in a Plex app, say)."""
        try:
            refs = await account.refs()
            if not refs:
                return
            entries = await self._read(identity, Reply.CREATE_ROOM_ERROR)
            wanted = [
                item
                for item in await media.media(query)
                if item.id not in entries and account.ref([item.id, *item.aliases], _links(item.wire())) in refs
            ][: max(0, MOST_ENTRIES - len(entries))]
            first = self._next_time(entries)
            put = {
                item.id: _encoded(_Entry(savedAt=first + number, media=item.wire(), aliases=list(item.aliases)))
                for number, item in enumerate(wanted)
            }
            if put:
                await self._change(identity, Reply.CREATE_ROOM_ERROR, put=put)
        except (AccountError, ProviderError) as exc:
            # The room is made from what is saved here; the account's list is taken in another time.
            log.warning("could not take in the %s watchlist: %s", account.service, exc)


def _encoded(entry: _Entry) -> str:
    return msgspec.json.encode(entry).decode()


async def _update(account: SavedTitles, change: Callable[[str], Awaitable[None]], entry: _Entry) -> dict[str, Any]:
    """What changing the account's own list did: protocol.md's AccountUpdate."""
    media_id = str(entry.media.get("id", ""))
    ref = account.ref([media_id, *entry.aliases], _links(entry.media))
    if ref is None:
        return {"service": account.service, "updated": False, "problem": "unsupported"}
    try:
        await change(ref)
    except AccountError as exc:
        log.warning("could not update the %s watchlist: %s", account.service, exc)
        return {"service": account.service, "updated": False, "problem": "failed"}
    return {"service": account.service, "updated": True}


class WatchlistMedia(CombinedProvider):
    """The media of every room: the combined sources, where the rule of a room drawn from
    watchlists keeps the films on those lists."""

    def __init__(self, providers: Sequence[MediaProvider], watchlists: Watchlists) -> None:
        super().__init__(providers)
        self._watchlists = watchlists

    async def media(self, query: MediaQuery) -> list[Media]:
        rules = [rule for rule in query.filters if rule.key == RULE_KEY]
        if not rules:
            return await super().media(query)
        others = [rule for rule in query.filters if rule.key != RULE_KEY]
        items = await super().media(MediaQuery(others, query.libraries))
        try:
            saved = await self._watchlists.saved_ids(value for rule in rules for value in rule.value)
        except StorageError as exc:
            raise ProviderError("the watchlists cannot be read right now", status=503) from exc
        # A card saved under another of its names (before it had an IMDb id, say) is the same film.
        return [item for item in items if item.id in saved or not saved.isdisjoint(item.aliases)]
