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

import enum
import json
import logging
from dataclasses import dataclass
from typing import Any

from storage import Member, RatingValue, SerializedRoom
from storage.base import storage_errors
from storage.redis import (
    SNAPSHOT_WIDTH,
    RedisStorage,
    RoomKeys,
    decode,
    encode_member,
    lookup_key,
    queue_snapshot,
    rating_element,
)

from .batches import Batches, EventGate
from .scripts import DELETE, HEARTBEAT, JOIN, LEAVE, PRELUDE, RATE, RATING_FUNCTIONS, UNDO

log = logging.getLogger("server.rooms.shared")


class Refusal(enum.Enum):
    """Why a script did not change the room."""

    NO_ROOM = -1
    ROOM_FULL = -2
    NAME_TAKEN = -3
    ROOM_ENDED = -4
    # Rating an item twice, or undoing a rating that is not there.
    NOTHING_TO_DO = 0


@dataclass(frozen=True)
class LiveRoom:
    """A room as stored, who is connected to it, and the number of the last event it reflects."""

    room: SerializedRoom
    online: dict[str, dict[str, Any]]
    seq: int


@dataclass(frozen=True)
class Rated:
    seq: int
    new_match: bool


class RedisLive:
    """The shared-room operations of one server process (``process_id``) on a ``RedisStorage``."""

    def __init__(self, storage: RedisStorage, process_id: str) -> None:
        self.storage = storage
        self.process_id = process_id
        self._processes_key = f"{storage.prefix}:processes"
        client = storage.client
        self._batches = Batches(client, storage.replication)
        self._scripts = {
            name: client.register_script(body if name == "heartbeat" else RATING_FUNCTIONS + PRELUDE + body)
            for name, body in {
                "join": JOIN,
                "leave": LEAVE,
                "rate": RATE,
                "undo": UNDO,
                "delete": DELETE,
                "heartbeat": HEARTBEAT,
            }.items()
        }

    def _process_rooms_key(self, process_id: str) -> str:
        return f"{self.storage.prefix}:process:{process_id}:rooms"

    def keys(self, room_name: str) -> RoomKeys:
        return self.storage.room_keys(room_name)

    @staticmethod
    def _room_keys(keys: RoomKeys) -> list[str]:
        return [keys.meta, keys.ratings, keys.progress, keys.members, keys.matches, keys.online, keys.seq]

    async def run(self) -> None:
        """Send the scripts called meanwhile as pipelines, until cancelled (see ``Batches``)."""
        await self._batches.run()

    def hold_events(self, gate: EventGate) -> None:
        """Let ``gate`` keep the events of changes until the replicas confirm them (see ``Batches``)."""
        self._batches.gate = gate

    async def _run(self, script: str, room_name: str, keys: RoomKeys, extra_keys: list[str], *args: str | int) -> Any:
        with storage_errors(script, repr(room_name)):
            return await self._batches.call(
                self._scripts[script], [*self._room_keys(keys), *extra_keys], [keys.events, *args], channel=keys.events
            )

    async def read(self, room_name: str) -> LiveRoom | None:
        """The room with its connected members and event number, read in one transaction."""
        keys = self.keys(room_name)
        with storage_errors("read_live_room", repr(room_name)):
            async with self.storage.client.pipeline(transaction=True) as pipe:
                queue_snapshot(pipe, keys)
                pipe.get(keys.seq)
                pipe.hgetall(keys.online)
                replies = await pipe.execute()
            room = decode(*replies[:SNAPSHOT_WIDTH])
            if room is None:
                return None
            seq, online = replies[SNAPSHOT_WIDTH:]
            return LiveRoom(room, _readable(room_name, online), int(seq or 0))

    async def join(
        self,
        room_name: str,
        name: str,
        *,
        presented_token_hash: str,
        member: Member,
        user_json: str,
        seat: str,
        max_members: int,
        reseat: bool = False,
    ) -> int | Refusal:
        """Seat a member (the event's ``seq``), or why not; ``reseat`` puts back a seat whose place
        was lost (its process was taken for dead) and never changes the member."""
        keys = self.keys(room_name)
        outcome = await self._run(
            "join",
            room_name,
            keys,
            [self._process_rooms_key(self.process_id)],
            name,
            presented_token_hash,
            encode_member(member),
            member.token_hash or "",
            member.avatar_image or "",
            max_members,
            seat,
            self.process_id,
            user_json,
            keys.digest,
            "1" if reseat else "0",
        )
        return _seq_or_refusal(outcome)

    async def leave(
        self, room_name: str, name: str, seat: str, *, permanent: bool, room_type: str, now_ms: int
    ) -> int | None:
        """Unseat a member (the event's ``seq``); None when that seat no longer holds the name."""
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
        end_on_first_match: bool,
    ) -> Rated | Refusal:
        keys = self.keys(room_name)
        outcome = await self._run(
            "rate",
            room_name,
            keys,
            [],
            name,
            lookup_key(media_id),
            rating_element(media_id, rating, at_ms),
            media_id,
            rating,
            at_ms,
            room_type,
            threshold,
            "1" if end_on_first_match else "0",
            like_key(media_id),
        )
        if outcome[0] != 1:
            return Refusal(outcome[0])
        return Rated(int(outcome[1]), outcome[2] == 1)

    async def undo(self, room_name: str, name: str, media_id: str, *, room_type: str, threshold: int) -> int | Refusal:
        keys = self.keys(room_name)
        outcome = await self._run(
            "undo", room_name, keys, [], name, lookup_key(media_id), media_id, room_type, threshold, like_key(media_id)
        )
        return _seq_or_refusal(outcome)

    async def delete(self, room_name: str) -> int | None:
        """Delete the room and tell its processes (the event's ``seq``); None when it did not exist."""
        keys = self.keys(room_name)
        extra = [self.storage.index_key, self.storage.names_key]
        return int(await self._run("delete", room_name, keys, extra, keys.digest)) or None

    # -- presence ------------------------------------------------------------------------------

    async def heartbeat(self, lifetime: float) -> list[str]:
        """Say this process lives for ``lifetime`` more seconds; returns the processes that did not."""
        with storage_errors("heartbeat", self.process_id):
            lapsed = await self._scripts["heartbeat"](
                keys=[self._processes_key], args=[self.process_id, int(lifetime * 1000)]
            )
        return [process for process in lapsed if process != self.process_id]

    async def reap(self, process_id: str, now_ms: int) -> int:
        """Unseat every member a lapsed process had seated; returns how many."""
        rooms_key = self._process_rooms_key(process_id)
        client = self.storage.client
        unseated = 0
        with storage_errors("reap", process_id):
            # decode_responses: every reply is text.
            for digest in map(str, await client.smembers(rooms_key)):
                keys = RoomKeys.for_digest(self.storage.prefix, digest)
                for name, raw in (await client.hgetall(keys.online)).items():
                    name, seat = str(name), json.loads(raw)
                    if seat.get("process") == process_id:
                        await self._run("leave", name, keys, [], name, seat["seat"], "0", "", now_ms)
                        unseated += 1
            async with client.pipeline(transaction=True) as pipe:
                pipe.delete(rooms_key)
                pipe.zrem(self._processes_key, process_id)
                await pipe.execute()
        return unseated

    async def depart(self) -> None:
        """This process stops (its seats are already unseated): forget it."""
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


def like_key(media_id: str) -> str:
    return f'{lookup_key(media_id)}"like",'


def _seq_or_refusal(outcome: int) -> int | Refusal:
    return int(outcome) if outcome > 0 else Refusal(outcome)
