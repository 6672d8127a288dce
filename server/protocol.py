"""Message shapes and error names of protocol.md (MovieMatch v2, compatible)."""

from __future__ import annotations

import json
import unicodedata
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from storage import Filter

NAME_MAX_LENGTH = 100


class ProtocolError(Exception):
    """A request that gets an error reply: ``{"type": reply_type, "payload": {"name", "message", ...}}``."""

    def __init__(self, reply_type: str, name: str, message: str, **extra: Any) -> None:
        super().__init__(f"{name}: {message}")
        self.reply_type = reply_type
        self.name = name
        self.message = message
        self.extra = extra

    def payload(self) -> dict[str, Any]:
        return {"name": self.name, "message": self.message, **self.extra}


def clean_name(value: str, max_length: int = NAME_MAX_LENGTH) -> str:
    """Trimmed, 1..max_length characters, no control characters (room and user names)."""
    name = value.strip()
    if not name:
        raise ValueError("must not be blank")
    if len(name) > max_length:
        raise ValueError(f"must be at most {max_length} characters")
    if any(unicodedata.category(char) in ("Cc", "Cs") for char in name):
        raise ValueError("must not contain control characters")
    return name


class Payload(BaseModel):
    # Extra keys are ignored: MovieMatch v2 forks send fields this server does not use.
    model_config = ConfigDict(extra="ignore", frozen=True)


class LoginRequest(Payload):
    userName: str | None = None
    plexToken: str | None = None
    plexClientId: str | None = None


class CreateRoomRequest(Payload):
    roomName: str
    password: str | None = None
    options: list[Literal["EndOnFirstMatch"]] = []
    filters: list[Filter] = []
    sort: Literal["random", "rating"] = "random"
    roomType: Literal["standard", "unanimous", "solo"] = "standard"
    matchThreshold: int = Field(default=2, ge=2, le=1000)
    sortOrder: Literal["random", "newest", "oldest", "rating"] | None = None
    libraries: list[str] = []


class JoinRoomRequest(Payload):
    roomName: str
    password: str | None = None
    memberToken: str | None = None


class RateRequest(Payload):
    mediaId: str = Field(min_length=1, max_length=500)
    rating: Literal["like", "dislike"]


class UndoRateRequest(Payload):
    mediaId: str = Field(min_length=1, max_length=500)


class DeleteRoomRequest(Payload):
    roomName: str


class SetLocaleRequest(Payload):
    language: str = Field(max_length=100)


class FilterValuesRequest(Payload):
    key: str = Field(min_length=1, max_length=100)


class NoPayload(Payload):
    pass


class AnyPayload(Payload):
    model_config = ConfigDict(extra="allow", frozen=True)


PAYLOADS: dict[str, type[Payload]] = {
    "login": LoginRequest,
    "logout": NoPayload,
    "createRoom": CreateRoomRequest,
    "joinRoom": JoinRoomRequest,
    "leaveRoom": NoPayload,
    "rate": RateRequest,
    "undoRate": UndoRateRequest,
    "deleteRoom": DeleteRoomRequest,
    "setLocale": SetLocaleRequest,
    "requestFilters": NoPayload,
    "requestFilterValues": FilterValuesRequest,
    "getLibraries": NoPayload,
    "setup": AnyPayload,
}


class Envelope(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: str
    payload: Any = None

    @field_validator("type")
    @classmethod
    def _bounded(cls, value: str) -> str:
        if len(value) > 100:
            raise ValueError("type is too long")
        return value


_envelope = TypeAdapter(Envelope)


def _first_problem(error: ValidationError) -> str:
    problem = error.errors(include_url=False)[0]
    where = ".".join(str(part) for part in problem["loc"])
    return f"{where}: {problem['msg']}" if where else str(problem["msg"])


def parse_message(text: str) -> tuple[str, Payload]:
    """The message type and its validated payload, or ``ProtocolError`` for the ``error`` reply."""
    try:
        envelope = _envelope.validate_json(text)
    except ValidationError as exc:
        raise ProtocolError("error", "MalformedMessage", f"not a MovieMatch message ({_first_problem(exc)})") from exc
    model = PAYLOADS.get(envelope.type)
    if model is None:
        raise ProtocolError(
            "error", "UnknownMessageType", f"unknown message type {envelope.type!r}", requestType=envelope.type
        )
    raw = envelope.payload
    if raw is None and model in (NoPayload, AnyPayload):
        raw = {}
    try:
        return envelope.type, model.model_validate(raw)
    except ValidationError as exc:
        raise ProtocolError(
            "error",
            "MalformedMessage",
            f"invalid {envelope.type} payload ({_first_problem(exc)})",
            requestType=envelope.type,
        ) from exc


def encode(message_type: str, payload: Any = None) -> str:
    """One outbound frame; pydantic models are dumped in their protocol (JSON) form."""
    if isinstance(payload, BaseModel):
        payload = payload.model_dump(mode="json", exclude_none=True)
    message: dict[str, Any] = {"type": message_type}
    if payload is not None:
        message["payload"] = payload
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False, default=_dump_model)


def _dump_model(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude_none=True)
    raise TypeError(f"cannot encode {type(value).__name__}")
