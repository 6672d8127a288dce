"""What only the JSON-file backend promises: file names, permissions, ownership, recovery, legacy files."""

from __future__ import annotations

import json
import logging
import os
import stat
import subprocess
import sys
import time
import unicodedata
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import anyio
import pytest
from hypothesis import given, settings, strategies as st

from storage import SerializedRoom, StorageError, room_key, verify_password
from storage.atomic import write_atomic
from storage.errors import UnreadableRoom
from storage.file import (
    DECK_SUFFIX,
    INDEX_FILE,
    LOCK_FILE,
    ROOM_FILE,
    FileStorage,
    deck_file_name,
    room_file_name,
)
from storage.room import deck_digest
from storage.schema import SCHEMA_VERSION
from storage.summary import summarise
from tests.services import read_only_directory

pytestmark = pytest.mark.anyio

PROJECT = Path(__file__).resolve().parent.parent
LEGACY_ROOM = {
    "roomName": "movie-night",
    "password": "secret",
    "sort": "random",
    "createdAt": "2025-10-25T12:00:00.000Z",
    "creatorPlexUserId": "12345",
    "creatorPlexUsername": "john",
    "filters": [],
    "options": [],
    "ratings": {"movie-123": [["john", "like", 1729890000000], ["jane", "like", 1729890005000]]},
    "userProgress": {"john": 5, "jane": 3},
}
# Holds the directory until its stdin closes.
LOCK_HOLDER = """
import sys
from pathlib import Path

import anyio
from storage.file import FileStorage

async def main() -> None:
    async with FileStorage(Path(sys.argv[1])):
        print("ready", flush=True)
        await anyio.to_thread.run_sync(sys.stdin.read)

anyio.run(main)
"""


@pytest.fixture
async def storage(rooms_dir: Path) -> AsyncIterator[FileStorage]:
    async with FileStorage(rooms_dir) as backend:
        yield backend


@pytest.fixture
def existing_dir(rooms_dir: Path) -> Path:
    rooms_dir.mkdir()
    return rooms_dir


def room(name: str = "Movie Night", **fields: object) -> SerializedRoom:
    return SerializedRoom.model_validate({"roomName": name, **fields})


def room_files(directory: Path) -> list[str]:
    """The names a listing of the directory shows, without our dot files."""
    return sorted(name for name in os.listdir(directory) if not name.startswith("."))


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "storage.file" and r.levelno >= logging.WARNING]


async def reopened(directory: Path) -> list[str]:
    async with FileStorage(directory) as storage:
        return sorted(await storage.list_room_names())


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@contextmanager
def umask(mask: int) -> Iterator[None]:
    previous = os.umask(mask)
    try:
        yield
    finally:
        os.umask(previous)


# File names.


async def test_names_with_one_slug_get_distinct_files(storage: FileStorage, rooms_dir: Path) -> None:
    for name in ["a b", "a_b", "A-B!"]:
        await storage.save_room(room(name))
    assert len(room_files(rooms_dir)) == 3
    assert all(name.startswith("a-b-") for name in room_files(rooms_dir))
    for name in ["a b", "a_b", "A-B!"]:
        found = await storage.get_room(name)
        assert found is not None
        assert found.room_name == name


@pytest.mark.parametrize(
    ("first", "second"),
    [("A B", "a b"), ("Straße", "STRASSE"), ("Caf\u00e9", "Cafe\u0301"), ("Cafe\u0301", "  CAF\u00c9 ")],
)
async def test_spellings_of_one_key_share_one_file(
    storage: FileStorage, rooms_dir: Path, first: str, second: str
) -> None:
    await storage.save_room(room(first))
    assert await storage.has_room(second)
    assert storage.room_path(first) == storage.room_path(second)
    await storage.save_room(room(second, userProgress={"ann": 1}))
    assert room_files(rooms_dir) == [storage.room_path(first).name]
    # The display name follows the latest save, also after a restart (the index learnt it).
    await storage.close()
    assert await reopened(rooms_dir) == [second]


@pytest.mark.parametrize(
    ("name", "readable_part"),
    [
        ("..", ""),
        ("../x", "x-"),
        ("/", ""),
        ("/etc/passwd", "etc-passwd-"),
        ("a\x00b", "a-b-"),
        ("x" * 10_000, "x" * 40 + "-"),
        ("CON", "con-"),
        ("nul.json", "nul-json-"),
        ("\uff0e\uff0e\uff0fx", "x-"),
        ("🎬🍿", ""),
        ("🎬 Movie Night", "movie-night-"),
        ("Crème brûlée", "creme-brulee-"),
    ],
)
async def test_hostile_names_stay_inside_the_directory(
    storage: FileStorage, rooms_dir: Path, name: str, readable_part: str
) -> None:
    saved = room(name)
    await storage.save_room(saved)
    path = storage.room_path(name)
    assert path.parent == rooms_dir
    assert ROOM_FILE.fullmatch(path.name)
    assert path.name.startswith(readable_part)
    assert len(path.name.encode()) <= 255
    assert room_files(rooms_dir) == [path.name]
    assert sorted(os.listdir(rooms_dir)) == sorted([INDEX_FILE, LOCK_FILE, path.name])
    assert await storage.get_room(name) == saved


@settings(max_examples=500, deadline=None)
@given(data=st.data())
def test_two_names_share_a_file_exactly_when_they_share_a_key(data: st.DataObject) -> None:
    # Any code point, lone surrogates included; the second name is often a respelling of the first.
    any_text = st.text(st.characters(exclude_categories=()), min_size=1)
    first = data.draw(any_text)
    respellings = st.sampled_from(
        [first.upper(), first.casefold(), f" {first}\t", unicodedata.normalize("NFD", first), first + "x"]
    )
    second = data.draw(any_text | respellings)
    for name in (first, second):
        assert ROOM_FILE.fullmatch(room_file_name(name))
    assert (room_file_name(first) == room_file_name(second)) == (room_key(first) == room_key(second))


# Permissions and ownership.


async def test_directory_is_private_and_files_owner_only(rooms_dir: Path) -> None:
    with umask(0):
        async with FileStorage(rooms_dir) as storage:
            await storage.save_room(room())
            await storage.save_room(room())
            assert mode_of(rooms_dir) == 0o700
            for name in os.listdir(rooms_dir):
                assert mode_of(rooms_dir / name) == 0o600, name


async def test_a_second_storage_on_the_directory_is_refused(storage: FileStorage, rooms_dir: Path) -> None:
    second = FileStorage(rooms_dir)
    with pytest.raises(StorageError, match=rf"is in use by another MovieMatch process \(pid {os.getpid()}\)"):
        await second.open()
    await storage.close()
    async with second:
        assert await second.has_room("nothing") is False


def test_a_second_process_on_the_directory_is_refused(rooms_dir: Path) -> None:
    with subprocess.Popen(
        [sys.executable, "-c", LOCK_HOLDER, str(rooms_dir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=PROJECT,
    ) as holder:
        assert holder.stdin is not None
        assert holder.stdout is not None
        assert holder.stdout.readline() == "ready\n"
        with pytest.raises(StorageError) as caught:
            anyio.run(FileStorage(rooms_dir).open)
        assert f"{rooms_dir} is in use by another MovieMatch process (pid {holder.pid})" in str(caught.value)
        holder.stdin.close()
        assert holder.wait(timeout=30) == 0
    assert anyio.run(reopened, rooms_dir) == []


async def test_open_and_close_are_idempotent_and_bracket_every_operation(rooms_dir: Path) -> None:
    storage = FileStorage(rooms_dir)
    with pytest.raises(StorageError, match="not open"):
        await storage.save_room(room())
    await storage.open()
    await storage.open()
    await storage.save_room(room())
    await storage.close()
    await storage.close()
    for operation in [storage.has_room("Movie Night"), storage.get_room("Movie Night"), storage.list_room_names()]:
        with pytest.raises(StorageError, match="not open"):
            await operation


async def test_a_path_that_is_not_a_directory_is_refused(tmp_path: Path) -> None:
    occupied = tmp_path / "rooms"
    occupied.write_text("not a directory")
    with pytest.raises(StorageError, match=f"{occupied}.*not a directory"):
        await FileStorage(occupied).open()


def test_a_read_only_directory_is_refused(rooms_dir: Path) -> None:
    with read_only_directory(rooms_dir), pytest.raises(StorageError, match=f"{rooms_dir}.*not writable"):
        anyio.run(FileStorage(rooms_dir).open)


async def test_a_save_given_up_on_still_completes(
    storage: FileStorage, rooms_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def slow_write(path: Path, data: bytes) -> None:
        time.sleep(0.05)
        write_atomic(path, data)

    monkeypatch.setattr("storage.file.write_atomic", slow_write)
    with anyio.move_on_after(0.01):
        await storage.save_room(room())
    assert await storage.has_room("Movie Night")
    assert read_index(rooms_dir) == {room_file_name("Movie Night"): "Movie Night"}


# Damaged, foreign and leftover files.


async def test_a_corrupt_room_file_is_reported_skipped_and_kept(
    storage: FileStorage, rooms_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    await storage.save_room(room("Broken"))
    await storage.save_room(room("Fine"))
    broken = storage.room_path("Broken")
    broken.write_bytes(b'{"roomName": "Bro')
    with pytest.raises(StorageError) as caught:
        await storage.get_room("Broken")
    assert str(broken) in str(caught.value)
    assert caught.value.__cause__ is not None
    for _ in range(2):
        caplog.clear()
        assert [r.room_name for r in await storage.list_rooms()] == ["Fine"]
        [warning] = warnings_of(caplog)
        assert str(broken) in warning.getMessage()
    assert broken.read_bytes() == b'{"roomName": "Bro'
    # A restart does not read it (the index knows its name) and still does not stop on it.
    await storage.close()
    assert await reopened(rooms_dir) == ["Broken", "Fine"]


async def test_a_room_file_holding_another_room_is_refused(storage: FileStorage) -> None:
    await storage.save_room(room("Mine"))
    storage.room_path("Mine").write_bytes(room("Theirs").to_json())
    with pytest.raises(StorageError, match="Theirs"):
        await storage.get_room("Mine")


async def test_foreign_files_never_stop_the_server(existing_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    foreign = {"notes.json": b'{"hello": 1}', "garbage.json": b"\x00\xff", "readme.txt": b"hi"}
    for name, body in foreign.items():
        (existing_dir / name).write_bytes(body)
    (existing_dir / room_file_name("Half")).write_bytes(b"{")
    assert await reopened(existing_dir) == []
    assert len(warnings_of(caplog)) == 3
    assert room_files(existing_dir) == sorted([*foreign, room_file_name("Half")])


async def test_warnings_never_quote_a_password(existing_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    # Invalid (bad sort) and unparsable legacy files, both with a clear-text password.
    (existing_dir / "bad-sort.json").write_text(json.dumps({**LEGACY_ROOM, "sort": "bogus", "password": "s3cr3t-pw"}))
    (existing_dir / "torn.json").write_text(json.dumps(LEGACY_ROOM | {"password": "s3cr3t-pw"})[:-3])
    assert await reopened(existing_dir) == []
    assert len(warnings_of(caplog)) == 2
    assert "s3cr3t-pw" not in caplog.text


async def test_leftover_temp_files_are_removed_on_open(storage: FileStorage, rooms_dir: Path) -> None:
    await storage.save_room(room())
    await storage.close()
    leftovers = [f".{room_file_name('Movie Night')}.k2j3h4.tmp", f".{INDEX_FILE}.a8s7d6.tmp", ".x.json.q.tmp"]
    for name in leftovers:
        (rooms_dir / name).write_bytes(b'{"roomName": "Ghost"')
    assert await reopened(rooms_dir) == ["Movie Night"]
    assert not [name for name in os.listdir(rooms_dir) if name.endswith(".tmp")]


# Legacy files of the original server.


async def test_a_legacy_room_file_is_adopted(existing_dir: Path) -> None:
    legacy = existing_dir / "movie-night.json"
    legacy.write_text(json.dumps(LEGACY_ROOM))
    async with FileStorage(existing_dir) as storage:
        adopted = await storage.get_room("Movie-Night")
        assert adopted is not None
        assert adopted.room_name == "movie-night"
        assert adopted.ratings == {"movie-123": [("john", "like", 1729890000000), ("jane", "like", 1729890005000)]}
        assert adopted.user_progress == {"john": 5, "jane": 3}
        assert adopted.password_hash is not None
        assert verify_password("secret", adopted.password_hash)
        assert room_files(existing_dir) == [storage.room_path("movie-night").name]
    assert not legacy.exists()
    for name in os.listdir(existing_dir):
        assert b"secret" not in (existing_dir / name).read_bytes(), name
    assert await reopened(existing_dir) == ["movie-night"]


async def test_a_legacy_file_for_a_stored_room_is_left_alone(rooms_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    async with FileStorage(rooms_dir) as storage:
        await storage.save_room(room("Movie-Night", userProgress={"ann": 7}))
    legacy = rooms_dir / "movie-night.json"
    legacy.write_text(json.dumps(LEGACY_ROOM))
    async with FileStorage(rooms_dir) as storage:
        kept = await storage.get_room("movie-night")
        assert kept is not None
        assert kept.user_progress == {"ann": 7}
    assert legacy.exists()
    [warning] = warnings_of(caplog)
    assert "secret" not in warning.getMessage()


# The index.


async def save_rooms(directory: Path, names: list[str]) -> None:
    async with FileStorage(directory) as storage:
        for name in names:
            await storage.save_room(room(name))


def read_index(directory: Path) -> dict[str, str]:
    index: dict[str, str] = json.loads((directory / INDEX_FILE).read_bytes())
    return index


async def test_a_lost_index_is_rebuilt(rooms_dir: Path) -> None:
    await save_rooms(rooms_dir, ["One", "Two"])
    (rooms_dir / INDEX_FILE).unlink()
    assert await reopened(rooms_dir) == ["One", "Two"]
    assert read_index(rooms_dir) == {room_file_name(n): n for n in ["One", "Two"]}


async def test_an_unreadable_index_is_rebuilt(rooms_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    await save_rooms(rooms_dir, ["One"])
    for damage in [b"{", b'["One"]', b'{"x.json": 1}']:
        (rooms_dir / INDEX_FILE).write_bytes(damage)
        assert await reopened(rooms_dir) == ["One"]
    assert len(warnings_of(caplog)) == 3


async def test_room_files_added_or_removed_behind_its_back_are_reconciled(rooms_dir: Path) -> None:
    await save_rooms(rooms_dir, ["One", "Two"])
    # As a crash between a new room's write and its index write leaves it.
    write_atomic(rooms_dir / room_file_name("Three"), room("Three").to_json())
    (rooms_dir / room_file_name("One")).unlink()
    assert await reopened(rooms_dir) == ["Three", "Two"]
    assert read_index(rooms_dir) == {room_file_name(n): n for n in ["Three", "Two"]}


async def test_an_index_entry_that_does_not_match_its_file_is_checked(rooms_dir: Path) -> None:
    await save_rooms(rooms_dir, ["One"])
    (rooms_dir / INDEX_FILE).write_text(json.dumps({room_file_name("One"): "Impostor"}))
    assert await reopened(rooms_dir) == ["One"]


async def test_concurrent_new_rooms_all_reach_the_index(storage: FileStorage, rooms_dir: Path) -> None:
    names = [f"room {i}" for i in range(40)]
    async with anyio.create_task_group() as tg:
        for name in names:
            tg.start_soon(storage.save_room, room(name))
    assert sorted(read_index(rooms_dir).values()) == sorted(names)
    async with anyio.create_task_group() as tg:
        for name in names[:20]:
            tg.start_soon(storage.delete_room, name)
    assert sorted(read_index(rooms_dir).values()) == sorted(names[20:])


async def test_opening_many_rooms_reads_no_room_body(existing_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    names = [f"Room {i}" for i in range(10_000)]
    # Every body is unreadable: reading any of them would log a warning and drop the room.
    for name in names:
        (existing_dir / room_file_name(name)).write_bytes(b"{")
    (existing_dir / INDEX_FILE).write_text(json.dumps({room_file_name(name): name for name in names}))
    started = time.perf_counter()
    async with FileStorage(existing_dir) as storage:
        opened = time.perf_counter() - started
        started = time.perf_counter()
        listed = await storage.list_room_names()
        listing = time.perf_counter() - started
        started = time.perf_counter()
        for name in names[:1000]:
            assert await storage.has_room(name.upper())
        lookup = (time.perf_counter() - started) / 1000
        assert not await storage.has_room("Room 10000")
        with pytest.raises(StorageError):
            await storage.get_room("Room 1")
    assert not warnings_of(caplog)
    assert sorted(listed) == sorted(names)
    assert opened < 2.0
    assert listing < 0.05
    assert lookup < 0.0001


# Rooms of every version.

FIXTURES = PROJECT / "tests" / "fixtures" / "rooms"


def copy_fixture(name: str, directory: Path) -> None:
    directory.mkdir()
    for path in (FIXTURES / name).iterdir():
        (directory / path.name).write_bytes(path.read_bytes())


@pytest.mark.parametrize("fixture", ["0-fork", "1-file", "2-file", "3-file"])
async def test_room_files_of_every_version_load_and_are_written_back_in_this_one(rooms_dir: Path, fixture: str) -> None:
    copy_fixture(fixture, rooms_dir)
    async with FileStorage(rooms_dir) as storage:
        room = await storage.get_room("movie night")
        assert room is not None
        assert room.room_name == "Movie Night"
        assert room.schema_version == SCHEMA_VERSION
        assert (room.unwatched is not None) == (fixture == "3-file")
        assert room.password_hash is not None
        assert verify_password("popcorn", room.password_hash)
        if fixture == "0-fork":
            assert (room.room_type, room.libraries, room.media_ids) == ("async", ["demo:demo"], None)
            continue_with = room.model_copy(update={"media_ids": ["demo:3", "demo:1"]})
        else:
            assert room.media_ids == ["demo:1", "demo:3", "demo:2", "demo:5", "demo:4"]
            assert room.ratings["demo:3"] == [("ann", "like", 1795822300000), ("bob", "like", 1795822310000)]
            continue_with = room
        # Loading wrote nothing; the next save writes the current layout.
        await storage.save_room(continue_with)
    written = json.loads(room_path_in(rooms_dir).read_bytes())
    assert written["schemaVersion"] == SCHEMA_VERSION
    assert "mediaIds" not in written
    assert written["deck"]["size"] == len(continue_with.media_ids or [])
    async with FileStorage(rooms_dir) as storage:
        assert await storage.get_room("Movie Night") == continue_with


def room_path_in(directory: Path, name: str = "Movie Night") -> Path:
    return directory / room_file_name(name)


def deck_files(directory: Path) -> list[str]:
    return sorted(name for name in os.listdir(directory) if name.endswith(DECK_SUFFIX))


# The deck: written once, in a file of its own.


async def test_the_deck_is_written_once_and_saves_cost_the_same_at_any_deck_size(
    storage: FileStorage, rooms_dir: Path
) -> None:
    sizes, deck_bytes = {}, {}
    for films in (100, 100_000):
        name = f"films {films:06d}"
        deck = [f"plex:{n}" for n in range(films)]
        await storage.save_room(room(name, mediaIds=deck))
        [deck_file] = [rooms_dir / d for d in deck_files(rooms_dir) if d.startswith(f"films-{films:06d}-")]
        first = deck_file.stat()
        for n in range(3):
            await storage.save_room(room(name, mediaIds=deck, userProgress={"ann": n}))
        again = deck_file.stat()
        assert (again.st_ino, again.st_mtime_ns) == (first.st_ino, first.st_mtime_ns)
        sizes[films] = storage.room_path(name).stat().st_size
        deck_bytes[films] = again.st_size
        stored = await storage.get_room(name)
        assert stored is not None
        assert stored.media_ids == deck
        assert stored.user_progress == {"ann": 2}
    # The room file holds the deck's digest and lengths (films twice, bytes once), nothing that
    # grows with it: a few digits more for a deck of over a megabyte.
    digits = {films: len(str(films)) * 2 + len(str(deck_bytes[films])) for films in sizes}
    assert sizes[100_000] - sizes[100] == digits[100_000] - digits[100]


async def test_a_new_deck_replaces_the_old_one(storage: FileStorage, rooms_dir: Path) -> None:
    await storage.save_room(room(mediaIds=["a", "b"]))
    [old] = deck_files(rooms_dir)
    await storage.save_room(room(mediaIds=["b", "a"]))
    [new] = deck_files(rooms_dir)
    assert new != old
    stored = await storage.get_room("Movie Night")
    assert stored is not None
    assert stored.media_ids == ["b", "a"]
    await storage.save_room(room())
    assert deck_files(rooms_dir) == []
    await storage.save_room(room(mediaIds=["c"]))
    await storage.delete_room("Movie Night")
    assert sorted(os.listdir(rooms_dir)) == sorted([INDEX_FILE, LOCK_FILE])


async def test_decks_no_room_refers_to_are_removed_on_open(rooms_dir: Path) -> None:
    async with FileStorage(rooms_dir) as storage:
        await storage.save_room(room(mediaIds=["a", "b"]))
        await storage.save_room(room("Other", mediaIds=["x"]))
    [kept, other] = deck_files(rooms_dir)
    # As crashes leave them: a room's previous deck, and the deck of a room never written or deleted.
    stale = deck_file_name(room_file_name("Movie Night"), "0" * 24)
    orphan = deck_file_name(room_file_name("Gone"), "1" * 24)
    for name in (stale, orphan):
        (rooms_dir / name).write_bytes(b'["old"]')
    assert await reopened(rooms_dir) == ["Movie Night", "Other"]
    assert deck_files(rooms_dir) == [kept, other]
    async with FileStorage(rooms_dir) as storage:
        stored = await storage.get_room("movie night")
        assert stored is not None
        assert stored.media_ids == ["a", "b"]


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        ("delete", "deck file .* is missing"),
        ("corrupt", "does not match its digest"),
        ("shorten", "holds 1 films, not 2"),
    ],
)
async def test_a_room_whose_deck_is_damaged_is_unreadable(
    storage: FileStorage, rooms_dir: Path, damage: str, reason: str
) -> None:
    await storage.save_room(room(mediaIds=["a", "b"]))
    deck = storage.deck_path("Movie Night")
    assert deck is not None
    if damage == "delete":
        deck.unlink()
    elif damage == "corrupt":
        deck.write_bytes(b'["a","c"]')
    else:
        # A deck that matches a digest, but not the length the room file gives.
        body = json.loads(storage.room_path("Movie Night").read_bytes())
        new_deck = b'["a"]'
        body["deck"]["digest"] = deck_digest(new_deck)
        storage.room_path("Movie Night").write_text(json.dumps(body))
        deck_file = rooms_dir / deck_file_name(room_file_name("Movie Night"), body["deck"]["digest"])
        deck_file.write_bytes(new_deck)
    with pytest.raises(UnreadableRoom, match=reason):
        await storage.get_room("Movie Night")
    [unreadable] = storage.unreadable_rooms()
    assert unreadable.location == str(storage.room_path("Movie Night"))
    assert unreadable.room_name == "Movie Night"
    await storage.save_room(room(mediaIds=["a", "b"]))
    assert storage.unreadable_rooms() == []


# Read-only: the host's tools beside a running server.


def listing(directory: Path) -> dict[str, tuple[int, int]]:
    return {entry.name: (entry.stat().st_ino, entry.stat().st_mtime_ns) for entry in os.scandir(directory)}


async def test_a_read_only_storage_reads_a_directory_another_one_owns(storage: FileStorage, rooms_dir: Path) -> None:
    await storage.save_room(room(mediaIds=["a", "b"], userProgress={"ann": 1}))
    (rooms_dir / ".leftover.json.x.tmp").write_bytes(b"{")
    before = listing(rooms_dir)
    async with FileStorage(rooms_dir, read_only=True) as reader:
        assert reader.read_only
        seen = await reader.get_room("movie night")
        assert seen is not None
        assert (seen.media_ids, seen.user_progress) == (["a", "b"], {"ann": 1})
        # The owner saves meanwhile, with a new deck (the old one is removed): the reader follows.
        await storage.save_room(room(mediaIds=["b", "a"], userProgress={"ann": 2}))
        again = await reader.get_room("movie night")
        assert again is not None
        assert (again.media_ids, again.user_progress) == (["b", "a"], {"ann": 2})
        [summary] = await reader.list_summaries()
        assert summary.ratings == 2  # ann's progress
        for write in (reader.save_room(room()), reader.delete_room("Movie Night"), reader.create_room(room("New"))):
            with pytest.raises(StorageError, match="read-only"):
                await write
        await storage.delete_room("Movie Night")
        assert await reader.get_room("movie night") is None
    after = listing(rooms_dir)
    assert ".leftover.json.x.tmp" in after
    assert set(before) - set(after) == {room_file_name("Movie Night"), *deck_names(before)}


def deck_names(files: Mapping[str, object]) -> list[str]:
    return [name for name in files if name.endswith(DECK_SUFFIX)]


async def test_a_read_only_storage_needs_the_directory(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="no such directory"):
        await FileStorage(tmp_path / "absent", read_only=True).open()
    assert not (tmp_path / "absent").exists()


async def test_a_read_only_storage_reads_legacy_files_where_they_are(existing_dir: Path) -> None:
    legacy = existing_dir / "movie-night.json"
    legacy.write_text(json.dumps(LEGACY_ROOM))
    async with FileStorage(existing_dir, read_only=True) as reader:
        assert await reader.list_room_names() == ["movie-night"]
        found = await reader.get_room("Movie-Night")
        assert found is not None
        assert found.user_progress == {"john": 5, "jane": 3}
        [summary] = await reader.list_summaries()
        # Its ratings as its members' progress says (5 + 3: the storage design's example file).
        assert (summary.name, summary.ratings, summary.size) == ("movie-night", 8, legacy.stat().st_size)
    assert os.listdir(existing_dir) == ["movie-night.json"]


# Summaries and unreadable rooms.


async def test_summaries_count_what_the_room_holds_and_its_files(storage: FileStorage) -> None:
    stored = room(
        members={"ann": {"joinedAt": 1}, "bob": {"joinedAt": 2}},
        ratings={"m1": [["ann", "like", 5], ["bob", "like", 6]], "m2": [["ann", "dislike", 7]]},
        userProgress={"ann": 2, "bob": 1},
        matches={"m1": 6},
        mediaIds=["m1", "m2", "m3"],
        createdAt="2026-01-02T03:04:05Z",
        openedAt="2026-01-03T00:00:00Z",
    )
    await storage.save_room(stored)
    await storage.save_room(room("No deck"))
    deck = storage.deck_path("Movie Night")
    assert deck is not None
    summaries = {summary.name: summary for summary in await storage.list_summaries()}
    assert summaries["Movie Night"] == summarise(
        stored, storage.room_path("Movie Night").stat().st_size + deck.stat().st_size
    )
    assert (summaries["Movie Night"].members, summaries["Movie Night"].ratings) == (2, 3)
    assert (summaries["Movie Night"].matches, summaries["Movie Night"].films) == (1, 3)
    assert summaries["No deck"].films is None


async def test_a_listing_reads_the_head_of_each_room_file_only(rooms_dir: Path) -> None:
    async with FileStorage(rooms_dir) as storage:
        await storage.save_room(room("One", userProgress={"ann": 1}, mediaIds=["a"]))
        await storage.save_room(room("Two"))
        [expected_one, expected_two] = sorted(await storage.list_summaries(), key=lambda s: s.name)
    one = rooms_dir / room_file_name("One")
    head_end = one.read_bytes().index(b"},") + 2
    # Past its head, the file is garbage now: a listing still reads it as it was; a read does not.
    one.write_bytes(one.read_bytes()[:head_end] + b"\0" * (one.stat().st_size - head_end))
    two = rooms_dir / room_file_name("Two")
    body = json.loads(two.read_bytes())
    del body["summary"]  # as a room file written before heads existed: read whole
    two.write_text(json.dumps(body))
    async with FileStorage(rooms_dir, read_only=True) as reader:
        one_listed, two_listed = sorted(await reader.list_summaries(), key=lambda s: s.name)
        assert one_listed == expected_one
        assert two_listed == expected_two.model_copy(update={"size": two.stat().st_size})
        assert reader.unreadable_rooms() == []
        with pytest.raises(UnreadableRoom):
            await reader.get_room("One")


async def test_check_reads_every_room_and_reports_the_unreadable_ones(rooms_dir: Path) -> None:
    async with FileStorage(rooms_dir) as storage:
        for name in ("Fine", "Torn", "Newer"):
            await storage.save_room(room(name, mediaIds=["a"]))
    (rooms_dir / room_file_name("Torn")).write_bytes(b'{"roomName": "To')
    newer = json.loads((rooms_dir / room_file_name("Newer")).read_bytes()) | {"schemaVersion": 99}
    (rooms_dir / room_file_name("Newer")).write_text(json.dumps(newer))
    (rooms_dir / "garbage.json").write_bytes(b"\xff")
    async with FileStorage(rooms_dir) as storage:
        # Opening read no indexed room: only the foreign file is known to be unreadable yet.
        assert [u.location for u in storage.unreadable_rooms()] == [str(rooms_dir / "garbage.json")]
        found = {u.room_name or Path(u.location).name: u.reason for u in await storage.check()}
        assert sorted(found) == ["Newer", "Torn", "garbage.json"]
        assert "newer MovieMatch" in found["Newer"]
        assert "not UTF-8" in found["garbage.json"]
        await storage.delete_room("Torn")
        assert sorted(u.room_name or "" for u in storage.unreadable_rooms()) == ["", "Newer"]
