"""One WebSocket session: connected -> logged in -> in a room -> closed.

Parses frames, dispatches them to the rooms, and sends replies. A receiver reads frames in order;
a sender drains a bounded queue, so a slow reader never holds up a room's other members.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from starlette.websockets import WebSocket, WebSocketDisconnect

from server.client_config import client_config
from server.context import AppContext
from server.i18n import translations
from server.limits import Verdict
from server.protocol import (
    CreateRoomRequest,
    DeleteRoomRequest,
    FilterValuesRequest,
    JoinRoomRequest,
    LoginRequest,
    Payload,
    ProtocolError,
    RateRequest,
    SetLocaleRequest,
    UndoRateRequest,
    clean_name,
    encode,
    exceeds,
    parse_message,
)
from server.providers import ProviderError
from server.rooms.room import Room
from server.user import User

log = logging.getLogger("server.connection")

SEND_QUEUE_SIZE = 512
# Sent when this client fell too far behind; it may reconnect and resume with its memberToken.
CLOSE_TOO_SLOW = 1013
CLOSE_GOING_AWAY = 1001
# Sent when a client kept flooding after it was told RateLimited.
CLOSE_POLICY = 1008
# A close frame waits for the socket to drain; a peer that never reads must not hold the handler.
CLOSE_TIMEOUT = 5.0


class Connection:
    def __init__(self, websocket: WebSocket, context: AppContext) -> None:
        self.websocket = websocket
        self.context = context
        self.user: User | None = None
        self.room: Room | None = None
        self._queue: asyncio.Queue[str] = asyncio.Queue(SEND_QUEUE_SIZE)
        self._scope: anyio.CancelScope | None = None
        self._close_code: int | None = None
        self._going_away = anyio.Event()
        self._bucket = context.guards.message_bucket()
        self.seat_id = secrets.token_hex(12)
        # The client's own address (uvicorn puts a trusted proxy's X-Forwarded-For here), as the
        # per-address limits count it (an IPv6 address by its /64).
        self.address = context.guards.client(websocket.client.host) if websocket.client else "unknown"
        self._handlers: dict[str, Callable[[Any], Awaitable[None]]] = {
            "login": self.login,
            "logout": self.logout,
            "createRoom": self.create_room,
            "joinRoom": self.join_room,
            "leaveRoom": self.leave_room,
            "rate": self.rate,
            "undoRate": self.undo_rate,
            "deleteRoom": self.delete_room,
            "setLocale": self.set_locale,
            "requestFilters": self.request_filters,
            "requestFilterValues": self.request_filter_values,
            "getLibraries": self.get_libraries,
            "setup": self.setup,
        }

    # -- transport --------------------------------------------------------------------------

    async def serve(self) -> None:
        await self.websocket.accept()
        self.send(encode("config", client_config(self.context)))
        self.context.connected(self)
        self.context.metrics.connections_total += 1
        try:
            async with anyio.create_task_group() as tasks:
                self._scope = tasks.cancel_scope
                tasks.start_soon(self._send_loop)
                await self._receive_loop()
                tasks.cancel_scope.cancel()
        finally:
            self.context.disconnected(self)
            # Shielded and bounded: the member's presence must be removed even as the task ends.
            with anyio.CancelScope(shield=True), anyio.move_on_after(CLOSE_TIMEOUT):
                await self._leave_room(permanently=False)
        if self._close_code is not None:
            with anyio.move_on_after(CLOSE_TIMEOUT):
                await self._close(self._close_code)

    async def _receive_loop(self) -> None:
        while True:
            try:
                message = await self.websocket.receive()
            except WebSocketDisconnect:
                return
            if message["type"] == "websocket.disconnect":
                return
            verdict = self._bucket.take()  # binary frames too: ignoring one still costs a read
            if verdict is Verdict.ABUSIVE:
                log.warning(
                    "disconnecting %s: it kept flooding after RateLimited", self._who(), extra=self._log_extra()
                )
                self._close_code = CLOSE_POLICY
                return
            if verdict is Verdict.LIMITED:
                self._reply_error(ProtocolError("error", "RateLimited", "too many messages; slow down"))
                continue
            text = message.get("text")
            if text is not None:  # binary frames are ignored
                await self.handle(text)

    async def _send_loop(self) -> None:
        try:
            while not self._going_away.is_set():
                frame = await self._queue.get()
                if frame:
                    await self.websocket.send_text(frame)
        except WebSocketDisconnect:
            # The peer is gone (e.g. uvicorn closed it for an oversized frame) before the receive
            # loop heard of it: the session is over.
            if self._scope is not None:
                self._scope.cancel()
            return
        # Everything queued before the goodbye was sent; the close frame ends the receive loop too.
        await self._close(CLOSE_GOING_AWAY)

    def going_away(self) -> None:
        """The server is shutting down: close after what is already queued, with 1001 (going away)."""
        self._going_away.set()
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait("")  # wakes an idle sender; never sent

    async def _close(self, code: int) -> None:
        with contextlib.suppress(RuntimeError, OSError):  # already closed by the peer
            await self.websocket.close(code)

    def send(self, frame: str) -> None:
        try:
            self._queue.put_nowait(frame)
        except asyncio.QueueFull:
            if self._close_code is None:
                log.warning("disconnecting %s: it stopped reading", self._who(), extra=self._log_extra())
            self._close_code = CLOSE_TOO_SLOW
            if self._scope is not None:
                self._scope.cancel()

    def detach(self, room: Room) -> None:
        if self.room is room:
            self.room = None

    def _who(self) -> str:
        user = self.user.userName if self.user else "anonymous"
        return f"{user!r} in room {self.room.name!r}" if self.room else repr(user)

    def _log_extra(self) -> dict[str, str | None]:
        """Fields of this connection's log lines (JSON logs carry them as keys)."""
        return {
            "room": self.room.name if self.room else None,
            "user": self.user.userName if self.user else None,
            "client": self.address,
        }

    def _identity(self, user: User) -> str:
        """Who a per-user limit counts: the Plex account, else the client address (names are free)."""
        return f"plex:{user.plex_id}" if user.plex_id else f"address:{self.address}"

    # -- dispatch ---------------------------------------------------------------------------

    async def handle(self, text: str) -> None:
        try:
            limit = self.context.settings.max_message_bytes
            if exceeds(text, limit):
                raise ProtocolError("error", "MessageTooLarge", f"messages are limited to {limit} bytes")
            message_type, payload = parse_message(text)
            await self._handlers[message_type](payload)
        except ProtocolError as exc:
            self._reply_error(exc)
        except Exception:
            log.exception("unexpected error handling a message from %s", self._who(), extra=self._log_extra())
            self._reply_error(ProtocolError("error", "InternalError", "the server could not handle this message"))

    def _reply_error(self, error: ProtocolError) -> None:
        # The message text is not logged: it may quote what the client sent.
        log.debug("%s answered with %s %s", self._who(), error.reply_type, error.name, extra=self._log_extra())
        self.context.metrics.error(error.name)
        self.send(encode(error.reply_type, error.payload()))

    def _require_user(self, reply_type: str, name: str = "NotLoggedInError") -> User:
        if self.user is None:
            raise ProtocolError(reply_type, name, "you must log in first")
        return self.user

    async def _leave_room(self, *, permanently: bool) -> None:
        room, self.room = self.room, None
        if room is not None:
            await self.context.registry.leave(room, self, permanently=permanently)

    # -- handlers ---------------------------------------------------------------------------

    async def login(self, request: LoginRequest) -> None:
        if request.userName is not None:
            if self.context.settings.require_plex_login:
                raise ProtocolError("loginError", "PlexLoginRequired", "sign in with Plex to use this server")
            try:
                name = clean_name(request.userName, self.context.settings.max_name_length)
            except ValueError as exc:
                raise ProtocolError("loginError", "InvalidUserName", f"user name {exc}") from exc
            user = User(userName=name)
        elif request.plexToken is not None:
            sign_in = self.context.plex_sign_in
            if sign_in is None:
                raise ProtocolError("loginError", "PlexAuthInvalid", "Plex sign-in is not configured on this server")
            user = await sign_in(request.plexToken, request.plexClientId or "")
        else:
            raise ProtocolError("loginError", "MalformedMessage", "login needs a userName or a plexToken")
        if self.user is not None and self.user.userName != user.userName:
            await self._leave_room(permanently=False)
        self.user = user
        self.send(encode("loginSuccess", user.public()))

    async def logout(self, _: Payload) -> None:
        if self.user is None:
            raise ProtocolError("logoutError", "NotLoggedIn", "this connection has no logged in user")
        await self._leave_room(permanently=False)
        self.user = None
        self.send(encode("logoutSuccess"))

    async def create_room(self, request: CreateRoomRequest) -> None:
        user = self._require_user("createRoomError")
        creators = self.context.settings.room_creators
        if (creators == "plex" and user.plex_id is None) or (
            creators == "server-users" and "CanCreateRoom" not in user.permissions
        ):
            raise ProtocolError(
                "createRoomError", "PlexAuthRequiredError", "sign in with a Plex account of this server to create rooms"
            )
        try:
            clean_name(request.roomName, self.context.settings.max_name_length)
        except ValueError as exc:
            raise ProtocolError("createRoomError", "InvalidRoomName", f"room name {exc}") from exc
        creations, creator = self.context.guards.room_creations, self._identity(user)
        if await creations.exhausted(creator):
            raise ProtocolError(
                "createRoomError", "TooManyRooms", f"you may create {creations.limit} rooms a day; reuse one of yours"
            )
        room = await self.context.registry.create(request, user)
        await creations.record(creator)
        await self._leave_room(permanently=False)
        await self.context.registry.seat(room, self, user, None, "createRoomSuccess")
        self.room = room

    async def join_room(self, request: JoinRoomRequest) -> None:
        user = self._require_user("joinRoomError")
        try:
            name = clean_name(request.roomName, self.context.settings.max_name_length)
        except ValueError as exc:
            raise ProtocolError("joinRoomError", "RoomNotFoundError", f"room name {exc}") from exc
        failures = self.context.guards.password_failures
        guessing = request.password is not None
        if guessing and await failures.exhausted(self.address):
            raise ProtocolError("joinRoomError", "TooManyAttempts", "too many wrong passwords; try again in a minute")
        if self.room is not None and self.room.key != self.context.registry.key_of(name):
            await self._leave_room(permanently=False)
        try:
            room = await self.context.registry.join(name, self, user, request.password, request.memberToken)
        except ProtocolError as exc:
            if guessing and exc.name == "AccessDeniedError":
                await failures.record(self.address)
            raise
        if user is not self.user:  # logged out or renamed while the join awaited
            await self.context.registry.leave(room, self, permanently=False)
            raise ProtocolError("joinRoomError", "NotLoggedInError", "you logged out while joining")
        self.room = room

    async def leave_room(self, _: Payload) -> None:
        if self.room is None or self.user is None:
            self.send(encode("leaveRoomError", {"errorType": "NOT_JOINED", "message": "you are not in a room"}))
            return
        await self._leave_room(permanently=True)
        self.send(encode("leaveRoomSuccess"))

    def _seated(self, media_id: str) -> tuple[Room, User]:
        if self.room is None or self.user is None:
            raise ProtocolError("rateError", "NotInRoom", "join a room first", mediaId=media_id)
        return self.room, self.user

    async def rate(self, request: RateRequest) -> None:
        room, user = self._seated(request.mediaId)
        new_match = await self.context.registry.rate(room, user.userName, request.mediaId, request.rating)
        metrics = self.context.metrics
        metrics.ratings_total += 1
        metrics.matches_total += new_match

    async def undo_rate(self, request: UndoRateRequest) -> None:
        room, user = self._seated(request.mediaId)
        await self.context.registry.undo(room, user.userName, request.mediaId)

    async def delete_room(self, request: DeleteRoomRequest) -> None:
        user = self._require_user("deleteRoomError", "NotRoomOwner")
        await self.context.registry.delete(request.roomName, user)
        self.send(encode("deleteRoomSuccess", {"roomName": request.roomName}))

    async def set_locale(self, request: SetLocaleRequest) -> None:
        self.send(encode("translations", translations(request.language)))

    async def request_filters(self, _: Payload) -> None:
        try:
            filters = await self.context.provider.filters()
        except ProviderError as exc:
            raise ProtocolError("requestFiltersError", "ProviderError", str(exc)) from exc
        self.send(encode("requestFiltersSuccess", filters))

    async def request_filter_values(self, request: FilterValuesRequest) -> None:
        try:
            values = await self.context.provider.filter_values(request.key)
        except ProviderError as exc:
            raise ProtocolError(
                "requestFilterValuesError", "ProviderError", str(exc), request={"key": request.key}
            ) from exc
        self.send(encode("requestFilterValuesSuccess", {"request": {"key": request.key}, "values": values}))

    async def get_libraries(self, _: Payload) -> None:
        try:
            libraries = await self.context.provider.libraries()
        except ProviderError as exc:
            raise ProtocolError("getLibrariesError", "ProviderError", str(exc)) from exc
        self.send(encode("getLibrariesSuccess", libraries))

    async def setup(self, _: Payload) -> None:
        self.send(
            encode("setupError", {"type": "NOT_SUPPORTED", "message": "configure this server in its config file"})
        )
