"""Rooms shared with other server processes: Redis (or its stand-in) decides, every replica applies.

Each process keeps a replica of the rooms its members are in. A change is decided and recorded by
the ``Live`` (one Redis script), which publishes it as a numbered event; every replica, the deciding
process's included, applies the events in number order, so members on different processes get the
same messages in the same order. A replica that misses events (its subscription dropped, or Redis
restarted) reads the room again and tells its members what changed meanwhile. Nothing is saved from
memory: a replica's snapshot would overwrite other processes' changes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from functools import cached_property
from typing import Any

import anyio
from anyio.abc import TaskGroup
from pydantic import ValidationError

from server.identity import HOST
from server.metrics import Metrics
from server.protocol import Reply, storage_unavailable
from server.user import User
from storage import RatingValue, SerializedRoom, StorageError

from ..changes import (
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
from ..decisions import Actor, JoinRequest
from ..deck import Deck
from ..events import EVENTS, NOTICE_PREFIX, Deleted, Left, Notice, Presence, Redealt, numbered
from ..match_news import tell_about_match
from ..room import Arrival, Room, Seat
from ..rules import Ending, Refusal, match_limit, owner_of
from .live import Live, LiveRoom, Subscription

log = logging.getLogger("server.rooms.shared")

# How long an action waits for its own event before reading the room instead.
APPLY_WAIT = 2.0
# Times a room's deck is made again when its room changed meanwhile (busy rooms: tried again later).
RESHAPE_ATTEMPTS = 5


class SharedChanges(RoomChanges):
    def __init__(
        self,
        live: Live,
        *,
        presence_timeout: float,
        max_members: int,
        absence_ms: int,
        now_ms: Callable[[], int],
        metrics: Metrics,
        clock: Callable[[], float] = anyio.current_time,
    ) -> None:
        super().__init__(max_members=max_members, absence_ms=absence_ms, now_ms=now_ms, process_id=live.process_id)
        self.live = live
        self.metrics = metrics
        self.presence_timeout = presence_timeout
        self._clock = clock
        self._rooms: dict[str, Room] = {}  # by channel
        # Events that arrive while a room is read (opened or re-read), applied after the read.
        self._held: dict[str, list[str]] = {}
        self._rereads: dict[str, anyio.Event] = {}
        self._waiters: dict[str, list[tuple[int, anyio.Event]]] = {}
        # Seats that left while Redis was unreachable: their presence is removed when it is back.
        self._departures: set[tuple[str, str, str]] = set()
        self._stale: set[str] = set()
        self._tasks: TaskGroup | None = None

    @cached_property
    def subscriber(self) -> Subscription:
        # Made on first use, once the storage is open (the app is built before its storage opens).
        return self.live.subscription(self._on_event, self._on_subscribed)

    def channel(self, room_name: str) -> str:
        return self.live.channel(room_name)

    # -- the process's life ---------------------------------------------------------------------

    def healthy(self) -> bool:
        return self.subscriber.connected.is_set()

    async def run(self) -> None:
        async with anyio.create_task_group() as tasks:
            self._tasks = tasks
            tasks.start_soon(self.subscriber.run)
            tasks.start_soon(self.live.run)
            await self._keep_presence()

    async def stop(self, budget: float) -> None:
        """Remove what is left of this process's presence (its connections have closed)."""
        with anyio.move_on_after(budget, shield=True):
            try:
                await self.live.depart()
            except StorageError as exc:
                log.warning(
                    "could not remove this process's presence (others will, in %g s): %s", self.presence_timeout, exc
                )

    async def _keep_presence(self) -> None:
        """Heartbeat; reap processes whose heartbeat lapsed; retry what failed while Redis was away."""
        connected_since: float | None = None
        while True:
            try:
                lapsed = await self.live.heartbeat(self.presence_timeout)
                if connected_since is None:
                    connected_since = self._clock()
                # After an outage (a Redis restart) every heartbeat looks lapsed until its process
                # sends the next one: reap only after a full timeout of being connected.
                if self._clock() - connected_since >= self.presence_timeout:
                    for process in lapsed:
                        count = await self.live.reap(process, self._now_ms())
                        self.metrics.members_reaped += count
                        log.warning("process %s stopped answering; %d of its members left their rooms", process, count)
                await self._retry_departures()
                for channel in list(self._stale):
                    room = self._rooms.get(channel)
                    self._stale.discard(channel)
                    if room is not None:
                        await self.reread(room)
            except StorageError as exc:
                if connected_since is not None:
                    log.error("presence heartbeat failed: %s", exc)
                connected_since = None
            except Exception:
                # Unreadable data in Redis (a corrupt presence entry) must not stop the heartbeat.
                log.exception("presence upkeep failed")
            await anyio.sleep(self.presence_timeout / 3)

    async def _retry_departures(self) -> None:
        for room_name, name, seat in list(self._departures):
            await self.live.leave(room_name, name, seat, permanent=False, room_type="", now_ms=self._now_ms())
            self._departures.discard((room_name, name, seat))

    # -- replicas ------------------------------------------------------------------------------

    async def open(self, room_name: str, build: Build) -> Room | None:
        """Follow the room's events, then read it: no event can fall between the two."""
        channel = self.channel(room_name)
        self._held[channel] = []
        try:
            await self.subscriber.subscribe(channel)
            live = await self.live.read(room_name)
            room = None if live is None else await build(Snapshot(live.room, presences(room_name, live), live.seq))
        except BaseException:
            await self.subscriber.unsubscribe(channel)
            raise
        finally:
            held = self._held.pop(channel, [])
        if room is None:
            await self.subscriber.unsubscribe(channel)
            return None
        self._rooms[channel] = room
        for data in held:
            self._deliver(room, data)
        return room

    async def adopt(self, state: SerializedRoom, build: Build) -> Room | None:
        # Read back from Redis, with the events that may already have followed the creation.
        return await self.open(state.room_name, build)

    async def release(self, room: Room) -> None:
        channel = self.channel(room.name)
        if self._rooms.get(channel) is room:
            del self._rooms[channel]
            if channel not in self._held:  # not being opened again meanwhile
                await self.subscriber.unsubscribe(channel)

    def changed(self, room: Room) -> None:
        """Nothing to save: each change was stored by the script that decided it."""

    def _on_event(self, channel: str, data: str) -> None:
        held = self._held.get(channel)
        if held is not None:
            held.append(data)
            return
        room = self._rooms.get(channel)
        if room is not None:
            self._deliver(room, data)

    def _on_subscribed(self, channel: str) -> None:
        # The first subscription of a room comes before its read; a later one follows a lost
        # connection, over which events may have been missed.
        room = self._rooms.get(channel)
        if room is not None:
            self._soon(self.reread, room)

    def _soon(self, function: Callable[[Room], Coroutine[Any, Any, None]], room: Room) -> None:
        """Run this later, in the background; a failure is logged, never fatal to the process."""

        async def guarded() -> None:
            try:
                await function(room)
            except Exception:
                log.exception("room %r: background work failed", room.name)

        if self._tasks is not None:
            self._tasks.start_soon(guarded)

    def _deliver(self, room: Room, data: str) -> None:
        if data.startswith(NOTICE_PREFIX):
            self._tell(room, data)
            return
        seq = numbered(data)
        if seq is not None and seq <= room.seq:
            return  # already applied, or part of the state read
        try:
            event = EVENTS.validate_json(data)
        except ValidationError as exc:
            log.error("room %r: unreadable event, reading the room again: %s", room.name, exc)
            self._soon(self.reread, room)
            return
        if event.seq <= room.seq:
            return  # already part of the state read
        if event.seq != room.seq + 1:
            self._soon(self.reread, room)
            return
        if isinstance(event, Redealt):
            # Too big for an event: the room is read again, and the events after this one wait for it.
            self._held.setdefault(self.channel(room.name), []).append(data)
            self._soon(self.reread, room)
            return
        # A seat of this process unseated by another: this process was taken for dead (it could not
        # heartbeat in time). Its own departures unseat locally first, so they never match here.
        taken = None
        if isinstance(event, Left) and not event.permanent:
            taken = room.seats.get(event.name, {}).get(event.seat)
        try:
            room.apply(event)
        except Exception:  # the process serves on; the room's state is read again instead
            log.exception("room %r: could not apply event %d", room.name, event.seq)
            self._soon(self.reread, room)
            return
        if isinstance(event, Deleted):
            self._deleted(room)
        self._wake(room)
        if taken is not None and isinstance(event, Left):
            room.seats.setdefault(event.name, {})[event.seat] = taken
            self._soon(lambda again: self._reseat(again, taken, event.name), room)

    def _tell(self, room: Room, data: str) -> None:
        try:
            notice = Notice.model_validate_json(data)
            reply = Reply(notice.reply)
        except ValueError as exc:  # pydantic's ValidationError is one
            log.error("room %r: unreadable notice, dropped: %s", room.name, exc)
            return
        tell_about_match(room, notice.media_id, reply, notice.payload)

    def _deleted(self, room: Room) -> None:
        channel = self.channel(room.name)
        if self._rooms.get(channel) is room:
            del self._rooms[channel]
            self._dropped(room)
            self._soon(lambda _: self.subscriber.unsubscribe(channel), room)

    def _wake(self, room: Room) -> None:
        waiting = self._waiters.get(room.key)
        if not waiting:
            return
        for seq, applied in waiting:
            if seq <= room.seq:
                applied.set()
        waiting[:] = [(seq, applied) for seq, applied in waiting if seq > room.seq]
        if not waiting:
            del self._waiters[room.key]

    async def _applied(self, room: Room, seq: int) -> None:
        """Return once the room's replica has applied event ``seq``."""
        if room.seq >= seq:
            return
        applied = anyio.Event()
        self._waiters.setdefault(room.key, []).append((seq, applied))
        with anyio.move_on_after(APPLY_WAIT):
            await applied.wait()
        if room.seq < seq:
            await self.reread(room)

    async def reread(self, room: Room) -> None:
        """Read the room again and tell this process's members what changed (events were missed)."""
        channel = self.channel(room.name)
        running = self._rereads.get(channel)
        if running is not None:
            await running.wait()
            return
        done = self._rereads[channel] = anyio.Event()
        self._held.setdefault(channel, [])
        try:
            live = await self.live.read(room.name)
            deck = None if live is None else await self._redealt(room, live.room)
        except StorageError as exc:
            log.warning("room %r: could not read it again, will retry: %s", room.name, exc)
            self._stale.add(channel)
            self._held.pop(channel, None)
            return
        finally:
            del self._rereads[channel]
            done.set()
        held = self._held.pop(channel, [])
        if self._rooms.get(channel) is not room:
            return
        if live is None:
            room.apply(Deleted())
            self._deleted(room)
            return
        log.info("room %r read again (events %d to %d)", room.name, room.seq + 1, live.seq)
        self.metrics.room_rereads += 1
        if deck is not None:
            room.redeal(live.room, deck)
        lost = self._refresh(room, live)
        self._wake(room)
        for data in held:
            self._deliver(room, data)
        for seat, name in lost:
            await self._reseat(room, seat, name)

    async def _redealt(self, room: Room, state: SerializedRoom) -> Deck | None:
        """The room's new deck, when it was replaced (None when it was not). Should the library fail
        now, the films the replica knows serve until the next change of the deck."""
        if _dealt(state) == _dealt(room.state):
            return None
        if state.media_ids != room.state.media_ids and self._listing is not None:
            try:
                return self._deck_of(state, await self._listing(state))
            except Exception as exc:  # the library's failure, whatever it is, must not stop the read
                log.warning("room %r: the media of its new deck could not be fetched: %s", room.name, exc)
        return Deck(state.media_ids or [], room.deck.library)  # the same cards, new rules or order

    def _refresh(self, room: Room, live: LiveRoom) -> list[tuple[Seat, str]]:
        """Replace the replica's state, sending the differences; returns this process's seats that
        lost their place (their presence was reaped while this process could not heartbeat)."""
        before, online_before = room.state, room.online
        room.state, room.seq = live.room, live.seq
        room.online = presences(room.name, live)
        for name in sorted(online_before.keys() - room.online.keys()):
            room.send_all(Reply.USER_LEFT_ROOM, online_before[name].user.public())
        for name in sorted(room.online.keys() - online_before.keys()):
            joined = {"user": room.online[name].user.public(), "progress": room.progress(name)}
            room.send_all(Reply.USER_JOINED_ROOM, joined, exclude=name)
        for name, count in sorted(room.state.user_progress.items()):
            if before.user_progress.get(name) != count:
                room.send_all(Reply.USER_PROGRESS, {"user": room.public_user(name), "progress": room.progress(name)})
        for media_id in sorted(room.state.matches.keys() - before.matches.keys()):
            room.announce_match(media_id)
        for media_id in sorted(before.matches.keys() - room.state.matches.keys()):
            room.send_all(Reply.MATCH_REMOVED, {"mediaId": media_id})
        for name, presence in room.online.items():
            for seat_id in presence.seats:
                room.seat_arrival(name, seat_id)  # a join whose event was missed
        lost: list[tuple[Seat, str]] = []
        for name, seats in list(room.seats.items()):
            for seat_id, seat in list(seats.items()):
                if seat_id in _seats_of(room.online, name):
                    continue
                if seat_id in _seats_of(online_before, name) and name in room.state.members:
                    lost.append((seat, name))
                else:
                    del seats[seat_id]
                    seat.detach(room)
            if not seats:
                room.seats.pop(name, None)
        return lost

    async def _reseat(self, room: Room, seat: Seat, name: str) -> None:
        """Put back a seat of this process whose presence was reaped (never a new member)."""
        presence = room.online.get(name)
        user = presence.user if presence is not None else User(userName=name)
        request = self.join_request(room, seat, user, member_token=None, seat_code=None, new_token="", reseat=True)
        try:
            outcome = await self.live.join(room.name, request)
        except StorageError:
            self._stale.add(self.channel(room.name))
            return
        seats = room.seats.get(name, {})
        if isinstance(outcome, Refusal) and seats.get(seat.seat_id) is seat:
            del seats[seat.seat_id]  # left for good, or removed, meanwhile
            if not seats:
                room.seats.pop(name, None)
            seat.detach(room)

    # -- changes ---------------------------------------------------------------------------------

    async def join(self, room: Room, request: JoinRequest, arrival: Arrival) -> None:
        error_reply = error_reply_of(arrival.reply_type)
        seat = arrival.seat
        room.expect(arrival)
        try:
            outcome = await self.live.join(room.name, request)
        except StorageError as exc:
            room.arrivals.pop(seat.seat_id, None)
            raise storage_unavailable(error_reply, "this room cannot be joined right now") from exc
        if isinstance(outcome, Refusal):
            room.arrivals.pop(seat.seat_id, None)
            raise join_refused(outcome, error_reply, request, room, self.max_members)
        await self._applied(room, outcome)

    async def leave(self, room: Room, seat: Seat, *, permanently: bool) -> None:
        name = room.seat_name(seat)
        if name is None:
            return
        seats = room.seats[name]
        del seats[seat.seat_id]  # from now on this connection gets nothing of this room
        if not seats:
            del room.seats[name]
        try:
            await self.live.leave(
                room.name,
                name,
                seat.seat_id,
                permanent=permanently,
                room_type=room.state.room_type,
                now_ms=self._now_ms(),
            )
        except StorageError as exc:
            self._departures.add((room.name, name, seat.seat_id))
            if permanently:
                # errorType: the key v2 clients read in leaveRoomError.
                raise storage_unavailable(
                    Reply.LEAVE_ROOM_ERROR, "leaving cannot be recorded right now", errorType="StorageUnavailable"
                ) from exc

    async def rate(self, room: Room, user_name: str, media_id: str, rating: RatingValue) -> bool:
        try:
            outcome = await self.live.rate(
                room.name,
                user_name,
                media_id,
                rating,
                self._now_ms(),
                room_type=room.state.room_type,
                threshold=room.state.match_threshold,
                ending=Ending.of(room.state),
            )
        except StorageError as exc:
            raise storage_unavailable(
                Reply.RATE_ERROR, "ratings cannot be recorded right now", mediaId=media_id
            ) from exc
        if isinstance(outcome, Refusal):
            raise rating_refused(outcome, user_name, media_id)
        # The next event of a replica reading nothing again: the rater hears back one hop sooner.
        channel = self.channel(room.name)
        fresh = outcome.seq == room.seq + 1 and channel not in self._held and self._rooms.get(channel) is room
        if outcome.event is not None and fresh:
            self._deliver(room, outcome.event)
        return outcome.new_match

    async def undo(self, room: Room, user_name: str, media_id: str) -> None:
        try:
            outcome = await self.live.undo(
                room.name, user_name, media_id, room_type=room.state.room_type, threshold=room.state.match_threshold
            )
        except StorageError as exc:
            raise storage_unavailable(
                Reply.RATE_ERROR, "ratings cannot be changed right now", mediaId=media_id
            ) from exc
        if isinstance(outcome, Refusal):
            raise rating_refused(outcome, user_name, media_id, undoing=True)

    async def manage(self, room: Room, actor: Actor, action: MemberAction, name: str, code_hash: str) -> None:
        reply = Reply.MANAGE_MEMBER_ERROR
        try:
            outcome = await self.live.manage(
                room.name,
                actor=actor,
                action=action,
                name=name,
                code_hash=code_hash,
                owner=owner_of(room.state),
                now_ms=self._now_ms(),
            )
        except StorageError as exc:
            raise storage_unavailable(
                reply, "the room cannot be changed right now", userName=name, action=action
            ) from exc
        if isinstance(outcome, Refusal):
            raise owner_refused(outcome, reply, name, userName=name, action=action)
        await self._applied(room, outcome)

    async def pick(self, room: Room, actor: Actor, media_id: str) -> None:
        try:
            outcome = await self.live.pick(
                room.name, actor=actor, media_id=media_id, owner=owner_of(room.state), now_ms=self._now_ms()
            )
        except StorageError as exc:
            raise storage_unavailable(Reply.PICK_ERROR, "the room cannot be changed right now") from exc
        if isinstance(outcome, Refusal):
            raise pick_refused(outcome)
        await self._applied(room, outcome)

    async def reshape(self, room_name: str, reshape: Reshape) -> bool:
        for _ in range(RESHAPE_ATTEMPTS):
            live = await self.live.read(room_name)
            if live is None:
                return False
            made = (await reshape(live.room))(live.room)
            if made is None:
                return False
            seq = await self.live.replace(room_name, made[0], seq=live.seq)
            if seq is not None:
                room = self._rooms.get(self.channel(room_name))
                if room is not None:
                    await self._applied(room, seq)
                return True
        log.warning(
            "room %r changed while its deck was made again, %d times: tried again later", room_name, RESHAPE_ATTEMPTS
        )
        return False

    async def announce(self, room: Room, media_id: str, reply: Reply, payload: dict[str, Any]) -> None:
        notice = Notice(mediaId=media_id, reply=reply.value, payload=payload)
        await self.live.notify(room.name, notice.model_dump_json(by_alias=True))

    async def expire(self, room_name: str) -> bool:
        # As the host: every process serving it (none here) drops it when the event arrives.
        outcome = await self.live.delete(room_name, actor=Actor(identity=HOST, skeleton=""), owner="")
        return not isinstance(outcome, Refusal)

    async def delete(self, room: Room, actor: Actor) -> None:
        try:
            outcome = await self.live.delete(room.name, actor=actor, owner=owner_of(room.state))
        except StorageError as exc:
            raise storage_unavailable(Reply.DELETE_ROOM_ERROR, "the room could not be deleted") from exc
        if isinstance(outcome, Refusal):
            raise not_owner(Reply.DELETE_ROOM_ERROR)
        await self._applied(room, outcome)  # every process drops the room when its event arrives


def presences(room_name: str, live: LiveRoom) -> dict[str, Presence]:
    """Who is connected, by name; an entry of the wrong shape is left out (and logged)."""
    found = {}
    for name, presence in live.online.items():
        try:
            found[name] = Presence.model_validate(presence)
        except ValidationError:
            log.warning("room %r: presence entry of %r ignored (not a presence)", room_name, name)
    return found


def _dealt(state: SerializedRoom) -> tuple[object, ...]:
    """What only a replaced deck changes (``Redealt``): the deck, and the rules members are told."""
    return (state.media_ids, state.room_type, state.match_threshold, match_limit(state), state.ends_at, state.like_cap)


def _seats_of(online: dict[str, Presence], name: str) -> dict[str, str]:
    presence = online.get(name)
    return presence.seats if presence is not None else {}
