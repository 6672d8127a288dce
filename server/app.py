"""The app factory: wires settings, storage, media and rooms together, and owns their lifetime."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import anyio
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket

from server import http
from server.config import Settings
from server.connection import Connection
from server.context import AppContext
from server.middleware import BasicAuthMiddleware, RootPathMiddleware
from server.providers import MediaProvider
from server.providers.demo import DemoProvider
from server.rooms.registry import RoomRegistry
from storage import Storage

log = logging.getLogger("server.app")


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


async def websocket_endpoint(websocket: WebSocket) -> None:
    await Connection(websocket, websocket.app.state.context).serve()


def create_app(
    settings: Settings,
    *,
    storage: Storage | None = None,
    provider: MediaProvider | None = None,
    now_ms: Callable[[], int] = wall_clock_ms,
    rng: random.Random | None = None,
) -> Starlette:
    """Build the app; nothing is opened until the lifespan starts (so tests can build many)."""
    storage = storage or settings.storage.create()
    provider = provider or DemoProvider()
    registry = RoomRegistry(
        storage,
        provider,
        save_delay=settings.save_delay,
        save_max_wait=settings.save_max_wait,
        idle_timeout=settings.room_idle_timeout,
        now_ms=now_ms,
        rng=rng,
    )
    context = AppContext(settings=settings, storage=storage, provider=provider, registry=registry)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with storage:
            await provider.open()
            try:
                async with anyio.create_task_group() as background:
                    background.start_soon(registry.saver.run)
                    background.start_soon(registry.run_eviction)
                    yield
                    background.cancel_scope.cancel()
                # uvicorn runs this only after every connection ended, so no rating can race the flush.
                try:
                    with anyio.fail_after(settings.flush_timeout, shield=True):
                        unsaved = await registry.saver.flush()
                except TimeoutError:
                    log.error(
                        "shutdown: saving rooms took over %.1f s; unsaved changes are lost", settings.flush_timeout
                    )
                else:
                    for key in unsaved:
                        log.error("shutdown: room %r could not be saved", key)
            finally:
                await provider.close()

    middleware = [Middleware(RootPathMiddleware, root_path=settings.root_path)]
    if settings.auth is not None:
        middleware.append(
            Middleware(BasicAuthMiddleware, user=settings.auth.user, password=settings.auth.password.get_secret_value())
        )
    routes = [
        Route("/", http.index),
        Route("/health", http.health),
        Route("/manifest.webmanifest", http.manifest),
        Route("/api/poster/{provider_id}/{key:path}", http.poster),
        Route("/api/link/{provider_id}/{key:path}", http.link),
        Route("/api/qr", http.qr_code),
        WebSocketRoute("/api/ws", websocket_endpoint),
        Mount("/", StaticFiles(directory=http.STATIC_DIR)),
    ]
    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan)
    app.state.context = context
    return app
