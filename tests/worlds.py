"""The servers the protocol tests run against ("worlds"), and how a test reaches them.

- ``in_process``: the app in this event loop, memory storage;
- ``shared_in_memory``: two apps in this event loop sharing rooms through the in-memory stand-in
  for Redis, connections spread over them in turn;
- ``file_process``: one real server process on file storage, over the network;
- ``three_processes``: three real server processes sharing rooms through a real redis-server,
  connections spread over them in turn.

Every test of a process variant gets fresh processes and (on Redis) a fresh key prefix: the same
isolation as a fresh in-process app. The next test's processes are started while a test runs.
"""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
import redis.asyncio
from starlette.applications import Starlette

from server.app import create_app
from server.config import Settings
from server.rooms.local import LocalChanges
from server.rooms.shared import Live, MemoryHub, MemoryLive, RedisLive
from storage import MemoryStorage, SerializedRoom, Storage, create_storage
from tests.cluster import ClusterPool, ClusterProcess, cluster_pool
from tests.cluster_server import SwitchableProvider
from tests.library import ListProvider
from tests.peers import Connect, Peer, in_process, in_processes, over_network


class World:
    def __init__(
        self,
        connect: Connect,
        storage: Storage,
        provider: ListProvider,
        flush: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        self.connect = connect
        self.storage = storage
        self.provider = provider  # `provider.fail = True` takes the library down (in every process)
        self._flush = flush

    async def user(self, name: str) -> Peer:
        peer = await self.connect(name)
        await peer.login(name)
        return peer

    async def room_of(self, room_type: str = "standard", members: int = 2, **request: Any) -> list[Peer]:
        """The first peer created the room 'Movie Night'; the others joined in order."""
        peers = [await self.user(f"user{i}") for i in range(members)]
        await peers[0].create("Movie Night", roomType=room_type, **request)
        for index, peer in enumerate(peers[1:], start=1):
            await peer.join("Movie Night")
            for earlier in peers[:index]:
                await earlier.expect("userJoinedRoom")
        return peers

    async def stored(self, room_name: str) -> SerializedRoom:
        """The room as stored once the server has written everything it acknowledged. The in-process
        server writes a changed room after ``save_delay``: it is flushed first. The processes of a
        cluster decide every change in Redis before announcing it."""
        if self._flush is not None:
            await self._flush()
        room = await self.storage.get_room(room_name)
        assert room is not None, f"{room_name} is not stored"
        return room


def settings(**overrides: Any) -> Settings:
    return Settings.model_validate(overrides)


def environment(overrides: dict[str, Any]) -> dict[str, str]:
    """Settings overrides as the environment variables of a server process. ``servers`` may name one
    Plex server (``PLEX_URL``, ``PLEX_TOKEN``), which the process then serves instead of the test library."""
    env: dict[str, str] = {}
    for name, value in overrides.items():
        if name == "servers":
            [server] = value
            env |= {"PLEX_URL": server["url"], "PLEX_TOKEN": server["token"], "CLUSTER_LIBRARY": "servers"}
        else:
            env[name.upper()] = str(value).lower() if isinstance(value, bool) else str(value)
    return env


def media(overrides: dict[str, Any], library: ListProvider) -> ListProvider | None:
    """What the apps of a world serve: the test library, unless the settings name media servers."""
    return None if overrides.get("servers") else library


@pytest.fixture(scope="module")
def clusters(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterPool]:
    with cluster_pool(Path(tmp_path_factory.mktemp("clusters")), prefetch=True) as pool:
        yield pool


def rising_clock() -> Callable[[], int]:
    """Wall-clock milliseconds that never repeat: two events of one test are never simultaneous,
    and time still passes (absences, offers that expire) as for a real server."""
    last = 0

    def now_ms() -> int:
        nonlocal last
        last = max(last + 1, time.time_ns() // 1_000_000)
        return last

    return now_ms


def in_process_world(**overrides: Any) -> AsyncIterator[World]:
    storage = MemoryStorage()
    provider = ListProvider()
    clock = rising_clock()
    app = create_app(
        settings(**overrides), storage=storage, provider=media(overrides, provider), now_ms=clock, rng=random.Random(7)
    )
    changes = app.state.context.registry.changes
    assert isinstance(changes, LocalChanges)

    async def open_world() -> AsyncIterator[World]:
        async with in_process(app) as connect:
            yield World(connect, storage, provider, flush=changes.saver.flush)

    return open_world()


def shared_in_memory_world(**overrides: Any) -> AsyncIterator[World]:
    """Two apps ("processes") sharing their rooms through one ``MemoryHub``."""
    storage = MemoryStorage()
    provider = ListProvider()
    clock = rising_clock()
    hub = MemoryHub(storage)
    apps = [
        create_app(
            settings(**overrides),
            storage=storage,
            provider=media(overrides, provider),
            now_ms=clock,
            rng=random.Random(7),
            live=MemoryLive(hub, f"process-{number}"),
        )
        for number in range(2)
    ]

    async def open_world() -> AsyncIterator[World]:
        async with in_processes(*apps) as connects:
            turns = itertools.cycle(connects)

            async def connect(name: str = "") -> Peer:
                return await next(turns)(name)

            yield World(connect, storage, provider)

    return open_world()


def three_process_world(pool: ClusterPool, **overrides: Any) -> AsyncIterator[World]:
    async def open_world() -> AsyncIterator[World]:
        with pool.cluster(environment(overrides)) as cluster:
            async with cluster.storage() as storage, over_network(cluster.ws_urls) as connect:
                yield World(connect, storage, cluster.provider())

    return open_world()


def file_process_world(directory: Path, **overrides: Any) -> AsyncIterator[World]:
    """One real server process on file storage, with the test library. Its room files are the
    process's own while it runs: ``world.storage`` is not for reading them."""

    async def open_world() -> AsyncIterator[World]:
        rooms = directory / "rooms"
        flag = directory / "library-down"
        env = {"STORAGE_URL": f"file:{rooms}", "CLUSTER_FAIL_FLAG": str(flag), **environment(overrides)}
        process = ClusterProcess(directory / "process", **env)
        process.start()
        try:
            async with over_network([process.ws_url]) as connect:
                yield World(connect, create_storage(f"file:{rooms}"), SwitchableProvider(flag=flag))
        finally:
            process.stop()
            print(process.output())

    return open_world()


THREE_PROCESSES = pytest.param("three_processes", marks=[pytest.mark.redis, pytest.mark.slow])
FILE_PROCESS = pytest.param("file_process", marks=pytest.mark.slow)


def _world_of(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[..., AsyncIterator[World]]:
    if request.param == "in_process":
        return in_process_world
    if request.param == "shared_in_memory":
        return shared_in_memory_world
    if request.param == "file_process":
        return lambda **overrides: file_process_world(tmp_path, **overrides)
    pool: ClusterPool = request.getfixturevalue("clusters")  # skips without redis-server (fails under CI=true)
    return lambda **overrides: three_process_world(pool, **overrides)


@pytest.fixture(params=["in_process", "shared_in_memory", FILE_PROCESS, THREE_PROCESSES])
def live_world(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[..., AsyncIterator[World]]:
    """Every kind of server, real processes on files and on Redis included (what a test that
    plays an attacker against a running server uses)."""
    return _world_of(request, tmp_path)


@pytest.fixture(params=["in_process", "shared_in_memory", THREE_PROCESSES])
def make_world(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[..., AsyncIterator[World]]:
    return _world_of(request, tmp_path)


@pytest.fixture
async def world(make_world: Callable[..., AsyncIterator[World]]) -> AsyncIterator[World]:
    async for opened in make_world():
        yield opened


# -- several processes sharing rooms, as the shared-room tests drive them ---------------------------


class Shared:
    """Where the processes of a test share their rooms, and what a test does to it."""

    def app(self, process_id: str, **overrides: Any) -> Starlette:
        raise NotImplementedError

    def live(self, app: Starlette, process_id: str) -> Live:
        """Another process's operations on the same rooms (the app must be running)."""
        raise NotImplementedError

    async def lose_subscriptions(self) -> None:
        """Every process loses its subscription for a moment; events published meanwhile are missed."""
        raise NotImplementedError

    async def stored(self, app: Starlette, room_name: str = "Movie Night") -> SerializedRoom | None:
        storage: Storage = app.state.context.storage
        return await storage.get_room(room_name)


class InMemory(Shared):
    def __init__(self) -> None:
        self.storage = MemoryStorage()
        self.hub = MemoryHub(self.storage)
        self.lives: dict[str, MemoryLive] = {}

    def app(self, process_id: str, **overrides: Any) -> Starlette:
        live = self.lives[process_id] = MemoryLive(self.hub, process_id)
        settings = Settings.model_validate(overrides)
        return create_app(settings, storage=self.storage, provider=ListProvider(), rng=random.Random(3), live=live)

    def live(self, app: Starlette, process_id: str) -> Live:
        return MemoryLive(self.hub, process_id)

    async def lose_subscriptions(self) -> None:
        subscriptions = [one for live in self.lives.values() for one in live.subscriptions]
        for subscription in subscriptions:
            subscription.cut()
        await anyio.sleep(0.05)
        for subscription in subscriptions:
            subscription.restore()


class OnRedis(Shared):
    def __init__(self, url: str, prefix: str) -> None:
        self.url = url
        self.prefix = prefix

    def app(self, process_id: str, **overrides: Any) -> Starlette:
        settings = Settings.model_validate({"storage": {"url": f"{self.url}?prefix={self.prefix}"}, **overrides})
        return create_app(settings, provider=ListProvider(), rng=random.Random(3), process_id=process_id)

    def live(self, app: Starlette, process_id: str) -> Live:
        return RedisLive(app.state.context.storage, process_id)

    async def lose_subscriptions(self) -> None:
        raw = redis.asyncio.Redis.from_url(self.url, decode_responses=True)
        for client in await raw.client_list():
            if int(client.get("sub", 0)) > 0:
                await raw.client_kill_filter(_id=client["id"])
        await raw.aclose()


@pytest.fixture(params=["in_memory", pytest.param("redis", marks=pytest.mark.redis)])
def shared(request: pytest.FixtureRequest) -> Shared:
    if request.param == "in_memory":
        return InMemory()
    url: str = request.getfixturevalue("redis_url")
    return OnRedis(url, f"t-{abs(hash(request.node.nodeid))}")
