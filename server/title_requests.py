"""Requests for matched titles the library lacks (Overseerr/Jellyseerr), and their state.

A card of Seerr's lists (``inLibrary: false``) that matched may be requested by the room's owner;
the members who see the match are told its state (``requestStatus``), read from Seerr again every
``request_refresh_interval`` while they are connected. Seerr keeps the state: nothing is stored
here, and each process reads it for the members connected to it, so the members of a room spread
over several processes all see a change within one interval.
"""

from __future__ import annotations

import itertools
import logging
import weakref
from collections.abc import Iterable

import anyio

from server.protocol import ErrorName, ProtocolError, Reply
from server.providers import Media, ProviderError
from server.providers.combined import CombinedProvider
from server.providers.origin import origin
from server.providers.seerr import SeerrProvider
from server.rooms.match_news import sees_match, tell_about_match
from server.rooms.registry import RoomRegistry
from server.rooms.room import Room, Seat
from server.user import User

log = logging.getLogger(__name__)


def _refused(name: ErrorName, message: str, media_id: str) -> ProtocolError:
    return ProtocolError(Reply.REQUEST_MEDIA_ERROR, name, message, mediaId=media_id)


class TitleRequests:
    def __init__(self, media: CombinedProvider, registry: RoomRegistry, *, interval: float) -> None:
        self._media = media
        self._registry = registry
        self._interval = interval
        # The state each room's members were last told, per title, with the number of that telling:
        # a reading of Seerr that began before a newer telling (a request made meanwhile) is stale.
        self._told: weakref.WeakKeyDictionary[Room, dict[str, tuple[str, int]]] = weakref.WeakKeyDictionary()
        self._tellings = itertools.count(1)
        # Seerr servers that failed a reading: said once, until one answers again.
        self._failing: set[str] = set()

    def _source(self, item: Media) -> tuple[SeerrProvider, str] | None:
        """The Seerr server that listed this card, and its key there; None for the library's cards."""
        found = origin(item.linkUrl) if item.inLibrary is False else None
        provider = self._media.providers.get(found.provider_id) if found is not None else None
        if isinstance(provider, SeerrProvider) and found is not None and provider.requestable(found.key):
            return provider, found.key
        return None

    def _matched(self, room: Room, members: Iterable[str]) -> list[Media]:
        """The matches these members see that the library lacks."""
        wanted = set(members)
        # Only a rated card can be a match: the ratings are few beside a big deck.
        items = (room.deck.get(media_id) for media_id in room.state.ratings)
        return [
            item
            for item in items
            if item is not None
            and item.inLibrary is False
            and any(sees_match(room, member, item.id) for member in wanted)
            and self._source(item) is not None
        ]

    async def _statuses(self, items: Iterable[Media]) -> dict[str, str]:
        """Each title's state read from Seerr now; a title Seerr does not answer for is left out."""
        found: dict[str, str] = {}

        async def read(item: Media) -> None:
            source = self._source(item)
            if source is None:
                return
            provider, key = source
            try:
                found[item.id] = await provider.status(key)
            except ProviderError as exc:
                if provider.id not in self._failing:
                    log.warning("could not read the request state of %r (and maybe more): %s", item.title, exc)
                self._failing.add(provider.id)
                return
            if provider.id in self._failing:
                self._failing.discard(provider.id)
                log.info("request states are read from %s again", provider.id)

        async with anyio.create_task_group() as tasks:
            for item in {item.id: item for item in items}.values():
                tasks.start_soon(read, item)
        return found

    async def statuses(self, room: Room, seat: Seat) -> list[dict[str, str]]:
        """The state of every match the library lacks that this connection's member sees."""
        member = room.seat_name(seat)
        if member is None:
            raise ProtocolError(Reply.GET_REQUESTS_ERROR, ErrorName.NOT_IN_ROOM, "join a room first")
        found = await self._statuses(self._matched(room, [member]))
        return [{"mediaId": media_id, "status": status} for media_id, status in found.items()]

    async def request(self, room: Room, seat: Seat, user: User, media_id: str) -> dict[str, str]:
        """The owner's request of a matched title the library lacks; its state goes to the room."""
        member = room.seat_name(seat)
        if member is None:
            raise _refused(ErrorName.NOT_IN_ROOM, "join a room first", media_id)
        item = room.deck.get(media_id)
        if item is None:
            raise _refused(ErrorName.UNKNOWN_MEDIA, f"{media_id} is not in this room", media_id)
        source = self._source(item)
        if source is None:
            raise _refused(ErrorName.NOT_REQUESTABLE, f"{item.title} is in the library: nothing to request", media_id)
        if not sees_match(room, member, media_id):
            raise _refused(ErrorName.NOT_A_MATCH, f"{item.title} has not matched in this room", media_id)
        if not self._registry.owns(room, seat, user):
            raise _refused(ErrorName.NOT_ROOM_OWNER, "only the room's owner requests titles", media_id)
        provider, key = source
        try:
            status = await provider.request(key)
        except ProviderError as exc:
            raise _refused(ErrorName.PROVIDER_ERROR, str(exc), media_id) from exc
        self._tell(room, {media_id: status})
        return {"mediaId": media_id, "status": status}

    def _tell(self, room: Room, statuses: dict[str, str], read_from: int | None = None) -> None:
        """Send the members who see each title its state when it is news. A request just made
        (``read_from`` None) is always current; a state read from Seerr is current only when the
        reading began after the last telling (number ``read_from``): a request made meanwhile is
        newer. A reading may also see a request before its own reply does: it is told once."""
        told = self._told.setdefault(room, {})
        telling = next(self._tellings)
        news: dict[str, str] = {}
        for media_id, status in statuses.items():
            before = told.get(media_id)
            if read_from is not None and before is not None and before[1] > read_from:
                continue
            told[media_id] = (status, telling)
            if before is None or before[0] != status:
                news[media_id] = status
        for media_id, status in news.items():
            tell_about_match(room, media_id, Reply.REQUEST_STATUS, {"mediaId": media_id, "status": status})

    async def refresh(self) -> None:
        """Read again the state of the matches the library lacks, in every room with members here."""
        for room in list(self._registry.rooms.values()):
            if room.seats:
                items = self._matched(room, list(room.seats))
                if items:
                    read_from = next(self._tellings)
                    self._tell(room, await self._statuses(items), read_from)

    async def run(self) -> None:
        while True:
            await anyio.sleep(self._interval)
            await self.refresh()
