"""Browser-facing defences (the Host allow-list, the WebSocket Origin check, the security headers
of every response) and the redaction of secrets from every log record."""

from __future__ import annotations

import base64
import dataclasses
import ipaddress
import logging
import re
import socket
from collections.abc import Callable, Iterable
from urllib.parse import quote, urlsplit

from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from websockets.frames import Frame, Opcode

from server.config import mask_secrets
from server.limits import Occurrences

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


# Names only the local network can resolve: no public DNS answers for them, so no attacker's
# page can be served under one (RFC 6761 localhost, RFC 6762 local, RFC 8375 home.arpa, ICANN's
# internal; lan is what many home routers hand out).
LOCAL_SUFFIXES = ("localhost", "local", "lan", "home.arpa", "internal")
_DNS_LABEL = re.compile(r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?")


def origin_hosts(origins: Iterable[str]) -> list[str]:
    """The host names of origins (``https://movies.example.com`` -> ``movies.example.com``)."""
    return [_host_port(urlsplit(origin).netloc, None)[0] for origin in origins]


def host_allowed(host: str, allowed_hosts: Iterable[str], own_names: Iterable[str] = ()) -> bool:
    """Whether a request for ``host`` (a Host header: name or address, optional port) is for this
    server, not a DNS rebinding attacker's domain that was made to resolve to it.

    Always allowed: IP addresses (a rebinding needs a name), names without a dot or under
    ``LOCAL_SUFFIXES``, and ``own_names`` (this machine's). Other names must match
    ``allowed_hosts``: ``name``, ``*.name`` (its subdomains) or ``*`` (anything).
    """
    name = _host_port(host, None)[0].rstrip(".")
    if not name:
        return False
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        pass
    else:
        return True
    labels = name.split(".")
    if len(name) > 253 or not all(_DNS_LABEL.fullmatch(label) for label in labels):
        return False
    if len(labels) == 1 or name in own_names:
        return True
    if any(name == suffix or name.endswith("." + suffix) for suffix in LOCAL_SUFFIXES):
        return True
    for pattern in allowed_hosts:
        if pattern == "*" or pattern == name or (pattern.startswith("*.") and name.endswith(pattern[1:])):
            return True
    return False


class AllowedHostsMiddleware:
    """Refuses requests and WebSocket upgrades for other hosts (``host_allowed``) with 400.

    A request without Host (HTTP/1.0, some probes) is no browser's, so it is let through.
    """

    def __init__(self, app: ASGIApp, allowed_hosts: Iterable[str], extra_names: Iterable[str] = ()) -> None:
        self.app = app
        self.allowed_hosts = tuple(allowed_hosts)
        self.own_names = frozenset({socket.gethostname().lower(), *extra_names})
        self._refusals = Occurrences(60.0)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            host = Headers(scope=scope).get("host")
            if host is not None and not host_allowed(host, self.allowed_hosts, self.own_names):
                if (count := self._refusals.occurred()) is not None:
                    log.warning(
                        "refused %d request(s) for a host that is not this server's, lately %r: if it is yours, "
                        "add it to ALLOWED_HOSTS",
                        count,
                        host[:200],
                    )
                await deny(scope, receive, send, 400, "Invalid host header")
                return
        await self.app(scope, receive, send)


async def deny(scope: Scope, receive: Receive, send: Send, status: int, text: str, **headers: str) -> None:
    """An HTTP error response, for a WebSocket upgrade too when the server can send one (uvicorn
    can); otherwise the upgrade is closed before it is accepted, which answers 403."""
    if scope["type"] == "websocket" and "websocket.http.response" not in scope.get("extensions", {}):
        await send({"type": "websocket.close", "code": 1008})
        return
    await PlainTextResponse(text, status_code=status, headers=headers)(scope, receive, send)


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

# Message fields that carry a credential (protocol.md: login, joinRoom, createRoom and their
# replies). Their string values are redacted wherever a field is spelled as in JSON
# ("password": "…"), a Python dict ('password': '…') or a repr (password='…'), escapes inside the
# value included, and up to the end of the text when a log line cut the value short.
SECRET_FIELDS = ("password", "plexToken", "memberToken", "token", "authToken", "accessToken", "apiKey", "api_key")
_FIELD_NAMES = "|".join(SECRET_FIELDS)
_SECRET_FIELD = re.compile(
    rf"""(?P<key>(?P<q>["']?)\b(?:{_FIELD_NAMES})\b(?P=q)\s*[:=]\s*)(?P<v>["'])(?:(?!(?P=v))[^\\]|\\.)*(?:(?P=v)|\\?$)""",
    re.IGNORECASE,
)


def redact_fields(text: str) -> str:
    """``text`` with the string value of every ``SECRET_FIELDS`` field in it replaced by ``***``."""
    return _SECRET_FIELD.sub(lambda match: f"{match['key']}{match['v']}***{match['v']}", text)


def _redacted_frame(frame: Frame) -> Frame:
    """A WebSocket frame as it may be logged: websockets logs a frame object and shortens its text
    to the first and last few dozen characters when the line is made, so the fields are redacted
    here, in the whole text, before the shortening could cut a field name off its value."""
    if frame.opcode not in (Opcode.TEXT, Opcode.CONT, Opcode.BINARY):
        return frame
    text = bytes(frame.data).decode("utf-8", "surrogateescape")
    cleaned = redact_fields(text)
    return frame if cleaned == text else dataclasses.replace(frame, data=cleaned.encode("utf-8", "surrogateescape"))


# Of a request's path and query, what an access log line keeps: a client can send 8 KB of URL
# per request, and a log growing by that for each would be the cheapest way to fill a disk.
ACCESS_PATH_SHOWN = 200


class ShortAccessLines(logging.Filter):
    """Cuts the path of uvicorn's access lines (``uvicorn.access``: client, method, path, version,
    status) to ``ACCESS_PATH_SHOWN`` characters."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if record.name == "uvicorn.access" and isinstance(args, tuple) and len(args) == 5:
            path = args[2]
            if isinstance(path, str) and len(path) > ACCESS_PATH_SHOWN:
                shown = f"{path[:ACCESS_PATH_SHOWN]}… ({len(path)} characters)"
                record.args = (*args[:2], shown, *args[3:])
        return True


class RedactSecrets(logging.Filter):
    """Removes secrets from every log record, whoever logs it (a library at DEBUG quotes what it
    sees): the configured ones (in raw, URL-encoded and Basic-auth forms), credential headers,
    URL passwords and secret-looking query values, and the credential fields of messages and
    WebSocket frames (``SECRET_FIELDS``)."""

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
        return redact_fields(mask_secrets(_SECRET_HEADER.sub(r"\1***", text)))

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(isinstance(arg, Frame) for arg in record.args):
            record.args = tuple(_redacted_frame(arg) if isinstance(arg, Frame) else arg for arg in record.args)
        message = record.getMessage()
        cleaned = self._clean(message)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self._clean(record.exc_text)
        return True
