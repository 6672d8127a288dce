"""Several real server processes sharing rooms through a real redis-server (``tests.cluster``):
races between processes, a process killed with SIGKILL, and Redis restarted under running servers."""

from __future__ import annotations

import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from storage import SerializedRoom
from storage.redis import RedisStorage
from tests.cluster import Cluster, ClusterPool, cluster_pool, running
from tests.peers import Connect, Peer, over_network
from tests.services import RedisServer

pytestmark = [pytest.mark.anyio, pytest.mark.redis, pytest.mark.slow]

# Where a test is not about the default (15 s), members of a dead process leave within seconds.
SHORT_PRESENCE = {"PRESENCE_TIMEOUT": "2"}


@pytest.fixture(scope="module")
def clusters(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterPool]:
    with cluster_pool(Path(tmp_path_factory.mktemp("clusters"))) as pool:
        yield pool


def ids(media: list[dict[str, Any]]) -> list[str]:
    return [item["id"] for item in media]


async def logged_in(connect: Connect, *names: str) -> list[Peer]:
    peers: list[Peer] = []
    for name in names:
        peer = await connect(name)
        await peer.login(name)
        peers.append(peer)
    return peers


async def gather_room(room_name: str, peers: list[Peer], **request: Any) -> tuple[list[str], list[str]]:
    """The first peer creates the room, the others join in order (each seen joining by the earlier
    ones); the room's deck, and the memberToken of each peer."""
    created = await peers[0].create(room_name, **request)
    tokens = [created["memberToken"]]
    for index, peer in enumerate(peers[1:], start=1):
        tokens.append((await peer.join(room_name))["memberToken"])
        for earlier in peers[:index]:
            assert (await earlier.wait_for("userJoinedRoom"))["user"]["userName"] == peer.name
    return ids(created["media"]), tokens


async def seek(peer: Peer, message_type: str, **fields: Any) -> Any:
    """Read (and drop) messages until one of this type whose payload has these values; its payload.
    A field ``user`` compares with the payload's user name."""
    while True:
        message = await peer.next()
        payload: Any = message.get("payload")
        if message["type"] != message_type:
            continue
        seen = {**payload, "user": payload["user"]["userName"]} if "user" in fields else payload
        if all(seen.get(name) == value for name, value in fields.items()):
            return payload


async def rate(peer: Peer, media_id: str, rating: str = "like") -> tuple[str, Any]:
    """Rate, and wait for the answer: ``("ok", progress)`` when the rater's own userProgress came (the
    rating is acknowledged), else ``(name, payload)`` of its rateError. Other messages are kept."""
    await peer.send("rate", {"mediaId": media_id, "rating": rating})
    skipped = []
    try:
        while True:
            message = await peer.next()
            payload: Any = message.get("payload")
            if message["type"] == "userProgress" and payload["user"]["userName"] == peer.name:
                return "ok", payload["progress"]
            if message["type"] == "rateError":
                assert payload.get("mediaId") == media_id, f"{peer.name}: a rateError for {media_id}: {payload}"
                return payload["name"], payload
            skipped.append(message)
    finally:
        peer.backlog = skipped + peer.backlog


def raters(room: SerializedRoom, media_id: str) -> set[str]:
    return {user for user, _, _ in room.ratings.get(media_id, [])}


# -- races between processes ----------------------------------------------------------------------

RACE_ITEMS = 200


async def test_likes_racing_on_two_processes_make_exactly_one_match(clusters: ClusterPool) -> None:
    """Two members on different processes like each item at the same instant: the threshold (2) is
    reached by whichever rating is decided second, so exactly one match per item, never 0 or 2."""
    fast = {"CLUSTER_FILMS": str(RACE_ITEMS), "RATE_LIMIT_PER_SECOND": "10000", "RATE_LIMIT_BURST": "10000"}
    with clusters.cluster({**fast, **SHORT_PRESENCE}, size=2) as cluster:
        async with over_network(cluster.ws_urls) as connect:
            ann, bob = await logged_in(connect, "ann", "bob")  # ann on the first process, bob on the second
            deck, _ = await gather_room("Race", [ann, bob])
            assert len(deck) == RACE_ITEMS
            matches: dict[str, Counter[str]] = {"ann": Counter(), "bob": Counter()}
            progress: Counter[str] = Counter()
            started = time.monotonic()

            async def read_until_match(peer: Peer, media_id: str) -> None:
                while True:
                    try:
                        message = await peer.next()
                    except TimeoutError:
                        raise AssertionError(f"{peer.name}: no match for {media_id}") from None
                    payload: Any = message.get("payload")
                    if message["type"] == "userProgress":
                        progress[peer.name] += 1
                    elif message["type"] == "match":
                        assert sorted(payload["users"]) == ["ann", "bob"], payload
                        matches[peer.name][payload["media"]["id"]] += 1
                        if payload["media"]["id"] == media_id:
                            return
                    else:
                        raise AssertionError(f"{peer.name}: unexpected {message}")

            for media_id in deck:
                async with anyio.create_task_group() as tasks:
                    for peer in (ann, bob):
                        tasks.start_soon(peer.send, "rate", {"mediaId": media_id, "rating": "like"})
                async with anyio.create_task_group() as tasks:
                    for peer in (ann, bob):
                        tasks.start_soon(read_until_match, peer, media_id)
            # A second match of the last item (or a late one of any) would come now.
            for peer in (ann, bob):
                await peer.no_message(0.5)
            elapsed = time.monotonic() - started
        async with cluster.storage() as storage:
            room = await storage.get_room("Race")
    print(f"{RACE_ITEMS} racing pairs of likes in {elapsed:.2f}s")
    for name in ("ann", "bob"):
        assert set(matches[name]) == set(deck)
        duplicates = {media_id: count for media_id, count in matches[name].items() if count != 1}
        assert not duplicates, f"{name} got more than one match for {duplicates}"
        assert progress[name] == 2 * RACE_ITEMS
    assert room is not None
    assert sorted(room.matches) == sorted(deck)
    assert all(raters(room, media_id) == {"ann", "bob"} for media_id in deck)
    assert room.user_progress == {"ann": RACE_ITEMS, "bob": RACE_ITEMS}


# -- a process killed -------------------------------------------------------------------------------

LEAVE_TARGET = 30.0  # seconds, with the default presence_timeout
# Who is connected when user2 is back, and how many of the 10 items each has rated then.
CRASH_PROGRESS = {"user0": 1, "user1": 0, "user3": 0, "user4": 1, "user2": 2}


async def test_members_of_a_killed_process_leave_and_resume_elsewhere(clusters: ClusterPool) -> None:
    with clusters.cluster({}, size=3) as cluster:  # the default presence_timeout
        async with over_network(cluster.ws_urls) as connect:
            # In turn over the three processes: user2 and user5 are on the third one.
            peers = await logged_in(connect, *(f"user{n}" for n in range(6)))
            deck, tokens = await gather_room("Crash", peers)
            survivors = [peers[0], peers[1], peers[3], peers[4]]
            # The doomed members rate before the crash: user2 two items, user5 one (a match).
            assert await rate(peers[2], deck[0]) == ("ok", pytest.approx(0.1))
            assert await rate(peers[2], deck[1], "dislike") == ("ok", pytest.approx(0.2))
            assert await rate(peers[5], deck[0]) == ("ok", pytest.approx(0.1))
            for peer in survivors:
                assert (await seek(peer, "match"))["users"] == ["user2", "user5"]

            victim = cluster.processes[2]
            assert victim.process is not None
            victim.signal(signal.SIGKILL)
            killed_at = time.monotonic()
            victim.wait(timeout=10)

            async def sees_them_leave(peer: Peer) -> None:
                gone: set[str] = set()
                while gone != {"user2", "user5"}:
                    try:
                        gone.add((await seek(peer, "userLeftRoom"))["userName"])
                    except TimeoutError:  # a quiet room: Peer.next gives up after a few seconds
                        continue

            with anyio.fail_after(LEAVE_TARGET + 5):
                async with anyio.create_task_group() as tasks:
                    for peer in survivors:
                        tasks.start_soon(sees_them_leave, peer)
            elapsed = time.monotonic() - killed_at
            print(f"the killed process's members left the others' lists after {elapsed:.1f}s")
            assert elapsed < LEAVE_TARGET

            # The room goes on for the others.
            assert (await rate(peers[0], deck[2]))[0] == "ok"
            assert (await rate(peers[4], deck[2]))[0] == "ok"
            for peer in survivors:
                match = await seek(peer, "match")
                assert (match["media"]["id"], match["users"]) == (deck[2], ["user0", "user4"])

            # user2 comes back through the first process, with its memberToken, and resumes.
            async with over_network(cluster.ws_urls[:1]) as reconnect:
                [back] = await logged_in(reconnect, "user2")
                resumed = await back.join("Crash", memberToken=tokens[2])
                for peer in survivors:
                    assert (await seek(peer, "userJoinedRoom"))["user"]["userName"] == "user2"
                assert ids(resumed["media"]) == deck[2:]
                progress = {entry["user"]["userName"]: entry["progress"] for entry in resumed["users"]}
                assert progress == {name: pytest.approx(0.1 * rated) for name, rated in CRASH_PROGRESS.items()}
                assert [(m["media"]["id"], m["users"]) for m in resumed["previousMatches"]] == [
                    (deck[0], ["user2", "user5"]),
                    (deck[2], ["user0", "user4"]),
                ]
                assert (await rate(back, deck[2]))[0] == "ok"
                for peer in survivors:
                    update = await seek(peer, "match")
                    assert (update["media"]["id"], update["users"]) == (deck[2], ["user0", "user4", "user2"])


# -- Redis restarted ----------------------------------------------------------------------------------

STORM_ITEMS = 30
OUTAGE = 1.5  # seconds Redis stays down: a quick restart, well within the presence timeout


async def test_processes_ride_out_a_redis_restart(tmp_path: Path) -> None:
    (tmp_path / "redis").mkdir()
    redis = RedisServer(tmp_path / "redis", appendonly=True)
    redis.start()
    try:
        with running(
            Cluster(tmp_path / "cluster", redis.url, size=2, CLUSTER_FILMS="40", PRESENCE_TIMEOUT="5")
        ) as cluster:
            await ride_out_a_restart(cluster, redis)
    finally:
        redis.stop()


async def ride_out_a_restart(cluster: Cluster, redis: RedisServer) -> None:
    acknowledged: list[tuple[str, str]] = []  # (user, mediaId) of every rating its rater saw recorded
    async with over_network(cluster.ws_urls) as connect:
        ann, bob = await logged_in(connect, "ann", "bob")  # on different processes
        deck, _ = await gather_room("Outage", [ann, bob])
        for peer in (ann, bob):
            assert (await rate(peer, deck[0]))[0] == "ok"
            acknowledged.append((peer.name, deck[0]))
        assert (await seek(ann, "match"))["users"] == ["ann", "bob"]

        # Ann rates steadily while Redis goes down under her.
        storm = deck[1 : 1 + STORM_ITEMS]
        outcomes: dict[str, str] = {}

        async def rate_steadily() -> None:
            for media_id in storm:
                outcomes[media_id], _ = await rate(ann, media_id, "dislike")
                if outcomes[media_id] == "ok":
                    acknowledged.append(("ann", media_id))
                else:
                    return
                await anyio.sleep(0.02)

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(rate_steadily)
            await anyio.sleep(0.3)
            await anyio.to_thread.run_sync(redis.stop)
        assert list(outcomes.values()).count("ok") >= 2, f"Redis stopped too early to test anything: {outcomes}"
        assert list(outcomes.values())[-1] == "StorageUnavailable", f"the storm outlived the outage: {outcomes}"

        # While Redis is down, a rating gets a clear error.
        later = deck[1 + STORM_ITEMS :]
        name, error = await rate(bob, later[0])
        assert (name, error["mediaId"]) == ("StorageUnavailable", later[0]), error

        await anyio.sleep(OUTAGE)
        redis.start()  # the same port and directory: the append-only file is read back
        # The processes recover by themselves: ratings work again ...
        deadline = time.monotonic() + 15
        while (outcome := await rate(ann, later[1]))[0] == "StorageUnavailable":
            assert time.monotonic() < deadline, "ratings still fail 15 s after Redis came back"
            await anyio.sleep(0.2)
        assert outcome[0] == "ok", outcome
        acknowledged.append(("ann", later[1]))
        # ... and members on different processes see each other's progress and matches again.
        await seek(bob, "userProgress", user="ann", progress=outcome[1])
        outcome = await rate(bob, later[1])
        assert outcome[0] == "ok", outcome
        acknowledged.append(("bob", later[1]))
        await seek(ann, "userProgress", user="bob", progress=outcome[1])
        for peer in (ann, bob):
            match = await seek(peer, "match")
            assert (match["media"]["id"], match["users"]) == (later[1], ["ann", "bob"])
        # Nobody was taken for gone: a newcomer finds both online.
        async with over_network(cluster.ws_urls[:1]) as connect_again:
            [carl] = await logged_in(connect_again, "carl")
            joined = await carl.join("Outage")
            assert sorted(entry["user"]["userName"] for entry in joined["users"]) == ["ann", "bob", "carl"]

    # Every acknowledged rating survived the restart.
    async with RedisStorage.from_url(cluster.storage_url) as storage:
        room = await storage.get_room("Outage")
    assert room is not None
    lost = [(user, media_id) for user, media_id in acknowledged if user not in raters(room, media_id)]
    assert not lost, f"acknowledged ratings lost in the restart: {lost}"
    print(f"{len(acknowledged)} acknowledged ratings kept; storm outcomes: {Counter(outcomes.values())}")
