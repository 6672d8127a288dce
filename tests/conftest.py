from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.services import RedisServer, running_redis

# The servers protocol tests run against, for every test module (tests/worlds.py).
from tests.worlds import clusters, live_world, make_world, shared, world  # noqa: F401

# Fixtures that start (or reuse) a redis-server: a test using any of them needs the binary.
REDIS_FIXTURES = frozenset({"redis_server", "redis_url", "clusters"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that needs redis-server carries the ``redis`` marker (``-m "not redis"`` runs the
    rest); tests that start one themselves carry it explicitly."""
    for item in items:
        if REDIS_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.redis)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with running_redis(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """A clean database on the session's redis-server."""
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    return redis_server.url


@pytest.fixture
def rooms_dir(tmp_path: Path) -> Path:
    return tmp_path / "rooms"
