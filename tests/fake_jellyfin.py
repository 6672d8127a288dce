"""A fake Jellyfin server: a small Starlette app served by real uvicorn on loopback.

Its answers have the shapes of Jellyfin 10.x's API (as in jellyfin/jellyfin's controllers and the
@jellyfin/sdk models): ``PublicSystemInfo``/``SystemInfo``, ``UserDto`` with its ``Policy``,
``BaseItemDto`` (PascalCase, nulls left out, ``Overview``, ``Genres``, ``People``, ``ProviderIds``,
``DateCreated`` and ``Taglines`` only when ``Fields`` asks for them), ``QueryResult``
(``Items``, ``TotalRecordCount``, ``StartIndex``), ``VirtualFolderInfo`` and ``QueryFiltersLegacy``.
Like Jellyfin it reads query parameters whatever their case, takes ``Genres`` and ``OfficialRatings``
pipe-separated and ``Years`` comma-separated, and answers per-user questions (``IsPlayed``, a user's
views) only for a user named in the path or ``UserId``. Everything but ``/System/Info/Public``
needs the API key, in any of the ways Jellyfin accepts one, and the request log shows which way it came.

Items follow from their index, so a library of 100,000 costs nothing until it is asked for; each
item is encoded once per set of ``Fields`` and kept, so pages of a big library are cheap to serve
again. The request recording, faults and serving come from ``tests.fakes``.
"""

from __future__ import annotations

import itertools
import json
import re
import secrets
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from tests.fakes import FakeService, RouteSpec, png, video_bytes, video_response

API_KEY = "jf-api-key-3c9e1f7a5b2d4e60"
SERVER_ID = "5f2a9c8e1b7d4e3fa6c0d9b8e7f61234"
SERVER_NAME = "Living Room"
IMAGE_TYPE = "image/png"
POSTER_SIZE = (400, 600)  # the stored artwork; maxWidth scales it down

GENRES = ("Action", "Comedy", "Drama", "Science Fiction", "Horror", "Animation")
CONTENT_RATINGS = ("G", "PG", "PG-13", "R", "NC-17")
DIRECTORS = ("Agnès Varda", "Akira Kurosawa", "Kathryn Bigelow", "Ben Stiller")
ACTORS = (
    "Ben Stiller",
    "Owen Wilson",
    "Christine Taylor",
    "Will Ferrell",
    "Milla Jovovich",
    "Jerry Stiller",
    "Jon Voight",
)
ITEM_TYPES = {"movies": "Movie", "tvshows": "Series", "music": "MusicAlbum", "homevideos": "Video"}
_TICKS_PER_MINUTE = 600_000_000
TRAILER_BYTES = 150_000
TRAILER_TYPE = "video/mp4"


def trailer_video(trailer_id: str) -> bytes:
    return video_bytes(trailer_id, TRAILER_BYTES)


_CREATED = datetime(2021, 3, 1, tzinfo=UTC)


def guid(*numbers: int) -> str:
    """A Jellyfin id: 32 hex digits."""
    return "".join(f"{number:08x}" for number in numbers).ljust(32, "0")


@dataclass(frozen=True)
class FakeLibrary:
    """A library whose items follow from their index; every tenth item lacks something a real one may lack.

    Libraries with the same ``imdb_base`` hold the same films (an HD and a 4K library)."""

    number: int
    name: str
    collection_type: str
    size: int
    imdb_base: int

    @property
    def id(self) -> str:
        return guid(self.number)

    @property
    def item_type(self) -> str:
        return ITEM_TYPES[self.collection_type]

    def item_id(self, index: int) -> str:
        return guid(self.number, index + 1)

    def index_of(self, item_id: str) -> int | None:
        found = re.fullmatch(r"([0-9a-f]{8})([0-9a-f]{8})0{16}", item_id)
        if found is None or int(found.group(1), 16) != self.number:
            return None
        index = int(found.group(2), 16) - 1
        return index if 0 <= index < self.size else None

    def year(self, index: int) -> int | None:
        return None if index % 10 == 5 else 1950 + index % 70

    def genres(self, index: int) -> list[str]:
        return [GENRES[index % len(GENRES)], GENRES[(index // len(GENRES)) % len(GENRES)]][: 1 + index % 2]

    def rating(self, index: int) -> float | None:
        return None if index % 10 == 7 else round(4 + index % 60 / 10, 1)

    def content_rating(self, index: int) -> str | None:
        return None if index % 10 == 8 else CONTENT_RATINGS[index % len(CONTENT_RATINGS)]

    def minutes(self, index: int) -> int:
        return 80 + index % 70

    def has_poster(self, index: int) -> bool:
        return index % 10 != 6

    def local_trailers(self, index: int) -> int:
        return 1 if index % 4 == 0 else 0

    def remote_trailers(self, index: int) -> list[dict[str, str]]:
        """The trailers a metadata provider found online: a web page, or now and then a bad link."""
        if index % 8 == 2:
            return [{"Url": "javascript:alert(1)", "Name": "Trailer"}]
        if index % 4 in (1, 2):
            return [{"Url": f"https://www.youtube.com/watch?v=trailer{index}", "Name": "Official Trailer"}]
        return []

    def trailer_id(self, index: int) -> str:
        return guid(0x7A, self.number, index + 1)

    def seasons(self, index: int) -> int:
        return 1 + index % 4

    def provider_ids(self, index: int) -> dict[str, str]:
        imdb = f"tt{self.imdb_base * 1_000_000 + index:07d}"
        tmdb = str(self.imdb_base * 1_000_000 + index + 500_000)
        if index % 10 == 2:
            return {"Tmdb": tmdb}  # no IMDb id
        if index % 10 == 3:
            return {}  # never matched by a metadata provider
        if self.item_type == "Series":
            return {"Imdb": imdb, "Tvdb": tmdb}
        return {"Imdb": imdb, "Tmdb": tmdb}

    def item(self, index: int, fields: set[str]) -> dict[str, Any]:
        """A BaseItemDto with the base fields, plus the requested ``fields``."""
        year = self.year(index)
        item: dict[str, Any] = {
            "Name": f"{self.name} {index}",
            "ServerId": SERVER_ID,
            "Id": self.item_id(index),
            "Etag": f"{index:032x}",
            "CanDelete": False,
            "IsFolder": self.item_type == "Series",
            "Type": self.item_type,
            "ProductionYear": year,
            "PremiereDate": None if year is None else f"{year}-09-27T00:00:00.0000000Z",
            "CommunityRating": self.rating(index),
            "OfficialRating": self.content_rating(index),
            "RunTimeTicks": self.minutes(index) * _TICKS_PER_MINUTE,
            "ImageTags": {"Primary": f"{index:032x}"} if self.has_poster(index) else {},
            "BackdropImageTags": [],
            "LocationType": "FileSystem",
            "MediaType": "Video" if self.item_type != "Series" else "Unknown",
        }
        optional: dict[str, Any] = {
            "Overview": None if index % 10 == 9 else f"Overview of {self.name} {index}.",
            "Genres": self.genres(index),
            "Taglines": [f"Tagline {index}."] if index % 2 else [],
            "DateCreated": (_CREATED + timedelta(hours=index)).strftime("%Y-%m-%dT%H:%M:%S.0000000Z"),
            "ProviderIds": self.provider_ids(index),
            "LocalTrailerCount": self.local_trailers(index),
            "RemoteTrailers": self.remote_trailers(index),
            "People": [
                {"Name": DIRECTORS[index % len(DIRECTORS)], "Id": guid(99, index), "Type": "Director"},
                {"Name": "Drake Sather", "Id": guid(98, index), "Type": "Writer"},
                *(
                    {"Name": actor, "Id": guid(97, n), "Role": f"Role {n}", "Type": "Actor"}
                    for n, actor in enumerate(ACTORS[: 1 + index % len(ACTORS)])
                ),
            ],
        }
        if self.item_type == "Series":
            ended = index % 2 == 1
            item.update(
                Status="Ended" if ended else "Continuing",
                EndDate=f"{(year or 2000) + 5}-05-19T00:00:00.0000000Z" if ended else None,
            )
            optional |= {
                "ChildCount": self.seasons(index),
                "Studios": [{"Name": ("HBO", "BBC One", "NHK")[index % 3], "Id": guid(96, index % 3)}],
            }
            if "userdata" in fields:  # Jellyfin counts a series' episodes with a user's data only
                optional["RecursiveItemCount"] = self.seasons(index) * 10
        item.update((name, value) for name, value in optional.items() if name.casefold() in fields)
        # Jellyfin leaves nulls out of its answers.
        return {name: value for name, value in item.items() if value is not None}


@dataclass(frozen=True)
class FakeUser:
    id: str
    name: str
    admin: bool = False
    disabled: bool = False
    libraries: tuple[int, ...] | None = None  # the numbers of the libraries it sees; None: all
    watched_every: int = 3  # watched the items whose index this divides
    password: str = ""
    avatar: bool = False

    def sees(self, library: FakeLibrary) -> bool:
        return self.libraries is None or library.number in self.libraries

    def watched(self, index: int) -> bool:
        return index % self.watched_every == 0

    def dto(self) -> dict[str, Any]:
        return {
            "Name": self.name,
            "ServerId": SERVER_ID,
            "Id": self.id,
            "HasPassword": bool(self.password),
            "HasConfiguredPassword": bool(self.password),
            **({"PrimaryImageTag": f"{int(self.id[:8], 16):032x}"} if self.avatar else {}),
            "EnableAutoLogin": False,
            "LastLoginDate": "2024-05-01T20:00:00.0000000Z",
            "Configuration": {"PlayDefaultAudioTrack": True, "SubtitleMode": "Default"},
            "Policy": {
                "IsAdministrator": self.admin,
                "IsHidden": False,
                "IsDisabled": self.disabled,
                "EnableAllFolders": self.libraries is None,
                "AuthenticationProviderId": "Jellyfin.Server.Implementations.Users.DefaultAuthenticationProvider",
            },
        }


CAROL = FakeUser(guid(0xCA201), "carol", admin=True, disabled=True, password="carol-pass-Hy62")
BOB = FakeUser(guid(0xB0B), "bob", libraries=(1, 3), watched_every=2, password="bob-pass-Lw47", avatar=True)
ALICE = FakeUser(guid(0xA11CE), "alice", admin=True, password="alice-pass-Tz95")


def default_libraries() -> list[FakeLibrary]:
    return [
        FakeLibrary(1, "Movies", "movies", 40, imdb_base=1),
        FakeLibrary(2, "Movies 4K", "movies", 5, imdb_base=1),
        FakeLibrary(3, "Shows", "tvshows", 6, imdb_base=3),
        FakeLibrary(4, "Music", "music", 3, imdb_base=4),
        FakeLibrary(5, "Archive", "movies", 20_000, imdb_base=5),
        FakeLibrary(6, "Home Videos", "homevideos", 2, imdb_base=6),
    ]


def poster_png(item_id: str, width: int) -> bytes:
    """The image the fake answers for an item at ``width`` (maxWidth never scales up)."""
    full_width, full_height = POSTER_SIZE
    width = min(width, full_width)
    return png(width, full_height * width // full_width, item_id)


class FakeJellyfin(FakeService):
    def __init__(
        self,
        prefix: str = "",
        *,
        key: str = API_KEY,
        libraries: Sequence[FakeLibrary] | None = None,
        users: Sequence[FakeUser] = (CAROL, BOB, ALICE),
        quick_connect: bool | None = True,
        server_id: str = SERVER_ID,
        name: str = SERVER_NAME,
    ) -> None:
        """``quick_connect``: whether it is on (None: a server that has none, as Emby)."""
        self.key = key
        self.server_id, self.name = server_id, name
        # What a trailer's file holds and its type (a test may give a real media file to play).
        self.trailer_media: tuple[bytes, str] | None = None
        self.quick_connect = quick_connect
        self.signed_in: dict[str, str] = {}  # access token -> user id, of sign-ins not logged out
        self.issued: list[str] = []  # every access token it gave out
        self.quick_connects: dict[str, dict[str, Any]] = {}  # by code
        self._codes = itertools.count(314159)
        self.libraries = {library.id: library for library in libraries or default_libraries()}
        self.users = {user.id: user for user in users}
        self._encoded: dict[tuple[str, frozenset[str], int], bytes] = {}
        # Set by a test to hold the second half of every poster until it is set: proves streaming.
        self.poster_gate: threading.Event | None = None
        super().__init__(prefix)

    def routes(self) -> Sequence[RouteSpec]:
        return [
            ("/Users/AuthenticateByName", self.authenticate_by_name, "POST"),
            ("/Users/AuthenticateWithQuickConnect", self.authenticate_with_quick_connect, "POST"),
            ("/QuickConnect/Initiate", self.quick_connect_initiate, "POST"),
            ("/QuickConnect/Authorize", self.quick_connect_authorize, "POST"),
            ("/Sessions/Logout", self.logout, "POST"),
            ("/System/Info/Public", self.public_info),
            ("/QuickConnect/Enabled", self.quick_connect_enabled),
            ("/QuickConnect/Connect", self.quick_connect_state),
            ("/System/Info", self.info),
            ("/Users", self.list_users),
            ("/Users/{user}", self.user),
            ("/Users/{user}/Views", self.views),
            ("/Users/{user}/Images/Primary", self.user_image),
            ("/Users/{user}/Items", self.items),
            ("/Library/VirtualFolders", self.virtual_folders),
            ("/Items", self.items),
            ("/Items/Filters", self.filters),
            ("/Items/{item}/Images/Primary", self.image),
            ("/Users/{user}/Items/{item}/LocalTrailers", self.local_trailers),
            ("/Videos/{item}/stream", self.video),
        ]

    @staticmethod
    def presented_key(request: Request) -> str | None:
        """The key as Jellyfin finds it: the MediaBrowser authorization header, else the legacy ways."""
        for header in ("authorization", "x-emby-authorization"):
            found = re.search(r'Token="([^"]*)"', request.headers.get(header, ""))
            if found:
                return found.group(1)
        query = {name.lower(): value for name, value in request.query_params.items()}
        return (
            request.headers.get("x-emby-token")
            or request.headers.get("x-mediabrowser-token")
            or query.get("apikey")
            or query.get("api_key")
        )

    # What anyone may ask, as on Jellyfin: the sign-in endpoints take no key.
    ANONYMOUS = frozenset(
        {
            "/System/Info/Public",
            "/Users/AuthenticateByName",
            "/Users/AuthenticateWithQuickConnect",
            "/QuickConnect/Enabled",
            "/QuickConnect/Initiate",
            "/QuickConnect/Connect",
        }
    )

    def authorized(self, request: Request) -> bool:
        path = request.url.path.removeprefix(self.prefix)
        presented = self.presented_key(request)
        if path == "/Sessions/Logout":
            return presented in self.signed_in
        return path in self.ANONYMOUS or presented == self.key

    # -- system and users ---------------------------------------------------------------------------

    def _public(self) -> dict[str, Any]:
        return {
            "LocalAddress": "http://192.168.1.10:8096",
            "ServerName": self.name,
            "Version": "10.10.7",
            "ProductName": "Jellyfin Server",
            "OperatingSystem": "",
            "Id": self.server_id,
            "StartupWizardCompleted": True,
        }

    async def public_info(self, request: Request) -> Response:
        return JSONResponse(self._public())

    async def info(self, request: Request) -> Response:
        return JSONResponse(
            {
                **self._public(),
                "OperatingSystemDisplayName": "Linux",
                "HasPendingRestart": False,
                "IsShuttingDown": False,
                "SupportsLibraryMonitor": True,
                "WebSocketPortNumber": 8096,
                "CanSelfRestart": True,
                "CanLaunchWebBrowser": False,
                "HasUpdateAvailable": False,
                "TranscodingTempPath": "/cache/transcodes",
                "LogPath": "/config/log",
                "InternalMetadataPath": "/config/metadata",
                "CachePath": "/cache",
                "ProgramDataPath": "/config",
                "ItemsByNamePath": "/config/metadata",
                "EncoderLocation": "Custom",
                "SystemArchitecture": "X64",
            }
        )

    async def list_users(self, request: Request) -> Response:
        return JSONResponse([user.dto() for user in self.users.values()])

    async def user(self, request: Request) -> Response:
        user = self.users.get(request.path_params["user"])
        return JSONResponse(user.dto()) if user is not None else Response("User not found", 404)

    async def user_image(self, request: Request) -> Response:
        user = self.users.get(request.path_params["user"])
        if user is None or not user.avatar:
            return Response("Not Found", 404)
        return Response(png(64, 64, user.id), media_type=IMAGE_TYPE)

    async def views(self, request: Request) -> Response:
        user = self.users.get(request.path_params["user"])
        if user is None:
            return Response("User not found", 404)
        views = [
            {
                "Name": library.name,
                "ServerId": SERVER_ID,
                "Id": library.id,
                "Etag": library.id,
                "IsFolder": True,
                "Type": "CollectionFolder",
                "CollectionType": library.collection_type,
                "ImageTags": {"Primary": library.id},
                "LocationType": "FileSystem",
            }
            for library in self.libraries.values()
            if user.sees(library)
        ]
        return JSONResponse({"Items": views, "TotalRecordCount": len(views), "StartIndex": 0})

    async def virtual_folders(self, request: Request) -> Response:
        return JSONResponse(
            [
                {
                    "Name": library.name,
                    "Locations": [f"/media/{library.name}"],
                    "CollectionType": library.collection_type,
                    "LibraryOptions": {"Enabled": True, "EnableRealtimeMonitor": True},
                    "ItemId": library.id,
                    "PrimaryImageItemId": library.id,
                    "RefreshStatus": "Idle",
                }
                for library in self.libraries.values()
            ]
        )

    # -- items ------------------------------------------------------------------------------------

    def _query_user(self, request: Request, query: dict[str, str]) -> FakeUser | Response | None:
        """The user a request is about, from its path or UserId: None for none, a Response for a bad one."""
        user_id = request.path_params.get("user") or query.get("userid")
        if not user_id:
            return None
        user = self.users.get(user_id)
        return user if user is not None else Response("User not found", 404)

    async def items(self, request: Request) -> Response:
        query = {name.lower(): value for name, value in request.query_params.items()}
        user = self._query_user(request, query)
        if isinstance(user, Response):
            return user
        library = self.libraries.get(query.get("parentid", ""))
        if library is None:
            return Response("this fake answers item queries of a library (ParentId) only", 400)
        if user is not None and not user.sees(library):
            return Response(f"{user.name} is not permitted to access Library {library.name}.", 401)
        tests = self._item_tests(library, user, query)
        if isinstance(tests, Response):
            return tests
        # Items of a library sit in folders: without Recursive there are none of its cards at the top.
        kinds = {kind.strip().lower() for kind in query.get("includeitemtypes", "").split(",")}
        selected: Sequence[int] = range(library.size)
        if query.get("recursive", "").lower() != "true" or library.item_type.lower() not in kinds:
            selected = []
        elif tests:
            selected = [index for index in selected if all(test(index) for test in tests)]
        start = int(query.get("startindex", "0"))
        limit = int(query["limit"]) if "limit" in query else len(selected)
        asked = {field.strip().casefold() for field in query.get("fields", "").split(",")}
        if user is not None and query.get("enableuserdata", "true").lower() == "true":
            asked.add("userdata")
        fields = frozenset(asked)
        page = b", ".join(self._item(library, fields, index) for index in selected[start : start + limit])
        return Response(
            b'{"Items": [%s], "TotalRecordCount": %d, "StartIndex": %d}' % (page, len(selected), start),
            media_type="application/json",
        )

    def _item(self, library: FakeLibrary, fields: frozenset[str], index: int) -> bytes:
        key = (library.id, fields, index)
        encoded = self._encoded.get(key)
        if encoded is None:
            encoded = self._encoded[key] = json.dumps(library.item(index, set(fields))).encode()
        return encoded

    @staticmethod
    def _item_tests(
        library: FakeLibrary, user: FakeUser | None, query: dict[str, str]
    ) -> list[Callable[[int], bool]] | Response:
        """The filters of an item query as tests on item indexes, each meaning "any of" its values."""
        tests: list[Callable[[int], bool]] = []
        if "genres" in query:
            wanted = {genre.casefold() for genre in query["genres"].split("|")}
            tests.append(lambda index: any(genre.casefold() in wanted for genre in library.genres(index)))
        if "years" in query:
            years = {int(year) for year in query["years"].split(",")}
            tests.append(lambda index: library.year(index) in years)
        if "officialratings" in query:
            ratings = set(query["officialratings"].split("|"))
            tests.append(lambda index: library.content_rating(index) in ratings)
        if "mincommunityrating" in query:
            least = float(query["mincommunityrating"])
            tests.append(lambda index: (rating := library.rating(index)) is not None and rating >= least)
        if "isplayed" in query:
            if user is None:
                return Response("IsPlayed needs a user", 400)
            played = query["isplayed"].lower() == "true"
            tests.append(lambda index: user.watched(index) == played)
        return tests

    async def filters(self, request: Request) -> Response:
        query = {name.lower(): value for name, value in request.query_params.items()}
        library = self.libraries.get(query.get("parentid", ""))
        if library is None:
            return JSONResponse({})
        indexes = range(library.size)
        genres = sorted({genre for index in indexes for genre in library.genres(index)})
        ratings = sorted({rating for index in indexes if (rating := library.content_rating(index)) is not None})
        years = sorted({year for index in indexes if (year := library.year(index)) is not None})
        return JSONResponse({"Genres": genres, "Tags": [], "OfficialRatings": ratings, "Years": years})

    async def image(self, request: Request) -> Response:
        item_id = request.path_params["item"]
        found = next(
            (
                (library, index)
                for library in self.libraries.values()
                if (index := library.index_of(item_id)) is not None
            ),
            None,
        )
        if found is None or not found[0].has_poster(found[1]):
            return Response("Not Found", 404)
        query = {name.lower(): value for name, value in request.query_params.items()}
        image = poster_png(item_id, int(query.get("maxwidth", POSTER_SIZE[0])))
        gate = self.poster_gate

        async def body() -> AsyncIterator[bytes]:
            yield image[: len(image) // 2]
            if gate is not None:
                await anyio.to_thread.run_sync(gate.wait, 5.0)
            yield image[len(image) // 2 :]

        return StreamingResponse(body(), media_type=IMAGE_TYPE, headers={"Content-Length": str(len(image))})

    # -- trailers ---------------------------------------------------------------------------------

    def _find(self, item_id: str) -> tuple[FakeLibrary, int] | None:
        for library in self.libraries.values():
            index = library.index_of(item_id)
            if index is not None:
                return library, index
        return None

    async def local_trailers(self, request: Request) -> Response:
        """The item's local trailers (BaseItemDto[]): for a user who may see its library."""
        user = self.users.get(request.path_params["user"])
        found = self._find(request.path_params["item"])
        if user is None or found is None or not user.sees(found[0]):
            return Response("Not Found", 404)
        library, index = found
        trailers = [
            {
                "Name": f"{library.name} {index} trailer",
                "ServerId": SERVER_ID,
                "Id": library.trailer_id(index),
                "Type": "Trailer",
                "ExtraType": "Trailer",
                "MediaType": "Video",
                "RunTimeTicks": 150 * 10_000_000,
            }
        ][: library.local_trailers(index)]
        return JSONResponse(trailers)

    async def video(self, request: Request) -> Response:
        """A trailer's file, static (as it is), with byte ranges."""
        item_id = request.path_params["item"]
        known = any(
            library.trailer_id(index) == item_id
            for library in self.libraries.values()
            for index in range(min(library.size, 100))
            if library.local_trailers(index)
        )
        if not known:
            return Response("Not Found", 404)
        if request.query_params.get("static") != "true":
            return Response("this fake serves files as they are (static=true) only", 400)
        data, content_type = self.trailer_media or (trailer_video(item_id), TRAILER_TYPE)
        return video_response(request, data, content_type)

    # -- sign-in ----------------------------------------------------------------------------------

    @staticmethod
    def _client(request: Request) -> dict[str, str] | None:
        """The MediaBrowser authorization fields of a sign-in; Jellyfin needs all four."""
        fields = dict(re.findall(r'(\w+)="([^"]*)"', request.headers.get("authorization", "")))
        wanted = ("Client", "Device", "DeviceId", "Version")
        return fields if all(fields.get(name) for name in wanted) else None

    def _authenticated(self, user: FakeUser) -> Response:
        """An AuthenticationResult: the user, a new session and its access token."""
        token = secrets.token_hex(16)
        self.signed_in[token] = user.id
        self.issued.append(token)
        return JSONResponse(
            {
                "User": user.dto(),
                "SessionInfo": {"Id": secrets.token_hex(8), "UserId": user.id, "UserName": user.name},
                "AccessToken": token,
                "ServerId": self.server_id,
            }
        )

    async def authenticate_by_name(self, request: Request) -> Response:
        if self._client(request) is None:
            return Response("Value cannot be null. (Parameter 'App')", 400)
        body = await request.json()
        user = next((u for u in self.users.values() if u.name.casefold() == str(body.get("Username")).casefold()), None)
        if user is None or user.password != body.get("Pw"):
            return Response("Error processing request.", 401)
        if user.disabled:
            return Response("User is disabled", 403)
        return self._authenticated(user)

    async def logout(self, request: Request) -> Response:
        self.signed_in.pop(self.presented_key(request) or "", None)
        return Response(status_code=204)

    async def quick_connect_enabled(self, request: Request) -> Response:
        if self.quick_connect is None:
            return Response("Not Found", 404)
        return JSONResponse(self.quick_connect)

    def _quick_connect_result(self, entry: dict[str, Any]) -> Response:
        return JSONResponse({key: value for key, value in entry.items() if key != "User"})

    async def quick_connect_initiate(self, request: Request) -> Response:
        if self.quick_connect is None:
            return Response("Not Found", 404)
        client = self._client(request)
        if not self.quick_connect:
            return Response("Quick connect is disabled", 401)
        if client is None:
            return Response("Value cannot be null. (Parameter 'DeviceId')", 400)
        code = str(next(self._codes))
        self.quick_connects[code] = {
            "Authenticated": False,
            "Secret": secrets.token_hex(32).upper(),
            "Code": code,
            "DeviceId": client["DeviceId"],
            "DeviceName": client["Device"],
            "AppName": client["Client"],
            "AppVersion": client["Version"],
            "DateAdded": "2025-01-01T20:00:00.0000000Z",
        }
        return self._quick_connect_result(self.quick_connects[code])

    async def quick_connect_state(self, request: Request) -> Response:
        secret = request.query_params.get("secret") or request.query_params.get("Secret")
        entry = next((entry for entry in self.quick_connects.values() if entry["Secret"] == secret), None)
        return self._quick_connect_result(entry) if entry is not None else Response("Unknown secret", 404)

    async def quick_connect_authorize(self, request: Request) -> Response:
        """What a signed-in Jellyfin app does with the code a user types in (here with the key, for a user id)."""
        entry = self.quick_connects.get(request.query_params.get("code", ""))
        user = self.users.get(request.query_params.get("userId", ""))
        if entry is None or user is None:
            return Response("Unable to find request", 404)
        entry["Authenticated"], entry["User"] = True, user
        return JSONResponse(True)

    async def authenticate_with_quick_connect(self, request: Request) -> Response:
        secret = (await request.json()).get("Secret")
        entry = next((entry for entry in self.quick_connects.values() if entry["Secret"] == secret), None)
        if entry is None or not entry["Authenticated"]:
            return Response("Unable to find request", 404)
        return self._authenticated(entry["User"])
