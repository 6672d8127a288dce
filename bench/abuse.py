"""The attacks of issue 13 against a real server on loopback, each while honest members rate.

For each scenario a fresh ``python -m server`` starts (file storage, the shipped limits); 12 honest
members in 3 rooms rate a film every 0.2 s each and time each rating's round trip (until their own
``userProgress`` arrives), first with no attack, then while an attacker process (this module with
``--attack``, so it does not share the members' event loop) runs the attack. Printed per scenario:
the honest p50/p99 without and during the attack, their ratio, the server's RSS, its log growth,
what the attacker got, and a probe a newcomer would make (a page, a join) during the attack.
Figures only, nothing asserted.

Attackers connect from 127.0.0.2 upwards (loopback is a whole /8): each its own client address.
The IPv6 scenario goes through loopback as a trusted proxy and names its clients in
X-Forwarded-For. The honest members are 127.0.0.1.

    python -m bench.abuse                    # every scenario
    python -m bench.abuse password qr        # some of them
    python -m bench.abuse --checkout ../old  # the server of another checkout (before and after)

Scenarios that only show their full effect once the room server uses the CPU pool for password
checks (``password``: a join without a password to a password room should cost nothing) measure
what the room server does today.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import resource
import socket
import statistics
import string
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.load import memory_mb
from tests.peers import Peer, over_network
from tests.services import free_port, wait_for_port

ROOMS, MEMBERS = 3, 4
PACE = 0.2  # seconds between one member's ratings
PHASE = 6.0  # seconds of rating per phase
WARMUP = 2.0
ATTACKERS = 40
ROOM_PASSWORD = "right-password"  # noqa: S105 (a test room's)


# -- the server --------------------------------------------------------------------------------


@dataclass
class Server:
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/api/ws"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_bytes(self) -> int:
        return self.log.stat().st_size

    def rss_mb(self) -> float:
        return memory_mb(self.process.pid, "VmRSS")

    def peak_rss_mb(self) -> float:
        return memory_mb(self.process.pid, "VmHWM")


def start_server(directory: Path, file_limit: int | None, checkout: Path | None) -> Server:
    """``python -m server`` of this checkout, or of ``checkout``, with its own file limit."""
    port = free_port()
    log = directory / "server.log"
    settings = {
        **os.environ,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "STORAGE_URL": f"file:{directory / 'rooms'}",
        "RATE_LIMIT_PER_SECOND": "1000",  # the members rate fast; attackers get the shipped limits below
        "RATE_LIMIT_BURST": "1000",
    }
    if checkout is not None:
        settings["PYTHONPATH"] = str(checkout)

    def limit_files() -> None:
        if file_limit is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (file_limit, file_limit))

    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "server"],
            env=settings,
            stdout=output,
            stderr=subprocess.STDOUT,
            preexec_fn=limit_files,  # only setrlimit, between fork and exec
            cwd=checkout,
        )
    wait_for_port(port, timeout=30)
    return Server(port, process, log)


# -- honest members ------------------------------------------------------------------------------


@dataclass
class Members:
    groups: list[tuple[list[Peer], list[str]]]
    next_item: dict[str, int] = field(default_factory=dict)


async def seat_members(connect: Callable[[str], Awaitable[Peer]]) -> Members:
    groups = []
    for room_number in range(ROOMS):
        peers = [await connect(f"member{room_number}-{index}") for index in range(MEMBERS)]
        for peer in peers:
            await peer.login(peer.name)
        room = f"honest {room_number}"
        deck = [item["id"] for item in (await peers[0].create(room))["media"]]
        for peer in peers[1:]:
            await peer.join(room)
        groups.append((peers, deck))
    return Members(groups)


ACK_TIMEOUT = 60.0  # a rating unanswered this long counts as this long, and its member stops


async def receive(peer: Peer, within: float) -> dict[str, Any]:
    """The peer's next message, waiting up to ``within`` seconds (``Peer.next`` gives up after 5 s)."""
    if peer.backlog:
        return peer.backlog.pop(0)
    message: dict[str, Any] = json.loads(await asyncio.wait_for(peer.socket.receive_text(), within))
    return message


async def rate_for(members: Members, seconds: float) -> list[float]:
    """Every member rates one film per PACE for ``seconds``; the round trip of each rating, until
    the member's own ``userProgress`` for that very rating arrives."""
    latencies: list[float] = []
    stop = time.monotonic() + seconds

    async def member(peer: Peer, deck: list[str]) -> None:
        while time.monotonic() < stop:
            index = members.next_item.get(peer.name, 0)
            if index >= len(deck):
                return
            members.next_item[peer.name] = index + 1
            sent = time.perf_counter()
            await peer.send("rate", {"mediaId": deck[index], "rating": "dislike"})
            expected = (index + 1) / len(deck)
            try:
                while True:
                    message = await receive(peer, ACK_TIMEOUT - (time.perf_counter() - sent))
                    payload = message.get("payload") or {}
                    if message["type"] in ("rateError", "error"):
                        raise RuntimeError(f"{peer.name}: the server answered {message}")
                    if (
                        message["type"] == "userProgress"
                        and payload["user"]["userName"] == peer.name
                        and abs(payload["progress"] - expected) < 1e-9
                    ):
                        break
            except TimeoutError:
                latencies.append(ACK_TIMEOUT)
                members.next_item[peer.name] = len(deck)  # its later messages would be out of step
                return
            took = time.perf_counter() - sent
            latencies.append(took)
            await asyncio.sleep(max(0.0, PACE - took))

    await asyncio.gather(*(member(peer, deck) for peers, deck in members.groups for peer in peers))
    return latencies


def quantiles_ms(latencies: list[float]) -> tuple[float, float]:
    if len(latencies) < 2:
        return float("nan"), float("nan")
    cuts = statistics.quantiles(latencies, n=100)
    return cuts[49] * 1000, cuts[98] * 1000


# -- probes a newcomer makes during an attack ----------------------------------------------------


async def timed(probe: Callable[[], Awaitable[str]]) -> str:
    started = time.perf_counter()
    try:
        outcome = await asyncio.wait_for(probe(), timeout=30)
    except Exception as exc:
        outcome = type(exc).__name__
    return f"{outcome} in {(time.perf_counter() - started) * 1000:.0f} ms"


def page_probe(server: Server) -> Callable[[], Awaitable[str]]:
    async def probe() -> str:
        async with httpx.AsyncClient(timeout=30) as client:
            response = await client.get(server.http_url + "/health")
            return f"/health {response.status_code}"

    return probe


def join_probe(server: Server) -> Callable[[], Awaitable[str]]:
    async def probe() -> str:
        async with over_network(server.ws_url) as connect:
            guest = await connect("guest")
            await guest.login("late guest")
            await guest.send("joinRoom", {"roomName": "Vault", "password": ROOM_PASSWORD})
            reply_type, _ = await guest.wait_for_any("joinRoomSuccess", "joinRoomError")
            return f"join with the password: {reply_type}"

    return probe


# -- attacks (run in a process of their own: ``--attack NAME``) ------------------------------------


def sources(count: int) -> list[str]:
    """``count`` client addresses of loopback other than the members' 127.0.0.1."""
    return [f"127.1.{n // 250}.{n % 250 + 1}" for n in range(count)]


async def attack_password(port: int, seconds: float) -> dict[str, Any]:
    """40 clients, each from its own address, join the password room without a password, again
    and again: the issue's 40 connections x 10 joins, for as long as the attack lasts."""
    replies: Counter[str] = Counter()
    stop = time.monotonic() + seconds

    async def one(source: str) -> None:
        async with over_network(f"ws://127.0.0.1:{port}/api/ws", local_addr=(source, 0)) as connect:
            peer = await connect("attacker")
            await peer.login(f"attacker {source}")
            while time.monotonic() < stop:
                await peer.send("joinRoom", {"roomName": "Vault"})
                try:
                    reply_type, payload = await peer.wait_for_any("joinRoomSuccess", "joinRoomError", "error")
                except TimeoutError:
                    replies["no reply within 5 s"] += 1
                    continue
                replies[str((payload or {}).get("name", reply_type))] += 1
                if reply_type == "error":  # rate limited: wait as a patient attacker would
                    await asyncio.sleep(0.05)

    results = await asyncio.gather(*(one(source) for source in sources(ATTACKERS)), return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            replies[f"connection {type(result).__name__}"] += 1
    return {"joinRoom replies": dict(replies)}


def _random_name(length: int) -> str:
    return "".join(random.choices(string.ascii_letters, k=length))


async def attack_qr(port: int, seconds: float) -> dict[str, Any]:
    """40 clients, each from its own address, ask for QR codes as fast as answered: of share links
    with new 100-character room names (nothing cached), and of 1,000 characters of anything."""
    statuses: Counter[str] = Counter()
    stop = time.monotonic() + seconds

    async def one(source: str, number: int) -> None:
        transport = httpx.AsyncHTTPTransport(local_address=source)
        async with httpx.AsyncClient(transport=transport, base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            while time.monotonic() < stop:
                if number % 2:
                    text = f"http://127.0.0.1:{port}/?roomName={_random_name(100)}"
                    kind = "share link"
                else:
                    text, kind = _random_name(1000), "1000 characters"
                try:
                    response = await client.get("/api/qr", params={"text": text})
                    statuses[f"{kind}: {response.status_code}"] += 1
                except httpx.HTTPError as exc:
                    statuses[f"{kind}: {type(exc).__name__}"] += 1

    await asyncio.gather(*(one(source, number) for number, source in enumerate(sources(ATTACKERS))))
    return {"/api/qr answers": dict(statuses)}


def _handshake(port: int, source: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30, source_address=(source, 0))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET /api/ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    return sock


def _first_line(sock: socket.socket) -> str:
    try:
        data = b""
        while b"\r\n" not in data and (chunk := sock.recv(256)):
            data += chunk
        return data.split(b"\r\n", 1)[0].decode(errors="replace")[9:12] or "closed"
    except OSError as exc:
        return type(exc).__name__


async def attack_idle(port: int, seconds: float) -> dict[str, Any]:
    """1,200 idle WebSockets (the issue held 1,013 under a file limit of 1,024), 60 from each of 20
    addresses, kept open for the attack."""
    outcomes: Counter[str] = Counter()
    held: list[socket.socket] = []
    for number in range(1200):
        try:
            held.append(_handshake(port, sources(20)[number % 20]))
        except OSError as exc:
            outcomes[type(exc).__name__] += 1
    for sock in held:
        outcomes[await asyncio.to_thread(_first_line, sock)] += 1
    await asyncio.sleep(seconds)
    for sock in held:
        sock.close()
    return {"idle WebSockets (status, or how they failed)": dict(outcomes)}


async def attack_slowloris(port: int, seconds: float) -> dict[str, Any]:
    """600 connections, 30 from each of 20 addresses, that send a request's headers one line every
    2 s and never finish; each closed one is opened again."""
    opened = closed = 0
    stop = time.monotonic() + seconds

    def one(source: str) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0))
        sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        sock.setblocking(False)
        return sock

    slots: list[tuple[str, socket.socket | None]] = [(sources(20)[n % 20], None) for n in range(600)]
    while time.monotonic() < stop:
        for index, (source, sock) in enumerate(slots):
            if sock is not None:
                try:
                    sock.send(b"X-Slow: 1\r\n")
                    continue
                except OSError:
                    sock.close()
                    closed += 1
            try:
                slots[index] = (source, one(source))
                opened += 1
            except OSError:
                slots[index] = (source, None)
        await asyncio.sleep(2.0)
    for _, sock in slots:
        if sock is not None:
            sock.close()
    return {"slowloris connections opened": opened, "closed by the server": closed}


async def attack_ipv6(port: int, seconds: float) -> dict[str, Any]:
    """One home's /64 behind a trusted proxy (this process, on loopback): 100 addresses of it
    create rooms, and guess a room's password, each address once."""
    created: Counter[str] = Counter()
    guesses: Counter[str] = Counter()
    stop = time.monotonic() + seconds
    for number in range(1, 101):
        if time.monotonic() > stop:
            break
        headers = {"X-Forwarded-For": f"2001:db8:1:2::{number:x}"}
        async with over_network(f"ws://127.0.0.1:{port}/api/ws", additional_headers=headers) as connect:
            peer = await connect("attacker")
            await peer.login(f"attacker {number}")
            await peer.send("createRoom", {"roomName": f"spam {number}"})
            reply_type, payload = await peer.wait_for_any("createRoomSuccess", "createRoomError")
            created[str((payload or {}).get("name", reply_type))] += 1
            await peer.send("joinRoom", {"roomName": "Vault", "password": f"guess {number}"})
            reply_type, payload = await peer.wait_for_any("joinRoomSuccess", "joinRoomError")
            guesses[str((payload or {}).get("name", reply_type))] += 1
    return {"createRoom from one /64": dict(created), "password guesses from one /64": dict(guesses)}


ATTACKS: dict[str, Callable[[int, float], Coroutine[Any, Any, dict[str, Any]]]] = {
    "password": attack_password,
    "qr": attack_qr,
    "idle": attack_idle,
    "slowloris": attack_slowloris,
    "ipv6": attack_ipv6,
}


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    probe: Callable[[Server], Callable[[], Awaitable[str]]]
    file_limit: int | None = None
    warmup: float = WARMUP  # seconds the attack runs before the members' second phase


SCENARIOS = [
    Scenario("password", "joins without a password to a password room, 40 clients", join_probe),
    Scenario("qr", "QR codes, 40 clients, nothing cached", page_probe),
    Scenario("idle", "1,200 idle WebSockets under a file limit of 1,024", page_probe, file_limit=1024),
    # Measured once the first half-sent requests met the header deadline (20 s) and were refilled.
    Scenario("slowloris", "600 half-sent requests, refilled", page_probe, warmup=22.0),
    Scenario("ipv6", "rooms and password guesses from one IPv6 /64", join_probe),
]


# -- a scenario -------------------------------------------------------------------------------------


async def run(scenario: Scenario, checkout: Path | None) -> None:
    with tempfile.TemporaryDirectory() as data:
        server = start_server(Path(data), scenario.file_limit, checkout)
        try:
            async with over_network(server.ws_url, ping_interval=None, max_queue=None) as connect:
                owner = await connect("owner")
                await owner.login("owner")
                await owner.create("Vault", password=ROOM_PASSWORD)
                members = await seat_members(connect)
                await rate_for(members, 1.0)  # warm up
                calm = await rate_for(members, PHASE)
                calm_rss, log_before = server.rss_mb(), server.log_bytes()
                attacker = await asyncio.create_subprocess_exec(
                    *(sys.executable, "-m", "bench.abuse", "--attack", scenario.name),
                    *("--port", str(server.port), "--seconds", str(scenario.warmup + PHASE + 2)),
                    stdout=asyncio.subprocess.PIPE,
                )
                await asyncio.sleep(scenario.warmup)
                probe = asyncio.create_task(timed(scenario.probe(server)))
                attacked = await rate_for(members, PHASE)
                probed = await probe
                attacked_rss = server.rss_mb()
                output, _ = await asyncio.wait_for(attacker.communicate(), timeout=300)
            log_growth = server.log_bytes() - log_before
            peak = server.peak_rss_mb()
        finally:
            server.process.terminate()
            server.process.wait(timeout=30)
    calm_p50, calm_p99 = quantiles_ms(calm)
    p50, p99 = quantiles_ms(attacked)
    print(f"\n{scenario.name}: {scenario.title}")
    print(
        f"  honest rating round trip, no attack: p50 {calm_p50:7.2f} ms  p99 {calm_p99:7.2f} ms ({len(calm)} ratings)"
    )
    print(
        f"  during the attack:                  p50 {p50:7.2f} ms  p99 {p99:7.2f} ms ({len(attacked)} ratings)"
        f"  = {p50 / calm_p50:.2f}x / {p99 / calm_p99:.2f}x"
    )
    print(
        f"  server RSS {calm_rss:.0f} MB -> {attacked_rss:.0f} MB (peak {peak:.0f} MB); log +{log_growth / 1024:.0f} KB"
    )
    print(f"  a newcomer during the attack: {probed}")
    for key, value in json.loads(output.decode().strip().splitlines()[-1]).items():
        print(f"  attacker, {key}: {value}")


async def main(names: list[str], checkout: Path | None) -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    print(f"{os.cpu_count()} CPUs, server, members and attacker on the same machine")
    if checkout is not None:
        print(f"the server of {checkout}")
    print(f"{ROOMS} rooms x {MEMBERS} members rating every {PACE} s each, {PHASE:.0f} s without and with each attack")
    for scenario in SCENARIOS:
        if not names or scenario.name in names:
            await run(scenario, checkout)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("scenarios", nargs="*", help=f"scenarios to run, of {', '.join(ATTACKS)} (default: all)")
    parser.add_argument("--checkout", type=Path, help="run the server of this checkout instead")
    parser.add_argument("--attack", choices=list(ATTACKS), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=10.0, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.attack:
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        summary = asyncio.run(ATTACKS[arguments.attack](arguments.port, arguments.seconds))
        print(json.dumps(summary), flush=True)
    elif unknown := set(arguments.scenarios) - set(ATTACKS):
        parser.error(f"no such scenario: {', '.join(sorted(unknown))}")
    else:
        asyncio.run(main(arguments.scenarios, arguments.checkout))
