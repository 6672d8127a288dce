"""Big libraries through the real server: ``createRoom`` on 1,000, 20,000 and 100,000 films, cold
(a fresh server process: nothing cached) and cached (the same filters again), against the fake Plex
and the fake Jellyfin, each in a process of its own on loopback; joins (a new member and a resume,
with windows of the deck and whole as MovieMatch v2 has it: bytes and ms); saves (ms, bytes
written); the server's memory with many rooms on one 100,000-film library; and a noisy neighbour:
another room's rating round trips while v2 clients join a 100,000-film room in a loop, against the
same server idle, in one run. Prints figures, ratios against the smallest library (or the idle
server) of the same run and the targets of issue #14; asserts nothing.

Two more sources: ``plex-noguids``, a Plex server that sends no ``Guid`` lists (as before MovieMatch
asked for them), the baseline of what the lists cost (``plex`` against it, same run); and ``both``,
a Plex and a Jellyfin server holding the same films, so every card is merged from two (one deck
across servers).

    python -m bench.library                      # or: make bench-library
    python -m bench.library --sizes 1000,20000 --sources plex --rooms 10 --runs 1
    python -m bench.library --sizes 100000 --sources plex,plex-noguids,both --scenarios create
    python -m bench.library --sizes 100000 --sources plex --scenarios neighbour

The fake media server encodes each of its items once and keeps it: the first server run of each
library (which pays for that) is a warm-up and not counted, so the figures are the server's, not the
fake's. A scenario is a function ``(Setup) -> list[Row]`` in ``SCENARIOS``: more (join, save, a noisy
neighbour) are added there and reuse ``Setup.server()`` and ``Client``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import ExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from bench.load import memory_mb
from tests import fake_jellyfin, fake_plex
from tests.fakes import serving
from tests.services import free_port, wait_for_port

SIZES = (1_000, 20_000, 100_000)
SOURCES = ("plex", "plex-noguids", "jellyfin", "both")
# Targets of issue #14 at 100,000 films, in seconds.
TARGETS = {"cold": 3.0, "cached": 1.0}
# ... for a windowed join or resume (KiB, ms), and the neighbour's p99 while v2 joins run (x idle).
JOIN_TARGETS = {"KiB": 64.0, "ms": 50.0}
NEIGHBOUR_TARGET = 2.0
WINDOW = 40
# createRoom's clients: ours (the deck in windows) and the original's (the whole deck).
CREATE_CLIENTS: dict[str, int | None] = {"createRoom": WINDOW, "createRoom v2": None}
# The noisy neighbour: v2 clients joining in a loop, and a member rating every RATING_PACE
# seconds, timed per phase of PHASE_SECONDS (idle, busy, idle).
JOINERS = 2
RATING_PACE = 0.02
PHASE_SECONDS = 20.0
REPLY_TIMEOUT = 300.0  # a hang, not a figure: a busy 2-core machine is slow with 100,000 cards
_TYPE = re.compile(r'\{"type":"(\w+)"')


# -- the fake media server, in a process of its own -----------------------------------------------


def fakes(source: str, size: int) -> list[fake_plex.FakePlex | fake_jellyfin.FakeJellyfin]:
    """The fake media servers of a source, each with one movie library of ``size`` films (the same
    films: IMDb base 1 on both)."""
    plex = fake_plex.FakePlex(
        libraries=[fake_plex.FakeLibrary("1", "Movies", "movie", size, imdb_base=1)], guids=source != "plex-noguids"
    )
    library = fake_jellyfin.FakeLibrary(1, "Movies", "movies", size, imdb_base=1)
    jellyfin = fake_jellyfin.FakeJellyfin(libraries=[library], users=[fake_jellyfin.ALICE])
    chosen: dict[str, list[fake_plex.FakePlex | fake_jellyfin.FakeJellyfin]] = {
        "jellyfin": [jellyfin],
        "both": [plex, jellyfin],
    }
    return chosen.get(source, [plex])


def serve(source: str, size: int) -> None:
    """Serve the source's fake servers until killed; print their URLs first (one line)."""
    with ExitStack() as stack:
        urls = [stack.enter_context(serving(app)) for app in fakes(source, size)]
        print(" ".join(urls), flush=True)
        while True:
            time.sleep(3600)


@contextmanager
def media_server(source: str, size: int) -> Iterator[list[str]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.library", "--serve", source, str(size)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        urls = process.stdout.readline().split()
        if not urls:
            raise RuntimeError(f"the fake {source} server did not start")
        yield urls
    finally:
        process.terminate()
        process.wait(timeout=20)


def server_settings(source: str, urls: list[str]) -> dict[str, Any]:
    servers = []
    for app, url in zip(fakes(source, 0), urls, strict=True):
        plex = isinstance(app, fake_plex.FakePlex)
        token = fake_plex.PLEX_TOKEN if plex else fake_jellyfin.API_KEY
        servers.append({"type": "plex" if plex else "jellyfin", "url": url, "token": token})
    return {"servers": servers}


def join_in_a_loop(url: str, room: str, clients: int) -> None:
    """MovieMatch v2 clients (no window) joining ``room`` again and again until killed, a line
    printed per join. A process of its own: reading tens of megabytes a join must not slow the
    client whose round trips are timed."""

    async def one(number: int) -> None:
        async with client(Served(url, 0), f"v2 joiner {number}") as session:
            while True:
                await session.join(room)
                print("joined", flush=True)

    async def all_of_them() -> None:
        await asyncio.gather(*(one(number) for number in range(clients)))

    asyncio.run(all_of_them())


# -- the MovieMatch server ------------------------------------------------------------------------


@dataclass(frozen=True)
class Served:
    url: str
    pid: int
    directory: Path = Path()

    def rss_mb(self) -> float:
        return memory_mb(self.pid, "VmRSS")

    def metric(self, name: str) -> float:
        """One sample of the server's /metrics (its loopback address may read them)."""
        address = self.url.removeprefix("ws://").removesuffix("/api/ws")
        with urllib.request.urlopen(f"http://{address}/metrics", timeout=30) as response:
            text = response.read().decode()
        return float(re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE).group(1))  # type: ignore[union-attr]


@contextmanager
def moviematch(settings: dict[str, Any], directory: Path) -> Iterator[Served]:
    """``python -m server`` on file storage in ``directory``, configured by ``settings`` (YAML)."""
    port = free_port()
    config = directory / "config.yaml"
    config.write_text(json.dumps(settings))  # JSON is YAML
    env = {
        **os.environ,
        "CONFIG_PATH": str(config),
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "STORAGE_URL": f"file:{directory / 'rooms'}",
        "LOG_LEVEL": "WARNING",
        # One client creates every room: the limits are policy, not cost.
        "MAX_ROOMS_PER_USER": "1000000",
        "RATE_LIMIT_PER_SECOND": "1000000",
        "RATE_LIMIT_BURST": "1000000",
    }
    log = (directory / f"server-{port}.log").open("wb")
    process = subprocess.Popen([sys.executable, "-m", "server"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, timeout=30)
        yield Served(f"ws://127.0.0.1:{port}/api/ws", process.pid, directory / "rooms")
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


class Client:
    """One WebSocket client; replies are timed on arrival, before their JSON is read."""

    def __init__(self, socket: ClientConnection) -> None:
        self.socket = socket

    async def request(self, message_type: str, payload: Any, *replies: str) -> Reply:
        started = time.perf_counter()
        await self.socket.send(json.dumps({"type": message_type, "payload": payload}))
        while True:
            raw = await asyncio.wait_for(self.socket.recv(), REPLY_TIMEOUT)
            text = raw if isinstance(raw, str) else raw.decode()
            found = _TYPE.match(text)
            kind = found.group(1) if found else ""
            if kind in replies or kind.endswith("Error") or kind == "error":
                seconds = time.perf_counter() - started
                if kind not in replies:
                    raise RuntimeError(f"{message_type} failed: {text[:300]}")
                return Reply(kind, text, seconds)

    async def create(self, room_name: str, **request: Any) -> Reply:
        return await self.request("createRoom", {"roomName": room_name, **request}, "createRoomSuccess")

    async def join(self, room_name: str, **request: Any) -> Reply:
        return await self.request("joinRoom", {"roomName": room_name, **request}, "joinRoomSuccess")

    async def rate(self, media_id: str) -> float:
        """Seconds until the progress comes back (of a member alone in its room: it is its own)."""
        reply = await self.request("rate", {"mediaId": media_id, "rating": "dislike"}, "userProgress")
        return reply.seconds

    async def cards(self, after: int, count: int) -> tuple[list[str], int]:
        reply = await self.request("getCards", {"after": after, "count": count}, "getCardsSuccess")
        payload = json.loads(reply.text)["payload"]
        return [card["id"] for card in payload["media"]], payload["after"]


@dataclass(frozen=True)
class Reply:
    type: str
    text: str
    seconds: float

    @property
    def kib(self) -> float:
        return len(self.text.encode()) / 1024


@asynccontextmanager
async def client(served: Served, user_name: str = "bench", window: int | None = None) -> AsyncIterator[Client]:
    """A logged-in client; ``window``: it takes decks in windows (else whole, as MovieMatch v2)."""
    # As a browser: permessage-deflate offered, no frame size limit of its own.
    async with connect(served.url, max_size=None, open_timeout=30, ping_interval=None) as socket:
        await asyncio.wait_for(socket.recv(), REPLY_TIMEOUT)  # config
        session = Client(socket)
        login = {"userName": user_name} | ({"window": window} if window else {})
        await session.request("login", login, "loginSuccess")
        yield session


# -- scenarios --------------------------------------------------------------------------------------


@dataclass
class Setup:
    """A fake media server serving one library, and a way to start MovieMatch servers against it."""

    source: str
    films: int
    media_urls: list[str]
    directory: Path
    runs: int
    rooms: int
    _servers: int = 0

    @contextmanager
    def server(self, **settings: Any) -> Iterator[Served]:
        """A fresh server process (its own rooms directory): nothing of an earlier one is cached."""
        self._servers += 1
        directory = self.directory / f"server-{self._servers}"
        directory.mkdir(parents=True)
        with moviematch(server_settings(self.source, self.media_urls) | settings, directory) as served:
            yield served


@dataclass
class Row:
    scenario: str
    source: str
    films: int
    figures: dict[str, float] = field(default_factory=dict)
    note: str = ""


async def create_rooms(setup: Setup) -> list[Row]:
    """createRoom cold (a fresh server) and cached (the same query again), median of ``runs``: as our
    web client asks (the deck in windows) and as MovieMatch v2 does (the whole deck in the reply)."""
    rows = []
    for scenario, window in CREATE_CLIENTS.items():
        cold: list[float] = []
        cached: list[float] = []
        frame = 0.0
        for run in range(setup.runs + 1):  # run 0 warms the fake media server up
            with setup.server() as served:
                async with client(served, window=window) as session:
                    first = await session.create(f"cold {run}")
                    again = await session.create(f"cached {run}")
            if run:
                cold.append(first.seconds)
                cached.append(again.seconds)
                frame = first.kib
        figures = {"cold ms": statistics.median(cold) * 1000, "cached ms": statistics.median(cached) * 1000}
        rows.append(Row(scenario, setup.source, setup.films, {**figures, "reply KiB": frame}))
    return rows


async def joins(setup: Setup) -> list[Row]:
    """joinRoom of a new member and a resume (the same member on a new connection, with its member
    token), windowed and whole: the reply's size (its text; less on the wire, compressed) and the
    time until it arrived, medians of ``runs``."""
    rows = []
    with setup.server() as served:
        async with client(served, "host", WINDOW) as host:
            await host.create("joins")
        for label, window in (("windowed", WINDOW), ("v2 whole", None)):
            new: list[Reply] = []
            resumed: list[Reply] = []
            for run in range(setup.runs + 1):  # run 0 warms the room's cards' encoded forms up
                name = f"{label} {run}"
                async with client(served, name, window) as session:
                    first = await session.join("joins")
                async with client(served, name, window) as session:
                    token = json.loads(first.text)["payload"]["memberToken"]
                    again = await session.join("joins", memberToken=token)
                if run:
                    new.append(first)
                    resumed.append(again)
            figures = {}
            for kind, replies in (("join", new), ("resume", resumed)):
                figures[f"{kind} KiB"] = statistics.median(reply.kib for reply in replies)
                figures[f"{kind} ms"] = statistics.median(reply.seconds for reply in replies) * 1000
            rows.append(Row(f"join {label}", setup.source, setup.films, figures))
    return rows


async def saves(setup: Setup) -> list[Row]:
    """Debounced saves of a room whose members rate (file storage): the time of a save (the
    server's own /metrics), and the bytes each writes (its room file, rewritten whole each time;
    the deck file is written once, at creation)."""
    rounds = max(3, setup.runs * 2)
    with setup.server(save_delay=0.2, save_max_wait=0.5) as served:
        async with client(served, "saver", 200) as session:
            created = json.loads((await session.create("saves")).text)["payload"]
            ids = [card["id"] for card in created["media"]]
            before = served.metric("moviematch_storage_write_seconds_count")
            spent = served.metric("moviematch_storage_write_seconds_sum")
            for round_number in range(rounds):
                for media_id in ids[round_number * 20 : (round_number + 1) * 20]:
                    await session.rate(media_id)
                await asyncio.sleep(0.6)  # past save_max_wait: one save per round
            count = served.metric("moviematch_storage_write_seconds_count") - before
            seconds = served.metric("moviematch_storage_write_seconds_sum") - spent
        room_files = [path for path in served.directory.glob("*.json") if path.name != "index.json"]
        decks = list(served.directory.glob("*.deck"))
    figures = {
        "save ms": seconds / max(count, 1) * 1000,
        "saves": count,
        "KiB/save": sum(path.stat().st_size for path in room_files) / 1024,
        "deck KiB (once)": sum(path.stat().st_size for path in decks) / 1024,
    }
    return [Row("save", setup.source, setup.films, figures)]


async def neighbour(setup: Setup) -> list[Row]:
    """Another room's rating round trips (a member rating every ``RATING_PACE`` s), idle, while
    ``JOINERS`` v2 clients join a room of the whole library in a loop (in a process of their own),
    and idle again, ``PHASE_SECONDS`` each; p99 busy / idle."""
    with setup.server() as served:
        async with client(served, "host", WINDOW) as host:
            await host.create("the big room")
        async with client(served, "neighbour", 200) as session:
            created = json.loads((await session.create("next door")).text)["payload"]
            after = created["window"]["after"]
            ids = [card["id"] for card in created["media"]]

            async def timed() -> list[float]:
                nonlocal after
                times: list[float] = []
                ends = time.perf_counter() + PHASE_SECONDS
                while time.perf_counter() < ends:
                    if not ids:
                        ids[:], after = await session.cards(after, 200)
                    times.append(await session.rate(ids.pop(0)))
                    await asyncio.sleep(RATING_PACE)
                return times

            idle = await timed()
            joiners = await asyncio.create_subprocess_exec(
                *(sys.executable, "-m", "bench.library", "--join-loop", served.url, "the big room", str(JOINERS)),
                stdout=subprocess.PIPE,
            )
            output = joiners.stdout
            assert output is not None
            joined = 0
            under_way = asyncio.Event()  # every joiner has joined once

            async def count_joins() -> None:
                nonlocal joined
                while await output.readline():
                    joined += 1
                    if joined >= JOINERS:
                        under_way.set()

            counting = asyncio.create_task(count_joins())
            try:
                await asyncio.wait_for(under_way.wait(), REPLY_TIMEOUT)
                started = joined
                busy = await timed()
                joined -= started
            finally:
                joiners.terminate()
                await joiners.wait()
                counting.cancel()
            idle += await timed()
    cut_idle, cut_busy = statistics.quantiles(idle, n=100), statistics.quantiles(busy, n=100)
    figures = {
        "idle p50 ms": cut_idle[49] * 1000,
        "idle p99 ms": cut_idle[98] * 1000,
        "busy p50 ms": cut_busy[49] * 1000,
        "busy p99 ms": cut_busy[98] * 1000,
    }
    ratio = cut_busy[98] / cut_idle[98]
    note = f"   p99 busy/idle {ratio:.2f}x (target <= {NEIGHBOUR_TARGET:g}x); {joined} whole-deck v2 joins meanwhile"
    return [Row("neighbour", setup.source, setup.films, figures, note)]


async def memory(setup: Setup) -> list[Row]:
    """The server's RSS idle, with one room and with ``rooms`` rooms on the library (created by a
    windowed client: the rooms' cost, not that of sending whole decks)."""
    with setup.server() as served:
        async with client(served, window=WINDOW) as session:
            idle = served.rss_mb()
            await session.create("room 0")
            one = served.rss_mb()
            for number in range(1, setup.rooms):
                await session.create(f"room {number}")
            many = served.rss_mb()
    per_room = (many - one) / max(1, setup.rooms - 1)
    figures = {"idle MB": idle, "1 room MB": one, f"{setup.rooms} rooms MB": many, "per extra room MB": per_room}
    return [Row("RSS", setup.source, setup.films, figures)]


Scenario = Callable[[Setup], Awaitable[list[Row]]]
# name -> (scenario, the library sizes it runs at: None for every size asked for)
SCENARIOS: dict[str, tuple[Scenario, Sequence[int] | None]] = {
    "create": (create_rooms, None),
    "join": (joins, None),
    "save": (saves, None),
    "memory": (memory, (100_000,)),
    "neighbour": (neighbour, (100_000,)),
}


# -- report ---------------------------------------------------------------------------------------


def report(rows: list[Row]) -> None:
    for row in rows:
        shown = "  ".join(f"{name} {value:9,.1f}" for name, value in row.figures.items())
        print(f"{row.scenario:>13} {row.source:>8} {row.films:>7,} films  {shown}{row.note}", flush=True)


def ratios(rows: list[Row]) -> None:
    """Each createRoom figure against the smallest library of the same source, client and run, and the targets."""
    print("\ncreateRoom against the smallest library of the same run (1.0x: a big library costs no more):")
    for source in dict.fromkeys(row.source for row in rows):
        for scenario in CREATE_CLIENTS:
            created = sorted((row for row in rows if row.scenario == scenario and row.source == source), key=_films)
            if not created:
                continue
            base = created[0]
            for row in created[1:]:
                shown = "  ".join(
                    f"{name} {row.figures[name] / base.figures[name]:6.1f}x" for name in ("cold ms", "cached ms")
                )
                print(f"{source:>8} {scenario:>13} {row.films:>7,} vs {base.films:,}: {shown}")
            biggest = created[-1]
            verdicts = [
                f"{kind} {biggest.figures[f'{kind} ms'] / 1000:.2f} s (target <= {limit:g} s)"
                for kind, limit in TARGETS.items()
            ]
            print(f"{source:>8} {scenario:>13} at {biggest.films:,} films: " + ", ".join(verdicts))


def guid_cost(rows: list[Row]) -> None:
    """What the Guid lists cost: Plex with them against Plex without them, at each size of the run."""
    created = {(row.source, row.films): row for row in rows if row.scenario == "createRoom"}
    pairs = [(films, row) for (source, films), row in created.items() if source == "plex"]
    if not any((("plex-noguids", films) in created) for films, _ in pairs):
        return
    print("\ncreateRoom on Plex with Guid lists against Plex without them (1.0x: they cost nothing):")
    for films, row in sorted(pairs, key=lambda pair: pair[0]):
        base = created.get(("plex-noguids", films))
        if base is not None:
            shown = "  ".join(
                f"{name} {row.figures[name] / base.figures[name]:6.2f}x"
                for name in ("cold ms", "cached ms", "reply KiB")
            )
            print(f"    plex {films:>7,}: {shown}")


def join_verdicts(rows: list[Row]) -> None:
    """The windowed joins and resumes of the biggest library against issue #14's targets."""
    windowed = sorted((row for row in rows if row.scenario == "join windowed"), key=_films)
    if not windowed:
        return
    limits = f"<= {JOIN_TARGETS['KiB']:g} KiB, <= {JOIN_TARGETS['ms']:g} ms"
    print(f"\nwindowed join and resume at the biggest library (targets {limits}):")
    for row in windowed:
        if row.films != windowed[-1].films:
            continue
        shown = ", ".join(f"{kind} {row.figures[kind]:.1f}" for kind in row.figures)
        print(f"{row.source:>8} {row.films:>7,} films: {shown}")


def _films(row: Row) -> int:
    return row.films


async def run(args: argparse.Namespace) -> None:
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as work:
        for source in args.sources:
            for size in args.sizes:
                chosen = [
                    scenario
                    for name, (scenario, sizes) in SCENARIOS.items()
                    if name in args.scenarios and (sizes is None or size in sizes)
                ]
                if not chosen:
                    continue
                directory = Path(work, f"{source}-{size}")
                with media_server(source, size) as urls:
                    setup = Setup(source, size, urls, directory, runs=args.runs, rooms=args.rooms)
                    for scenario in chosen:
                        found = await scenario(setup)
                        report(found)
                        rows += found
    ratios(rows)
    guid_cost(rows)
    join_verdicts(rows)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)), help="library sizes, comma-separated")
    parser.add_argument("--sources", default=",".join(SOURCES), help=", ".join(SOURCES))
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help=", ".join(SCENARIOS))
    parser.add_argument("--runs", type=int, default=3, help="measured runs of each createRoom (median)")
    parser.add_argument("--rooms", type=int, default=100, help="rooms on one library for the memory figure")
    parser.add_argument("--serve", nargs=2, metavar=("SOURCE", "SIZE"), help=argparse.SUPPRESS)
    parser.add_argument("--join-loop", nargs=3, metavar=("URL", "ROOM", "CLIENTS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve[0], int(args.serve[1]))
        return
    if args.join_loop:
        url, room, clients = args.join_loop
        join_in_a_loop(url, room, int(clients))
        return
    args.sizes = [int(size) for size in args.sizes.split(",")]
    args.sources = args.sources.split(",")
    args.scenarios = args.scenarios.split(",")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
