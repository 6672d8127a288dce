"""Rooms served by this process alone: decided here, saved from memory by the debounced saver.

Every decision is synchronous from reading the state to applying the event, so within one event
loop no two changes interleave: no lost ratings, no double matches, no progress drift.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import anyio

from server.protocol import ErrorName, ProtocolError, Reply, encode, storage_unavailable
from storage import RatingValue, SerializedRoom, Storage, StorageError, room_key

from .changes import (
    Build,
    MemberAction,
    Reshape,
    RoomChanges,
    Snapshot,
    error_reply_of,
    join_refused,
    not_owner,
    owner_refused,
    pick_refused,
    rating_refused,
)
from .decisions import (
    Actor,
    JoinRequest,
    decide_delete,
    decide_join,
    decide_leave,
    decide_member_action,
    decide_pick,
    decide_rate,
    decide_undo,
    is_new_match,
)
from .events import Deleted
from .match_news import tell_about_match
from .room import Arrival, Room, Seat
from .rules import Refusal, owner_of
from .saver import SaveObserver, Saver

log = logging.getLogger("server.rooms")


class LocalChanges(RoomChanges):
    def __init__(
        self,
        storage: Storage,
        *,
        max_members: int,
        absence_ms: int,
        now_ms: Callable[[], int],
        save_delay: float,
        save_max_wait: float,
        clock: Callable[[], float] = anyio.current_time,
        observer: SaveObserver | None = None,
    ) -> None:
        super().__init__(max_members=max_members, absence_ms=absence_ms, now_ms=now_ms)
        self.storage = storage
        self._observer = observer
        self._rooms: dict[str, Room] = {}
        self.saver = Saver(
            storage, self._snapshot, delay=save_delay, max_wait=save_max_wait, clock=clock, observer=self
        )

    def _snapshot(self, key: str) -> SerializedRoom | None:
        room = self._rooms.get(key)
        return room.snapshot() if room is not None else None

    # -- rooms in memory ------------------------------------------------------------------------

    async def open(self, room_name: str, build: Build) -> Room | None:
        state = await self.storage.get_room(room_name)
        return None if state is None else await self.adopt(state, build)

    async def adopt(self, state: SerializedRoom, build: Build) -> Room:
        room = await build(Snapshot(state))
        self._rooms[room.key] = room
        return room

    async def settle(self, room: Room) -> bool:
        return not (self.saver.is_dirty(room.key) and await self.saver.flush([room.key]))

    async def release(self, room: Room) -> None:
        self._forget(room)

    def _forget(self, room: Room) -> None:
        if self._rooms.get(room.key) is room:
            del self._rooms[room.key]

    def changed(self, room: Room) -> None:
        self.saver.mark_dirty(room.key)

    # -- changes ---------------------------------------------------------------------------------

    async def join(self, room: Room, request: JoinRequest, arrival: Arrival) -> None:
        decided = decide_join(room.state, room.online, request)
        if isinstance(decided, Refusal):
            raise join_refused(decided, error_reply_of(arrival.reply_type), request, room, self.max_members)
        room.expect(arrival)
        room.apply(decided)

    async def leave(self, room: Room, seat: Seat, *, permanently: bool) -> None:
        name = room.seat_name(seat)
        if name is None:
            return
        event = decide_leave(
            room.state, room.online, name=name, seat=seat.seat_id, permanent=permanently, now=self._now_ms()
        )
        if event is not None:
            room.apply(event)

    async def rate(self, room: Room, user_name: str, media_id: str, rating: RatingValue) -> bool:
        decided = decide_rate(room.state, name=user_name, media_id=media_id, rating=rating, now=self._now_ms())
        if isinstance(decided, Refusal):
            raise rating_refused(decided, user_name, media_id)
        new_match = is_new_match(room.state, decided)
        room.apply(decided)
        return new_match

    async def undo(self, room: Room, user_name: str, media_id: str) -> None:
        decided = decide_undo(room.state, name=user_name, media_id=media_id)
        if isinstance(decided, Refusal):
            raise rating_refused(decided, user_name, media_id, undoing=True)
        room.apply(decided)

    async def manage(self, room: Room, actor: Actor, action: MemberAction, name: str, code_hash: str) -> None:
        decided = decide_member_action(
            room.state, room.online, owner_of(room.state), actor, action, name, code_hash, self._now_ms()
        )
        if isinstance(decided, Refusal):
            raise owner_refused(decided, Reply.MANAGE_MEMBER_ERROR, name, userName=name, action=action)
        room.apply(decided)

    async def pick(self, room: Room, actor: Actor, media_id: str) -> None:
        decided = decide_pick(
            room.state, room.online, owner=owner_of(room.state), actor=actor, media_id=media_id, now=self._now_ms()
        )
        if isinstance(decided, Refusal):
            raise pick_refused(decided)
        room.apply(decided)

    async def announce(self, room: Room, media_id: str, reply: Reply, payload: dict[str, Any]) -> None:
        tell_about_match(room, media_id, reply, payload)

    async def delete(self, room: Room, actor: Actor) -> None:
        if decide_delete(room.state, room.online, owner=owner_of(room.state), actor=actor) is not None:
            raise not_owner(Reply.DELETE_ROOM_ERROR)
        try:
            await self.storage.delete_room(room.name)
        except StorageError as exc:
            log.error("could not delete room %r: %s", room.name, exc)
            raise storage_unavailable(Reply.DELETE_ROOM_ERROR, "the room could not be deleted") from exc
        room.apply(Deleted())
        self.saver.forget(room.key)
        self._forget(room)
        self._dropped(room)

    async def reshape(self, room_name: str, reshape: Reshape) -> bool:
        room = self._rooms.get(room_key(room_name))
        stored = room.state if room is not None else await self.storage.get_room(room_name)
        if stored is None:
            return False
        change = await reshape(stored.copy_deep())
        # Made from the room as it is now, in one step: no rating made meanwhile is lost.
        room = self._rooms.get(room_key(room_name))
        current = room.state if room is not None else await self.storage.get_room(room_name)
        made = None if current is None else change(current)
        if made is None:
            return False
        if room is None:
            await self.storage.save_room(made[0])
        else:
            state, listing = made
            room.redeal(state, self._deck_of(state, listing))  # saved by the saver, as any change
        return True

    async def expire(self, room_name: str) -> bool:
        if not await self.storage.has_room(room_name):
            return False
        await self.storage.delete_room(room_name)
        return True

    # -- the saver's observer ----------------------------------------------------------------------

    def save_succeeded(self, key: str, seconds: float) -> None:
        if self._observer is not None:
            self._observer.save_succeeded(key, seconds)

    def save_failed(self, key: str, error: StorageError, *, outage_started: bool) -> None:
        if self._observer is not None:
            self._observer.save_failed(key, error, outage_started=outage_started)
        room = self._rooms.get(key)
        if outage_started and room is not None:
            # Their ratings were acknowledged but are only in memory: say so once per outage.
            notice = ProtocolError(
                Reply.ERROR, ErrorName.STORAGE_UNAVAILABLE, "changes to this room cannot be saved right now"
            )
            frame = encode(Reply.ERROR, notice.payload())
            for seats in list(room.seats.values()):
                for seat in list(seats.values()):
                    seat.send(frame)

    # -- the process's life ---------------------------------------------------------------------

    def healthy(self) -> bool:
        return not self.saver.failing

    async def run(self) -> None:
        await self.saver.run()

    async def stop(self, budget: float) -> None:
        # uvicorn stops the app only after every connection ended, so no rating can race the flush.
        try:
            with anyio.fail_after(budget, shield=True):
                unsaved = await self.saver.flush()
        except TimeoutError:
            log.error("shutdown: saving rooms took over %.1f s; unsaved changes are lost", budget)
        else:
            for key in unsaved:
                log.error("shutdown: room %r could not be saved", key)
