"""Redis backend: one room in a few fine-grained keys, so several server processes can share rooms.

Key layout (``mm`` is the key prefix, ``<d>`` the room key's ``storage.keys.key_digest``)::

    mm:room:{<d>}:meta      STRING  the room's settings as JSON (no ratings, progress, members,
                                    matches, deck or openedAt; ``"deck": {"size"}`` when it has one)
    mm:room:{<d>}:ratings   HASH    userName -> that user's ratings, a JSON array of
                                    [mediaId, "like" | "dislike", "<ms>"] in the order given
    mm:room:{<d>}:progress  HASH    userName -> number of items rated
    mm:room:{<d>}:members   HASH    userName -> the member as JSON
    mm:room:{<d>}:matches   HASH    mediaId -> epoch ms it became a match
    mm:room:{<d>}:owner     STRING  who owns the room (an identity, see ``server.identity``)
    mm:room:{<d>}:removed   HASH    identity (or "name:<skeleton>") the owner removed -> their name
    mm:room:{<d>}:deck      LIST    the room's media ids in order (``mediaIds``), written at creation
    mm:room:{<d>}:opened    STRING  when the room was last opened (``openedAt``, as in the JSON form)
    mm:room:{<d>}:pick      STRING  the match picked for the room, as JSON {mediaId, at}
    mm:room:{<d>}:online    HASH    userName -> where that member is connected (see ``server.rooms.shared``)
    mm:room:{<d>}:seq       STRING  the number of the room's last event (kept when the room is deleted,
                                    so a process that missed the deletion never takes a new room's
                                    events for old ones)
    mm:rooms                ZSET    <d> -> createdAt (epoch ms): the room index, in creation order
    mm:room-names           HASH    <d> -> display name
    mm:join-codes           HASH    join code -> <d> of the room that has it (the code is in its meta)
    mm:list:{<i>}:<name>    HASH    one person's list (``Storage.read_list``), key -> value; ``<i>`` is
                                    the ``key_digest`` of their identity

A room's keys share the hash tag ``{<d>}``, so the rating scripts touch a single Cluster slot.
Ratings are recorded by scripts that append to (or cut from) one user's array atomically: two
processes rating one room never overwrite each other, and the script's look-up of the item keeps one
rating per user and item. One field per user, not per rating, keeps a snapshot of a room with
hundreds of ratings to a handful of fields: that is what makes ``save_room`` and ``get_room`` cheap.
The deck has a key of its own, so the keys that change never carry it, and a listing reads its
length alone. ``save_room`` is a snapshot write (it replaces ratings, members and matches too);
servers sharing rooms never call it after creating a room, they change rooms through
``server.rooms.shared``. The index makes listing need no ``KEYS``/``SCAN``.

Rooms stored by earlier versions load as they are: members and matches inside ``meta`` (before
they had keys of their own), the deck inside ``meta`` (``mediaIds``), and ratings as one field per
(item, user) (``["<mediaId>","<userName>"]`` -> ``"like:<ms>"``).
"""

from __future__ import annotations

import functools
import json
import logging
import re
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import anyio
import hiredis
import redis.asyncio
from pydantic import TypeAdapter
from redis._parsers.hiredis import NOT_ENOUGH_DATA
from redis.asyncio.connection import parse_url
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import MasterNotFoundError, Sentinel, SentinelConnectionPool, SentinelManagedConnection
from redis.backoff import ExponentialBackoff
from redis.commands.core import AsyncScript
from redis.connection import HiredisRespSerializer
from redis.exceptions import ConnectionError as RedisConnectionError, NoScriptError, ReadOnlyError, RedisError
from redis.typing import EncodableT, FieldT, KeyT

from .base import Storage, list_name, storage_errors
from .errors import JoinCodeTaken, StorageError
from .keys import key_digest, room_key
from .room import Member, SerializedRoom, problems
from .schema import SCHEMA_VERSION
from .summary import RoomSummary, summarise

logger = logging.getLogger("storage.redis")

SENTINEL_SCHEME = "redis+sentinel"
SCHEMES = ("redis", "rediss", "unix", SENTINEL_SCHEME)
PREFIX_OPTION = "prefix"
# Query options redis-py parses itself; any other name would reach its connection class as a stray
# keyword argument and fail only at the first command.
REDIS_OPTIONS = frozenset({"db", "socket_timeout", "socket_connect_timeout", "ssl_cert_reqs", "ssl_ca_certs"})
# redis+sentinel:// only: the sentinels' own credentials (the URL's user info is the data nodes').
SENTINEL_OPTIONS = frozenset({"sentinel_username", "sentinel_password"})
SENTINEL_PORT = 26379
# Redis answers in well under a millisecond: a stall of seconds means it is gone, and the caller
# (a request or a WebSocket message) must get an error rather than wait.
SOCKET_TIMEOUT = 3.0
CONNECT_TIMEOUT = 2.0
MAX_CONNECTIONS = 50
# Only connection errors are retried (a dropped pooled connection, a restart, a demoted primary's
# READONLY): a timed-out command may have run, and running a rating again would report a recorded
# rating as a duplicate.
RETRIES = 2
LIST_BATCH = 100
# Ids per RPUSH: Lua's unpack, and a command's arguments, stay bounded at any deck size.
DECK_CHUNK = 1000
# How long a write waits for its replicas (``require_replicas``): within SOCKET_TIMEOUT, which bounds
# the wait for the reply of the whole pipeline the WAIT ends.
WAIT_TIMEOUT_MS = 1000

# Lua: free the join code a room's stored meta names, when the code is still that room's.
RELEASE_JOIN_CODE = """
local function release_join_code(meta_key, codes_key, digest)
  local meta = redis.call("GET", meta_key)
  if not meta then return end
  local ok, data = pcall(cjson.decode, meta)
  if ok and type(data) == "table" and type(data.joinCode) == "string"
      and redis.call("HGET", codes_key, data.joinCode) == digest then
    redis.call("HDEL", codes_key, data.joinCode)
  end
end
"""

# KEYS: meta, index, names, owner, deck, opened, pick, then ratings, progress, members, matches,
# removed, then the join codes. ARGV: "1" to replace a stored room ("0": leave it and return 0),
# meta, digest, createdAt, name, owner, openedAt, pick ("" for none), join code ("" for none), then
# for each of the five hashes its field count and its fields and values, then the deck's length and
# ids. Returns -1, writing nothing, when another room has the join code. A script rather than a
# MULTI, so that a WAIT can follow it on the same connection (redis-py ends a transaction pipeline
# with EXEC).
WRITE_ROOM_SCRIPT = (
    RELEASE_JOIN_CODE
    + f"""
if ARGV[1] ~= "1" and redis.call("EXISTS", KEYS[1]) == 1 then return 0 end
if ARGV[9] ~= "" then
  local holder = redis.call("HGET", KEYS[13], ARGV[9])
  if holder and holder ~= ARGV[3] then return -1 end
end
release_join_code(KEYS[1], KEYS[13], ARGV[3])
if ARGV[9] ~= "" then redis.call("HSET", KEYS[13], ARGV[9], ARGV[3]) end
redis.call("SET", KEYS[1], ARGV[2])
redis.call("ZADD", KEYS[2], ARGV[4], ARGV[3])
redis.call("HSET", KEYS[3], ARGV[3], ARGV[5])
redis.call("SET", KEYS[4], ARGV[6])
redis.call("SET", KEYS[6], ARGV[7])
if ARGV[8] == "" then redis.call("DEL", KEYS[7]) else redis.call("SET", KEYS[7], ARGV[8]) end
local at = 10
for key = 8, 12 do
  redis.call("DEL", KEYS[key])
  local count = tonumber(ARGV[at])
  for i = 1, count do
    redis.call("HSET", KEYS[key], ARGV[at + 2 * i - 1], ARGV[at + 2 * i])
  end
  at = at + 1 + 2 * count
end
redis.call("DEL", KEYS[5])
local last = at + tonumber(ARGV[at])
for first = at + 1, last, {DECK_CHUNK} do
  redis.call("RPUSH", KEYS[5], unpack(ARGV, first, math.min(first + {DECK_CHUNK - 1}, last)))
end
return 1
"""
)
# KEYS: one list. ARGV: the number of entries to set, those keys and values in turn, then the keys to
# remove. A script, so that the change is one step (and a WAIT can follow it, as for rooms).
CHANGE_LIST_SCRIPT = """
local count = tonumber(ARGV[1])
for i = 1, count do
  redis.call("HSET", KEYS[1], ARGV[2 * i], ARGV[2 * i + 1])
end
for i = 2 + 2 * count, #ARGV do
  redis.call("HDEL", KEYS[1], ARGV[i])
end
return 1
"""
# KEYS: the room's stored keys (meta first), then the index, names and join codes. ARGV: digest.
DELETE_ROOM_SCRIPT = (
    RELEASE_JOIN_CODE
    + """
release_join_code(KEYS[1], KEYS[#KEYS], ARGV[1])
redis.call("DEL", unpack(KEYS, 1, #KEYS - 3))
redis.call("ZREM", KEYS[#KEYS - 2], ARGV[1])
redis.call("HDEL", KEYS[#KEYS - 1], ARGV[1])
return 1
"""
)
# KEYS: meta, join codes. ARGV: code, digest. The room's code (given now when it had none), false
# when no room is stored, "" when another room has the code. The meta is a JSON object without
# joinCode then (encode_meta leaves it out): the code is added before its closing brace.
GIVE_JOIN_CODE_SCRIPT = """
local meta = redis.call("GET", KEYS[1])
if not meta then return false end
local data = cjson.decode(meta)
if type(data.joinCode) == "string" then return data.joinCode end
local holder = redis.call("HGET", KEYS[2], ARGV[1])
if holder and holder ~= ARGV[2] then return "" end
redis.call("HSET", KEYS[2], ARGV[1], ARGV[2])
redis.call("SET", KEYS[1], string.sub(meta, 1, -2) .. ',"joinCode":' .. cjson.encode(ARGV[1]) .. "}")
return ARGV[1]
"""

# KEYS: meta, progress, members, matches, deck, opened, then the room's other keys (for its size).
# Everything is counted in Redis: a listing moves no rating and no deck over the network.
SUMMARY_SCRIPT = """
local meta = redis.call("GET", KEYS[1])
if not meta then return false end
local ratings = 0
for _, count in ipairs(redis.call("HVALS", KEYS[2])) do
  ratings = ratings + (tonumber(count) or 0)
end
local size = 0
for i = 1, #KEYS do
  size = size + (redis.call("MEMORY", "USAGE", KEYS[i]) or 0)
end
local members, matches = redis.call("HLEN", KEYS[3]), redis.call("HLEN", KEYS[4])
return {meta, members, ratings, matches, redis.call("LLEN", KEYS[5]), redis.call("GET", KEYS[6]), size}
"""


def mask_url(url: str) -> str:
    """The URL fit for messages: user info masked, query (which may carry secrets) dropped.

    Works on the raw text, so even a malformed URL (a password with a bare ``#`` or ``/``) leaks nothing.
    """
    head, sep, rest = url.partition("://")
    if not sep:
        head, rest = "", url
    _, at, location = rest.rpartition("@")
    location = re.split(r"[?#]", location, maxsplit=1)[0]
    return f"{head}{sep}{'***@' if at else ''}{location}"


@dataclass(frozen=True)
class RedisURL:
    """A storage URL taken apart by ``split_url``."""

    # For redis-py: the URL without our own options; with Sentinel, one without a host, holding
    # what every data node is connected with (user info, database, options).
    url: str
    prefix: str | None = None
    # redis+sentinel:// only: where to ask, for which service, with which credentials.
    sentinels: tuple[tuple[str, int], ...] = ()
    service: str = ""
    sentinel_auth: Mapping[str, str] = field(default_factory=dict)


def split_url(url: str) -> RedisURL:
    """The URL for redis-py (our own options removed), the ``prefix`` option, and for
    ``redis+sentinel://[user:password@]host[:port][,host[:port]...]/service[/db]`` the sentinels."""
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # e.g. an unclosed [ in a host
        raise StorageError("create_storage", mask_url(url), f"not a valid URL ({exc})") from None
    if parts.scheme not in SCHEMES:
        raise StorageError("create_storage", mask_url(url), f"not a Redis URL (schemes: {', '.join(SCHEMES)})")
    sentinel = parts.scheme == SENTINEL_SCHEME
    allowed = REDIS_OPTIONS | {PREFIX_OPTION} | (SENTINEL_OPTIONS if sentinel else frozenset())
    options = parse_qsl(parts.query, keep_blank_values=True)
    unknown = sorted({name for name, _ in options} - allowed)
    if unknown:
        known = ", ".join(sorted(allowed))
        raise StorageError("create_storage", mask_url(url), f"unknown option(s) {', '.join(unknown)} (known: {known})")
    prefixes = [value for name, value in options if name == PREFIX_OPTION]
    prefix = prefixes[-1] if prefixes else None
    passed_on = [(name, value) for name, value in options if name in REDIS_OPTIONS]
    if not sentinel:
        return RedisURL(urlunsplit(parts._replace(query=urlencode(passed_on))), prefix)
    user_info, at, hosts = parts.netloc.rpartition("@")
    service, _, db = unquote(parts.path).strip("/").partition("/")
    if not service or "/" in db or not (db or "0").isdigit():
        raise StorageError("create_storage", mask_url(url), "give the Sentinel service and database as /service[/db]")
    query = urlencode(passed_on)
    return RedisURL(
        f"redis://{user_info}{at}/{db or 0}" + (f"?{query}" if query else ""),
        prefix,
        tuple(_sentinel_address(url, host) for host in hosts.split(",")),
        service,
        {name.removeprefix("sentinel_"): value for name, value in options if name in SENTINEL_OPTIONS},
    )


def _sentinel_address(url: str, text: str) -> tuple[str, int]:
    """``host``, ``host:port`` or ``[ipv6]:port`` of one sentinel (port 26379 when none is given)."""
    host, port = text, ""
    if text.startswith("["):
        host, _, port = text[1:].partition("]")
        port = port.removeprefix(":")
    elif ":" in text:
        host, _, port = text.rpartition(":")
    port = port or str(SENTINEL_PORT)
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        reason = f"bad sentinel address {text!r} (host[:port], comma-separated)"
        raise StorageError("create_storage", mask_url(url), reason)
    return host, int(port)


# One spelling everywhere: the scripts find items by the exact text Python wrote. (One encoder: json.dumps
# with options makes one per call, a good part of what packing a rating cost.)
_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def json_text(value: object) -> str:
    return _JSON.encode(value)


def lookup_key(media_id: str) -> str:
    """The text that starts the element of ``media_id`` in a user's ratings array."""
    return f"[{json_text(media_id)},"


def rating_element(lookup: str, rating: str, at_ms: int) -> str:
    """A rating's element in its user's ratings array, ``[mediaId,rating,"at_ms"]``, from its item's
    ``lookup_key`` (made once for all the texts of a rating)."""
    # The time as text: Lua (and JSON) numbers would round epoch milliseconds past 2**53.
    return f'{lookup}{json_text(rating)},"{at_ms}"]'


@dataclass(frozen=True)
class RoomKeys:
    """The Redis keys of one room, and the channel its events are published on."""

    digest: str
    meta: str
    ratings: str
    progress: str
    members: str
    matches: str
    owner: str
    removed: str
    deck: str
    opened: str
    pick: str
    online: str
    seq: str
    events: str

    @classmethod
    def for_digest(cls, prefix: str, digest: str) -> RoomKeys:
        tagged = f"{prefix}:room:{{{digest}}}"
        names = [
            *("meta", "ratings", "progress", "members", "matches"),
            *("owner", "removed", "deck", "opened", "pick", "online", "seq", "events"),
        ]
        return cls(digest, *(f"{tagged}:{name}" for name in names))

    @classmethod
    def for_room(cls, prefix: str, room_name: str) -> RoomKeys:
        return _room_keys(prefix, room_name)

    def stored(self) -> tuple[str, ...]:
        """The keys a room's deletion removes (all but ``seq``)."""
        return (
            self.meta,
            self.ratings,
            self.progress,
            self.members,
            self.matches,
            self.owner,
            self.removed,
            self.deck,
            self.opened,
            self.pick,
            self.online,
        )


@functools.lru_cache(maxsize=4096)
def _room_keys(prefix: str, room_name: str) -> RoomKeys:
    # Every script call of a shared room names its keys: normalising the name and hashing it each
    # time cost as much as packing the call.
    return RoomKeys.for_digest(prefix, key_digest(room_key(room_name)))


# Fields of SerializedRoom kept in keys of their own, not in ``meta``.
SPLIT_FIELDS = frozenset(
    {"ratings", "user_progress", "members", "matches", "owner", "removed", "pick", "media_ids", "opened_at"}
)


def decode(
    meta: str | None,
    ratings: dict[str, str],
    progress: dict[str, str],
    members: dict[str, str],
    matches: dict[str, str],
    owner: str | None,
    removed: dict[str, str],
    deck: list[str],
    opened: str | None,
    pick: str | None,
) -> SerializedRoom | None:
    """A room from its keys' values (times and counts come as text; the model converts them)."""
    if meta is None:
        return None
    data = _meta(meta)
    reference = data.pop("deck", None)
    if reference is not None:
        size = reference.get("size") if isinstance(reference, dict) else None
        if size != len(deck):
            raise ValueError(f"room deck holds {len(deck)} films, meta says {size!r}")
        data["mediaIds"] = deck
    by_item: dict[str, list[tuple[str, str, str]]] = {}
    for user_or_item, value in ratings.items():
        for media_id, user_name, rating, at_ms in _ratings_of(user_or_item, value):
            by_item.setdefault(media_id, []).append((user_name, rating, at_ms))
    data["ratings"] = by_item
    data["userProgress"] = progress
    # Rooms stored before members and matches had keys of their own carry them in meta.
    data["members"] = data.get("members", {}) | {name: json.loads(member) for name, member in members.items()}
    data["matches"] = data.get("matches", {}) | matches
    data["owner"] = owner or ""
    data["removed"] = removed
    data["pick"] = json.loads(pick) if pick else None
    if opened is not None:
        data["openedAt"] = opened
    return SerializedRoom.from_dict(data)


def _meta(meta: str) -> dict[str, Any]:
    data = json.loads(meta)
    if not isinstance(data, dict):
        raise ValueError("room meta is not a JSON object")
    return data


def _ratings_of(field: str, value: str) -> list[tuple[str, str, str, str]]:
    """(mediaId, userName, rating, ms) of one ratings field: a user's array, or one rating of the
    first layout (field ``["<mediaId>","<userName>"]``, value ``"<rating>:<ms>"``)."""
    if value.startswith("["):
        return [(media_id, field, rating, at_ms) for media_id, rating, at_ms in json.loads(value)]
    media_id, user_name = json.loads(field)
    rating, colon, at_ms = value.partition(":")
    if not (isinstance(media_id, str) and isinstance(user_name, str) and colon):
        raise ValueError(f"bad rating field {field!r}")
    return [(media_id, user_name, rating, at_ms)]


def encode_meta(room: SerializedRoom) -> str:
    # Without a join code, no joinCode at all: GIVE_JOIN_CODE_SCRIPT adds one.
    exclude = set(SPLIT_FIELDS) if room.join_code is not None else {*SPLIT_FIELDS, "join_code"}
    text = room.model_dump_json(by_alias=True, exclude=exclude)
    if room.media_ids is None:
        return text
    return f'{text[:-1]},"deck":{{"size":{len(room.media_ids)}}}}}'


_TIME: TypeAdapter[datetime] = TypeAdapter(datetime)


def opened_text(at_ms: int) -> str:
    """A time (epoch ms) as ``openedAt`` is spelt in the JSON form (the shared rooms' scripts write it)."""
    spelled: str = _TIME.dump_python(datetime.fromtimestamp(at_ms / 1000, UTC), mode="json")
    return spelled


def encode_opened(room: SerializedRoom) -> str:
    """``openedAt`` as the JSON form spells it (exact to the microsecond, unlike epoch ms)."""
    spelled: str = room.model_dump(mode="json", include={"opened_at"})["opened_at"]
    return spelled


def encode_member(member: Member) -> str:
    return member.model_dump_json(by_alias=True, exclude_defaults=True)


def _ratings_by_user(room: SerializedRoom) -> dict[str, str]:
    """Each user's ratings array; a snapshot holding a user's rating of an item twice keeps the
    first (ratings are in time order), as add_rating would have."""
    elements: dict[str, dict[str, list[str]]] = {}
    for media_id, triples in room.ratings.items():
        for user_name, rating, at_ms in triples:
            elements.setdefault(user_name, {}).setdefault(media_id, [media_id, rating, str(at_ms)])
    # One encoding per user, spelled exactly as rating_element spells each element.
    return {user: json_text(list(items.values())) for user, items in elements.items()}


SNAPSHOT_WIDTH = 10


def queue_snapshot(pipe: redis.asyncio.client.Pipeline, keys: RoomKeys) -> None:
    """Queue the ``SNAPSHOT_WIDTH`` reads whose replies are ``decode``'s arguments."""
    pipe.get(keys.meta)
    for key in (keys.ratings, keys.progress, keys.members, keys.matches):
        pipe.hgetall(key)
    pipe.get(keys.owner)
    pipe.hgetall(keys.removed)
    pipe.lrange(keys.deck, 0, -1)
    pipe.get(keys.opened)
    pipe.get(keys.pick)


def _hashes(keys: RoomKeys, room: SerializedRoom) -> dict[str, dict[FieldT, EncodableT]]:
    """The room's hash keys and their fields: ratings, progress, members, matches, removed, in that order."""
    return {
        keys.ratings: {user: array for user, array in _ratings_by_user(room).items()},
        keys.progress: {user: count for user, count in room.user_progress.items()},
        keys.members: {name: encode_member(member) for name, member in room.members.items()},
        keys.matches: {media_id: at for media_id, at in room.matches.items()},
        keys.removed: {ban: name for ban, name in room.removed.items()},
    }


def _location(keys: RoomKeys) -> str:
    return keys.meta.removesuffix(":meta") + ":*"


def _summary_keys(keys: RoomKeys) -> list[str]:
    """SUMMARY_SCRIPT's keys: those it reads, then the rest of the room's."""
    rest = [keys.ratings, keys.online, keys.owner, keys.removed, keys.pick]
    return [keys.meta, keys.progress, keys.members, keys.matches, keys.deck, keys.opened, *rest]


def _summary(name: str, reply: list[Any]) -> RoomSummary | None:
    """The summary from SUMMARY_SCRIPT's reply, or None when only the whole room can tell (a room of
    an earlier layout or version, or a damaged one)."""
    meta, members, ratings, matches, deck_length, opened, size = reply
    try:
        data = _meta(meta)
    except ValueError:
        return None
    reference = data.get("deck")
    films = reference.get("size") if isinstance(reference, dict) else None
    if data.get("schemaVersion") != SCHEMA_VERSION or (reference is not None and films != deck_length):
        return None
    if "mediaIds" in data or "members" in data or "matches" in data:
        return None
    try:
        return RoomSummary(
            name=name,
            created_at=data["createdAt"],
            opened_at=opened or data["createdAt"],
            members=members,
            ratings=ratings,
            matches=matches,
            films=films,
            size=size,
            join_code=data.get("joinCode"),
        )
    except (KeyError, ValueError):
        return None


def _log_skipped(operation: str, skipped: list[StorageError]) -> None:
    if skipped:
        logger.warning("%s skipped %d unreadable room(s): %s", operation, len(skipped), "; ".join(map(str, skipped)))


def _created_ms(room: SerializedRoom) -> int:
    return int(room.created_at.timestamp() * 1000)


def _chunks(ids: list[str]) -> list[list[str]]:
    return [ids[start : start + DECK_CHUNK] for start in range(0, len(ids), DECK_CHUNK)]


class NotReplicated(RedisError):
    """Fewer replicas than required confirmed a write in time: a failover now could lose it."""


@dataclass(frozen=True)
class Replication:
    """How many replicas must confirm a write (``WAIT``) before it counts as done; 0: none."""

    replicas: int = 0
    timeout_ms: int = WAIT_TIMEOUT_MS

    def wait_command(self) -> tuple[str, int, int] | None:
        """The WAIT to send after the writes it confirms (it waits for all its connection wrote),
        if replicas must confirm them."""
        return ("WAIT", self.replicas, self.timeout_ms) if self.replicas else None

    def check(self, reply: object) -> None:
        """Raise unless the WAIT's ``reply`` counts enough replicas."""
        if isinstance(reply, Exception):
            raise reply
        if not isinstance(reply, int) or reply < self.replicas:
            raise NotReplicated(
                f"{reply} of the {self.replicas} required replica(s) confirmed the write within {self.timeout_ms} ms"
            )

    async def call(
        self, client: redis.asyncio.Redis, script: AsyncScript, keys: Sequence[KeyT], args: Sequence[EncodableT]
    ) -> Any:
        """Run ``script`` and wait for its replicas. A Redis that lost its script cache (restarted,
        or a replica just promoted: loaded scripts are not replicated) gets it loaded again."""
        reply, confirmation = await self._once(client, script, keys, args)
        if isinstance(reply, NoScriptError):
            script.sha = await client.script_load(script.script)
            reply, confirmation = await self._once(client, script, keys, args)
        if isinstance(reply, Exception):
            raise reply
        if self.replicas:
            self.check(confirmation)
        return reply

    async def _once(
        self, client: redis.asyncio.Redis, script: AsyncScript, keys: Sequence[KeyT], args: Sequence[EncodableT]
    ) -> tuple[Any, Any]:
        async with client.pipeline(transaction=False) as pipe:
            pipe.evalsha(script.sha, len(keys), *keys, *args)
            wait = self.wait_command()
            if wait is not None:
                pipe.execute_command(*wait)
            replies: list[Any] = await pipe.execute(raise_on_error=False)
        return replies[0], replies[-1]


class PrimaryPool(SentinelConnectionPool, redis.asyncio.BlockingConnectionPool):
    """Connections to the server Redis Sentinel names as the primary, blocking when all are in use
    (as the plain pool); it notices when the primary moves (a failover), logs it once, counts it, and
    tells its ``listeners`` (the pub/sub subscriber, whose connection is never idle).

    redis-py asks the sentinels whenever it makes a connection: after the old primary's connections
    broke, or after one got READONLY from a demoted primary (it then drops that connection); a change
    of address drops the idle connections too, so none keeps talking to the old primary.
    """

    def __init__(self, service_name: str, sentinel_manager: Sentinel, **kwargs: Any) -> None:
        super().__init__(service_name, sentinel_manager, **kwargs)  # type: ignore[no-untyped-call]
        self.primary: tuple[str, int] | None = None
        self.failovers = 0
        self.listeners: list[Callable[[], None]] = []
        self._lost = False

    async def get_master_address(self) -> tuple[str, int]:
        try:
            address: tuple[str, int] = await super().get_master_address()  # type: ignore[no-untyped-call]
        except MasterNotFoundError as exc:
            if not self._lost:  # once per outage
                logger.error("Redis Sentinel names no primary for %r (failing over?): %s", self.service_name, exc)
            self._lost = True
            raise
        self._lost = False
        if address != self.primary:
            previous, self.primary = self.primary, address
            if previous is not None:
                self.failovers += 1
                logger.warning(
                    "Redis primary of %r moved from %s to %s (a Sentinel failover): following it",
                    self.service_name,
                    _address_text(previous),
                    _address_text(address),
                )
                for listener in self.listeners:
                    listener()
        return address

    def status(self) -> dict[str, Any]:
        primary = None if self.primary is None else _address_text(self.primary)
        return {"service": self.service_name, "primary": primary, "failovers": self.failovers}


class HiredisPacking:
    """Commands packed in C by hiredis, as redis-py's synchronous client packs them. Its asyncio
    connections pack them in Python, one argument at a time: for the shared rooms' scripts (two
    dozen arguments each) that was the larger part of this process's time for a rating."""

    _packer = HiredisRespSerializer()

    def pack_command(self, *args: EncodableT) -> list[bytes]:
        return self._packer.pack(*args)  # type: ignore[arg-type,no-any-return]  # redis-py types it loosely


def packed_by_hiredis(connection_class: type[Any]) -> type[Any]:
    """``connection_class`` (whichever the URL's scheme picked) with commands packed by hiredis."""
    if issubclass(connection_class, HiredisPacking):
        return connection_class
    return type(f"Hiredis{connection_class.__name__}", (HiredisPacking, connection_class), {})


async def read_subscribed(connection: redis.asyncio.Connection) -> list[Any]:
    """The messages a subscribed ``connection`` has received and not yet given out, or if none,
    those of the next read from its socket (waiting for it).

    redis-py's ``PubSub.get_message`` parses one message a call, each under a deadline of its own
    (a timer set on the event loop and cancelled): at a message per change in every room a process
    serves, that was most of its subscription's time. Here hiredis parses a whole socket read at
    once."""
    parser, reader = _hiredis_of(connection)
    messages = _parsed(reader)
    if not messages:
        await parser.read_from_socket()
        messages = _parsed(reader)
    for message in messages:
        if isinstance(message, Exception):  # an error reply, to a command on the subscription
            raise message
    return messages


async def run_commands(client: redis.asyncio.Redis, commands: Sequence[Sequence[EncodableT]]) -> list[Any]:
    """The replies to ``commands``, sent in one write on one connection of ``client``'s pool; an
    error reply is in its command's place, as its exception (``NoScriptError``, ...).

    A redis-py pipeline parses its replies one at a time, each under a deadline of its own: for the
    shared rooms' batches of script calls that was most of what a batch cost. Here hiredis parses
    each socket read whole, under one deadline for the batch. A connection that fails is dropped (a
    reply left unread would be taken for the next command's) and the commands are sent again, as a
    redis-py pipeline does, by the client's retry policy."""
    pool = client.connection_pool
    connection = await pool.get_connection()  # type: ignore[no-untyped-call]
    try:
        replies: list[Any] = await connection.retry.call_with_retry(
            lambda: _exchange(connection, commands, sentinel=isinstance(pool, SentinelConnectionPool)),
            lambda _: connection.disconnect(nowait=True),
        )
    except BaseException:
        await connection.disconnect(nowait=True)
        raise
    finally:
        await pool.release(connection)
    return replies


async def _exchange(
    connection: redis.asyncio.Connection, commands: Sequence[Sequence[EncodableT]], *, sentinel: bool
) -> list[Any]:
    with anyio.fail_after(SOCKET_TIMEOUT):
        # Packed by hiredis in C, in one piece (redis-py joins each command's packing in Python).
        packed = b"".join([hiredis.pack_command(tuple(command)) for command in commands])  # type: ignore[arg-type]  # its stub says a 1-tuple
        await connection.send_packed_command(packed, check_health=False)
        parser, reader = _hiredis_of(connection)
        replies = _parsed(reader)
        while len(replies) < len(commands):
            await parser.read_from_socket()
            replies += _parsed(reader)
    for reply in replies:
        if isinstance(reply, RedisConnectionError):  # Redis refused the connection itself
            raise reply
        if isinstance(reply, ReadOnlyError) and sentinel:
            # As redis-py's Sentinel connections do: the primary was demoted, and connecting again
            # asks the sentinels for the new one.
            raise RedisConnectionError("the Redis primary is now a replica") from reply
    return replies


def _hiredis_of(connection: redis.asyncio.Connection) -> tuple[Any, hiredis.Reader]:
    # redis-py has no public way to see what its parser holds: its hiredis reader is used directly.
    parser = connection._parser
    reader = getattr(parser, "_reader", None)
    if not isinstance(reader, hiredis.Reader):
        raise RedisConnectionError("not connected, or not read by hiredis")
    return parser, reader


def _parsed(reader: hiredis.Reader) -> list[Any]:
    replies = []
    while (reply := reader.gets()) is not NOT_ENOUGH_DATA:
        replies.append(reply)
    return replies


class PrimaryConnection(HiredisPacking, SentinelManagedConnection):
    """A connection that asks for the primary's address before every attempt to connect: redis-py
    reconnects inside a command (a pipeline retried after READONLY or a reset) straight to the
    address it had, the old primary's (redis-py issue #3874)."""

    async def _connect(self) -> None:
        self.host, self.port = await self.connection_pool.get_master_address()
        await super()._connect()  # type: ignore[no-untyped-call]


def _address_text(address: tuple[str, int]) -> str:
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass(frozen=True)
class _Connection:
    client: redis.asyncio.Redis
    owned: bool
    write_room: AsyncScript
    delete_room: AsyncScript
    summary: AsyncScript
    give_join_code: AsyncScript
    change_list: AsyncScript
    sentinel: Sentinel | None = None

    @classmethod
    def wrap(cls, client: redis.asyncio.Redis, *, owned: bool, sentinel: Sentinel | None = None) -> _Connection:
        scripts = (WRITE_ROOM_SCRIPT, DELETE_ROOM_SCRIPT, SUMMARY_SCRIPT, GIVE_JOIN_CODE_SCRIPT, CHANGE_LIST_SCRIPT)
        write, delete, summary, give, change = (client.register_script(body) for body in scripts)
        return cls(client, owned, write, delete, summary, give, change, sentinel)

    @classmethod
    def connect(cls, url: RedisURL) -> _Connection:
        retry = Retry(ExponentialBackoff(cap=0.25, base=0.05), RETRIES, supported_errors=(RedisConnectionError,))
        # Blocking: a burst of commands beyond the pool's connections waits for a free one (a plain
        # pool refuses it with "Too many connections"); a wait of seconds means Redis is gone.
        options: dict[str, Any] = {
            "decode_responses": True,
            "socket_timeout": SOCKET_TIMEOUT,
            "socket_connect_timeout": CONNECT_TIMEOUT,
            "retry": retry,
            "max_connections": MAX_CONNECTIONS,
            "timeout": SOCKET_TIMEOUT,
        }
        if not url.sentinels:
            pool = redis.asyncio.BlockingConnectionPool.from_url(url.url, **options)
            pool.connection_class = packed_by_hiredis(pool.connection_class)
            return cls.wrap(redis.asyncio.Redis.from_pool(pool), owned=True)
        timeouts = {"socket_timeout": SOCKET_TIMEOUT, "socket_connect_timeout": CONNECT_TIMEOUT}
        sentinel = Sentinel(url.sentinels, sentinel_kwargs={**timeouts, **url.sentinel_auth})  # type: ignore[no-untyped-call]
        # url.url names no host: it holds the data nodes' credentials, database and options.
        client = sentinel.master_for(
            url.service,
            connection_pool_class=PrimaryPool,
            connection_class=PrimaryConnection,
            **options,
            **parse_url(url.url),
        )
        return cls.wrap(client, owned=True, sentinel=sentinel)

    async def close(self) -> None:
        await self.client.aclose()
        if self.sentinel is not None:
            await self.sentinel.aclose()


class RedisStorage(Storage):
    """Rooms in Redis; see the module docstring for the key layout.

    Give either a ``client`` (left open by ``close``: the caller owns it) or a ``url``, whose client
    is created by ``open`` on the running event loop. A ``prefix`` option in the URL overrides
    ``key_prefix``. A ``redis+sentinel://`` URL finds the primary through Redis Sentinel and follows
    its failovers (``PrimaryPool``).
    """

    def __init__(
        self, client: redis.asyncio.Redis | None = None, *, url: str | None = None, key_prefix: str = "mm"
    ) -> None:
        super().__init__()
        if (client is None) == (url is None):
            raise TypeError("RedisStorage needs exactly one of client and url")
        self._url: RedisURL | None = None
        self._target = "redis client"
        if url is not None:
            self._target = mask_url(url)
            self._url = split_url(url)
            key_prefix = self._url.prefix if self._url.prefix is not None else key_prefix
        if not key_prefix or "{" in key_prefix or "}" in key_prefix:
            # Braces in the prefix would become the hash tag and put every room in one slot.
            raise StorageError("create_storage", self._target, f"bad key prefix {key_prefix!r} (non-empty, no braces)")
        self._prefix = key_prefix
        self._index_key = f"{key_prefix}:rooms"
        self._names_key = f"{key_prefix}:room-names"
        self._join_codes_key = f"{key_prefix}:join-codes"
        self._connection = None if client is None else _Connection.wrap(client, owned=False)
        self._replication = Replication()

    @classmethod
    def from_url(cls, url: str) -> RedisStorage:
        return cls(url=url)

    def require_replicas(self, count: int) -> None:
        """Make every write wait until ``count`` replicas confirm it (``WAIT``), so that a failover
        loses no write that was reported done; one they do not confirm in time is a ``StorageError``
        (though the primary keeps it, and a failover may or may not)."""
        self._replication = Replication(count)

    @property
    def replication(self) -> Replication:
        return self._replication

    def failover_status(self) -> dict[str, Any] | None:
        """With Sentinel: the service, the primary in use (None while none is known) and how many
        failovers this process followed; None without Sentinel."""
        connection = self._connection
        pool = None if connection is None else connection.client.connection_pool
        return pool.status() if isinstance(pool, PrimaryPool) else None

    async def open(self) -> None:
        if self._connection is None and self._url is not None:
            with storage_errors("open", self._target):
                self._connection = _Connection.connect(self._url)
        try:
            with storage_errors("open", self._target):
                await self._live("open").client.ping()
        except StorageError:
            await self.close()
            raise

    async def close(self) -> None:
        connection = self._connection
        if connection is None or not connection.owned:
            return
        self._connection = None
        with storage_errors("close", self._target):
            await connection.close()

    @property
    def client(self) -> redis.asyncio.Redis:
        """The open client (for ``server.rooms.shared``, which shares this storage's connections)."""
        return self._live("client").client

    @property
    def prefix(self) -> str:
        return self._prefix

    @property
    def index_key(self) -> str:
        return self._index_key

    @property
    def names_key(self) -> str:
        return self._names_key

    @property
    def join_codes_key(self) -> str:
        return self._join_codes_key

    def room_keys(self, room_name: str) -> RoomKeys:
        return RoomKeys.for_room(self._prefix, room_name)

    def _live(self, operation: str) -> _Connection:
        if self._connection is None:
            raise StorageError(operation, self._target, "storage is not open")
        return self._connection

    async def save_room(self, room: SerializedRoom) -> None:
        with storage_errors("save_room", repr(room.room_name)):
            await self._write_room("save_room", room, replace=True)

    async def create_room(self, room: SerializedRoom) -> bool:
        with storage_errors("create_room", repr(room.room_name)):
            return await self._write_room("create_room", room, replace=False)

    async def _write_room(self, operation: str, room: SerializedRoom, *, replace: bool) -> bool:
        """Write the whole room (``replace``: over a stored one); False when one was stored and kept."""
        keys = self.room_keys(room.room_name)
        args: list[EncodableT] = ["1" if replace else "0", encode_meta(room), keys.digest, _created_ms(room)]
        pick = room.pick.model_dump_json(by_alias=True) if room.pick is not None else ""
        args += [room.room_name, room.owner, encode_opened(room), pick, room.join_code or ""]
        hashes = _hashes(keys, room)
        for mapping in hashes.values():
            args.append(len(mapping))
            for name, value in mapping.items():
                args += [name, value]
        deck = room.media_ids or []
        args += [len(deck), *deck]
        live = self._live(operation)
        settings = [keys.meta, self._index_key, self._names_key, keys.owner, keys.deck, keys.opened, keys.pick]
        written = await self._replication.call(
            live.client, live.write_room, [*settings, *hashes, self._join_codes_key], args
        )
        if written == -1:
            raise JoinCodeTaken(operation, repr(room.room_name), room.join_code or "")
        self._readable(_location(keys))
        return bool(written)

    async def get_room(self, room_name: str) -> SerializedRoom | None:
        keys = self.room_keys(room_name)
        with storage_errors("get_room", repr(room_name)):
            [stored] = await self._read("get_room", [keys])
        return self.decode_room(room_name, keys, stored)

    def decode_room(self, room_name: str, keys: RoomKeys, stored: tuple[Any, ...]) -> SerializedRoom | None:
        """``decode`` of ``queue_snapshot``'s replies; a room that does not decode is recorded as
        unreadable (``/health`` says so) and raised as ``UnreadableRoom``."""
        try:
            return decode(*stored)
        except (ValueError, TypeError) as exc:
            reason = problems(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}"
            raise self._unreadable_room(
                "get_room", repr(room_name), reason, location=_location(keys), room_name=room_name
            ) from exc

    async def delete_room(self, room_name: str) -> None:
        keys = self.room_keys(room_name)
        with storage_errors("delete_room", repr(room_name)):
            live = self._live("delete_room")
            room_keys = [*keys.stored(), self._index_key, self._names_key, self._join_codes_key]
            await self._replication.call(live.client, live.delete_room, room_keys, [keys.digest])
        self._readable(_location(keys))

    async def room_of_join_code(self, code: str) -> str | None:
        with storage_errors("room_of_join_code", self._target):
            client = self._live("room_of_join_code").client
            digest = await client.hget(self._join_codes_key, code)
            name = None if digest is None else await client.hget(self._names_key, digest)
            return None if name is None else str(name)

    async def give_join_code(self, room_name: str, code: str) -> str | None:
        keys = self.room_keys(room_name)
        with storage_errors("give_join_code", repr(room_name)):
            live = self._live("give_join_code")
            given = await self._replication.call(
                live.client, live.give_join_code, [keys.meta, self._join_codes_key], [code, keys.digest]
            )
        if given == "":
            raise JoinCodeTaken("give_join_code", repr(room_name), code)
        return None if given is None else str(given)

    async def has_room(self, room_name: str) -> bool:
        with storage_errors("has_room", repr(room_name)):
            found: bool = await self._live("has_room").client.hexists(self._names_key, self.room_keys(room_name).digest)
            return found

    async def list_room_names(self) -> list[str]:
        return [name for _, name in await self._index("list_room_names")]

    async def list_rooms(self) -> list[SerializedRoom]:
        index = await self._index("list_rooms")
        rooms: list[SerializedRoom] = []
        skipped: list[StorageError] = []
        for start in range(0, len(index), LIST_BATCH):
            batch = [
                (RoomKeys.for_digest(self._prefix, digest), name) for digest, name in index[start : start + LIST_BATCH]
            ]
            with storage_errors("list_rooms", self._target):
                stored = await self._read("list_rooms", [keys for keys, _ in batch])
            for (keys, name), one in zip(batch, stored, strict=True):
                try:
                    room = self.decode_room(name, keys, one)
                except StorageError as error:
                    skipped.append(error)
                    continue
                # None: deleted since the index was read.
                if room is not None:
                    rooms.append(room)
        _log_skipped("list_rooms", skipped)
        return rooms

    async def list_summaries(self) -> list[RoomSummary]:
        """One script call per room, counting in Redis; nothing of a room's ratings or deck moves.
        A room of an earlier layout is read whole instead (its summary is then exactly get_room's)."""
        index = await self._index("list_summaries")
        summaries: list[RoomSummary] = []
        skipped: list[StorageError] = []
        connection = self._live("list_summaries")
        for start in range(0, len(index), LIST_BATCH):
            batch = [
                (RoomKeys.for_digest(self._prefix, digest), name) for digest, name in index[start : start + LIST_BATCH]
            ]
            with storage_errors("list_summaries", self._target):
                async with connection.client.pipeline(transaction=False) as pipe:
                    for keys, _ in batch:
                        await connection.summary(keys=_summary_keys(keys), client=pipe)
                    replies = await pipe.execute()
            for (keys, name), reply in zip(batch, replies, strict=True):
                if not reply:
                    continue  # deleted since the index was read
                summary = _summary(name, reply)
                if summary is None:
                    try:
                        summary = await self._summary_of_whole_room(name, keys)
                    except StorageError as error:
                        skipped.append(error)
                        continue
                if summary is not None:
                    summaries.append(summary)
        _log_skipped("list_summaries", skipped)
        return summaries

    async def _summary_of_whole_room(self, name: str, keys: RoomKeys) -> RoomSummary | None:
        with storage_errors("list_summaries", self._target):
            [stored] = await self._read("list_summaries", [keys])
        room = self.decode_room(name, keys, stored)
        if room is None:
            return None
        with storage_errors("list_summaries", self._target):
            sizes = [await self._live("list_summaries").client.memory_usage(key) for key in _summary_keys(keys)]
        return summarise(room, sum(size or 0 for size in sizes))

    def _batches(self, index: list[tuple[str, str]]) -> Iterator[list[tuple[RoomKeys, str]]]:
        """The rooms of the index, ``LIST_BATCH`` at a time: (keys, display name)."""
        for start in range(0, len(index), LIST_BATCH):
            yield [
                (RoomKeys.for_digest(self._prefix, digest), name) for digest, name in index[start : start + LIST_BATCH]
            ]

    def _list_key(self, identity: str, name: str) -> str:
        return f"{self._prefix}:list:{{{key_digest(identity)}}}:{list_name(name)}"

    async def read_list(self, identity: str, name: str) -> dict[str, str]:
        key = self._list_key(identity, name)
        with storage_errors("read_list", key):
            # The client decodes replies (decode_responses): keys and values are text.
            entries = await self._live("read_list").client.hgetall(key)
            return {str(field_name): str(value) for field_name, value in entries.items()}

    async def change_list(
        self, identity: str, name: str, *, put: Mapping[str, str] | None = None, drop: Collection[str] = ()
    ) -> None:
        key = self._list_key(identity, name)
        entries = dict(put or {})
        args: list[EncodableT] = [len(entries)]
        for field_name, value in entries.items():
            args += [field_name, value]
        args += list(drop)
        with storage_errors("change_list", key):
            live = self._live("change_list")
            await self._replication.call(live.client, live.change_list, [key], args)

    async def _index(self, operation: str) -> list[tuple[str, str]]:
        """(digest, display name) of every room, oldest first, read in one transaction."""
        with storage_errors(operation, self._target):
            async with self._live(operation).client.pipeline(transaction=True) as pipe:
                pipe.zrange(self._index_key, 0, -1)
                pipe.hgetall(self._names_key)
                digests, names = await pipe.execute()
        return [(digest, names[digest]) for digest in digests if digest in names]

    async def _read(self, operation: str, rooms: list[RoomKeys]) -> list[tuple[Any, ...]]:
        """Each room's keys, all read in one transaction so no room is seen half-written."""
        async with self._live(operation).client.pipeline(transaction=True) as pipe:
            for keys in rooms:
                queue_snapshot(pipe, keys)
            replies: list[Any] = await pipe.execute()
        return [tuple(replies[start : start + SNAPSHOT_WIDTH]) for start in range(0, len(replies), SNAPSHOT_WIDTH)]
