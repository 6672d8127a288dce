"""Redis backend: one room in a few fine-grained keys, so several server processes can share rooms.

Key layout (``mm`` is the key prefix, ``<d>`` the room key's ``storage.keys.key_digest``)::

    mm:room:{<d>}:meta      STRING  the room's settings as JSON (no ratings, progress, members,
                                    matches, deck or openedAt; ``"deck": {"size"}`` when it has one)
    mm:room:{<d>}:ratings   HASH    userName -> that user's ratings, a JSON array of
                                    [mediaId, "like" | "dislike", "<ms>"] in the order given
    mm:room:{<d>}:progress  HASH    userName -> number of items rated
    mm:room:{<d>}:members   HASH    userName -> the member as JSON
    mm:room:{<d>}:matches   HASH    mediaId -> epoch ms it became a match
    mm:room:{<d>}:deck      LIST    the room's media ids in order (``mediaIds``), written at creation
    mm:room:{<d>}:opened    STRING  when the room was last opened (``openedAt``, as in the JSON form)
    mm:room:{<d>}:online    HASH    userName -> where that member is connected (see ``server.rooms.shared``)
    mm:room:{<d>}:seq       STRING  the number of the room's last event (kept when the room is deleted,
                                    so a process that missed the deletion never takes a new room's
                                    events for old ones)
    mm:rooms                ZSET    <d> -> createdAt (epoch ms): the room index, in creation order
    mm:room-names           HASH    <d> -> display name

A room's keys share the hash tag ``{<d>}``, so the rating scripts touch a single Cluster slot.
Ratings are recorded by scripts that append to (or cut from) one user's array atomically: two
processes rating one room never overwrite each other, and the script's look-up of the item keeps one
rating per user and item. One field per user, not per rating, keeps a snapshot of a room with
hundreds of ratings to a handful of fields: that is what makes ``save_room`` and ``get_room`` cheap.
The deck has a key of its own, so the keys that change never carry it, and a listing reads its
length alone. ``save_room`` is a snapshot write (it replaces ratings, members and matches too); servers sharing
rooms never call it after creating a room, they change rooms through ``server.rooms.shared``. The
index makes listing need no ``KEYS``/``SCAN``.

Rooms stored by earlier versions load as they are: members and matches inside ``meta`` (before
they had keys of their own), the deck inside ``meta`` (``mediaIds``), and ratings as one field per
(item, user) (``["<mediaId>","<userName>"]`` -> ``"like:<ms>"``).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis.asyncio
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.typing import EncodableT, FieldT

from .base import Storage, storage_errors
from .errors import StorageError
from .keys import key_digest, room_key
from .room import Member, SerializedRoom, problems
from .schema import SCHEMA_VERSION
from .summary import RoomSummary, summarise

logger = logging.getLogger("storage.redis")

SCHEMES = ("redis", "rediss", "unix")
PREFIX_OPTION = "prefix"
# Query options redis-py parses itself; any other name would reach its connection class as a stray
# keyword argument and fail only at the first command.
REDIS_OPTIONS = frozenset({"db", "socket_timeout", "socket_connect_timeout", "ssl_cert_reqs", "ssl_ca_certs"})
# Redis answers in well under a millisecond: a stall of seconds means it is gone, and the caller
# (a request or a WebSocket message) must get an error rather than wait.
SOCKET_TIMEOUT = 3.0
CONNECT_TIMEOUT = 2.0
MAX_CONNECTIONS = 50
# Only connection errors are retried (a dropped pooled connection, a restart): a timed-out command
# may have run, and running a rating again would report a recorded rating as a duplicate.
RETRIES = 2
LIST_BATCH = 100
# Ids per RPUSH: Lua's unpack, and a command's arguments, stay bounded at any deck size.
DECK_CHUNK = 1000

# KEYS: meta, index, names, then ratings, progress, members, matches, then deck, opened. ARGV: meta,
# digest, createdAt, name, then for each of the four hashes its field count and its fields and
# values, then the deck's length and ids, then openedAt.
CREATE_ROOM_SCRIPT = f"""
if not redis.call("SET", KEYS[1], ARGV[1], "NX") then return 0 end
redis.call("ZADD", KEYS[2], ARGV[3], ARGV[2])
redis.call("HSET", KEYS[3], ARGV[2], ARGV[4])
local at = 5
for key = 4, 7 do
  redis.call("DEL", KEYS[key])
  local count = tonumber(ARGV[at])
  for i = 1, count do
    redis.call("HSET", KEYS[key], ARGV[at + 2 * i - 1], ARGV[at + 2 * i])
  end
  at = at + 1 + 2 * count
end
redis.call("DEL", KEYS[8])
local last = at + tonumber(ARGV[at])
for first = at + 1, last, {DECK_CHUNK} do
  redis.call("RPUSH", KEYS[8], unpack(ARGV, first, math.min(first + {DECK_CHUNK - 1}, last)))
end
redis.call("SET", KEYS[9], ARGV[last + 1])
return 1
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


def split_url(url: str) -> tuple[str, str | None]:
    """The URL for redis-py (our own options removed) and the ``prefix`` option, if given."""
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES:
        raise StorageError("create_storage", mask_url(url), f"not a Redis URL (schemes: {', '.join(SCHEMES)})")
    options = parse_qsl(parts.query, keep_blank_values=True)
    unknown = sorted({name for name, _ in options} - REDIS_OPTIONS - {PREFIX_OPTION})
    if unknown:
        known = ", ".join(sorted(REDIS_OPTIONS | {PREFIX_OPTION}))
        raise StorageError("create_storage", mask_url(url), f"unknown option(s) {', '.join(unknown)} (known: {known})")
    prefixes = [value for name, value in options if name == PREFIX_OPTION]
    passed_on = urlencode([(name, value) for name, value in options if name != PREFIX_OPTION])
    return urlunsplit(parts._replace(query=passed_on)), prefixes[-1] if prefixes else None


def _json(value: object) -> str:
    # One spelling everywhere: the scripts find items by the exact text Python wrote.
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def lookup_key(media_id: str) -> str:
    """The text that starts the element of ``media_id`` in a user's ratings array."""
    return f"[{_json(media_id)},"


def rating_element(media_id: str, rating: str, at_ms: int) -> str:
    # The time as text: Lua (and JSON) numbers would round epoch milliseconds past 2**53.
    return _json([media_id, rating, str(at_ms)])


@dataclass(frozen=True)
class RoomKeys:
    """The Redis keys of one room, and the channel its events are published on."""

    digest: str
    meta: str
    ratings: str
    progress: str
    members: str
    matches: str
    online: str
    seq: str
    events: str
    deck: str
    opened: str

    @classmethod
    def for_digest(cls, prefix: str, digest: str) -> RoomKeys:
        tagged = f"{prefix}:room:{{{digest}}}"
        names = ("meta", "ratings", "progress", "members", "matches", "online", "seq", "events", "deck", "opened")
        return cls(digest, *(f"{tagged}:{name}" for name in names))

    @classmethod
    def for_room(cls, prefix: str, room_name: str) -> RoomKeys:
        return cls.for_digest(prefix, key_digest(room_key(room_name)))

    def stored(self) -> tuple[str, ...]:
        """The keys a room's deletion removes (all but ``seq``)."""
        return self.meta, self.ratings, self.progress, self.members, self.matches, self.online, self.deck, self.opened


# Fields of SerializedRoom kept in keys of their own, not in ``meta``.
SPLIT_FIELDS = frozenset({"ratings", "user_progress", "members", "matches", "media_ids", "opened_at"})


def decode(
    meta: str | None,
    ratings: dict[str, str],
    progress: dict[str, str],
    members: dict[str, str],
    matches: dict[str, str],
    deck: list[str],
    opened: str | None,
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
    for field, value in ratings.items():
        for media_id, user_name, rating, at_ms in _ratings_of(field, value):
            by_item.setdefault(media_id, []).append((user_name, rating, at_ms))
    data["ratings"] = by_item
    data["userProgress"] = progress
    # Rooms stored before members and matches had keys of their own carry them in meta.
    data["members"] = data.get("members", {}) | {name: json.loads(member) for name, member in members.items()}
    data["matches"] = data.get("matches", {}) | matches
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
    text = room.model_dump_json(by_alias=True, exclude=set(SPLIT_FIELDS))
    if room.media_ids is None:
        return text
    return f'{text[:-1]},"deck":{{"size":{len(room.media_ids)}}}}}'


def encode_opened(room: SerializedRoom) -> str:
    """``openedAt`` as the JSON form spells it (exact to the microsecond, unlike epoch ms)."""
    spelled: str = room.model_dump(mode="json", include={"opened_at"})["opened_at"]
    return spelled


def encode_member(member: Member) -> str:
    return member.model_dump_json(by_alias=True, exclude_none=True)


def _ratings_by_user(room: SerializedRoom) -> dict[str, str]:
    """Each user's ratings array; a snapshot holding a user's rating of an item twice keeps the
    first (ratings are in time order), as add_rating would have."""
    elements: dict[str, dict[str, list[str]]] = {}
    for media_id, triples in room.ratings.items():
        for user_name, rating, at_ms in triples:
            elements.setdefault(user_name, {}).setdefault(media_id, [media_id, rating, str(at_ms)])
    # One dumps per user, spelled exactly as rating_element spells each element.
    return {user: _json(list(items.values())) for user, items in elements.items()}


SNAPSHOT_WIDTH = 7


def queue_snapshot(pipe: redis.asyncio.client.Pipeline, keys: RoomKeys) -> None:
    """Queue the ``SNAPSHOT_WIDTH`` reads whose replies are ``decode``'s arguments."""
    pipe.get(keys.meta)
    for key in (keys.ratings, keys.progress, keys.members, keys.matches):
        pipe.hgetall(key)
    pipe.lrange(keys.deck, 0, -1)
    pipe.get(keys.opened)


def _hashes(keys: RoomKeys, room: SerializedRoom) -> dict[str, dict[FieldT, EncodableT]]:
    """The room's hash keys and their fields: ratings, progress, members, matches, in that order."""
    return {
        keys.ratings: {user: array for user, array in _ratings_by_user(room).items()},
        keys.progress: {user: count for user, count in room.user_progress.items()},
        keys.members: {name: encode_member(member) for name, member in room.members.items()},
        keys.matches: {media_id: at for media_id, at in room.matches.items()},
    }


def _location(keys: RoomKeys) -> str:
    return keys.meta.removesuffix(":meta") + ":*"


def _summary_keys(keys: RoomKeys) -> list[str]:
    """SUMMARY_SCRIPT's keys: those it reads, then the rest of the room's."""
    return [keys.meta, keys.progress, keys.members, keys.matches, keys.deck, keys.opened, keys.ratings, keys.online]


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


@dataclass(frozen=True)
class _Connection:
    client: redis.asyncio.Redis
    owned: bool
    create_room: AsyncScript
    summary: AsyncScript

    @classmethod
    def wrap(cls, client: redis.asyncio.Redis, *, owned: bool) -> _Connection:
        return cls(client, owned, client.register_script(CREATE_ROOM_SCRIPT), client.register_script(SUMMARY_SCRIPT))

    @classmethod
    def connect(cls, url: str) -> _Connection:
        retry = Retry(ExponentialBackoff(cap=0.25, base=0.05), RETRIES, supported_errors=(RedisConnectionError,))
        # Blocking: a burst of commands beyond the pool's connections waits for a free one (a plain
        # pool refuses it with "Too many connections"); a wait of seconds means Redis is gone.
        pool = redis.asyncio.BlockingConnectionPool.from_url(
            url,
            decode_responses=True,
            socket_timeout=SOCKET_TIMEOUT,
            socket_connect_timeout=CONNECT_TIMEOUT,
            retry=retry,
            max_connections=MAX_CONNECTIONS,
            timeout=SOCKET_TIMEOUT,
        )
        return cls.wrap(redis.asyncio.Redis.from_pool(pool), owned=True)


class RedisStorage(Storage):
    """Rooms in Redis; see the module docstring for the key layout.

    Give either a ``client`` (left open by ``close``: the caller owns it) or a ``url``, whose client
    is created by ``open`` on the running event loop. A ``prefix`` option in the URL overrides
    ``key_prefix``.
    """

    def __init__(
        self, client: redis.asyncio.Redis | None = None, *, url: str | None = None, key_prefix: str = "mm"
    ) -> None:
        super().__init__()
        if (client is None) == (url is None):
            raise TypeError("RedisStorage needs exactly one of client and url")
        self._url: str | None = None
        self._target = "redis client"
        if url is not None:
            self._target = mask_url(url)
            self._url, url_prefix = split_url(url)
            key_prefix = url_prefix if url_prefix is not None else key_prefix
        if not key_prefix or "{" in key_prefix or "}" in key_prefix:
            # Braces in the prefix would become the hash tag and put every room in one slot.
            raise StorageError("create_storage", self._target, f"bad key prefix {key_prefix!r} (non-empty, no braces)")
        self._prefix = key_prefix
        self._index_key = f"{key_prefix}:rooms"
        self._names_key = f"{key_prefix}:room-names"
        self._connection = None if client is None else _Connection.wrap(client, owned=False)

    @classmethod
    def from_url(cls, url: str) -> RedisStorage:
        return cls(url=url)

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
            await connection.client.aclose()

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

    def room_keys(self, room_name: str) -> RoomKeys:
        return RoomKeys.for_room(self._prefix, room_name)

    def _live(self, operation: str) -> _Connection:
        if self._connection is None:
            raise StorageError(operation, self._target, "storage is not open")
        return self._connection

    async def save_room(self, room: SerializedRoom) -> None:
        keys = self.room_keys(room.room_name)
        with storage_errors("save_room", repr(room.room_name)):
            hashes = _hashes(keys, room)
            async with self._live("save_room").client.pipeline(transaction=True) as pipe:
                pipe.delete(*hashes, keys.deck)
                pipe.set(keys.meta, encode_meta(room))
                for key, mapping in hashes.items():
                    if mapping:
                        pipe.hset(key, mapping=mapping)
                for chunk in _chunks(room.media_ids or []):
                    pipe.rpush(keys.deck, *chunk)
                pipe.set(keys.opened, encode_opened(room))
                pipe.zadd(self._index_key, {keys.digest: _created_ms(room)})
                pipe.hset(self._names_key, keys.digest, room.room_name)
                await pipe.execute()
        self._readable(_location(keys))

    async def create_room(self, room: SerializedRoom) -> bool:
        keys = self.room_keys(room.room_name)
        with storage_errors("create_room", repr(room.room_name)):
            args: list[EncodableT] = [encode_meta(room), keys.digest, _created_ms(room), room.room_name]
            hashes = _hashes(keys, room)
            for mapping in hashes.values():
                args.append(len(mapping))
                for field, value in mapping.items():
                    args += [field, value]
            deck = room.media_ids or []
            args += [len(deck), *deck, encode_opened(room)]
            created = await self._live("create_room").create_room(
                keys=[keys.meta, self._index_key, self._names_key, *hashes, keys.deck, keys.opened], args=args
            )
            return bool(created)

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
            async with self._live("delete_room").client.pipeline(transaction=True) as pipe:
                pipe.delete(*keys.stored())
                pipe.zrem(self._index_key, keys.digest)
                pipe.hdel(self._names_key, keys.digest)
                await pipe.execute()
        self._readable(_location(keys))

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
