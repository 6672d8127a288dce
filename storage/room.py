"""SerializedRoom: everything needed to restore a room exactly, and nothing about live sockets.

The JSON form keeps the camelCase keys of the original MovieMatch room files. Stored rooms are read
with ``from_dict`` / ``from_json``, which upgrade any earlier version first (``storage.schema``);
building one in code (``SerializedRoom(...)``, ``model_validate``) takes the current version's form.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel

from .keys import DIGEST_LENGTH, room_key
from .passwords import is_password_hash
from .schema import SCHEMA_VERSION, upgrade

RatingValue = Literal["like", "dislike"]
# (user name, rating, epoch milliseconds): the original file format's rating triple.
Rating = tuple[str, RatingValue, int]


class _Model(BaseModel):
    # hide_input_in_errors: a legacy file's rejected input can be a clear-text password.
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", hide_input_in_errors=True
    )


class _Frozen(_Model):
    # Never changed in place (replaced instead), so copies of a room can share them.
    model_config = ConfigDict(frozen=True)


class Filter(_Frozen):
    key: str
    operator: str
    value: list[str]


class Pick(_Frozen):
    """The match the server picked for the room ("pick one for us"), and when."""

    media_id: str
    at: int


class Unwatched(_Frozen):
    """(ext) A room that leaves out every film one of ``people`` has watched (their identities,
    ``server.identity``): those picked at creation, and the members who agreed when they joined
    (asked only when ``members``)."""

    people: tuple[str, ...] = ()
    members: bool = False


class Member(_Frozen):
    """Someone who joined and has not left with ``leaveRoom`` (a disconnected member still counts)."""

    joined_at: int
    token_hash: str | None = None
    avatar_image: str | None = None
    plex_user_id: str | None = None
    # Who holds the seat (``server.identity``); None: a seat held by name alone (MovieMatch v2).
    identity: str | None = None
    # The name's confusable skeleton (``server.names``): look-alike names are one member.
    skeleton: str = ""
    # When the member was last connected (epoch ms); 0: not known (``joined_at`` stands in).
    seen_at: int = 0
    # A seat the owner offered to a new device: the SHA-256 of its one-time code, valid until (ms).
    offer_hash: str | None = None
    offer_until: int = 0


class SerializedRoom(_Model):
    schema_version: int = SCHEMA_VERSION
    room_name: str = Field(min_length=1)
    room_key: str = ""
    # The short code people read out to join (``server.rooms.join_codes``); None in rooms stored
    # before codes existed, until they are next opened. Unique among stored rooms.
    join_code: str | None = None
    password_hash: str | None = None
    sort: Literal["random", "rating"] = "random"
    sort_order: Literal["random", "newest", "oldest", "rating"] | None = None
    # "async" is the storage-design fork's name for a room that persists across sessions: ours all
    # do, so it matches as standard; it is kept as the client sent it.
    room_type: Literal["standard", "unanimous", "solo", "async"] = "standard"
    match_threshold: int = Field(default=2, ge=1)
    options: list[str] = Field(default_factory=list)
    filters: list[Filter] = Field(default_factory=list)
    libraries: list[str] = Field(default_factory=list)
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    # When the room was last opened: created, or joined by anyone. Never before created_at.
    opened_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    creator_plex_user_id: str = ""
    creator_plex_username: str = ""
    # Who owns the room (``server.identity``, or "name:<skeleton>" for a creator without one); empty
    # in rooms stored before owners were (``server.rooms.rules.owner_of`` derives theirs).
    owner: str = ""
    # Who the owner removed (their identity, or "name:<skeleton>") -> the name they had.
    removed: dict[str, str] = Field(default_factory=dict)
    # End conditions chosen at creation (none by default): after this many matches (v2's
    # EndOnFirstMatch option is one), at this time (epoch ms), and likes each member may give.
    match_limit: int | None = Field(default=None, ge=1)
    ends_at: int | None = None
    like_cap: int | None = Field(default=None, ge=1)
    pick: Pick | None = None
    # (ext) Whose watched films the deck leaves out (None: nobody's).
    unwatched: Unwatched | None = None
    members: dict[str, Member] = Field(default_factory=dict)
    ratings: dict[str, list[Rating]] = Field(default_factory=dict)
    user_progress: dict[str, int] = Field(default_factory=dict)
    # The room's media list (its deck), fixed at creation: the ids in order, or (when absent) the
    # provider query above (filters, libraries, sort) shuffled with this seed. Never changed in
    # place, only replaced: copies of the room share it.
    media_ids: list[str] | None = None
    media_seed: int | None = None
    # mediaId -> epoch ms at which it became a match (rooms of type solo derive theirs from likes).
    matches: dict[str, int] = Field(default_factory=dict)

    _deck: _DeckDigest = PrivateAttr(default_factory=lambda: _DeckDigest())

    @model_validator(mode="before")
    @classmethod
    def _opened_when_created(cls, data: Any) -> Any:
        if not isinstance(data, dict) or "openedAt" in data or "opened_at" in data:
            return data
        created = data.get("createdAt", data.get("created_at"))
        return data if created is None else {**data, "openedAt": created}

    @model_validator(mode="after")
    def _derive_key(self) -> SerializedRoom:
        self.room_key = room_key(self.room_name)
        if not self.room_key:
            raise ValueError("roomName is blank")
        self.opened_at = max(self.opened_at, self.created_at)
        return self

    @field_validator("password_hash")
    @classmethod
    def _only_hashes(cls, value: str | None) -> str | None:
        if value is not None and not is_password_hash(value):
            raise ValueError("passwordHash is not a password hash")
        return value

    @field_validator("created_at", "opened_at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        return value if value.tzinfo else value.replace(tzinfo=UTC)

    @field_validator("ratings")
    @classmethod
    def _canonical_ratings(cls, ratings: dict[str, list[Rating]]) -> dict[str, list[Rating]]:
        # One canonical form so every backend restores the same lists: time order (then user), and
        # one rating per user and item (the first), as the rating operations guarantee.
        for media_id, triples in ratings.items():
            triples.sort(key=lambda triple: (triple[2], triple[0]))
            first: dict[str, Rating] = {}
            for triple in triples:
                first.setdefault(triple[0], triple)
            ratings[media_id] = list(first.values())
        return ratings

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SerializedRoom:
        """A stored room, of any schema version; raises ``ValueError`` (often a pydantic
        ``ValidationError``) if it is not one."""
        if not isinstance(data, dict):
            raise ValueError(f"a room is a JSON object, not {type(data).__name__}")
        return cls.model_validate(upgrade(data))

    @classmethod
    def from_json(cls, raw: bytes | str) -> SerializedRoom:
        try:
            data = json.loads(raw)
        except UnicodeDecodeError as exc:
            raise ValueError(f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
        except json.JSONDecodeError as exc:
            raise ValueError(f"not JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from None
        return cls.from_dict(data)

    def to_dict(self) -> dict[str, Any]:
        return self._in_key_order().model_dump(mode="json", by_alias=True)

    def to_json(self, *, exclude: set[str] | None = None) -> bytes:
        """The JSON form, maps in key order: equal rooms give equal bytes, whichever backend (or
        process, or order of events) they came from."""
        return self._in_key_order().model_dump_json(by_alias=True, exclude=exclude).encode()

    def digest(self) -> str:
        """A digest of the room's content: equal exactly when the rooms are equal."""
        return hashlib.sha256(self.to_json()).hexdigest()

    def _in_key_order(self) -> SerializedRoom:
        return self.model_copy(
            update={
                name: dict(sorted(getattr(self, name).items()))
                for name in ("members", "ratings", "user_progress", "matches")
            }
        )

    def deck_digest(self) -> str | None:
        """A digest of ``media_ids`` (None without them), computed once per list: the room's copies
        share both the list and the result, so saving a room with a big deck again costs nothing here."""
        ids = self.media_ids
        if ids is None:
            return None
        known = self._deck.of(ids)
        if known is None:
            known = deck_digest(deck_json(ids))
            self._deck.remember(ids, known)
        return known

    def note_deck_digest(self, digest: str) -> None:
        """Record the digest of ``media_ids`` as a backend read it (with the deck it checked)."""
        if self.media_ids is not None:
            self._deck.remember(self.media_ids, digest)

    def copy_deep(self) -> SerializedRoom:
        """A copy sharing nothing mutable with this room but its deck (``media_ids``, never changed
        in place). Structural, not ``deepcopy``: it runs on the event loop for every debounced save,
        and a generic deep copy of a room with hundreds of ratings takes milliseconds."""
        return self.model_copy(
            update={
                "options": list(self.options),
                "filters": list(self.filters),
                "libraries": list(self.libraries),
                "members": dict(self.members),
                "ratings": {media_id: list(triples) for media_id, triples in self.ratings.items()},
                "user_progress": dict(self.user_progress),
                "removed": dict(self.removed),
                "matches": dict(self.matches),
            }
        )


def problems(exc: ValueError, limit: int = 3) -> str:
    """What is wrong with a stored room, in a line: the first problems of a validation error with
    where they are (never the input, which may hold a clear-text legacy password), or the message."""
    if not isinstance(exc, ValidationError):
        return str(exc)
    errors = exc.errors(include_url=False, include_context=False, include_input=False)
    return "; ".join(f"{'.'.join(map(str, error['loc'])) or 'room'}: {error['msg']}" for error in errors[:limit])


def deck_json(media_ids: list[str]) -> bytes:
    """The stored form of a deck: a JSON array (ASCII, so any id is encodable)."""
    return json.dumps(media_ids, separators=(",", ":")).encode("ascii")


def deck_digest(deck: bytes) -> str:
    return hashlib.sha256(deck).hexdigest()[:DIGEST_LENGTH]


class _DeckDigest:
    """The digest of one deck list, held with that list (so a replaced list is never mistaken for
    it). Copies of a room share one holder. A cache, not part of the room's value: any two compare
    equal, so rooms compare by their fields alone."""

    def __init__(self) -> None:
        self._known: tuple[list[str], str] | None = None

    def of(self, ids: list[str]) -> str | None:
        known = self._known
        return known[1] if known is not None and known[0] is ids else None

    def remember(self, ids: list[str], digest: str) -> None:
        self._known = (ids, digest)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _DeckDigest)

    __hash__ = None  # type: ignore[assignment]
