"""Hostile input, limits and web security, in process (fast) and against the real server (slow)."""

from __future__ import annotations

import base64
import json
import logging
import socket
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import redis
from httpx_ws import WebSocketDisconnect
from starlette.applications import Starlette
from websockets.asyncio.client import connect as connect_ws
from websockets.exceptions import ConnectionClosed, InvalidStatus

from server import __main__ as cli
from server.app import create_app
from server.config import Settings
from server.context import AppContext
from server.limits import Guards, SlidingWindow, TokenBucket, Verdict
from server.security import origin_allowed
from storage import MemoryStorage, SerializedRoom, StorageError
from tests.library import ListProvider
from tests.peers import Connect, Peer, in_process, over_network
from tests.services import RedisServer, running_server

pytestmark = pytest.mark.anyio


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FlakyStorage(MemoryStorage):
    """Memory storage whose writes fail while ``down``: a full or read-only disk, in process."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False

    async def save_room(self, room: SerializedRoom) -> None:
        if self.down:
            raise StorageError("save_room", repr(room.room_name), "No space left on device")
        await super().save_room(room)


@dataclass
class World:
    connect: Connect
    app: Starlette
    storage: FlakyStorage
    http: httpx.AsyncClient

    @property
    def context(self) -> AppContext:
        context: AppContext = self.app.state.context
        return context

    async def user(self, name: str) -> Peer:
        peer = await self.connect(name)
        await peer.login(name)
        return peer


@asynccontextmanager
async def world(**settings: Any) -> AsyncIterator[World]:
    storage = FlakyStorage()
    app = create_app(
        Settings.model_validate({"save_delay": 0.01, "save_max_wait": 0.05, **settings}),
        storage=storage,
        provider=ListProvider(),
    )
    async with in_process(app) as connect:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield World(connect, app, storage, client)


def frame(message_type: str, payload: Any) -> str:
    return json.dumps({"type": message_type, "payload": payload})


async def error_name(peer: Peer, reply_type: str = "error") -> str:
    payload: dict[str, Any] = await peer.expect(reply_type)
    return str(payload["name"])


# -- limits as pure objects ------------------------------------------------------------------


def test_token_bucket_limits_then_calls_a_flood_abusive() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=2.0, burst=3, clock=clock)
    assert [bucket.take() for _ in range(3)] == [Verdict.ALLOWED] * 3
    assert [bucket.take() for _ in range(3)] == [Verdict.LIMITED] * 3
    assert bucket.take() is Verdict.ABUSIVE
    clock.now += 5.5  # the debt is paid back and the bucket refilled, never above the burst
    assert [bucket.take() for _ in range(4)] == [Verdict.ALLOWED] * 3 + [Verdict.LIMITED]


async def test_sliding_window_forgets_old_events_and_idle_keys() -> None:
    clock = FakeClock()
    window = SlidingWindow(limit=2, window=60.0, clock=clock)
    await window.record("a")
    await window.record("a")
    assert await window.exhausted("a")
    assert not await window.exhausted("b")
    clock.now += 61.0
    assert not await window.exhausted("a")
    for index in range(3000):  # many one-time clients: memory stays bounded by the live ones
        await window.record(f"client{index}")
        clock.now += 1.0
    assert len(window._events) <= 2 * 61 + 1024


@pytest.mark.parametrize(
    ("origin", "hosts", "allowed"),
    [
        ("http://127.0.0.1:8000", ["127.0.0.1:8000"], True),
        ("https://movies.example.com", ["movies.example.com"], True),
        ("https://movies.example.com", ["movies.example.com:443"], True),
        ("HTTPS://Movies.Example.com/", ["movies.example.com"], True),
        ("https://movies.example.com", ["127.0.0.1:8000", "movies.example.com"], True),  # X-Forwarded-Host
        ("https://movies.example.com", ["movies.example.com:8443"], False),
        ("https://evil.example", ["movies.example.com"], False),
        ("https://movies.example.com.evil.example", ["movies.example.com"], False),
        ("null", ["movies.example.com"], False),
        ("https://friends.example", ["movies.example.com"], True),  # listed
    ],
)
def test_origin_rules(origin: str, hosts: list[str], allowed: bool) -> None:
    assert origin_allowed(origin, hosts, {"https://friends.example"}) is allowed


# -- hostile messages ------------------------------------------------------------------------

MALFORMED = [
    "",
    "{not json",
    "[]",
    '"login"',
    '{"type": 1}',
    '{"type": "login", "payload": {"userName": NaN}}',
    '{"type": "setup", "payload": {"x": Infinity}}',
    '{"type": "setup", "payload": {"x": -Infinity}}',
    '{"type": "login", "type": "logout"}',
    '{"type": "setup", "payload": {"a": {"b": 1, "b": 2}}}',
    '{"type": "setup", "payload": ' + "[" * 30000 + "]" * 30000 + "}",
    '{"type": "setup", "payload": ' + "1" * 5000 + "}",
    '{"type": "rate", "payload": {"mediaId": "\\ud800", "rating": "like"}}',
    '{"type": "\\udfff"}',
    '{"type": "createRoom", "payload": {"roomName": "x", "libraries": ["\\ud83d"]}}',
    '{"type": "createRoom", "payload": {"roomName": "x", "filters": [{"key": "g", "operator": "=",'
    ' "value": ["\\ud800"]}]}}',
    '{"type": "rate", "payload": {"mediaId": "test:1", "rating": "love"}}',
    '{"type": "login", "payload": {"userName": 5}}',
]


# Requests whose payload is wrong get their own error reply (v2 clients show errors only there).
OWN_ERROR_REPLY = {"rate": "rateError", "createRoom": "createRoomError", "login": "loginError"}


def _no_constant(name: str) -> None:
    raise ValueError(name)


def error_reply_for(text: str) -> str:
    """The reply the server must use: the request's own, once the frame itself is valid JSON."""
    try:
        message = json.loads(text, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        return "error"
    message_type = message.get("type") if isinstance(message, dict) else None
    return OWN_ERROR_REPLY.get(message_type, "error") if isinstance(message_type, str) else "error"


@pytest.mark.parametrize("text", MALFORMED)
async def test_malformed_messages_get_an_error_and_change_nothing(text: str) -> None:
    async with world() as w:
        peer = await w.user("ann")
        await peer.send_raw(text)
        assert await error_name(peer, error_reply_for(text)) == "MalformedMessage"
        await peer.send("createRoom", {"roomName": "still fine"})
        await peer.expect("createRoomSuccess")
        assert await w.storage.list_room_names() == ["still fine"]


@pytest.mark.parametrize(
    ("message", "reply", "name"),
    [
        ('{"type": "login", "payload": {"userName": "a\\ud800"}}', "loginError", "InvalidUserName"),
        ('{"type": "createRoom", "payload": {"roomName": "r\\udc00"}}', "createRoomError", "InvalidRoomName"),
        ('{"type": "joinRoom", "payload": {"roomName": "\\ud800"}}', "joinRoomError", "RoomNotFoundError"),
    ],
)
async def test_lone_surrogates_in_names_are_invalid_names(message: str, reply: str, name: str) -> None:
    async with world() as w:
        peer = await w.user("ann")
        await peer.send_raw(message)
        assert await error_name(peer, reply) == name
        assert w.storage.size() == 0


async def test_the_size_limit_counts_bytes_not_characters() -> None:
    async with world(max_message_bytes=1024) as w:
        peer = await w.connect()
        euros = "€" * 400  # 400 characters, 1200 bytes
        await peer.send_raw(frame("setLocale", {"language": euros}))
        assert await error_name(peer) == "MessageTooLarge"
        await peer.send_raw(frame("setLocale", {"language": "€" * 101}))  # under the limit: validated next
        assert await error_name(peer) == "MalformedMessage"


async def test_a_flood_is_rate_limited_then_closed_with_1008() -> None:
    async with world(rate_limit_per_second=0.001, rate_limit_burst=3) as w:
        flooder, bystander = await w.connect("flooder"), await w.user("bystander")
        for _ in range(7):
            await flooder.send("setLocale", {"language": "en"})
        for _ in range(3):
            await flooder.expect("translations")
        assert [await error_name(flooder) for _ in range(3)] == ["RateLimited"] * 3
        with pytest.raises(WebSocketDisconnect) as closed:
            await flooder.next()
        assert closed.value.code == 1008
        await bystander.send("createRoom", {"roomName": "calm"})  # other connections have their own bucket
        await bystander.expect("createRoomSuccess")
        assert w.context.metrics.errors["RateLimited"] == 3


async def test_a_room_holds_at_most_max_room_members() -> None:
    async with world(max_room_members=2) as w:
        ann, bob, cat = await w.user("ann"), await w.user("bob"), await w.user("cat")
        await ann.create("Small")
        token = (await bob.join("Small"))["memberToken"]
        await cat.send("joinRoom", {"roomName": "Small"})
        assert await error_name(cat, "joinRoomError") == "RoomFull"
        await bob.send("leaveRoom")
        await bob.expect("leaveRoomSuccess")
        await cat.join("Small")  # a place became free
        bob_again = await w.user("bob")
        await bob_again.send("joinRoom", {"roomName": "Small", "memberToken": token})
        assert await error_name(bob_again, "joinRoomError") == "RoomFull"


async def test_joins_racing_for_the_last_places_never_overshoot() -> None:
    async with world(max_room_members=3) as w:
        owner = await w.user("owner")
        await owner.create("Locked", password="pw")
        guests = [await w.user(f"guest{i}") for i in range(6)]
        # A password room: every join awaits its password check, so the joins interleave.
        for guest in guests:
            await guest.send("joinRoom", {"roomName": "Locked", "password": "pw"})
        replies = [(await guest.wait_for_any("joinRoomSuccess", "joinRoomError"))[0] for guest in guests]
        assert replies.count("joinRoomSuccess") == 2
        assert len(w.context.registry.rooms["locked"].state.members) == 3


async def test_rooms_per_user_are_limited() -> None:
    async with world(max_rooms_per_user=2) as w:
        ann = await w.user("ann")
        await ann.create("one")
        await ann.create("two")
        await ann.send("createRoom", {"roomName": "three"})
        assert await error_name(ann, "createRoomError") == "TooManyRooms"
        other_name = await w.user("not ann")  # a new name from the same client address counts too
        await other_name.send("createRoom", {"roomName": "three"})
        assert await error_name(other_name, "createRoomError") == "TooManyRooms"
        assert sorted(await w.storage.list_room_names()) == ["one", "two"]


async def test_room_names_longer_than_max_name_length_are_invalid() -> None:
    async with world(max_name_length=10) as w:
        ann = await w.user("ann")
        await ann.send("createRoom", {"roomName": "x" * 11})
        assert await error_name(ann, "createRoomError") == "InvalidRoomName"
        await ann.send("login", {"userName": "y" * 11})
        assert await error_name(ann, "loginError") == "InvalidUserName"


async def test_wrong_passwords_are_throttled_per_client_address() -> None:
    async with world(max_password_attempts=3) as w:
        clock = FakeClock()
        w.context.guards = Guards(w.context.settings, clock=clock)
        ann, eve = await w.user("ann"), await w.user("eve")
        await ann.create("Secret", password="right")
        for guess in ("a", "b", "c"):
            await eve.send("joinRoom", {"roomName": "Secret", "password": guess})
            assert await error_name(eve, "joinRoomError") == "AccessDeniedError"
        await eve.send("joinRoom", {"roomName": "Secret", "password": "right"})
        assert await error_name(eve, "joinRoomError") == "TooManyAttempts"
        clock.now += 61
        await eve.join("Secret", password="right")


# -- storage outages, metrics, headers -------------------------------------------------------


async def test_a_storage_outage_is_reported_once_and_recovers() -> None:
    async with world() as w:
        ann, bob = await w.user("ann"), await w.user("bob")
        deck = [item["id"] for item in (await ann.create("Night"))["media"]]
        await bob.join("Night")
        await ann.expect("userJoinedRoom")
        w.storage.down = True
        for item in deck[:3]:
            await ann.send("rate", {"mediaId": item, "rating": "like"})
        assert (await ann.wait_for("error"))["name"] == "StorageUnavailable"
        assert (await bob.wait_for("error"))["name"] == "StorageUnavailable"
        assert (await w.http.get("/health")).status_code == 503
        await ann.send("createRoom", {"roomName": "Another"})
        assert (await ann.wait_for("createRoomError"))["name"] == "StorageUnavailable"
        await anyio.sleep(0.3)
        assert not [m for m in ann.backlog if m["type"] == "error"], "told once per outage"
        w.storage.down = False
        await anyio.sleep(2.5)  # the saver retries every 2 s
        assert (await w.http.get("/health")).status_code == 200
        stored = await w.storage.get_room("Night")
        assert stored is not None
        assert stored.user_progress["ann"] == 3


async def test_metrics_count_connections_ratings_matches_and_errors() -> None:
    async with world() as w:
        ann, bob = await w.user("ann"), await w.user("bob")
        deck = [item["id"] for item in (await ann.create("Night"))["media"]]
        await bob.join("Night")
        await ann.send("rate", {"mediaId": deck[0], "rating": "like"})
        await bob.send("rate", {"mediaId": deck[0], "rating": "like"})
        await bob.wait_for("match")
        await bob.send_raw("nonsense")
        await bob.wait_for("error")
        await anyio.sleep(0.2)  # a save happened
        response = await w.http.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = dict(line.rsplit(" ", 1) for line in response.text.splitlines() if not line.startswith("#"))
    assert samples["moviematch_connections"] == "2"
    assert samples["moviematch_connections_total"] == "2"
    assert samples["moviematch_rooms_active"] == "1"
    assert samples["moviematch_ratings_total"] == "2"
    assert samples["moviematch_matches_total"] == "1"
    assert samples['moviematch_errors_total{name="MalformedMessage"}'] == "1"
    assert int(samples["moviematch_storage_write_seconds_count"]) >= 1
    assert (
        samples['moviematch_storage_write_seconds_bucket{le="+Inf"}']
        == samples["moviematch_storage_write_seconds_count"]
    )
    assert samples["moviematch_storage_up"] == "1"


CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; media-src 'self'; "
    "connect-src 'self' ws: wss:; frame-ancestors 'none'; base-uri 'self'; form-action 'self'; object-src 'none'"
)


@pytest.mark.parametrize("path", ["/", "/health", "/manifest.webmanifest", "/no-such-file"])
async def test_every_response_carries_the_security_headers(path: str) -> None:
    async with world() as w:
        response = await w.http.get(path)
    assert response.headers["content-security-policy"] == CSP
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-frame-options"] == "DENY"


@pytest.mark.parametrize("path", ["/", "/index.html", "/js/session.js", "/css/app.css"])
async def test_the_page_and_its_files_are_compressed_for_browsers_that_take_gzip(path: str) -> None:
    async with world() as w:
        plain = await w.http.get(path, headers={"Accept-Encoding": "identity"})
        zipped = await w.http.get(path, headers={"Accept-Encoding": "gzip"})
    assert plain.status_code == zipped.status_code == 200
    assert "content-encoding" not in plain.headers
    assert zipped.headers["content-encoding"] == "gzip"
    assert int(zipped.headers["content-length"]) < len(plain.content) / 2
    assert zipped.content == plain.content  # httpx inflates it
    assert zipped.headers["content-security-policy"] == CSP


async def test_plex_sign_in_opens_the_policy_to_plex_tv() -> None:
    async with world(plex_tv_url="https://plex.example") as w:

        async def sign_in(token: str, client_id: str) -> Any:
            raise AssertionError("not called")

        w.context.plex_sign_in = sign_in
        policy = (await w.http.get("/")).headers["content-security-policy"]
    assert "connect-src 'self' ws: wss: https://plex.example;" in policy
    assert "img-src 'self' data: blob: https://plex.example;" in policy


def test_text_logs_show_room_and_user() -> None:
    record = logging.makeLogRecord({"name": "server.connection", "levelname": "ERROR", "msg": "boom"})
    record.room, record.user, record.client = "Movie Night", "ann\nFORGED", None
    line = cli.TextFormatter().format(record)
    assert line.endswith("boom [room='Movie Night' user='ann\\nFORGED']")


# -- against the real server -----------------------------------------------------------------

slow = pytest.mark.slow


@slow
async def test_compressed_messages_are_limited_after_inflation(tmp_path: Path) -> None:
    with running_server(tmp_path / "rooms", MAX_MESSAGE_BYTES="4096") as server:
        async with connect_ws(server.ws_url, max_size=None, compression="deflate") as ws:
            assert ws.protocol.extensions, "the server accepted permessage-deflate"
            await ws.recv()  # config
            # 6 KiB inflated, a few dozen bytes on the wire: the application limit answers.
            await ws.send(json.dumps({"type": "setLocale", "payload": {"language": "0" * 6000}}))
            assert json.loads(await ws.recv())["payload"]["name"] == "MessageTooLarge"
            # 1 MiB inflated, about a kilobyte on the wire: the protocol limit (2x) closes with 1009.
            await ws.send("0" * 2**20)
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 1009
        async with over_network(server.ws_url) as connect:  # the server is fine
            await (await connect()).login("ann")
    assert "Traceback" not in server.output()


@slow
async def test_the_upgrade_checks_origin(tmp_path: Path) -> None:
    with running_server(tmp_path / "rooms", ALLOWED_ORIGINS="https://friends.example") as server:
        own = f"http://127.0.0.1:{server.port}"
        for origin in (own, "https://friends.example", None):
            async with connect_ws(server.ws_url, origin=origin) as ws:  # type: ignore[arg-type]
                assert json.loads(await ws.recv())["type"] == "config"
        async with connect_ws(
            server.ws_url,
            origin="https://movies.example.com",  # type: ignore[arg-type]
            additional_headers={"X-Forwarded-Host": "movies.example.com"},
        ) as ws:
            assert json.loads(await ws.recv())["type"] == "config"
        for origin in ("https://evil.example", "null", f"http://127.0.0.1:{server.port + 1}"):
            with pytest.raises(InvalidStatus) as refused:
                await connect_ws(server.ws_url, origin=origin)  # type: ignore[arg-type]
            assert refused.value.response.status_code == 403


def _redis_with_password(directory: Path, password: str) -> RedisServer:
    server = RedisServer(directory)
    server.start()
    client = redis.Redis(port=server.port)
    client.config_set("requirepass", password)
    client.close()
    return server


@slow
@pytest.mark.redis
async def test_no_secret_reaches_a_log_line_or_a_response(tmp_path: Path) -> None:
    auth_pass, room_password, redis_password = (f"canary-{uuid.uuid4().hex}" for _ in range(3))
    basic = base64.b64encode(f"movies:{auth_pass}".encode()).decode()
    redis_server = _redis_with_password(tmp_path, redis_password)
    seen: list[str] = []
    try:
        env = {
            "AUTH_USER": "movies",
            "AUTH_PASS": auth_pass,
            "STORAGE_URL": f"redis://:{redis_password}@127.0.0.1:{redis_server.port}/0",
            "LOG_LEVEL": "DEBUG",
            "SAVE_DELAY": "0.05",
            "SAVE_MAX_WAIT": "0.1",
        }
        with running_server(tmp_path / "unused", **env) as server:
            headers = {"Authorization": f"Basic {basic}"}
            with pytest.raises(InvalidStatus) as refused:
                await connect_ws(server.ws_url)
            assert refused.value.response.status_code == 403  # /api/ws is behind the same auth
            async with connect_ws(server.ws_url, additional_headers=headers) as ann_ws:
                ann = Peer(_Recording(ann_ws, seen), "ann")
                await ann.expect("config")
                await ann.login("ann")
                await ann.create("Vault", password=room_password)
                await ann.send("joinRoom", {"roomName": "Vault", "password": room_password + "x"})
                await ann.expect("joinRoomError")
                await ann.send("rate", {"mediaId": "nope", "rating": "like"})
                await ann.expect("rateError")
                await anyio.sleep(0.3)
            async with httpx.AsyncClient(base_url=server.http_url, headers=headers) as client:
                for path in ("/", "/health", "/metrics", "/manifest.webmanifest"):
                    response = await client.get(path)
                    seen.append(response.text + str(response.headers))
                seen.append(str((await client.get("/", headers={"Authorization": "Basic Zm9vOmJhcg=="})).headers))
        log = server.output()
        stored = redis.Redis(port=redis_server.port, password=redis_password)
        seen.extend(str(stored.get(key)) for key in stored.keys("*") if stored.type(key) == b"string")
        stored.close()
    finally:
        redis_server.stop()
    assert "Vault" in log, "the log captured the session"
    assert "DEBUG" in log
    for secret in (auth_pass, basic, room_password, redis_password):
        assert secret not in log
        assert not [text for text in seen if secret in text]


class _Recording:
    """A network socket that keeps a copy of every frame the server sent."""

    def __init__(self, ws: Any, seen: list[str]) -> None:
        self.ws = ws
        self.seen = seen

    async def send_text(self, text: str) -> None:
        await self.ws.send(text)

    async def receive_text(self) -> str:
        text = str(await self.ws.recv())
        self.seen.append(text)
        return text

    async def close(self) -> None:
        await self.ws.close()


async def _rated_room(connect: Connect, names: list[str], room: str) -> tuple[list[Peer], list[str]]:
    peers = [await connect(name) for name in names]
    for peer in peers:
        await peer.login(peer.name)
    deck = [item["id"] for item in (await peers[0].create(room))["media"]]
    for index, peer in enumerate(peers[1:], start=1):
        await peer.join(room)
        for earlier in peers[:index]:
            await earlier.expect("userJoinedRoom")
    return peers, deck


def _handshake(port: int, extra: str = "") -> socket.socket:
    """A WebSocket client done by hand, so the test decides when it reads and answers pings."""
    sock = socket.create_connection(("127.0.0.1", port))
    key = base64.b64encode(uuid.uuid4().bytes).decode()
    sock.sendall(
        (
            f"GET /api/ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
        ).encode()
    )
    response = b""
    while b"\r\n\r\n" not in response:
        response += sock.recv(1)
    assert response.startswith(b"HTTP/1.1 101"), response
    return sock


CLOSE_1013 = b"\x88\x02\x03\xf5"  # an unmasked close frame with code 1013 (try again later)


def _read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sent, up to its close frame (it is the last thing sent)."""
    sock.settimeout(10)
    received = b""
    while not received.endswith(CLOSE_1013) and (chunk := sock.recv(65536)):
        received += chunk
    sock.close()
    return received


def _send_frame(sock: socket.socket, text: str) -> None:
    data = text.encode()
    assert len(data) < 126
    mask = b"\x01\x02\x03\x04"
    masked = bytes(byte ^ mask[index % 4] for index, byte in enumerate(data))
    sock.sendall(bytes([0x81, 0x80 | len(data)]) + mask + masked)


@slow
async def test_a_silent_peer_leaves_its_room_after_the_ping_timeout(tmp_path: Path) -> None:
    with running_server(tmp_path / "rooms", WS_PING_INTERVAL="0.5", WS_PING_TIMEOUT="0.5") as server:
        async with over_network(server.ws_url) as connect:
            ann = await connect("ann")
            await ann.login("ann")
            await ann.create("Night")
            silent = _handshake(server.port)
            _send_frame(silent, '{"type":"login","payload":{"userName":"ghost"}}')
            _send_frame(silent, '{"type":"joinRoom","payload":{"roomName":"Night"}}')
            assert (await ann.expect("userJoinedRoom"))["user"]["userName"] == "ghost"
            started = time.monotonic()
            # The socket stays open and its kernel keeps acknowledging; it just never answers a ping.
            left = await ann.expect("userLeftRoom")
            assert left["userName"] == "ghost"
            assert time.monotonic() - started < 3.0
            silent.close()
    assert "Traceback" not in server.output()


@slow
async def test_a_client_that_stops_reading_never_delays_the_others(tmp_path: Path) -> None:
    with running_server(tmp_path / "rooms", RATE_LIMIT_PER_SECOND="100000", RATE_LIMIT_BURST="100000") as server:
        async with over_network(server.ws_url) as connect:
            (ann, bob), deck = await _rated_room(connect, ["ann", "bob"], "Night")
            stuck = _handshake(server.port)
            _send_frame(stuck, '{"type":"login","payload":{"userName":"stuck"}}')
            _send_frame(stuck, '{"type":"joinRoom","payload":{"roomName":"Night"}}')
            await ann.expect("userJoinedRoom")
            await bob.expect("userJoinedRoom")
            # Each translation table is kilobytes: the unread replies fill the socket buffers (a window
            # that does not grow while nothing is read), then the send queue.
            for _ in range(1500):
                _send_frame(stuck, '{"type":"setLocale","payload":{"language":"de"}}')
            latencies: list[float] = []
            left = False
            for item in deck:
                for peer in (ann, bob):
                    sent = time.monotonic()
                    await peer.send("rate", {"mediaId": item, "rating": "dislike"})
                    while True:  # the rater's own progress is its acknowledgement
                        message = await peer.next()
                        if message["type"] == "userLeftRoom":
                            assert message["payload"]["userName"] == "stuck"
                            left = True
                        elif message["payload"]["user"]["userName"] == peer.name:
                            break
                    latencies.append(time.monotonic() - sent)
            assert left or await ann.wait_for("userLeftRoom")
            assert max(latencies) < 1.0, f"slowest acknowledgement {max(latencies):.3f} s"
            # What the stuck client still reads ends with the close frame "try again later" (1013).
            received = await anyio.to_thread.run_sync(_read_until_closed, stuck)
            assert received.endswith(CLOSE_1013), received[-20:]
            # It comes back with its memberToken and resumes.
            again = await connect("stuck")
            await again.login("stuck")
            resumed = await again.join("Night")
            assert {user["user"]["userName"] for user in resumed["users"]} == {"ann", "bob", "stuck"}
    assert "Traceback" not in server.output()
