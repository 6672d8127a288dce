"""The defences of issue 13, each against the attack it stops: the CPU pool's bounds, QR codes for
share links only, trusted proxies, IPv6 clients by network, connection caps, the header deadline,
the file limit, the Host allow-list, /metrics access, and secrets in DEBUG logs.

Where the behaviour is the network (caps, deadlines, proxies, the file limit) a real server runs on
loopback; loopback has a whole /8, so a "second client" is a socket bound to 127.0.0.3.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import socket
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import yaml
from websockets.asyncio.client import ClientConnection, connect as connect_ws
from websockets.exceptions import InvalidStatus
from websockets.frames import Frame, Opcode

from server.app import create_app
from server.config import Settings, load_settings
from server.limits import Occurrences, address_key
from server.listener import ACCEPT_FAILED, Gate, ServerConfig, connections_allowed, trusted_networks
from server.offload import Busy, Offload
from server.qr import share_link_problem
from server.security import ACCESS_PATH_SHOWN, RedactSecrets, ShortAccessLines, host_allowed
from storage import MemoryStorage
from tests.fake_plex import FakePlexTv, PlexAccount
from tests.fakes import eventually, serving
from tests.library import ListProvider
from tests.peers import Peer, in_process_with_http, over_network
from tests.services import ServerProcess, running_server

pytestmark = pytest.mark.anyio
slow = pytest.mark.slow


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# -- the CPU pool ------------------------------------------------------------------------------


class Gated:
    """A call that runs until the test opens it (a stand-in for a long scrypt check)."""

    def __init__(self) -> None:
        self.opened = anyio.Event()
        self.started = 0

    async def __call__(self) -> str:
        self.started += 1
        await self.opened.wait()
        return "done"


async def _hold(offload: Offload, client: str, gated: Gated, results: list[object]) -> None:
    # The pool's bounds are the subject here, not where the work runs: a coroutine that waits
    # stands in for the worker (``_run`` is what run_in_thread and run_in_process share).
    try:
        results.append(await offload._run(client, gated))
    except Busy as exc:
        results.append(exc)


async def test_the_pool_runs_a_few_at_a_time_and_refuses_beyond_its_queue_at_once() -> None:
    offload, gated = Offload(workers=2, queue=3, per_client=10), Gated()
    results: list[object] = []
    async with anyio.create_task_group() as tasks:
        for number in range(5):
            tasks.start_soon(_hold, offload, f"client{number}", gated, results)
        await eventually(lambda: offload.waiting == 3)
        assert gated.started == 2  # two run, three wait
        started = time.monotonic()
        with pytest.raises(Busy, match="already waiting"):
            await offload._run("client9", gated)
        assert time.monotonic() - started < 0.5, "refused at once, not after waiting"
        gated.opened.set()
    assert results == ["done"] * 5
    assert (offload.waiting, offload._held) == (0, {})


async def test_one_client_cannot_take_the_whole_queue() -> None:
    offload, gated = Offload(workers=1, queue=10, per_client=2), Gated()
    results: list[object] = []
    async with anyio.create_task_group() as tasks:
        for _ in range(5):
            tasks.start_soon(_hold, offload, "greedy", gated, results)
        await eventually(lambda: len(results) == 3)
        assert all(isinstance(result, Busy) for result in results)
        assert offload.held_by("greedy") == 2
        tasks.start_soon(_hold, offload, "honest", gated, results)  # still has its place
        await eventually(lambda: offload.held_by("honest") == 1)
        gated.opened.set()
    assert results[3:] == ["done"] * 3


async def test_a_cancelled_wait_gives_its_place_back() -> None:
    offload, gated = Offload(workers=1, queue=1, per_client=5), Gated()
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(_hold, offload, "a", gated, [])
        await eventually(lambda: gated.started == 1)
        with anyio.move_on_after(0.1):
            await offload._run("b", gated)  # waits for the worker, then gives up
        assert (offload.waiting, offload.held_by("b")) == (0, 0)
        gated.opened.set()
    assert await offload._run("c", gated) == "done"


def _square(number: int) -> tuple[int, int]:
    return number * number, os.getpid()


async def test_threads_and_processes_run_the_calls() -> None:
    offload = Offload(workers=2, queue=4, per_client=4)
    assert await offload.run_in_thread("a", _square, 7) == (49, os.getpid())
    squared, pid = await offload.run_in_process("a", _square, 8)
    assert (squared, pid != os.getpid()) == (64, True)
    assert offload._held == {}


# -- limits keys and reports ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "prefix", "key"),
    [
        ("203.0.113.7", 64, "203.0.113.7"),
        ("2001:db8:1:2:aaaa:bbbb:cccc:dddd", 64, "2001:db8:1:2::/64"),
        ("2001:db8:1:2::1", 64, "2001:db8:1:2::/64"),
        ("2001:db8:1:2::1", 56, "2001:db8:1::/56"),
        ("2001:db8:1:2::1", 128, "2001:db8:1:2::1/128"),
        ("::ffff:198.51.100.4", 64, "198.51.100.4"),
        ("testclient", 64, "testclient"),
    ],
)
def test_limits_count_ipv6_clients_by_network(host: str, prefix: int, key: str) -> None:
    assert address_key(host, prefix) == key


def test_a_recurring_condition_is_reported_once_per_interval_with_its_count() -> None:
    clock = FakeClock()
    occurrences = Occurrences(60.0, clock)
    assert occurrences.occurred() == 1
    assert [occurrences.occurred() for _ in range(500)] == [None] * 500
    clock.now += 60
    assert occurrences.occurred() == 501


def test_accept_failures_are_logged_once_a_minute(caplog: pytest.LogCaptureFixture) -> None:
    settings = Settings.model_validate({"storage": {"url": "memory://"}})
    gate = Gate(total=10, per_address=5, trusted=[], key=str)
    config = ServerConfig(create_app(settings, storage=MemoryStorage()), gate=gate, header_timeout=1.0)
    loop = asyncio.new_event_loop()
    try:
        with caplog.at_level(logging.ERROR):
            for _ in range(5000):
                config._loop_exception(loop, {"message": ACCEPT_FAILED, "exception": OSError(24, "Too many")})
    finally:
        loop.close()
    lines = [record for record in caplog.records if record.name == "server.listener"]
    assert len(lines) == 1
    assert "file limit" in lines[0].getMessage()


def test_the_connection_cap_keeps_a_reserve_under_the_file_limit() -> None:
    assert connections_allowed(1024) == 824
    assert connections_allowed(256) == 128
    assert connections_allowed(1 << 20) == (1 << 20) - 200


def test_trusted_proxies_include_their_ipv4_mapped_twins() -> None:
    settings = load_settings("/dev/null", {"FORWARDED_ALLOW_IPS": "10.0.0.0/8, 192.0.2.1"})
    assert trusted_networks(settings.trusted_proxies) == [
        "10.0.0.0/8",
        "192.0.2.1/32",
        "::ffff:10.0.0.0/104",
        "::ffff:192.0.2.1/128",
    ]
    both = load_settings("/dev/null", {"FORWARDED_ALLOW_IPS": "10.0.0.0/8", "TRUSTED_PROXIES": "fd00::/8"})
    assert both.trusted_proxies == ("fd00::/8",)
    assert trusted_networks(load_settings("/dev/null", {"TRUSTED_PROXIES": "*"}).trusted_proxies) == ["*"]


def test_the_compose_file_trusts_its_own_network_only() -> None:
    spec = yaml.safe_load((Path(__file__).resolve().parent.parent / "docker-compose.yml").read_text())
    [subnet] = [entry["subnet"] for entry in spec["networks"]["default"]["ipam"]["config"]]
    trusted = spec["x-moviematch"]["environment"]["TRUSTED_PROXIES"]
    assert load_settings("/dev/null", {"TRUSTED_PROXIES": trusted}).trusted_proxies == (subnet,)
    for name, service in spec["services"].items():
        if name.startswith("moviematch"):
            assert "ports" not in service, "a published process could be sent forged X-Forwarded-For"


# -- the Host allow-list ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("192.168.1.10:8000", True),
        ("[fe80::1]:8000", True),
        ("localhost:8000", True),
        ("moviebox:8000", True),  # one label: only local DNS answers for it
        ("moviebox.local", True),
        ("nas.lan:8000", True),
        ("tv.home.arpa", True),
        ("movies.example.com", True),  # listed
        ("MOVIES.EXAMPLE.COM.", True),
        ("sub.friends.example", True),  # *.friends.example
        ("friends.example", False),
        ("rebind.attacker.example:8000", False),
        ("movies.example.com.attacker.example", False),
        ("a" * 64, False),  # not a DNS label
        ("", False),
    ],
)
def test_hosts_allowed(host: str, allowed: bool) -> None:
    assert host_allowed(host, ["movies.example.com", "*.friends.example"]) is allowed


# -- share links' QR codes ---------------------------------------------------------------------------


def _problem(text: str, root_path: str = "") -> str | None:
    return share_link_problem(
        text,
        hosts=["localhost:8000", "192.168.1.10:8000"],  # the page's host, and a LAN address of the server
        allowed_origins=["https://movies.example.com"],
        root_path=root_path,
        public_url="https://public.example.org/moviematch/",
        max_name_length=100,
    )


@pytest.mark.parametrize(
    "text",
    [
        "http://localhost:8000/?roomName=Movie+Night",
        "http://192.168.1.10:8000/?roomName=Movie+Night",
        "https://movies.example.com/?roomName=%F0%9F%8E%AC" + "%F0%9F%8E%AC" * 99,
        "https://public.example.org/moviematch/?roomName=Night",  # PUBLIC_URL, whatever the root path
    ],
)
def test_share_links_of_this_server_get_a_qr_code(text: str) -> None:
    assert _problem(text) is None


@pytest.mark.parametrize(
    ("text", "root_path"),
    [
        ("", ""),
        ("hello", ""),
        ("x" * 2000, ""),
        ("http://192.168.1.10:8000/?roomName=" + "a" * 101, ""),  # not a valid room name
        ("http://evil.example/?roomName=Night", ""),
        ("http://192.168.1.10:8001/?roomName=Night", ""),
        ("javascript://192.168.1.10:8000/?roomName=Night", ""),
        ("http://user@192.168.1.10:8000/?roomName=Night", ""),
        ("http://192.168.1.10:8000/elsewhere?roomName=Night", ""),
        ("http://192.168.1.10:8000/?roomName=Night", "/moviematch"),
        ("http://192.168.1.10:8000/?roomName=Night&x=1", ""),
        ("http://192.168.1.10:8000/?roomName=Night#frag", ""),
        ("http://192.168.1.10:8000/?roomName=%00", ""),
        ("http://192.168.1.10:8000/?other=Night", ""),
        ("https://public.example.org/elsewhere/?roomName=Night", ""),
        ("https://public.example.org/moviematch/?roomName=Night#x", ""),
    ],
)
def test_other_texts_get_no_qr_code(text: str, root_path: str) -> None:
    assert _problem(text, root_path) is not None


@asynccontextmanager
async def app_client(**settings: Any) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    app = create_app(
        Settings.model_validate({"storage": {"url": "memory://"}, **settings}),
        storage=MemoryStorage(),
        provider=ListProvider(),
    )
    async with in_process_with_http(app) as (_, client):
        yield client, app.state.context


async def test_the_qr_route_draws_share_links_once_and_refuses_other_text() -> None:
    async with app_client() as (client, context):
        link = "http://testserver/?roomName=Movie Night"
        first = await client.get("/api/qr", params={"text": link})
        assert first.status_code == 200, first.text
        assert first.headers["content-type"] == "image/svg+xml"
        assert first.content.startswith(b"<svg")
        assert list(context.qr_codes._kept) == [link]
        again = await client.get("/api/qr", params={"text": link})
        assert again.content == first.content
        for text in ("hello", "http://evil.example/?roomName=x", "x" * 1000):
            refused = await client.get("/api/qr", params={"text": text})
            assert refused.status_code == 400
        assert list(context.qr_codes._kept) == [link]


async def test_the_qr_route_draws_links_of_the_public_url() -> None:
    async with app_client(public_url="https://movies.example.org/mm/") as (client, _):
        public = await client.get("/api/qr", params={"text": "https://movies.example.org/mm/?roomName=Night"})
        assert public.status_code == 200, public.text
        elsewhere = await client.get("/api/qr", params={"text": "https://movies.example.org/other/?roomName=Night"})
        assert elsewhere.status_code == 400


async def test_a_busy_pool_answers_503_at_once() -> None:
    async with app_client(cpu_workers=1, cpu_queue=1, cpu_queue_per_client=1) as (client, context):
        gated = Gated()
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(_hold, context.offload, "127.0.0.1", gated, [])
            await eventually(lambda: gated.started == 1)
            response = await client.get("/api/qr", params={"text": "http://testserver/?roomName=Night"})
            assert response.status_code == 503
            assert response.headers["retry-after"] == "1"
            gated.opened.set()


# -- /metrics access -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "status"),
    [
        ({}, 200),  # the test client is 127.0.0.1, in the default METRICS_ALLOWED_IPS
        ({"metrics_allowed_ips": ["10.0.0.0/8"]}, 403),
        ({"metrics_allowed_ips": ["10.0.0.0/8"], "metrics": True}, 200),
        ({"metrics_allowed_ips": ["10.0.0.0/8"], "auth": {"user": "u", "password": "p"}}, 401),
    ],
)
async def test_metrics_are_served_only_where_allowed(settings: dict[str, Any], status: int) -> None:
    async with app_client(**settings) as (client, _):
        assert (await client.get("/metrics")).status_code == status
        if "auth" in settings:
            authorized = await client.get("/metrics", auth=("u", "p"))
            assert authorized.status_code == 200
            assert "moviematch_connections" in authorized.text


# -- secrets in frame logs ----------------------------------------------------------------------------


def test_frames_are_redacted_before_websockets_shortens_them() -> None:
    token = "member-token-0123456789abcdef"
    padding = "x" * 500
    text = json.dumps({"type": "joinRoomSuccess", "payload": {"media": padding, "memberToken": token}})
    record = logging.makeLogRecord({"msg": "> %s", "args": (Frame(Opcode.TEXT, text.encode()),)})
    assert RedactSecrets([]).filter(record)
    line = record.getMessage()
    assert "..." in line, "websockets shortened the frame"
    assert token[-6:] not in line  # not even the tail that shortening alone would leave
    assert line.endswith(""" "memberToken": "***"}}' [575 bytes]""")


@pytest.mark.parametrize(
    ("text", "redacted"),
    [
        (
            '{"type":"login","payload":{"plexToken":"abc\\"def","password":"pw"}}',
            '{"type":"login","payload":{"plexToken":"***","password":"***"}}',
        ),
        (
            "input_value={'memberToken': 'it\\'s', 'roomName': 'V'}",
            "input_value={'memberToken': '***', 'roomName': 'V'}",
        ),
        (
            "JoinRoomRequest(roomName='V', password='pw', memberToken=None)",
            "JoinRoomRequest(roomName='V', password='***', memberToken=None)",
        ),
        ('{"password": "cut sho', '{"password": "***"'),  # a line that ends inside the value
        ('{"hasPassword": true, "roomName": "password"}', '{"hasPassword": true, "roomName": "password"}'),
    ],
)
def test_messages_are_redacted_by_field_name(text: str, redacted: str) -> None:
    record = logging.makeLogRecord({"msg": "got %s", "args": (text,)})
    RedactSecrets([]).filter(record)
    assert record.getMessage() == f"got {redacted}"


# -- against the real server --------------------------------------------------------------------------


def _raw(port: int, source: str = "127.0.0.1") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30, source_address=(source, 0))
    return sock


def _read_all(sock: socket.socket) -> bytes:
    """Everything until the server closes the connection."""
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def _get(port: int, path: str = "/health", source: str = "127.0.0.1", **headers: str) -> bytes:
    sock = _raw(port, source)
    lines = "".join(f"{name}: {value}\r\n" for name, value in {"Host": "127.0.0.1", **headers}.items())
    sock.sendall(f"GET {path} HTTP/1.1\r\n{lines}Connection: close\r\n\r\n".encode())
    try:
        return _read_all(sock)
    finally:
        sock.close()


def _handshake(port: int, source: str = "127.0.0.1") -> socket.socket:
    """An idle WebSocket, opened by hand (cheap enough to open hundreds)."""
    sock = _raw(port, source)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET /api/ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    return sock


def _status(sock: socket.socket) -> bytes:
    response = b""
    while b"\r\n" not in response and (chunk := sock.recv(1024)):
        response += chunk
    return response.split(b"\r\n", 1)[0]


def _dribble_until_closed(sock: socket.socket, deadline: float) -> bool:
    """Send a byte every 0.2 s (never a whole request) until the server closes the connection."""
    sock.settimeout(0.2)
    while time.monotonic() < deadline:
        try:
            sock.sendall(b"G")
            if sock.recv(1024) == b"":
                return True
        except TimeoutError:
            continue
        except OSError:  # reset or broken pipe: closed
            return True
    return False


def test_access_lines_keep_a_short_path() -> None:
    """A client may send kilobytes of URL per request: the access log keeps its first characters
    and its length, never the whole (40 clients asking for 1,000-character QR codes grew the log by
    1 MB a second)."""
    long_path = "/api/qr?text=" + "a" * 1000
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("1.2.3.4:5", "GET", long_path, "1.1", 400),
        None,
    )
    assert ShortAccessLines().filter(record)
    line = record.getMessage()
    assert line == f'1.2.3.4:5 - "GET {long_path[:ACCESS_PATH_SHOWN]}… (1013 characters) HTTP/1.1" 400'
    short = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, "%s %s %s %s %d", ("c", "GET", "/", "1.1", 200), None
    )
    ShortAccessLines().filter(short)
    assert short.getMessage() == "c GET / 1.1 200"


@slow
def test_half_sent_requests_are_closed_at_the_header_timeout(tmp_path: Path) -> None:
    with running_server(tmp_path / "rooms", HEADER_TIMEOUT="1") as server:
        started = time.monotonic()
        silent = _raw(server.port)
        partial = _raw(server.port)
        partial.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        kept = _raw(server.port)
        kept.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert _status(kept) == b"HTTP/1.1 200 OK"
        time.sleep(0.5)
        kept.sendall(b"GET /health HTTP/1.1\r\n")  # a second request on the kept-alive connection, half sent
        dribbling = _raw(server.port)
        assert _dribble_until_closed(dribbling, started + 15)
        dribbling.close()
        for sock in (silent, partial, kept):
            sock.settimeout(15)
            assert not _read_all(sock).endswith(b"\r\n\r\n"), "no answer to a half-sent request"
            sock.close()
        assert 0.9 < time.monotonic() - started < 10
        assert _get(server.port).startswith(b"HTTP/1.1 200")
    assert "sent no complete request within 1 s" in server.output()


@slow
async def test_a_websocket_outlives_the_header_timeout(tmp_path: Path) -> None:
    with running_server(tmp_path / "rooms", HEADER_TIMEOUT="0.5") as server:
        async with over_network(server.ws_url) as connect:
            ann = await connect("ann")
            await ann.login("ann")
            await anyio.sleep(1.5)
            await ann.create("Night")


@slow
def test_connections_per_direct_client_address_are_capped(tmp_path: Path) -> None:
    with running_server(tmp_path / "rooms", MAX_CONNECTIONS_PER_ADDRESS="4", HEADER_TIMEOUT="60") as server:
        held = [_raw(server.port, "127.0.0.2") for _ in range(4)]
        assert _get(server.port, source="127.0.0.2").startswith(b"HTTP/1.1 503")
        assert _get(server.port, source="127.0.0.3").startswith(b"HTTP/1.1 200")
        held.pop().close()

        def freed() -> bool:
            return _get(server.port, source="127.0.0.2").startswith(b"HTTP/1.1 200")

        assert_eventually(freed)
        for sock in held:
            sock.close()
    assert server.output().count("over MAX_CONNECTIONS_PER_ADDRESS") == 1


def assert_eventually(check: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "never happened"
        time.sleep(0.05)


async def _ws(server: ServerProcess, forwarded_for: str) -> ClientConnection:
    return await connect_ws(server.ws_url, additional_headers={"X-Forwarded-For": forwarded_for}, open_timeout=10)


async def _refused_status(server: ServerProcess, forwarded_for: str) -> int:
    with pytest.raises(InvalidStatus) as refused:
        await _ws(server, forwarded_for)
    return refused.value.response.status_code


@slow
async def test_websockets_per_client_address_are_capped_behind_a_proxy_with_ipv6_by_network(tmp_path: Path) -> None:
    # The test is the proxy (loopback is trusted by default): X-Forwarded-For names the clients.
    with running_server(tmp_path / "rooms", MAX_CONNECTIONS_PER_ADDRESS="3") as server:
        opened = [await _ws(server, "203.0.113.5") for _ in range(3)]
        assert await _refused_status(server, "203.0.113.5") == 429
        opened.append(await _ws(server, "203.0.113.6"))
        opened += [await _ws(server, f"2001:db8:1:2::{n}") for n in range(1, 4)]
        assert await _refused_status(server, "2001:db8:1:2:ffff:ffff:ffff:ffff") == 429  # the same /64
        opened.append(await _ws(server, "2001:db8:1:3::1"))
        await opened[0].close()
        await eventually(lambda: opened[0].state.name == "CLOSED")
        opened.append(await _ws(server, "203.0.113.5"))  # its place was given back (eventually)
        for ws in opened:
            await ws.close()
    assert " ERROR " not in server.output()


@slow
async def test_x_forwarded_for_counts_only_from_trusted_proxies(tmp_path: Path) -> None:
    forwarded = {"X-Forwarded-For": "203.0.113.5"}
    with running_server(tmp_path / "trusted") as server:
        async with httpx.AsyncClient(base_url=server.http_url) as client:
            assert (await client.get("/metrics")).status_code == 200  # 127.0.0.1 may read them
            assert (await client.get("/metrics", headers=forwarded)).status_code == 403  # a client behind the proxy
    with running_server(
        tmp_path / "untrusted", TRUSTED_PROXIES="10.0.0.0/8", MAX_CONNECTIONS_PER_ADDRESS="2"
    ) as server:
        async with httpx.AsyncClient(base_url=server.http_url) as client:
            assert (await client.get("/metrics", headers=forwarded)).status_code == 200  # the header is ignored
        first, second = await _ws(server, "203.0.113.5"), await _ws(server, "203.0.113.6")
        # All three are 127.0.0.1, now a direct client: the listener refuses the third connection.
        assert await _refused_status(server, "203.0.113.7") == 503
        await first.close()
        await second.close()


@slow
async def test_rooms_per_client_count_an_ipv6_network_as_one_client(tmp_path: Path) -> None:
    with running_server(tmp_path / "rooms", MAX_ROOMS_PER_USER="2") as server:

        async def create(forwarded_for: str, room: str) -> str:
            async with over_network(server.ws_url, additional_headers={"X-Forwarded-For": forwarded_for}) as connect:
                peer = await connect("guest")
                await peer.login(f"guest {room}")
                await peer.send("createRoom", {"roomName": room})
                reply_type, _ = await peer.wait_for_any("createRoomSuccess", "createRoomError")
                return str(reply_type)

        assert await create("2001:db8:5:6::1", "one") == "createRoomSuccess"
        assert await create("2001:db8:5:6::2", "two") == "createRoomSuccess"
        assert await create("2001:db8:5:6:1234::9", "three") == "createRoomError"
        assert await create("2001:db8:5:7::1", "four") == "createRoomSuccess"


@slow
async def test_a_rebinding_attackers_host_is_refused(tmp_path: Path) -> None:
    with running_server(tmp_path / "rooms", ALLOWED_HOSTS="movies.example.com") as server:
        for host, status in (
            (f"127.0.0.1:{server.port}", 200),
            (f"localhost:{server.port}", 200),
            ("movies.example.com", 200),
            (f"rebind.attacker.example:{server.port}", 400),
        ):
            assert _get(server.port, "/", Host=host).startswith(f"HTTP/1.1 {status}".encode()), host
        with pytest.raises(InvalidStatus) as refused:
            await connect_ws(server.ws_url, additional_headers={"Host": "rebind.attacker.example"})
        assert refused.value.response.status_code == 400
    assert server.output().count("add it to ALLOWED_HOSTS") == 1


class LimitedServer(ServerProcess):
    module = "tests.limited_server"


@contextmanager
def idle_sockets(port: int, count: int, sources: list[str]) -> Iterator[list[socket.socket]]:
    """``count`` idle WebSockets spread over ``sources``; each is open (or refused) when yielded."""
    opened: list[socket.socket] = []
    try:
        for number in range(count):
            opened.append(_handshake(port, sources[number % len(sources)]))
        yield opened
    finally:
        for sock in opened:
            sock.close()


@slow
async def test_at_the_file_limit_members_are_served_and_the_excess_refused(tmp_path: Path) -> None:
    server = LimitedServer(tmp_path / "rooms", FILE_LIMIT="300", MAX_CONNECTIONS_PER_ADDRESS="1000")
    server.start()
    try:
        async with over_network(server.ws_url) as connect:
            ann, bob = await connect("ann"), await connect("bob")
            await ann.login("ann")
            await bob.login("bob")
            deck = [item["id"] for item in (await ann.create("Night"))["media"]]
            await bob.join("Night")
            sources = [f"127.0.0.{n}" for n in range(2, 12)]
            with idle_sockets(server.port, 400, sources) as flood:
                statuses = [await anyio.to_thread.run_sync(_status, sock) for sock in flood]
                assert statuses.count(b"HTTP/1.1 101 Switching Protocols") == 150 - 2  # up to the cap
                assert statuses.count(b"HTTP/1.1 503 Service Unavailable") == 400 - 148
                slowest = 0.0
                for item in deck[:5]:
                    started = time.monotonic()
                    await ann.send("rate", {"mediaId": item, "rating": "like"})
                    await bob.send("rate", {"mediaId": item, "rating": "like"})
                    await ann.wait_for("match")
                    slowest = max(slowest, time.monotonic() - started)
                assert slowest < 2.0, f"a member waited {slowest:.2f} s"
                # A newcomer is turned away at once (a 503, or a reset while many refused ones linger).
                started = time.monotonic()
                try:
                    answer = await anyio.to_thread.run_sync(_get, server.port)
                except ConnectionResetError:
                    answer = b"HTTP/1.1 503 (reset)"
                assert answer.startswith(b"HTTP/1.1 503")
                assert time.monotonic() - started < 5
            await eventually(lambda: _get(server.port).startswith(b"HTTP/1.1 200"), within=20)
    finally:
        server.stop()
    log = server.output()
    assert "file limit 300: up to 150 connections at once" in log
    # One report of the refusals, not one per connection; and when a burst of connections, accepted
    # before any could be refused, took the last descriptors: one report of that too.
    problems = [line for line in log.splitlines() if " WARNING " in line or " ERROR " in line]
    assert [line for line in problems if "refused 1 connection(s): 150 are open" in line], problems
    assert len(problems) <= 2, problems[:10]
    assert all("refused" in line or "cannot accept connections" in line for line in problems), problems
    assert "Traceback" not in log


ROOM_PASSWORD = "canary-room-password-Xq81"
PLEX_USER_TOKEN = "canary-plex-user-token-Lm29"


@slow
async def test_no_credential_reaches_a_debug_log(tmp_path: Path) -> None:
    plex_tv = FakePlexTv(accounts={PLEX_USER_TOKEN: PlexAccount(77, "viewer", "Viewer")})
    with serving(plex_tv) as plex_tv_url:
        env = {"LOG_LEVEL": "DEBUG", "REQUIRE_PLEX_LOGIN": "true", "PLEX_TV_URL": plex_tv_url}
        with running_server(tmp_path / "rooms", **env) as server:
            async with over_network(server.ws_url) as connect:
                ann = await connect("ann")
                await ann.send("login", {"plexToken": PLEX_USER_TOKEN, "plexClientId": "browser-1"})
                await ann.expect("loginSuccess")
                created = await ann.create("Vault", password=ROOM_PASSWORD)
                member_token = created["memberToken"]
                await ann.send("joinRoom", {"roomName": "Vault", "password": ROOM_PASSWORD + "-wrong"})
                await ann.wait_for("joinRoomError")
            async with over_network(server.ws_url) as connect:
                again: Peer = await connect("ann")
                await again.send("login", {"plexToken": PLEX_USER_TOKEN, "plexClientId": "browser-1"})
                await again.expect("loginSuccess")
                await again.join("Vault", password=ROOM_PASSWORD, memberToken=member_token)
            await anyio.sleep(0.3)
        log = server.output()
    assert "< TEXT" in log, "the frame log was on"
    assert "> TEXT" in log
    assert "Vault" in log
    for secret in (ROOM_PASSWORD, PLEX_USER_TOKEN, member_token):
        assert secret not in log
        for tail in (secret[-8:], secret[:8]):
            assert tail not in log, f"part of a secret ({tail!r}) is in the log"
