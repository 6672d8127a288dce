"""The fake Jellyfin (tests/fake_jellyfin.py) with what playback and favourites need, shaped as
jellyfin/jellyfin's controllers answer:

- users' own access tokens beside the API key (``Authorization: MediaBrowser ..., Token="..."``),
  each valid for its user's paths only (403 for another user's, as ``RequestHelpers`` checks);
- favourites: ``POST``/``DELETE /Users/{userId}/FavoriteItems/{itemId}`` (``UserItemDataDto``) and
  ``GET /Users/{userId}/Items?Filters=IsFavorite`` (a ``QueryResult`` of ``BaseItemDto``);
- sessions: ``GET /Sessions`` (``SessionInfoDto``, with ``SupportsRemoteControl`` and
  ``PlayableMediaTypes``) and ``POST /Sessions/{id}/Playing?playCommand=PlayNow&itemIds=...``
  (204; 404 for a session that is gone; 403 for one the key may not control).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tests.fake_jellyfin import SERVER_ID, FakeJellyfin, guid
from tests.fakes import RouteSpec


@dataclass
class FakeSession:
    id: str
    device: str
    client: str = "Jellyfin Android TV"
    user_id: str = guid(0xA11CE)
    user_name: str = "alice"
    remote_control: bool = True
    media_types: tuple[str, ...] = ("Audio", "Video")
    refuses: bool = False  # the API key may not control it
    played: list[tuple[str, list[str]]] = field(default_factory=list)  # (playCommand, itemIds)

    def dto(self) -> dict[str, Any]:
        return {
            "PlayState": {"CanSeek": False, "IsPaused": False, "IsMuted": False, "RepeatMode": "RepeatNone"},
            "AdditionalUsers": [],
            "Capabilities": {
                "PlayableMediaTypes": list(self.media_types),
                "SupportedCommands": ["MoveUp", "MoveDown", "Play"] if self.remote_control else [],
                "SupportsMediaControl": self.remote_control,
                "SupportsPersistentIdentifier": True,
            },
            "RemoteEndPoint": "192.168.1.20",
            "PlayableMediaTypes": list(self.media_types),
            "Id": self.id,
            "UserId": self.user_id,
            "UserName": self.user_name,
            "Client": self.client,
            "LastActivityDate": "2024-05-01T20:00:00.0000000Z",
            "LastPlaybackCheckIn": "0001-01-01T00:00:00.0000000Z",
            "DeviceName": self.device,
            "DeviceId": f"device-{self.id}",
            "ApplicationVersion": "0.16.4",
            "IsActive": True,
            "SupportsMediaControl": self.remote_control,
            "SupportsRemoteControl": self.remote_control,
            "NowPlayingQueue": [],
            "NowPlayingQueueFullItems": [],
            "HasCustomDeviceName": False,
            "ServerId": SERVER_ID,
            "SupportedCommands": ["MoveUp", "MoveDown", "Play"] if self.remote_control else [],
        }


class FakeJellyfinPlus(FakeJellyfin):
    def __init__(
        self,
        prefix: str = "",
        *,
        user_tokens: dict[str, str] | None = None,
        sessions: Sequence[FakeSession] = (),
        **options: Any,
    ) -> None:
        self.user_tokens = user_tokens or {}  # access token -> user id
        self.favourites: dict[str, list[str]] = {}  # user id -> item ids, in the order marked
        self.sessions = {session.id: session for session in sessions}
        super().__init__(prefix, **options)

    def routes(self) -> Sequence[RouteSpec]:
        return [
            ("/Users/{user}/FavoriteItems/{item}", self.favourite, "POST"),
            ("/Users/{user}/FavoriteItems/{item}", self.unfavourite, "DELETE"),
            ("/Users/{user}/Items", self.user_items),
            ("/Sessions", self.list_sessions),
            ("/Sessions/{session}/Playing", self.play, "POST"),
            *super().routes(),
        ]

    def authorized(self, request: Request) -> bool:
        return super().authorized(request) or self.presented_key(request) in self.user_tokens

    def _may_act_for(self, request: Request, user_id: str) -> Response | None:
        """403 unless the request presents the API key or the user's own token."""
        presented = self.presented_key(request)
        if presented == self.key or self.user_tokens.get(presented or "") == user_id:
            return None
        return Response("User is not allowed to access this user's data.", 403)

    def _known_item(self, item_id: str) -> bool:
        return any(library.index_of(item_id) is not None for library in self.libraries.values())

    def _user_data(self, user_id: str, item_id: str) -> Response:
        return JSONResponse(
            {
                "PlaybackPositionTicks": 0,
                "PlayCount": 0,
                "IsFavorite": item_id in self.favourites.get(user_id, []),
                "Played": False,
                "Key": item_id,
                "ItemId": item_id,
            }
        )

    async def favourite(self, request: Request) -> Response:
        user_id, item_id = request.path_params["user"], request.path_params["item"]
        refused = self._may_act_for(request, user_id)
        if refused is not None:
            return refused
        if user_id not in self.users or not self._known_item(item_id):
            return Response("Item not found", 404)
        marked = self.favourites.setdefault(user_id, [])
        if item_id not in marked:
            marked.append(item_id)
        return self._user_data(user_id, item_id)

    async def unfavourite(self, request: Request) -> Response:
        user_id, item_id = request.path_params["user"], request.path_params["item"]
        refused = self._may_act_for(request, user_id)
        if refused is not None:
            return refused
        if item_id in self.favourites.get(user_id, []):
            self.favourites[user_id].remove(item_id)
        return self._user_data(user_id, item_id)

    async def user_items(self, request: Request) -> Response:
        query = {name.lower(): value for name, value in request.query_params.items()}
        if query.get("filters") != "IsFavorite":
            return await self.items(request)
        user_id = request.path_params["user"]
        refused = self._may_act_for(request, user_id)
        if refused is not None:
            return refused
        listed = [
            {"Name": f"Item {item_id[:8]}", "Id": item_id, "ServerId": SERVER_ID, "Type": "Movie"}
            for item_id in self.favourites.get(user_id, [])
        ]
        return JSONResponse({"Items": listed, "TotalRecordCount": len(listed), "StartIndex": 0})

    async def list_sessions(self, request: Request) -> Response:
        return JSONResponse([session.dto() for session in self.sessions.values()])

    async def play(self, request: Request) -> Response:
        session = self.sessions.get(request.path_params["session"])
        if session is None:
            return Response(f"Session {request.path_params['session']} not found.", 404)
        if session.refuses:
            return Response("User is not allowed to control this session.", 403)
        query = {name.lower(): value for name, value in request.query_params.items()}
        items = [item for item in query.get("itemids", "").split(",") if item]
        if not items or not all(self._known_item(item) for item in items):
            return Response("Item not found", 400)
        session.played.append((query.get("playcommand", ""), items))
        return Response(status_code=204)
