"""The HTTP routes of protocol.md: the page, health, posters, links and the PWA manifest."""

from __future__ import annotations

import html
import io
import logging
from pathlib import Path

import segno
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse

from server import __version__
from server.context import AppContext
from server.i18n import negotiate
from server.providers import ProviderError
from storage import StorageError

log = logging.getLogger("server.http")

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"


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


async def health(request: Request) -> Response:
    context = context_of(request)
    try:
        await context.storage.has_room("health check")
        storage_ok = True
    except StorageError as exc:
        log.warning("health: storage unavailable: %s", exc)
        storage_ok = False
    provider_ok = await context.provider.healthy()
    healthy = storage_ok and provider_ok
    body = {
        "status": "ok" if healthy else "unavailable",
        "storage": "ok" if storage_ok else "unavailable",
        "providers": {context.provider.id: "ok" if provider_ok else "unavailable"},
    }
    return JSONResponse(body, status_code=200 if healthy else 503)


def _provider(request: Request) -> AppContext:
    context = context_of(request)
    if request.path_params["provider_id"] != context.provider.id:
        raise ProviderError("no such media provider", status=404)
    return context


async def poster(request: Request) -> Response:
    try:
        width = int(request.query_params.get("width", "600"))
    except ValueError:
        return Response("width must be a number", status_code=400)
    try:
        image = await _provider(request).provider.poster(request.path_params["key"], width)
    except ProviderError as exc:
        return Response(str(exc), status_code=exc.status)
    return StreamingResponse(image.body, media_type=image.content_type, headers=image.headers)


async def link(request: Request) -> Response:
    try:
        target = await _provider(request).provider.link(
            request.path_params["key"], request.headers.get("user-agent", "")
        )
    except ProviderError as exc:
        return Response(str(exc), status_code=exc.status)
    return RedirectResponse(target, status_code=302)


QR_TEXT_LIMIT = 1000


async def qr_code(request: Request) -> Response:
    """A QR code (SVG) of a share link, made here so the page needs nothing from the internet."""
    text = request.query_params.get("text", "")
    if not text or len(text) > QR_TEXT_LIMIT:
        return Response(f"text must be 1-{QR_TEXT_LIMIT} characters", status_code=400)
    image = io.BytesIO()
    segno.make(text, error="m").save(image, kind="svg", scale=8, border=2, xmldecl=False, svgns=True)
    return Response(image.getvalue(), media_type="image/svg+xml", headers={"Cache-Control": "public, max-age=86400"})


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
        "icons": [
            {"src": f"{root}/icons/icon.svg", "sizes": "any", "type": "image/svg+xml", "purpose": "any maskable"},
        ],
    }
    return JSONResponse(body, media_type="application/manifest+json")
