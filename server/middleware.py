"""ASGI middleware for HTTP and WebSocket alike: sub-path mounting, HTTP Basic auth, and the
cap on WebSockets per client address."""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
from collections import Counter
from collections.abc import Callable

from starlette.types import ASGIApp, Receive, Scope, Send

from server.limits import Occurrences
from server.security import deny

log = logging.getLogger("server.middleware")

# Reachable without credentials: load balancers probe health, browsers fetch the manifest bare.
PUBLIC_PATHS = frozenset({"/health", "/manifest.webmanifest"})


class RootPathMiddleware:
    """Serves the app under ``root_path`` whether or not a reverse proxy strips the prefix."""

    def __init__(self, app: ASGIApp, root_path: str) -> None:
        self.app = app
        self.root_path = root_path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.root_path and scope["path"] == self.root_path:
            # The page's relative URLs (api/ws, posters, scripts) resolve only below "/moviematch/".
            query = scope.get("query_string", b"")
            location = self.root_path.encode() + b"/" + (b"?" + query if query else b"")
            await send({"type": "http.response.start", "status": 308, "headers": [(b"location", location)]})
            await send({"type": "http.response.body", "body": b""})
            return
        if scope["type"] in ("http", "websocket") and self.root_path:
            path: str = scope["path"]
            if path.startswith(self.root_path + "/"):
                scope = {**scope, "path": path[len(self.root_path) :] or "/", "root_path": self.root_path}
        await self.app(scope, receive, send)


class BasicAuthMiddleware:
    """One check for pages, posters, links and the WebSocket upgrade, compared in constant time."""

    def __init__(self, app: ASGIApp, user: str, password: str) -> None:
        self.app = app
        self.expected = f"{user}:{password}".encode()

    def _authorized(self, scope: Scope) -> bool:
        for name, value in scope.get("headers", []):
            if name == b"authorization":
                scheme, _, encoded = value.partition(b" ")
                if scheme.lower() != b"basic":
                    return False
                try:
                    presented = base64.b64decode(encoded.strip(), validate=True)
                except (binascii.Error, ValueError):
                    return False
                return hmac.compare_digest(presented, self.expected)
        return False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or scope["path"] in PUBLIC_PATHS or self._authorized(scope):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})  # before accept: the upgrade gets 403
            return
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"www-authenticate", b'Basic realm="MovieMatch", charset="UTF-8"'),
                    (b"content-type", b"text/plain; charset=utf-8"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": b"Authentication required"})


class WebSocketCapMiddleware:
    """At most ``limit`` WebSockets at once per client address (``key`` of the address uvicorn
    reports: a trusted proxy's X-Forwarded-For, an IPv6 client's network); more are refused with
    429 before they are accepted. Clients that connect directly are capped by the listener too
    (``server.listener``), which counts every connection; behind a proxy this is the only cap."""

    def __init__(self, app: ASGIApp, limit: int, key: Callable[[str], str]) -> None:
        self.app = app
        self.limit = limit
        self.key = key
        self.open: Counter[str] = Counter()
        self._refusals = Occurrences(60.0)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        key = self.key(client[0]) if client else "unknown"
        if self.open[key] >= self.limit:
            if (count := self._refusals.occurred()) is not None:
                log.warning(
                    "refused %d WebSocket(s) over MAX_CONNECTIONS_PER_ADDRESS (%d), lately from %s",
                    count,
                    self.limit,
                    key,
                )
            await deny(scope, receive, send, 429, "too many connections from your address", **{"Retry-After": "10"})
            return
        self.open[key] += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.open[key] -= 1
            if not self.open[key]:
                del self.open[key]
