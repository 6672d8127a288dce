"""The server's settings: one validated, immutable object built from a YAML file and the environment.

Precedence, highest first: command-line overrides, environment variables, the YAML file, defaults.
The YAML file is ``--config PATH`` (a missing explicit file is an error), else ``./config.yaml``
when present. The original MovieMatch's camelCase keys (``hostname``, ``logLevel``,
``basicAuth.userName``, ``servers[].linkType`` ...) are read too, so its config files keep working.

Every problem is collected and reported at once, each naming its key (and the environment variable
or option it came from); secrets never appear in reprs, logs or messages.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
from collections.abc import Callable, Iterator, Mapping
from itertools import pairwise
from pathlib import Path
from typing import Annotated, Any, Literal, get_args
from urllib.parse import parse_qsl, urlsplit

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    StrictBool,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

from server.names import clean_name, skeleton
from server.protocol import CreateRoomRequest, EndConditions
from storage import Filter, Storage, StorageError, create_storage
from storage.factory import storage_url
from storage.redis import RedisStorage

DEFAULT_CONFIG_PATH = "config.yaml"

Loc = tuple[str | int, ...]


class ConfigError(Exception):
    """The configuration cannot be used; ``problems`` holds one message per problem."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid configuration:\n" + "\n".join(problems))


class LocatedError(ValueError):
    """A check of a whole list or section that blames one key inside it (``loc``, below the
    validated field): the problem is reported under that key."""

    def __init__(self, loc: Loc, message: str) -> None:
        self.loc = loc
        super().__init__(message)


# One place that masks secrets: user:password@ in URLs, and query values such as ?X-Plex-Token=
# or ?api_key= (Plex and Jellyfin URLs are often pasted with their token).
_URL_PASSWORD = re.compile(r"(://[^/:@\s]*):[^/\s]*@")
_SECRET_QUERY_VALUE = re.compile(r"([?&][^=&#\s]*(?:pass|token|secret|key|auth)[^=&#\s]*=)[^&#\s]*", re.IGNORECASE)


def mask_secrets(text: str, *urls: str | None) -> str:
    """``text`` with URL passwords and secret-looking URL query values replaced by ``***``, and the
    passwords of ``urls`` too wherever they occur (messages may quote them out of their URL)."""
    for url in urls:
        try:
            password = urlsplit(url or "").password
        except ValueError:  # an unparsable URL: the patterns below still apply
            continue
        if password:
            text = text.replace(password, "***")
    return _SECRET_QUERY_VALUE.sub(r"\1***", _URL_PASSWORD.sub(r"\1:***@", text))


# Field checks. Each raises ValueError with what is expected; the offending value is appended
# by the error formatter, which knows whether it may be shown.


def _upper(value: object) -> object:
    return value.strip().upper() if isinstance(value, str) else value


def _lower(value: object) -> object:
    return value.strip().lower() if isinstance(value, str) else value


def _log_level(value: object) -> object:
    value = _upper(value)
    return "WARNING" if value == "WARN" else value  # WARN is the fork's (Deno std 0.224) spelling


def _root_path(value: str) -> str:
    path = value.strip().strip("/")
    if not path:
        return ""
    if "://" in path or any(char in "?#\\" or char.isspace() for char in path):
        raise ValueError("must be a URL path such as /moviematch")
    return f"/{path}"


def _http_url(value: str) -> str:
    url = value.strip()
    parts = urlsplit(url)
    try:
        valid_port = parts.port != 0
    except ValueError:  # not a number, or out of range
        valid_port = False
    if parts.scheme not in ("http", "https") or not parts.hostname or not valid_port:
        raise ValueError("must be an http:// or https:// URL with a host, e.g. http://192.168.1.10:32400")
    return url.rstrip("/")


def _public_url(value: str) -> str:
    url = _http_url(value)
    parts = urlsplit(url)
    if parts.query or parts.fragment:
        raise ValueError(
            "must be the app's address without ?query or #fragment, e.g. https://movies.example.com/moviematch/"
        )
    return url + "/"  # share links are relative to it


def _origin(value: str) -> str:
    origin = value.strip().rstrip("/").lower()
    if re.fullmatch(r"https?://[^/?#\s@]+", origin) is None:
        raise ValueError("must be an origin such as https://movies.example.com (scheme and host, no path)")
    return origin


def _network(value: str) -> str:
    try:
        return str(ipaddress.ip_network(value.strip(), strict=False))
    except ValueError:
        raise ValueError("must be an IP address or a CIDR range such as 10.0.0.0/8 or fd00::/8") from None


def _proxy(value: str) -> str:
    return "*" if value.strip() == "*" else _network(value)


_HOST_PATTERN = re.compile(r"(\*\.)?[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*\.?")


def _host_pattern(value: str) -> str:
    host = value.strip().lower()
    if host != "*" and _HOST_PATTERN.fullmatch(host) is None:
        raise ValueError("must be a host name such as movies.example.com, *.example.com for its subdomains, or *")
    return host.rstrip(".")


def _readable_file(value: str) -> str:
    path = Path(value)
    if not path.is_file():
        raise ValueError("file not found")
    if not os.access(path, os.R_OK):
        raise ValueError("file is not readable")
    return value


def _non_blank(value: SecretStr) -> SecretStr:
    if not value.get_secret_value().strip():
        raise ValueError("must not be empty")
    return value


ReadableFile = Annotated[str, AfterValidator(_readable_file)]
Network = Annotated[str, AfterValidator(_network)]

_BOOLEAN = "true or false (environment: 1, true, yes, on / 0, false, no, off)"


def _seconds(default: float) -> Any:
    return Field(default, gt=0, description="a number of seconds greater than 0")


def _count(default: int, minimum: int = 1) -> Any:
    return Field(default, ge=minimum, description=f"an integer of at least {minimum}")


class _Section(BaseModel):
    # Defaults are validated too: a raised save_delay must still be <= the default save_max_wait,
    # and the default storage must be buildable.
    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # URLs (storage, servers) may carry a password or a token: repr() and str() mask them.
        for name, value in super().__repr_args__():
            yield name, mask_secrets(value) if isinstance(value, str) else value


class BasicAuth(_Section):
    """HTTP basic auth in front of the page, the API and the WebSocket."""

    user: str = Field(min_length=1, description="a non-empty string")
    password: Annotated[SecretStr, AfterValidator(_non_blank)] = Field(description="a non-empty string")


class Tls(_Section):
    """Serve HTTPS with this certificate chain and private key (PEM files)."""

    cert: ReadableFile
    key: ReadableFile


class MediaServer(_Section):
    """A Plex or Jellyfin server to take the media from; or Overseerr/Jellyseerr (``seerr``), for
    popular titles the library lacks and requests for them (``token`` is its API key)."""

    type: Literal["plex", "jellyfin", "seerr"] = Field("plex", description="plex, jellyfin or seerr")
    url: Annotated[str, AfterValidator(_http_url)]
    token: Annotated[SecretStr, AfterValidator(_non_blank)] = Field(description="a non-empty string")
    library_title_filter: tuple[str, ...] = ()
    library_type_filter: tuple[Literal["movie", "show"], ...] = Field(
        ("movie",), min_length=1, description="a non-empty list of: movie, show"
    )
    link_type: Literal["app", "webLocal", "webExternal"] | None = Field(
        None, description="one of app, webLocal, webExternal"
    )
    verify_tls: StrictBool = Field(True, description=_BOOLEAN)
    user_id: str | None = None
    # Jellyfin/Emby: whether its users may sign in to MovieMatch with their account.
    sign_in: StrictBool = Field(True, description=_BOOLEAN)


class StorageSettings(_Section):
    """Where rooms are kept: a storage URL, or a type and a path (see ``storage.factory``)."""

    url: str | None = None
    type: str | None = None
    path: str | None = None
    # Redis only: every change waits until this many replicas confirm it (WAIT), so that a failover
    # loses nothing acknowledged.
    min_replicas: int = _count(0, minimum=0)

    @model_validator(mode="after")
    def _usable(self) -> StorageSettings:
        if self.url and (self.type or self.path):
            raise ValueError("give either url, or type and path, not both")
        try:
            self.create()  # builds the backend object only: nothing is opened or connected
        except StorageError as exc:
            raise ValueError(mask_secrets(f"{exc.target}: {exc.reason}", self.url, self.path)) from None
        return self

    def create(self) -> Storage:
        """A new, not yet opened backend; unlike ``storage_url()`` this also handles ``module:Class`` types."""
        storage = create_storage(self.url, storage_type=self.type, path=self.path)
        if self.min_replicas:
            if not isinstance(storage, RedisStorage):
                raise StorageError("create_storage", "min_replicas", "only a Redis storage has replicas to wait for")
            storage.require_replicas(self.min_replicas)
        return storage


def _values(value: object) -> object:
    """A filter's values: a list, or one value alone; numbers and booleans (as YAML reads 1990 and
    true) are their text."""
    items = value if isinstance(value, list | tuple) else [value]
    return [
        str(item).lower() if isinstance(item, bool) else str(item) if isinstance(item, int | float) else item
        for item in items
    ]


def _visible_name(value: str) -> str:
    # The length is checked against max_name_length, by Settings.
    return clean_name(value, max_length=len(value))


class RoomFilter(_Section):
    """One filter of a standing room, as createRoom takes it (protocol.md, Filter)."""

    key: str = Field(min_length=1, description="a non-empty string")
    operator: str = Field(min_length=1, description="a non-empty string such as = or >>=")
    value: Annotated[tuple[str, ...], BeforeValidator(_values)] = Field(
        min_length=1, description="a value or a list of values"
    )


class RoomEnd(EndConditions):
    """When a standing room ends, as createRoom's endConditions (none by default)."""

    model_config = ConfigDict(extra="forbid")


# createRoom's names of the keys of a standing room.
_REQUEST_KEYS = {
    "roomName": "name",
    "roomType": "room_type",
    "matchThreshold": "match_threshold",
    "sortOrder": "sort_order",
    "endConditions": "end_conditions",
}


class StandingRoom(_Section):
    """A room the host defines: it always exists, owned by the host (``server.rooms.standing``)."""

    name: Annotated[str, AfterValidator(_visible_name)]
    # The qualified library keys getLibraries returns; none: every library.
    libraries: tuple[str, ...] = ()
    filters: tuple[RoomFilter, ...] = ()
    room_type: Literal["standard", "unanimous", "solo"] = Field(
        "standard", description="one of standard, unanimous, solo"
    )
    match_threshold: int = Field(2, ge=2, le=1000, description="an integer between 2 and 1000")
    sort_order: Literal["random", "newest", "oldest", "rating"] = Field(
        "random", description="one of random, newest, oldest, rating"
    )
    # Plain ``SecretStr | None``, so that problems never show what was given.
    password: SecretStr | None = Field(None, description="a non-empty string")
    end_conditions: RoomEnd | None = None

    @field_validator("password")
    @classmethod
    def _password(cls, value: SecretStr | None) -> SecretStr | None:
        return None if value is None else _non_blank(value)

    @model_validator(mode="after")
    def _creatable(self) -> StandingRoom:
        try:
            self.request()
        except ValidationError as exc:
            error = exc.errors(include_url=False, include_input=False)[0]
            # The request's own checks of the whole room are checks of its filters.
            loc = tuple(_REQUEST_KEYS.get(str(part), part) for part in error["loc"]) or ("filters",)
            raise LocatedError(loc, str(error.get("ctx", {}).get("error", error["msg"]))) from None
        return self

    def request(self) -> CreateRoomRequest:
        """The room as createRoom asks for it: its filters in the form rooms store them."""
        return CreateRoomRequest(
            roomName=self.name,
            password=self.password.get_secret_value() if self.password else None,
            filters=[Filter(key=rule.key, operator=rule.operator, value=list(rule.value)) for rule in self.filters],
            roomType=self.room_type,
            matchThreshold=self.match_threshold,
            sortOrder=self.sort_order,
            libraries=list(self.libraries),
            endConditions=self.end_conditions,
        )


class Settings(_Section):
    """Everything the server can be configured with; see config.example.yaml for each key."""

    host: str = Field("0.0.0.0", min_length=1, description="a host name or IP address")  # noqa: S104 (a LAN party server: reachable by default)
    port: int = Field(8000, ge=0, le=65535, description="an integer between 0 and 65535")
    log_level: Annotated[Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], BeforeValidator(_log_level)] = Field(
        "INFO", description="one of DEBUG, INFO, WARNING, ERROR, CRITICAL"
    )
    log_format: Annotated[Literal["text", "json"], BeforeValidator(_lower)] = Field("text", description="text or json")
    root_path: Annotated[str, AfterValidator(_root_path)] = ""
    # Behind a reverse proxy: the address people open; share links are built from it.
    public_url: Annotated[str, AfterValidator(_public_url)] | None = None
    require_plex_login: StrictBool = Field(False, description=_BOOLEAN)
    # Who may create rooms: anyone; users signed in with Plex; users signed in with Jellyfin; or
    # users of a configured server (Plex users it is shared with or owned by, Jellyfin users of it).
    room_creators: Literal["anyone", "plex", "jellyfin", "server-users"] = Field(
        "anyone", description="one of anyone, plex, jellyfin, server-users"
    )
    plex_tv_url: Annotated[str, AfterValidator(_http_url)] = "https://plex.tv"
    # Where the browser sends a user to approve a Plex sign-in (the PIN flow).
    plex_app_url: Annotated[str, AfterValidator(_http_url)] = "https://app.plex.tv"
    # Where Plex accounts keep their watchlists (plex.tv's metadata provider): "save for later" of a
    # Plex user is written there too.
    plex_metadata_url: Annotated[str, AfterValidator(_http_url)] = "https://metadata.provider.plex.tv"
    # The image server of Overseerr/Jellyseerr's titles (TMDB's): this server fetches their posters.
    tmdb_image_url: Annotated[str, AfterValidator(_http_url)] = "https://image.tmdb.org/t/p"
    # While a room is open, how often the state of its requested titles is read again from Seerr.
    request_refresh_interval: float = _seconds(30.0)
    auth: BasicAuth | None = None
    tls: Tls | None = None
    servers: tuple[MediaServer, ...] = ()
    catalogue: ReadableFile | None = None
    # Built from an empty section, so the default backend goes through the same checks (repeating
    # validate_default here is what tells the mypy plugin that the dict default is converted).
    storage: StorageSettings = Field(default_factory=dict, validate_default=True)
    save_delay: float = _seconds(1.0)
    save_max_wait: float = _seconds(5.0)
    room_idle_timeout: float = _seconds(300.0)
    shutdown_timeout: float = _seconds(8.0)
    # Redis storage only: a process that has not sent a heartbeat for this long is taken for dead,
    # and its members leave their rooms (heartbeats go out every third of it).
    presence_timeout: float = _seconds(15.0)
    max_message_bytes: int = _count(65536, minimum=1024)
    rate_limit_per_second: float = Field(20.0, gt=0, description="a number greater than 0")
    rate_limit_burst: int = _count(40)
    max_room_members: int = _count(50)
    # A room nobody has opened for this many days is deleted (0: rooms are kept for ever).
    room_retention_days: float = Field(90.0, ge=0, description="a number of days, 0 or more (0: for ever)")
    # Room creation stops at this many stored rooms (0: no limit), or below this much free disk.
    max_rooms: int = _count(10000, minimum=0)
    min_free_disk_mb: int = _count(100, minimum=0)
    # Members not connected for this many days no longer take up a place in the room.
    member_absence_days: float = Field(14.0, gt=0, description="a number of days greater than 0")
    max_name_length: int = _count(100)
    # Per Plex account, else per client address; a sliding day.
    max_rooms_per_user: int = _count(20)
    # Wrong room passwords per client address per minute before joins with a password are refused.
    max_password_attempts: int = _count(5)
    # Rooms the host defines (no environment variable): they always exist and never expire.
    rooms: tuple[StandingRoom, ...] = ()
    # Seconds between looks at the library of an open standing room (new films join its deck).
    standing_room_refresh: float = _seconds(3600.0)
    allowed_origins: tuple[Annotated[str, AfterValidator(_origin)], ...] = ()
    # Peers whose X-Forwarded-For / X-Forwarded-Proto are believed (reverse proxies); "*" trusts any.
    trusted_proxies: tuple[Annotated[str, AfterValidator(_proxy)], ...] = ("127.0.0.1/32", "::1/128")
    # Per-address limits count an IPv6 client by its network of this length (a home gets a /64).
    ipv6_prefix_length: int = Field(64, ge=32, le=128, description="an integer between 32 and 128")
    # Host names besides the ones that always work (IP addresses, localhost, this machine's name,
    # local-network names): DNS rebinding protection.
    allowed_hosts: tuple[Annotated[str, AfterValidator(_host_pattern)], ...] = ()
    # Connections at once: all of them (0: what the file limit allows), and per client address.
    max_connections: int = _count(0, minimum=0)
    max_connections_per_address: int = _count(64)
    # Seconds a client has to send a request's headers (and body) before the connection is closed:
    # above the 10 s after which Chromium drops a connection it opened ahead and never used.
    header_timeout: float = _seconds(20.0)
    # CPU-heavy work (password checks, QR codes): run at once (one leaves the other cores to the
    # event loop), waiting, and per client address.
    cpu_workers: int = _count(1)
    cpu_queue: int = _count(32)
    cpu_queue_per_client: int = _count(4)
    # /metrics without Basic auth: open to anyone when metrics is true, else only to these addresses.
    metrics: StrictBool = Field(False, description=_BOOLEAN)
    metrics_allowed_ips: tuple[Network, ...] = ("127.0.0.1/32", "::1/128")
    # A WebSocket that has not logged in after this long is closed (it only holds a file descriptor).
    login_timeout: float = _seconds(300.0)
    # Keepalive: a peer that does not answer a ping within the timeout is disconnected.
    ws_ping_interval: float = _seconds(20.0)
    ws_ping_timeout: float = _seconds(20.0)
    # permessage-deflate; the message size limit applies after inflation either way.
    ws_compression: StrictBool = Field(True, description=_BOOLEAN)

    @field_validator("save_max_wait")
    @classmethod
    def _not_below_save_delay(cls, value: float, info: ValidationInfo) -> float:
        delay = info.data.get("save_delay")
        if delay is not None and value < delay:
            raise ValueError(f"must be at least save_delay ({delay:g})")
        return value

    @field_validator("rooms")
    @classmethod
    def _distinct_names(cls, rooms: tuple[StandingRoom, ...], info: ValidationInfo) -> tuple[StandingRoom, ...]:
        longest = info.data.get("max_name_length")
        seen: dict[str, int] = {}
        for index, room in enumerate(rooms):
            if longest is not None and len(room.name) > longest:
                raise LocatedError((index, "name"), f"must be at most {longest} characters (max_name_length)")
            earlier = seen.setdefault(skeleton(room.name), index)
            if earlier != index:
                raise LocatedError((index, "name"), f"looks the same as rooms[{earlier}] ({rooms[earlier].name})")
        return rooms

    @property
    def member_absence_ms(self) -> int:
        return int(self.member_absence_days * 24 * 3600 * 1000)

    @property
    def drain_timeout(self) -> float:
        """How long shutdown waits for connections to close: the first part of ``shutdown_timeout``."""
        return self.shutdown_timeout * 0.6

    @property
    def flush_timeout(self) -> float:
        """How long shutdown may spend saving rooms, after the connections: the rest of the budget."""
        return self.shutdown_timeout - self.drain_timeout

    def storage_url(self) -> str:
        return storage_url(self.storage.type, self.storage.path, self.storage.url)

    def secrets(self) -> list[str]:
        """Every secret value, for log redaction (with ``user:password``, whose base64 is the Basic header)."""
        found = [server.token.get_secret_value() for server in self.servers]
        if self.auth is not None:
            password = self.auth.password.get_secret_value()
            found += [password, f"{self.auth.user}:{password}"]
        found += [room.password.get_secret_value() for room in self.rooms if room.password is not None]
        with contextlib.suppress(ValueError, StorageError):  # an unparsable URL holds no password to find
            url = urlsplit(self.storage_url())
            found.append(url.password or "")
            found += [value for name, value in parse_qsl(url.query) if name == "sentinel_password"]
        return [secret for secret in found if secret]

    def masked(self) -> dict[str, Any]:
        """The settings as plain data that is safe to log: secrets are ``***``."""
        return {key: _masked(value) for key, value in self.model_dump().items()}


def _masked(value: object) -> object:
    if isinstance(value, SecretStr):
        return "***"
    if isinstance(value, str):
        return mask_secrets(value)
    if isinstance(value, dict):
        return {key: _masked(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_masked(item) for item in value]
    return value


# Reading the sources.

# The original MovieMatch's YAML keys, per section, and the names they have here.
_LEGACY_KEYS: dict[str, dict[str, str]] = {
    "": {
        "hostname": "host",
        "logLevel": "log_level",
        "rootPath": "root_path",
        "requirePlexTvLogin": "require_plex_login",
        "basicAuth": "auth",
        "tlsConfig": "tls",
    },
    "auth": {"userName": "user"},
    "tls": {"certFile": "cert", "keyFile": "key"},
    "servers": {
        "libraryTitleFilter": "library_title_filter",
        "libraryTypeFilter": "library_type_filter",
        "linkType": "link_type",
    },
}

_TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
_FALSE_WORDS = frozenset({"0", "false", "no", "off"})


def _flag(raw: str) -> object:
    word = raw.lower()
    # Anything else is passed on as text, for the boolean field to reject with the variable's name.
    return True if word in _TRUE_WORDS else False if word in _FALSE_WORDS else raw


def _items(raw: str) -> list[str]:
    return [item.strip() for item in raw.split(",") if item.strip()]


def _text(raw: str) -> str:
    return raw


# Environment variable, the key it sets, and how its text becomes a value. The media server
# variables set the first server, creating it when the YAML has none (as the original did).
_ENV_VARS: tuple[tuple[str, Loc, Callable[[str], object]], ...] = (
    ("HOST", ("host",), _text),
    ("PORT", ("port",), _text),
    ("LOG_LEVEL", ("log_level",), _text),
    ("LOG_FORMAT", ("log_format",), _text),
    ("ROOT_PATH", ("root_path",), _text),
    ("PUBLIC_URL", ("public_url",), _text),
    ("REQUIRE_PLEX_LOGIN", ("require_plex_login",), _flag),
    ("ROOM_CREATORS", ("room_creators",), _text),
    ("PLEX_TV_URL", ("plex_tv_url",), _text),
    ("PLEX_APP_URL", ("plex_app_url",), _text),
    ("PLEX_METADATA_URL", ("plex_metadata_url",), _text),
    ("TMDB_IMAGE_URL", ("tmdb_image_url",), _text),
    ("REQUEST_REFRESH_INTERVAL", ("request_refresh_interval",), _text),
    ("AUTH_USER", ("auth", "user"), _text),
    ("AUTH_PASS", ("auth", "password"), _text),
    ("TLS_CERT", ("tls", "cert"), _text),
    ("TLS_KEY", ("tls", "key"), _text),
    ("PLEX_URL", ("servers", 0, "url"), _text),
    ("PLEX_TOKEN", ("servers", 0, "token"), _text),
    ("LIBRARY_TITLE_FILTER", ("servers", 0, "library_title_filter"), _items),
    ("LIBRARY_TYPE_FILTER", ("servers", 0, "library_type_filter"), _items),
    ("MOVIE_LINK_TYPE", ("servers", 0, "link_type"), _text),
    ("CATALOGUE_FILE", ("catalogue",), _text),
    ("STORAGE_URL", ("storage", "url"), _text),
    ("STORAGE_TYPE", ("storage", "type"), _text),
    ("STORAGE_PATH", ("storage", "path"), _text),
    ("REDIS_MIN_REPLICAS", ("storage", "min_replicas"), _text),
    ("SAVE_DELAY", ("save_delay",), _text),
    ("SAVE_MAX_WAIT", ("save_max_wait",), _text),
    ("ROOM_IDLE_TIMEOUT", ("room_idle_timeout",), _text),
    ("SHUTDOWN_TIMEOUT", ("shutdown_timeout",), _text),
    ("PRESENCE_TIMEOUT", ("presence_timeout",), _text),
    ("MAX_MESSAGE_BYTES", ("max_message_bytes",), _text),
    ("RATE_LIMIT_PER_SECOND", ("rate_limit_per_second",), _text),
    ("RATE_LIMIT_BURST", ("rate_limit_burst",), _text),
    ("MAX_ROOM_MEMBERS", ("max_room_members",), _text),
    ("MEMBER_ABSENCE_DAYS", ("member_absence_days",), _text),
    ("ROOM_RETENTION_DAYS", ("room_retention_days",), _text),
    ("MAX_ROOMS", ("max_rooms",), _text),
    ("MIN_FREE_DISK_MB", ("min_free_disk_mb",), _text),
    ("MAX_NAME_LENGTH", ("max_name_length",), _text),
    ("MAX_ROOMS_PER_USER", ("max_rooms_per_user",), _text),
    ("MAX_PASSWORD_ATTEMPTS", ("max_password_attempts",), _text),
    ("STANDING_ROOM_REFRESH", ("standing_room_refresh",), _text),
    ("ALLOWED_ORIGINS", ("allowed_origins",), _items),
    ("LOGIN_TIMEOUT", ("login_timeout",), _text),
    ("WS_PING_INTERVAL", ("ws_ping_interval",), _text),
    ("WS_PING_TIMEOUT", ("ws_ping_timeout",), _text),
    ("WS_COMPRESSION", ("ws_compression",), _flag),
    # uvicorn's name first, so that TRUSTED_PROXIES wins when both are set.
    ("FORWARDED_ALLOW_IPS", ("trusted_proxies",), _items),
    ("TRUSTED_PROXIES", ("trusted_proxies",), _items),
    ("IPV6_PREFIX_LENGTH", ("ipv6_prefix_length",), _text),
    ("ALLOWED_HOSTS", ("allowed_hosts",), _items),
    ("MAX_CONNECTIONS", ("max_connections",), _text),
    ("MAX_CONNECTIONS_PER_ADDRESS", ("max_connections_per_address",), _text),
    ("HEADER_TIMEOUT", ("header_timeout",), _text),
    ("CPU_WORKERS", ("cpu_workers",), _text),
    ("CPU_QUEUE", ("cpu_queue",), _text),
    ("CPU_QUEUE_PER_CLIENT", ("cpu_queue_per_client",), _text),
    ("METRICS", ("metrics",), _flag),
    ("METRICS_ALLOWED_IPS", ("metrics_allowed_ips",), _items),
)
_ENV_VAR_OF: dict[Loc, str] = {loc: name for name, loc, _ in _ENV_VARS}


def load_settings(
    config_path: str | None, env: Mapping[str, str], *, overrides: Mapping[str, object] | None = None
) -> Settings:
    """The settings from the YAML file, ``env`` and ``overrides`` (top-level keys, e.g. from options).

    Raises ``ConfigError`` listing every problem found.
    """
    problems: list[str] = []
    written: dict[Loc, str] = {}  # keys the YAML spelled the original way, to name them as written
    data = _canonical_mapping(_read_yaml(config_path), (), written, problems)
    _name_entries(data, written)
    sources = _apply_env(data, env)
    secrets = _secret_values(data)
    for name, value in (overrides or {}).items():
        data[name] = value
        sources[(name,)] = "--" + name.replace("_", "-")
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        problems.extend(_describe(error, written, sources, secrets) for error in exc.errors())
    else:
        if not problems:
            return settings
    raise ConfigError(problems)


def _read_yaml(config_path: str | None) -> dict[Any, Any]:
    path = Path(config_path or DEFAULT_CONFIG_PATH)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if config_path is None:
            return {}
        raise ConfigError([f"{path}: config file not found"]) from None
    except (OSError, ValueError) as exc:
        raise ConfigError([f"{path}: cannot read the config file ({exc})"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        # str(exc) quotes the offending line, which may hold a token: give the position only.
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError([f"{path}: invalid YAML{where}: {getattr(exc, 'problem', None) or 'syntax error'}"]) from None
    if data is None:  # an empty file, or /dev/null (the original's way to say "no file")
        return {}
    if not isinstance(data, dict):
        raise ConfigError([f"{path}: the top level must be a mapping of keys to values, not a {type(data).__name__}"])
    return data


def _canonical_keys(value: object, loc: Loc, written: dict[Loc, str], problems: list[str]) -> object:
    if isinstance(value, list):
        return [_canonical_keys(item, (*loc, index), written, problems) for index, item in enumerate(value)]
    if isinstance(value, dict):
        return _canonical_mapping(value, loc, written, problems)
    return value


def _canonical_mapping(
    mapping: dict[Any, Any], loc: Loc, written: dict[Loc, str], problems: list[str]
) -> dict[str, Any]:
    """``mapping`` with the original MovieMatch's keys renamed to this project's names."""
    aliases = _LEGACY_KEYS.get(str(loc[0]) if loc else "", {})
    result: dict[str, Any] = {}
    for raw_key, item in mapping.items():
        key = aliases.get(str(raw_key), str(raw_key))
        here = (*loc, key)
        if key in result:
            problems.append(f"{_path_text(here, written)}: set twice (as {written.get(here, key)} and {raw_key})")
            continue
        if key != raw_key:
            written[here] = str(raw_key)
        result[key] = _canonical_keys(item, here, written, problems)
    return result


def _apply_env(data: dict[str, Any], env: Mapping[str, str]) -> dict[Loc, str]:
    """Overlay the environment on ``data``; returns which variable set which key."""
    sources: dict[Loc, str] = {}
    for name, loc, parse in _ENV_VARS:
        raw = env.get(name, "").strip()
        # Empty means unset, as in the original (compose files often carry `PORT=` lines).
        if raw and _set(data, loc, parse(raw)):
            sources[loc] = name
    # REDIS_URL is the path of a redis storage, and means nothing otherwise.
    redis_url = env.get("REDIS_URL", "").strip()
    storage = data.get("storage")
    if redis_url and isinstance(storage, dict) and str(storage.get("type")).strip().lower() in ("redis", "rediss"):
        storage["path"] = redis_url
        sources[("storage", "path")] = "REDIS_URL"
    return sources


def _set(data: dict[str, Any], loc: Loc, value: object) -> bool:
    """Put ``value`` at ``loc``, creating the sections on the way; False when the YAML has
    something else there (which is then reported as that key's own type error)."""
    container: Any = data
    for key, next_key in pairwise(loc):
        if isinstance(container, dict):
            if container.get(key) is None:
                container[key] = [] if isinstance(next_key, int) else {}
        elif isinstance(container, list) and isinstance(key, int) and key <= len(container):
            if key == len(container):
                container.append({})
        else:
            return False
        container = container[key]
    if not isinstance(container, dict):
        return False
    container[loc[-1]] = value
    return True


# Turning pydantic's errors into messages that name the key.


def _name_entries(data: dict[str, Any], written: dict[Loc, str]) -> None:
    """Problems of a standing room name it too: ``rooms[1] (Kids).match_threshold``."""
    rooms = data.get("rooms")
    for index, room in enumerate(rooms if isinstance(rooms, list) else []):
        name = room.get("name") if isinstance(room, dict) else None
        if isinstance(name, str) and name.strip() and name.isprintable():
            shown = name.strip() if len(name.strip()) <= _MAX_LABEL else name.strip()[:_MAX_LABEL] + "…"
            written[("rooms", index)] = f"[{index}] ({shown})"


_MAX_LABEL = 40


def _describe(error: ErrorDetails, written: dict[Loc, str], sources: dict[Loc, str], secrets: set[str]) -> str:
    loc = tuple(error["loc"])
    problem = error.get("ctx", {}).get("error")
    if isinstance(problem, LocatedError):
        loc = (*loc, *problem.loc)
    field = _field_at(loc)
    kind = error["type"]
    if kind == "missing":
        env_var = _ENV_VAR_OF.get(loc)
        reason = f"is required (or set {env_var})" if env_var else "is required"
    elif kind == "extra_forbidden":
        reason = "unknown key"
    elif kind == "value_error":
        reason = str(problem if problem is not None else error["msg"])
    elif kind in ("model_type", "model_attributes_type", "dict_type"):
        reason = "must be a mapping of keys to values"
    elif field is not None and field.description:
        reason = f"must be {field.description}"
    else:
        reason = error["msg"].replace("Input should be", "must be", 1)
    value = error["input"]
    if kind not in ("missing", "extra_forbidden") and _may_show(field, value):
        shown = mask_secrets(repr(value))
        for secret in secrets:  # e.g. a token pasted as the url
            shown = shown.replace(secret, "***")
        reason += f" (got {shown})"
    names = [name for path, name in sources.items() if path[: len(loc)] == loc or loc[: len(path)] == path]
    label = _path_text(loc, written) + (f" ({', '.join(names)})" if names else "")
    return f"{label}: {reason}"


_SECRET_KEYS = frozenset({"token", "password"})


def _secret_values(value: object, secret: bool = False) -> set[str]:
    """The text of every token and password, never to be echoed wherever else it turns up."""
    if isinstance(value, dict):
        return set[str]().union(*(_secret_values(item, secret or key in _SECRET_KEYS) for key, item in value.items()))
    if isinstance(value, list):
        return set[str]().union(*(_secret_values(item, secret) for item in value))
    return {value} if secret and isinstance(value, str) and value else set()


def _path_text(loc: Loc, written: dict[Loc, str]) -> str:
    text = ""
    for index, part in enumerate(loc):
        if isinstance(part, int):
            text += written.get(loc[: index + 1], f"[{part}]")
        else:
            text += ("." if text else "") + written.get(loc[: index + 1], part)
    return text


def _field_at(loc: Loc) -> FieldInfo | None:
    model: type[BaseModel] | None = Settings
    field = None
    for part in loc:
        if isinstance(part, int):
            continue
        if model is None or part not in model.model_fields:
            return None
        field = model.model_fields[part]
        model = _model_in(field.annotation)
    return field


def _model_in(annotation: object) -> type[BaseModel] | None:
    for candidate in (annotation, *get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _may_show(field: FieldInfo | None, value: object) -> bool:
    """Only plain values of plain fields: a section or a secret field may hold a token."""
    if field is None or not isinstance(value, str | int | float | bool | None):
        return False
    secret = SecretStr in (field.annotation, *get_args(field.annotation))
    return not secret and _model_in(field.annotation) is None
