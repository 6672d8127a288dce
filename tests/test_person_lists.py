"""Per-person lists beyond the shared contract (tests/test_storage_contract.py): where the file
backend keeps them, what it does with a damaged file, and backends written before lists existed."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from storage import SerializedRoom, Storage, StorageError, create_storage
from storage.keys import key_digest

pytestmark = pytest.mark.anyio

ANN = "device:" + "a" * 64


async def test_the_file_backend_keeps_a_private_file_per_person_beside_the_rooms(tmp_path: Path) -> None:
    rooms = tmp_path / "rooms"
    async with create_storage(f"file:{rooms}") as storage:
        await storage.save_room(SerializedRoom.model_validate({"roomName": "Movie Night"}))
        await storage.change_list(ANN, "watchlist", put={"m1": "one"})
    path = rooms / ".lists" / f"{key_digest(ANN)}.json"
    assert json.loads(path.read_text()) == {"identity": ANN, "lists": {"watchlist": {"m1": "one"}}}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    # Reopening reads rooms as before: the lists are no room, and no legacy room file either.
    async with create_storage(f"file:{rooms}") as storage:
        assert await storage.list_room_names() == ["Movie Night"]
    assert path.exists()


@pytest.mark.parametrize("content", [b"{not json", b'{"identity": "device:other", "lists": {}}', b'{"identity": 1}'])
async def test_a_damaged_lists_file_is_a_storage_error_and_stays_for_inspection(tmp_path: Path, content: bytes) -> None:
    rooms = tmp_path / "rooms"
    async with create_storage(f"file:{rooms}") as storage:
        await storage.change_list(ANN, "watchlist", put={"m1": "one"})
        path = rooms / ".lists" / f"{key_digest(ANN)}.json"
        path.write_bytes(content)
        for attempt in (storage.read_list(ANN, "watchlist"), storage.change_list(ANN, "watchlist", put={"m2": "x"})):
            with pytest.raises(StorageError) as caught:
                await attempt
            assert str(path) in str(caught.value)
    assert path.read_bytes() == content


class _RoomsOnly(Storage):
    """A third-party backend written before per-person lists: rooms only."""

    async def save_room(self, room: SerializedRoom) -> None: ...
    async def get_room(self, room_name: str) -> SerializedRoom | None:
        return None

    async def delete_room(self, room_name: str) -> None: ...
    async def has_room(self, room_name: str) -> bool:
        return False

    async def list_room_names(self) -> list[str]:
        return []


async def test_a_backend_without_lists_still_serves_rooms_and_says_why_lists_fail() -> None:
    backend = _RoomsOnly()
    assert await backend.healthy()
    with pytest.raises(StorageError, match="_RoomsOnly keeps no per-person lists"):
        await backend.read_list(ANN, "watchlist")
    with pytest.raises(StorageError, match="keeps no per-person lists"):
        await backend.change_list(ANN, "watchlist", put={"m1": "one"})
