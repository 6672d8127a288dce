"""The rooms of this process: creates them, restores them lazily from storage, evicts idle ones."""

from __future__ import annotations

import hashlib
import logging
import random
import weakref
from collections.abc import Callable

import anyio

from server.metrics import Metrics
from server.protocol import CreateRoomRequest, ProtocolError, clean_name, encode, storage_unavailable
from server.providers import InvalidFilter, Media, MediaProvider, MediaQuery, ProviderError
from server.user import User
from storage import RatingValue, SerializedRoom, Storage, StorageError, hash_password, room_key, verify_password

from .events import Deleted
from .room import Room, Seat
from .saver import SaveObserver, Saver
from .shared.redis import LiveRoom, RedisLive
from .shared.rooms import SharedRooms, online_seats

log = logging.getLogger("server.rooms")


def order_media(items: list[Media], order: str | None, seed: int) -> list[Media]:
    """The room's fixed order. The provider's own order never matters, so a restore rebuilds it exactly."""
    by_id = sorted(items, key=lambda item: item.id)
    if order == "newest":
        return sorted(by_id, key=lambda item: item.added or f"{item.year or 0:04d}", reverse=True)
    if order == "oldest":
        return sorted(by_id, key=lambda item: item.added or f"{item.year or 9999:04d}")
    if order == "rating":
        return sorted(by_id, key=lambda item: -item.rating)
    random.Random(seed).shuffle(by_id)
    return by_id


def stable_seed(key: str) -> int:
    """The media order seed of a room that has none: the same in every process restoring it."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8]) >> 1


class RoomRegistry:
    def __init__(
        self,
        storage: Storage,
        provider: MediaProvider,
        *,
        save_delay: float,
        save_max_wait: float,
        idle_timeout: float,
        now_ms: Callable[[], int],
        rng: random.Random | None = None,
        clock: Callable[[], float] = anyio.current_time,
        observer: SaveObserver | None = None,
        max_members: int = 50,
    ) -> None:
        self.max_members = max_members
        self.storage = storage
        self.provider = provider
        self.rooms: dict[str, Room] = {}
        self._observer = observer
        self.saver = Saver(
            storage, self._snapshot, delay=save_delay, max_wait=save_max_wait, clock=clock, observer=self
        )
        self.idle_timeout = idle_timeout
        self._now_ms = now_ms
        self._rng = rng or random.Random()
        self._clock = clock
        self._idle_since: dict[str, float] = {}
        self._locks: weakref.WeakValueDictionary[str, anyio.Lock] = weakref.WeakValueDictionary()
        # Set (by ``share``) when the rooms are shared with other processes through Redis.
        self.shared: SharedRooms | None = None

    def share(self, live: RedisLive, presence_timeout: float, metrics: Metrics) -> SharedRooms:
        """Share the rooms with the other processes using this Redis: from now on every change goes
        through Redis and nothing is saved from memory (a snapshot would overwrite others' changes)."""
        self.shared = SharedRooms(
            live,
            presence_timeout=presence_timeout,
            max_members=self.max_members,
            now_ms=self._now_ms,
            forget=self._forget,
            metrics=metrics,
        )
        return self.shared

    @staticmethod
    def key_of(name: str) -> str:
        return room_key(name)

    def _snapshot(self, key: str) -> SerializedRoom | None:
        room = self.rooms.get(key)
        return room.snapshot() if room is not None else None

    # -- the saver's observer ----------------------------------------------------------------------

    def save_succeeded(self, key: str, seconds: float) -> None:
        if self._observer is not None:
            self._observer.save_succeeded(key, seconds)

    def save_failed(self, key: str, error: StorageError, *, outage_started: bool) -> None:
        if self._observer is not None:
            self._observer.save_failed(key, error, outage_started=outage_started)
        room = self.rooms.get(key)
        if outage_started and room is not None:
            # Their ratings were acknowledged but are only in memory: say so once per outage.
            frame = encode(
                "error", storage_unavailable("error", "changes to this room cannot be saved right now").payload()
            )
            for seat in list(room.seats.values()):
                seat.send(frame)

    def _lock(self, key: str) -> anyio.Lock:
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = anyio.Lock()
        return lock

    def _room(self, state: SerializedRoom, media: list[Media], live: LiveRoom | None = None) -> Room:
        room = Room(
            state,
            media,
            now_ms=self._now_ms,
            on_change=self._mark_dirty if live is None else _stored_already,
            max_members=self.max_members,
            online=None if live is None else online_seats(state.room_name, live),
            seq=0 if live is None else live.seq,
        )
        self.rooms[room.key] = room
        self._idle_since[room.key] = self._clock()
        return room

    async def _media(self, query: MediaQuery, reply_type: str) -> list[Media]:
        try:
            return await self.provider.media(query)
        except InvalidFilter as exc:
            raise ProtocolError(reply_type, "InvalidFilter", str(exc)) from exc
        except ProviderError as exc:
            raise ProtocolError(reply_type, "UnknownError", f"the media library failed: {exc}") from exc

    # -- create and restore ---------------------------------------------------------------------

    def _mark_dirty(self, room: Room) -> None:
        self.saver.mark_dirty(room.key)

    async def create(self, request: CreateRoomRequest, creator: User) -> Room:
        """Create and store a room; the caller then seats its creator (``seat``)."""
        try:
            name = clean_name(request.roomName)
        except ValueError as exc:
            raise ProtocolError("createRoomError", "InvalidRoomName", f"room name {exc}") from exc
        key = room_key(name)
        async with self._lock(key):
            if key in self.rooms or await self._stored(name, "createRoomError"):
                raise ProtocolError("createRoomError", "RoomExistsError", f"{name} already exists")
            items = await self._media(MediaQuery(request.filters, request.libraries), "createRoomError")
            if not items:
                raise ProtocolError("createRoomError", "NoMediaError", "no items match the filters of this room")
            seed = self._rng.getrandbits(63)
            ordered = order_media(items, request.sortOrder or request.sort, seed)
            password_hash = (
                await anyio.to_thread.run_sync(hash_password, request.password) if request.password else None
            )
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
                creator_plex_user_id=creator.plex_id or "",
                creator_plex_username=creator.userName,
                media_ids=[item.id for item in ordered],
                media_seed=seed,
            )
            try:
                # Stored before the reply: an acknowledged room exists even if the process dies now.
                created = await self.storage.create_room(state)
            except StorageError as exc:
                log.error("could not store new room %r: %s", name, exc)
                raise storage_unavailable("createRoomError", "the room could not be stored") from exc
            if not created:  # by another process, meanwhile
                raise ProtocolError("createRoomError", "RoomExistsError", f"{name} already exists")
            if self.shared is None:
                room = self._room(state, ordered)
            else:
                room = await self._follow(self.shared, state.room_name, ordered)
        return room

    async def _stored(self, name: str, reply_type: str) -> bool:
        try:
            return await self.storage.has_room(name)
        except StorageError as exc:
            log.error("could not look up room %r: %s", name, exc)
            raise storage_unavailable(reply_type, "rooms cannot be read right now") from exc

    async def get(self, name: str, reply_type: str = "joinRoomError") -> Room | None:
        """The room, restored from storage on first access (one restore however many ask at once)."""
        key = room_key(name)
        room = self.rooms.get(key)
        if room is not None:
            return room
        async with self._lock(key):
            room = self.rooms.get(key)
            if room is not None:
                return room
            try:
                if self.shared is not None:
                    return await self.shared.restore(name, lambda live: self._restore(live.room, reply_type, live))
                state = await self.storage.get_room(name)
            except StorageError as exc:
                log.error("could not restore room %r: %s", name, exc)
                raise storage_unavailable(reply_type, "this room cannot be read right now") from exc
            if state is None:
                return None
            return await self._restore(state, reply_type)

    async def _follow(self, shared: SharedRooms, name: str, media: list[Media]) -> Room:
        """The replica of a shared room just created here (its media already fetched)."""

        async def replica(live: LiveRoom) -> Room:
            return self._room(live.room, media, live)

        try:
            room = await shared.restore(name, replica)
        except StorageError as exc:
            raise storage_unavailable("createRoomError", "the room was stored but cannot be opened right now") from exc
        if room is None:
            raise ProtocolError("createRoomError", "RoomNotFoundError", f"{name} was deleted meanwhile")
        return room

    async def _restore(self, state: SerializedRoom, reply_type: str, live: LiveRoom | None = None) -> Room:
        items = await self._media(MediaQuery(state.filters, state.libraries), reply_type)
        if state.media_ids is None:
            # A room from the original MovieMatch: fix its order now, once, and keep it (a shared
            # room is never saved from memory: its order is derived the same way in every process).
            seed = state.media_seed if state.media_seed is not None else stable_seed(state.room_key)
            ordered = order_media(items, state.sort_order or state.sort, seed)
            state.media_seed, state.media_ids = seed, [item.id for item in ordered]
            room = self._room(state, ordered, live)
            if live is None:
                self.saver.mark_dirty(room.key)
            return room
        by_id = {item.id: item for item in items}
        ordered = [by_id[media_id] for media_id in state.media_ids if media_id in by_id]
        if len(ordered) < len(state.media_ids):
            log.warning(
                "room %r: %d of its items are no longer in the library",
                state.room_name,
                len(state.media_ids) - len(ordered),
            )
        return self._room(state, ordered, live)

    # -- membership -------------------------------------------------------------------------

    async def join(self, name: str, seat: Seat, user: User, password: str | None, member_token: str | None) -> Room:
        """Seat a connection in a room (it is sent joinRoomSuccess)."""
        while True:
            room = await self.get(name)
            if room is None:
                raise ProtocolError("joinRoomError", "RoomNotFoundError", f"{name} does not exist")
            stored_hash = room.state.password_hash
            if stored_hash is not None and not await anyio.to_thread.run_sync(
                verify_password, password or "", stored_hash
            ):
                raise ProtocolError("joinRoomError", "AccessDeniedError", f"{room.name} requires a password")
            # The password check awaited: the room may have been evicted meanwhile; then restore it again.
            if self.rooms.get(room.key) is room:
                break
        await self.seat(room, seat, user, member_token, "joinRoomSuccess")
        return room

    async def seat(self, room: Room, seat: Seat, user: User, member_token: str | None, reply_type: str) -> None:
        """Seat a connection in a room it may enter; it is sent ``reply_type`` with the room."""
        if self.shared is None:
            room.join(seat, user, member_token, reply_type)
        else:
            await self.shared.join(room, seat, user, member_token, reply_type)
        self._idle_since.pop(room.key, None)

    async def leave(self, room: Room, seat: Seat, *, permanently: bool) -> None:
        """A connection closed, or its member left the room for good (``leaveRoom``)."""
        try:
            if self.shared is None:
                room.leave(seat, permanently=permanently)
            else:
                await self.shared.leave(room, seat, permanently=permanently)
        finally:
            if not room.seats:
                self._idle_since[room.key] = self._clock()

    async def rate(self, room: Room, user_name: str, media_id: str, rating: RatingValue) -> bool:
        """Record a rating; True when it made a new match."""
        if self.shared is None:
            return room.rate(user_name, media_id, rating)
        return await self.shared.rate(room, user_name, media_id, rating)

    async def undo(self, room: Room, user_name: str, media_id: str) -> None:
        if self.shared is None:
            room.undo(user_name, media_id)
        else:
            await self.shared.undo(room, user_name, media_id)

    async def delete(self, name: str, user: User) -> None:
        room = await self.get(name, "deleteRoomError")
        if room is None:
            raise ProtocolError("deleteRoomError", "RoomNotFoundError", f"{name} does not exist")
        if not room.is_owner(user):
            raise ProtocolError("deleteRoomError", "NotRoomOwner", "only the creator of a room can delete it")
        if self.shared is not None:
            await self.shared.delete(room)  # every process drops the room when its event arrives
            return
        try:
            await self.storage.delete_room(room.name)
        except StorageError as exc:
            log.error("could not delete room %r: %s", room.name, exc)
            raise storage_unavailable("deleteRoomError", "the room could not be deleted") from exc
        room.apply(Deleted())
        self._forget(room)

    def _forget(self, room: Room) -> None:
        """The room was deleted: drop it and its unsaved changes."""
        self.saver.forget(room.key)
        if self.rooms.get(room.key) is room:
            del self.rooms[room.key]
        self._idle_since.pop(room.key, None)

    # -- memory -----------------------------------------------------------------------------

    async def evict_idle(self) -> int:
        """Drop rooms nobody has been connected to for ``idle_timeout`` (saved first); returns how many."""
        now = self._clock()
        evicted = 0
        for key, since in list(self._idle_since.items()):
            room = self.rooms.get(key)
            if room is None or room.seats or now - since < self.idle_timeout:
                continue
            if self.saver.is_dirty(key) and await self.saver.flush([key]):
                continue  # not saved: keep it in memory, the saver retries
            if not room.seats and self.rooms.get(key) is room:
                del self.rooms[key]
                self._idle_since.pop(key, None)
                evicted += 1
                if self.shared is not None:
                    await self.shared.forget(room)
        return evicted

    async def run_eviction(self) -> None:
        interval = max(0.05, min(30.0, self.idle_timeout / 2))
        while True:
            await anyio.sleep(interval)
            await self.evict_idle()


def _stored_already(_: Room) -> None:
    """A shared room's changes are stored by the Redis script that made them."""
