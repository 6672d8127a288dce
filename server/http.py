"""The HTTP routes of protocol.md: the page, health, posters, links, trailers and the PWA manifest."""

from __future__ import annotations

import html
import ipaddress
import logging
import os
import re
from os import PathLike
from pathlib import Path
from urllib.parse import urlsplit

from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import request_response
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Scope

from server import __version__
from server.addresses import current_hosts
from server.context import AppContext
from server.i18n import negotiate
from server.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from server.offload import Busy
from server.providers import MediaProvider, ProviderError
from server.qr import share_link_problem
from storage.redis import RedisStorage

log = logging.getLogger("server.http")

# Installed from a wheel, the web client is inside the package; in a checkout it is beside it.
_PACKAGED_STATIC = Path(__file__).resolve().parent / "static"
STATIC_DIR = _PACKAGED_STATIC if _PACKAGED_STATIC.is_dir() else _PACKAGED_STATIC.parent.parent / "static"


def context_of(request: Request) -> AppContext:
    context: AppContext = request.app.state.context
    return context


def root_path_of(request: Request) -> str:
    """The configured root path, else the one a proxy announces (for proxies that strip it)."""
    root = request.scope.get("root_path") or context_of(request).settings.root_path
    if not root:
        root = request.headers.get("x-forwarded-prefix", "").strip()
    return root.rstrip("/")


async def index(request: Request) -> Response:
    language = negotiate(request.headers.get("accept-language", "en").split(",")[0].split(";")[0])
    page = (STATIC_DIR / "index.html").read_text("utf-8")
    page = page.replace("{{lang}}", html.escape(language)).replace("{{rootPath}}", html.escape(root_path_of(request)))
    return HTMLResponse(page.replace("{{version}}", __version__), headers={"Cache-Control": "no-cache"})


async def storage_healthy(context: AppContext) -> bool:
    """The backend answers (a round trip for Redis; a writable directory for files), and the rooms'
    changes can be stored (no room's last save failed; shared rooms' events can arrive)."""
    if not await context.storage.healthy():
        return False
    if not context.registry.healthy():
        log.warning("health: room changes cannot be stored or followed right now")
        return False
    return True


async def health(request: Request) -> Response:
    context = context_of(request)
    storage_ok = await storage_healthy(context)
    # Rooms that cannot be read (found so far: `moviematch storage check` reads them all) leave
    # every other room working: "degraded", still 200, so a load balancer keeps the process.
    unreadable = len(context.storage.unreadable_rooms())
    providers = {provider_id: await one.healthy() for provider_id, one in context.provider.providers.items()}
    # A media server that does not answer is every process's problem alike, and rooms already dealt
    # go on: "degraded", still 200, so a load balancer keeps the process. Storage is the process's.
    healthy = storage_ok
    storage = "unavailable" if not storage_ok else "degraded" if unreadable else "ok"
    degraded = unreadable or not all(providers.values())
    body: dict[str, object] = {
        "status": "unavailable" if not healthy else "degraded" if degraded else "ok",
        "storage": storage,
        "providers": {provider_id: "ok" if ok else "unavailable" for provider_id, ok in providers.items()},
    }
    if unreadable:
        body["unreadableRooms"] = unreadable
    # With Sentinel: which primary this process uses, and how many failovers it followed.
    failover = context.storage.failover_status() if isinstance(context.storage, RedisStorage) else None
    if failover is not None:
        body["redis"] = failover
    return JSONResponse(body, status_code=200 if healthy else 503)


def client_of(request: Request) -> str:
    """The client's limits key (its address, as a trusted proxy reports it; an IPv6 one's network)."""
    return context_of(request).guards.client(request.client.host) if request.client else "unknown"


def metrics_allowed(request: Request) -> bool:
    """With Basic auth on, whoever passed it; otherwise anyone when ``metrics`` is on, else only
    ``metrics_allowed_ips`` (error counts tell an attacker how its password guessing goes)."""
    settings = context_of(request).settings
    if settings.auth is not None or settings.metrics:
        return True
    try:
        address = ipaddress.ip_address(request.client.host if request.client else "")
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in ipaddress.ip_network(network) for network in settings.metrics_allowed_ips)


async def metrics(request: Request) -> Response:
    if not metrics_allowed(request):
        return Response(
            "metrics are served to METRICS_ALLOWED_IPS only; set METRICS=true (or Basic auth) to open them",
            status_code=403,
        )
    context = context_of(request)
    text = context.metrics.render(
        connections=len(context.connections),
        rooms=len(context.registry.rooms),
        storage_up=await storage_healthy(context),
    )
    return Response(text, headers={"Content-Type": METRICS_CONTENT_TYPE, "Cache-Control": "no-store"})


def _provider(request: Request) -> MediaProvider:
    """The one source a poster or link URL names (``api/poster/<provider id>/...``)."""
    return context_of(request).provider.provider(request.path_params["provider_id"])


async def poster(request: Request) -> Response:
    try:
        width = int(request.query_params.get("width", "600"))
    except ValueError:
        return Response("width must be a number", status_code=400)
    try:
        image = await _provider(request).poster(request.path_params["key"], width)
    except ProviderError as exc:
        return Response(str(exc), status_code=exc.status)
    return StreamingResponse(image.body, media_type=image.content_type, headers=image.headers)


# One byte range (what video elements ask for); anything else is ignored, and the whole file sent.
_BYTE_RANGE = re.compile(r"bytes=(?:[0-9]{1,15}-[0-9]{0,15}|-[0-9]{1,15})")


async def trailer(request: Request) -> Response:
    """A trailer, streamed through (the media server's token stays here), with the browser's Range
    passed on so that a video element can seek; or a catalogue's file, ranges served here."""
    asked = request.headers.get("range", "").strip()
    try:
        found = await _provider(request).trailer(
            request.path_params["key"], asked if _BYTE_RANGE.fullmatch(asked) else None
        )
    except ProviderError as exc:
        return Response(str(exc), status_code=exc.status)
    if isinstance(found, Path):
        return FileResponse(found, headers={"Cache-Control": "private, max-age=3600"})
    return StreamingResponse(found.body, status_code=found.status, media_type=found.content_type, headers=found.headers)


async def avatar(request: Request) -> Response:
    """The picture of a media server's user (``getPeople``, a Jellyfin sign-in), proxied like posters."""
    try:
        image = await _provider(request).avatar(request.path_params["key"])
    except ProviderError as exc:
        return Response(str(exc), status_code=exc.status)
    return StreamingResponse(image.body, media_type=image.content_type, headers=image.headers)


async def link(request: Request) -> Response:
    try:
        target = await _provider(request).link(request.path_params["key"], request.headers.get("user-agent", ""))
    except ProviderError as exc:
        return Response(str(exc), status_code=exc.status)
    return RedirectResponse(target, status_code=302)


class ClientFiles(StaticFiles):
    """The web client's files, revalidated on every load (ETag / Last-Modified make that a 304):
    module imports carry no version, so a cached old module would outlive an upgrade."""

    def file_response(
        self, full_path: PathLike[str] | str, stat_result: os.stat_result, scope: Scope, status_code: int = 200
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers["Cache-Control"] = "no-cache"
        return response


def compressed(app: ASGIApp) -> ASGIApp:
    """Gzip for the page, its scripts and styles (about a quarter of their size on a phone's
    connection); posters and trailers, compressed already, are served elsewhere."""
    return GZipMiddleware(app, minimum_size=1024)


def client_files() -> ASGIApp:
    return compressed(ClientFiles(directory=STATIC_DIR))


def client_page() -> ASGIApp:
    return compressed(request_response(index))


def lan_hosts(context: AppContext, host: str) -> list[str]:
    """The server's LAN addresses at the port of ``host``: what a page opened at localhost puts in
    its share links (``config.lanAddresses``)."""
    try:
        port = urlsplit(f"//{host}").port
    except ValueError:
        return []
    suffix = f":{port}" if port else ""
    return [f"[{lan}]{suffix}" if ":" in lan else f"{lan}{suffix}" for lan in current_hosts(context.settings.host)]


async def qr_code(request: Request) -> Response:
    """A QR code (SVG) of a share link of this server (``server.qr``), made here so the page needs
    nothing from the internet; drawn in a worker process, and kept."""
    context = context_of(request)
    text = request.query_params.get("text", "")
    host = request.headers.get("host", "")
    problem = share_link_problem(
        text,
        hosts=[host, *request.headers.get("x-forwarded-host", "").split(","), *lan_hosts(context, host)],
        allowed_origins=context.settings.allowed_origins,
        root_path=root_path_of(request),
        public_url=context.settings.public_url,
        max_name_length=context.settings.max_name_length,
    )
    if problem is not None:
        return Response(problem, status_code=400)
    try:
        image = await context.qr_codes.svg(client_of(request), text)
    except Busy as exc:
        return Response(f"the server is busy ({exc}); try again", status_code=503, headers={"Retry-After": "1"})
    return Response(image, media_type="image/svg+xml", headers={"Cache-Control": "public, max-age=86400"})


async def manifest(request: Request) -> Response:
    root = root_path_of(request)
    body = {
        "name": "MovieMatch",
        "short_name": "MovieMatch",
        "description": "Swipe together and find a film everyone wants to watch.",
        "start_url": f"{root}/",
        "scope": f"{root}/",
        "display": "standalone",
        "background_color": "#111318",
        "theme_color": "#111318",
        "id": f"{root}/",
        "icons": [
            {"src": f"{root}/icons/icon.svg", "sizes": "any", "type": "image/svg+xml", "purpose": "any"},
            {"src": f"{root}/icons/icon-192.png", "sizes": "192x192", "type": "image/png", "purpose": "any"},
            {"src": f"{root}/icons/icon-512.png", "sizes": "512x512", "type": "image/png", "purpose": "any"},
            {
                "src": f"{root}/icons/icon-maskable-512.png",
                "sizes": "512x512",
                "type": "image/png",
                "purpose": "maskable",
            },
        ],
    }
    return JSONResponse(body, media_type="application/manifest+json")
