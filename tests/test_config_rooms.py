"""config.yaml's standing rooms (``rooms``): what a definition may say, and problems that name the
entry and its key."""

from __future__ import annotations

from pathlib import Path

import pytest

from server import __main__ as cli
from server.config import ConfigError, load_settings
from storage import Filter

REPO = Path(__file__).resolve().parent.parent
PASSWORD = "pw-5c1e-never-shown"


def write(path: Path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    return str(path)


def problems_of(path: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_settings(path, {})
    return caught.value.problems


def test_the_example_rooms_are_valid(tmp_path: Path) -> None:
    text = (REPO / "config.example.yaml").read_text()
    block = text[text.index("# rooms:") : text.index("standing_room_refresh:")]
    path = write(tmp_path / "c.yaml", "\n".join(line.removeprefix("# ") for line in block.splitlines()))
    [kids] = load_settings(path, {}).rooms
    request = kids.request()
    assert (request.roomName, request.libraries, request.roomType) == ("Kids", ["plex-1a2b3c4d:1"], "standard")
    assert request.filters == [Filter(key="contentRating", operator="=", value=["G", "PG"])]
    assert request.password == "change-me"
    assert request.endConditions is not None
    assert request.endConditions.likes == 10


def test_a_definition_takes_what_create_room_takes(tmp_path: Path) -> None:
    path = write(
        tmp_path / "c.yaml",
        "rooms:\n"
        "  - name: ' Nineties '\n"
        "    filters:\n"
        "      - {key: year, operator: '>>=', value: 1990}\n"
        "      - {key: watched, operator: '=', value: true}\n"
        "      - {key: library, operator: '=', value: [test:test]}\n"
        "    room_type: unanimous\n"
        "    sort_order: newest\n"
        "    end_conditions: {matches: 3, minutes: 90}\n",
    )
    [room] = load_settings(path, {}).rooms
    request = room.request()
    assert request.roomName == "Nineties"
    # As rooms store them: one value alone is a list, numbers are text, the fork's spellings are Plex's.
    assert request.filters == [
        Filter(key="year", operator=">>=", value=["1990"]),
        Filter(key="unwatched", operator="=", value=["0"]),
    ]
    assert request.libraries == ["test:test"]
    assert (request.roomType, request.sortOrder, request.matchThreshold) == ("unanimous", "newest", 2)
    assert request.endConditions is not None
    assert (request.endConditions.matches, request.endConditions.minutes) == (3, 90)


def test_every_problem_names_the_entry_and_its_key(tmp_path: Path) -> None:
    path = write(
        tmp_path / "c.yaml",
        "rooms:\n"
        "  - name: Kids\n"
        "  - name: '  '\n"
        "  - name: Horror\n"
        "    match_threshold: 1\n"
        "    room_type: duo\n"
        "    end_conditions: {matches: 0, minute: 3}\n"
        "  - name: Library\n"
        "    filters: [{key: library, operator: '!=', value: x}]\n"
        "  - name: Empty\n"
        "    filters: [{key: genre, operator: '='}]\n"
        "    colour: red\n"
        "  - libraries: [x]\n",
    )
    assert problems_of(path) == [
        "rooms[1].name: must not be blank (got '  ')",
        "rooms[2] (Horror).room_type: must be one of standard, unanimous, solo (got 'duo')",
        "rooms[2] (Horror).match_threshold: must be an integer between 2 and 1000 (got 1)",
        "rooms[2] (Horror).end_conditions.matches: must be greater than or equal to 1 (got 0)",
        "rooms[2] (Horror).end_conditions.minute: unknown key",
        "rooms[3] (Library).filters: a library filter takes operator =, not '!='",
        "rooms[4] (Empty).filters[0].value: is required",
        "rooms[4] (Empty).colour: unknown key",
        "rooms[5].name: is required",
    ]


def test_two_entries_for_one_room_are_a_problem(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", "rooms:\n  - name: Kids\n  - name: Horror\n  - name: KIDS\n")
    assert problems_of(path) == ["rooms[2] (KIDS).name: looks the same as rooms[0] (Kids)"]


def test_a_name_longer_than_members_may_type_is_a_problem(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", "max_name_length: 8\nrooms:\n  - name: Saturday night\n")
    assert problems_of(path) == [
        "rooms[0] (Saturday night).name: must be at most 8 characters (max_name_length)",
    ]


@pytest.mark.parametrize("value", [PASSWORD, "12345678", "[1, 2]"])
def test_a_room_password_never_shows(tmp_path: Path, value: str) -> None:
    path = write(tmp_path / "c.yaml", f"rooms:\n  - name: Kids\n    password: {value}\n    room_type: duo\n")
    shown = "\n".join(problems_of(path))
    assert "room_type" in shown
    assert value not in shown
    settings = load_settings(write(tmp_path / "ok.yaml", f"rooms:\n  - name: Kids\n    password: {PASSWORD}\n"), {})
    assert PASSWORD in settings.secrets()  # removed from every log line
    assert PASSWORD not in repr(settings)
    assert PASSWORD not in str(settings.masked())


def test_a_blank_password_is_a_problem(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", "rooms:\n  - name: Kids\n    password: ' '\n")
    assert problems_of(path) == ["rooms[0] (Kids).password: must not be empty"]


def test_main_exits_2_naming_the_entry(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path / "c.yaml", "rooms:\n  - name: Kids\n    sort_order: alphabetical\n")
    with pytest.raises(SystemExit) as caught:
        cli.main(["--config", path])
    assert caught.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        "moviematch: invalid configuration:",
        "  rooms[0] (Kids).sort_order: must be one of random, newest, oldest, rating (got 'alphabetical')",
    ]


def test_the_refresh_interval_has_an_environment_variable() -> None:
    assert load_settings("/dev/null", {"STANDING_ROOM_REFRESH": "600"}).standing_room_refresh == 600
    assert load_settings("/dev/null", {}).standing_room_refresh == 3600
