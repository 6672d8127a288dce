"""Rooms shared live by several server processes through Redis: actions, events and presence.

Every change to a shared room is one script that checks it, records it, decides what follows (a
match, a match undone) and publishes the resulting event, numbered by the room's ``seq`` counter,
on the room's channel, all in one atomic step. Every process serving the room applies the events in
``seq`` order, its own included, so all of them send their clients the same messages in the same
order, as one process would. A process that finds a gap in the numbers (its subscription dropped)
reads the room again.

Presence: ``online`` holds, per connected member, the seat (one connection), the process serving it
and the public user. Each process heartbeats into ``mm:processes`` (score: when it counts as dead,
by Redis's clock, so hosts' clocks never matter) and lists the rooms it seats members in; any
process reaps the members of a process whose heartbeat lapsed.

Layout (besides the room keys of ``storage.redis``)::

    mm:processes            ZSET    process id -> heartbeat deadline (epoch ms, Redis time)
    mm:process:<id>:rooms   SET     room digests where that process seated someone
"""

from __future__ import annotations

import json
import logging
from functools import cached_property
from typing import Any

from redis.commands.core import AsyncScript

from server.names import skeleton
from storage import RatingValue, SerializedRoom
from storage.base import storage_errors
from storage.redis import (
    SNAPSHOT_WIDTH,
    RedisStorage,
    RoomKeys,
    encode_meta,
    json_text,
    lookup_key,
    opened_text,
    queue_snapshot,
    rating_element,
)

from ..decisions import Actor, JoinRequest
from ..rules import Ending, Refusal
from .batches import Batches
from .live import LiveRoom, OnEvent, OnSubscribed, RateOutcome
from .scripts import HEARTBEAT, ROOM_SCRIPTS, room_script
from .subscriber import Subscriber

log = logging.getLogger("server.rooms.shared")


class RedisLive:
    """``Live`` on a ``RedisStorage``: the scripts of ``scripts.py``, one channel per room."""

    def __init__(self, storage: RedisStorage, process_id: str) -> None:
        self.storage = storage
        self.process_id = process_id
        self._processes_key = f"{storage.prefix}:processes"

    # Made on first use, once the storage is open (the app is built before its storage opens).

    @cached_property
    def _batches(self) -> Batches:
        return Batches(self.storage.client, self.storage.replication)

    @cached_property
    def _scripts(self) -> dict[str, AsyncScript]:
        return {name: self.storage.client.register_script(room_script(body)) for name, body in ROOM_SCRIPTS.items()}

    @cached_property
    def _heartbeat(self) -> AsyncScript:
        return self.storage.client.register_script(HEARTBEAT)

    def _process_rooms_key(self, process_id: str) -> str:
        return f"{self.storage.prefix}:process:{process_id}:rooms"

    def keys(self, room_name: str) -> RoomKeys:
        return self.storage.room_keys(room_name)

    def channel(self, room_name: str) -> str:
        return self.keys(room_name).events

    def subscription(self, on_event: OnEvent, on_subscribed: OnSubscribed) -> Subscriber:
        subscriber = Subscriber(self.storage.client, f"{self.storage.prefix}:control", on_event, on_subscribed)
        # The subscription keeps the events of changes until the replicas confirm them (see ``Batches``).
        self._batches.gate = subscriber
        return subscriber

    @staticmethod
    def _room_keys(keys: RoomKeys) -> list[str]:
        return [
            keys.meta,
            keys.ratings,
            keys.progress,
            keys.members,
            keys.matches,
            keys.online,
            keys.seq,
            keys.owner,
            keys.removed,
            keys.deck,
            keys.opened,
            keys.pick,
        ]

    async def run(self) -> None:
        """Send the scripts called meanwhile as pipelines, until cancelled (see ``Batches``)."""
        await self._batches.run()

    async def _run(self, script: str, room_name: str, keys: RoomKeys, extra_keys: list[str], *args: str | int) -> Any:
        with storage_errors(script, repr(room_name)):
            return await self._batches.call(
                self._scripts[script],
                [*self._room_keys(keys), *extra_keys],
                [keys.events, *args],
                channel=keys.events,
                wrote=_decided,
            )

    async def read(self, room_name: str) -> LiveRoom | None:
        # One transaction: the state, who is online and the number agree.
        keys = self.keys(room_name)
        with storage_errors("read_live_room", repr(room_name)):
            async with self.storage.client.pipeline(transaction=True) as pipe:
                queue_snapshot(pipe, keys)
                pipe.get(keys.seq)
                pipe.hgetall(keys.online)
                replies = await pipe.execute()
            room = self.storage.decode_room(room_name, keys, tuple(replies[:SNAPSHOT_WIDTH]))
            if room is None:
                return None
            seq, online = replies[SNAPSHOT_WIDTH:]
            return LiveRoom(room, _readable(room_name, online), int(seq or 0))

    async def join(self, room_name: str, request: JoinRequest) -> int | Refusal:
        keys = self.keys(room_name)
        user = request.user.model_dump(mode="json", exclude_none=True, exclude={"userName"})
        outcome = await self._run(
            "join",
            room_name,
            keys,
            [self._process_rooms_key(self.process_id)],
            request.name,
            request.identity or "",
            request.skeleton,
            request.seat,
            self.process_id,
            request.presented_token_hash,
            request.seat_code_hash,
            request.new_token_hash,
            request.avatar or "",
            request.plex_user_id or "",
            request.now,
            request.max_members,
            request.absence_ms,
            request.owner,
            "1" if request.reseat else "0",
            json_text(user)[1:-1],
            keys.digest,
            opened_text(request.now),
        )
        return _seq_or_refusal(outcome)

    async def leave(
        self, room_name: str, name: str, seat: str, *, permanent: bool, room_type: str, now_ms: int
    ) -> int | None:
        keys = self.keys(room_name)
        outcome = await self._run(
            "leave", room_name, keys, [], name, seat, "1" if permanent else "0", room_type, now_ms
        )
        return int(outcome) or None

    async def rate(
        self,
        room_name: str,
        name: str,
        media_id: str,
        rating: RatingValue,
        at_ms: int,
        *,
        room_type: str,
        threshold: int,
        ending: Ending,
    ) -> RateOutcome | Refusal:
        keys = self.keys(room_name)
        lookup = lookup_key(media_id)
        outcome = await self._run(
            "rate",
            room_name,
            keys,
            [],
            name,
            lookup,
            rating_element(lookup, rating, at_ms),
            media_id,
            rating,
            at_ms,
            room_type,
            threshold,
            ending.match_limit,
            like_key(lookup),
            ending.ends_at,
            ending.like_cap,
        )
        if outcome[0] != 1:
            return Refusal(outcome[0])
        return RateOutcome(int(outcome[1]), outcome[2] == 1, outcome[3])

    async def undo(self, room_name: str, name: str, media_id: str, *, room_type: str, threshold: int) -> int | Refusal:
        keys = self.keys(room_name)
        lookup = lookup_key(media_id)
        outcome = await self._run(
            "undo", room_name, keys, [], name, lookup, media_id, room_type, threshold, like_key(lookup)
        )
        return _seq_or_refusal(outcome)

    async def manage(
        self, room_name: str, *, actor: Actor, action: str, name: str, code_hash: str, owner: str, now_ms: int
    ) -> int | Refusal:
        keys = self.keys(room_name)
        room_type = await self._room_type(keys)
        outcome = await self._run(
            "manage",
            room_name,
            keys,
            [],
            action,
            name,
            actor.identity or "",
            actor.skeleton,
            actor.seated_as or "",
            code_hash,
            owner,
            now_ms,
            room_type,
            skeleton(name),
        )
        return _seq_or_refusal(outcome)

    async def _room_type(self, keys: RoomKeys) -> str:
        """The room's type, read from its settings (the scripts never parse them)."""
        with storage_errors("read_room_type", keys.digest):
            meta = await self.storage.client.get(keys.meta)
        room_type = json.loads(meta).get("roomType", "standard") if meta else ""
        return str(room_type)

    async def pick(self, room_name: str, *, actor: Actor, media_id: str, owner: str, now_ms: int) -> int | Refusal:
        keys = self.keys(room_name)
        outcome = await self._run(
            "pick",
            room_name,
            keys,
            [],
            media_id,
            actor.identity or "",
            actor.skeleton,
            actor.seated_as or "",
            owner,
            now_ms,
        )
        return _seq_or_refusal(outcome)

    async def delete(self, room_name: str, *, actor: Actor, owner: str) -> int | Refusal:
        keys = self.keys(room_name)
        extra = [self.storage.index_key, self.storage.names_key, self.storage.join_codes_key]
        outcome = await self._run(
            "delete",
            room_name,
            keys,
            extra,
            keys.digest,
            actor.identity or "",
            actor.skeleton,
            actor.seated_as or "",
            owner,
        )
        return _seq_or_refusal(outcome)

    async def replace(self, room_name: str, room: SerializedRoom, *, seq: int) -> int | None:
        keys = self.keys(room_name)
        args: list[str | int] = [seq, encode_meta(room), room.owner]
        for mapping in (room.user_progress, room.matches):
            args.append(len(mapping))
            for name, value in mapping.items():
                args += [name, value]
        deck = room.media_ids or []
        outcome = await self._run("replace", room_name, keys, [], *args, len(deck), *deck)
        return int(outcome) if outcome > 0 else None

    # -- presence ------------------------------------------------------------------------------

    async def notify(self, room_name: str, data: str) -> None:
        with storage_errors("notify", repr(room_name)):
            await self.storage.client.publish(self.channel(room_name), data)

    async def heartbeat(self, lifetime: float) -> list[str]:
        with storage_errors("heartbeat", self.process_id):
            lapsed = await self._heartbeat(keys=[self._processes_key], args=[self.process_id, int(lifetime * 1000)])
        return [process for process in lapsed if process != self.process_id]

    async def reap(self, process_id: str, now_ms: int) -> int:
        rooms_key = self._process_rooms_key(process_id)
        client = self.storage.client
        unseated = 0
        with storage_errors("reap", process_id):
            # decode_responses: every reply is text.
            for digest in map(str, await client.smembers(rooms_key)):
                keys = RoomKeys.for_digest(self.storage.prefix, digest)
                for name, raw in (await client.hgetall(keys.online)).items():
                    seats = json.loads(raw).get("seats", {})
                    for seat in [seat for seat, process in seats.items() if process == process_id]:
                        await self._run("leave", str(name), keys, [], str(name), seat, "0", "", now_ms)
                        unseated += 1
            async with client.pipeline(transaction=True) as pipe:
                pipe.delete(rooms_key)
                pipe.zrem(self._processes_key, process_id)
                await pipe.execute()
        return unseated

    async def depart(self) -> None:
        await self.reap(self.process_id, 0)


def _readable(room_name: str, online: dict[str, str]) -> dict[str, dict[str, Any]]:
    """The presence entries that parse; one corrupt entry must not make the whole room unreadable."""
    seats = {}
    for name, raw in online.items():
        try:
            seat = json.loads(raw)
        except ValueError:
            seat = None
        if isinstance(seat, dict):
            seats[name] = seat
        else:
            log.warning("room %r: unreadable presence entry of %r ignored", room_name, name)
    return seats


def like_key(lookup: str) -> str:
    """What starts a like's element in a ratings array, from its item's ``lookup_key``."""
    return f'{lookup}"like",'


def _decided(reply: Any) -> bool:
    """Whether a room script's reply is an event's number (a change made), not a refusal."""
    outcome = reply[0] if isinstance(reply, list) else reply
    return isinstance(outcome, int) and outcome > 0


def _seq_or_refusal(outcome: int) -> int | Refusal:
    return int(outcome) if outcome > 0 else Refusal(outcome)
