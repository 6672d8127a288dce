"""Redis with failover: ``redis+sentinel://`` URLs, processes that follow a failover by themselves
(the old primary killed, or frozen and back as a replica refusing writes), and changes that count
as done only once replicas confirmed them (``REDIS_MIN_REPLICAS``), on real redis-servers and
sentinels on loopback (``tests.services.SentinelSet``)."""

from __future__ import annotations

import functools
import logging
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from starlette.applications import Starlette

from server.app import create_app
from server.config import ConfigError, Settings, load_settings
from server.rooms.shared.subscriber import Subscriber
from storage import SerializedRoom, StorageError
from storage.redis import NotReplicated, RedisStorage, RedisURL, split_url
from tests.cluster import Cluster, running
from tests.failover import STORM_ENV, STORM_ROOM, Storm
from tests.fakes import eventually, log_lines
from tests.library import ListProvider
from tests.peers import Peer, in_processes
from tests.services import RedisServer, running_redis, running_sentinels

pytestmark = pytest.mark.anyio

SECRET = "s3cret-canary"
MOVED = "Redis primary of 'moviematch' moved"
# Catches a hang, no more: the failovers here take seconds (bench/failover.py measures them).
HANG = 90.0


# -- URLs and settings ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "redis+sentinel://s1,s2:26380,[::1]:26381/moviematch",
            RedisURL("redis:///0", None, (("s1", 26379), ("s2", 26380), ("::1", 26381)), "moviematch"),
        ),
        (
            f"redis+sentinel://ann:{SECRET}@s1/films/3?prefix=mm2&socket_timeout=1&sentinel_password={SECRET}",
            RedisURL(
                f"redis://ann:{SECRET}@/3?socket_timeout=1", "mm2", (("s1", 26379),), "films", {"password": SECRET}
            ),
        ),
        ("redis://r:6379/1?prefix=x", RedisURL("redis://r:6379/1", "x")),
    ],
)
def test_a_sentinel_url_names_the_sentinels_the_service_and_the_data_nodes_login(url: str, expected: RedisURL) -> None:
    assert split_url(url) == expected


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        (f"redis+sentinel://:{SECRET}@s1,s2", "give the Sentinel service and database as /service[/db]"),
        (f"redis+sentinel://:{SECRET}@s1/films/x", "give the Sentinel service and database as /service[/db]"),
        (f"redis+sentinel://:{SECRET}@s1/films/0/1", "give the Sentinel service and database as /service[/db]"),
        (f"redis+sentinel://:{SECRET}@s1,,s2/films", "bad sentinel address ''"),
        (f"redis+sentinel://:{SECRET}@s1:99999/films", "bad sentinel address 's1:99999'"),
        (f"redis+sentinel://:{SECRET}@s1:port/films", "bad sentinel address 's1:port'"),
        (f"redis+sentinel://s1/films?password={SECRET}", "unknown option(s) password"),
        (f"redis://r/0?sentinel_password={SECRET}", "unknown option(s) sentinel_password"),
    ],
)
def test_bad_sentinel_urls_are_refused_without_leaking_secrets(url: str, complaint: str) -> None:
    with pytest.raises(StorageError) as refused:
        RedisStorage.from_url(url)
    assert complaint in str(refused.value)
    assert SECRET not in str(refused.value)


def test_min_replicas_is_a_setting_of_the_redis_storage(tmp_path: Path) -> None:
    url = f"redis+sentinel://:{SECRET}@s1/films?sentinel_password={SECRET}-2"
    settings = load_settings("/dev/null", {"STORAGE_URL": url, "REDIS_MIN_REPLICAS": "1"})
    storage = settings.storage.create()
    assert isinstance(storage, RedisStorage)
    assert storage.replication.replicas == 1
    assert {SECRET, f"{SECRET}-2"} <= set(settings.secrets())  # redacted from log lines
    config = tmp_path / "config.yaml"
    config.write_text("storage:\n  url: redis://r/0\n  min_replicas: 2\n")
    from_yaml = load_settings(str(config), {}).storage.create()
    assert isinstance(from_yaml, RedisStorage)
    assert from_yaml.replication.replicas == 2
    assert Settings().storage.min_replicas == 0


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        ({"REDIS_MIN_REPLICAS": "1"}, "storage (REDIS_MIN_REPLICAS): min_replicas: only a Redis storage has replicas"),
        (
            {"STORAGE_URL": "redis://r/0", "REDIS_MIN_REPLICAS": "-1"},
            "storage.min_replicas (REDIS_MIN_REPLICAS): must be an integer of at least 0 (got '-1')",
        ),
    ],
)
def test_bad_min_replicas_settings_name_the_key(env: dict[str, str], problem: str) -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings("/dev/null", env)
    [reported] = refused.value.problems
    assert reported.startswith(problem)


# -- writes the replicas do not confirm -------------------------------------------------------------


@pytest.mark.redis
async def test_a_write_no_replica_confirms_in_time_is_a_storage_error(redis_url: str) -> None:
    """A lone redis-server has no replica to confirm anything: every write fails once WAIT gives up,
    though the primary keeps it (a failover could lose it, so nobody may be told it is done)."""
    async with RedisStorage.from_url(f"{redis_url}?prefix=unconfirmed") as storage:
        storage.require_replicas(1)
        room = SerializedRoom.model_validate({"roomName": "Unconfirmed"})
        for write in (storage.create_room, storage.save_room):
            with pytest.raises(StorageError) as refused:
                await write(room)
            assert isinstance(refused.value.__cause__, NotReplicated)
            assert "0 of the 1 required replica(s) confirmed the write within 1000 ms" in str(refused.value)
        assert await storage.get_room("Unconfirmed") == room
        with pytest.raises(StorageError):
            await storage.delete_room("Unconfirmed")
        storage.require_replicas(0)
        assert await storage.get_room("Unconfirmed") is None
        assert await storage.create_room(room) is True


def shared_app(url: str, process_id: str, min_replicas: int, **settings: Any) -> Starlette:
    return create_app(
        Settings.model_validate({"storage": {"url": url, "min_replicas": min_replicas}, **settings}),
        provider=ListProvider(),
        rng=random.Random(7),
        process_id=process_id,
    )


Members = tuple[tuple[Starlette, Starlette], Peer, Peer, list[str]]


@asynccontextmanager
async def two_members(url: str, min_replicas: int = 0, **settings: Any) -> AsyncIterator[Members]:
    """Apps "first" and "second" on ``url``; ann (on the first) created a room, bob (on the second)
    joined it; its deck."""
    first, second = (shared_app(url, name, min_replicas, **settings) for name in ("first", "second"))
    async with in_processes(first, second) as (on_first, on_second):
        ann, bob = await on_first("ann"), await on_second("bob")
        await ann.login("ann")
        await bob.login("bob")
        deck = [item["id"] for item in (await ann.create("Replicated"))["media"]]
        await bob.join("Replicated")
        await ann.wait_for("userJoinedRoom")
        yield (first, second), ann, bob, deck


async def answer(peer: Peer, media_id: str) -> tuple[str, Any]:
    """Rate ``media_id`` (like) and return the first answer: ``("ok", progress)`` for the rater's own
    userProgress, else the rateError's name and payload. Other messages are kept for later."""
    await peer.send("rate", {"mediaId": media_id, "rating": "like"})
    kind, payload = await peer.wait_for_any("rateError", "userProgress")
    while kind == "userProgress" and payload["user"]["userName"] != peer.name:
        kind, payload = await peer.wait_for_any("rateError", "userProgress")
    return ("ok", payload["progress"]) if kind == "userProgress" else (payload["name"], payload)


def replicating(replica: RedisServer) -> bool:
    with replica.client() as client:
        return bool(client.info("replication")["master_link_status"] == "up")


@pytest.mark.redis
@pytest.mark.slow
async def test_a_rating_the_replica_does_not_confirm_is_refused_and_the_room_read_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    logged = log_lines(caplog, "server.rooms.shared")
    for name in ("primary", "replica"):
        (tmp_path / name).mkdir()
    with running_redis(tmp_path / "primary") as primary:
        replica = RedisServer(tmp_path / "replica", args=["--replicaof", "127.0.0.1", str(primary.port)])
        replica.start()
        try:
            await eventually(lambda: replicating(replica), HANG)
            async with two_members(f"{primary.url}?prefix=unconfirmed", min_replicas=1) as (_, ann, bob, deck):
                # Confirmed: ann's own userProgress is the acknowledgement, and bob sees it.
                assert await answer(ann, deck[0]) == ("ok", pytest.approx(0.1))
                assert await bob.progress_of("ann") == pytest.approx(0.1)

                replica.freeze()
                try:
                    # Not confirmed in time: ann is told it could not be recorded, before anything else.
                    outcome, error = await answer(ann, deck[1])
                    assert outcome == "StorageUnavailable", error
                    # The script published its event before the WAIT: bob's process applied it at once.
                    assert await bob.progress_of("ann") == pytest.approx(0.2)
                    # Ann's process dropped it and read the room: the primary kept the rating, so ann
                    # is shown it, and trying again finds it recorded.
                    assert await ann.progress_of("ann") == pytest.approx(0.2)
                    assert (await answer(ann, deck[1]))[0] == "AlreadyRated"
                    assert (await answer(ann, deck[3]))[0] == "StorageUnavailable"
                    assert await ann.progress_of("ann") == pytest.approx(0.3)
                    assert await bob.progress_of("ann") == pytest.approx(0.3)
                finally:
                    replica.freeze(False)
                assert await answer(ann, deck[2]) == ("ok", pytest.approx(0.4))
                assert await bob.progress_of("ann") == pytest.approx(0.4)
        finally:
            replica.stop()
    # Once for the outage, once when it is over (ann's process; bob's changed nothing meanwhile).
    assert logged(logging.ERROR) == [
        "changes are refused until the replicas confirm them again: "
        "0 of the 1 required replica(s) confirmed the write within 1000 ms"
    ]
    assert logged(logging.WARNING) == ["the replicas confirm changes again"]


def subscribers(server: RedisServer) -> int:
    """Pub/sub connections of the processes on ``server`` (the sentinels' own are left out)."""
    with server.client() as client:
        connections = client.client_list()
    return sum(1 for c in connections if int(c["sub"]) > 0 and not c["name"].startswith("sentinel"))


async def health(app: Starlette) -> tuple[int, dict[str, Any]]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
        response = await client.get("/health")
    return response.status_code, response.json()


async def healthy_as(app: Starlette, expected: tuple[int, dict[str, Any]]) -> bool:
    status, body = await health(app)
    return (status, body["redis"]) == expected


def errors(server: RedisServer, code: str) -> int:
    """How many commands ``server`` refused with this error code (NOSCRIPT, READONLY ...)."""
    with server.client() as client:
        stats: dict[str, dict[str, int]] = client.info("errorstats")
    return stats.get(f"errorstat_{code}", {}).get("count", 0)


async def rate_across(ann: Peer, bob: Peer, media_id: str, progress: float) -> None:
    """Both like ``media_id`` (ann's progress becomes ``progress``), each seeing the other: a match."""
    with anyio.fail_after(HANG):
        assert await answer(ann, media_id) == ("ok", pytest.approx(progress))
        assert await bob.progress_of("ann") == pytest.approx(progress)
        assert (await answer(bob, media_id))[0] == "ok"
        assert await ann.progress_of("bob") == pytest.approx(progress)
        for peer in (ann, bob):
            assert (await peer.wait_for("match"))["media"]["id"] == media_id


async def followed(apps: tuple[Starlette, Starlette], moved: list[str], old: RedisServer, new: RedisServer) -> None:
    """Both apps logged the move once, say so in /health, are subscribed on the new primary, and read
    their room again (events may have been missed)."""
    assert (
        moved == [f"{MOVED} from 127.0.0.1:{old.port} to 127.0.0.1:{new.port} (a Sentinel failover): following it"] * 2
    )
    await eventually(lambda: (subscribers(new), subscribers(old)) == (2, 0), HANG)
    expected = (200, {"service": "moviematch", "primary": f"127.0.0.1:{new.port}", "failovers": 1})
    for app in apps:
        # Unhealthy (503) until its subscription on the new primary is confirmed, which the ratings
        # before did not wait for: the demoted primary passed their events on meanwhile.
        await eventually(functools.partial(healthy_as, app, expected), HANG)
    # The read follows the subscription's confirmation in a task of its own.
    await eventually(lambda: all(app.state.context.metrics.room_rereads >= 1 for app in apps), HANG)


# The processes stay quiet while the primary is away (no heartbeat due, no subscription ping), so
# that what they find when they speak again is what the test arranged.
QUIET = {"presence_timeout": 300}


@pytest.mark.redis
@pytest.mark.slow
async def test_a_frozen_primary_is_failed_over_and_comes_back_as_a_replica(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The primary freezes (its host cut off) and Sentinel fails over; when it comes back, Sentinel
    makes it a replica of the new primary and drops its clients: the processes reconnect through
    Sentinel, load their scripts on the new primary (a promoted replica has none) and subscribe there."""
    monkeypatch.setattr(Subscriber, "PING_EVERY", 120.0)
    logged = log_lines(caplog, "storage.redis")
    with running_sentinels(tmp_path / "redis") as servers:
        async with two_members(servers.url(), **QUIET) as (apps, ann, bob, deck):
            await rate_across(ann, bob, deck[0], 0.1)
            old = servers.primary()
            assert subscribers(old) == 2
            old.freeze()
            try:
                new = await anyio.to_thread.run_sync(servers.wait_for_failover, old)
            finally:
                old.freeze(False)
            await anyio.to_thread.run_sync(servers.wait_until_settled, new)
            assert old.role() == "slave"
            await rate_across(ann, bob, deck[1], 0.2)
            assert errors(new, "NOSCRIPT") >= 2  # each process found its scripts missing, and loaded them
            await followed(apps, logged(logging.WARNING), old, new)


@pytest.mark.redis
@pytest.mark.slow
async def test_writes_a_demoted_primary_refuses_with_readonly_move_to_the_new_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The primary is demoted while the processes' connections to it stay open (a switch by hand:
    Sentinel itself drops the clients of a server it demotes). Their next write gets READONLY: they
    leave it for the primary Sentinel names, and re-subscribe there too (the demoted one still
    passes on what it replicates, but would not say what it missed)."""
    monkeypatch.setattr(Subscriber, "PING_EVERY", 120.0)
    logged = log_lines(caplog, "storage.redis")
    with running_sentinels(tmp_path / "redis") as servers:
        async with two_members(servers.url(), **QUIET) as (apps, ann, bob, deck):
            await rate_across(ann, bob, deck[0], 0.1)
            old = servers.primary()
            new = next(server for server in servers.servers if server is not old)
            await anyio.to_thread.run_sync(servers.switch_by_hand, new)
            assert subscribers(old) == 2
            await rate_across(ann, bob, deck[1], 0.2)
            assert errors(old, "READONLY") >= 2  # one write of each process, then sent to the new primary
            await followed(apps, logged(logging.WARNING), old, new)


# -- the primary killed in a rating storm --------------------------------------------------------


@pytest.mark.redis
@pytest.mark.slow
@pytest.mark.timeout(4 * HANG)
@pytest.mark.parametrize("min_replicas", [1, 0])
async def test_two_processes_serve_again_after_the_primary_is_killed_in_a_rating_storm(
    tmp_path: Path, min_replicas: int
) -> None:
    """With one replica required, no rating its rater was told of is lost; without, some may be
    (bench/failover.py counts them): the processes serve again either way."""
    with running_sentinels(tmp_path / "redis") as servers:
        env = {**STORM_ENV, "REDIS_MIN_REPLICAS": str(min_replicas)}
        with running(Cluster(tmp_path / "cluster", servers.url(), size=2, **env)) as cluster:
            old = servers.primary()
            with anyio.fail_after(HANG):
                outcome = await Storm(cluster).run(old.kill)
            new = await anyio.to_thread.run_sync(servers.wait_for_failover, old)
            async with cluster.storage() as storage:
                room = await storage.get_room(STORM_ROOM)
            assert room is not None
            lost = outcome.lost(room)
            served = outcome.served_after()
            print(
                f"min_replicas={min_replicas}: {len(outcome.acknowledged())} ratings acknowledged, {len(lost)} lost; "
                f"served again after {served} s; refused: {outcome.refusals()}"
            )
            assert sorted(served) == [0, 1], "a process never served again"
            if min_replicas:
                assert not lost, f"acknowledged ratings lost in the failover: {lost}"
            expected = {"service": "moviematch", "primary": f"127.0.0.1:{new.port}", "failovers": 1}
            async with httpx.AsyncClient() as client:
                for process in cluster.processes:
                    response = await client.get(f"{process.http_url}/health")
                    assert (response.status_code, response.json()["redis"]) == (200, expected)
                    assert process.output().count(MOVED) == 1
