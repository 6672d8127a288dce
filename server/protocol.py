"""Message shapes and error names of protocol.md (MovieMatch v2, compatible)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from itertools import islice
from typing import Annotated, Any, Literal, NoReturn

import anyio.lowlevel
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from server.names import clean_name as clean_name
from server.providers import Media
from storage import Filter

# Bounds for what no real client comes near; the frame size limit bounds the whole message anyway.
TEXT_MAX_LENGTH = 1000
LIST_MAX_ITEMS = 100
# (ext) The most cards a client may take in one window (a few dozen kilobytes), and how many
# getCards sends when neither it nor the login says.
WINDOW_MAX = 200
WINDOW_DEFAULT = 40


class Reply(StrEnum):
    """Every message type the server sends (docs/protocol.md lists each one)."""

    CONFIG = "config"
    TRANSLATIONS = "translations"
    ERROR = "error"
    LOGIN_SUCCESS = "loginSuccess"
    LOGIN_ERROR = "loginError"
    LOGOUT_SUCCESS = "logoutSuccess"
    LOGOUT_ERROR = "logoutError"
    CREATE_ROOM_SUCCESS = "createRoomSuccess"
    CREATE_ROOM_ERROR = "createRoomError"
    JOIN_ROOM_SUCCESS = "joinRoomSuccess"
    JOIN_ROOM_ERROR = "joinRoomError"
    LEAVE_ROOM_SUCCESS = "leaveRoomSuccess"
    LEAVE_ROOM_ERROR = "leaveRoomError"
    RATE_ERROR = "rateError"
    UNDO_RATE_SUCCESS = "undoRateSuccess"
    DELETE_ROOM_SUCCESS = "deleteRoomSuccess"
    DELETE_ROOM_ERROR = "deleteRoomError"
    REQUEST_FILTERS_SUCCESS = "requestFiltersSuccess"
    REQUEST_FILTERS_ERROR = "requestFiltersError"
    REQUEST_FILTER_VALUES_SUCCESS = "requestFilterValuesSuccess"
    REQUEST_FILTER_VALUES_ERROR = "requestFilterValuesError"
    GET_LIBRARIES_SUCCESS = "getLibrariesSuccess"
    GET_LIBRARIES_ERROR = "getLibrariesError"
    SETUP_ERROR = "setupError"
    USER_JOINED_ROOM = "userJoinedRoom"
    USER_LEFT_ROOM = "userLeftRoom"
    USER_PROGRESS = "userProgress"
    MATCH = "match"
    MATCH_REMOVED = "matchRemoved"
    ROOM_DELETED = "roomDeleted"
    GET_MEMBERS_SUCCESS = "getMembersSuccess"
    GET_MEMBERS_ERROR = "getMembersError"
    MANAGE_MEMBER_SUCCESS = "manageMemberSuccess"
    MANAGE_MEMBER_ERROR = "manageMemberError"
    REMOVED_FROM_ROOM = "removedFromRoom"
    MEMBER_REMOVED = "memberRemoved"
    OWNER_CHANGED = "ownerChanged"
    ROOM_ENDED = "roomEnded"
    GET_RESULTS_SUCCESS = "getResultsSuccess"
    GET_RESULTS_ERROR = "getResultsError"
    PICK_SUCCESS = "pickForUsSuccess"
    PICK_ERROR = "pickForUsError"
    PICKED = "picked"
    GET_WATCHLIST_SUCCESS = "getWatchlistSuccess"
    ADD_TO_WATCHLIST_SUCCESS = "addToWatchlistSuccess"
    REMOVE_FROM_WATCHLIST_SUCCESS = "removeFromWatchlistSuccess"
    WATCHLIST_ERROR = "watchlistError"
    GET_REQUESTS_SUCCESS = "getRequestsSuccess"
    GET_REQUESTS_ERROR = "getRequestsError"
    REQUEST_MEDIA_SUCCESS = "requestMediaSuccess"
    REQUEST_MEDIA_ERROR = "requestMediaError"
    REQUEST_STATUS = "requestStatus"
    GET_PLAYERS_SUCCESS = "getPlayersSuccess"
    GET_PLAYERS_ERROR = "getPlayersError"
    PLAY_MEDIA_SUCCESS = "playMediaSuccess"
    PLAY_MEDIA_ERROR = "playMediaError"
    PLAYBACK_STARTED = "playbackStarted"
    ROOM_CHANGED = "roomChanged"
    LIST_ROOMS_SUCCESS = "listRoomsSuccess"
    LIST_ROOMS_ERROR = "listRoomsError"
    JELLYFIN_QUICK_CONNECT_CODE = "jellyfinQuickConnectCode"
    JELLYFIN_QUICK_CONNECT_PENDING = "jellyfinQuickConnectPending"
    GET_PEOPLE_SUCCESS = "getPeopleSuccess"
    GET_PEOPLE_ERROR = "getPeopleError"
    GET_CARDS_SUCCESS = "getCardsSuccess"
    GET_CARDS_ERROR = "getCardsError"


class ErrorName(StrEnum):
    """Every ``name`` of an error reply (docs/protocol.md says when each is sent)."""

    MALFORMED_MESSAGE = "MalformedMessage"
    UNKNOWN_MESSAGE_TYPE = "UnknownMessageType"
    MESSAGE_TOO_LARGE = "MessageTooLarge"
    RATE_LIMITED = "RateLimited"
    INTERNAL_ERROR = "InternalError"
    STORAGE_UNAVAILABLE = "StorageUnavailable"
    PLEX_LOGIN_REQUIRED = "PlexLoginRequired"
    PLEX_AUTH_INVALID = "PlexAuthInvalid"
    PLEX_UNAVAILABLE = "PlexUnavailable"
    JELLYFIN_AUTH_INVALID = "JellyfinAuthInvalid"
    JELLYFIN_UNAVAILABLE = "JellyfinUnavailable"
    QUICK_CONNECT_UNAVAILABLE = "QuickConnectUnavailable"
    INVALID_USER_NAME = "InvalidUserName"
    NOT_LOGGED_IN = "NotLoggedIn"
    NOT_LOGGED_IN_ERROR = "NotLoggedInError"
    INVALID_ROOM_NAME = "InvalidRoomName"
    ROOM_EXISTS = "RoomExistsError"
    NO_MEDIA = "NoMediaError"
    PLEX_AUTH_REQUIRED = "PlexAuthRequiredError"
    UNKNOWN_ERROR = "UnknownError"
    TOO_MANY_ROOMS = "TooManyRooms"
    ROOM_NOT_FOUND = "RoomNotFoundError"
    ACCESS_DENIED = "AccessDeniedError"
    USER_ALREADY_JOINED = "UserAlreadyJoinedError"
    ROOM_FULL = "RoomFull"
    TOO_MANY_ATTEMPTS = "TooManyAttempts"
    NOT_IN_ROOM = "NotInRoom"
    UNKNOWN_MEDIA = "UnknownMedia"
    ALREADY_RATED = "AlreadyRated"
    ROOM_ENDED = "RoomEnded"
    NOT_RATED = "NotRated"
    NOT_ROOM_OWNER = "NotRoomOwner"
    INVALID_IDENTITY = "InvalidIdentity"
    REMOVED_FROM_ROOM = "RemovedFromRoom"
    INVALID_SEAT_CODE = "InvalidSeatCode"
    NO_SUCH_MEMBER = "NoSuchMember"
    INVALID_FILTER = "InvalidFilter"
    LIKE_CAP_REACHED = "LikeCapReached"
    NO_MATCHES = "NoMatches"
    SERVER_BUSY = "ServerBusy"
    STORAGE_FULL = "StorageFull"
    PROVIDER_ERROR = "ProviderError"
    NO_IDENTITY = "NoIdentity"
    WATCHLIST_FULL = "WatchlistFull"
    NOT_A_MATCH = "NotAMatch"
    NOT_REQUESTABLE = "NotRequestable"
    NOT_ON_SERVER = "NotOnServer"
    PLAYER_GONE = "PlayerGone"
    PLAYBACK_REFUSED = "PlaybackRefused"
    UNKNOWN_PERSON = "UnknownPerson"


class ProtocolError(Exception):
    """A request that gets an error reply: ``{"type": reply_type, "payload": {"name", "message", ...}}``."""

    def __init__(self, reply_type: Reply, name: ErrorName, message: str, **extra: Any) -> None:
        super().__init__(f"{name}: {message}")
        self.reply_type = reply_type
        self.name = name
        self.message = message
        self.extra = extra

    def payload(self) -> dict[str, Any]:
        return {"name": self.name, "message": self.message, **self.extra}


# One factory for each error reply that more than one place sends.


def storage_unavailable(reply_type: Reply, message: str, **extra: Any) -> ProtocolError:
    """Storage could not be reached: the request can be tried again later."""
    return ProtocolError(reply_type, ErrorName.STORAGE_UNAVAILABLE, message, **extra)


def room_not_found(reply_type: Reply, room_name: str) -> ProtocolError:
    return ProtocolError(reply_type, ErrorName.ROOM_NOT_FOUND, f"{room_name} does not exist")


def room_full(reply_type: Reply, room_name: str, limit: int) -> ProtocolError:
    return ProtocolError(reply_type, ErrorName.ROOM_FULL, f"{room_name} has its {limit} members")


def name_taken(reply_type: Reply, user_name: str, room_name: str) -> ProtocolError:
    return ProtocolError(reply_type, ErrorName.USER_ALREADY_JOINED, f"{user_name} is already in room {room_name}")


def invalid_room_name(reply_type: Reply, problem: ValueError) -> ProtocolError:
    return ProtocolError(reply_type, ErrorName.INVALID_ROOM_NAME, f"room name {problem}")


def rating_error(name: ErrorName, message: str, media_id: str) -> ProtocolError:
    """A ``rateError`` (also the reply of a failed ``undoRate``): it always names the item."""
    return ProtocolError(Reply.RATE_ERROR, name, message, mediaId=media_id)


def not_in_room(media_id: str, why: str = "join a room first") -> ProtocolError:
    return rating_error(ErrorName.NOT_IN_ROOM, why, media_id)


def not_rated(user_name: str, media_id: str) -> ProtocolError:
    return rating_error(ErrorName.NOT_RATED, f"{user_name} has not rated {media_id}", media_id)


def malformed(reply_type: Reply, problem: str, **extra: Any) -> ProtocolError:
    return ProtocolError(reply_type, ErrorName.MALFORMED_MESSAGE, problem, **extra)


def _encodable(value: str) -> str:
    # JSON can spell a lone surrogate ("\ud800"); it cannot be encoded as UTF-8, so it would break
    # the reply frame, a file name or a Redis key far from here. (pydantic's str refuses it in some
    # positions only: a str in a list passes.)
    if not value.isascii() and any("\ud800" <= char <= "\udfff" for char in value):
        raise ValueError("contains a lone surrogate")
    return value


# Every free-form string of a request.
Text = Annotated[str, StringConstraints(max_length=TEXT_MAX_LENGTH), AfterValidator(_encodable)]


def _name_text(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a string")
    if len(value) > TEXT_MAX_LENGTH:
        raise ValueError(f"must be at most {TEXT_MAX_LENGTH} characters")
    return value


# User and room names skip pydantic's str check: clean_name refuses lone surrogates like control
# characters, with the message's own error name (InvalidUserName, InvalidRoomName).
Name = Annotated[str, PlainValidator(_name_text)]


class Payload(BaseModel):
    # Extra keys are ignored: MovieMatch v2 forks send fields this server does not use.
    model_config = ConfigDict(extra="ignore", frozen=True)


class LoginRequest(Payload):
    userName: Name | None = None
    plexToken: Text | None = None
    plexClientId: Text | None = None
    # (ext) The identity token this server issued to this browser, or a request for one.
    identityToken: Annotated[Text, StringConstraints(max_length=100)] | None = None
    newIdentity: bool = False
    # (ext) Rooms' decks in windows of this many cards (getCards for more), not whole.
    window: int | None = Field(default=None, ge=1, le=WINDOW_MAX)
    # (ext) Jellyfin sign-in: through which configured server (config's jellyfinSignIn id), with a
    # user name and password, or the session ticket an earlier Jellyfin sign-in gave this browser.
    jellyfinServer: Annotated[Text, StringConstraints(max_length=100)] | None = None
    jellyfinUser: Name | None = None
    jellyfinPassword: Text | None = None
    jellyfinSession: Annotated[Text, StringConstraints(max_length=500)] | None = None


class JellyfinQuickConnectRequest(Payload):
    jellyfinServer: Annotated[Text, StringConstraints(max_length=100)] | None = None
    # (ext) As login's: the sign-in this starts ends in a login.
    window: int | None = Field(default=None, ge=1, le=WINDOW_MAX)


class RatingRange(Payload):
    """The fork's ``ratingFilter``: bounds out of 10 (``type``, critic or audience, is not told apart)."""

    min: float | None = None
    max: float | None = None
    type: Text | None = None


class ContentRatings(Payload):
    """The fork's ``contentRatingFilter``: any of these content ratings."""

    ratings: list[Text] = Field(default=[], max_length=LIST_MAX_ITEMS)


# How existing clients spell a watched status, as the value of an "unwatched" filter (Plex's 1/0).
_UNWATCHED_VALUES = {
    "unwatched": {"true": "1", "false": "0"},
    "watched": {"true": "0", "false": "1", "1": "0", "0": "1"},
}


# A person's identity, as getPeople lists it (``server.identity``).
PersonId = Annotated[Text, StringConstraints(min_length=1, max_length=200)]


class EndConditions(Payload):
    matches: int | None = Field(default=None, ge=1, le=1000)
    minutes: float | None = Field(default=None, gt=0, le=7 * 24 * 60)
    likes: int | None = Field(default=None, ge=1, le=10000)


class CreateRoomRequest(Payload):
    roomName: Name
    password: Text | None = None
    options: list[Literal["EndOnFirstMatch"]] = Field(default=[], max_length=LIST_MAX_ITEMS)
    filters: list[Filter] = Field(default=[], max_length=LIST_MAX_ITEMS)
    sort: Literal["random", "rating"] = "random"
    # "async" (the fork's): a room that persists across sessions, as every room here does.
    roomType: Literal["standard", "unanimous", "solo", "async"] = "standard"
    matchThreshold: int = Field(default=2, ge=2, le=1000)
    sortOrder: Literal["random", "newest", "oldest", "rating"] | None = None
    libraries: list[Text] = Field(default=[], max_length=LIST_MAX_ITEMS)
    genreFilterMode: Literal["and", "or"] = "or"
    ratingFilter: RatingRange | None = None
    contentRatingFilter: ContentRatings | None = None
    # (ext) When the room ends: after this many matches, after this many minutes, and how many
    # likes each member may give. None by default (EndOnFirstMatch is a match limit of one).
    endConditions: EndConditions | None = None
    # (ext) Where the films come from: the libraries, or only those of them on the members' watchlists.
    source: Literal["library", "watchlists"] = "library"
    # (ext) Leave out every film one of these people watched (getPeople's ids), and, when
    # ``unwatchedByMembers``, those of every member signed in as one of them who agrees at join.
    unwatchedBy: list[PersonId] = Field(default=[], max_length=LIST_MAX_ITEMS)
    unwatchedByMembers: bool = False

    @field_validator("filters")
    @classmethod
    def _bounded_filters(cls, filters: list[Filter]) -> list[Filter]:
        # Filters are stored with the room: the same bounds as any other text.
        for item in filters:
            if len(item.value) > LIST_MAX_ITEMS:
                raise ValueError(f"a filter has at most {LIST_MAX_ITEMS} values")
            for text in (item.key, item.operator, *item.value):
                if len(text) > TEXT_MAX_LENGTH:
                    raise ValueError(f"filter texts are at most {TEXT_MAX_LENGTH} characters")
                _encodable(text)
        return filters

    @model_validator(mode="after")
    def _normalised(self) -> CreateRoomRequest:
        """The filters in the one vocabulary providers take and rooms store, whichever client spoke:

        - a ``library`` filter (the fork's wizard) selects ``libraries``, it never reaches a provider;
        - ``rating`` ``>=``/``<=`` with values ``">=0"``/``"<=10"`` (the fork) is one ``>>=``/``<<=``
          rule per bound, as is ``ratingFilter``;
        - ``contentRatingFilter`` is a ``contentRating =`` rule;
        - ``unwatched`` true/false (the fork's wizard) and ``watched`` (the fork's server) are
          ``unwatched`` 1 (unwatched only) or 0 (watched only);
        - ``genreFilterMode: "and"`` makes a ``genre =`` rule of several values one rule per value
          (several values of one rule mean any of them).
        """
        libraries = list(self.libraries)
        filters: list[Filter] = []
        for rule in self.filters:
            if rule.key == "library":
                if rule.operator != "=":
                    raise ValueError(f"a library filter takes operator =, not {rule.operator[:10]!r}")
                libraries += [key for key in rule.value if key not in libraries]
            elif rule.key == "rating" and rule.operator in (">=", "<="):
                filters += [_rating_bound(rule.operator, value) for value in rule.value]
            elif rule.key in _UNWATCHED_VALUES:
                spelled = _UNWATCHED_VALUES[rule.key]
                values = [spelled.get(value.strip().lower(), value) for value in rule.value]
                filters.append(Filter(key="unwatched", operator=rule.operator, value=values))
            elif rule.key == "genre" and rule.operator == "=" and self.genreFilterMode == "and":
                filters += [Filter(key="genre", operator="=", value=[value]) for value in rule.value]
            else:
                filters.append(rule)
        if self.ratingFilter is not None:
            bounds = ((">>=", self.ratingFilter.min), ("<<=", self.ratingFilter.max))
            filters += [
                Filter(key="rating", operator=op, value=[f"{bound:g}"]) for op, bound in bounds if bound is not None
            ]
        if self.contentRatingFilter is not None and self.contentRatingFilter.ratings:
            filters.append(Filter(key="contentRating", operator="=", value=list(self.contentRatingFilter.ratings)))
        if len(filters) > LIST_MAX_ITEMS or len(libraries) > LIST_MAX_ITEMS:
            raise ValueError(f"at most {LIST_MAX_ITEMS} filters and libraries")
        # Frozen: the normalised values are set once, here, before anyone sees the request.
        object.__setattr__(self, "filters", filters)
        object.__setattr__(self, "libraries", libraries)
        return self


def _rating_bound(operator: str, value: str) -> Filter:
    """One bound of the fork's rating range: ``">=7"`` is at least 7; a bare ``"7"`` takes the rule's operator."""
    text = value.strip()
    for prefix, bound in ((">=", ">>="), ("<=", "<<=")):
        if text.startswith(prefix):
            return Filter(key="rating", operator=bound, value=[text.removeprefix(prefix).strip()])
    return Filter(key="rating", operator=">>=" if operator == ">=" else "<<=", value=[text])


class JoinRoomRequest(Payload):
    roomName: Name
    password: Text | None = None
    memberToken: Text | None = None
    # (ext) The code of a seat the room's owner offered to this device.
    seatCode: Annotated[Text, StringConstraints(max_length=20)] | None = None
    # (ext) This member agrees that the films they watched leave the deck (a room that asks).
    countMyWatched: bool = False


class GetCardsRequest(Payload):
    # Where the next window starts: the ``after`` of the last window (a position in the deck).
    after: int = Field(ge=0)
    count: int | None = Field(default=None, ge=1, le=WINDOW_MAX)


class PickRequest(Payload):
    # Pick again though the room has a pick (the owner only).
    again: bool = False


class ManageMemberRequest(Payload):
    userName: Text
    action: Literal["remove", "readmit", "makeOwner", "offerSeat"]


MediaId = Annotated[Text, StringConstraints(min_length=1, max_length=500)]


class RateRequest(Payload):
    mediaId: MediaId
    rating: Literal["like", "dislike"]


class UndoRateRequest(Payload):
    mediaId: MediaId


class MediaIdRequest(Payload):
    """(ext) A request about one card: save it for later, request it, list the players for it."""

    mediaId: MediaId


class PlayMediaRequest(Payload):
    mediaId: MediaId
    playerId: Annotated[Text, StringConstraints(min_length=1, max_length=300)]


class DeleteRoomRequest(Payload):
    roomName: Text


class SetLocaleRequest(Payload):
    language: Annotated[Text, StringConstraints(max_length=100)]


class FilterValuesRequest(Payload):
    key: Annotated[Text, StringConstraints(min_length=1, max_length=100)]


class NoPayload(Payload):
    pass


class AnyPayload(Payload):
    model_config = ConfigDict(extra="allow", frozen=True)


@dataclass(frozen=True)
class ClientMessage:
    """A message type clients send: its payload's shape, and the reply its errors take (a v2 client
    shows errors only in the reply it waits for, e.g. ``createRoomError``)."""

    payload: type[Payload]
    error_reply: Reply = Reply.ERROR


class Envelope(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)
    type: Annotated[Text, StringConstraints(max_length=100)]
    payload: Any = None


def exceeds(text: str, limit: int) -> bool:
    """Whether ``text`` is over ``limit`` bytes in UTF-8, without encoding it when the length decides."""
    if len(text) > limit:
        return True
    if len(text) * 4 <= limit or text.isascii():
        return False
    return len(text.encode("utf-8", "surrogatepass")) > limit


def _malformed(problem: str) -> ProtocolError:
    return malformed(Reply.ERROR, f"not a MovieMatch message ({problem})")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise _malformed("a key appears twice in one object")
    return result


def _no_constant(name: str) -> NoReturn:
    raise _malformed(f"{name} is not a JSON number")


# One decoder for every frame: json.loads with options builds a new one per call.
_DECODER = json.JSONDecoder(object_pairs_hook=_unique_keys, parse_constant=_no_constant)


def _decode(text: str) -> Any:
    """Strict JSON: duplicate keys, NaN and Infinity are errors rather than guesses."""
    try:
        return _DECODER.decode(text)
    except RecursionError as exc:  # deep nesting; not a ValueError
        raise _malformed("nested too deeply") from exc
    except ValueError as exc:  # bad JSON, and integers over the digit limit
        raise _malformed(f"invalid JSON: {exc}") from exc


def _first_problem(error: ValidationError) -> str:
    problem = error.errors(include_url=False)[0]
    where = ".".join(str(part) for part in problem["loc"])
    return f"{where}: {problem['msg']}" if where else str(problem["msg"])


def parse_message(text: str, requests: Mapping[str, ClientMessage]) -> tuple[str, Payload]:
    """The message type and its validated payload, or ``ProtocolError`` for the error reply."""
    try:
        envelope = Envelope.model_validate(_decode(text))
    except ValidationError as exc:
        raise _malformed(_first_problem(exc)) from exc
    request = requests.get(envelope.type)
    if request is None:
        raise ProtocolError(
            Reply.ERROR,
            ErrorName.UNKNOWN_MESSAGE_TYPE,
            f"unknown message type {envelope.type!r}",
            requestType=envelope.type,
        )
    raw = envelope.payload
    if raw is None and not any(field.is_required() for field in request.payload.model_fields.values()):
        raw = {}  # a payload whose every field is optional may be left out
    try:
        return envelope.type, request.payload.model_validate(raw)
    except ValidationError as exc:
        problem = f"invalid {envelope.type} payload ({_first_problem(exc)})"
        raise malformed(request.error_reply, problem, requestType=envelope.type) from exc


def _dump_model(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude_none=True)
    raise TypeError(f"cannot encode {type(value).__name__}")


# One encoder for every frame: json.dumps with options builds a new one per call, which costs more
# than encoding a small message (every rating sends a frame to each member of the room).
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=_dump_model)


def encode(message_type: Reply, payload: Any = None) -> str:
    """One outbound frame; pydantic models are dumped in their protocol (JSON) form."""
    if isinstance(payload, BaseModel):
        payload = payload.model_dump(mode="json", exclude_none=True)
    message: dict[str, Any] = {"type": message_type}
    if payload is not None:
        message["payload"] = payload
    return _ENCODER.encode(message)


def _around_cards(message_type: Reply, payload: Mapping[str, Any]) -> tuple[str, str]:
    """The frame's text before and after the cards of its ``media`` (``payload`` has no ``media``)."""
    head = f'{{"type":{_ENCODER.encode(message_type)},"payload":{{"media":['
    rest = _ENCODER.encode(payload)
    return head, "]}}" if rest == "{}" else f"],{rest[1:]}}}"


def encode_with_cards(message_type: Reply, payload: Mapping[str, Any], cards: Iterable[Media]) -> str:
    """``encode`` of ``payload`` with ``media``: these cards, joined from their encoded forms."""
    head, tail = _around_cards(message_type, payload)
    return head + ",".join([card.wire_json() for card in cards]) + tail


class LongFrame:
    """A frame of very many cards (a MovieMatch v2 client's whole deck: 100,000 cards are tens of
    megabytes): made a piece at a time as it is sent, the event loop serving others between pieces.
    ``cards`` are read then, so they must not change meanwhile (a deck and a copy of what is rated)."""

    # About 40 KB: each piece holds the event loop while it is made and the GIL while it is framed;
    # at 1,000 cards (430 KB) another room's rating round trips went from 1.8 to 8.8 ms (p99) while
    # two v2 clients joined a 100,000-film room in a loop, at 100 they stay within 2x of idle
    # (bench/library.py's neighbour). A whole v2 deck takes a little longer: 0.7 -> 1.0 s.
    PIECE_CARDS = 100

    def __init__(self, message_type: Reply, payload: Mapping[str, Any], cards: Iterator[Media]) -> None:
        self._head, self._tail = _around_cards(message_type, payload)
        self._cards = cards

    async def pieces(self) -> AsyncIterator[bytes]:
        """The frame's text, UTF-8, in pieces of ``PIECE_CARDS`` cards."""
        lead = self._head
        while batch := list(islice(self._cards, self.PIECE_CARDS)):
            yield (lead + ",".join([card.wire_json() for card in batch])).encode()
            lead = ","
            await anyio.lowlevel.checkpoint()
        yield ((self._head if lead != "," else "") + self._tail).encode()

    async def text(self) -> str:
        """The whole frame (for a server that cannot send a message in pieces)."""
        return b"".join([piece async for piece in self.pieces()]).decode()


# What a connection is given to send: a frame's text, or a long frame made as it is sent.
Frame = str | LongFrame
