"""Play the winner: the players a media server can see, and starting a match on one of them.

- Plex: the clients the server lists at ``/clients`` (players on its network that announce
  themselves, with their ``machineIdentifier`` and ``protocolCapabilities``; those that take
  ``playback``). A film starts on one as Plex's own remotes start it: a play queue of the item
  (``POST /playQueues``, in the PMS API), then ``/player/playback/playMedia`` sent through the
  server (``X-Plex-Target-Client-Identifier``), which passes it on, so the player need not be
  reachable from here. The server's token is not put into the command: a URL ends up in logs, and a
  player signed in to a Plex account with access to the server plays with its own.
- Jellyfin: the sessions the server lists at ``/Sessions`` that take remote control and play
  video; ``POST /Sessions/{id}/Playing?playCommand=PlayNow&itemIds=...`` starts the film there.

A film plays on the server its card came from (``server.providers.origin``): a player of another
server, or a title no media server here holds, is ``NotOnServer``. Only the room's owner lists
players and starts a match; the members who see the match are told (``playbackStarted``).
"""

from __future__ import annotations

import logging
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import quote

import httpx
import msgspec

from server.protocol import ErrorName, ProtocolError, Reply
from server.providers import Media, MediaProvider, ProviderError
from server.providers.combined import CombinedProvider
from server.providers.jellyfin import JellyfinProvider
from server.providers.origin import origin
from server.providers.plex import PlexProvider
from server.providers.remote import transport_problem
from server.rooms.match_news import sees_match
from server.rooms.registry import RoomRegistry
from server.rooms.room import Room, Seat
from server.user import User
from storage import StorageError

log = logging.getLogger(__name__)

# Player ids are the server's own: they go into headers and paths.
_PLAYER_ID = re.compile(r"[A-Za-z0-9._:-]{1,200}")
SEPARATOR = "/"


@dataclass(frozen=True)
class Player:
    key: str  # the media server's id of it
    name: str
    product: str


class PlaybackError(Exception):
    """The player or its server would not start the film; ``name`` is the protocol's error name."""

    def __init__(self, name: ErrorName, message: str) -> None:
        super().__init__(message)
        self.name = name


def _answer_of(server: str, response: httpx.Response, player: str) -> None:
    """Raise for an answer that is not a success, in the words of what went wrong."""
    if response.is_success:
        return
    if response.status_code == 404:
        raise PlaybackError(ErrorName.PLAYER_GONE, f"{player} is gone: {server} no longer reaches it")
    if response.status_code in (401, 403):
        raise PlaybackError(
            ErrorName.PLAYBACK_REFUSED, f"{server} may not start films on {player} (HTTP {response.status_code})"
        )
    raise PlaybackError(ErrorName.PROVIDER_ERROR, f"{server} answered HTTP {response.status_code} for {player}")


async def _send(
    client: httpx.AsyncClient,
    server: str,
    method: str,
    path: str,
    params: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
) -> httpx.Response:
    try:
        return await client.request(method, path, params=params, headers=headers)
    except httpx.TimeoutException as exc:
        raise PlaybackError(ErrorName.PROVIDER_ERROR, f"{server} did not answer in time") from exc
    except httpx.RequestError as exc:
        raise PlaybackError(ErrorName.PROVIDER_ERROR, f"{server} cannot be reached: {transport_problem(exc)}") from exc


class Players(ABC):
    """The players of one media server, asked through that server's connection."""

    def __init__(self, server: PlexProvider | JellyfinProvider) -> None:
        self._server = server

    def _client(self) -> httpx.AsyncClient:
        try:
            return self._server.http()
        except ProviderError as exc:
            raise PlaybackError(ErrorName.PROVIDER_ERROR, str(exc)) from exc

    @abstractmethod
    async def players(self) -> list[Player]: ...

    @abstractmethod
    async def play(self, player: str, key: str) -> Player:
        """Start the item with this key (its key on this server) on the player, which is returned;
        a player the server no longer lists is ``PlayerGone``."""


# -- Plex ------------------------------------------------------------------------------------------


class _PlexClient(msgspec.Struct):
    machineIdentifier: str
    name: str = ""
    product: str = ""
    protocolCapabilities: str = ""


class _PlexClients(msgspec.Struct):
    Server: list[_PlexClient] = []


class _PlexPlayQueue(msgspec.Struct):
    playQueueID: int


class _PlexAnswer(msgspec.Struct):
    MediaContainer: msgspec.Raw


_PLEX = msgspec.json.Decoder(_PlexAnswer)
_CLIENTS = msgspec.json.Decoder(_PlexClients, strict=False)
_QUEUE = msgspec.json.Decoder(_PlexPlayQueue, strict=False)

Shape = TypeVar("Shape")


def _plex_container(content: bytes, decoder: msgspec.json.Decoder[Shape], what: str) -> Shape:
    """What Plex put inside ``MediaContainer``."""
    try:
        return decoder.decode(_PLEX.decode(content).MediaContainer)
    except msgspec.DecodeError as exc:
        raise PlaybackError(ErrorName.PROVIDER_ERROR, f"the Plex server sent an unexpected answer to {what}") from exc


class PlexPlayers(Players):
    _server: PlexProvider

    async def _clients(self) -> list[_PlexClient]:
        response = await _send(self._client(), "the Plex server", "GET", "/clients")
        _answer_of("the Plex server", response, "its players")
        clients = _plex_container(response.content, _CLIENTS, "/clients")
        return [client for client in clients.Server if "playback" in client.protocolCapabilities.split(",")]

    async def players(self) -> list[Player]:
        return [Player(client.machineIdentifier, client.name, client.product) for client in await self._clients()]

    async def play(self, player: str, key: str) -> Player:
        target = next((found for found in await self.players() if found.key == player), None)
        if target is None:
            raise PlaybackError(ErrorName.PLAYER_GONE, "that player is gone: the Plex server no longer lists it")
        machine = self._server.machine_identifier
        if machine is None:
            raise PlaybackError(ErrorName.PROVIDER_ERROR, "the Plex server has not answered yet")
        client = self._client()
        item = f"/library/metadata/{quote(key, safe='')}"
        response = await _send(
            client,
            "the Plex server",
            "POST",
            "/playQueues",
            {"type": "video", "uri": f"server://{machine}/com.plexapp.plugins.library{item}", "continuous": "0"},
        )
        _answer_of("the Plex server", response, target.name)
        queue = _plex_container(response.content, _QUEUE, "/playQueues")
        here = client.base_url
        command = {
            "key": item,
            "offset": "0",
            "type": "video",
            "machineIdentifier": machine,
            "providerIdentifier": "com.plexapp.plugins.library",
            "protocol": here.scheme,
            "address": here.host,
            "port": str(here.port or (443 if here.scheme == "https" else 80)),
            "containerKey": f"/playQueues/{queue.playQueueID}?window=100&own=1",
            "commandID": "1",
        }
        headers = {"X-Plex-Target-Client-Identifier": player}
        response = await _send(client, "the Plex server", "GET", "/player/playback/playMedia", command, headers)
        _answer_of("the Plex server", response, target.name)
        return target


# -- Jellyfin --------------------------------------------------------------------------------------


class _Session(msgspec.Struct, rename="pascal"):
    id: str
    device_name: str | None = None
    client: str | None = None
    supports_remote_control: bool = False
    playable_media_types: list[str] | None = None


_SESSIONS = msgspec.json.Decoder(list[_Session])


class JellyfinPlayers(Players):
    async def players(self) -> list[Player]:
        response = await _send(self._client(), "the Jellyfin server", "GET", "Sessions")
        _answer_of("the Jellyfin server", response, "its sessions")
        try:
            sessions = _SESSIONS.decode(response.content)
        except msgspec.DecodeError as exc:
            raise PlaybackError(ErrorName.PROVIDER_ERROR, "the Jellyfin server sent an unexpected answer") from exc
        return [
            Player(session.id, session.device_name or session.client or session.id, session.client or "")
            for session in sessions
            if session.supports_remote_control and "Video" in (session.playable_media_types or ())
        ]

    async def play(self, player: str, key: str) -> Player:
        target = next((found for found in await self.players() if found.key == player), None)
        if target is None:
            raise PlaybackError(ErrorName.PLAYER_GONE, "that player is gone: the Jellyfin server no longer lists it")
        response = await _send(
            self._client(),
            "the Jellyfin server",
            "POST",
            f"Sessions/{quote(player, safe='')}/Playing",
            {"playCommand": "PlayNow", "itemIds": key},
        )
        _answer_of("the Jellyfin server", response, target.name)
        return target


def players_of(provider: MediaProvider) -> Players | None:
    """The players of a media source, if it has any to start films on."""
    if isinstance(provider, PlexProvider):
        return PlexPlayers(provider)
    if isinstance(provider, JellyfinProvider):
        return JellyfinPlayers(provider)
    return None


# -- the room's side -------------------------------------------------------------------------------


class Playback:
    def __init__(self, media: CombinedProvider, registry: RoomRegistry) -> None:
        self._media = media
        self._registry = registry

    def _match(
        self, reply: Reply, room: Room | None, seat: Seat, user: User | None, about: Mapping[str, str]
    ) -> tuple[Room, Media]:
        """The room and the owner's match that a request is ``about``, or the error saying why not."""
        media_id = about["mediaId"]
        member = room.seat_name(seat) if room is not None else None
        if room is None or user is None or member is None:
            raise ProtocolError(reply, ErrorName.NOT_IN_ROOM, "join a room first", **about)
        item = room.deck.get(media_id)
        if item is None:
            raise ProtocolError(reply, ErrorName.UNKNOWN_MEDIA, f"{media_id} is not in this room", **about)
        if not sees_match(room, member, media_id):
            raise ProtocolError(reply, ErrorName.NOT_A_MATCH, f"{item.title} has not matched in this room", **about)
        if not self._registry.owns(room, seat, user):
            raise ProtocolError(reply, ErrorName.NOT_ROOM_OWNER, "only the room's owner starts a match", **about)
        return room, item

    def _server_of(self, reply: Reply, item: Media, about: Mapping[str, str]) -> tuple[str, str, Players]:
        """The provider id, item key and players of the server that holds the card."""
        found = origin(item.linkUrl)
        provider = self._media.providers.get(found.provider_id) if found is not None else None
        players = players_of(provider) if provider is not None else None
        if found is None or players is None:
            message = f"{item.title} is on no media server that can play it on a player"
            raise ProtocolError(reply, ErrorName.NOT_ON_SERVER, message, **about)
        return found.provider_id, found.key, players

    async def players(self, room: Room | None, seat: Seat, user: User | None, media_id: str) -> dict[str, object]:
        reply, about = Reply.GET_PLAYERS_ERROR, {"mediaId": media_id}
        _, item = self._match(reply, room, seat, user, about)
        provider_id, _, players = self._server_of(reply, item, about)
        try:
            found = await players.players()
        except PlaybackError as exc:
            raise ProtocolError(reply, exc.name, str(exc), **about) from exc
        listed = [
            {"id": f"{provider_id}{SEPARATOR}{player.key}", "name": player.name, "product": player.product}
            for player in found
        ]
        return {"mediaId": media_id, "players": listed}

    async def play(
        self, room: Room | None, seat: Seat, user: User | None, media_id: str, player_id: str
    ) -> dict[str, object]:
        reply, about = Reply.PLAY_MEDIA_ERROR, {"mediaId": media_id, "playerId": player_id}
        room, item = self._match(reply, room, seat, user, about)
        provider_id, key, players = self._server_of(reply, item, about)
        server, separator, player = player_id.partition(SEPARATOR)
        if not separator or not _PLAYER_ID.fullmatch(player):
            raise ProtocolError(reply, ErrorName.PLAYER_GONE, "no such player: list the players again", **about)
        if server != provider_id:
            message = f"{item.title} is not on that player's media server"
            raise ProtocolError(reply, ErrorName.NOT_ON_SERVER, message, **about)
        try:
            target = await players.play(player, key)
        except PlaybackError as exc:
            raise ProtocolError(reply, exc.name, str(exc), **about) from exc
        log.info("started %r on %r in room %r", item.title, target.name, room.name)
        playing = {"mediaId": media_id, "player": target.name}
        try:
            await self._registry.changes.announce(room, media_id, Reply.PLAYBACK_STARTED, playing)
        except StorageError:  # it plays: only the others' news of it is lost
            log.warning("room %r: could not tell the other processes that %r plays", room.name, item.title)
        return {**about, "player": target.name}
