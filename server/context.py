"""What every request handler can reach: settings, storage, media, rooms and sign-in."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

import anyio

from server.accounts import PlexAccounts
from server.config import Settings
from server.limits import Guards
from server.metrics import Metrics
from server.offload import Offload
from server.players import Playback
from server.providers.combined import CombinedProvider
from server.providers.jellyfin_sign_in import JellyfinSignIn
from server.qr import QrCodes
from server.rooms.registry import RoomRegistry
from server.rooms.standing import StandingRooms
from server.title_requests import TitleRequests
from server.user import User
from server.watchlists import Watchlists
from storage import Storage


class Departing(Protocol):
    def going_away(self) -> None: ...


# Verifies a Plex sign-in (token, client id) and returns the user, or raises ProtocolError.
PlexSignIn = Callable[[str, str], Awaitable[User]]


@dataclass
class AppContext:
    settings: Settings
    storage: Storage
    provider: CombinedProvider
    registry: RoomRegistry
    watchlists: Watchlists
    requests: TitleRequests
    playback: Playback
    plex_sign_in: PlexSignIn | None = None
    # Where Plex sign-ins' watchlists are written (there when Plex sign-in is).
    plex_accounts: PlexAccounts | None = None
    jellyfin_sign_in: JellyfinSignIn | None = None
    connections: set[Departing] = field(default_factory=set)
    metrics: Metrics = field(default_factory=Metrics)
    # CPU-heavy work (password checks, QR codes) runs here, off the event loop and bounded.
    offload: Offload = field(kw_only=True)
    # The rooms config.yaml defines (listed in the lobby).
    standing: StandingRooms | None = field(default=None, kw_only=True)
    guards: Guards = field(init=False)
    qr_codes: QrCodes = field(init=False)
    _none_left: anyio.Event | None = None

    def __post_init__(self) -> None:
        self.guards = Guards(self.settings)
        self.qr_codes = QrCodes(self.offload)

    def connected(self, connection: Departing) -> None:
        self.connections.add(connection)

    def disconnected(self, connection: Departing) -> None:
        self.connections.discard(connection)
        if not self.connections and self._none_left is not None:
            self._none_left.set()

    async def say_goodbye(self, grace: float = 1.0) -> None:
        """Ask every connection to close with "going away", and give them a moment to do it."""
        self._none_left = anyio.Event()
        if not self.connections:
            return
        for connection in list(self.connections):
            connection.going_away()
        with anyio.move_on_after(grace):
            await self._none_left.wait()
