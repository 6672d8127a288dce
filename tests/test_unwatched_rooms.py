"""Rooms "unwatched by all of us" through the protocol: the people picked at creation, members who
agree at join, films watched meanwhile leaving the deck when the room is opened, alike in one
process, in processes sharing rooms (in memory and through a real redis-server) and across a
restart on files; against fake Plex, plex.tv and Jellyfin servers over real HTTP. No token reaches
a frame or a log line."""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest

from server.app import create_app
from server.config import Settings
from server.identity import jellyfin_identity
from server.rooms.unwatched import unwatched_ids
from storage import MemoryStorage, Pick, SerializedRoom, create_storage
from tests.fake_jellyfin import ALICE, API_KEY, BOB, SERVER_ID, FakeJellyfin, FakeLibrary as JellyfinLibrary
from tests.fake_plex import MACHINE_IDENTIFIER, PLEX_TOKEN, FakeLibrary, FakePlex, FakePlexTv, FakeViewer, PlexAccount
from tests.fakes import no_secret_logged, serving
from tests.peers import Connect, Peer, in_process, over_network
from tests.services import ServerProcess
from tests.worlds import World

pytestmark = pytest.mark.anyio

FILMS = 30
MOVIES = FakeLibrary("1", "Movies", "movie", FILMS)
BOB_TV, BOB_SERVER = "bob-plex-tv-Rt52Kw", "bob-server-Gh38Pz"  # the server is shared with Bob
KID_TV, KID_SERVER = "kid-plex-tv-Lm64Qa", "kid-server-Xc17Nv"  # a managed Plex Home user
CAROL_TV, CAROL_SERVER = "carol-plex-tv-Vb29Ds", "carol-server-Jk83Fe"  # shared with Carol too
DAN_TV = "dan-plex-tv-Wq46Ty"  # a Plex account the server is not shared with
SECRETS = (PLEX_TOKEN, BOB_TV, BOB_SERVER, KID_TV, KID_SERVER, CAROL_TV, CAROL_SERVER, DAN_TV, API_KEY)
ANN, BOB_ID, KID, CAROL = "plex:1", "plex:2", "plex:3", "plex:4"

no_token_logged = no_secret_logged(*SECRETS, ALICE.password)


@dataclass(frozen=True)
class Viewer(FakeViewer):
    """A person of the fake Plex server who watched exactly the films of these indexes."""

    seen: frozenset[int] = frozenset()

    def watched(self, index: int) -> bool:
        return index in self.seen


def every(step: int) -> frozenset[int]:
    return frozenset(range(0, FILMS, step))


@dataclass
class PlexFakes:
    plex: FakePlex
    tv: FakePlexTv
    overrides: dict[str, Any]

    def watches(self, token: str, *indexes: int) -> None:
        """The person of that server token watches these films too."""
        viewer = self.plex.viewers[token]
        assert isinstance(viewer, Viewer)
        self.plex.viewers[token] = Viewer(token, seen=viewer.seen | set(indexes))


@contextmanager
def plex_fakes() -> Iterator[PlexFakes]:
    """A Plex server of 30 films (the owner Ann watched every third) shared with Bob (who watched
    every second) and Carol (every seventh), with Kid in the owner's Plex Home (every fifth); Dan
    has a Plex account, but not on this server."""
    machine = MACHINE_IDENTIFIER
    accounts = {
        PLEX_TOKEN: PlexAccount(1, "ann", "Ann", None, [machine], {machine: PLEX_TOKEN}, owned=[machine]),
        BOB_TV: PlexAccount(2, "bob", "Bob", None, [machine], {machine: BOB_SERVER}),
        KID_TV: PlexAccount(3, "", "Kid", None, [machine], {machine: KID_SERVER}),
        CAROL_TV: PlexAccount(4, "carol", "Carol", None, [machine], {machine: CAROL_SERVER}),
        DAN_TV: PlexAccount(5, "dan", "Dan"),
    }
    tv = FakePlexTv(accounts=accounts, home=[PLEX_TOKEN, KID_TV], shared={machine: [BOB_TV, CAROL_TV]})
    viewers = [
        Viewer(BOB_SERVER, seen=every(2)),
        Viewer(KID_SERVER, seen=every(5)),
        Viewer(CAROL_SERVER, seen=every(7)),
    ]
    plex = FakePlex(libraries=[MOVIES], viewers=viewers)
    with serving(plex) as plex_url, serving(tv) as tv_url:
        yield PlexFakes(plex, tv, {"servers": [{"url": plex_url, "token": PLEX_TOKEN}], "plex_tv_url": tv_url})


class Recorder:
    """Every frame the peers it watches were sent, to look for secrets in."""

    def __init__(self) -> None:
        self.frames: list[str] = []

    def watch(self, peer: Peer) -> Peer:
        socket = peer.socket
        receive = socket.receive_text

        async def recorded() -> str:
            text = await receive()
            self.frames.append(text)
            return text

        socket.receive_text = recorded  # type: ignore[method-assign]
        return peer

    def assert_clean(self) -> None:
        assert self.frames
        text = "\n".join(self.frames)
        for secret in SECRETS:
            assert secret not in text


async def plex_user(connect: Connect, token: str, recorder: Recorder) -> Peer:
    peer = recorder.watch(await connect())
    await peer.send("login", {"plexToken": token, "plexClientId": "browser-1"})
    await peer.expect("loginSuccess")
    return peer


def film_numbers(media: list[dict[str, Any]]) -> set[int]:
    """The fake's index of each card (its title ends with it)."""
    return {int(item["title"].rpartition(" ")[2]) for item in media}


def unwatched_by(*seen: frozenset[int]) -> set[int]:
    return set(range(FILMS)).difference(*seen)


# Rooms nobody is in leave memory this soon (seconds): the next join opens them afresh.
IDLE = 0.5


async def reopened(connect: Connect, token: str, recorder: Recorder, gone: int) -> tuple[Peer, Any]:
    """Join again until the room was opened afresh (it left memory, nobody being in it for
    ``IDLE``) and film ``gone`` has left its deck."""
    with anyio.fail_after(60):
        while True:
            await anyio.sleep(3 * IDLE)
            peer = await plex_user(connect, token, recorder)
            joined = await peer.join("Movie Night")
            if gone not in film_numbers(joined["media"]):
                return peer, joined
            await peer.close()


async def test_the_chosen_people_s_watched_films_stay_out_of_the_deck(
    live_world: Callable[..., AsyncIterator[World]], request: pytest.FixtureRequest
) -> None:
    recorder = Recorder()
    with plex_fakes() as fakes:
        async for world in live_world(**fakes.overrides, room_idle_timeout=IDLE):
            ann = await plex_user(world.connect, PLEX_TOKEN, recorder)
            await ann.send("getPeople")
            people = (await ann.expect("getPeopleSuccess"))["people"]
            assert {person["id"] for person in people} == {ANN, BOB_ID, KID, CAROL}
            created = await ann.create("Movie Night", unwatchedBy=[BOB_ID, KID], unwatchedByMembers=True)
            deck = unwatched_by(every(2), every(5))
            assert film_numbers(created["media"]) == deck
            # Ann is one of the server's people, not counted yet: her client asks her.
            assert created["unwatched"] == {"people": 2, "members": True, "counted": False, "ask": True}

            # Carol is asked when she joins, and agrees: her watched films leave, for everyone.
            carol = await plex_user(world.connect, CAROL_TV, recorder)
            joined = await carol.join("Movie Night")
            assert joined["unwatched"] == {"people": 2, "members": True, "counted": False, "ask": True}
            assert film_numbers(joined["media"]) == deck
            await ann.expect("userJoinedRoom")
            again = await carol.join("Movie Night", memberToken=joined["memberToken"], countMyWatched=True)
            assert again["unwatched"] == {"people": 3, "members": True, "counted": True, "ask": False}
            deck -= every(7)
            assert film_numbers(again["media"]) == deck
            changed = await ann.wait_for("roomChanged")
            ids = {item["title"]: item["id"] for item in created["media"]}
            assert set(changed["removed"]) == {ids["Movies 7"], ids["Movies 21"]}
            assert changed["added"] == []

            # A name alone, or a Plex account of no server here, is never asked and never counts.
            eve = recorder.watch(await world.connect())
            await eve.login("eve")
            outsiders = [eve, await plex_user(world.connect, DAN_TV, recorder)]
            for outsider in outsiders:
                seated = await outsider.join("Movie Night", countMyWatched=True)
                assert seated["unwatched"] == {"people": 3, "members": True, "counted": False, "ask": False}
                assert film_numbers(seated["media"]) == deck
                await ann.wait_for("userJoinedRoom")

            # Ann and Carol make a match of film 1, Ann dislikes film 3.
            media = {item["title"]: item["id"] for item in again["media"]}
            for peer, film, rating in ((ann, 1, "like"), (carol, 1, "like"), (ann, 3, "dislike")):
                await peer.send("rate", {"mediaId": media[f"Movies {film}"], "rating": rating})
            assert (await ann.wait_for("match"))["media"]["title"] == "Movies 1"

            # Meanwhile Bob watches film 9 and Kid film 1: when the room is opened again film 9 is
            # gone; film 1, the room's match, stays; so do the ratings.
            fakes.watches(BOB_SERVER, 9)
            fakes.watches(KID_SERVER, 1)
            for peer in (ann, carol, *outsiders):
                await peer.close()
            ann, back = await reopened(world.connect, PLEX_TOKEN, recorder, gone=9)
            assert film_numbers(back["media"]) == deck - {1, 3, 9}  # rated: 1 and 3
            assert [match["media"]["title"] for match in back["previousMatches"]] == ["Movies 1"]
            progress = {entry["user"]["userName"]: entry["progress"] for entry in back["users"]}
            assert progress == {"ann": pytest.approx(2 / (len(deck) - 1))}
            if request.node.callspec.params["live_world"] != "file_process":  # its files are the process's
                stored = await world.stored("Movie Night")
                assert stored.unwatched is not None
                assert stored.unwatched.people == (BOB_ID, KID, CAROL)
                assert stored.ratings.keys() == {media["Movies 1"], media["Movies 3"]}
    recorder.assert_clean()


@contextmanager
def plex_app(fakes: PlexFakes, **overrides: Any) -> Iterator[tuple[Any, MemoryStorage]]:
    storage = MemoryStorage()
    yield create_app(Settings.model_validate({**fakes.overrides, **overrides}), storage=storage), storage


async def refused(peer: Peer, **request: Any) -> dict[str, Any]:
    await peer.send("createRoom", {"roomName": "Movie Night", **request})
    error: dict[str, Any] = await peer.expect("createRoomError")
    return error


async def test_people_are_picked_by_one_of_them_and_among_them() -> None:
    recorder = Recorder()
    with plex_fakes() as fakes, plex_app(fakes) as (app, storage):
        async with in_process(app) as connect:
            eve = recorder.watch(await connect())
            await eve.login("eve")
            dan = await plex_user(connect, DAN_TV, recorder)
            for outsider in (eve, dan):  # neither may list the server's people, so neither picks
                assert (await refused(outsider, unwatchedBy=[BOB_ID]))["name"] == "PlexAuthRequiredError"
            ann = await plex_user(connect, PLEX_TOKEN, recorder)
            for unknown in ("plex:99", jellyfin_identity(SERVER_ID, BOB.id)):
                error = await refused(ann, unwatchedBy=[BOB_ID, unknown])
                assert error["name"] == "UnknownPerson"
                assert repr(unknown) in error["message"]
            for malformed in ([""], ["plex:" + "9" * 200], [BOB_ID] * 101, BOB_ID, [2]):
                assert (await refused(ann, unwatchedBy=malformed))["name"] == "MalformedMessage"
            fakes.watches(KID_SERVER, *range(FILMS))  # Kid has seen everything
            error = await refused(ann, unwatchedBy=[KID])
            assert (error["name"], error["message"]) == ("NoMediaError", "its people have watched every film")
            assert await storage.list_room_names() == []
            # Anyone may make a room that asks its members; whom it asks is the server's business.
            created = await eve.create("Movie Night", unwatchedByMembers=True)
            assert created["unwatched"] == {"people": 0, "members": True, "counted": False, "ask": False}
            assert len(created["media"]) == FILMS
            joined = await ann.join("Movie Night", countMyWatched=True)
            assert joined["unwatched"] == {"people": 1, "members": True, "counted": True, "ask": False}
            assert film_numbers(joined["media"]) == unwatched_by(every(3))
            # A room that does not ask counts nobody who joins.
            await ann.create("Kids' Night", unwatchedBy=[BOB_ID])
            carol = await plex_user(connect, CAROL_TV, recorder)
            joined = await carol.join("Kids' Night", countMyWatched=True)
            assert joined["unwatched"] == {"people": 1, "members": False, "counted": False, "ask": False}
    recorder.assert_clean()


async def test_jellyfin_users_are_people_too() -> None:
    """Bob's played state read per user with the API key; Alice, who signed in with Jellyfin, agrees."""
    jellyfin = FakeJellyfin(libraries=[JellyfinLibrary(1, "Movies", "movies", 20, imdb_base=1)], users=(BOB, ALICE))
    recorder = Recorder()
    with serving(jellyfin) as url:
        settings = Settings.model_validate({"servers": [{"type": "jellyfin", "url": url, "token": API_KEY}]})
        async with in_process(create_app(settings, storage=MemoryStorage())) as connect:
            alice = recorder.watch(await connect())
            await alice.send("login", {"jellyfinUser": "alice", "jellyfinPassword": ALICE.password})
            await alice.expect("loginSuccess")
            bob = jellyfin_identity(SERVER_ID, BOB.id)
            created = await alice.create("Movie Night", unwatchedBy=[bob], unwatchedByMembers=True)
            assert film_numbers(created["media"]) == {index for index in range(20) if index % 2}
            assert created["unwatched"]["ask"] is True
            again = await alice.join("Movie Night", memberToken=created["memberToken"], countMyWatched=True)
            assert film_numbers(again["media"]) == {index for index in range(20) if index % 2 and index % 3}
            assert again["unwatched"] == {"people": 2, "members": True, "counted": True, "ask": False}
    recorder.assert_clean()
    for frame in recorder.frames:
        assert not any(secret in frame for secret in (*jellyfin.issued, ALICE.password))


@pytest.mark.slow
async def test_a_stored_room_keeps_its_people_across_a_restart_on_files(tmp_path: Path) -> None:
    recorder = Recorder()
    rooms = tmp_path / "rooms"
    with plex_fakes() as fakes:
        [server] = fakes.overrides["servers"]
        env = {
            "PLEX_URL": server["url"],
            "PLEX_TOKEN": PLEX_TOKEN,
            "PLEX_TV_URL": fakes.overrides["plex_tv_url"],
            "STORAGE_URL": f"file:{rooms}",
            "LOG_LEVEL": "DEBUG",
        }
        output: list[str] = []
        with stopped_gracefully(ServerProcess(rooms, **env), output) as process:
            async with over_network(process.ws_url) as connect:
                ann = await plex_user(connect, PLEX_TOKEN, recorder)
                created = await ann.create("Movie Night", unwatchedBy=[BOB_ID], unwatchedByMembers=True)
                carol = await plex_user(connect, CAROL_TV, recorder)
                await carol.join("Movie Night", countMyWatched=True)
                media = {item["title"]: item["id"] for item in created["media"]}
                await ann.send("rate", {"mediaId": media["Movies 1"], "rating": "like"})
                await ann.wait_for("userProgress")
        stored = await read_room(rooms)
        assert stored.unwatched is not None
        assert stored.unwatched.people == (BOB_ID, CAROL)
        fakes.watches(BOB_SERVER, 3)  # while the server was down
        with stopped_gracefully(ServerProcess(rooms, **env), output) as process:
            async with over_network(process.ws_url) as connect:
                ann = await plex_user(connect, PLEX_TOKEN, recorder)
                joined = await ann.join("Movie Night")
                assert joined["unwatched"] == {"people": 2, "members": True, "counted": False, "ask": True}
                assert film_numbers(joined["media"]) == unwatched_by(every(2), every(7)) - {1, 3}
    recorder.assert_clean()
    logged = "\n".join(output)
    assert "/library/sections/1/all" in logged  # the people's reads were logged, without their tokens
    for secret in SECRETS:
        assert secret not in logged


@contextmanager
def stopped_gracefully(process: ServerProcess, output: list[str]) -> Iterator[ServerProcess]:
    """A server process that saves its rooms at the end (SIGTERM), its log kept in ``output``."""
    process.start()
    try:
        yield process
    finally:
        if process.process is not None:
            process.signal(signal.SIGTERM)
            process.wait(timeout=60)
        output.append(process.output())


async def read_room(rooms: Path) -> SerializedRoom:
    async with create_storage(f"file:{rooms}") as storage:
        room = await storage.get_room("Movie Night")
    assert room is not None
    return room


def test_films_the_room_chose_stay_when_someone_watches_them() -> None:
    room = SerializedRoom(
        room_name="r",
        media_ids=["a", "b", "c", "d", "e"],
        matches={"b": 1},
        pick=Pick(media_id="c", at=2),
        ratings={"d": [("ann", "like", 3)], "e": [("ann", "dislike", 4)]},
    )
    everything = {"a", "b", "c", "d", "e"}
    assert unwatched_ids(room, everything) == ["b", "c"]  # the match and the pick
    solo = room.model_copy(update={"room_type": "solo", "matches": {}})
    assert unwatched_ids(solo, everything) == ["c", "d"]  # a solo room's like is a match
    assert unwatched_ids(room, {"x"}) == room.media_ids
