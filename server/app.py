"""The app factory: wires settings, storage, media and rooms together, and owns their lifetime."""

from __future__ import annotations

import logging
import random
import secrets
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager

import anyio
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.websockets import WebSocket

from server import http
from server.accounts import PlexAccounts
from server.config import Settings
from server.connection import Connection
from server.context import AppContext
from server.limits_redis import RedisWindow
from server.metrics import Metrics
from server.middleware import BasicAuthMiddleware, RootPathMiddleware, WebSocketCapMiddleware
from server.offload import Offload
from server.players import Playback
from server.providers import MediaProvider
from server.providers.combined import CombinedProvider
from server.providers.configured import client_id, configured_providers, jellyfin_servers, plex_servers
from server.providers.jellyfin_sign_in import JellyfinSignIn
from server.providers.plex_tv import PlexTvSignIn
from server.rooms.changes import RoomChanges
from server.rooms.local import LocalChanges
from server.rooms.registry import RoomLimits, RoomRegistry
from server.rooms.shared import Live, RedisLive, SharedChanges
from server.rooms.standing import StandingRooms
from server.security import AllowedHostsMiddleware, OriginMiddleware, SecurityHeadersMiddleware, origin_hosts
from server.title_requests import TitleRequests
from server.watchlists import WatchlistMedia, Watchlists
from storage import Storage
from storage.redis import RedisStorage

log = logging.getLogger("server.app")


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


async def websocket_endpoint(websocket: WebSocket) -> None:
    await Connection(websocket, websocket.app.state.context).serve()


def plex_sign_in_for(settings: Settings, media: CombinedProvider) -> PlexTvSignIn | None:
    """Plex sign-in is offered when a Plex server is configured (or Plex sign-in is required)."""
    if not (plex_servers(media) or settings.require_plex_login):
        return None
    return PlexTvSignIn(settings, client_id=client_id(), plex_servers=lambda: plex_servers(media))


def jellyfin_sign_in_for(settings: Settings, media: CombinedProvider) -> JellyfinSignIn | None:
    """Jellyfin sign-in is offered when a Jellyfin server is configured that allows it (``sign_in``)."""
    servers = [server for server in jellyfin_servers(media) if server.config.sign_in]
    return JellyfinSignIn(settings, servers, client_id=client_id()) if servers else None


def room_changes(
    settings: Settings,
    storage: Storage,
    metrics: Metrics,
    now_ms: Callable[[], int],
    process_id: str | None,
    live: Live | None = None,
) -> RoomChanges:
    """Who decides changes to rooms: with Redis storage (or a ``live`` given) every room is shared
    with the other processes using the same Redis (``process_id`` names this one among them);
    otherwise this process alone serves its rooms."""
    if live is None and isinstance(storage, RedisStorage):
        live = RedisLive(storage, process_id or secrets.token_hex(6))
    if live is not None:
        return SharedChanges(
            live,
            presence_timeout=settings.presence_timeout,
            max_members=settings.max_room_members,
            absence_ms=settings.member_absence_ms,
            now_ms=now_ms,
            metrics=metrics,
        )
    return LocalChanges(
        storage,
        max_members=settings.max_room_members,
        absence_ms=settings.member_absence_ms,
        now_ms=now_ms,
        save_delay=settings.save_delay,
        save_max_wait=settings.save_max_wait,
        observer=metrics,
    )


def create_app(
    settings: Settings,
    *,
    storage: Storage | None = None,
    provider: MediaProvider | None = None,
    now_ms: Callable[[], int] = wall_clock_ms,
    rng: random.Random | None = None,
    process_id: str | None = None,
    live: Live | None = None,
) -> Starlette:
    """Build the app; nothing is opened until the lifespan starts (so tests can build many)."""
    storage = storage or settings.storage.create()
    watchlists = Watchlists(storage, now_ms)
    sources = configured_providers(settings).providers.values() if provider is None else [provider]
    media = WatchlistMedia(list(sources), watchlists)
    plex_sign_in = plex_sign_in_for(settings, media)
    plex_accounts = None if plex_sign_in is None else PlexAccounts(settings.plex_metadata_url, client_id=client_id())
    jellyfin_sign_in = jellyfin_sign_in_for(settings, media)
    metrics = Metrics()
    offload = Offload.from_settings(settings)
    registry = RoomRegistry(
        storage,
        media,
        room_changes(settings, storage, metrics, now_ms, process_id, live),
        offload=offload,
        idle_timeout=settings.room_idle_timeout,
        limits=RoomLimits(
            max_rooms=settings.max_rooms,
            min_free_bytes=settings.min_free_disk_mb * 2**20,
            retention_days=settings.room_retention_days,
        ),
        rng=rng,
    )
    requests = TitleRequests(media, registry, interval=settings.request_refresh_interval)
    standing = StandingRooms(registry, settings.rooms, refresh=settings.standing_room_refresh, rng=rng)
    context = AppContext(
        settings=settings,
        storage=storage,
        provider=media,
        registry=registry,
        watchlists=watchlists,
        requests=requests,
        playback=Playback(media, registry),
        metrics=metrics,
        plex_sign_in=plex_sign_in,
        offload=offload,
        plex_accounts=plex_accounts,
        standing=standing,
        jellyfin_sign_in=jellyfin_sign_in,
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with storage, AsyncExitStack() as services:
            await media.open()
            services.push_async_callback(media.close)
            for sign_in in (plex_sign_in, jellyfin_sign_in):
                if sign_in is not None:
                    await sign_in.open()
                    services.push_async_callback(sign_in.close)
            if plex_accounts is not None:
                await plex_accounts.open()
                services.push_async_callback(plex_accounts.close)
            if isinstance(storage, RedisStorage):
                context.guards.share(lambda name, limit, seconds: RedisWindow(storage, name, limit, seconds))
            await standing.start()
            async with anyio.create_task_group() as background:
                background.start_soon(registry.run)
                background.start_soon(requests.run)
                background.start_soon(standing.run)
                yield
                background.cancel_scope.cancel()
            await registry.stop(settings.flush_timeout)

    def plex_origins() -> list[str]:
        return [settings.plex_tv_url] if context.plex_sign_in is not None else []

    middleware = [
        Middleware(RootPathMiddleware, root_path=settings.root_path),
        Middleware(SecurityHeadersMiddleware, extra_origins=plex_origins),
        Middleware(
            AllowedHostsMiddleware,
            allowed_hosts=settings.allowed_hosts,
            extra_names=[settings.host.lower(), *origin_hosts(settings.allowed_origins)],
        ),
        Middleware(WebSocketCapMiddleware, limit=settings.max_connections_per_address, key=context.guards.client),
    ]
    if settings.auth is not None:
        middleware.append(
            Middleware(BasicAuthMiddleware, user=settings.auth.user, password=settings.auth.password.get_secret_value())
        )
    middleware.append(Middleware(OriginMiddleware, allowed_origins=settings.allowed_origins))
    routes = [
        Route("/", http.client_page()),
        Route("/index.html", http.client_page()),
        Route("/health", http.health),
        Route("/metrics", http.metrics),
        Route("/manifest.webmanifest", http.manifest),
        Route("/api/poster/{provider_id}/{key:path}", http.poster),
        Route("/api/link/{provider_id}/{key:path}", http.link),
        Route("/api/trailer/{provider_id}/{key:path}", http.trailer),
        Route("/api/avatar/{provider_id}/{key:path}", http.avatar),
        Route("/api/qr", http.qr_code),
        WebSocketRoute("/api/ws", websocket_endpoint),
        Mount("/", http.client_files()),
    ]
    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan)
    app.state.context = context
    return app
