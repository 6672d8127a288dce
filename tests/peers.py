"""Protocol peers: a WebSocket client speaking MovieMatch JSON frames, in-process or over the network."""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any, Protocol

import anyio
import anyio.abc
import httpx
from asgi_lifespan import LifespanManager
from httpx_ws import aconnect_ws
from httpx_ws.transport import ASGIWebSocketTransport
from starlette.applications import Starlette
from websockets.asyncio.client import ClientConnection, connect as connect_ws

# Only catches a hang: a reply that takes long on a busy 2-core machine (a room over a large library)
# is still a reply. Speed belongs to the benchmarks.
RECEIVE_TIMEOUT = 60.0


class Socket(Protocol):
    async def send_text(self, text: str) -> None: ...
    async def receive_text(self) -> str: ...
    async def close(self) -> None: ...


class Peer:
    """One browser tab: sends frames, and reads replies in order (``expect`` skips nothing)."""

    def __init__(self, socket: Socket, name: str = "") -> None:
        self.socket = socket
        self.name = name
        self.backlog: list[dict[str, Any]] = []
        self.config: dict[str, Any] = {}

    @classmethod
    async def greeted(cls, socket: Socket, name: str) -> Peer:
        """A peer past the server's first message, ``config`` (kept in ``config``)."""
        peer = cls(socket, name)
        peer.config = await peer.expect("config")
        return peer

    async def send(self, message_type: str, payload: Any = None) -> None:
        message: dict[str, Any] = {"type": message_type}
        if payload is not None:
            message["payload"] = payload
        await self.socket.send_text(json.dumps(message))

    async def send_raw(self, text: str) -> None:
        await self.socket.send_text(text)

    async def close(self) -> None:
        """The tab is closed (or the phone lost its connection)."""
        await self.socket.close()

    async def next(self) -> dict[str, Any]:
        if self.backlog:
            return self.backlog.pop(0)
        with anyio.fail_after(RECEIVE_TIMEOUT):
            message: dict[str, Any] = json.loads(await self.socket.receive_text())
        return message

    async def expect(self, message_type: str) -> Any:
        """The next message, which must be of this type; returns its payload."""
        message = await self.next()
        assert message["type"] == message_type, f"{self.name}: expected {message_type}, got {message}"
        return message.get("payload")

    async def wait_for(self, message_type: str) -> Any:
        """Skip other messages (kept for later ``next``) until one of this type arrives."""
        return (await self.wait_for_any(message_type))[1]

    async def wait_for_any(self, *message_types: str) -> tuple[str, Any]:
        """The first message of any of these types (others are kept for later): its type and payload."""
        message = await self.wait_until(lambda message: message["type"] in message_types)
        return message["type"], message.get("payload")

    async def wait_until(self, wanted: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        """The first message ``wanted`` accepts; the others are kept for later, in order."""
        skipped = []
        try:
            while True:
                message = await self.next()
                if wanted(message):
                    return message
                skipped.append(message)
        finally:
            self.backlog = skipped + self.backlog

    async def rate(self, media_id: str, rating: str = "like") -> Any:
        """Rate and wait until it is recorded: this member's own progress, not another member's
        (which may reach this tab first, from a rating decided before or after this one). Returns it."""
        await self.send("rate", {"mediaId": media_id, "rating": rating})
        message = await self.wait_until(
            lambda message: message["type"] == "userProgress" and message["payload"]["user"]["userName"] == self.name
        )
        return message["payload"]

    async def progress_of(self, name: str) -> float:
        """The progress in the next userProgress about member ``name`` (others are kept for later)."""
        message = await self.wait_until(
            lambda message: message["type"] == "userProgress" and message["payload"]["user"]["userName"] == name
        )
        return float(message["payload"]["progress"])

    async def no_message(self, within: float = 0.2) -> None:
        assert not self.backlog, f"{self.name}: unexpected {self.backlog}"
        with anyio.move_on_after(within):
            message = await self.socket.receive_text()
            raise AssertionError(f"{self.name}: unexpected {message}")

    async def login(self, user_name: str) -> None:
        await self.send("login", {"userName": user_name})
        await self.expect("loginSuccess")

    async def create(self, room_name: str, **request: Any) -> Any:
        await self.send("createRoom", {"roomName": room_name, **request})
        return await self._success("createRoom")

    async def join(self, room_name: str, **request: Any) -> Any:
        await self.send("joinRoom", {"roomName": room_name, **request})
        return await self._success("joinRoom")

    async def _success(self, request_type: str) -> Any:
        """The success reply of a request; its error reply fails the test at once, saying why."""
        kind, payload = await self.wait_for_any(f"{request_type}Success", f"{request_type}Error")
        assert kind == f"{request_type}Success", f"{self.name}: {request_type} refused: {payload}"
        return payload


class Connect(Protocol):
    def __call__(self, name: str = "") -> Awaitable[Peer]: ...


async def _serve_in_process(stack: AsyncExitStack, app: Starlette) -> tuple[Connect, httpx.AsyncClient]:
    """Run the app's lifespan in ``stack``; connections are entered in the same stack."""
    manager = await stack.enter_async_context(LifespanManager(app))
    client = await stack.enter_async_context(
        httpx.AsyncClient(transport=ASGIWebSocketTransport(manager.app), base_url="http://testserver")
    )

    # Each connection lives in a task of its own, so one can close while the others go on.
    tasks = await stack.enter_async_context(anyio.create_task_group())
    stack.callback(tasks.cancel_scope.cancel)

    async def connect(name: str = "") -> Peer:
        socket: _InProcessSocket = await tasks.start(_in_process_socket, client)
        return await Peer.greeted(socket, name)

    return connect, client


class _InProcessSocket:
    def __init__(self, session: Any) -> None:
        self.session: Any = session
        self.closing = anyio.Event()
        self.closed = anyio.Event()

    async def send_text(self, text: str) -> None:
        await self.session.send_text(text)

    async def receive_text(self) -> str:
        text: str = await self.session.receive_text()
        return text

    async def close(self) -> None:
        self.closing.set()
        await self.closed.wait()


async def _in_process_socket(client: httpx.AsyncClient, *, task_status: anyio.abc.TaskStatus[_InProcessSocket]) -> None:
    socket: _InProcessSocket | None = None
    try:
        session: Any
        async with aconnect_ws("http://testserver/api/ws", client) as session:
            socket = _InProcessSocket(session)
            task_status.started(socket)
            await socket.closing.wait()
    finally:
        if socket is not None:
            socket.closed.set()


@asynccontextmanager
async def in_process_with_http(app: Starlette) -> AsyncIterator[tuple[Connect, httpx.AsyncClient]]:
    """Peers talking to the app in this event loop, with its lifespan running, and an HTTP client."""
    async with AsyncExitStack() as stack:
        yield await _serve_in_process(stack, app)


@asynccontextmanager
async def in_process(app: Starlette) -> AsyncIterator[Connect]:
    async with in_process_with_http(app) as (connect, _):
        yield connect


@asynccontextmanager
async def in_processes(*apps: Starlette) -> AsyncIterator[list[Connect]]:
    """Several apps in this event loop (standing in for processes). One stack holds them all: the
    connections' task groups then end in the reverse order they began, as anyio requires."""
    async with AsyncExitStack() as stack:
        yield [(await _serve_in_process(stack, app))[0] for app in apps]


class _NetworkSocket:
    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection

    async def send_text(self, text: str) -> None:
        await self.connection.send(text)

    async def receive_text(self) -> str:
        message = await self.connection.recv()
        return message if isinstance(message, str) else message.decode()

    async def close(self) -> None:
        await self.connection.close()


@asynccontextmanager
async def over_network(urls: str | Sequence[str], **options: Any) -> AsyncIterator[Connect]:
    """Peers connected to real servers over loopback, to each of ``urls`` in turn (round-robin);
    ``options`` go to websockets' ``connect``."""
    turns = itertools.cycle([urls] if isinstance(urls, str) else urls)
    async with AsyncExitStack() as stack:

        async def connect(name: str = "") -> Peer:
            connection = await stack.enter_async_context(connect_ws(next(turns), open_timeout=30, **options))
            return await Peer.greeted(_NetworkSocket(connection), name)

        yield connect
