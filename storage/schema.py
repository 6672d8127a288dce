"""The versions of a stored room's JSON form, and the step that upgrades each to the next.

As Home Assistant's ``Store`` does with its files: every stored room carries the version it was
written in (``schemaVersion``); loading one of an older version runs the steps from that version
up, one per version, on the plain JSON object, and the room is written in the current version at
its next save (never on load: a read must not change storage). A room of a newer version than this
code knows is refused, so a downgrade cannot silently drop what the newer version stored.

Versions:

- 0: no ``schemaVersion``: the original TypeScript MovieMatch (the storage design's room files) and
  the fork that introduced the design (``roomType`` incl. ``"async"``, ``sortOrder``,
  ``genreFilterMode``, ``ratingFilter``, ``contentRatingFilter``, filters as its wizard sent them,
  a clear-text ``password``).
- 1: this project's first releases: filters in the providers' vocabulary, ``passwordHash``,
  ``members``, ``mediaIds``, ``matches``.
- 2: ``openedAt``, when the room was last opened (created or joined).
- 3: ``unwatched``, whose watched films the deck leaves out. Nothing earlier is converted (no room
  left any out); the version says that a server which does not know it must not load the room,
  which would deal those films again and drop the field at its next save.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from .passwords import hash_password

SCHEMA_VERSION = 3

Step = Callable[[dict[str, Any]], dict[str, Any]]


def upgrade(data: dict[str, Any]) -> dict[str, Any]:
    """``data``, a stored room's JSON object of any version, in the current version's form.

    Raises ``ValueError`` for a version that is not one, or one newer than this code.
    """
    version = data.get("schemaVersion", 0)
    # bool is an int to Python, not a version to anyone.
    if type(version) is not int or version < 0:
        raise ValueError(f"schemaVersion {version!r} is not a version number")
    if version > SCHEMA_VERSION:
        raise ValueError(
            f"schemaVersion {version} was written by a newer MovieMatch (this one reads up to {SCHEMA_VERSION})"
        )
    for step in STEPS[version:]:
        data = step(dict(data))
    data["schemaVersion"] = SCHEMA_VERSION
    return data


# 0 -> 1: the original MovieMatch and the storage-design fork.

_FORK_FIELDS = ("genreFilterMode", "ratingFilter", "contentRatingFilter")


def from_original(data: dict[str, Any]) -> dict[str, Any]:
    """Hash a clear-text password; put the fork's filters in the providers' vocabulary."""
    clear_text = data.pop("password", None)
    if isinstance(clear_text, str) and clear_text and not data.get("passwordHash"):
        data["passwordHash"] = hash_password(clear_text)
    filters = data.get("filters")
    if filters is None:
        filters = []
    if not isinstance(filters, list) or not all(isinstance(one, dict) for one in filters):
        return data  # left for validation to refuse, naming the field
    fork = {name: data.pop(name) for name in _FORK_FIELDS if name in data}
    libraries = data.get("libraries")
    libraries = list(libraries) if isinstance(libraries, list) else []
    normalised: list[dict[str, Any]] = []
    for one in filters:
        if one.get("key") == "library" and one.get("operator", "=") == "=":
            # The fork's wizard sends the chosen libraries as a filter its server then ignored.
            libraries += [value for value in _values(one) if value not in libraries]
            continue
        normalised += _split_genres(_rating_bounds(one), fork.get("genreFilterMode"))
    normalised += _rating_filter(fork.get("ratingFilter"))
    normalised += _content_rating_filter(fork.get("contentRatingFilter"))
    data["filters"] = normalised
    if libraries:
        data["libraries"] = libraries
    return data


def _values(one: dict[str, Any]) -> list[Any]:
    value = one.get("value")
    return value if isinstance(value, list) else []


def _filter(key: str, operator: str, value: list[str]) -> dict[str, Any]:
    return {"key": key, "operator": operator, "value": value}


def _rating_bounds(one: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The fork wizard's ``rating`` filter (values ``">=x"``, ``"<=y"``, whatever the operator) as
    one ``>>=`` / ``<<=`` filter per bound, as the fork's Plex query builder read it."""
    if one.get("key") != "rating":
        yield one
        return
    plain = []
    for value in _values(one):
        if isinstance(value, str) and value[:2] in (">=", "<="):
            yield _filter("rating", ">>=" if value[:2] == ">=" else "<<=", [value[2:].strip()])
        else:
            plain.append(value)
    if plain or not _values(one):
        yield {**one, "value": plain}


def _split_genres(filters: Iterator[dict[str, Any]], mode: object) -> Iterator[dict[str, Any]]:
    """``genreFilterMode: "and"``: every listed genre, so one filter per genre (one filter with
    several values means any of them, which is also what ``"or"`` asked for)."""
    for one in filters:
        values = _values(one)
        if mode == "and" and one.get("key") == "genre" and one.get("operator") == "=" and len(values) > 1:
            yield from (_filter("genre", "=", [value]) for value in values)
        else:
            yield one


def _rating_filter(rating: object) -> list[dict[str, Any]]:
    if rating is None:
        return []
    if not isinstance(rating, dict):
        raise ValueError("ratingFilter is not an object")
    # The fork's "type" (critic / audience) chose nothing: its filter always read the critic rating.
    bounds = [(">>=", rating.get("min")), ("<<=", rating.get("max"))]
    return [
        _filter("rating", operator, [_number(bound, "ratingFilter")]) for operator, bound in bounds if bound is not None
    ]


def _content_rating_filter(content: object) -> list[dict[str, Any]]:
    if content is None:
        return []
    ratings = content.get("ratings") if isinstance(content, dict) else None
    if not isinstance(ratings, list) or not all(isinstance(rating, str) for rating in ratings):
        raise ValueError("contentRatingFilter.ratings is not a list of strings")
    return [_filter("contentRating", "=", ratings)] if ratings else []


def _number(value: object, field: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{field}: {value!r} is not a number")
    return str(int(value)) if float(value).is_integer() else str(value)


# 1 -> 2: when the room was last opened.


def opened_at(data: dict[str, Any]) -> dict[str, Any]:
    """Rooms before version 2 never recorded when they were opened: the latest moment anything
    happened in them stands in (a join, a rating, a match), else their creation. Retention then
    never takes a room in use for an abandoned one."""
    if "openedAt" not in data:
        latest = max((ms for ms in _activity_ms(data) if ms is not None), default=None)
        if latest is not None:
            data["openedAt"] = datetime.fromtimestamp(latest / 1000, UTC).isoformat()
    return data


def _activity_ms(data: dict[str, Any]) -> Iterator[int | None]:
    """Every epoch-ms time in the room; anything malformed is skipped (validation refuses it)."""
    members, ratings, matches = (data.get(name) for name in ("members", "ratings", "matches"))
    if isinstance(members, dict):
        yield from (_ms(member.get("joinedAt")) for member in members.values() if isinstance(member, dict))
    if isinstance(ratings, dict):
        for triples in ratings.values():
            if isinstance(triples, list):
                yield from (_ms(one[2]) for one in triples if isinstance(one, list | tuple) and len(one) == 3)
    if isinstance(matches, dict):
        yield from map(_ms, matches.values())


def _ms(value: object) -> int | None:
    # Text too: Redis hands numbers back as strings.
    if isinstance(value, bool) or not isinstance(value, int | str):
        return None
    try:
        number = int(value)
    except ValueError:
        return None
    return number if 0 < number < 2**53 else None


# 2 -> 3: whose watched films the deck leaves out.


def unwatched(data: dict[str, Any]) -> dict[str, Any]:
    """Rooms before version 3 leave out nobody's watched films: ``unwatched`` stays unset."""
    return data


# STEPS[n] upgrades version n to n + 1.
STEPS: tuple[Step, ...] = (from_original, opened_at, unwatched)
