"""The fake Plex Media Server (tests/fake_plex.py) with players: ``/clients`` (the players on its
network, a ``MediaContainer`` of ``Server`` entries with ``machineIdentifier`` and
``protocolCapabilities``), ``POST /playQueues`` (the PMS API's "Create a play queue": ``type``,
``uri=server://{machineIdentifier}/com.plexapp.plugins.library/library/metadata/{key}``, answered
with ``playQueueID``) and ``/player/playback/playMedia`` passed on to the player named by
``X-Plex-Target-Client-Identifier``, as the server does for Plex's remotes (404 for a player it no
longer reaches, 401 from a player that refuses the command).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tests.fake_plex import MACHINE_IDENTIFIER, FakePlex
from tests.fakes import RouteSpec

_URI = re.compile(rf"server://{MACHINE_IDENTIFIER}/com\.plexapp\.plugins\.library/library/metadata/([0-9]+)")


@dataclass
class FakePlayer:
    machine_identifier: str
    name: str
    product: str = "Plex for Android (TV)"
    capabilities: str = "timeline,playback,navigation,mirror,playqueues"
    reachable: bool = True  # False: listed a moment ago, gone now
    refuses: bool = False
    played: list[dict[str, str]] = field(default_factory=list)  # the playMedia commands it got

    def entry(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "host": "192.168.1.20",
            "address": "192.168.1.20",
            "port": 32500,
            "machineIdentifier": self.machine_identifier,
            "version": "10.22.0.1234",
            "protocol": "plex",
            "product": self.product,
            "deviceClass": "stb",
            "protocolVersion": "1",
            "protocolCapabilities": self.capabilities,
        }


class FakePlexWithPlayers(FakePlex):
    def __init__(self, *args: Any, players: Sequence[FakePlayer] = (), **options: Any) -> None:
        self.players = {player.machine_identifier: player for player in players}
        self.queues: dict[int, str] = {}  # play queue id -> rating key
        self._queue_ids = itertools.count(9631)
        super().__init__(*args, **options)

    def routes(self) -> Sequence[RouteSpec]:
        return [
            ("/clients", self.clients),
            ("/playQueues", self.create_queue, "POST"),
            ("/player/playback/playMedia", self.play_media),
            *super().routes(),
        ]

    async def clients(self, request: Request) -> Response:
        listed = [player.entry() for player in self.players.values()]
        return JSONResponse({"MediaContainer": {"size": len(listed), "Server": listed}})

    async def create_queue(self, request: Request) -> Response:
        query = request.query_params
        found = _URI.fullmatch(query.get("uri", ""))
        if query.get("type") not in ("audio", "video", "photo") or found is None:
            return Response("type and a uri of this server expected", 400)
        rating_key = found.group(1)
        item = self._find(rating_key)
        if item is None:
            return Response("Not Found", 404)
        library, index = item
        queue_id = next(self._queue_ids)
        self.queues[queue_id] = rating_key
        container = {
            "size": 1,
            "playQueueID": queue_id,
            "playQueueSelectedItemID": queue_id * 10,
            "playQueueSelectedItemOffset": 0,
            "playQueueSelectedMetadataItemID": int(rating_key),
            "playQueueShuffled": False,
            "playQueueSourceURI": query["uri"],
            "playQueueTotalCount": 1,
            "playQueueVersion": 1,
            "Metadata": [library.item(index) | {"playQueueItemID": queue_id * 10}],
        }
        return JSONResponse({"MediaContainer": container})

    async def play_media(self, request: Request) -> Response:
        player = self.players.get(request.headers.get("x-plex-target-client-identifier", ""))
        if player is None or not player.reachable:
            return Response("<Response code='404' status='Not Found'/>", 404, media_type="text/xml")
        if player.refuses:
            return Response("<Response code='401' status='Unauthorized'/>", 401, media_type="text/xml")
        command = dict(request.query_params)
        queue = re.fullmatch(r"/playQueues/([0-9]+)\?window=100&own=1", command.get("containerKey", ""))
        if queue is None or self.queues.get(int(queue.group(1))) != command.get("key", "").rsplit("/", 1)[-1]:
            return Response("<Response code='400' status='Bad Request'/>", 400, media_type="text/xml")
        player.played.append(command)
        return Response("<Response code='200' status='OK'/>", media_type="text/xml")
