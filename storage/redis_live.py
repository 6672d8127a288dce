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

import contextlib
import enum
import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio
import redis.asyncio
from redis.asyncio.client import PubSub
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError, NoScriptError, RedisError

from .base import storage_errors
from .errors import StorageError
from .redis import (
    RATING_FUNCTIONS,
    SNAPSHOT_WIDTH,
    RedisStorage,
    RoomKeys,
    decode,
    encode_member,
    lookup_key,
    queue_snapshot,
    rating_element,
)
from .room import Member, RatingValue, SerializedRoom

log = logging.getLogger("storage.redis_live")

# Shared by the room scripts. KEYS of every room script: meta, ratings, progress, members, matches,
# online, seq; ARGV[1] is the room's channel.
_PRELUDE = """
local function emit(body)
  local seq = redis.call("INCR", KEYS[7])
  redis.call("PUBLISH", ARGV[1], '{"seq":' .. seq .. ',' .. body .. '}')
  return seq
end
local function liked(user, like_key)
  local list = redis.call("HGET", KEYS[2], user)
  return list and string.find(list, like_key, 1, true) ~= nil
end
-- protocol.md's group match rules; like_key is `[<mediaId>,"like",`, found only where that
-- item's element starts with a like (quotes inside ids are escaped).
local function is_match(room_type, threshold, like_key)
  if room_type == "standard" then
    local count = 0
    for _, list in ipairs(redis.call("HVALS", KEYS[2])) do
      if string.find(list, like_key, 1, true) then
        count = count + 1
        if count >= threshold then return true end
      end
    end
    return false
  end
  if room_type ~= "unanimous" then return false end
  local names = redis.call("HKEYS", KEYS[4])
  if #names < 2 then return false end
  for _, name in ipairs(names) do
    if not liked(name, like_key) then return false end
  end
  return true
end
"""

# KEYS[8]: this process's room set. ARGV: channel, name, presented token hash ("" for none), the
# new member as JSON, new token hash, avatar ("" for none), member limit, seat, process, public user
# JSON, room digest, "1" to re-seat (only a name nobody holds, never a new member).
_JOIN = """
if redis.call("EXISTS", KEYS[1]) == 0 then return -1 end
local name = ARGV[2]
local member = redis.call("HGET", KEYS[4], name)
if ARGV[12] == "1" and not member then return -1 end
if not member and redis.call("HLEN", KEYS[4]) >= tonumber(ARGV[7]) then return -2 end
local holder = redis.call("HGET", KEYS[6], name)
if holder and cjson.decode(holder).seat ~= ARGV[8] then
  local token = member and cjson.decode(member).tokenHash
  if ARGV[12] == "1" or token ~= ARGV[3] then return -3 end
end
if ARGV[12] ~= "1" then
  if member then
    local fields = cjson.decode(member)
    fields.tokenHash = ARGV[5]
    fields.avatarImage = ARGV[6] ~= "" and ARGV[6] or nil
    member = cjson.encode(fields)
  else
    member = ARGV[4]
  end
  redis.call("HSET", KEYS[4], name, member)
end
redis.call("HSETNX", KEYS[3], name, 0)
local seat = '{"seat":' .. cjson.encode(ARGV[8]) .. ',"process":' .. cjson.encode(ARGV[9])
  .. ',"user":' .. ARGV[10] .. '}'
redis.call("HSET", KEYS[6], name, seat)
redis.call("SADD", KEYS[8], ARGV[11])
return emit('"t":"join","name":' .. cjson.encode(name) .. ',"member":' .. member .. ',"online":' .. seat
  .. ',"resumed":' .. tostring(holder ~= false) .. ',"progress":' .. redis.call("HGET", KEYS[3], name))
"""

# ARGV: channel, name, seat, "1" when leaving for good, room type, now (ms). Only the seat holding
# the name may leave; leaving for good can complete unanimous matches.
_LEAVE = """
local holder = redis.call("HGET", KEYS[6], ARGV[2])
if not holder or cjson.decode(holder).seat ~= ARGV[3] then return 0 end
redis.call("HDEL", KEYS[6], ARGV[2])
local matched = {}
if ARGV[4] == "1" then
  redis.call("HDEL", KEYS[4], ARGV[2])
  local names = redis.call("HKEYS", KEYS[4])
  if ARGV[5] == "unanimous" and #names >= 2 then
    local likes = {}
    for _, name in ipairs(names) do
      local list = redis.call("HGET", KEYS[2], name)
      for _, element in ipairs(list and cjson.decode(list) or {}) do
        if element[2] == "like" then likes[element[1]] = (likes[element[1]] or 0) + 1 end
      end
    end
    for media_id, count in pairs(likes) do
      if count == #names and redis.call("HSETNX", KEYS[5], media_id, ARGV[6]) == 1 then
        table.insert(matched, media_id)
      end
    end
    table.sort(matched)
  end
end
return emit('"t":"leave","name":' .. cjson.encode(ARGV[2]) .. ',"seat":' .. cjson.encode(ARGV[3])
  .. ',"permanent":' .. tostring(ARGV[4] == "1") .. ',"matchedAt":' .. ARGV[6]
  .. ',"matched":' .. (#matched > 0 and cjson.encode(matched) or "[]"))
"""

# ARGV: channel, name, look-up key, element, mediaId, rating, now (ms), room type, threshold,
# "1" for EndOnFirstMatch, like key. Returns {1, seq, 1 if it made a new match} or a refusal.
_RATE = """
if redis.call("EXISTS", KEYS[1]) == 0 then return {-1} end
local list = redis.call("HGET", KEYS[2], ARGV[2])
if ARGV[10] == "1" then
  if ARGV[8] == "solo" then
    if list and string.find(list, ',"like",', 1, true) then return {-4} end
  elseif redis.call("HLEN", KEYS[5]) > 0 then
    return {-4}
  end
end
if not append_rating(KEYS[2], ARGV[2], ARGV[3], ARGV[4]) then return {0} end
local progress = count_rating(KEYS[3], ARGV[2], 1)
local matched_at, new = false, 0
if ARGV[6] == "like" and ARGV[8] ~= "solo" then
  matched_at = redis.call("HGET", KEYS[5], ARGV[5])
  if not matched_at and is_match(ARGV[8], tonumber(ARGV[9]), ARGV[11]) then
    redis.call("HSET", KEYS[5], ARGV[5], ARGV[7])
    matched_at, new = ARGV[7], 1
  end
end
local seq = emit('"t":"rate","name":' .. cjson.encode(ARGV[2]) .. ',"mediaId":' .. cjson.encode(ARGV[5])
  .. ',"rating":"' .. ARGV[6] .. '","at":' .. ARGV[7] .. ',"progress":' .. progress
  .. (matched_at and (',"matchedAt":' .. matched_at) or ''))
return {1, seq, new}
"""

# ARGV: channel, name, look-up key, mediaId, room type, threshold, like key.
_UNDO = """
if redis.call("EXISTS", KEYS[1]) == 0 then return -1 end
if not cut_rating(KEYS[2], ARGV[2], ARGV[3]) then return 0 end
local progress = count_rating(KEYS[3], ARGV[2], -1)
local removed = ARGV[5] ~= "solo" and redis.call("HEXISTS", KEYS[5], ARGV[4]) == 1
  and not is_match(ARGV[5], tonumber(ARGV[6]), ARGV[7])
if removed then redis.call("HDEL", KEYS[5], ARGV[4]) end
return emit('"t":"undo","name":' .. cjson.encode(ARGV[2]) .. ',"mediaId":' .. cjson.encode(ARGV[4])
  .. ',"progress":' .. progress .. ',"matchRemoved":' .. tostring(removed))
"""

# KEYS[8], KEYS[9]: the room index and names. ARGV: channel, digest.
_DELETE = """
if redis.call("EXISTS", KEYS[1]) == 0 then return 0 end
redis.call("DEL", KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6])
redis.call("ZREM", KEYS[8], ARGV[2])
redis.call("HDEL", KEYS[9], ARGV[2])
return emit('"t":"delete"')
"""

# KEYS: the process index. ARGV: process id, timeout (ms). Returns the processes whose deadline passed.
_HEARTBEAT = """
local now = redis.call("TIME")
now = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call("ZADD", KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
return redis.call("ZRANGEBYSCORE", KEYS[1], "-inf", now)
"""


# KEYS: the window's sorted set. ARGV: window (ms), "1" to record an event, the event's unique id.
# Returns the events in the window. Redis's clock: the processes' clocks never matter.
_WINDOW = """
local now = redis.call("TIME")
now = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call("ZREMRANGEBYSCORE", KEYS[1], "-inf", now - tonumber(ARGV[1]))
if ARGV[2] == "1" then
  redis.call("ZADD", KEYS[1], now, ARGV[3])
  redis.call("PEXPIRE", KEYS[1], ARGV[1])
end
return redis.call("ZCARD", KEYS[1])
"""


class RedisWindow:
    """At most ``limit`` events per ``window`` seconds per key, counted by every process alike
    (``server.limits.Window``). While Redis is away it lets everything through: what it guards
    (creating and joining rooms) needs Redis and fails anyway."""

    def __init__(self, storage: RedisStorage, name: str, limit: int, window: float) -> None:
        self.limit = limit
        self._window_ms = int(window * 1000)
        self._prefix = f"{storage.prefix}:limit:{name}:"
        self._script = storage.client.register_script(_WINDOW)
        self._failing = False

    async def _count(self, key: str, *, record: bool) -> int:
        try:
            with storage_errors("limit", key):
                count = await self._script(
                    keys=[self._prefix + key], args=[self._window_ms, "1" if record else "0", uuid.uuid4().hex]
                )
        except StorageError as exc:
            if not self._failing:  # once per outage
                log.warning("limits are not checked while Redis is unreachable: %s", exc)
            self._failing = True
            return 0
        self._failing = False
        return int(count)

    async def exhausted(self, key: str) -> bool:
        return await self._count(key, record=False) >= self.limit

    async def record(self, key: str) -> None:
        await self._count(key, record=True)


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
        self._batches = Batches(client)
        self._scripts = {
            name: client.register_script(body if name == "heartbeat" else RATING_FUNCTIONS + _PRELUDE + body)
            for name, body in {
                "join": _JOIN,
                "leave": _LEAVE,
                "rate": _RATE,
                "undo": _UNDO,
                "delete": _DELETE,
                "heartbeat": _HEARTBEAT,
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

    async def _run(self, script: str, room_name: str, keys: RoomKeys, extra_keys: list[str], *args: str | int) -> Any:
        with storage_errors(script, repr(room_name)):
            return await self._batches.call(
                self._scripts[script], [*self._room_keys(keys), *extra_keys], [keys.events, *args]
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


@dataclass
class _Call:
    script: AsyncScript
    keys: list[str]
    args: list[str | int]
    done: anyio.Event
    reply: Any = None
    error: BaseException | None = None


class Batches:
    """Script calls made while a pipeline is on its way go together in the next one.

    A script call alone costs a round trip and most of the client's time in packing and parsing; a
    hundred members rating at once then queue behind each other. One pipeline at a time carries
    every call made meanwhile, so under load the calls batch themselves, and alone a call goes at
    once. Without ``run`` (a tool, a test), every call is sent on its own.
    """

    def __init__(self, client: redis.asyncio.Redis) -> None:
        self._client = client
        self._queue: list[_Call] = []
        self._wake = anyio.Event()
        self._running = False

    async def call(self, script: AsyncScript, keys: list[str], args: list[str | int]) -> Any:
        if not self._running:
            return await script(keys=keys, args=args)
        call = _Call(script, keys, args, anyio.Event())
        self._queue.append(call)
        self._wake.set()
        await call.done.wait()
        if call.error is not None:
            raise call.error
        return call.reply

    async def run(self) -> None:
        self._running = True
        try:
            while True:
                await self._wake.wait()
                self._wake = anyio.Event()
                while self._queue:
                    batch, self._queue = self._queue, []
                    with anyio.CancelScope(shield=True):  # callers wait for their replies
                        await self._send(batch)
        finally:
            self._running = False
            for call in self._queue:
                call.error = RedisError("the server is stopping")
                call.done.set()

    async def _send(self, batch: list[_Call]) -> None:
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for call in batch:
                    pipe.evalsha(call.script.sha, len(call.keys), *call.keys, *call.args)
                replies = await pipe.execute(raise_on_error=False)
        except Exception as exc:  # the connection: every call of the batch failed alike
            replies = [exc] * len(batch)
        for call, reply in zip(batch, replies, strict=True):
            if isinstance(reply, NoScriptError):  # Redis restarted and lost its script cache
                try:
                    reply = await call.script(keys=call.keys, args=call.args)
                except Exception as exc:
                    reply = exc
            if isinstance(reply, Exception):
                call.error = reply
            else:
                call.reply = reply
            call.done.set()


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


class Subscriber:
    """The process's one pub/sub connection: room channels in, ``on_event(channel, data)`` out.

    ``on_subscribed(channel)`` is called for every confirmed subscription, the first and those
    after a reconnection (when events may have been missed). The connection is re-made until
    ``run`` is cancelled; a control channel keeps it open while the process serves no room.
    """

    RECONNECT_DELAYS = (0.1, 0.25, 0.5, 1.0, 2.0)
    PING_EVERY = 5.0
    CONFIRM_TIMEOUT = 3.0

    def __init__(
        self,
        client: redis.asyncio.Redis,
        control_channel: str,
        on_event: Callable[[str, str], None],
        on_subscribed: Callable[[str], None],
    ) -> None:
        self._client = client
        self._control = control_channel
        self._on_event = on_event
        self._on_subscribed = on_subscribed
        self._channels: set[str] = set()
        self._pubsub: PubSub | None = None
        self._confirmed: dict[str, anyio.Event] = {}
        self.connected = anyio.Event()

    async def subscribe(self, channel: str) -> None:
        """Subscribe and wait for the confirmation: events published after it are delivered."""
        with anyio.move_on_after(self.CONFIRM_TIMEOUT):  # just started, or reconnecting
            await self.connected.wait()
        pubsub = self._pubsub
        if pubsub is None or not self.connected.is_set():
            raise StorageError("subscribe", channel, "not connected to Redis")
        self._channels.add(channel)
        confirmed = self._confirmed[channel] = anyio.Event()
        try:
            with storage_errors("subscribe", channel), anyio.fail_after(self.CONFIRM_TIMEOUT):
                await pubsub.subscribe(channel)
                await confirmed.wait()
        except (StorageError, TimeoutError) as exc:
            self._channels.discard(channel)
            raise StorageError("subscribe", channel, str(exc) or "no confirmation") from exc

    async def unsubscribe(self, channel: str) -> None:
        self._channels.discard(channel)
        self._confirmed.pop(channel, None)
        if self._pubsub is not None:
            # On failure the next connection does not subscribe it again.
            with contextlib.suppress(RedisError, OSError):
                await self._pubsub.unsubscribe(channel)

    async def run(self) -> None:
        failures = 0
        while True:
            delay = self.RECONNECT_DELAYS[0]
            try:
                async with self._client.pubsub() as pubsub:
                    await pubsub.subscribe(self._control, *self._channels)
                    self._pubsub = pubsub
                    await self._listen(pubsub)
                    failures = 0
            except (RedisError, OSError) as exc:
                if failures == 0:
                    log.error("lost the Redis subscription, reconnecting: %s", exc)
                delay = self.RECONNECT_DELAYS[min(failures, len(self.RECONNECT_DELAYS) - 1)]
                failures += 1
            finally:
                self._pubsub = None
                self.connected = anyio.Event()
            await anyio.sleep(delay)

    async def _listen(self, pubsub: PubSub) -> None:
        """Deliver messages; a connection that stays silent through a ping is taken for dead (a
        network cut without a reset would otherwise leave this process deaf until it restarts)."""
        while True:
            message = await pubsub.get_message(timeout=self.PING_EVERY)
            if message is None:
                await pubsub.ping()
                with anyio.fail_after(self.PING_EVERY):
                    message = await pubsub.get_message(timeout=self.PING_EVERY)
                if message is None:
                    raise RedisConnectionError("no answer to a ping on the subscription")
            self._receive(message)

    def _receive(self, message: dict[str, Any]) -> None:
        channel = message["channel"]
        if message["type"] == "message":
            self._on_event(channel, message["data"])
        elif message["type"] == "subscribe":
            if channel == self._control:
                self.connected.set()
                return
            confirmed = self._confirmed.get(channel)
            if confirmed is not None:
                confirmed.set()
            self._on_subscribed(channel)
