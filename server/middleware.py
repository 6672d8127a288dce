"""ASGI middleware for HTTP and WebSocket alike: sub-path mounting and HTTP Basic auth."""

from __future__ import annotations

import base64
import binascii
import hmac

from starlette.types import ASGIApp, Receive, Scope, Send

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
