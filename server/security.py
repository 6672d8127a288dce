"""Browser-facing defences: the WebSocket Origin check and the security headers of every response."""

from __future__ import annotations

import base64
import logging
import re
from collections.abc import Callable, Iterable
from urllib.parse import quote, urlsplit

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.config import mask_secrets

log = logging.getLogger("server.security")

_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def _host_port(host: str, default_port: int | None) -> tuple[str, int | None]:
    """``example.com:443`` -> (``example.com``, 443); a missing port is the scheme's default."""
    parts = urlsplit(f"//{host.strip().lower()}")
    try:
        port = parts.port
    except ValueError:  # not a port: nothing can match it
        return "", None
    return parts.hostname or "", port if port is not None else default_port


def origin_allowed(origin: str, hosts: Iterable[str], allowed_origins: Iterable[str]) -> bool:
    """Whether a browser page from ``origin`` may open the socket: a listed origin, or one of ``hosts``
    (the Host header and a proxy's X-Forwarded-Host), which is the page this server itself served."""
    origin = origin.strip().rstrip("/").lower()
    if origin in allowed_origins:
        return True
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return False  # "null" (sandboxed frames, file: pages) and anything odd
    # The scheme is not compared: behind a TLS proxy the server sees http, the page https. A page
    # of another scheme on the very same host and port is the same server anyway.
    wanted = _host_port(parts.netloc, _DEFAULT_PORTS[parts.scheme])
    return any(_host_port(host, wanted[1]) == wanted for host in hosts if host)


class OriginMiddleware:
    """Refuses WebSocket upgrades from other sites' pages (cross-site WebSocket hijacking) with 403.

    A request without Origin comes from a non-browser client, which holds no ambient credentials
    of a victim, so it is let through (Basic auth, when configured, still applies). X-Forwarded-Host
    is trusted as an allowed host: a browser cannot set that header on a cross-site handshake.
    """

    def __init__(self, app: ASGIApp, allowed_origins: Iterable[str]) -> None:
        self.app = app
        self.allowed_origins = frozenset(allowed_origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            headers = Headers(scope=scope)
            origin = headers.get("origin")
            hosts = [headers.get("host", ""), *headers.get("x-forwarded-host", "").split(",")]
            if origin is not None and not origin_allowed(origin, hosts, self.allowed_origins):
                log.warning("refused a WebSocket from origin %r (host %r)", origin[:200], hosts[0][:200])
                await send({"type": "websocket.close", "code": 1008})  # before accept: the upgrade gets 403
                return
        await self.app(scope, receive, send)


def content_security_policy(extra_origins: Iterable[str] = ()) -> str:
    """No inline script or style, nothing from elsewhere except ``extra_origins`` (plex.tv when Plex
    sign-in is on: the browser calls its PIN API and shows Plex avatars)."""
    extra = "".join(f" {origin}" for origin in extra_origins)
    return "; ".join(
        (
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            f"img-src 'self' data: blob:{extra}",
            # Trailers are streamed by this server; those on other sites open as links.
            "media-src 'self'",
            f"connect-src 'self' ws: wss:{extra}",
            "frame-ancestors 'none'",
            "base-uri 'self'",
            "form-action 'self'",
            "object-src 'none'",
        )
    )


class SecurityHeadersMiddleware:
    """Adds the security headers to every HTTP response (a header a route already set wins)."""

    def __init__(self, app: ASGIApp, extra_origins: Callable[[], Iterable[str]]) -> None:
        self.app = app
        # Asked per response: Plex sign-in may be wired after the middleware is built.
        self.extra_origins = extra_origins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in (
                    ("content-security-policy", content_security_policy(self.extra_origins())),
                    ("x-content-type-options", "nosniff"),
                    ("referrer-policy", "no-referrer"),
                    ("x-frame-options", "DENY"),
                ):
                    if name not in headers:
                        headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)


# Header lines as HTTP libraries log them at DEBUG (websockets logs every handshake header).
_SECRET_HEADER = re.compile(r"(?im)^([<>]?\s*(?:authorization|proxy-authorization|cookie|x-plex-token)\s*:\s*).+$")


class RedactSecrets(logging.Filter):
    """Removes the configured secrets (in raw, URL-encoded and Basic-auth forms), credential headers
    and secret-looking URL query values (a Jellyfin Quick Connect ``Secret=``, which that API takes
    in the query, and httpx logs every request URL) from every log record, whoever logs it: a
    library at DEBUG quotes what it sees."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        forms = set()
        for secret in secrets:
            if secret:
                forms |= {secret, quote(secret, safe=""), base64.b64encode(secret.encode()).decode()}
        # Longest first, so a secret that contains another is replaced whole.
        self.forms = sorted(forms, key=len, reverse=True)

    def _clean(self, text: str) -> str:
        for form in self.forms:
            text = text.replace(form, "***")
        return mask_secrets(_SECRET_HEADER.sub(r"\1***", text))

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = self._clean(message)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self._clean(record.exc_text)
        return True
