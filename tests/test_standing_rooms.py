"""Standing rooms (config.yaml's ``rooms``): there from startup, the host's, never expiring, listed
in the lobby; following their definition across restarts and their library while open, for every
member alike; with one process on its own storage, several sharing rooms (the in-memory stand-in
for Redis, and a real redis-server), and real server processes on files and on Redis."""

from __future__ import annotations

import random
import signal
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest
import yaml
from starlette.applications import Starlette

from server.app import create_app
from server.config import ConfigError, Settings
from server.identity import HOST
from server.rooms.standing import StandingRooms
from storage import MemoryStorage, SerializedRoom, Storage
from tests.cluster import ROOT, Cluster, ClusterProcess, running
from tests.library import ListProvider, film
from tests.peers import Connect, Peer, in_process, in_processes, over_network
from tests.worlds import InMemory, OnRedis, Shared

pytestmark = pytest.mark.anyio

KIDS = {"name": "Kids", "filters": [{"key": "genre", "operator": "=", "value": "Comedy"}]}
COMEDIES = {f"test:{number}" for number in (1, 3, 5, 7, 9)}


class Alone(Shared):
    """One process on its own storage (rooms decided and saved by ``LocalChanges``); a second
    app on the same storage is the process restarted."""

    def __init__(self) -> None:
        self.storage = MemoryStorage()

    def app(self, process_id: str, **overrides: Any) -> Starlette:
        settings = Settings.model_validate(overrides)
        return create_app(settings, storage=self.storage, provider=ListProvider(), rng=random.Random(3))


@pytest.fixture(params=["alone", "in_memory", pytest.param("redis", marks=pytest.mark.redis)])
def backend(request: pytest.FixtureRequest) -> Shared:
    if request.param == "alone":
        return Alone()
    if request.param == "in_memory":
        return InMemory()
    url: str = request.getfixturevalue("redis_url")
    return OnRedis(url, f"t-{abs(hash(request.node.nodeid))}")


def library(app: Starlette) -> ListProvider:
    provider: ListProvider = app.state.context.provider.providers["test"]
    return provider


def standing(app: Starlette) -> StandingRooms:
    rooms: StandingRooms | None = app.state.context.standing
    assert rooms is not None
    return rooms


async def stored(app: Starlette, name: str = "Kids") -> SerializedRoom:
    changes = app.state.context.registry.changes
    saver = getattr(changes, "saver", None)
    if saver is not None:
        await saver.flush()
    storage: Storage = app.state.context.storage
    room = await storage.get_room(name)
    assert room is not None
    return room


async def user(connect: Any, name: str) -> Peer:
    peer: Peer = await connect(name)
    await peer.login(name)
    return peer


async def drain(peer: Peer, quiet: float = 0.3) -> None:
    """Read (and drop) whatever the peer has been sent, until it has been sent nothing for ``quiet`` s."""
    peer.backlog.clear()
    while True:
        with anyio.move_on_after(quiet):
            await peer.socket.receive_text()
            continue
        return


def ids(media: list[dict[str, Any]]) -> list[str]:
    return [item["id"] for item in media]


async def test_a_standing_room_is_there_from_startup_and_belongs_to_the_host(backend: Shared) -> None:
    app = backend.app("one", rooms=[KIDS])
    async with in_process(app) as connect:
        ann = await user(connect, "ann")
        await ann.send("listRooms")
        listed = {"roomName": "Kids", "standing": True, "roomType": "standard", "hasPassword": False}
        assert await ann.expect("listRoomsSuccess") == {"rooms": [listed]}
        joined = await ann.join("Kids")
        assert set(ids(joined["media"])) == COMEDIES
        assert "roomOwner" not in joined  # no member owns it
        await ann.send("deleteRoom", {"roomName": "Kids"})
        assert (await ann.expect("deleteRoomError"))["name"] == "NotRoomOwner"
        await ann.send("createRoom", {"roomName": "KIDS"})
        assert (await ann.wait_for("createRoomError"))["name"] == "RoomExistsError"
        await ann.send("pickForUs", {"again": True})
        assert (await ann.wait_for("pickForUsError"))["name"] == "NoMatches"
        room = await stored(app)
        assert room.owner == HOST
        assert joined["joinCode"] == room.join_code is not None  # given at creation, as any room's
        bob = await user(connect, "bob")
        assert (await bob.join(room.join_code))["roomName"] == "Kids"


async def test_the_lobby_listing_needs_a_login() -> None:
    app = Alone().app("one", rooms=[{**KIDS, "password": "popcorn"}])
    async with in_process(app) as connect:
        anonymous = await connect("anonymous")
        await anonymous.send("listRooms")
        assert (await anonymous.expect("listRoomsError"))["name"] == "NotLoggedInError"
        await anonymous.login("ann")
        await anonymous.send("listRooms")
        [listed] = (await anonymous.expect("listRoomsSuccess"))["rooms"]
        assert listed["hasPassword"] is True
        assert "popcorn" not in str(listed)


@asynccontextmanager
async def two_processes(backend: Shared, **overrides: Any) -> AsyncIterator[tuple[list[Starlette], Connect, Connect]]:
    """Two processes sharing the rooms, each connected to by one end; alone, one process for both."""
    if isinstance(backend, Alone):
        app = backend.app("one", **overrides)
        async with in_process(app) as connect:
            yield [app], connect, connect
        return
    apps = [backend.app("first", **overrides), backend.app("second", **overrides)]
    async with in_processes(*apps) as (on_first, on_second):
        yield apps, on_first, on_second


async def test_new_films_join_the_deck_for_everyone_in_the_same_order_and_keep_progress(backend: Shared) -> None:
    async with two_processes(backend, rooms=[KIDS]) as (apps, on_first, on_second):
        first = apps[0]
        ann, bob = await user(on_first, "ann"), await user(on_second, "bob")
        joined = await ann.join("Kids")
        deck, joined_code = ids(joined["media"]), joined["joinCode"]
        await bob.join("Kids")
        await ann.wait_for("userJoinedRoom")
        for media_id in deck[:3]:
            await ann.send("rate", {"mediaId": media_id, "rating": "like"})
            await ann.wait_for("userProgress")
        await bob.send("rate", {"mediaId": deck[0], "rating": "like"})
        for peer in (ann, bob):
            await peer.wait_for("match")
            await drain(peer)
        for app in apps:  # the library, as every process sees it: two comedies more, one gone
            provider = library(app)
            provider.items = [item for item in provider.items if item.id != deck[1]]
            provider.items += [film(11), film(12), film(13)]
        await standing(first).upkeep(decks=True)
        told = [await peer.expect("roomChanged") for peer in (ann, bob)]
        assert told[0]["added"] == told[1]["added"]
        assert set(ids(told[0]["added"])) == {"test:11", "test:13"}
        assert [change["removed"] for change in told] == [[deck[1]], [deck[1]]]
        # Progress: the ratings of films still in the deck, over its new size (six films); the
        # match of deck[0] stands (no matchRemoved).
        for peer in (ann, bob):
            told_progress = [await peer.expect("userProgress") for _ in range(2)]
            progress = {told["user"]["userName"]: told["progress"] for told in told_progress}
            assert progress == {"ann": pytest.approx(2 / 6), "bob": pytest.approx(1 / 6)}
            await peer.no_message()
        room = await stored(first)
        assert room.join_code == joined_code
        assert room.media_ids == [*deck[:1], *deck[2:], *ids(told[0]["added"])]
        assert set(room.ratings) == {deck[0], deck[1], deck[2]}  # every rating kept
        assert room.user_progress == {"ann": 2, "bob": 1}
        assert list(room.matches) == [deck[0]]
        # A member joining (or coming back) gets the deck as everyone has it, minus what they rated.
        carl = await user(on_second, "carl")
        assert ids((await carl.join("Kids"))["media"]) == room.media_ids
        await ann.send("rate", {"mediaId": told[0]["added"][0]["id"], "rating": "dislike"})
        assert (await bob.wait_for("userProgress"))["user"]["userName"] == "ann"


async def test_a_member_taking_windows_is_dealt_again_when_films_leave(backend: Shared) -> None:
    """Films leaving move every later film's position: a connection taking the deck in windows
    gets the new deck's first window from where it is (its old positions would skip films), while
    films that are only added come through the windows, and a v2 connection gets the changes."""
    async with two_processes(backend, rooms=[KIDS]) as (apps, on_first, on_second):
        ann = await on_first("ann")
        await ann.send("login", {"userName": "ann", "window": 2})
        await ann.expect("loginSuccess")
        bob = await user(on_second, "bob")  # the whole deck, as MovieMatch v2
        joined = await ann.join("Kids")
        deck = ids(joined["media"])
        assert joined["window"] == {"after": 2, "more": True}
        whole = ids((await bob.join("Kids"))["media"])
        assert whole[:2] == deck
        await ann.send("rate", {"mediaId": deck[0], "rating": "like"})
        await ann.wait_for("userProgress")
        await drain(ann)
        await drain(bob)
        for app in apps:  # a film after ann's window leaves; one is added
            provider = library(app)
            provider.items = [item for item in provider.items if item.id != whole[3]]
            provider.items += [film(11)]
        await standing(apps[0]).upkeep(decks=True)
        dealt = await ann.expect("roomChanged")
        assert dealt["removed"] == [whole[3]]
        assert dealt["added"] == []
        assert dealt["window"] == {"after": 3, "more": True}
        assert ids(dealt["media"]) == [whole[1], whole[2]]  # from her first unrated film
        await ann.send("getCards", {"after": dealt["window"]["after"]})
        more = await ann.wait_for("getCardsSuccess")
        assert ids(more["media"]) == [whole[4], "test:11"]
        told = await bob.expect("roomChanged")
        assert (ids(told["added"]), told["removed"], "window" in told) == (["test:11"], [whole[3]], False)


async def test_a_library_that_did_not_change_changes_nothing(backend: Shared) -> None:
    app = backend.app("one", rooms=[KIDS])
    async with in_process(app) as connect:
        ann = await user(connect, "ann")
        await ann.join("Kids")
        before = await stored(app)
        await standing(app).upkeep(decks=True)
        await ann.no_message()
        assert await stored(app) == before


async def test_opening_a_standing_room_brings_its_deck_up_to_date(backend: Shared) -> None:
    app = backend.app("one", rooms=[KIDS])
    async with in_process(app) as connect:
        library(app).items.append(film(11))
        ann = await user(connect, "ann")
        joined = await ann.join("Kids")
        assert ids(joined["media"])[-1] == "test:11"
        assert len(joined["media"]) == 6


async def test_the_room_follows_its_definition_across_restarts(backend: Shared) -> None:
    app = backend.app("one", rooms=[KIDS])
    async with in_process(app) as connect:
        ann, bob = await user(connect, "ann"), await user(connect, "bob")
        deck = ids((await ann.join("Kids"))["media"])
        await bob.join("Kids")
        for peer in (ann, bob):
            await peer.send("rate", {"mediaId": deck[0], "rating": "like"})
            await peer.send("rate", {"mediaId": deck[1], "rating": "dislike"})
        for _ in range(4):
            await ann.wait_for("userProgress")
        created = await stored(app)
    # Restarted with every film, three likes to a match, a password, and a like cap.
    changed = {"name": "Kids", "match_threshold": 3, "password": "popcorn", "end_conditions": {"likes": 4}}
    app = backend.app("one", rooms=[changed])
    async with in_process(app) as connect:
        room = await stored(app)
        assert (room.media_seed, room.created_at, room.members.keys()) == (
            created.media_seed,
            created.created_at,
            created.members.keys(),
        )
        assert set(room.media_ids or []) == {f"test:{number}" for number in range(1, 11)}
        assert room.ratings == created.ratings
        assert room.user_progress == {"ann": 2, "bob": 2}
        assert room.matches == {}  # two likes no longer make a match
        assert (room.match_threshold, room.like_cap, room.owner) == (3, 4, HOST)
        ann = await user(connect, "ann")
        await ann.send("joinRoom", {"roomName": "Kids"})
        assert (await ann.expect("joinRoomError"))["name"] == "AccessDeniedError"
        joined = await ann.join("Kids", password="popcorn")
        assert set(ids(joined["media"])) == set(room.media_ids or []) - {deck[0], deck[1]}
        assert joined["rules"] == {"roomType": "standard", "matchThreshold": 3, "likeCap": 4}
        assert joined["previousMatches"] == []
        assert joined["likesLeft"] == 3
        password_hash = room.password_hash
    # The same definition again: nothing changes, the password's hash included.
    app = backend.app("one", rooms=[changed])
    async with in_process(app):
        assert (await stored(app)).password_hash == password_hash
    # Another password replaces it.
    app = backend.app("one", rooms=[{**changed, "password": "butter"}])
    async with in_process(app) as connect:
        assert (await stored(app)).password_hash != password_hash
        ann = await user(connect, "ann")
        await ann.send("joinRoom", {"roomName": "Kids", "password": "popcorn"})
        assert (await ann.expect("joinRoomError"))["name"] == "AccessDeniedError"
        await ann.join("Kids", password="butter")
    # Taken out of the file: an ordinary room, still the host's.
    app = backend.app("one")
    async with in_process(app) as connect:
        ann = await user(connect, "ann")
        await ann.send("listRooms")
        assert await ann.expect("listRoomsSuccess") == {"rooms": []}
        await ann.join("Kids", password="butter")
        await ann.send("deleteRoom", {"roomName": "Kids"})
        assert (await ann.expect("deleteRoomError"))["name"] == "NotRoomOwner"
        assert (await stored(app)).match_threshold == 3


@pytest.mark.parametrize("shared", ["in_memory", pytest.param("redis", marks=pytest.mark.redis)], indirect=True)
async def test_members_on_another_process_see_a_new_definition_when_it_starts(shared: Shared) -> None:
    first = shared.app("first", rooms=[KIDS])
    async with in_process(first) as on_first:
        ann, bob = await user(on_first, "ann"), await user(on_first, "bob")
        deck = ids((await ann.join("Kids"))["media"])
        await bob.join("Kids")
        for peer in (ann, bob):
            await peer.send("rate", {"mediaId": deck[0], "rating": "like"})
        await ann.wait_for("match")
        await drain(ann)
        # A process started with a new definition (every film, three likes to a match) while the
        # first one serves the room: its members are told.
        second = shared.app("second", rooms=[{"name": "Kids", "match_threshold": 3}])
        async with in_process(second):
            changed = await ann.expect("roomChanged")
            assert changed["rules"] == {"roomType": "standard", "matchThreshold": 3}
            assert set(ids(changed["added"])) == {f"test:{number}" for number in range(1, 11)} - COMEDIES
            assert changed["removed"] == []
            assert [(await ann.expect("userProgress"))["progress"] for _ in range(2)] == [0.1, 0.1]
            assert await ann.expect("matchRemoved") == {"mediaId": deck[0]}


async def test_rules_that_change_judge_the_matches_again() -> None:
    backend = Alone()
    app = backend.app("one", rooms=[{"name": "Kids", "match_threshold": 3}])
    async with in_process(app) as connect:
        peers = [await user(connect, name) for name in ("ann", "bob")]
        deck = ids((await peers[0].join("Kids"))["media"])
        await peers[1].join("Kids")
        for peer in peers:
            await peer.send("rate", {"mediaId": deck[0], "rating": "like"})
        await peers[0].wait_for("userProgress")
    app = backend.app("one", rooms=[{"name": "Kids"}])  # two likes make a match again
    async with in_process(app):
        room = await stored(app)
        assert list(room.matches) == [deck[0]]


async def test_the_retention_sweep_keeps_standing_rooms_until_they_leave_the_file() -> None:
    backend = Alone()
    long_ago = datetime.now(UTC) - timedelta(days=400)
    room = SerializedRoom(room_name="Kids", created_at=long_ago, opened_at=long_ago, media_ids=["test:1"])
    assert await backend.storage.create_room(room)
    app = backend.app("one", rooms=[KIDS], room_retention_days=30)
    async with in_process(app):
        assert await app.state.context.registry.expire_unopened() == []
    app = backend.app("one", room_retention_days=30)
    async with in_process(app):
        assert await app.state.context.registry.expire_unopened() == ["Kids"]


async def test_a_user_room_of_that_name_becomes_the_hosts() -> None:
    backend = Alone()
    app = backend.app("one")
    async with in_process(app) as connect:
        ann = await user(connect, "ann")
        await ann.create("Kids")
    app = backend.app("one", rooms=[KIDS])
    async with in_process(app):
        room = await stored(app)
        assert room.owner == HOST
        assert set(room.media_ids or []) == COMEDIES


async def test_a_library_the_media_source_lacks_stops_startup_naming_the_entry() -> None:
    rooms = [{"name": "Kids", "libraries": ["plex-1:Movies"]}, {"name": "Drama", "libraries": ["test:test"]}]
    app = Alone().app("one", rooms=rooms)
    with pytest.raises(ConfigError) as caught:
        async with in_process(app):
            pass
    assert caught.value.problems == [
        "rooms[0] (Kids).libraries: no library 'plex-1:Movies' (the media servers have test:test (Test))"
    ]


async def test_a_library_that_does_not_answer_at_startup_is_tried_again(caplog: pytest.LogCaptureFixture) -> None:
    down_at_first = ListProvider()
    down_at_first.fail = True
    app = create_app(Settings.model_validate({"rooms": [KIDS]}), storage=MemoryStorage(), provider=down_at_first)
    async with in_process(app) as connect:
        ann = await user(connect, "ann")
        await ann.send("listRooms")
        assert await ann.expect("listRoomsSuccess") == {"rooms": []}
        await ann.send("createRoom", {"roomName": "Kids"})
        assert (await ann.wait_for("createRoomError"))["name"] == "RoomExistsError"
        await standing(app).upkeep(decks=False)  # still down: said once
        assert [record.message for record in caplog.records if "not up to date" in record.message] == [
            "standing room rooms[0] (Kids) is not up to date (tried again later): the test library is down"
        ]
        down_at_first.fail = False
        await standing(app).upkeep(decks=False)
        joined = await ann.join("Kids")
        assert set(ids(joined["media"])) == COMEDIES


# -- real server processes: restarts, on files and on Redis -----------------------------------------


def configure(directory: Path, rooms: list[dict[str, Any]]) -> None:
    """The config.yaml the processes started in ``directory`` read."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.yaml").write_text(yaml.safe_dump({"rooms": rooms}), encoding="utf-8")


@contextmanager
def server_on_files(directory: Path, rooms: list[dict[str, Any]], films: Path) -> Iterator[ClusterProcess]:
    """One real server process on file storage in ``directory``, stopped gracefully (SIGTERM: it
    saves its rooms) afterwards; its library has as many films as ``films`` says."""
    configure(directory, rooms)
    rooms_dir = directory / "rooms"
    env = {"PYTHONPATH": str(ROOT), "STORAGE_URL": f"file:{rooms_dir}", "CLUSTER_FILMS_FILE": str(films)}
    process = ClusterProcess(rooms_dir, **env)
    process.start()
    try:
        yield process
    finally:
        if process.process is not None:
            process.signal(signal.SIGTERM)
            process.wait(timeout=60)
        print(process.output())


async def rate_all(peer: Peer, ratings: list[tuple[str, str]]) -> None:
    for media_id, rating in ratings:
        await peer.rate(media_id, rating)


@pytest.mark.slow
async def test_standing_rooms_across_restarts_of_a_server_on_files(tmp_path: Path) -> None:
    films = tmp_path / "films"
    films.write_text("10")
    with server_on_files(tmp_path, [KIDS], films) as process:
        async with over_network(process.ws_url) as connect:
            ann, bob = await user(connect, "ann"), await user(connect, "bob")
            deck = ids((await ann.join("Kids"))["media"])
            await bob.join("Kids")
            await rate_all(ann, [(deck[0], "like"), (deck[1], "dislike")])
            await rate_all(bob, [(deck[0], "like")])
    # Four films more (two comedies): a member coming back finds them at the end, and their progress.
    films.write_text("14")
    with server_on_files(tmp_path, [KIDS], films) as process:
        async with over_network(process.ws_url) as connect:
            ann = await user(connect, "ann")
            joined = await ann.join("Kids")
            assert ids(joined["media"])[:-2] == deck[2:]
            assert set(ids(joined["media"])[-2:]) == {"test:11", "test:13"}
            assert [match["media"]["id"] for match in joined["previousMatches"]] == [deck[0]]
            progress = {entry["user"]["userName"]: entry["progress"] for entry in joined["users"]}
            assert progress == {"ann": pytest.approx(2 / 7)}
    # Every film, three likes to a match, a password.
    changed = {"name": "Kids", "match_threshold": 3, "password": "popcorn"}
    with server_on_files(tmp_path, [changed], films) as process:
        async with over_network(process.ws_url) as connect:
            ann = await user(connect, "ann")
            await ann.send("joinRoom", {"roomName": "Kids"})
            assert (await ann.expect("joinRoomError"))["name"] == "AccessDeniedError"
            joined = await ann.join("Kids", password="popcorn")
            everything = {f"test:{number}" for number in range(1, 15)}
            assert set(ids(joined["media"])) == everything - {deck[0], deck[1]}
            assert joined["rules"] == {"roomType": "standard", "matchThreshold": 3}
            assert joined["previousMatches"] == []
            log = process.output()
    assert "popcorn" not in log
    # Out of the file: an ordinary room, still the host's.
    with server_on_files(tmp_path, [], films) as process:
        async with over_network(process.ws_url) as connect:
            ann = await user(connect, "ann")
            await ann.send("listRooms")
            assert await ann.expect("listRoomsSuccess") == {"rooms": []}
            await ann.join("Kids", password="popcorn")
            await ann.send("deleteRoom", {"roomName": "Kids"})
            assert (await ann.expect("deleteRoomError"))["name"] == "NotRoomOwner"


@pytest.mark.slow
def test_a_bad_standing_room_stops_a_real_server_with_exit_2(tmp_path: Path) -> None:
    configure(tmp_path, [KIDS, {"name": "Films", "libraries": ["plex-1:Movies"]}])
    process = ClusterProcess(tmp_path / "rooms", PYTHONPATH=str(ROOT), STORAGE_URL=f"file:{tmp_path / 'rooms'}")
    process.launch()
    assert process.wait(timeout=60) == 2, process.output()
    lines = process.output().splitlines()
    at = lines.index("moviematch: invalid configuration:")
    assert lines[at + 1 :] == [
        "  rooms[1] (Films).libraries: no library 'plex-1:Movies' (the media servers have test:test (Test))"
    ]


@pytest.mark.slow
@pytest.mark.redis
async def test_standing_rooms_on_redis_shared_by_processes(tmp_path: Path, redis_url: str) -> None:
    films = tmp_path / "films"
    films.write_text("10")
    directory = tmp_path / "cluster"
    configure(directory, [KIDS])
    # Each process looks at the library of the rooms it serves twice a second.
    cluster = Cluster(directory, redis_url, size=2, CLUSTER_FILMS_FILE=str(films), STANDING_ROOM_REFRESH="0.5")
    with running(cluster):
        async with over_network(cluster.ws_urls) as connect:
            ann, bob = await user(connect, "ann"), await user(connect, "bob")  # one on each process
            deck = ids((await ann.join("Kids"))["media"])
            await bob.join("Kids")
            await rate_all(ann, [(deck[0], "like"), (deck[1], "dislike")])
            await rate_all(bob, [(deck[0], "like")])
            for peer in (ann, bob):
                await drain(peer)
            films.write_text("14")  # the media server gains four films, two of them comedies
            told = [await peer.wait_for("roomChanged") for peer in (ann, bob)]
            assert told[0]["added"] == told[1]["added"]
            assert set(ids(told[0]["added"])) == {"test:11", "test:13"}
            assert told[0]["removed"] == []
            progress = await ann.wait_for("userProgress")
            assert progress["progress"] == pytest.approx(2 / 7 if progress["user"]["userName"] == "ann" else 1 / 7)
            added = ids(told[0]["added"])
            await bob.send("rate", {"mediaId": added[0], "rating": "like"})
            await ann.send("rate", {"mediaId": added[0], "rating": "like"})
            assert (await bob.wait_for("match"))["media"]["id"] == added[0]
        for process in cluster.processes:  # a restart: stopped as the host stops them
            process.signal(signal.SIGTERM)
            process.wait(timeout=60)
    # Both restarted with another definition: the room follows it, once, with its ratings.
    configure(directory, [{"name": "Kids", "match_threshold": 3}])
    with running(cluster):
        async with over_network(cluster.ws_urls) as connect:
            ann, carl = await user(connect, "ann"), await user(connect, "carl")  # one on each process
            joined = await ann.join("Kids")
            everything = {f"test:{number}" for number in range(1, 15)}
            assert set(ids(joined["media"])) == everything - {deck[0], deck[1], added[0]}
            assert joined["rules"] == {"roomType": "standard", "matchThreshold": 3}
            assert joined["previousMatches"] == []  # two likes no longer make a match
            deal = ids((await carl.join("Kids"))["media"])
            assert set(deal) == everything
            assert [media_id for media_id in deal if media_id in set(ids(joined["media"]))] == ids(joined["media"])
        async with cluster.storage() as storage:
            room = await storage.get_room("Kids")
        assert room is not None
        assert set(room.ratings) == {deck[0], deck[1], added[0]}
        assert room.user_progress == {"ann": 3, "bob": 2, "carl": 0}


async def test_a_deck_is_not_replaced_over_a_change_made_since_it_was_read(shared: Shared) -> None:
    app = shared.app("one")
    async with in_process(app):
        storage: Storage = app.state.context.storage
        live = shared.live(app, "one")
        assert await storage.create_room(SerializedRoom(room_name="Old", media_ids=["test:1"]))  # no join code
        read = await live.read("Old")
        assert read is not None
        replaced = read.room.model_copy(update={"media_ids": ["test:1", "test:2"]})
        assert await storage.give_join_code("Old", "ABCDEF") == "ABCDEF"  # meanwhile, by a join elsewhere
        assert await live.replace("Old", replaced, seq=read.seq) is None
        again = await live.read("Old")
        assert again is not None
        assert (again.room.join_code, again.room.media_ids) == ("ABCDEF", ["test:1"])
        replaced = again.room.model_copy(update={"media_ids": ["test:1", "test:2"]})
        assert await live.replace("Old", replaced, seq=again.seq + 1) is None  # an event meanwhile
        seq = await live.replace("Old", replaced, seq=again.seq)
        assert seq == again.seq + 1
        final = await live.read("Old")
        assert final is not None
        assert (final.room.join_code, final.room.media_ids, final.seq) == ("ABCDEF", ["test:1", "test:2"], seq)
