"""One WebSocket session: connected -> logged in -> in a room -> closing.

Parses frames, dispatches them to their handlers (``MESSAGES``: each message type with its payload
and its handler, declared together), and sends replies. A receiver reads frames in order; a sender
drains a bounded queue, so a slow reader never holds up a room's other members.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio
from starlette import status
from starlette.websockets import WebSocket, WebSocketDisconnect

from server.accounts import JellyfinFavourites, SavedTitles
from server.client_config import client_config
from server.context import AppContext
from server.i18n import translations
from server.identity import JELLYFIN, InvalidIdentity, device_identity, issue_token, plex_identity
from server.limits import Verdict
from server.listener import PIECES_EXTENSION
from server.protocol import (
    WINDOW_DEFAULT,
    AnyPayload,
    ClientMessage,
    CreateRoomRequest,
    DeleteRoomRequest,
    ErrorName,
    FilterValuesRequest,
    Frame,
    GetCardsRequest,
    JellyfinQuickConnectRequest,
    JoinRoomRequest,
    LoginRequest,
    LongFrame,
    ManageMemberRequest,
    MediaIdRequest,
    NoPayload,
    Payload,
    PickRequest,
    PlayMediaRequest,
    ProtocolError,
    RateRequest,
    Reply,
    SetLocaleRequest,
    UndoRateRequest,
    clean_name,
    encode,
    encode_with_cards,
    exceeds,
    invalid_room_name,
    malformed,
    not_in_room,
    parse_message,
)
from server.providers import ProviderError
from server.providers.jellyfin_sign_in import JellyfinSignIn, PendingQuickConnect
from server.rooms.changes import MemberAction
from server.rooms.decisions import SEAT_OFFER_MS
from server.rooms.room import Room
from server.rooms.unwatched import requested
from server.user import User
from server.watchlists import no_identity
from server.websocket_protocol import TEXTS_EXTENSION

log = logging.getLogger("server.connection")

SEND_QUEUE_SIZE = 512
# Frames queued meanwhile that go in one write, at most (a member's phone hears of a whole batch of
# its room's changes at once).
TEXTS_AT_ONCE = 64
# A close frame waits for the socket to drain; a peer that never reads must not hold the handler.
CLOSE_TIMEOUT = 5.0


class State(enum.Enum):
    CONNECTED = "connected"
    LOGGED_IN = "logged in"
    IN_ROOM = "in a room"
    CLOSING = "closing"


P = TypeVar("P", bound=Payload)
Handler = Callable[["Connection", Any], Awaitable[None]]

# Every message type clients send: its payload, the reply its errors take, and its handler.
MESSAGES: dict[str, ClientMessage] = {}
HANDLERS: dict[str, Handler] = {}


def handles(
    message_type: str, payload: type[P], error_reply: Reply = Reply.ERROR
) -> Callable[[Callable[[Connection, P], Awaitable[None]]], Callable[[Connection, P], Awaitable[None]]]:
    def register(handler: Callable[[Connection, P], Awaitable[None]]) -> Callable[[Connection, P], Awaitable[None]]:
        MESSAGES[message_type] = ClientMessage(payload, error_reply)
        HANDLERS[message_type] = handler
        return handler

    return register


class Connection:
    def __init__(self, websocket: WebSocket, context: AppContext) -> None:
        self.websocket = websocket
        self.context = context
        self.state = State.CONNECTED
        self.user: User | None = None
        self.room: Room | None = None
        # (ext) The media account this person signed in with, as far as it keeps titles for later;
        # its token lives here only, for as long as the login.
        self.account: SavedTitles | None = None
        self._queue: asyncio.Queue[Frame] = asyncio.Queue(SEND_QUEUE_SIZE)
        # (ext) The cards of a room's deck this connection takes at a time (login's window).
        self.window: int | None = None
        self._scope: anyio.CancelScope | None = None
        self._close_code: int | None = None
        self._going_away = anyio.Event()
        self._bucket = context.guards.message_bucket()
        self.seat_id = secrets.token_hex(12)
        self._quick_connect: PendingQuickConnect | None = None  # a Jellyfin Quick Connect under way
        # The client's own address (uvicorn puts a trusted proxy's X-Forwarded-For here), as the
        # per-address limits count it (an IPv6 address by its /64).
        self.address = context.guards.client(websocket.client.host) if websocket.client else "unknown"

    # -- states -----------------------------------------------------------------------------

    def _logged_in(self, user: User) -> None:
        self.user = user
        if self.state is State.CONNECTED:
            self.state = State.LOGGED_IN

    def _entered(self, room: Room) -> None:
        self.room = room
        self.state = State.IN_ROOM

    def _left(self) -> None:
        self.room = None
        if self.state is State.IN_ROOM:
            self.state = State.LOGGED_IN

    # -- transport --------------------------------------------------------------------------

    async def serve(self) -> None:
        await self.websocket.accept()
        self.send(encode(Reply.CONFIG, client_config(self.context)))
        self.context.connected(self)
        self.context.metrics.connections_total += 1
        try:
            async with anyio.create_task_group() as tasks:
                self._scope = tasks.cancel_scope
                tasks.start_soon(self._send_loop)
                tasks.start_soon(self._login_deadline)
                await self._receive_loop()
                tasks.cancel_scope.cancel()
        finally:
            self.state = State.CLOSING
            self.context.disconnected(self)
            # Shielded and bounded: the member's presence must be removed even as the task ends.
            with anyio.CancelScope(shield=True), anyio.move_on_after(CLOSE_TIMEOUT):
                await self._leave_room(permanently=False)
        if self._close_code is not None:
            with anyio.move_on_after(CLOSE_TIMEOUT):
                await self._close(self._close_code)

    async def _login_deadline(self) -> None:
        """A socket that never logs in holds a file descriptor for nothing: close it after a while."""
        timeout = self.context.settings.login_timeout
        await anyio.sleep(timeout)
        if self.state is State.CONNECTED:
            log.debug("closing %s: no login within %g s", self._who(), timeout, extra=self._log_extra())
            self._end(status.WS_1008_POLICY_VIOLATION)

    def _end(self, code: int) -> None:
        """Close the session with this code once the tasks have stopped."""
        self._close_code = code
        if self._scope is not None:
            self._scope.cancel()

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
                self._close_code = status.WS_1008_POLICY_VIOLATION
                return
            if verdict is Verdict.LIMITED:
                self._reply_error(ProtocolError(Reply.ERROR, ErrorName.RATE_LIMITED, "too many messages; slow down"))
                continue
            text = message.get("text")
            if text is not None:  # binary frames are ignored
                await self.handle(text)

    async def _send_loop(self) -> None:
        try:
            while not self._going_away.is_set():
                frame: Frame | None = await self._queue.get()
                texts: list[str] = []
                # The frames queued meanwhile go together, up to a long one (sent on its own).
                while isinstance(frame, str) and frame:
                    texts.append(frame)
                    at_once = self._queue.empty() or len(texts) == TEXTS_AT_ONCE
                    frame = None if at_once else self._queue.get_nowait()
                if texts:
                    await self._send_texts(texts)
                if isinstance(frame, LongFrame):
                    await self._send_long(frame)
        except WebSocketDisconnect:
            # The peer is gone (e.g. uvicorn closed it for an oversized frame) before the receive
            # loop heard of it: the session is over.
            if self._scope is not None:
                self._scope.cancel()
            return
        # Everything queued before the goodbye was sent; the close frame ends the receive loop too.
        await self._close(status.WS_1001_GOING_AWAY)

    async def _send_texts(self, texts: list[str]) -> None:
        """In one write to the socket where the server can (``TEXTS_EXTENSION``: ours does)."""
        if len(texts) > 1 and TEXTS_EXTENSION in self.websocket.scope.get("extensions", {}):
            await self.websocket.send({"type": "websocket.send", "texts": texts})
            return
        for text in texts:
            await self.websocket.send_text(text)

    async def _send_long(self, frame: LongFrame) -> None:
        """One message sent as it is made: in pieces where the server can (``PIECES_EXTENSION``:
        ours does), else made whole first."""
        if PIECES_EXTENSION in self.websocket.scope.get("extensions", {}):
            await self.websocket.send({"type": "websocket.send", "pieces": frame.pieces()})
        else:
            await self.websocket.send_text(await frame.text())

    def going_away(self) -> None:
        """The server is shutting down: close after what is already queued, with 1001 (going away)."""
        self._going_away.set()
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait("")  # wakes an idle sender; never sent

    async def _close(self, code: int) -> None:
        with contextlib.suppress(RuntimeError, OSError):  # already closed by the peer
            await self.websocket.close(code)

    def send(self, frame: Frame) -> None:
        try:
            self._queue.put_nowait(frame)
        except asyncio.QueueFull:
            if self._close_code is None:
                log.warning("disconnecting %s: it stopped reading", self._who(), extra=self._log_extra())
            # Try again later: it may reconnect at once and resume with its memberToken.
            self._end(status.WS_1013_TRY_AGAIN_LATER)

    def detach(self, room: Room) -> None:
        if self.room is room:
            self._left()

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
        """Who a per-user limit counts: the Plex account or Jellyfin user, else the client address
        (names are free)."""
        if user.plex_id:
            return f"plex:{user.plex_id}"
        return user.identity if user.identity and user.identity.startswith(JELLYFIN) else f"address:{self.address}"

    # -- dispatch ---------------------------------------------------------------------------

    async def handle(self, text: str) -> None:
        try:
            limit = self.context.settings.max_message_bytes
            if exceeds(text, limit):
                raise ProtocolError(Reply.ERROR, ErrorName.MESSAGE_TOO_LARGE, f"messages are limited to {limit} bytes")
            message_type, payload = parse_message(text, MESSAGES)
            await HANDLERS[message_type](self, payload)
        except ProtocolError as exc:
            self._reply_error(exc)
        except Exception:
            log.exception("unexpected error handling a message from %s", self._who(), extra=self._log_extra())
            self._reply_error(
                ProtocolError(Reply.ERROR, ErrorName.INTERNAL_ERROR, "the server could not handle this message")
            )

    def _reply_error(self, error: ProtocolError) -> None:
        # The message text is not logged: it may quote what the client sent.
        log.debug("%s answered with %s %s", self._who(), error.reply_type, error.name, extra=self._log_extra())
        self.context.metrics.error(error.name)
        self.send(encode(error.reply_type, error.payload()))

    def _require_user(self, reply_type: Reply, name: ErrorName = ErrorName.NOT_LOGGED_IN_ERROR) -> User:
        if self.user is None:
            raise ProtocolError(reply_type, name, "you must log in first")
        return self.user

    def _room_name(self, raw: str, reply_type: Reply, name_error: ErrorName = ErrorName.INVALID_ROOM_NAME) -> str:
        """A room name as typed, checked once (and with the configured length limit)."""
        try:
            return clean_name(raw, self.context.settings.max_name_length)
        except ValueError as exc:
            if name_error is ErrorName.INVALID_ROOM_NAME:
                raise invalid_room_name(reply_type, exc) from exc
            raise ProtocolError(reply_type, name_error, f"room name {exc}") from exc

    async def _leave_room(self, *, permanently: bool) -> None:
        room = self.room
        if room is not None:
            self._left()
            await self.context.registry.leave(room, self, permanently=permanently)

    # -- handlers ---------------------------------------------------------------------------

    @handles("login", LoginRequest, Reply.LOGIN_ERROR)
    async def login(self, request: LoginRequest) -> None:
        self.window = request.window
        if request.userName is not None:
            if self.context.settings.require_plex_login:
                raise ProtocolError(
                    Reply.LOGIN_ERROR, ErrorName.PLEX_LOGIN_REQUIRED, "sign in with Plex to use this server"
                )
            try:
                name = clean_name(request.userName, self.context.settings.max_name_length)
            except ValueError as exc:
                raise ProtocolError(Reply.LOGIN_ERROR, ErrorName.INVALID_USER_NAME, f"user name {exc}") from exc
            identity, issued = self._identity_for(request)
            user = User(userName=name, identity=identity)
            account = None
        elif request.plexToken is not None:
            sign_in = self.context.plex_sign_in
            if sign_in is None:
                raise ProtocolError(
                    Reply.LOGIN_ERROR, ErrorName.PLEX_AUTH_INVALID, "Plex sign-in is not configured on this server"
                )
            signed_in = await sign_in(request.plexToken, request.plexClientId or "")
            user = signed_in.model_copy(update={"identity": plex_identity(signed_in.plex_id or "")})
            issued = None
            accounts = self.context.plex_accounts
            account = None if accounts is None else accounts.watchlist(request.plexToken, request.plexClientId or "")
        elif request.jellyfinSession is not None or request.jellyfinUser is not None:
            user, ticket = await self._jellyfin_login(request)
            await self._signed_in(user, {"jellyfinSession": ticket}, self._favourites(user))
            return
        else:
            raise malformed(Reply.LOGIN_ERROR, "login needs a userName, a plexToken or a jellyfinUser")
        # (ext) A new identity's token goes to this browser once; it presents it at later logins.
        await self._signed_in(user, {"identityToken": issued} if issued else {}, account)

    async def _signed_in(self, user: User, extra: dict[str, str], account: SavedTitles | None = None) -> None:
        if self.user is not None and (self.user.userName, self.user.identity) != (user.userName, user.identity):
            await self._leave_room(permanently=False)
        self._logged_in(user)
        self.account = account
        self.send(encode(Reply.LOGIN_SUCCESS, user.public() | extra))

    def _jellyfin(self) -> JellyfinSignIn:
        sign_in = self.context.jellyfin_sign_in
        if sign_in is None or not sign_in.offered():
            raise ProtocolError(
                Reply.LOGIN_ERROR, ErrorName.JELLYFIN_AUTH_INVALID, "Jellyfin sign-in is not offered on this server"
            )
        return sign_in

    def _favourites(self, user: User) -> JellyfinFavourites | None:
        """Where a Jellyfin sign-in's watchlist is also written: their favourites on that server."""
        found = self._jellyfin().account_of(user)
        return None if found is None else JellyfinFavourites(*found)

    async def _jellyfin_login(self, request: LoginRequest) -> tuple[User, str]:
        """A Jellyfin sign-in: a session ticket of an earlier one, or a user name and password (a
        wrong one counted like a wrong room password, so names cannot be tried at will)."""
        sign_in = self._jellyfin()
        if request.jellyfinSession is not None:
            return await sign_in.resume(request.jellyfinSession)
        failures = self.context.guards.password_failures
        if await failures.exhausted(self.address):
            raise ProtocolError(
                Reply.LOGIN_ERROR, ErrorName.TOO_MANY_ATTEMPTS, "too many wrong passwords; try again in a minute"
            )
        try:
            return await sign_in.password(
                request.jellyfinServer, request.jellyfinUser or "", request.jellyfinPassword or ""
            )
        except ProtocolError as exc:
            if exc.name is ErrorName.JELLYFIN_AUTH_INVALID:
                await failures.record(self.address)
            raise

    @handles("jellyfinQuickConnect", JellyfinQuickConnectRequest, Reply.LOGIN_ERROR)
    async def jellyfin_quick_connect(self, request: JellyfinQuickConnectRequest) -> None:
        pending = await self._jellyfin().start_quick_connect(request.jellyfinServer)
        self.window = request.window
        self._quick_connect = pending
        self.send(encode(Reply.JELLYFIN_QUICK_CONNECT_CODE, {"code": pending.code, "jellyfinServer": pending.server}))

    @handles("jellyfinQuickConnectCheck", NoPayload, Reply.LOGIN_ERROR)
    async def jellyfin_quick_connect_check(self, _: Payload) -> None:
        pending = self._quick_connect
        if pending is None:
            raise ProtocolError(
                Reply.LOGIN_ERROR, ErrorName.QUICK_CONNECT_UNAVAILABLE, "no Quick Connect sign-in is under way"
            )
        try:
            signed_in = await self._jellyfin().check_quick_connect(pending)
        except ProtocolError:
            self._quick_connect = None
            raise
        if signed_in is None:
            self.send(encode(Reply.JELLYFIN_QUICK_CONNECT_PENDING, {"code": pending.code}))
            return
        self._quick_connect = None
        user, ticket = signed_in
        await self._signed_in(user, {"jellyfinSession": ticket}, self._favourites(user))

    @staticmethod
    def _identity_for(request: LoginRequest) -> tuple[str | None, str | None]:
        """The identity a login by name presents (and the token, when one is issued now); none for a
        client that knows nothing of identities (MovieMatch v2)."""
        if request.identityToken is not None:
            try:
                return device_identity(request.identityToken), None
            except InvalidIdentity as exc:
                raise ProtocolError(Reply.LOGIN_ERROR, ErrorName.INVALID_IDENTITY, str(exc)) from exc
        if request.newIdentity:
            token = issue_token()
            return device_identity(token), token
        return None, None

    @handles("logout", NoPayload)
    async def logout(self, _: Payload) -> None:
        if self.user is None:
            raise ProtocolError(Reply.LOGOUT_ERROR, ErrorName.NOT_LOGGED_IN, "this connection has no logged in user")
        await self._leave_room(permanently=False)
        self.user = None
        self.account = None
        self.state = State.CONNECTED
        self.send(encode(Reply.LOGOUT_SUCCESS))

    @handles("createRoom", CreateRoomRequest, Reply.CREATE_ROOM_ERROR)
    async def create_room(self, request: CreateRoomRequest) -> None:
        user = self._require_user(Reply.CREATE_ROOM_ERROR)
        creators = self.context.settings.room_creators
        jellyfin = user.identity is not None and user.identity.startswith(JELLYFIN)
        if (
            (creators == "plex" and user.plex_id is None)
            or (creators == "jellyfin" and not jellyfin)
            or (creators == "server-users" and "CanCreateRoom" not in user.permissions)
        ):
            signed_in = {"plex": "with Plex", "jellyfin": "with Jellyfin"}.get(creators, "as a user of this server")
            raise ProtocolError(
                Reply.CREATE_ROOM_ERROR, ErrorName.PLEX_AUTH_REQUIRED, f"sign in {signed_in} to create rooms"
            )
        name = self._room_name(request.roomName, Reply.CREATE_ROOM_ERROR)
        creations, creator = self.context.guards.room_creations, self._identity(user)
        if await creations.exhausted(creator):
            raise ProtocolError(
                Reply.CREATE_ROOM_ERROR,
                ErrorName.TOO_MANY_ROOMS,
                f"you may create {creations.limit} rooms a day; reuse one of yours",
            )
        request = await self.context.watchlists.prepare_room(request, user, self.account, self.context.provider)
        unwatched = await requested(request, user, self.context.provider)
        room = await self.context.registry.create(name, request, user, self.address, unwatched)
        await creations.record(creator)
        await self._leave_room(permanently=False)
        await self.context.registry.seat(room, self, user, Reply.CREATE_ROOM_SUCCESS, window=self.window)
        self._entered(room)

    @handles("joinRoom", JoinRoomRequest, Reply.JOIN_ROOM_ERROR)
    async def join_room(self, request: JoinRoomRequest) -> None:
        user = self._require_user(Reply.JOIN_ROOM_ERROR)
        # A name that cannot exist names no room (v2 clients know only RoomNotFoundError here).
        name = self._room_name(request.roomName, Reply.JOIN_ROOM_ERROR, ErrorName.ROOM_NOT_FOUND)
        name = await self.context.registry.resolve(name, Reply.JOIN_ROOM_ERROR)
        failures = self.context.guards.password_failures
        # Seat codes are guessed like passwords, and counted with them.
        guessing = request.password is not None or request.seatCode is not None
        if guessing and await failures.exhausted(self.address):
            raise ProtocolError(
                Reply.JOIN_ROOM_ERROR, ErrorName.TOO_MANY_ATTEMPTS, "too many wrong passwords; try again in a minute"
            )
        if self.room is not None and self.room.key != self.context.registry.key_of(name):
            await self._leave_room(permanently=False)
        try:
            room = await self.context.registry.join(
                name,
                self,
                user,
                password=request.password,
                member_token=request.memberToken,
                client=self.address,
                seat_code=request.seatCode,
                window=self.window,
                count_watched=request.countMyWatched,
            )
        except ProtocolError as exc:
            if guessing and exc.name in (ErrorName.ACCESS_DENIED, ErrorName.INVALID_SEAT_CODE):
                await failures.record(self.address)
            raise
        if user is not self.user:  # logged out or renamed while the join awaited
            await self.context.registry.leave(room, self, permanently=False)
            raise ProtocolError(Reply.JOIN_ROOM_ERROR, ErrorName.NOT_LOGGED_IN_ERROR, "you logged out while joining")
        self._entered(room)

    @handles("leaveRoom", NoPayload)
    async def leave_room(self, _: Payload) -> None:
        if self.room is None or self.user is None:
            self.send(encode(Reply.LEAVE_ROOM_ERROR, {"errorType": "NOT_JOINED", "message": "you are not in a room"}))
            return
        await self._leave_room(permanently=True)
        self.send(encode(Reply.LEAVE_ROOM_SUCCESS))

    def _seated(self, media_id: str) -> tuple[Room, str]:
        """The room and the member name this connection rates as (the seat's, whatever the login)."""
        name = self.room.seat_name(self) if self.room is not None else None
        if self.room is None or name is None:
            raise not_in_room(media_id)
        return self.room, name

    @handles("rate", RateRequest, Reply.RATE_ERROR)
    async def rate(self, request: RateRequest) -> None:
        room, name = self._seated(request.mediaId)
        new_match = await self.context.registry.rate(room, name, request.mediaId, request.rating)
        metrics = self.context.metrics
        metrics.ratings_total += 1
        metrics.matches_total += new_match

    @handles("undoRate", UndoRateRequest, Reply.RATE_ERROR)
    async def undo_rate(self, request: UndoRateRequest) -> None:
        room, name = self._seated(request.mediaId)
        await self.context.registry.undo(room, name, request.mediaId)

    @handles("deleteRoom", DeleteRoomRequest, Reply.DELETE_ROOM_ERROR)
    async def delete_room(self, request: DeleteRoomRequest) -> None:
        user = self._require_user(Reply.DELETE_ROOM_ERROR, ErrorName.NOT_ROOM_OWNER)
        name = await self.context.registry.resolve(request.roomName, Reply.DELETE_ROOM_ERROR)
        await self.context.registry.delete(name, self, user)
        self.send(encode(Reply.DELETE_ROOM_SUCCESS, {"roomName": name}))

    def _in_room(self, reply_type: Reply) -> tuple[Room, User]:
        if self.room is None or self.user is None:
            raise ProtocolError(reply_type, ErrorName.NOT_IN_ROOM, "join a room first")
        return self.room, self.user

    @handles("getMembers", NoPayload, Reply.GET_MEMBERS_ERROR)
    async def get_members(self, _: Payload) -> None:
        room, user = self._in_room(Reply.GET_MEMBERS_ERROR)
        self.send(encode(Reply.GET_MEMBERS_SUCCESS, self.context.registry.members(room, self, user)))

    @handles("getCards", GetCardsRequest, Reply.GET_CARDS_ERROR)
    async def get_cards(self, request: GetCardsRequest) -> None:
        """(ext) The next window of this member's deck: cards it has not rated from ``after`` on."""
        room = self.room
        name = room.seat_name(self) if room is not None else None
        if room is None or name is None:
            raise ProtocolError(Reply.GET_CARDS_ERROR, ErrorName.NOT_IN_ROOM, "join a room first")
        count = request.count or self.window or WINDOW_DEFAULT
        cards, after, more = room.window(name, request.after, count)
        self.send(encode_with_cards(Reply.GET_CARDS_SUCCESS, {"after": after, "more": more}, cards))

    @handles("getResults", NoPayload, Reply.GET_RESULTS_ERROR)
    async def get_results(self, _: Payload) -> None:
        room, _user = self._in_room(Reply.GET_RESULTS_ERROR)
        name = room.seat_name(self)
        if name is None:
            raise ProtocolError(Reply.GET_RESULTS_ERROR, ErrorName.NOT_IN_ROOM, "join a room first")
        self.send(encode(Reply.GET_RESULTS_SUCCESS, self.context.registry.results(room, name)))

    @handles("pickForUs", PickRequest, Reply.PICK_ERROR)
    async def pick_for_us(self, request: PickRequest) -> None:
        room, user = self._in_room(Reply.PICK_ERROR)
        await self.context.registry.pick(room, self, user, again=request.again)
        pick = room.state.pick
        if pick is None:
            raise ProtocolError(Reply.PICK_ERROR, ErrorName.NO_MATCHES, "this room has no match to pick from")
        self.send(encode(Reply.PICK_SUCCESS, {"mediaId": pick.media_id, "at": pick.at}))

    @handles("manageMember", ManageMemberRequest, Reply.MANAGE_MEMBER_ERROR)
    async def manage_member(self, request: ManageMemberRequest) -> None:
        room, user = self._in_room(Reply.MANAGE_MEMBER_ERROR)
        action = MemberAction(request.action)
        code = await self.context.registry.manage(room, self, user, action, request.userName)
        reply: dict[str, object] = {"userName": request.userName, "action": action}
        if code is not None:
            reply |= {"seatCode": code, "expiresIn": SEAT_OFFER_MS // 1000}
        self.send(encode(Reply.MANAGE_MEMBER_SUCCESS, reply))

    @handles("listRooms", NoPayload, Reply.LIST_ROOMS_ERROR)
    async def list_rooms(self, _: Payload) -> None:
        self._require_user(Reply.LIST_ROOMS_ERROR)
        standing = self.context.standing
        self.send(encode(Reply.LIST_ROOMS_SUCCESS, {"rooms": standing.listing() if standing is not None else []}))

    @handles("setLocale", SetLocaleRequest)
    async def set_locale(self, request: SetLocaleRequest) -> None:
        self.send(encode(Reply.TRANSLATIONS, translations(request.language)))

    @handles("requestFilters", NoPayload, Reply.REQUEST_FILTERS_ERROR)
    async def request_filters(self, _: Payload) -> None:
        try:
            filters = await self.context.provider.filters()
        except ProviderError as exc:
            raise ProtocolError(Reply.REQUEST_FILTERS_ERROR, ErrorName.PROVIDER_ERROR, str(exc)) from exc
        self.send(encode(Reply.REQUEST_FILTERS_SUCCESS, filters))

    @handles("requestFilterValues", FilterValuesRequest, Reply.REQUEST_FILTER_VALUES_ERROR)
    async def request_filter_values(self, request: FilterValuesRequest) -> None:
        try:
            values = await self.context.provider.filter_values(request.key)
        except ProviderError as exc:
            raise ProtocolError(
                Reply.REQUEST_FILTER_VALUES_ERROR, ErrorName.PROVIDER_ERROR, str(exc), request={"key": request.key}
            ) from exc
        self.send(encode(Reply.REQUEST_FILTER_VALUES_SUCCESS, {"request": {"key": request.key}, "values": values}))

    @handles("getLibraries", NoPayload, Reply.GET_LIBRARIES_ERROR)
    async def get_libraries(self, _: Payload) -> None:
        try:
            libraries = await self.context.provider.libraries()
        except ProviderError as exc:
            raise ProtocolError(Reply.GET_LIBRARIES_ERROR, ErrorName.PROVIDER_ERROR, str(exc)) from exc
        self.send(encode(Reply.GET_LIBRARIES_SUCCESS, libraries))

    @handles("getPeople", NoPayload, Reply.GET_PEOPLE_ERROR)
    async def get_people(self, _: Payload) -> None:
        """The media servers' people, for a room's creator to pick: to users who are one of them."""
        user = self._require_user(Reply.GET_PEOPLE_ERROR)
        provider = self.context.provider
        try:
            if await provider.person(user.identity) is None:
                raise ProtocolError(
                    Reply.GET_PEOPLE_ERROR,
                    ErrorName.PLEX_AUTH_REQUIRED,
                    "sign in with Plex or Jellyfin as a user of this server to see its people",
                )
            people = await provider.people()
        except ProviderError as exc:
            raise ProtocolError(Reply.GET_PEOPLE_ERROR, ErrorName.PROVIDER_ERROR, str(exc)) from exc
        self.send(encode(Reply.GET_PEOPLE_SUCCESS, {"people": [person.wire() for person in people]}))

    @handles("setup", AnyPayload, Reply.SETUP_ERROR)
    async def setup(self, _: Payload) -> None:
        self.send(
            encode(Reply.SETUP_ERROR, {"type": "NOT_SUPPORTED", "message": "configure this server in its config file"})
        )

    # -- (ext) watchlists --------------------------------------------------------------------------

    def _person(self, reply_type: Reply, **extra: str) -> str:
        """The identity whose watchlist this connection keeps."""
        user = self._require_user(reply_type)
        if user.identity is None:
            raise no_identity(reply_type, **extra)
        return user.identity

    @handles("getWatchlist", NoPayload, Reply.WATCHLIST_ERROR)
    async def get_watchlist(self, _: Payload) -> None:
        items = await self.context.watchlists.items(self._person(Reply.WATCHLIST_ERROR))
        self.send(encode(Reply.GET_WATCHLIST_SUCCESS, {"items": items}))

    @handles("addToWatchlist", MediaIdRequest, Reply.WATCHLIST_ERROR)
    async def add_to_watchlist(self, request: MediaIdRequest) -> None:
        identity = self._person(Reply.WATCHLIST_ERROR, mediaId=request.mediaId)
        item = self.room.deck.get(request.mediaId) if self.room is not None else None
        if item is None:
            why = "join the room of this card first" if self.room is None else f"{request.mediaId} is not in this room"
            name = ErrorName.NOT_IN_ROOM if self.room is None else ErrorName.UNKNOWN_MEDIA
            raise ProtocolError(Reply.WATCHLIST_ERROR, name, why, mediaId=request.mediaId)
        reply = await self.context.watchlists.add(identity, item, self.account)
        self.send(encode(Reply.ADD_TO_WATCHLIST_SUCCESS, reply))

    @handles("removeFromWatchlist", MediaIdRequest, Reply.WATCHLIST_ERROR)
    async def remove_from_watchlist(self, request: MediaIdRequest) -> None:
        identity = self._person(Reply.WATCHLIST_ERROR, mediaId=request.mediaId)
        reply = await self.context.watchlists.remove(identity, request.mediaId, self.account)
        self.send(encode(Reply.REMOVE_FROM_WATCHLIST_SUCCESS, reply))

    # -- (ext) requests for matched titles the library lacks ---------------------------------------

    @handles("getRequests", NoPayload, Reply.GET_REQUESTS_ERROR)
    async def get_requests(self, _: Payload) -> None:
        room, _user = self._in_room(Reply.GET_REQUESTS_ERROR)
        self.send(encode(Reply.GET_REQUESTS_SUCCESS, {"requests": await self.context.requests.statuses(room, self)}))

    @handles("requestMedia", MediaIdRequest, Reply.REQUEST_MEDIA_ERROR)
    async def request_media(self, request: MediaIdRequest) -> None:
        if self.room is None or self.user is None:
            raise ProtocolError(
                Reply.REQUEST_MEDIA_ERROR, ErrorName.NOT_IN_ROOM, "join a room first", mediaId=request.mediaId
            )
        reply = await self.context.requests.request(self.room, self, self.user, request.mediaId)
        self.send(encode(Reply.REQUEST_MEDIA_SUCCESS, reply))

    # -- (ext) play the winner -------------------------------------------------------------------

    @handles("getPlayers", MediaIdRequest, Reply.GET_PLAYERS_ERROR)
    async def get_players(self, request: MediaIdRequest) -> None:
        reply = await self.context.playback.players(self.room, self, self.user, request.mediaId)
        self.send(encode(Reply.GET_PLAYERS_SUCCESS, reply))

    @handles("playMedia", PlayMediaRequest, Reply.PLAY_MEDIA_ERROR)
    async def play_media(self, request: PlayMediaRequest) -> None:
        reply = await self.context.playback.play(self.room, self, self.user, request.mediaId, request.playerId)
        self.send(encode(Reply.PLAY_MEDIA_SUCCESS, reply))
