"""A fake Plex Media Server and a fake plex.tv: small Starlette apps served by real uvicorn on loopback.

The Plex answers follow the examples of the Plex Media Server OpenAPI description 1.1.1
(``/identity``, ``/library/sections/all``, ``/library/sections/{id}/all``, ``/library/sections/{id}/filters``,
``/library/metadata/{ids}`` with its ``primaryExtraKey``, ``/library/parts/{partId}/{changestamp}/{filename}``),
adapted, with what those examples leave out filled in as a real server answers: item guids and the
``Guid`` list of ``includeGuids=1`` (IMDb, TMDB, TVDB), the ``Meta`` block of ``includeMeta=1``, the
per-filter value directories (``/library/sections/{id}/genre``), paging by
``X-Plex-Container-Start``/``-Size`` with ``totalSize``, shows' ``childCount``/``leafCount``/``studio``,
and byte ranges of media parts. As on a real server, ``/identity`` answers without a token and
everything else needs ``X-Plex-Token`` (header or query parameter); each token is one person's view
(``FakeViewer``): the owner's, or that of a user the server is shared with, with their own watch
state and libraries.

plex.tv (``FakePlexTv``) answers what MovieMatch asks it: the signed-in user and their resources
(``/api/v2/user``, ``/api/v2/resources``, JSON), the owner's Plex Home (``/api/v2/home/users``, and
``POST /api/v2/home/users/{uuid}/switch`` for a home user's token) and the users a server is shared
with (``/api/servers/{machineId}/shared_servers``, XML, as plex.tv answers that one, with each
user's ``accessToken``).

Items are generated from their index, so a library of 100,000 costs nothing until it is asked for;
each item is encoded once and kept, so pages of a big library are cheap to serve again (a benchmark
reads a library once before it measures, and then times the provider, not this fake).
Every request is recorded, and tests can make the services slow, malformed or failing (tests/fakes.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from html import escape
from typing import Any, Literal

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from tests.fakes import (
    FakeService,
    RouteSpec,
    png,
    serving as serving,  # where tests/test_web_client.py finds it
    video_bytes,
    video_response,
)

PLEX_TOKEN = "pms-owner-token-Zq81vX"
MACHINE_IDENTIFIER = "0123456789abcdef0123456789abcdef"  # as in the OpenAPI /identity example
SERVER_NAME = "Basement"
IMAGE_TYPE = "image/png"


# -- the media ------------------------------------------------------------------------------------

GENRES = {"1": "Action", "2": "Comedy", "3": "Drama", "4": "Science Fiction", "5": "Horror", "6": "Animation"}
DIRECTORS = {"101": "Ben Stiller", "102": "Agnès Varda", "103": "Akira Kurosawa", "104": "Kathryn Bigelow"}
CONTENT_RATINGS = ("G", "PG", "PG-13", "R", "gb/15")
ACTORS = ("Ben Stiller", "Owen Wilson", "Christine Taylor", "Will Ferrell", "Milla Jovovich", "Jerry Stiller")


@dataclass(frozen=True)
class FakeLibrary:
    """A library whose items follow from their index: every tenth item lacks something a real one may lack."""

    key: str
    title: str
    type: Literal["movie", "show", "artist"]
    size: int
    # Libraries with the same base hold the same titles (as Jellyfin's fake libraries of that base do).
    imdb_base: int | None = None
    # Matched by an old agent (com.plexapp.agents.imdb): its guid names the IMDb id, and it has no Guid list.
    legacy_agent: bool = False

    @property
    def type_number(self) -> str:
        return {"movie": "1", "show": "2", "artist": "8"}[self.type]

    def rating_key(self, index: int) -> str:
        return str(int(self.key) * 100_000 + index + 1)

    def index_of(self, rating_key: str) -> int | None:
        index = int(rating_key) - int(self.key) * 100_000 - 1
        return index if 0 <= index < self.size else None

    def year(self, index: int) -> int | None:
        return None if index % 10 == 5 else 1950 + index % 70

    def genre_ids(self, index: int) -> list[str]:
        ids = list(GENRES)
        return [ids[index % len(ids)], ids[(index // len(ids)) % len(ids)]][: 1 + index % 2]

    def director_id(self, index: int) -> str:
        return list(DIRECTORS)[index % len(DIRECTORS)]

    def content_rating(self, index: int) -> str:
        return CONTENT_RATINGS[index % len(CONTENT_RATINGS)]

    def rating(self, index: int) -> float | None:
        """The critic rating, which Plex's rating filter compares."""
        return None if index % 10 == 7 else round(4 + index % 60 / 10, 1)

    def watched(self, index: int) -> bool:
        return index % 3 == 0

    def has_thumb(self, index: int) -> bool:
        return index % 10 != 6

    def has_trailer(self, index: int) -> bool:
        return index % 4 == 0

    def seasons(self, index: int) -> int:
        return 1 + index % 5

    def base(self) -> int:
        return int(self.key) if self.imdb_base is None else self.imdb_base

    def guids(self, index: int) -> list[str]:
        """The external ids of ``includeGuids=1``: none for unmatched items; only IMDb and TMDB for some."""
        if index % 10 in (3, 4):
            return []
        number = self.base() * 1_000_000 + index
        imdb, tmdb, tvdb = f"imdb://tt{number:07d}", f"tmdb://{number + 500_000}", f"tvdb://{number + 700_000}"
        return [imdb, tmdb] if index % 10 == 2 else [imdb, tmdb, tvdb]

    def item(self, index: int, *, guids: bool = False, watched: bool | None = None) -> dict[str, Any]:
        """Shaped like the OpenAPI "Zoolander" example of /library/sections/{id}/all; ``watched`` as
        the asking person has (the owner's by default)."""
        rating_key = self.rating_key(index)
        watched = self.watched(index) if watched is None else watched
        item: dict[str, Any] = {
            "addedAt": 1408525217 + index * 3600,
            "art": f"/library/metadata/{rating_key}/art/1434341184",
            "contentRating": self.content_rating(index),
            "duration": 5129000 + index * 1000,
            "key": f"/library/metadata/{rating_key}",
            "ratingKey": rating_key,
            "studio": "Paramount Pictures",
            "summary": f"Summary of {self.title} item {index}.",
            "tagline": "3% Body Fat. 1% Brain Activity.",
            "title": f"{self.title} {index}",
            "type": "movie" if self.type == "movie" else "show",
            "updatedAt": 1434341184,
            "viewCount": 1 if watched else 0,
            "Media": [{"id": index, "duration": 5129000, "container": "mkv", "videoResolution": "576"}],
            "Genre": [{"tag": GENRES[genre]} for genre in self.genre_ids(index)],
            "Writer": [{"tag": "Drake Sather"}],
            "Director": [{"tag": DIRECTORS[self.director_id(index)]}],
            "Country": [{"tag": "Australia"}],
            "Role": [{"tag": actor} for actor in ACTORS[: 1 + index % len(ACTORS)]],
        }
        if index % 10 == 3:
            pass  # no guid: an item the agent never matched
        elif index % 10 == 4:
            item["guid"] = f"local://{rating_key}"
        elif self.legacy_agent:
            item["guid"] = f"com.plexapp.agents.{self.guids(index)[0]}?lang=en"
        else:
            digest = hashlib.sha256(f"{self.key}/{index}".encode()).hexdigest()[:24]
            item["guid"] = f"plex://{item['type']}/{digest}"
        if guids and not self.legacy_agent:
            item["Guid"] = [{"id": guid} for guid in self.guids(index)]
        if self.has_trailer(index) and self.type == "movie":
            item["primaryExtraKey"] = f"/library/metadata/{trailer_key(rating_key)}"
        if self.type == "show":
            # Shows have no single Media; their seasons and episodes are counted, and a show is
            # watched when all of its episodes are.
            del item["Media"], item["viewCount"], item["duration"]
            episodes = self.seasons(index) * 8
            item.update(childCount=self.seasons(index), leafCount=episodes, viewedLeafCount=episodes if watched else 1)
            item["studio"] = ("HBO", "BBC One", "NHK")[index % 3]
            if index % 2:
                item["network"] = item["studio"]
        if self.has_thumb(index):
            item["thumb"] = f"/library/metadata/{rating_key}/thumb/1434341184"
        year = self.year(index)
        if year is not None:
            item["year"] = year
            item["originallyAvailableAt"] = f"{year}-09-27"
        rating = self.rating(index)
        if rating is not None:
            item["rating"] = rating
            if index % 2:
                item["audienceRating"] = round(5 + index % 50 / 10, 1)
        return item


def default_libraries() -> list[FakeLibrary]:
    return [
        FakeLibrary("1", "Movies", "movie", 40),
        FakeLibrary("2", "TV Shows", "show", 6, imdb_base=3),  # the shows of Jellyfin's fake
        FakeLibrary("3", "Music", "artist", 3),
        FakeLibrary("4", "Archive", "movie", 20_000),
    ]


TRAILER_KEYS = 900_000_000  # trailers' rating keys: this plus their film's
TRAILER_BYTES = 200_000
TRAILER_TYPE = "video/mp4"


def trailer_key(rating_key: str) -> str:
    return str(TRAILER_KEYS + int(rating_key))


def trailer_video(rating_key: str) -> bytes:
    return video_bytes(rating_key, TRAILER_BYTES)


@dataclass(frozen=True)
class FakeViewer:
    """Whose token a request carries: their watch state (every item whose index this divides) and
    the libraries shared with them (None: all, as for the owner)."""

    token: str
    watched_every: int = 3
    libraries: tuple[str, ...] | None = None

    def sees(self, library: FakeLibrary) -> bool:
        return self.libraries is None or library.key in self.libraries

    def watched(self, index: int) -> bool:
        return index % self.watched_every == 0


# The filters of the OpenAPI /library/sections/{id}/filters example that this fake can evaluate, with
# the field types a real server gives them in Meta.Type[].Field (genre and director are tags).
FILTERS: tuple[tuple[str, str, str, str], ...] = (
    ("genre", "string", "Genre", "tag"),
    ("year", "integer", "Year", "integer"),
    ("decade", "integer", "Decade", "integer"),
    ("contentRating", "string", "Content Rating", "string"),
    ("director", "string", "Director", "tag"),
    ("unwatched", "boolean", "Unwatched", "boolean"),
)
FIELD_TYPES = [
    {"type": "tag", "Operator": [{"key": "=", "title": "is"}, {"key": "!=", "title": "is not"}]},
    {
        "type": "integer",
        "Operator": [
            {"key": "=", "title": "is"},
            {"key": "!=", "title": "is not"},
            {"key": ">>=", "title": "is greater than"},
            {"key": "<<=", "title": "is less than"},
        ],
    },
    {
        "type": "string",
        "Operator": [
            {"key": "=", "title": "contains"},
            {"key": "!=", "title": "does not contain"},
            {"key": "==", "title": "is"},
            {"key": "!==", "title": "is not"},
        ],
    },
    {"type": "boolean", "Operator": [{"key": "=", "title": "is"}, {"key": "!=", "title": "is not"}]},
]
# How a parameter name ends tells its operator: genre! is genre!=, year>> is year>>=, contentRating= is
# contentRating== (plain = has no suffix).
_SUFFIXES = (("!=", "!=="), ("!", "!="), (">>", ">>="), ("<<", "<<="), ("=", "=="))


# -- the services ---------------------------------------------------------------------------------


class FakePlex(FakeService):
    def __init__(
        self,
        prefix: str = "",
        *,
        token: str = PLEX_TOKEN,
        libraries: list[FakeLibrary] | None = None,
        viewers: Sequence[FakeViewer] = (),
        guids: bool = True,
    ) -> None:
        """``guids``: whether it answers includeGuids=1 (a benchmark's baseline does not)."""
        self.token = token
        self.guids = guids
        self.libraries = {library.key: library for library in libraries or default_libraries()}
        # The owner's view is that of ``token`` (which a test may change to revoke it).
        self.viewers = {viewer.token: viewer for viewer in viewers}
        self._encoded: dict[tuple[str, int, bool, str], bytes] = {}
        # Set by a test to hold the second half of every poster until it is set: proves streaming.
        self.poster_gate: threading.Event | None = None
        super().__init__(prefix)

    def routes(self) -> Sequence[RouteSpec]:
        return [
            ("/", self.root),
            ("/identity", self.identity),
            ("/library/sections", self.sections),
            ("/library/sections/{key}/all", self.items),
            ("/library/sections/{key}/{filter}", self.filter_values),
            ("/library/metadata/{ids}", self.metadata),
            ("/library/parts/{part}/{changestamp}/{filename}", self.part),
            ("/photo/:/transcode", self.transcode),
        ]

    @staticmethod
    def presented_token(request: Request) -> str | None:
        return request.headers.get("x-plex-token") or request.query_params.get("X-Plex-Token")

    def authorized(self, request: Request) -> bool:
        if request.url.path == self.prefix + "/identity":
            return True
        presented = self.presented_token(request)
        return presented == self.token or presented in self.viewers

    def _viewer(self, request: Request) -> FakeViewer:
        presented = self.presented_token(request) or ""
        return FakeViewer(presented) if presented == self.token else self.viewers[presented]

    def _library(self, request: Request) -> FakeLibrary | None:
        return self.libraries.get(request.path_params["key"])

    async def identity(self, request: Request) -> Response:
        return JSONResponse(
            {
                "MediaContainer": {
                    "size": 1,
                    "claimed": True,
                    "machineIdentifier": MACHINE_IDENTIFIER,
                    "version": "1.40.2.8395-c67dce28e",
                }
            }
        )

    async def root(self, request: Request) -> Response:
        """The server's capabilities, shaped like the OpenAPI example of ``/``."""
        return JSONResponse(
            {
                "MediaContainer": {
                    "size": 25,
                    "allowCameraUpload": True,
                    "allowSharing": True,
                    "friendlyName": SERVER_NAME,
                    "machineIdentifier": MACHINE_IDENTIFIER,
                    "multiuser": True,
                    "myPlex": True,
                    "platform": "Linux",
                    "version": "1.40.2.8395-c67dce28e",
                }
            }
        )

    async def sections(self, request: Request) -> Response:
        directories = [
            {
                "allowSync": True,
                "art": f"/:/resources/{library.type}-fanart.jpg",
                "filters": True,
                "refreshing": False,
                "thumb": f"/:/resources/{library.type}.png",
                "key": library.key,
                "type": library.type,
                "title": library.title,
                "agent": "tv.plex.agents.movie",
                "scanner": "Plex Movie",
                "language": "en-US",
                "updatedAt": 1689270983,
                "createdAt": 1689270983,
                "scannedAt": 1706626696,
                "content": True,
                "directory": True,
                "hidden": False,
                "Location": [{"id": int(library.key), "path": f"/media/{library.title}"}],
            }
            for library in self.libraries.values()
        ]
        return JSONResponse(
            {
                "MediaContainer": {
                    "size": len(directories),
                    "allowSync": True,
                    "title1": "Plex Library",
                    "Directory": directories,
                }
            }
        )

    def _filter_tests(self, library: FakeLibrary, request: Request) -> list[Callable[[int], bool]] | Response:
        """The media-query parameters of the request as tests on item indexes (or a 400)."""
        tests: list[Callable[[int], bool]] = []
        for name, value in request.query_params.multi_items():
            if name in ("type", "includeMeta", "includeGuids", "X-Plex-Container-Start", "X-Plex-Container-Size"):
                continue
            field_name, operator = name, "="
            for suffix, spelled in _SUFFIXES:
                if name.endswith(suffix):
                    field_name, operator = name.removesuffix(suffix), spelled
                    break
            test = _field_test(library, self._viewer(request), field_name, operator, value.split(","))
            if test is None:
                return Response(f"unsupported filter {field_name}{operator}", 400)
            tests.append(test)
        return tests

    async def items(self, request: Request) -> Response:
        library = self._library(request)
        if library is None:
            return Response("Not Found", 404)
        viewer = self._viewer(request)
        if not viewer.sees(library):
            return Response("<html><body><h1>401 Unauthorized</h1></body></html>", 401, media_type="text/html")
        if request.query_params.get("type") != library.type_number:
            return Response(f"type must be {library.type_number} in this library", 400)
        tests = self._filter_tests(library, request)
        if isinstance(tests, Response):
            return tests
        selected: Sequence[int] = range(library.size)
        if tests:
            selected = [index for index in selected if all(test(index) for test in tests)]
        container: dict[str, Any] = {
            "allowSync": True,
            "identifier": "com.plexapp.plugins.library",
            "librarySectionID": int(library.key),
            "librarySectionTitle": library.title,
            "title1": library.title,
            "viewGroup": library.type,
        }
        headers: dict[str, str] = {}
        start_text = _paging(request, "X-Plex-Container-Start")
        size_text = _paging(request, "X-Plex-Container-Size")
        if start_text is not None and size_text is not None:
            start, size = int(start_text), int(size_text)
            page = selected[start : start + size]
            container.update(offset=start, totalSize=len(selected))
            headers = {"X-Plex-Container-Start": str(start), "X-Plex-Container-Total-Size": str(len(selected))}
        else:
            page = selected
        container["size"] = len(page)
        if request.query_params.get("includeMeta") == "1":
            container["Meta"] = self._meta(library)
        # The items are spliced in already encoded: the container's other fields are small.
        head = json.dumps({"MediaContainer": container}).encode()[:-2]
        guids = self.guids and request.query_params.get("includeGuids") == "1"
        items = b", ".join(self._item(library, index, guids, viewer) for index in page)
        body = b"".join((head, b', "Metadata": [', items, b"]}}"))
        return Response(body, media_type="application/json", headers=headers)

    def _item(self, library: FakeLibrary, index: int, guids: bool, viewer: FakeViewer) -> bytes:
        key = (library.key, index, guids, viewer.token)
        encoded = self._encoded.get(key)
        if encoded is None:
            item = library.item(index, guids=guids, watched=viewer.watched(index))
            encoded = self._encoded[key] = json.dumps(item).encode()
        return encoded

    async def metadata(self, request: Request) -> Response:
        """An item's details (with its primaryExtraKey), or a trailer's (with its media part)."""
        rating_key = request.path_params["ids"]
        container: dict[str, Any] = {"size": 1, "identifier": "com.plexapp.plugins.library"}
        if rating_key.isdigit() and int(rating_key) > TRAILER_KEYS:
            film = str(int(rating_key) - TRAILER_KEYS)
            found = self._find(film)
            if found is None or not found[0].has_trailer(found[1]):
                return Response("Not Found", 404)
            part = f"/library/parts/{film}/1434341184/file.mp4"
            container["Metadata"] = [
                {
                    "ratingKey": rating_key,
                    "key": f"/library/metadata/{rating_key}",
                    "type": "clip",
                    "subtype": "trailer",
                    "extraType": 1,
                    "title": f"Trailer of {film}",
                    "duration": 150_000,
                    "Media": [{"id": int(film), "container": "mp4", "Part": [{"id": int(film), "key": part}]}],
                }
            ]
            return JSONResponse({"MediaContainer": container})
        found = self._find(rating_key) if rating_key.isdigit() else None
        if found is None:
            return Response("Not Found", 404)
        container["Metadata"] = [found[0].item(found[1], guids=True, watched=self._viewer(request).watched(found[1]))]
        return JSONResponse({"MediaContainer": container})

    async def part(self, request: Request) -> Response:
        film = request.path_params["part"]
        found = self._find(film) if film.isdigit() else None
        if found is None or not found[0].has_trailer(found[1]) or request.path_params["filename"] != "file.mp4":
            return Response("Not Found", 404)
        return video_response(request, trailer_video(film), TRAILER_TYPE)

    def _meta(self, library: FakeLibrary) -> dict[str, Any]:
        main = {
            "key": f"/library/sections/{library.key}/all?type={library.type_number}",
            "type": "movie" if library.type == "movie" else "show",
            "title": library.title,
            "active": True,
            "Filter": [
                {
                    "filter": name,
                    "filterType": filter_type,
                    "key": f"/library/sections/{library.key}/{name}",
                    "title": title,
                    "type": "filter",
                }
                for name, filter_type, title, _ in FILTERS
            ],
            "Field": [{"key": name, "title": title, "type": field_type} for name, _, title, field_type in FILTERS],
            "Sort": [{"default": "asc", "key": "titleSort", "title": "Title"}],
        }
        # Show libraries also describe their episodes; MovieMatch offers only the show-level filters.
        others = (
            [
                {
                    "key": f"/library/sections/{library.key}/all?type=4",
                    "type": "episode",
                    "title": "Episodes",
                    "Filter": [
                        {
                            "filter": "episode.unwatched",
                            "filterType": "boolean",
                            "key": f"/library/sections/{library.key}/unwatched?type=4",
                            "title": "Unwatched episodes",
                            "type": "filter",
                        }
                    ],
                }
            ]
            if library.type == "show"
            else []
        )
        return {"Type": [main, *others], "FieldType": FIELD_TYPES}

    async def filter_values(self, request: Request) -> Response:
        library = self._library(request)
        name = request.path_params["filter"]
        if library is None or name not in {"genre", "year", "decade", "contentRating", "director"}:
            return Response("Not Found", 404)
        choices: list[tuple[str, str]]
        if name == "genre":
            choices = list(GENRES.items())
        elif name == "director":
            choices = list(DIRECTORS.items())
        elif name == "year":
            choices = [(str(year), str(year)) for year in range(2019, 1949, -1)]
        elif name == "decade":
            choices = [(str(decade), f"{decade}s") for decade in range(2010, 1949, -10)]
        else:
            choices = [(rating, rating) for rating in CONTENT_RATINGS]
        directories = [
            {"fastKey": f"/library/sections/{library.key}/all?{name}={key}", "key": key, "title": title}
            for key, title in choices
        ]
        return JSONResponse(
            {"MediaContainer": {"size": len(directories), "title1": library.title, "Directory": directories}}
        )

    async def transcode(self, request: Request) -> Response:
        query = request.query_params
        found = re.fullmatch(r"/library/metadata/([0-9]+)/thumb", query.get("url", ""))
        item = self._find(found.group(1)) if found else None
        if item is None or not item[0].has_thumb(item[1]):
            return Response("<html><body><h1>404 Not Found</h1></body></html>", 404, media_type="text/html")
        if query.get("minSize") != "1" or query.get("upscale") != "1":
            return Response("minSize=1 and upscale=1 expected", 400)
        try:
            width, height = int(query["width"]), int(query["height"])
        except (KeyError, ValueError):
            return Response("width and height expected", 400)
        image = png(width, height, query["url"])
        gate = self.poster_gate

        async def body() -> AsyncIterator[bytes]:
            yield image[: len(image) // 2]
            if gate is not None:
                await asyncio.to_thread(gate.wait, 5)
            yield image[len(image) // 2 :]

        return StreamingResponse(body(), media_type=IMAGE_TYPE, headers={"Content-Length": str(len(image))})

    def _find(self, rating_key: str) -> tuple[FakeLibrary, int] | None:
        for library in self.libraries.values():
            index = library.index_of(rating_key)
            if index is not None:
                return library, index
        return None


def _field_test(
    library: FakeLibrary, viewer: FakeViewer, name: str, operator: str, values: list[str]
) -> Callable[[int], bool] | None:
    if name == "genre" and operator in ("=", "!="):
        wanted = set(values)

        def tagged(index: int) -> bool:
            return bool(wanted & set(library.genre_ids(index)))

        return tagged if operator == "=" else lambda index: not tagged(index)
    if name == "year" and operator in (">>=", "<<="):
        bound = int(values[0])
        if operator == ">>=":
            return lambda index: (library.year(index) or 0) >= bound
        return lambda index: (library.year(index) or 10_000) <= bound
    if name == "unwatched" and operator == "=" and values in (["0"], ["1"]):
        return lambda index: viewer.watched(index) != (values == ["1"])
    if name == "contentRating" and operator in ("=", "==", "!=", "!=="):
        # Compared whole, as the values Plex lists for this filter are (it reads = as "contains").
        listed = set(values)
        if operator in ("=", "=="):
            return lambda index: library.content_rating(index) in listed
        return lambda index: library.content_rating(index) not in listed
    if name == "rating" and operator in (">>=", "<<="):
        limit = float(values[0])
        if operator == ">>=":
            return lambda index: (rating := library.rating(index)) is not None and rating >= limit
        return lambda index: (rating := library.rating(index)) is not None and rating <= limit
    return None


def _paging(request: Request, name: str) -> str | None:
    return request.headers.get(name) or request.query_params.get(name)


@dataclass
class PlexAccount:
    """A plex.tv user: what /api/v2/user says, the servers /api/v2/resources lists for them (with the
    access token each server knows them by), and the servers they own."""

    id: int
    username: str
    title: str
    thumb: str | None = None
    servers: list[str] = field(default_factory=list)  # machine identifiers
    server_tokens: dict[str, str] = field(default_factory=dict)  # machine identifier -> accessToken
    owned: list[str] = field(default_factory=list)
    pin: str | None = None  # a protected Plex Home user's PIN

    @property
    def uuid(self) -> str:
        return hashlib.sha256(f"{self.id}/{self.username}".encode()).hexdigest()[:16]

    def user(self) -> dict[str, Any]:
        # The fields plex.tv's /api/v2/user answers with that matter here, plus some that do not.
        return {
            "id": self.id,
            "uuid": self.uuid,
            "username": self.username,
            "title": self.title,
            "email": f"{self.username or 'home'}@example.com",
            "thumb": self.thumb,
            "home": False,
            "subscription": {"active": False, "status": "Inactive"},
        }

    def resources(self) -> list[dict[str, Any]]:
        servers = [
            {
                "name": f"server {n}",
                "product": "Plex Media Server",
                "provides": "server",
                "clientIdentifier": machine,
                "owned": machine in self.owned,
                "accessToken": self.server_tokens.get(machine),
            }
            for n, machine in enumerate(self.servers)
        ]
        player = {
            "name": "Phone",
            "product": "Plex for iOS",
            "provides": "client,player",
            "clientIdentifier": "phone-1",
            "accessToken": None,
        }
        return [*servers, player]


class FakePlexTv(FakeService):
    """plex.tv for the server: accounts by token; one Plex Home (its members' tokens, its admin
    first); and the users each server is shared with (their tokens, by machine identifier)."""

    def __init__(
        self,
        prefix: str = "",
        *,
        accounts: dict[str, PlexAccount] | None = None,
        home: Sequence[str] = (),
        shared: dict[str, list[str]] | None = None,
    ) -> None:
        self.accounts = accounts or {}
        self.home = list(home)
        self.shared = shared or {}
        super().__init__(prefix)

    def routes(self) -> Sequence[RouteSpec]:
        return [
            ("/api/v2/user", self.user),
            ("/api/v2/resources", self.resources),
            ("/api/v2/home/users", self.home_users),
            ("/api/servers/{machine}/shared_servers", self.shared_servers),
            ("/api/users", self.users),
            ("/api/v2/home/users/{uuid}/switch", self.switch, "POST"),
        ]

    def authorized(self, request: Request) -> bool:
        return request.headers.get("x-plex-token") in self.accounts

    def _token(self, request: Request) -> str:
        return request.headers["x-plex-token"]

    def _account(self, request: Request) -> PlexAccount:
        return self.accounts[self._token(request)]

    async def user(self, request: Request) -> Response:
        return JSONResponse(self._account(request).user())

    async def resources(self, request: Request) -> Response:
        return JSONResponse(self._account(request).resources())

    @staticmethod
    def _errors(status: int, code: int, message: str) -> Response:
        return JSONResponse({"errors": [{"code": code, "message": message, "status": status}]}, status)

    async def home_users(self, request: Request) -> Response:
        """The caller's Plex Home, as plex.tv's JSON (``users``: admin, guest, protected ...)."""
        if self._token(request) not in self.home:
            return self._errors(404, 1002, "Home not found")
        admin = self.accounts[self.home[0]]
        users = [
            {
                "id": member.id,
                "uuid": member.uuid,
                "title": member.title,
                "username": member.username or None,
                "email": f"{member.username}@example.com" if member.username else None,
                "friendlyName": "",
                "thumb": member.thumb,
                "hasPassword": member.pin is not None,
                "restricted": not member.username,
                "restrictionProfile": None if member.username else "little_kid",
                "admin": member is admin,
                "guest": False,
                "protected": member.pin is not None,
            }
            for member in (self.accounts[token] for token in self.home)
        ]
        return JSONResponse(
            {
                "id": 5000,
                "name": f"{admin.title}'s Home",
                "guestUserID": 5001,
                "guestUserUUID": "f7a3c8f863873771",
                "guestEnabled": False,
                "subscription": True,
                "users": users,
            }
        )

    async def switch(self, request: Request) -> Response:
        """Switching to a home member: their account, with their own token (a PIN if they have one)."""
        if self._token(request) not in self.home:
            return self._errors(404, 1002, "Home not found")
        member = next((token for token in self.home if self.accounts[token].uuid == request.path_params["uuid"]), None)
        if member is None:
            return self._errors(404, 1003, "User not found")
        account = self.accounts[member]
        if account.pin is not None and request.query_params.get("pin") != account.pin:
            return self._errors(403, 1041, "A valid PIN is required to perform this action")
        return JSONResponse({**account.user(), "home": True, "authToken": member}, 201)

    def _owns(self, request: Request, machine: str) -> bool:
        return machine in self._account(request).owned

    async def shared_servers(self, request: Request) -> Response:
        """The users a server is shared with, as plex.tv answers this one: XML, each with its
        accessToken (and the fields plexapi's MyPlexServerShare reads)."""
        machine = request.path_params["machine"]
        if not self._owns(request, machine):
            return Response("<errors><error>Unauthorized</error></errors>", 401, media_type="application/xml")
        entries = []
        for number, token in enumerate(self.shared.get(machine, []), start=1):
            account = self.accounts[token]
            entries.append(
                f'<SharedServer id="{number}" username="{escape(account.username)}" '
                f'email="{escape(account.username)}@example.com" userID="{account.id}" '
                f'accessToken="{escape(account.server_tokens[machine])}" name="Basement" '
                f'acceptedAt="1600000000" invitedAt="1599990000" allowSync="0" allowCameraUpload="0" '
                f'allowChannels="0" allowTuners="0" allowSubtitleAdmin="0" owned="0" allLibraries="1" '
                f'filterAll="" filterMovies="" filterMusic="" filterPhotos="" filterTelevision="" />'
            )
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<MediaContainer friendlyName="myPlex" identifier="com.plexapp.plugins.myplex" '
            f'machineIdentifier="{machine}" size="{len(entries)}">' + "".join(entries) + "</MediaContainer>"
        )
        return Response(body, media_type="application/xml")

    async def users(self, request: Request) -> Response:
        """The caller's friends and home members, XML, with their avatars and the servers shared with them."""
        caller = self._account(request)
        tokens = dict.fromkeys(
            [*(token for machine in caller.owned for token in self.shared.get(machine, [])), *self.home]
        )
        entries = []
        for token in tokens:
            account = self.accounts[token]
            if account is caller:
                continue
            servers = "".join(
                f'<Server id="{n}" serverId="{n}" machineIdentifier="{machine}" name="Basement" '
                f'lastSeenAt="1700000000" numLibraries="2" allLibraries="1" owned="0" pending="0" />'
                for n, machine in enumerate(caller.owned)
                if token in self.shared.get(machine, [])
            )
            entries.append(
                f'<User id="{account.id}" title="{escape(account.title)}" username="{escape(account.username)}" '
                f'email="" recommendationsPlaylistId="" thumb="{escape(account.thumb or "")}" protected="0" '
                f'home="{int(token in self.home)}" allowTuners="0" allowSync="0" allowCameraUpload="0" '
                f'allowChannels="0" restricted="0">{servers}</User>'
            )
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<MediaContainer friendlyName="myPlex" identifier="com.plexapp.plugins.myplex" '
            f'size="{len(entries)}">' + "".join(entries) + "</MediaContainer>"
        )
        return Response(body, media_type="application/xml")
