"""Standing rooms: the rooms the host defines in config.yaml (``rooms``).

Each is created at startup when it is absent, owned by the host (``server.identity.HOST``: no
member deletes it), never expires, and is listed to everyone (``listRooms``). When its definition
changes the room follows it: other filters, libraries or order give it a new deck; ratings are kept,
and with them progress, members and the matches that still hold under its rules. Its deck follows
its library: when the room is opened, and every ``standing_room_refresh`` seconds while it is open,
films new to the library are appended (in the room's order, from its seed: every process makes the
same deck) and films gone from it leave. A room taken out of the file stays, an ordinary room of
the host's that expires like any other.

Every change of a deck goes through ``RoomChanges.reshape``: in the room's process, or through
Redis to every process that serves it.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

import anyio

from server.config import ConfigError, StandingRoom
from server.identity import HOST
from server.offload import Busy
from server.protocol import CreateRoomRequest
from server.providers import InvalidFilter, Media, MediaQuery, ProviderError
from storage import SerializedRoom, StorageError, hash_password, room_key, verify_password

from .changes import Change, Reshape
from .deck import extended, order_media, stable_seed
from .redeal import redealt
from .registry import RoomRegistry, end_conditions
from .room import Room

log = logging.getLogger("server.rooms.standing")

# A definition not applied yet (its library did not answer) is tried again this often (seconds).
RETRY = 60.0
# Who the CPU pool counts the host's password hashing against.
HOST_CLIENT = "host"


class NoFilms(Exception):
    """The library has no film for the room now: nothing to make a deck of (tried again later)."""


class Refused(Exception):
    """A definition the library refuses (a library it does not have): the host must change it."""


def settings_of(request: CreateRoomRequest, password_hash: str | None, created_at: datetime) -> dict[str, Any]:
    """The stored settings of a standing room defined as ``request``; the host owns it."""
    created_ms = int(created_at.timestamp() * 1000)
    return {
        "password_hash": password_hash,
        "sort": "random",
        "sort_order": request.sortOrder,
        "room_type": request.roomType,
        "match_threshold": request.matchThreshold,
        "options": [],
        "filters": list(request.filters),
        "libraries": list(request.libraries),
        "owner": HOST,
        "match_limit": None,
        "ends_at": None,
        "like_cap": None,
        **end_conditions(request, created_ms),
    }


def reshaped(
    state: SerializedRoom, items: list[Media], now_ms: int, settings: dict[str, Any] | None = None
) -> SerializedRoom | None:
    """The room with ``settings`` (none: as it is) and its deck made from its library ``items``; None
    when nothing changes. Other filters, libraries or order make a new deck; the same ones extend it
    (``deck.extended``); progress and matches follow (``redeal.redealt``)."""
    made = state.copy_deep()
    if settings is not None:
        made = made.model_copy(update=settings)
    order = made.sort_order or made.sort
    made.media_seed = seed = made.media_seed if made.media_seed is not None else stable_seed(made.room_key)
    if state.media_ids is None or _query(made) != _query(state):
        ids = [item.id for item in order_media(items, order, seed)]
    else:
        ids = extended(state.media_ids, items, order, seed)
    return redealt(state, made, ids, now_ms)


def _query(room: SerializedRoom) -> tuple[object, ...]:
    return room.filters, room.libraries, room.sort_order or room.sort


class StandingRooms:
    """The standing rooms of this process's configuration, and their upkeep (``start``, ``run``)."""

    def __init__(
        self,
        registry: RoomRegistry,
        definitions: Sequence[StandingRoom],
        *,
        refresh: float,
        rng: random.Random | None = None,
    ) -> None:
        self.registry = registry
        self.refresh = refresh
        self._rng = rng or random.Random()
        # By room key: how problems name the entry, and the definition.
        self._rooms = {
            room_key(definition.name): (f"rooms[{index}] ({definition.name})", definition)
            for index, definition in enumerate(definitions)
        }
        # Definitions not applied yet (every one at first): tried again every RETRY seconds.
        self._pending = set(self._rooms)
        # Rooms known to be stored: the ones listed.
        self._stored: set[str] = set()
        # Why each room is not up to date, as last logged (a lasting failure is logged once).
        self._failing: dict[str, str] = {}
        registry.standing.update(self._rooms)
        registry.refresh_deck = self._opened

    def listing(self) -> list[dict[str, Any]]:
        """The standing rooms for the lobby (``listRooms``), as the file lists them."""
        return [
            {
                "roomName": definition.name,
                "standing": True,
                "roomType": definition.room_type,
                "hasPassword": definition.password is not None,
            }
            for key, (_, definition) in self._rooms.items()
            if key in self._stored
        ]

    async def start(self) -> None:
        """Create each room or bring it to its definition. A room whose library does not answer is
        tried again later; definitions the library refuses raise ``ConfigError``, naming each."""
        problems = [problem for key in self._rooms if (problem := await self._bring(key, self.registry.reshape))]
        if problems:
            raise ConfigError(problems)

    async def run(self) -> None:
        """``upkeep`` until cancelled: every RETRY seconds, and with the decks every ``refresh``."""
        tick = min(RETRY, self.refresh)
        waited = 0.0
        while True:
            await anyio.sleep(tick)
            waited += tick
            due = waited >= self.refresh
            if due:
                waited = 0.0
            await self.upkeep(decks=due)

    async def upkeep(self, *, decks: bool) -> None:
        """Definitions not applied yet are tried again; with ``decks``, the decks of the rooms open
        here follow their library, and rooms deleted meanwhile (the host's command) come back."""
        for key in list(self._rooms):
            try:
                if key in self._pending or (decks and await self._due(key)):
                    problem = await self._bring(key, self.registry.reshape)
                    if problem:
                        log.error("%s; change it in the configuration", problem)
            except StorageError as exc:  # is it stored? Asked again at the next round
                log.warning(
                    "standing room %s: the storage cannot say whether it is stored: %s", self._rooms[key][0], exc
                )
            except Exception:  # one room's trouble must not end the others' upkeep
                log.exception("standing room %s: its upkeep failed", self._rooms[key][0])

    async def _due(self, key: str) -> bool:
        if key in self.registry.rooms:
            return True
        if not await self.registry.storage.has_room(self._rooms[key][1].name):
            self._pending.add(key)
            return True
        return False

    async def _opened(self, room: Room) -> None:
        """The room was just opened (the registry's lock held): its deck follows its library first."""
        problem = await self._bring(room.key, self.registry.changes.reshape)
        if problem:
            log.error("%s; change it in the configuration", problem)

    async def _bring(self, key: str, reshape: Callable[[str, Reshape], Awaitable[bool]]) -> str | None:
        """Bring one room up to date: created, or following its definition (until applied once) or
        else its library. Returns the problem of a definition the library refuses; any other
        failure is logged, and the room tried again later."""
        label, definition = self._rooms[key]
        request = definition.request()
        try:
            if key not in self._pending:
                await reshape(request.roomName, self._following(None))
            else:
                await self._check_libraries(label, request.libraries)
                if not await self._create(request):
                    self._stored.add(key)
                    if await reshape(request.roomName, self._following(request)):
                        log.info("standing room %r follows its definition", request.roomName)
                self._pending.discard(key)
        except Refused as exc:
            self._pending.discard(key)
            return str(exc)
        except InvalidFilter as exc:
            self._pending.discard(key)
            return f"{label}.filters: {exc}"
        except (ProviderError, StorageError, Busy, NoFilms) as exc:
            if self._failing.get(key) != str(exc):
                log.warning("standing room %s is not up to date (tried again later): %s", label, exc)
            self._failing[key] = str(exc)
            return None
        if self._failing.pop(key, None) is not None:
            log.info("standing room %s is up to date again", label)
        return None

    async def _check_libraries(self, label: str, libraries: list[str]) -> None:
        if not libraries:
            return
        try:
            known = {library.key: library.title for library in await self.registry.provider.libraries()}
        except ProviderError:
            return  # told apart from an outage once the library answers
        unknown = [key for key in libraries if key not in known]
        if unknown:
            listed = ", ".join(f"{key} ({title})" for key, title in sorted(known.items())) or "none"
            raise Refused(f"{label}.libraries: no library {unknown[0]!r} (the media servers have {listed})")

    async def _create(self, request: CreateRoomRequest) -> bool:
        """Store the room unless it is stored; False when it is (perhaps created meanwhile, by
        another process)."""
        name = request.roomName
        if await self.registry.storage.has_room(name):
            return False
        items = await self._items(MediaQuery(request.filters, request.libraries))
        blank = SerializedRoom(room_name=name, media_ids=[], media_seed=self._rng.getrandbits(63))
        settings = settings_of(request, await self._password_hash(request.password, None), blank.created_at)
        state = reshaped(blank, items, self.registry.changes.now_ms(), settings) or blank
        if not await self.registry.store_new(state):
            return False
        self._stored.add(room_key(name))
        log.info("standing room %r created with %d films", name, len(state.media_ids or []))
        return True

    def _following(self, request: CreateRoomRequest | None) -> Reshape:
        """The room made to follow ``request`` (its definition), or else its own stored query, and
        the library now."""

        async def reshape(stored: SerializedRoom) -> Change:
            source = stored if request is None else request
            query = MediaQuery(list(source.filters), list(source.libraries))
            items = await self._items(query)
            settings = None
            if request is not None:
                password_hash = await self._password_hash(request.password, stored.password_hash)
                settings = settings_of(request, password_hash, stored.created_at)
            now = self.registry.changes.now_ms()

            def change(current: SerializedRoom) -> tuple[SerializedRoom, list[Media]] | None:
                made = reshaped(current, items, now, settings)
                return None if made is None else (made, items)

            return change

        return reshape

    async def _items(self, query: MediaQuery) -> list[Media]:
        items = await self.registry.provider.media(query)
        if not items:
            raise NoFilms("no film of its libraries passes its filters")
        return items

    async def _password_hash(self, password: str | None, stored: str | None) -> str | None:
        """The hash of the room's password: the stored one while the password is the same."""
        if password is None:
            return None
        run = self.registry.offload.run_in_thread
        if stored is not None and await run(HOST_CLIENT, verify_password, password, stored):
            return stored
        return await run(HOST_CLIENT, hash_password, password)
