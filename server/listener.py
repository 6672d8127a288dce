"""The TCP side of the server: caps on connections, a deadline for each request's headers, and
the file limit.

Every connection holds a file descriptor. Past the process's file limit, ``accept()`` fails with
EMFILE: new clients then hang in the kernel's backlog, storage and media requests fail, and
asyncio logs a traceback for each failed accept (hundreds of thousands of lines a minute). So the
listener keeps below the limit itself: a new connection past ``max_connections`` or past its
address's share is answered 503 and closed at once, established members keep their sockets and
the reserve keeps files, Redis and media servers reachable, and each condition is logged once a
minute with a count.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import resource
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import anyio.to_thread
import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.utils import ClientDisconnected
from websockets.exceptions import InvalidState
from websockets.http11 import Request

from server.config import Settings
from server.limits import Occurrences, address_key
from server.websocket_protocol import WebSocketProtocol

log = logging.getLogger("server.listener")

# Descriptors kept for everything but client connections: Redis's pool (50), the media servers'
# HTTP pools, room files being written, the listening sockets, logs, the event loop's own.
FD_RESERVE = 200
REPORT_INTERVAL = 60.0
# A refused connection is half-closed after its 503 and kept this long (or until the client
# closes), since closing a socket with unread input resets it and the 503 would be lost; at most
# LINGER_MAX at once (part of FD_RESERVE), the rest are closed at once.
LINGER_SECONDS = 2.0
LINGER_MAX = 32

_REFUSAL_TEXT = b"too many connections; try again in a few seconds\n"
REFUSAL = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\nretry-after: 5\r\n"
    b"connection: close\r\ncontent-length: " + str(len(_REFUSAL_TEXT)).encode() + b"\r\n\r\n" + _REFUSAL_TEXT
)
ACCEPT_FAILED = "socket.accept() out of system resource"  # asyncio's message for EMFILE and kin


@dataclass(frozen=True)
class FileLimit:
    soft: int
    hard: int
    raised_from: int | None = None  # the soft limit before the server raised it


def raise_file_limit() -> FileLimit:
    """Raise the soft file limit to the hard one (as Go programs do), which is what the system
    allows this process; many systems start processes at 1024 below a far higher hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return FileLimit(soft, hard)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    except (ValueError, OSError):  # not allowed here (some sandboxes): keep what we have
        return FileLimit(soft, hard)
    return FileLimit(wanted, hard, raised_from=soft)


def connections_allowed(file_limit: int) -> int:
    """Connections that fit under ``file_limit`` with ``FD_RESERVE`` kept (at least half of it)."""
    return max(file_limit - FD_RESERVE, file_limit // 2)


def trusted_networks(proxies: tuple[str, ...]) -> list[str]:
    """``proxies`` as uvicorn's ``forwarded_allow_ips``, each IPv4 range with its IPv4-mapped IPv6
    twin: on a dual-stack socket an IPv4 proxy connects as ``::ffff:10.0.0.2``."""
    if "*" in proxies:
        return ["*"]
    found = list(proxies)
    for proxy in proxies:
        network = ipaddress.ip_network(proxy)
        if isinstance(network, ipaddress.IPv4Network):
            found.append(f"::ffff:{network.network_address}/{96 + network.prefixlen}")
    return found


def _peer_host(transport: asyncio.BaseTransport) -> str | None:
    peer = transport.get_extra_info("peername")
    return str(peer[0]) if isinstance(peer, tuple) and peer else None


class Gate:
    """Counts open connections, in all and per direct client address, and turns away the excess.

    Peers in ``trusted`` (reverse proxies) carry many clients' connections, so only the total
    counts them; their clients' WebSockets are capped per address by ``WebSocketCapMiddleware``.
    """

    def __init__(
        self,
        total: int,
        per_address: int,
        trusted: list[str],
        key: Callable[[str], str],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total = total
        self.per_address = per_address
        self.key = key
        self._trust_all = "*" in trusted
        self._trusted = [ipaddress.ip_network(network) for network in trusted if network != "*"]
        self._keys: dict[asyncio.BaseTransport, str | None] = {}
        self._per_key: Counter[str] = Counter()
        self._lingering: set[asyncio.BaseTransport] = set()
        self._full = Occurrences(REPORT_INTERVAL, clock)
        self._crowded = Occurrences(REPORT_INTERVAL, clock)
        self._slow = Occurrences(REPORT_INTERVAL, clock)

    @property
    def open(self) -> int:
        return len(self._keys)

    def _address_key(self, host: str | None) -> str | None:
        """The key a direct client is counted by; None for a trusted proxy (or no address)."""
        if host is None or self._trust_all:
            return None
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return None  # a Unix socket
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if any(address in network for network in self._trusted):
            return None
        return self.key(str(address))

    def admit(self, transport: asyncio.BaseTransport) -> bool:
        """Count a new connection; False (and nothing counted) when it is one too many."""
        if transport in self._keys:
            return True
        if len(self._keys) >= self.total:
            if (count := self._full.occurred()) is not None:
                log.error(
                    "refused %d connection(s): %d are open, the most this server takes (MAX_CONNECTIONS, "
                    "or what the file limit allows); established connections are served",
                    count,
                    len(self._keys),
                )
            return False
        key = self._address_key(_peer_host(transport))
        if key is not None and self._per_key[key] >= self.per_address:
            if (count := self._crowded.occurred()) is not None:
                log.warning(
                    "refused %d connection(s) over MAX_CONNECTIONS_PER_ADDRESS (%d), lately from %s",
                    count,
                    self.per_address,
                    key,
                )
            return False
        self._keys[transport] = key
        if key is not None:
            self._per_key[key] += 1
        return True

    def linger(self, transport: asyncio.BaseTransport) -> bool:
        """Whether a refused connection may wait for its client to read the 503 (``LINGER_MAX``)."""
        if len(self._lingering) >= LINGER_MAX:
            return False
        self._lingering.add(transport)
        return True

    def release(self, transport: asyncio.BaseTransport) -> None:
        self._lingering.discard(transport)
        if transport not in self._keys:
            return
        key = self._keys.pop(transport)
        if key is not None:
            self._per_key[key] -= 1
            if not self._per_key[key]:
                del self._per_key[key]

    def timed_out(self, timeout: float) -> None:
        """A connection was closed for not sending its request in time."""
        if (count := self._slow.occurred()) is not None:
            log.info(
                "closed %d connection(s) that sent no complete request within %g s (HEADER_TIMEOUT)", count, timeout
            )


class ServerConfig(uvicorn.Config):
    """uvicorn's configuration with this module's protocols, which reach the gate through it."""

    def __init__(self, app: Any, *, gate: Gate, header_timeout: float, **options: Any) -> None:
        self.gate = gate
        self.header_timeout = header_timeout
        self._accept_failures = Occurrences(REPORT_INTERVAL)
        super().__init__(app, http=GatedHttpProtocol, ws=GatedWebSocketProtocol, **options)

    def load(self) -> None:
        super().load()
        # uvicorn loads its configuration in the event loop that will serve, just before it
        # listens: the loop's report of failed accepts is set up here too.
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        loop.set_exception_handler(self._loop_exception)

    def _loop_exception(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if context.get("message") != ACCEPT_FAILED:
            loop.default_exception_handler(context)
            return
        # asyncio retries the accept every second, and (in CPython 3.11) logs each of up to 2048
        # failures per attempt with a traceback.
        if (count := self._accept_failures.occurred()) is not None:
            log.error(
                "cannot accept connections (%s), %d time(s) since the last report: the process is out of "
                "file descriptors; raise its file limit (ulimit -n, LimitNOFILE=, docker --ulimit nofile=)",
                context.get("exception"),
                count,
            )


def _gated_config(config: uvicorn.Config) -> ServerConfig:
    if not isinstance(config, ServerConfig):
        raise TypeError("the gated protocols need a ServerConfig")
    return config


class GatedHttpProtocol(H11Protocol):
    """uvicorn's h11 protocol, admitting each connection through the gate, with a deadline for
    each request's headers and body (slowloris: uvicorn's keep-alive timer only runs between
    requests, so a client that never finishes one would hold its connection for ever)."""

    def __init__(self, config: uvicorn.Config, **options: Any) -> None:
        super().__init__(config, **options)
        self.gated = _gated_config(config)
        self._deadline: asyncio.TimerHandle | None = None
        self._refused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        gate = self.gated.gate
        if not gate.admit(transport):
            self._refused = True
            self.transport.write(REFUSAL)
            if gate.linger(transport) and self.transport.can_write_eof():
                self.transport.write_eof()
                self._deadline = self.loop.call_later(LINGER_SECONDS, self.transport.close)
            else:
                self.transport.close()
            return
        self._start_deadline()

    def eof_received(self) -> None:
        if self._refused:
            self.transport.close()  # the client has read the refusal and closed its side

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # the request of a refused connection is read only to be dropped
        if self._deadline is None and self.conn.their_state is h11.IDLE:
            self._start_deadline()  # the first bytes of another request on a kept-alive connection
        super().data_received(data)
        upgraded = self.transport.get_protocol() is not self
        if upgraded or self.conn.their_state not in (h11.IDLE, h11.SEND_BODY):
            self._stop_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_deadline()
        self.gated.gate.release(self.transport)
        super().connection_lost(exc)

    def _start_deadline(self) -> None:
        self._deadline = self.loop.call_later(self.gated.header_timeout, self._too_slow)

    def _stop_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.gated.gate.timed_out(self.gated.header_timeout)
            self.transport.close()


# An ASGI extension of ours: ``{"type": "websocket.send", "pieces": AsyncIterator[bytes]}`` sends one
# text message made of those pieces (UTF-8) as they come.
PIECES_EXTENSION = "moviematch.websocket.pieces"


class GatedWebSocketProtocol(WebSocketProtocol):
    """The WebSocket protocol a connection switches to after its upgrade request: it gives the
    connection's place at the gate back when the connection ends, and sends a message in pieces
    (``PIECES_EXTENSION``)."""

    def connection_lost(self, exc: Exception | None) -> None:
        _gated_config(self.config).gate.release(self.transport)
        super().connection_lost(exc)

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        if self.handshake_initiated and not self.close_sent:
            self.scope["extensions"][PIECES_EXTENSION] = {}

    async def send(self, message: Any) -> None:
        if message["type"] == "websocket.send" and "pieces" in message:
            await self._send_pieces(message["pieces"])
            return
        await super().send(message)
        if message["type"] == "websocket.http.response.body" and not message.get("more_body", False):
            # A refusal (429, 400) was sent whole: without this, uvicorn 0.54 logs "ASGI callable
            # returned without completing handshake" at ERROR for each one (uvicorn PR #3138).
            self.handshake_complete = True

    async def _send_pieces(self, pieces: AsyncIterator[bytes]) -> None:
        """One text message, a fragment per piece: a message of tens of megabytes (a MovieMatch v2
        client's whole deck) is never made, compressed or copied in one go on the event loop.
        Fragments are compressed in a worker thread (zlib lets go of the GIL meanwhile); ours are
        the only data frames of this connection meanwhile (its frames are sent one at a time), and
        the loop's own frames in between (pings, a pong, a close) are control frames, which the
        protocol allows between fragments."""
        held: bytes | None = None
        first = True
        try:
            async for piece in pieces:
                if held is not None:
                    await self._fragment(held, first=first, fin=False)
                    first = False
                held = piece
            await self._fragment(held or b"", first=first, fin=True)
        except BaseException:
            if not first:  # a message begun cannot be ended otherwise: the connection ends with it
                self.transport.close()
            raise

    async def _fragment(self, data: bytes, *, first: bool, fin: bool) -> None:
        if not await self.can_send():
            return
        try:
            send = self.conn.send_text if first else self.conn.send_continuation
            await anyio.to_thread.run_sync(send, data, fin)
        except InvalidState as exc:
            raise ClientDisconnected() from exc
        self.transport.write(b"".join(self.conn.data_to_send()))


def connection_limit(settings: Settings, limit: FileLimit) -> int:
    """How many connections the server takes at once (``max_connections``, within what the file
    limit allows), logged with what that means in members."""
    allowed = connections_allowed(limit.soft)
    raised = f" (raised from {limit.raised_from})" if limit.raised_from is not None else ""
    if settings.max_connections > allowed:
        log.warning(
            "MAX_CONNECTIONS is %d, but the file limit (%d%s) allows %d connections: taking %d",
            settings.max_connections,
            limit.soft,
            raised,
            allowed,
            allowed,
        )
    total = min(settings.max_connections or allowed, allowed)
    log.info(
        "file limit %d%s: up to %d connections at once, room for about %d members (one WebSocket each; "
        "pages and posters take a few more while they load)",
        limit.soft,
        raised,
        total,
        total * 9 // 10,
    )
    return total


def gate_for(settings: Settings, trusted: list[str]) -> Gate:
    """The gate of a server with these settings, under the file limit (raised as far as allowed)."""
    return Gate(
        total=connection_limit(settings, raise_file_limit()),
        per_address=settings.max_connections_per_address,
        trusted=trusted,
        key=lambda host: address_key(host, settings.ipv6_prefix_length),
    )
