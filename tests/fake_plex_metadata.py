"""A fake of plex.tv's metadata provider (metadata.provider.plex.tv), where Plex accounts keep their
watchlists: ``GET /library/sections/watchlist/all`` (paged by ``X-Plex-Container-Start``/``-Size``,
a ``MediaContainer`` of ``Metadata`` items with their ``guid``, as python-plexapi reads it), and
``PUT /actions/addToWatchlist`` / ``/actions/removeFromWatchlist`` with ``ratingKey``, the last part
of the item's ``plex://`` guid. Each account is its token (``X-Plex-Token``); served by
``tests.fakes.serving``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tests.fakes import FakeService, RouteSpec

_RATING_KEY = re.compile(r"[0-9a-f]{24}")


class FakePlexMetadata(FakeService):
    def __init__(self, watchlists: dict[str, list[str]] | None = None) -> None:
        # token -> the rating keys on that account's watchlist, newest first
        self.watchlists = watchlists or {}
        self.titles: dict[str, str] = {}  # rating key -> title, for the listing
        super().__init__()

    def routes(self) -> Sequence[RouteSpec]:
        return [
            ("/library/sections/watchlist/all", self.listing),
            ("/actions/addToWatchlist", self.add, "PUT"),
            ("/actions/removeFromWatchlist", self.remove, "PUT"),
        ]

    def authorized(self, request: Request) -> bool:
        return request.headers.get("x-plex-token") in self.watchlists

    def _keys(self, request: Request) -> list[str]:
        return self.watchlists[request.headers["x-plex-token"]]

    async def listing(self, request: Request) -> Response:
        keys = self._keys(request)
        start = int(request.headers.get("x-plex-container-start", "0"))
        size = int(request.headers.get("x-plex-container-size", "50"))
        page = keys[start : start + size]
        items = [
            {
                "ratingKey": key,
                "key": f"/library/metadata/{key}",
                "guid": f"plex://movie/{key}",
                "type": "movie",
                "title": self.titles.get(key, f"Film {key[:6]}"),
                "watchlistedAt": int(time.time()),
                "publicPagesURL": f"https://watch.plex.tv/movie/{key}",
            }
            for key in page
        ]
        container = {
            "size": len(items),
            "offset": start,
            "totalSize": len(keys),
            "identifier": "tv.plex.provider.metadata",
            "librarySectionID": "watchlist",
            "librarySectionTitle": "Watchlist",
            "Metadata": items,
        }
        return JSONResponse({"MediaContainer": container})

    def _rating_key(self, request: Request) -> str | None:
        key = request.query_params.get("ratingKey", "")
        return key if _RATING_KEY.fullmatch(key) else None

    async def add(self, request: Request) -> Response:
        key = self._rating_key(request)
        if key is None:
            return Response("ratingKey expected", 400)
        keys = self._keys(request)
        if key not in keys:
            keys.insert(0, key)
        return Response(status_code=200)

    async def remove(self, request: Request) -> Response:
        key = self._rating_key(request)
        if key is None:
            return Response("ratingKey expected", 400)
        keys = self._keys(request)
        if key in keys:
            keys.remove(key)
        return Response(status_code=200)
