"""SerializedRoom's JSON form, room identity (keys and ids) and room passwords."""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, example, given, strategies as st

from storage import Filter, Member, SerializedRoom, Unwatched, hash_password, readable_id, room_key, verify_password
from storage.keys import key_digest
from storage.schema import SCHEMA_VERSION, STEPS
from tests.strategies import PASSWORD_HASH, room_names, rooms

FIXTURES = Path(__file__).parent / "fixtures" / "rooms"
# The storage design's "Room File Structure" example, a file of the TypeScript server; the design
# elides createdAt, filters and options ("..."), filled in there with values of upstream's shape.
TYPESCRIPT_ROOM_FILE = (FIXTURES / "0-typescript" / "movie-night.json").read_text()
FORK_ROOM_FILE = (FIXTURES / "0-fork" / "Movie_Night.json").read_text()
[V1_ROOM_FILE] = (FIXTURES / "1-file").glob("*.json")

LOADERS: dict[str, Callable[[str], SerializedRoom]] = {
    "from_dict": lambda text: SerializedRoom.from_dict(json.loads(text)),
    "from_json": SerializedRoom.from_json,
}
# Any Unicode, lone surrogates included: they survive JSON decoding of "\\ud800" escapes.
any_text = st.text(st.characters(exclude_categories=()))


def keys_in(value: Any) -> set[str]:
    """Every object key anywhere in a JSON value, except the user-chosen keys of the id-keyed maps."""
    if isinstance(value, list):
        return set().union(*(keys_in(item) for item in value))
    if not isinstance(value, dict):
        return set()
    found = set(value)
    for key, item in value.items():
        if key in ("members", "ratings", "userProgress", "matches"):
            found |= set().union(*(keys_in(entry) for entry in item.values()))
        else:
            found |= keys_in(item)
    return found


@pytest.mark.parametrize("load", LOADERS.values(), ids=LOADERS.keys())
def test_a_typescript_room_file_loads(load: Callable[[str], SerializedRoom]) -> None:
    room = load(TYPESCRIPT_ROOM_FILE)
    assert room.room_name == "movie-night"
    assert room.room_key == "movie-night"
    assert room.sort == "random"
    assert room.created_at == datetime(2025, 10, 25, 21, tzinfo=UTC)
    assert (room.creator_plex_user_id, room.creator_plex_username) == ("12345", "john")
    assert room.filters == [Filter(key="genre", operator="=", value=["12"])]
    assert room.options == ["EndOnFirstMatch"]
    assert room.ratings == {"movie-123": [("john", "like", 1729890000000), ("jane", "like", 1729890005000)]}
    assert room.user_progress == {"john": 5, "jane": 3}
    assert (room.room_type, room.match_threshold, room.members, room.matches) == ("standard", 2, {}, {})


@pytest.mark.parametrize("load", LOADERS.values(), ids=LOADERS.keys())
def test_a_clear_text_password_becomes_a_hash(load: Callable[[str], SerializedRoom]) -> None:
    room = load(TYPESCRIPT_ROOM_FILE)
    assert room.password_hash is not None
    assert verify_password("secret", room.password_hash)
    assert not verify_password("Secret", room.password_hash)
    data = room.to_dict()
    assert "password" not in data
    assert "secret" not in json.dumps(data)
    assert b"secret" not in room.to_json()


def test_a_stored_hash_wins_over_a_clear_text_password() -> None:
    room = SerializedRoom.from_dict({"roomName": "r", "password": "secret", "passwordHash": PASSWORD_HASH})
    assert room.password_hash == PASSWORD_HASH
    assert b"secret" not in room.to_json()


def test_the_json_form_uses_camel_case_keys() -> None:
    room = SerializedRoom(
        room_name="Movie Night",
        password_hash=PASSWORD_HASH,
        created_at=datetime(2025, 10, 25, 21, tzinfo=UTC),
        creator_plex_user_id="12345",
        creator_plex_username="john",
        filters=[Filter(key="genre", operator="=", value=["12"])],
        members={"ann_b": Member(joined_at=1, token_hash="t", avatar_image="a", plex_user_id="p")},
        ratings={"media_1": [("ann_b", "like", 1000), ("bob", "dislike", 999)]},
        user_progress={"ann_b": 1, "bob": 1},
        media_ids=["media_1"],
        media_seed=7,
        matches={"media_1": 1000},
    )
    data = json.loads(room.to_json())
    assert data == room.to_dict()
    design_keys = {"roomName", "passwordHash", "sort", "createdAt", "creatorPlexUserId", "creatorPlexUsername"}
    design_keys |= {"filters", "options", "ratings", "userProgress"}
    assert design_keys <= data.keys()
    assert {"roomKey", "roomType", "matchThreshold", "mediaIds", "mediaSeed", "members"} <= data.keys()
    member = {"joinedAt": 1, "tokenHash": "t", "avatarImage": "a", "plexUserId": "p", "identity": None}
    assert data["members"]["ann_b"] == member | {"skeleton": "", "seenAt": 0, "offerHash": None, "offerUntil": 0}
    # Ratings are the original triples, in time order; user and media ids are kept as given.
    assert data["ratings"] == {"media_1": [["bob", "dislike", 999], ["ann_b", "like", 1000]]}
    assert data["userProgress"] == {"ann_b": 1, "bob": 1}
    assert data["createdAt"].startswith("2025-10-25T21:00:00")
    assert [key for key in keys_in(data) if "_" in key] == []


@pytest.mark.parametrize("value", ["secret", "", "scrypt", "scrypt$16384$8$1$c2FsdA==", "bcrypt$1$2$3$4$5"])
def test_an_invalid_password_hash_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match="passwordHash"):
        SerializedRoom.from_dict({"roomName": "r", "passwordHash": value})


@pytest.mark.parametrize("name", ["", " ", "\t\n", "\u3000"])
def test_a_blank_name_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match="roomName"):
        SerializedRoom.from_dict({"roomName": name})


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("  Movie Night\t", "movie night"),
        ("Café", "caf\u00e9"),
        ("Cafe\u0301", "caf\u00e9"),
        ("Straße", "strasse"),
        ("STRASSE", "strasse"),
        ("ẞ", "ss"),
        ("ﬁlm", "film"),
        ("ΣΊΣΥΦΟΣ", "σίσυφοσ"),
        ("σίσυφος", "σίσυφοσ"),
        # Turkish: dotted capital I folds to i + combining dot, dotless i stays itself.
        ("İstanbul", "i\u0307stanbul"),
        ("\u0131STANBUL", "\u0131stanbul"),
        # Folding yields j + combining caron, which NFC composes again.
        ("ǰ", "\u01f0"),
    ],
)
def test_room_key(name: str, key: str) -> None:
    assert room_key(name) == key


@pytest.mark.parametrize(
    ("one", "other"), [("İstanbul", "istanbul"), ("\u0131", "i"), ("a b", "a_b"), ("Cafe", "Café")]
)
def test_names_that_differ_are_different_rooms(one: str, other: str) -> None:
    assert room_key(one) != room_key(other)


@given(name=any_text)
def test_room_key_is_stable_under_normalisation(name: str) -> None:
    key = room_key(name)
    assert room_key(key) == key
    assert room_key(unicodedata.normalize("NFD", name)) == key


@pytest.mark.parametrize("stored_key", ["something else", "movie night", ""])
def test_room_key_is_recomputed_not_trusted(stored_key: str) -> None:
    room = SerializedRoom.from_dict({"roomName": "Movie Night", "roomKey": stored_key})
    assert room.room_key == "movie night"
    assert room.to_dict()["roomKey"] == "movie night"
    assert SerializedRoom(room_name="Movie Night", room_key=stored_key).room_key == "movie night"


@given(room=rooms())
def test_any_room_round_trips(room: SerializedRoom) -> None:
    assert SerializedRoom.from_dict(room.to_dict()) == room
    assert SerializedRoom.from_json(room.to_json()) == room
    assert SerializedRoom.from_dict(json.loads(json.dumps(room.to_dict()))) == room


@given(one=room_names, other=room_names)
@example(one="a b", other="a_b")
@example(one="Café", other="Cafe")
@example(one="x" * 40 + "a", other="x" * 40 + "b")
@example(one="İ", other="I")
def test_distinct_rooms_get_distinct_ids(one: str, other: str) -> None:
    one_key, other_key = room_key(one), room_key(other)
    assume(one_key != other_key)
    assert readable_id(one_key) != readable_id(other_key)
    assert key_digest(one_key) != key_digest(other_key)


@given(name=any_text | room_names)
@example(name=".")
@example(name="..")
@example(name="-")
@example(name="CON")
@example(name="é" * 200)
def test_readable_ids_are_safe_file_names(name: str) -> None:
    readable = readable_id(room_key(name))
    assert re.fullmatch(r"[a-z0-9-]{1,65}", readable)
    assert readable not in (".", "..")


def test_hashes_are_salted() -> None:
    one, other = hash_password("hunter2"), hash_password("hunter2")
    assert one != other
    assert verify_password("hunter2", one)
    assert verify_password("hunter2", other)


@pytest.mark.parametrize("password", ["hunter3", "", "Hunter2", "hunter2 ", "hunter"])
def test_a_wrong_password_is_rejected(password: str) -> None:
    assert not verify_password(password, PASSWORD_HASH)


@pytest.mark.parametrize(
    "stored",
    [
        "",
        "scrypt",
        "hunter2",
        "scrypt$16384$8$1$c2FsdA==",
        "pbkdf2$16384$8$1$c2FsdA==$c2FsdA==",
        "scrypt$16384$8$1$!!!!$!!!!",
        "scrypt$16384$8$1$c2FsdA==$é",
        "scrypt$n$8$1$c2FsdA==$c2FsdA==",
        "scrypt$3$8$1$c2FsdA==$c2FsdA==",
        "scrypt$16384$0$1$c2FsdA==$c2FsdA==",
        "scrypt$1048576$8$1$c2FsdA==$c2FsdA==",
        PASSWORD_HASH[:-8],
        PASSWORD_HASH + "$",
        "scrypt$-16384$8$1$c2FsdA==$c2FsdA==",
        f"scrypt${2**70}$8$1$c2FsdA==$c2FsdA==",
    ],
)
def test_a_malformed_hash_is_rejected_without_raising(stored: str) -> None:
    assert verify_password("hunter2", stored) is False


def test_a_users_second_rating_of_an_item_is_dropped() -> None:
    room = SerializedRoom.from_dict(
        {"roomName": "r", "ratings": {"m1": [["ann", "dislike", 5], ["bob", "like", 3], ["ann", "like", 2]]}}
    )
    assert room.ratings == {"m1": [("ann", "like", 2), ("bob", "like", 3)]}


# Schema versions.


def test_every_version_has_its_step() -> None:
    assert len(STEPS) == SCHEMA_VERSION == 3


@pytest.mark.parametrize("load", LOADERS.values(), ids=LOADERS.keys())
def test_a_fork_room_file_loads_with_its_filters_honoured(load: Callable[[str], SerializedRoom]) -> None:
    room = load(FORK_ROOM_FILE)
    assert room.schema_version == SCHEMA_VERSION
    assert (room.room_name, room.room_type, room.sort_order) == ("Movie Night", "async", "newest")
    assert room.libraries == ["demo:demo"]
    assert [(f.key, f.operator, f.value) for f in room.filters] == [
        # genreFilterMode "and": every genre, one filter each.
        ("genre", "=", ["Comedy"]),
        ("genre", "=", ["Drama"]),
        # The wizard's rating filter, then ratingFilter {min, max}.
        ("rating", ">>=", ["0"]),
        ("rating", "<<=", ["10"]),
        ("rating", ">>=", ["6.5"]),
        ("rating", "<<=", ["9"]),
        ("contentRating", "=", ["PG", "PG-13"]),
    ]
    assert room.password_hash is not None
    assert verify_password("popcorn", room.password_hash)
    stored = room.to_json()
    assert b"popcorn" not in stored
    for fork_only in (b"genreFilterMode", b"ratingFilter", b"contentRatingFilter", b'"password"'):
        assert fork_only not in stored
    assert room.ratings == {
        "demo:3": [("ann", "like", 1761937500000), ("bob", "like", 1761937512000)],
        "demo:1": [("ann", "dislike", 1761937490000)],
    }
    assert room.opened_at == datetime.fromtimestamp(1761937512, UTC)
    # Written in the current version, it reads back as itself: the upgrade ran once.
    assert SerializedRoom.from_json(stored) == room


def fork_room(**fields: object) -> SerializedRoom:
    return SerializedRoom.from_dict(
        {"roomName": "r", "creatorPlexUserId": "", "createdAt": "2025-01-01T00:00:00Z", **fields}
    )


def test_genre_filter_mode_or_keeps_one_filter_for_any_of_the_genres() -> None:
    genres = {"key": "genre", "operator": "=", "value": ["Comedy", "Drama"]}
    for mode in ({"genreFilterMode": "or"}, {}):
        room = fork_room(filters=[genres], **mode)
        assert room.filters == [Filter(key="genre", operator="=", value=["Comedy", "Drama"])]


def test_genre_filter_mode_and_splits_only_inclusive_genre_filters() -> None:
    filters = [
        {"key": "genre", "operator": "!=", "value": ["Horror", "War"]},
        {"key": "year", "operator": "=", "value": ["1999", "2000"]},
    ]
    assert [f.model_dump() for f in fork_room(filters=filters, genreFilterMode="and").filters] == filters


@pytest.mark.parametrize(
    ("rating_filter", "expected"),
    [
        ({"min": 7}, [("rating", ">>=", ["7"])]),
        ({"max": 8.25, "type": "audience"}, [("rating", "<<=", ["8.25"])]),
        ({"min": 0, "max": 10.0}, [("rating", ">>=", ["0"]), ("rating", "<<=", ["10"])]),
        ({}, []),
    ],
)
def test_a_rating_filter_becomes_bounds(
    rating_filter: dict[str, Any], expected: list[tuple[str, str, list[str]]]
) -> None:
    room = fork_room(ratingFilter=rating_filter, contentRatingFilter={"ratings": []})
    assert [(f.key, f.operator, f.value) for f in room.filters] == expected


@pytest.mark.parametrize(
    ("fields", "complaint"),
    [
        ({"ratingFilter": [1, 2]}, "ratingFilter is not an object"),
        ({"ratingFilter": {"min": True}}, "ratingFilter: True is not a number"),
        ({"contentRatingFilter": {"ratings": "PG"}}, "contentRatingFilter.ratings"),
        (
            {"schemaVersion": SCHEMA_VERSION + 1},
            f"schemaVersion {SCHEMA_VERSION + 1} was written by a newer MovieMatch",
        ),
        ({"schemaVersion": True}, "not a version number"),
        ({"schemaVersion": "2"}, "not a version number"),
        ({"schemaVersion": -1}, "not a version number"),
    ],
)
def test_a_stored_room_that_no_step_understands_is_refused(fields: dict[str, Any], complaint: str) -> None:
    with pytest.raises(ValueError, match=re.escape(complaint)):
        fork_room(**fields)


def test_a_room_of_the_first_schema_gets_when_it_was_last_active_as_opened() -> None:
    room = SerializedRoom.from_json(V1_ROOM_FILE.read_bytes())
    assert room.schema_version == SCHEMA_VERSION
    # The latest moment in it: bob's like, which made the match.
    assert room.opened_at == datetime.fromtimestamp(1795822310, UTC)
    assert room.media_ids == ["demo:1", "demo:3", "demo:2", "demo:5", "demo:4"]
    assert room.password_hash is not None
    assert verify_password("popcorn", room.password_hash)
    idle = SerializedRoom.from_dict({"schemaVersion": 1, "roomName": "r", "createdAt": "2026-01-02T03:04:05Z"})
    assert idle.opened_at == idle.created_at


def test_a_room_of_the_current_schema_keeps_its_fields() -> None:
    [path] = (FIXTURES / "3-file").glob("*.json")
    data = json.loads(path.read_bytes())
    room = SerializedRoom.from_dict(data)
    assert room.opened_at == datetime(2026, 12, 1, 20, 15, 30, 250000, tzinfo=UTC)
    assert (room.schema_version, room.room_type, room.media_seed, room.join_code) == (3, "standard", 42, "K7FM2Q")
    people = ("plex:1", "jellyfin:5f2a9c8e1b7d4e3fa6c0d9b8e7f61234:aaaa0002")
    assert room.unwatched == Unwatched(people=people, members=True)
    # The file backend keeps the deck beside the room; the room itself only names it.
    assert room.media_ids is None
    assert room.to_json() == SerializedRoom.from_json(room.to_json()).to_json()


def test_upgrades_apply_to_stored_rooms_only() -> None:
    # Built in code, a room is of the current version: nothing is taken for a legacy field.
    room = SerializedRoom.model_validate(
        {"roomName": "r", "filters": [{"key": "library", "operator": "=", "value": ["x"]}]}
    )
    assert room.schema_version == SCHEMA_VERSION
    assert room.filters == [Filter(key="library", operator="=", value=["x"])]
    assert room.libraries == []


def test_opened_at_defaults_to_created_and_never_precedes_it() -> None:
    created = datetime(2026, 1, 2, tzinfo=UTC)
    assert SerializedRoom(room_name="r", created_at=created).opened_at == created
    assert SerializedRoom(room_name="r", created_at=created, opened_at=created - timedelta(days=1)).opened_at == created
    later = created + timedelta(hours=5)
    assert SerializedRoom(room_name="r", created_at=created, opened_at=later).opened_at == later


def test_equal_rooms_give_equal_bytes_whatever_the_order_of_their_maps() -> None:
    one = SerializedRoom(
        room_name="r",
        created_at=datetime(2026, 1, 2, tzinfo=UTC),
        members={"bob": Member(joined_at=2), "ann": Member(joined_at=1)},
        ratings={"m2": [("bob", "like", 4)], "m1": [("ann", "like", 3)]},
        user_progress={"bob": 1, "ann": 1},
        matches={"m2": 5, "m1": 6},
    )
    other = SerializedRoom.from_dict(
        {**one.to_dict(), "members": {"ann": {"joinedAt": 1}, "bob": {"joinedAt": 2}}, "matches": {"m1": 6, "m2": 5}}
    )
    assert other == one
    assert other.to_json() == one.to_json()
    assert other.digest() == one.digest()
    assert SerializedRoom.from_dict({**one.to_dict(), "matches": {"m1": 7, "m2": 5}}).digest() != one.digest()


def test_a_deck_digest_is_computed_once_and_shared_by_copies() -> None:
    room = SerializedRoom(room_name="r", media_ids=["a", "b"])
    digest = room.deck_digest()
    assert digest is not None
    copy = room.copy_deep()
    assert copy.media_ids is room.media_ids
    assert copy.deck_digest() == digest
    # A replaced deck (a room of the original MovieMatch gets one on restore) gets its own digest.
    room.media_ids = ["b", "a"]
    assert room.deck_digest() not in (None, digest)
    assert SerializedRoom(room_name="r", media_ids=["a", "b"]).deck_digest() == digest
    assert SerializedRoom(room_name="r").deck_digest() is None
