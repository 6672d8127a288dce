"""SerializedRoom: everything needed to restore a room exactly, and nothing about live sockets.

The JSON form keeps the camelCase keys of the original MovieMatch room files, so files written by
the TypeScript implementation load unchanged.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from .keys import room_key
from .passwords import hash_password, is_password_hash

SCHEMA_VERSION = 1

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
    password_hash: str | None = None
    sort: Literal["random", "rating"] = "random"
    sort_order: Literal["random", "newest", "oldest", "rating"] | None = None
    room_type: Literal["standard", "unanimous", "solo", "async"] = "standard"
    match_threshold: int = Field(default=2, ge=1)
    options: list[str] = Field(default_factory=list)
    filters: list[Filter] = Field(default_factory=list)
    libraries: list[str] = Field(default_factory=list)
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    creator_plex_user_id: str = ""
    creator_plex_username: str = ""
    # Who owns the room (``server.identity``, or "name:<skeleton>" for a creator without one); empty
    # in rooms stored before owners were (``server.rooms.rules.owner_of`` derives theirs).
    owner: str = ""
    # Who the owner removed (their identity, or "name:<skeleton>") -> the name they had.
    removed: dict[str, str] = Field(default_factory=dict)
    members: dict[str, Member] = Field(default_factory=dict)
    ratings: dict[str, list[Rating]] = Field(default_factory=dict)
    user_progress: dict[str, int] = Field(default_factory=dict)
    # The room's media list, fixed at creation: the ids in order, or (when absent) the provider
    # query above (filters, libraries, sort) shuffled with this seed.
    media_ids: list[str] | None = None
    media_seed: int | None = None
    # mediaId -> epoch ms at which it became a match (rooms of type solo derive theirs from likes).
    matches: dict[str, int] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _adopt_legacy_fields(cls, data: Any) -> Any:
        if not isinstance(data, dict) or "password" not in data:
            return data
        data = dict(data)
        clear_text = data.pop("password")
        if isinstance(clear_text, str) and clear_text and not data.get("passwordHash"):
            data["passwordHash"] = hash_password(clear_text)
        return data

    @model_validator(mode="after")
    def _derive_key(self) -> SerializedRoom:
        self.room_key = room_key(self.room_name)
        if not self.room_key:
            raise ValueError("roomName is blank")
        return self

    @field_validator("password_hash")
    @classmethod
    def _only_hashes(cls, value: str | None) -> str | None:
        if value is not None and not is_password_hash(value):
            raise ValueError("passwordHash is not a password hash")
        return value

    @field_validator("created_at")
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
        """Build from the JSON form; raises ``ValueError`` (a pydantic ``ValidationError``) if invalid."""
        return cls.model_validate(data)

    @classmethod
    def from_json(cls, raw: bytes | str) -> SerializedRoom:
        return cls.model_validate_json(raw)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)

    def to_json(self) -> bytes:
        return self.model_dump_json(by_alias=True).encode()

    def copy_deep(self) -> SerializedRoom:
        """A copy sharing nothing mutable with this room. Structural, not ``deepcopy``: it runs on
        the event loop for every debounced save, and a generic deep copy of a room with hundreds of
        ratings takes milliseconds."""
        return self.model_copy(
            update={
                "options": list(self.options),
                "filters": list(self.filters),
                "libraries": list(self.libraries),
                "members": dict(self.members),
                "ratings": {media_id: list(triples) for media_id, triples in self.ratings.items()},
                "user_progress": dict(self.user_progress),
                "removed": dict(self.removed),
                "media_ids": None if self.media_ids is None else list(self.media_ids),
                "matches": dict(self.matches),
            }
        )
