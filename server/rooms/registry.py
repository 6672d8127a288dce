"""The rooms of this process: creates them, opens them lazily from storage, evicts idle ones.

What a change to a room means is decided by ``RoomChanges`` (this process alone, or shared through
Redis); the registry only keeps the rooms in memory, one opening at a time per room.
"""

from __future__ import annotations

import logging
import random
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import anyio

from server.names import skeleton
from server.offload import Busy, Offload
from server.protocol import (
    CreateRoomRequest,
    ErrorName,
    ProtocolError,
    Reply,
    not_rated,
    rating_error,
    room_not_found,
    storage_unavailable,
)
from server.providers import InvalidFilter, Media, MediaProvider, MediaQuery, ProviderError
from server.user import User
from storage import (
    RatingValue,
    SerializedRoom,
    Storage,
    StorageError,
    Unwatched,
    hash_password,
    room_key,
    verify_password,
)
from storage.errors import JoinCodeTaken

from .changes import (
    Build,
    MemberAction,
    Reshape,
    RoomChanges,
    Snapshot,
    new_member_token,
    new_seat_code,
    not_owner,
    pick_refused,
)
from .decisions import Actor, acts_as_owner, token_hash
from .deck import Deck, Library, order_media, stable_seed
from .join_codes import new_join_code, room_named
from .room import Arrival, Room, Seat
from .rules import Refusal, ban_key, end_reason, owner_of
from .unwatched import leaving_out_watched, people_of

log = logging.getLogger("server.rooms")
_T = TypeVar("_T")

# The closest calls a results screen shows, and how often time limits are looked at (seconds).
CLOSEST_CALLS = 5
TIME_LIMIT_CHECK = 1.0
# Rooms past their retention are looked for a minute after startup, then every hour.
RETENTION_FIRST_SWEEP = 60.0
RETENTION_SWEEP = 3600.0
# Join codes drawn before giving up: ten taken in a row means the storage refuses every code.
JOIN_CODE_DRAWS = 10


@dataclass(frozen=True)
class RoomLimits:
    """How many rooms storage may hold, the disk it must keep free, how long unopened rooms stay."""

    max_rooms: int = 0
    min_free_bytes: int = 0
    retention_days: float = 0


class RoomRegistry:
    def __init__(
        self,
        storage: Storage,
        provider: MediaProvider,
        changes: RoomChanges,
        *,
        offload: Offload,
        idle_timeout: float,
        limits: RoomLimits | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], float] = anyio.current_time,
    ) -> None:
        self.storage = storage
        self.provider = provider
        self.changes = changes
        self.offload = offload
        self.limits = limits or RoomLimits()
        # The keys of the rooms the host defines (config.yaml's ``rooms``): they never expire, no one
        # else creates them, and opening one first brings its deck up to date (``refresh_deck``, set
        # by ``server.rooms.standing``).
        self.standing: set[str] = set()
        self.refresh_deck: Callable[[Room], Awaitable[None]] | None = None
        self.rooms: dict[str, Room] = {}
        self.idle_timeout = idle_timeout
        self._rng = rng or random.Random()
        self._clock = clock
        self._idle_since: dict[str, float] = {}
        self._locks: weakref.WeakValueDictionary[str, anyio.Lock] = weakref.WeakValueDictionary()
        # Room names' skeletons, computed once each (creating a room compares with every other).
        self._skeletons: dict[str, str] = {}
        # The listing each query gave last, while a room holds it: rooms on one listing share it.
        self._libraries: weakref.WeakValueDictionary[tuple[object, ...], Library] = weakref.WeakValueDictionary()
        changes.bind(self._dropped, lambda state: self._listing(state, Reply.ERROR), self._redealt)

    @staticmethod
    def key_of(name: str) -> str:
        return room_key(name)

    def _lock(self, key: str) -> anyio.Lock:
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = anyio.Lock()
        return lock

    def _builder(self, reply_type: Reply, library: Library | None = None) -> Build:
        """Makes the room of a snapshot: its deck, on its listing (fetched unless given)."""

        async def build(snapshot: Snapshot) -> Room:
            state = snapshot.state
            if state.join_code is None:  # stored before rooms had codes
                state.join_code = await self._give_join_code(state.room_name)
            unordered = state.media_ids is None
            shared = library
            if shared is None:
                shared = self._library(_query(state), await self._listing(state, reply_type))
            room = Room(
                state,
                self._deck(state, shared, stored=library is None),
                on_change=self.changes.changed,
                now_ms=self.changes.now_ms,
                online=snapshot.online,
                seq=snapshot.seq,
            )
            if unordered:
                room.changed()  # a legacy room got its order just now: keep it
            self.rooms[room.key] = room
            self._idle_since[room.key] = self._clock()
            return room

        return build

    async def _listing(self, state: SerializedRoom, reply_type: Reply) -> list[Media]:
        """The listing of the room's library (what its filters select, in any order)."""
        return await self._media(_query(state), reply_type)

    def _library(self, query: MediaQuery, items: list[Media]) -> Library:
        """The shared library of this listing: the one rooms already hold when it is unchanged."""
        key = (tuple((rule.key, rule.operator, *rule.value) for rule in query.filters), *query.libraries)
        library = self._libraries.get(key)
        if library is None or not library.holds(items):
            library = self._libraries[key] = Library(items)
        return library

    def _redealt(self, state: SerializedRoom, items: list[Media]) -> Deck:
        """The deck of a room whose deck was replaced (its new ids, on the listing ``items``)."""
        return self._deck(state, self._library(_query(state), items), stored=False)

    def _deck(self, state: SerializedRoom, library: Library, *, stored: bool) -> Deck:
        cards = library.cards
        if state.media_ids is None:
            # A room from the original MovieMatch: its order is fixed now, from a seed derived from
            # its key, so every process restoring it derives the same order.
            seed = state.media_seed if state.media_seed is not None else stable_seed(state.room_key)
            ordered = order_media(list(cards.values()), state.sort_order or state.sort, seed)
            state.media_seed, state.media_ids = seed, [item.id for item in ordered]
        elif stored:
            # The same ids, as the strings the library's cards hold: a 100,000-film deck of strings
            # of its own would cost megabytes per room.
            state.media_ids = [card.id if (card := cards.get(media_id)) else media_id for media_id in state.media_ids]
        deck = Deck(state.media_ids, library)
        missing = len(set(state.media_ids)) - len(deck)
        if missing:
            log.warning("room %r: %d of its items are no longer in the library", state.room_name, missing)
        return deck

    async def _media(self, query: MediaQuery, reply_type: Reply) -> list[Media]:
        try:
            return await self.provider.media(query)
        except InvalidFilter as exc:
            raise ProtocolError(reply_type, ErrorName.INVALID_FILTER, str(exc)) from exc
        except ProviderError as exc:
            raise ProtocolError(reply_type, ErrorName.UNKNOWN_ERROR, f"the media library failed: {exc}") from exc

    # -- create and open -------------------------------------------------------------------------

    async def _scrypt(self, reply_type: Reply, client: str, work: Callable[..., _T], *args: str) -> _T:
        """Key stretching in the CPU pool, counted against the client (``client``: its address)."""
        try:
            return await self.offload.run_in_thread(client, work, *args)
        except Busy as exc:
            raise ProtocolError(reply_type, ErrorName.SERVER_BUSY, "the server is busy; try again in a moment") from exc

    async def create(
        self, name: str, request: CreateRoomRequest, creator: User, client: str, unwatched: Unwatched | None = None
    ) -> Room:
        """Create and store a room named ``name`` (already checked), without the films the people of
        ``unwatched`` watched; the caller then seats its creator."""
        key = room_key(name)
        async with self._lock(key):
            if key in self.rooms or key in self.standing or await self._stored(name, Reply.CREATE_ROOM_ERROR):
                raise _room_exists(name)
            await self._room_for_one_more()
            if room_key(await self.resolve(name, Reply.CREATE_ROOM_ERROR)) != key:
                raise ProtocolError(
                    Reply.CREATE_ROOM_ERROR,
                    ErrorName.ROOM_EXISTS,
                    f"{name} is the join code of another room; choose another name",
                )
            alike = await self._look_alike(name)
            if alike is not None:
                raise ProtocolError(
                    Reply.CREATE_ROOM_ERROR,
                    ErrorName.ROOM_EXISTS,
                    f"a room called {alike} exists, and {name} would look the same; choose another name",
                )
            items = await self._media(MediaQuery(request.filters, request.libraries), Reply.CREATE_ROOM_ERROR)
            dealt = items if unwatched is None else await self._unwatched(items, unwatched)
            if not dealt:
                raise ProtocolError(
                    Reply.CREATE_ROOM_ERROR,
                    ErrorName.NO_MEDIA,
                    "its people have watched every film" if items else "no items match the filters of this room",
                )
            seed = self._rng.getrandbits(63)
            library = self._library(MediaQuery(request.filters, request.libraries), items)
            ordered = order_media(dealt, request.sortOrder or request.sort, seed)
            password_hash = None
            if request.password:
                password_hash = await self._scrypt(Reply.CREATE_ROOM_ERROR, client, hash_password, request.password)
            state = SerializedRoom(
                room_name=name,
                password_hash=password_hash,
                sort=request.sort,
                sort_order=request.sortOrder,
                room_type=request.roomType,
                match_threshold=request.matchThreshold,
                options=list(request.options),
                filters=list(request.filters),
                libraries=list(request.libraries),
                unwatched=unwatched,
                creator_plex_user_id=creator.plex_id or "",
                creator_plex_username=creator.userName,
                owner=ban_key(creator.identity, skeleton(creator.userName)),
                **end_conditions(request, self.changes.now_ms()),
                media_ids=[item.id for item in ordered],
                media_seed=seed,
            )
            try:
                # Stored before the reply: an acknowledged room exists even if the process dies now.
                created = await self.store_new(state)
            except StorageError as exc:
                log.error("could not store new room %r: %s", name, exc)
                raise storage_unavailable(Reply.CREATE_ROOM_ERROR, "the room could not be stored") from exc
            if not created:  # by another process, meanwhile
                raise _room_exists(name)
            try:
                room = await self.changes.adopt(state, self._builder(Reply.CREATE_ROOM_ERROR, library))
            except StorageError as exc:
                raise storage_unavailable(
                    Reply.CREATE_ROOM_ERROR, "the room was stored but cannot be opened right now"
                ) from exc
        if room is None:
            raise ProtocolError(Reply.CREATE_ROOM_ERROR, ErrorName.ROOM_NOT_FOUND, f"{name} was deleted meanwhile")
        return room

    async def _unwatched(self, items: list[Media], unwatched: Unwatched) -> list[Media]:
        """The films of ``items`` none of the people has watched."""
        try:
            watched = await self.provider.watched(unwatched.people, refresh=True)
        except ProviderError as exc:
            raise ProtocolError(
                Reply.CREATE_ROOM_ERROR, ErrorName.UNKNOWN_ERROR, f"what its people watched cannot be read: {exc}"
            ) from exc
        return [item for item in items if item.id not in watched]

    async def store_new(self, state: SerializedRoom) -> bool:
        """``storage.create_room`` with a join code no other room has (drawn again while taken)."""
        for _ in range(JOIN_CODE_DRAWS):
            state.join_code = new_join_code(self._rng)
            if await self.storage.has_room(state.join_code):
                continue  # a room called so: its name would win over the code
            try:
                return await self.storage.create_room(state)
            except JoinCodeTaken:
                continue
        raise StorageError("create_room", repr(state.room_name), f"no free join code in {JOIN_CODE_DRAWS} draws")

    async def _give_join_code(self, room_name: str) -> str | None:
        """The join code of a stored room that had none, given now (None: the room is gone)."""
        for _ in range(JOIN_CODE_DRAWS):
            try:
                return await self.storage.give_join_code(room_name, new_join_code(self._rng))
            except JoinCodeTaken:
                continue
        raise StorageError("give_join_code", repr(room_name), f"no free join code in {JOIN_CODE_DRAWS} draws")

    async def resolve(self, name: str, reply_type: Reply) -> str:
        """The room name a client's ``name`` stands for (``join_codes.room_named``)."""
        if room_key(name) in self.rooms:
            return name
        try:
            return await room_named(self.storage, name)
        except StorageError as exc:
            log.error("could not look up room %r: %s", name, exc)
            raise storage_unavailable(reply_type, "rooms cannot be read right now") from exc

    async def _room_for_one_more(self) -> None:
        """Creation stops before storage does: at the cap on rooms, or the free-disk floor."""
        limits = self.limits
        try:
            free = await self.storage.free_bytes()
            stored = len(await self.storage.list_room_names()) if limits.max_rooms else 0
        except StorageError as exc:
            raise storage_unavailable(Reply.CREATE_ROOM_ERROR, "rooms cannot be read right now") from exc
        if limits.max_rooms and stored >= limits.max_rooms:
            log.warning("a room was refused: %d rooms are stored, the most MAX_ROOMS allows", stored)
            raise _storage_full(f"this server keeps at most {limits.max_rooms} rooms; reuse one")
        if free is not None and free < limits.min_free_bytes:
            log.warning("a room was refused: %d MB of disk are free, below MIN_FREE_DISK_MB", free // 2**20)
            raise _storage_full("this server's disk is nearly full; ask its host")

    async def _look_alike(self, name: str) -> str | None:
        """A stored room whose name looks like ``name`` (but is not the same name), if any."""
        wanted = skeleton(name)
        try:
            names = await self.storage.list_room_names()
        except StorageError as exc:
            raise storage_unavailable(Reply.CREATE_ROOM_ERROR, "rooms cannot be read right now") from exc
        key = room_key(name)
        for other in names:
            if other not in self._skeletons:
                self._skeletons[other] = skeleton(other)
            if self._skeletons[other] == wanted and room_key(other) != key:
                return other
        return None

    async def _stored(self, name: str, reply_type: Reply) -> bool:
        try:
            return await self.storage.has_room(name)
        except StorageError as exc:
            log.error("could not look up room %r: %s", name, exc)
            raise storage_unavailable(reply_type, "rooms cannot be read right now") from exc

    async def get(self, name: str, reply_type: Reply = Reply.JOIN_ROOM_ERROR) -> Room | None:
        """The room, opened from storage on first access (one opening however many ask at once)."""
        key = room_key(name)
        room = self.rooms.get(key)
        if room is not None:
            return room
        async with self._lock(key):
            room = self.rooms.get(key)
            if room is not None:
                return room
            try:
                room = await self.changes.open(name, self._builder(reply_type))
            except StorageError as exc:
                log.error("could not restore room %r: %s", name, exc)
                raise storage_unavailable(reply_type, "this room cannot be read right now") from exc
            if room is not None and key in self.standing and self.refresh_deck is not None:
                await self.refresh_deck(room)
            if room is not None and room.state.unwatched is not None:
                await self._leave_out_watched(room, self.changes.reshape)
            return room

    async def _leave_out_watched(
        self, room: Room, reshape: Callable[[str, Reshape], Awaitable[bool]], joining: str | None = None
    ) -> None:
        """Films the room's people watched leave its deck (``unwatched.leaving_out_watched``); should
        the media servers or storage fail now, the deck stays as it is until the next time."""
        try:
            await reshape(room.name, leaving_out_watched(self.provider, self.changes.now_ms, joining))
        except (ProviderError, StorageError) as exc:
            log.warning("room %r: what its people watched cannot be left out now: %s", room.name, exc)

    async def reshape(self, name: str, reshape: Reshape) -> bool:
        """Give a stored room a new deck and settings (``RoomChanges.reshape``), never while it is
        being opened here."""
        async with self._lock(room_key(name)):
            return await self.changes.reshape(name, reshape)

    # -- membership and ratings -----------------------------------------------------------------

    async def join(
        self,
        name: str,
        seat: Seat,
        user: User,
        *,
        password: str | None,
        member_token: str | None,
        client: str,
        seat_code: str | None = None,
        window: int | None = None,
        count_watched: bool = False,
    ) -> Room:
        """Seat a connection in a room (it is sent joinRoomSuccess, with ``window`` cards of its
        deck, or all of them); with ``count_watched``, the films the user watched leave the deck first
        (in a room that asks its members, for one of the media servers' people)."""
        while True:
            room = await self.get(name)
            if room is None:
                raise room_not_found(Reply.JOIN_ROOM_ERROR, name)
            stored_hash = room.state.password_hash
            # No password for a password room is refused at once: no key stretching for nothing.
            if stored_hash is not None and (
                not password
                or not await self._scrypt(Reply.JOIN_ROOM_ERROR, client, verify_password, password, stored_hash)
            ):
                raise ProtocolError(Reply.JOIN_ROOM_ERROR, ErrorName.ACCESS_DENIED, f"{room.name} requires a password")
            # The password check awaited: the room may have been evicted meanwhile; then open it again.
            if self.rooms.get(room.key) is room:
                break
        if count_watched and await self._countable(room, user):
            await self._leave_out_watched(room, self.reshape, user.identity)
        await self.seat(
            room, seat, user, Reply.JOIN_ROOM_SUCCESS, member_token=member_token, seat_code=seat_code, window=window
        )
        return room

    async def seat(
        self,
        room: Room,
        seat: Seat,
        user: User,
        reply_type: Reply,
        *,
        member_token: str | None = None,
        seat_code: str | None = None,
        window: int | None = None,
    ) -> None:
        """Seat a connection in a room it may enter; it is sent ``reply_type`` with the room."""
        countable = await self._countable(room, user)
        token = new_member_token()
        request = self.changes.join_request(
            room, seat, user, member_token=member_token, seat_code=seat_code, new_token=token
        )
        await self.changes.join(room, request, Arrival(seat, token, reply_type, window, countable))
        self._idle_since.pop(room.key, None)

    async def _countable(self, room: Room, user: User) -> bool:
        """Whether the films the user watched may count from now on: the room asks its members,
        who sign in as one of the media servers' people, and they do not count yet."""
        option = room.state.unwatched
        identity = user.identity
        if option is None or not option.members or identity is None or identity in option.people:
            return False
        if ban_key(identity, skeleton(user.userName)) in room.state.removed:
            return False  # the owner removed them: they would be seated nowhere
        return identity in await people_of(self.provider)

    async def leave(self, room: Room, seat: Seat, *, permanently: bool) -> None:
        """A connection closed, or its member left the room for good (``leaveRoom``)."""
        try:
            await self.changes.leave(room, seat, permanently=permanently)
        finally:
            if not room.seats:
                self._idle_since[room.key] = self._clock()

    async def rate(self, room: Room, user_name: str, media_id: str, rating: RatingValue) -> bool:
        """Record a rating; True when it made a new match."""
        if media_id not in room.deck:
            raise rating_error(ErrorName.UNKNOWN_MEDIA, f"{media_id} is not in this room", media_id)
        return await self.changes.rate(room, user_name, media_id, rating)

    async def undo(self, room: Room, user_name: str, media_id: str) -> None:
        if media_id not in room.deck:
            raise not_rated(user_name, media_id)
        await self.changes.undo(room, user_name, media_id)

    async def manage(self, room: Room, seat: Seat, user: User, action: MemberAction, name: str) -> str | None:
        """The owner's action on a member of their room; returns the seat code of an offered seat."""
        code = new_seat_code() if action is MemberAction.OFFER_SEAT else None
        code_hash = token_hash(code) if code else ""
        await self.changes.manage(room, _actor(room, seat, user), action, name, code_hash)
        return code

    async def delete(self, name: str, seat: Seat, user: User) -> None:
        try:
            room = await self.get(name, Reply.DELETE_ROOM_ERROR)
        except ProtocolError as exc:
            if exc.name is ErrorName.STORAGE_UNAVAILABLE:
                raise
            room = None  # a room that cannot be opened (its library failed) is not deleted from here
        if room is None:
            raise not_owner(Reply.DELETE_ROOM_ERROR)
        await self.changes.delete(room, _actor(room, seat, user))

    async def pick(self, room: Room, seat: Seat, user: User, *, again: bool) -> None:
        """Pick one of the room's matches for everyone (``picked`` is broadcast); once the room has
        a pick, only its owner picks again."""
        if room.state.pick is not None and not again:
            return  # the pick stands: the caller is told it
        matches = sorted(media_id for media_id in room.state.matches if media_id in room.deck)
        if room.state.pick is not None and len(matches) > 1 and room.state.pick.media_id in matches:
            matches.remove(room.state.pick.media_id)  # picking again gives another
        if not matches:
            raise pick_refused(Refusal.NOTHING_TO_DO)
        await self.changes.pick(room, _actor(room, seat, user), self._rng.choice(matches))

    def results(self, room: Room, user_name: str) -> dict[str, object]:
        """The room's matches, the most liked first, its pick, and (once this member has rated every
        film, or the room has ended) the closest calls: the most liked films that did not match."""
        state = room.state
        solo = state.room_type == "solo"
        liked: dict[str, list[str]] = {
            media_id: [user for user, value, _ in ratings if value == "like" and (not solo or user == user_name)]
            for media_id, ratings in state.ratings.items()
            if media_id in room.deck
        }
        matched = {media_id for media_id, users in liked.items() if users} if solo else set(state.matches)
        order = sorted(
            (media_id for media_id in matched if media_id in room.deck),
            key=lambda media_id: (-len(liked.get(media_id, [])), state.matches.get(media_id, 0), media_id),
        )
        results: dict[str, object] = {
            "roomName": room.name,
            "rules": room.rules(),
            "matches": [
                {
                    "media": room.deck[media_id].wire(),
                    "likes": len(liked.get(media_id, [])),
                    "users": liked.get(media_id, []),
                    "matchedAt": state.matches.get(media_id),
                }
                for media_id in order
            ],
        }
        if state.pick is not None and state.pick.media_id in room.deck:
            results["pick"] = {"mediaId": state.pick.media_id, "at": state.pick.at}
        done = room.progress(user_name) >= 1 or end_reason(state, user_name, self.changes.now_ms()) is not None
        results["deckDone"] = done
        if done and not solo:
            near = sorted(
                (media_id for media_id, users in liked.items() if users and media_id not in matched),
                key=lambda media_id: (-len(liked[media_id]), media_id),
            )[:CLOSEST_CALLS]
            results["closestCalls"] = [
                {"media": room.deck[media_id].wire(), "likes": len(liked[media_id]), "users": liked[media_id]}
                for media_id in near
            ]
        return results

    def members(self, room: Room, seat: Seat, user: User) -> dict[str, object]:
        """Every member (connected or not) and, for the owner, who was removed."""
        owner = room.owner_name()
        listing: dict[str, object] = {
            "roomName": room.name,
            "members": [
                {
                    "userName": name,
                    "online": name in room.online,
                    "progress": room.progress(name),
                    "owner": name == owner,
                    "lastSeen": member.seen_at or member.joined_at,
                }
                for name, member in sorted(room.state.members.items(), key=lambda item: item[1].joined_at)
            ],
        }
        if self.owns(room, seat, user):
            listing["removed"] = sorted(room.state.removed.values())
        return listing

    @staticmethod
    def owns(room: Room, seat: Seat, user: User) -> bool:
        """Whether this connection acts for the room's owner (who alone may delete it, request a
        title for it, start a match playing ...)."""
        return acts_as_owner(room.state, room.online, owner_of(room.state), _actor(room, seat, user))

    def _dropped(self, room: Room) -> None:
        """The room was deleted (here or by another process): forget it."""
        if self.rooms.get(room.key) is room:
            del self.rooms[room.key]
        self._idle_since.pop(room.key, None)

    # -- the process's life ---------------------------------------------------------------------

    def healthy(self) -> bool:
        return self.changes.healthy()

    async def run(self) -> None:
        """The background work of the rooms (eviction, and that of ``changes``), until cancelled."""
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(self.changes.run)
            tasks.start_soon(self._announce_time_limits)
            tasks.start_soon(self._run_retention)
            await self._run_eviction()

    async def stop(self, budget: float) -> None:
        await self.changes.stop(budget)

    async def evict_idle(self) -> int:
        """Drop rooms nobody has been connected to for ``idle_timeout`` (saved first); returns how many."""
        now = self._clock()
        evicted = 0
        for key, since in list(self._idle_since.items()):
            room = self.rooms.get(key)
            if room is None or room.seats or now - since < self.idle_timeout:
                continue
            if not await self.changes.settle(room):
                continue  # not saved: it stays in memory, and its saves are retried
            if not room.seats and self.rooms.get(key) is room:
                del self.rooms[key]
                self._idle_since.pop(key, None)
                evicted += 1
                await self.changes.release(room)
        return evicted

    async def _run_eviction(self) -> None:
        interval = max(0.05, min(30.0, self.idle_timeout / 2))
        while True:
            await anyio.sleep(interval)
            await self.evict_idle()

    async def expire_unopened(self) -> list[str]:
        """Delete the stored rooms nobody has opened for the retention period (standing rooms and
        rooms open here excepted); returns their names."""
        days = self.limits.retention_days
        if not days:
            return []
        cutoff = datetime.fromtimestamp(self.changes.now_ms() / 1000, UTC) - timedelta(days=days)
        expired = []
        for summary in await self.storage.list_summaries():
            key = room_key(summary.name)
            if summary.opened_at >= cutoff or key in self.rooms or key in self.standing:
                continue
            if await self.changes.expire(summary.name):
                log.info("room %r deleted: nobody has opened it for %g days", summary.name, days)
                expired.append(summary.name)
        return expired

    async def _run_retention(self) -> None:
        await anyio.sleep(RETENTION_FIRST_SWEEP)
        while True:
            try:
                await self.expire_unopened()
            except StorageError as exc:
                log.warning("expired rooms could not be deleted (will try again): %s", exc)
            await anyio.sleep(RETENTION_SWEEP)

    async def _announce_time_limits(self) -> None:
        """Tell a room's members the moment its time limit passes (no change makes that happen)."""
        while True:
            now = self.changes.now_ms()
            for room in list(self.rooms.values()):
                if room.state.ends_at and now >= room.state.ends_at:
                    room.time_up()
            await anyio.sleep(TIME_LIMIT_CHECK)


def end_conditions(request: CreateRoomRequest, since: int) -> dict[str, int | None]:
    """The room's end conditions as stored (none: none given); a time limit counts from ``since`` (ms)."""
    ends = request.endConditions
    if ends is None:
        return {}
    return {
        "match_limit": ends.matches,
        "ends_at": None if ends.minutes is None else since + round(ends.minutes * 60_000),
        "like_cap": ends.likes,
    }


def _actor(room: Room, seat: Seat, user: User) -> Actor:
    return Actor(identity=user.identity, skeleton=skeleton(user.userName), seated_as=room.seat_name(seat))


def _storage_full(message: str) -> ProtocolError:
    return ProtocolError(Reply.CREATE_ROOM_ERROR, ErrorName.STORAGE_FULL, message)


def _room_exists(name: str) -> ProtocolError:
    return ProtocolError(Reply.CREATE_ROOM_ERROR, ErrorName.ROOM_EXISTS, f"{name} already exists")


def _query(state: SerializedRoom) -> MediaQuery:
    return MediaQuery(state.filters, state.libraries)
