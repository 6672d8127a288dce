"""A fake Overseerr/Jellyseerr and a fake TMDB image server, from Overseerr's OpenAPI description
(overseerr-api.yml, which Jellyseerr keeps): answers under ``/api/v1``, the API key in ``X-Api-Key``
(``/status`` needs none), ``/auth/me`` (a ``User``), ``/discover/movies`` and ``/discover/tv``
(pages of 20 ``MovieResult``/``TvResult``, each with its ``mediaInfo`` when Seerr knows the title),
``/genres/movie`` and ``/genres/tv``, ``POST /request`` (``{mediaType, mediaId, seasons}`` ->
201 ``MediaRequest``; 409 when the title already has an open request) and ``/movie/{id}``,
``/tv/{id}`` (details with ``mediaInfo``: its ``status`` and ``requests``).

``MediaInfo.status``: 1 unknown, 2 pending, 3 processing, 4 partially available, 5 available;
``MediaRequest.status``: 1 pending approval, 2 approved, 3 declined (Jellyseerr adds 4 failed).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tests.fakes import FakeService, RouteSpec, png

SEERR_API_KEY = "seerr-api-key-MTcwMDAwMDAwMDAwMGY4OWQ5"
PAGE = 20
MOVIE_GENRES = {28: "Action", 35: "Comedy", 18: "Drama", 27: "Horror", 878: "Science Fiction", 16: "Animation"}
TV_GENRES = {10759: "Action & Adventure", 35: "Comedy", 18: "Drama", 10765: "Sci-Fi & Fantasy"}


@dataclass
class FakeRequest:
    id: int
    status: int  # 1 pending approval, 2 approved, 3 declined, 4 failed
    created: str


@dataclass
class FakeTitle:
    tmdb_id: int
    kind: Literal["movie", "tv"]
    title: str
    year: int
    genre_ids: tuple[int, ...] = (18,)
    poster: str | None = None
    vote: float = 7.0
    media_status: int | None = None  # None: Seerr has no media row for it
    requests: list[FakeRequest] = field(default_factory=list)

    def media_info(self) -> dict[str, Any] | None:
        if self.media_status is None:
            return None
        return {
            "id": self.tmdb_id + 100_000,
            "tmdbId": self.tmdb_id,
            "tvdbId": None,
            "status": self.media_status,
            "requests": [
                {"id": request.id, "status": request.status, "createdAt": request.created, "is4k": False}
                for request in self.requests
            ],
            "createdAt": "2024-05-01T20:00:00.000Z",
            "updatedAt": "2024-05-01T20:00:00.000Z",
        }

    def result(self) -> dict[str, Any]:
        """A MovieResult or TvResult."""
        common: dict[str, Any] = {
            "id": self.tmdb_id,
            "mediaType": self.kind,
            "genreIds": list(self.genre_ids),
            "overview": f"Overview of {self.title}.",
            "popularity": 100.0,
            "posterPath": self.poster,
            "backdropPath": None,
            "voteAverage": self.vote,
            "voteCount": 1234,
            "originalLanguage": "en",
        }
        if self.kind == "movie":
            common |= {"title": self.title, "originalTitle": self.title, "releaseDate": f"{self.year}-06-01"}
            common |= {"adult": False, "video": False}
        else:
            common |= {"name": self.title, "originalName": self.title, "firstAirDate": f"{self.year}-09-01"}
            common |= {"originCountry": ["US"]}
        info = self.media_info()
        if info is not None:
            common["mediaInfo"] = info
        return common


def default_titles() -> list[FakeTitle]:
    """Popular films and shows: 30 films (two pages), every fifth one already in the library, and 6 shows."""
    movies = [
        FakeTitle(
            550 + number,
            "movie",
            f"Popular Film {number}",
            2000 + number,
            genre_ids=(35,) if number % 2 else (18, 878),
            poster=f"/poster{number:02d}.jpg" if number % 7 else None,
            vote=5 + number % 5,
            media_status=5 if number % 5 == 4 else None,
        )
        for number in range(30)
    ]
    shows = [
        FakeTitle(
            1400 + number, "tv", f"Popular Show {number}", 2010 + number, genre_ids=(18,), poster=f"/show{number}.jpg"
        )
        for number in range(6)
    ]
    return movies + shows


class FakeSeerr(FakeService):
    def __init__(self, titles: Sequence[FakeTitle] | None = None, *, key: str = SEERR_API_KEY) -> None:
        self.key = key
        self.titles = {(title.kind, title.tmdb_id): title for title in titles or default_titles()}
        self.auto_approve = False
        self.refuse_requests = False  # answer 403, as Seerr does for a user without the REQUEST permission
        self.request_reply_delay = 0.0  # a request is recorded at once, its reply sent this much later
        self._ids = itertools.count(1)
        super().__init__("/api/v1")

    def routes(self) -> Sequence[RouteSpec]:
        return [
            ("/status", self.status),
            ("/auth/me", self.me),
            ("/discover/movies", self.discover),
            ("/discover/tv", self.discover),
            ("/genres/movie", self.genres),
            ("/genres/tv", self.genres),
            ("/request", self.create_request, "POST"),
            ("/movie/{id:int}", self.details),
            ("/tv/{id:int}", self.details),
        ]

    def authorized(self, request: Request) -> bool:
        return request.url.path == self.prefix + "/status" or request.headers.get("x-api-key") == self.key

    def title(self, kind: str, tmdb_id: int) -> FakeTitle:
        return self.titles[(kind, tmdb_id)]  # type: ignore[index]

    async def status(self, request: Request) -> Response:
        return JSONResponse({"version": "1.33.2", "commitTag": "v1.33.2", "updateAvailable": False})

    async def me(self, request: Request) -> Response:
        return JSONResponse(
            {
                "id": 1,
                "email": "admin@example.com",
                "username": "admin",
                "permissions": 2,
                "userType": 1,
                "createdAt": "2024-01-01T00:00:00.000Z",
                "updatedAt": "2024-01-01T00:00:00.000Z",
                "requestCount": 0,
            }
        )

    async def discover(self, request: Request) -> Response:
        kind = "movie" if request.url.path.endswith("/movies") else "tv"
        listed = [title for title in self.titles.values() if title.kind == kind]
        page = int(request.query_params.get("page", "1"))
        results = [title.result() for title in listed[(page - 1) * PAGE : page * PAGE]]
        pages = max(1, -(-len(listed) // PAGE))
        return JSONResponse({"page": page, "totalPages": pages, "totalResults": len(listed), "results": results})

    async def genres(self, request: Request) -> Response:
        table = MOVIE_GENRES if request.url.path.endswith("/movie") else TV_GENRES
        return JSONResponse([{"id": number, "name": name} for number, name in table.items()])

    async def create_request(self, request: Request) -> Response:
        if self.refuse_requests:
            return JSONResponse({"message": "You do not have permission to make requests."}, 403)
        body = await request.json()
        kind, tmdb_id = body.get("mediaType"), body.get("mediaId")
        title = self.titles.get((kind, tmdb_id))
        if title is None:
            return JSONResponse({"message": "Title not found."}, 404)
        if kind == "tv" and not body.get("seasons"):
            return JSONResponse({"message": "Missing seasons."}, 400)
        if any(existing.status in (1, 2) for existing in title.requests) or title.media_status in (4, 5):
            return JSONResponse({"message": "Request for this media already exists."}, 409)
        made = FakeRequest(next(self._ids), 2 if self.auto_approve else 1, f"2024-05-0{len(title.requests) + 1}")
        title.requests.append(made)
        title.media_status = 3 if self.auto_approve else 2
        info = title.media_info()
        await asyncio.sleep(self.request_reply_delay)
        return JSONResponse({"id": made.id, "status": made.status, "media": info, "is4k": False}, 201)

    async def details(self, request: Request) -> Response:
        kind = "movie" if request.url.path.startswith(self.prefix + "/movie/") else "tv"
        title = self.titles.get((kind, request.path_params["id"]))  # type: ignore[arg-type]
        if title is None:
            return JSONResponse({"message": "Unable to retrieve movie."}, 404)
        details = title.result() | {
            "genres": [{"id": number, "name": MOVIE_GENRES.get(number, "?")} for number in title.genre_ids]
        }
        details.pop("mediaInfo", None)
        info = title.media_info()
        if info is not None:
            details["mediaInfo"] = info
        return JSONResponse(details)


class FakeTmdbImages(FakeService):
    """TMDB's image server: ``/{size}/{file}`` (sizes w92 ... w780, original), public."""

    def __init__(self) -> None:
        super().__init__("/t/p")

    def routes(self) -> Sequence[RouteSpec]:
        return [("/{size}/{file}", self.image)]

    def authorized(self, request: Request) -> bool:
        return True

    async def image(self, request: Request) -> Response:
        size, file = request.path_params["size"], request.path_params["file"]
        if size not in ("w92", "w154", "w185", "w342", "w500", "w780", "original") or not file.endswith(".jpg"):
            return Response("Not Found", 404)
        width = 500 if size == "original" else int(size[1:])
        return Response(png(width, width * 3 // 2, file), media_type="image/png")
