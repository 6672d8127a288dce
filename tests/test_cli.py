"""The host's commands (``moviematch rooms | export | import | storage``) on real storage: a room
directory, a redis-server, and running servers beside them."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import anyio
import anyio.to_thread
import pytest

from server import commands
from server.app import create_app
from server.commands.transfer import differing_copies
from server.config import Settings
from storage import Member, SerializedRoom, create_storage, hash_password, verify_password
from storage.file import DECK_SUFFIX, FileStorage, room_file_name
from storage.schema import SCHEMA_VERSION
from tests.library import ListProvider
from tests.peers import Peer, in_process_with_http, in_processes
from tests.services import ServerProcess

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "rooms"
PASSWORD_HASH = hash_password("popcorn")


@dataclass(frozen=True)
class Ran:
    status: int
    out: str
    err: str


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory of its own, and an environment that names nothing but what a test sets."""
    monkeypatch.chdir(tmp_path)
    for name in ("CONFIG_PATH", "STORAGE_URL", "STORAGE_TYPE", "STORAGE_PATH", "REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


@pytest.fixture
def run(workdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Runner:
    return Runner(capsys, monkeypatch)


class Runner:
    """Runs a command in this process as ``moviematch`` would, against the storage named by
    ``STORAGE_URL``: in a thread, with an event loop of its own, beside the test's (which may run
    servers)."""

    def __init__(self, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
        self._capsys = capsys
        self._monkeypatch = monkeypatch

    def storage(self, url: str) -> None:
        self._monkeypatch.setenv("STORAGE_URL", url)

    async def __call__(self, *argv: str) -> Ran:
        self._capsys.readouterr()
        out = io.StringIO()
        status = await anyio.to_thread.run_sync(commands.main, list(argv), out)
        return Ran(status, out.getvalue(), self._capsys.readouterr().err)


def a_room(name: str = "Movie Night", **fields: object) -> SerializedRoom:
    return SerializedRoom.model_validate(
        {
            "roomName": name,
            "passwordHash": PASSWORD_HASH,
            "createdAt": "2026-11-27T23:30:00Z",
            "openedAt": "2026-12-01T20:15:00Z",
            "members": {"ann": {"joinedAt": 1795822200000, "tokenHash": "t" * 64}, "bob": {"joinedAt": 1795822260000}},
            "ratings": {
                "m1": [["ann", "like", 1795822300000], ["bob", "like", 1795822310000]],
                "m2": [["ann", "dislike", 1]],
            },
            "userProgress": {"ann": 2, "bob": 1},
            "matches": {"m1": 1795822310000},
            "mediaIds": ["m1", "m2", "m3"],
            **fields,
        }
    )


async def store(url: str, *rooms: SerializedRoom) -> None:
    async with create_storage(url) as storage:
        for room in rooms:
            await storage.save_room(room)


async def stored_rooms(url: str) -> dict[str, SerializedRoom]:
    async with create_storage(url) as storage:
        return {room.room_name: room for room in await storage.list_rooms()}


# Dispatch.


@pytest.mark.parametrize(
    ("argv", "command"),
    [
        (["rooms", "list"], True),
        (["--config", "rooms", "rooms", "list"], True),
        (["--config", "x.yaml", "export"], True),
        (["storage", "check"], True),
        (["--port", "0"], False),
        (["--host", "rooms"], False),
        ([], False),
        (["--version"], False),
        (["serve"], False),
    ],
)
def test_a_command_is_the_first_argument_that_is_no_option(argv: list[str], command: bool) -> None:
    assert commands.is_command(argv) is command


async def test_a_configuration_error_names_the_key(run: Runner) -> None:
    run.storage("bogus://x")
    ran = await run("rooms", "list")
    assert ran.status == 2
    assert "storage" in ran.err
    assert "unknown storage scheme 'bogus'" in ran.err


# Listing, showing, deleting.


async def test_rooms_list_shows_every_room(run: Runner, workdir: Path) -> None:
    url = f"file:{workdir / 'rooms'}"
    empty = a_room("Empty", ratings={}, members={}, userProgress={}, matches={}, mediaIds=None, joinCode="K7FM2Q")
    await store(url, a_room(), empty)
    run.storage(url)
    ran = await run("rooms", "list")
    assert ran.status == 0, ran.err
    header, *rows = ran.out.splitlines()
    columns = ["NAME", "CODE", "CREATED", "LAST", "OPENED", "MEMBERS", "RATINGS", "MATCHES", "FILMS", "SIZE"]
    assert header.split() == columns
    assert rows[0].split()[:3] == ["Empty", "K7FM2Q", "2026-11-27"]
    assert rows[0].split()[8:12] == ["0", "0", "0", "-"]
    assert rows[1].split()[:11] == [
        "Movie", "Night", "-", "2026-11-27", "23:30", "UTC", "2026-12-01", "20:15", "UTC", "2", "3"
    ]  # fmt: skip
    assert rows[1].split()[11:13] == ["1", "3"]
    listed = json.loads((await run("rooms", "list", "--json")).out)
    assert [(room["name"], room["members"], room["ratings"], room["matches"], room["films"]) for room in listed] == [
        ("Empty", 0, 0, 0, None),
        ("Movie Night", 2, 3, 1, 3),
    ]
    assert listed[1]["openedAt"] == "2026-12-01T20:15:00Z"
    shown = await run("rooms", "show", "k7f-m2q")
    assert (shown.status, shown.out.splitlines()[:2]) == (0, ["name         Empty", "code         K7FM2Q"])
    assert (await run("rooms", "delete", "K7FM2Q")).out == "deleted room Empty\n"


async def test_a_listing_with_unreadable_rooms_says_so(run: Runner, workdir: Path) -> None:
    url = f"file:{workdir / 'rooms'}"
    await store(url, a_room(), a_room("Torn"))
    (workdir / "rooms" / room_file_name("Torn")).write_bytes(b'{"roomName": "To')
    run.storage(url)
    ran = await run("rooms", "list", "--json")
    assert ran.status == 1
    assert [room["name"] for room in json.loads(ran.out)] == ["Movie Night"]
    assert "1 stored room(s) could not be read: see `moviematch storage check`" in ran.err


async def test_rooms_show_tells_everything_but_secrets(run: Runner, workdir: Path) -> None:
    url = f"file:{workdir / 'rooms'}"
    await store(url, a_room(filters=[{"key": "genre", "operator": "=", "value": ["Comedy"]}]))
    run.storage(url)
    ran = await run("rooms", "show", "MOVIE NIGHT")
    assert ran.status == 0, ran.err
    shown = dict(line.split(maxsplit=1) for line in ran.out.splitlines() if not line.startswith(" "))
    assert shown["password"] == "yes"
    assert shown["filters"] == "genre = Comedy"
    assert shown["films"] == "3"
    assert shown["ratings"] == "3 (2 like, 1 dislike)"
    assert "  ann" in ran.out
    as_json = json.loads((await run("rooms", "show", "movie night", "--json")).out)
    assert as_json["password"] is True
    assert as_json["films"] == 3
    shown_member = {"joinedAt": 1795822200000, "avatarImage": None, "plexUserId": None, "identity": None}
    assert as_json["members"]["ann"] == shown_member | {"skeleton": "", "seenAt": 0}
    for text in (ran.out, json.dumps(as_json)):
        assert PASSWORD_HASH not in text
        assert "t" * 64 not in text
    missing = await run("rooms", "show", "nothing")
    assert (missing.status, missing.err) == (1, "moviematch: no room named nothing\n")


async def test_names_are_shown_escaped(run: Runner, workdir: Path) -> None:
    url = f"file:{workdir / 'rooms'}"
    await store(url, a_room("Bell\x07 Night"))
    run.storage(url)
    ran = await run("rooms", "list")
    assert "Bell\\x07 Night" in ran.out
    assert "\x07" not in ran.out


async def test_rooms_delete_removes_the_room_and_its_deck(run: Runner, workdir: Path) -> None:
    url = f"file:{workdir / 'rooms'}"
    await store(url, a_room(), a_room("Other"))
    run.storage(url)
    ran = await run("rooms", "delete", "movie night")
    assert (ran.status, ran.out) == (0, "deleted room movie night\n")
    assert list(await stored_rooms(url)) == ["Other"]
    assert [name for name in os.listdir(workdir / "rooms") if name.endswith(DECK_SUFFIX)] == [
        name for name in os.listdir(workdir / "rooms") if name.startswith("other-") and name.endswith(DECK_SUFFIX)
    ]
    again = await run("rooms", "delete", "movie night")
    assert (again.status, again.err) == (1, "moviematch: no room named movie night\n")


# Beside a running server.


async def test_beside_a_server_owning_the_directory_reading_works_and_writing_is_refused(
    run: Runner, workdir: Path
) -> None:
    directory = workdir / "rooms"
    run.storage(f"file:{directory}")
    async with FileStorage(directory) as server:  # what a running server holds
        await server.save_room(a_room())
        ran = await run("rooms", "list", "--json")
        assert (ran.status, [room["name"] for room in json.loads(ran.out)]) == (0, ["Movie Night"])
        assert (await run("storage", "check")).status == 0
        exported = await run("export", "--to", str(workdir / "backup.jsonl"))
        assert exported.status == 0
        for argv in (("rooms", "delete", "Movie Night"), ("import", str(workdir / "backup.jsonl"), "--replace")):
            refused = await run(*argv)
            assert refused.status == 1
            assert f"is in use by a running MovieMatch server (pid {os.getpid()}): stop it first" in refused.err
        assert await server.get_room("Movie Night") == a_room()


@pytest.mark.slow
def test_the_moviematch_command_beside_a_real_server(workdir: Path) -> None:
    directory = workdir / "rooms"
    anyio.run(store, f"file:{directory}", a_room())
    server = ServerProcess(directory)
    server.start()
    try:

        def moviematch(*argv: str) -> subprocess.CompletedProcess[str]:
            env = {**server.env, "PYTHONPATH": str(ROOT)}
            return subprocess.run(
                [sys.executable, "-m", "server", *argv],
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )

        listed = moviematch("rooms", "list", "--json")
        assert listed.returncode == 0, listed.stderr
        assert [room["name"] for room in json.loads(listed.stdout)] == ["Movie Night"]
        refused = moviematch("rooms", "delete", "Movie Night")
        assert refused.returncode == 1
        assert "is in use by a running MovieMatch server (pid" in refused.stderr
        assert "Traceback" not in refused.stderr
    finally:
        server.stop()
    # Stopped, the same command deletes.
    deleted = subprocess.run(
        [sys.executable, "-m", "server", "rooms", "delete", "Movie Night"],
        env={**server.env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (deleted.returncode, deleted.stdout) == (0, "deleted room Movie Night\n")


# Export and import.


async def test_export_then_import_gives_the_same_rooms(run: Runner, workdir: Path) -> None:
    source, target = f"file:{workdir / 'rooms'}", f"file:{workdir / 'restored'}"
    rooms = [a_room(), a_room("Second", mediaIds=[f"plex:{n}" for n in range(5000)]), a_room("No deck", mediaIds=None)]
    await store(source, *rooms)
    run.storage(source)
    to_stdout = await run("export")
    assert to_stdout.status == 0
    lines = to_stdout.out.splitlines()
    assert len(lines) == 3
    backup = workdir / "backup.jsonl"
    ran = await run("export", "--to", str(backup))
    assert (ran.status, ran.out) == (0, f"exported 3 room(s) to {backup}\n")
    assert backup.read_text().splitlines() == lines
    assert backup.stat().st_mode & 0o777 == 0o600  # password hashes
    run.storage(target)
    imported = await run("import", str(backup))
    assert (imported.status, imported.out) == (0, f"imported 3 room(s) from {backup}\n")
    assert await stored_rooms(target) == {room.room_name: room for room in rooms}


async def test_an_import_that_would_overwrite_writes_nothing_unless_replacing(run: Runner, workdir: Path) -> None:
    url = f"file:{workdir / 'rooms'}"
    await store(url, a_room(userProgress={"ann": 9}))
    backup = workdir / "backup.jsonl"
    backup.write_bytes(a_room("New").to_json() + b"\n" + a_room().to_json() + b"\n")
    run.storage(url)
    refused = await run("import", str(backup))
    assert refused.status == 1
    assert "already stored (use --replace to overwrite them): Movie Night" in refused.err
    assert list(await stored_rooms(url)) == ["Movie Night"]
    replaced = await run("import", str(backup), "--replace")
    assert (replaced.status, replaced.out) == (0, f"imported 2 room(s) from {backup} (1 replaced)\n")
    assert (await stored_rooms(url))["Movie Night"].user_progress == {"ann": 2, "bob": 1}


async def test_an_imported_room_whose_join_code_is_taken_gets_a_new_one_later(run: Runner, workdir: Path) -> None:
    url = f"file:{workdir / 'rooms'}"
    await store(url, a_room(joinCode="K7FM2Q"))
    backup = workdir / "backup.jsonl"
    backup.write_bytes(a_room("New", joinCode="K7FM2Q").to_json() + b"\n")
    run.storage(url)
    imported = await run("import", str(backup))
    assert imported.status == 0, imported.err
    rooms = await stored_rooms(url)
    assert (rooms["Movie Night"].join_code, rooms["New"].join_code) == ("K7FM2Q", None)


@pytest.mark.parametrize(
    ("lines", "complaint"),
    [
        ([b'{"roomName": "ok"}', b"{not json"], "line 2: not a room (not JSON"),
        ([b'{"roomName": ""}'], "line 1: not a room (roomName: String should have at least 1 character)"),
        ([b'{"roomName": "a"}', b"", b'{"roomName": "A"}'], "line 3: room A is in the file twice"),
        ([b'{"schemaVersion": 7, "roomName": "a"}'], "written by a newer MovieMatch"),
    ],
)
async def test_an_import_file_is_checked_whole_first(
    run: Runner, workdir: Path, lines: list[bytes], complaint: str
) -> None:
    url = f"file:{workdir / 'rooms'}"
    backup = workdir / "backup.jsonl"
    backup.write_bytes(b"\n".join(lines) + b"\n")
    run.storage(url)
    ran = await run("import", str(backup))
    assert ran.status == 1
    assert complaint in ran.err
    assert await stored_rooms(url) == {}


async def test_an_import_upgrades_rooms_of_earlier_versions(run: Runner, workdir: Path) -> None:
    backup = workdir / "old.jsonl"
    fork = json.loads((FIXTURES / "0-fork" / "Movie_Night.json").read_text())
    backup.write_text(json.dumps(fork) + "\n")
    url = f"file:{workdir / 'rooms'}"
    run.storage(url)
    assert (await run("import", str(backup))).status == 0
    room = (await stored_rooms(url))["Movie Night"]
    assert (room.room_type, room.libraries, room.schema_version) == ("async", ["demo:demo"], SCHEMA_VERSION)
    assert room.password_hash is not None
    assert verify_password("popcorn", room.password_hash)


# Migration between backends.


def room_files(directory: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in directory.iterdir() if not path.name.startswith(".")}


@pytest.mark.redis
async def test_a_round_trip_file_redis_file_gives_identical_room_files(
    run: Runner, workdir: Path, redis_url: str
) -> None:
    first, second, redis = workdir / "first", workdir / "second", f"{redis_url}?prefix=migrated"
    await store(
        f"file:{first}",
        a_room(),
        a_room("Big deck", mediaIds=[f"plex:{n}" for n in range(20_000)]),
        a_room("Ünïcode 🎬", members={"zoë": Member(joined_at=5)}, mediaIds=None),
    )
    run.storage(f"file:{first}")
    there = await run("storage", "migrate", "--to", redis)
    assert there.status == 0, there.err
    assert (
        there.out
        == "copied 3 of 3 room(s); the destination holds 3 of them and 3 in all; 3 match their originals' digests\n"
    )
    back = await run("storage", "migrate", "--from", redis, "--to", f"file:{second}")
    assert back.status == 0, back.err
    assert room_files(second) == room_files(first)
    # The destination holds them now: a second run refuses, and --replace overwrites.
    again = await run("storage", "migrate", "--from", redis, "--to", f"file:{second}")
    assert again.status == 1
    assert "the destination already holds (use --replace to overwrite them): " in again.err
    replaced = await run("storage", "migrate", "--from", redis, "--to", f"file:{second}", "--replace")
    assert replaced.status == 0, replaced.err
    assert room_files(second) == room_files(first)


async def test_a_migration_onto_itself_is_refused(run: Runner, workdir: Path) -> None:
    run.storage(f"file:{workdir / 'rooms'}")
    ran = await run("storage", "migrate", "--to", f"file://{workdir / 'rooms'}/")
    assert (ran.status, ran.err) == (2, "moviematch: --from and --to name the same storage\n")


async def test_the_verification_finds_a_copy_that_differs(workdir: Path) -> None:
    async with create_storage(f"file:{workdir / 'copy'}") as target:
        room = a_room()
        await target.save_room(room)
        digests = {room.room_name: room.digest(), "Lost": a_room("Lost").digest()}
        assert await differing_copies(target, digests) == ["Lost"]
        await target.save_room(a_room(userProgress={"ann": 1}))
        assert await differing_copies(target, digests) == ["Lost", "Movie Night"]


# Checking.


async def test_storage_check_reports_every_unreadable_room(run: Runner, workdir: Path) -> None:
    directory = workdir / "rooms"
    url = f"file:{directory}"
    await store(url, a_room(), a_room("Torn"), a_room("Deckless"))
    run.storage(url)
    assert await run("storage", "check") == Ran(0, "3 room(s) stored, 0 unreadable\n", "")
    (directory / room_file_name("Torn")).write_bytes(b"[]")
    async with FileStorage(directory) as storage:
        deck = storage.deck_path("Deckless")
    assert deck is not None
    deck.unlink()
    ran = await run("storage", "check")
    assert ran.status == 1
    problems = ran.out.splitlines()
    assert problems[-1] == "3 room(s) stored, 2 unreadable"
    assert sorted(problems[:-1]) == sorted(
        [
            f"{directory / room_file_name('Deckless')} (room Deckless): its deck file {deck.name} is missing",
            f"{directory / room_file_name('Torn')} (room Torn): not a valid room file (a JSON list, not an object)",
        ]
    )
    assert ran.err == "moviematch: 2 stored room(s) cannot be read\n"


async def test_health_is_degraded_while_storage_holds_unreadable_rooms(workdir: Path) -> None:
    directory = workdir / "rooms"
    await store(f"file:{directory}", a_room())
    (directory / room_file_name("Lost")).write_bytes(b"{")  # unindexed: read, and found unreadable, on open
    settings = Settings.model_validate({"storage": {"url": f"file:{directory}"}})
    async with in_process_with_http(create_app(settings, provider=ListProvider())) as (_, http):
        response = await http.get("/health")
        assert response.status_code == 200
        assert response.json() == {
            "status": "degraded",
            "storage": "degraded",
            "providers": {"test": "ok"},
            "unreadableRooms": 1,
        }


# Redis: shared live.


@pytest.fixture
def redis_prefix(redis_url: str) -> str:
    return f"{redis_url}?prefix=cli"


@pytest.mark.redis
async def test_deleting_a_shared_room_tells_every_server(run: Runner, redis_prefix: str) -> None:
    run.storage(redis_prefix)
    apps = [
        create_app(Settings.model_validate({"storage": {"url": redis_prefix}}), provider=ListProvider(), process_id=p)
        for p in ("first", "second")
    ]
    async with in_processes(*apps) as (on_first, on_second):
        ann: Peer = await on_first("ann")
        await ann.login("ann")
        await ann.create("Movie Night")
        bob: Peer = await on_second("bob")
        await bob.login("bob")
        await bob.join("Movie Night")
        ran = await run("rooms", "delete", "movie night")
        assert (ran.status, ran.out) == (0, "deleted room movie night\n")
        assert await ann.wait_for("roomDeleted") == {"roomName": "Movie Night"}
        assert await bob.wait_for("roomDeleted") == {"roomName": "Movie Night"}
        for app in apps:
            assert app.state.context.registry.rooms == {}
        assert await stored_rooms(redis_prefix) == {}


@pytest.mark.redis
async def test_replacing_a_shared_room_on_import_tells_the_servers_holding_it(
    run: Runner, workdir: Path, redis_prefix: str
) -> None:
    run.storage(redis_prefix)
    app = create_app(Settings.model_validate({"storage": {"url": redis_prefix}}), provider=ListProvider())
    async with in_processes(app) as (connect,):
        ann: Peer = await connect("ann")
        await ann.login("ann")
        await ann.create("Movie Night")
        backup = workdir / "backup.jsonl"
        backup.write_bytes(a_room(mediaIds=["test:1", "test:2"]).to_json() + b"\n")
        ran = await run("import", str(backup), "--replace")
        assert ran.status == 0
        assert await ann.wait_for("roomDeleted") == {"roomName": "Movie Night"}
        carol: Peer = await connect("carol")
        await carol.login("carol")
        joined = await carol.join("Movie Night", password="popcorn")
        assert [item["id"] for item in joined["media"]] == ["test:1", "test:2"]
