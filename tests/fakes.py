"""What the fake media servers and the provider tests share: request recording, faults and serving
over real HTTP on loopback, test images and certificates, and the helpers every provider test uses.

Each fake is a Starlette app served by real uvicorn in a thread, so the providers' httpx clients,
timeouts and TLS are exercised as against a real server.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import logging
import re
import socket
import struct
import subprocess
import threading
import time
import zlib
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs

import anyio
import pytest
import uvicorn
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, Router
from starlette.types import Receive, Scope, Send

from storage import Filter
from tests.services import require_tool


@dataclass(frozen=True)
class Received:
    """One request as the fake saw it."""

    path: str
    query: str
    headers: dict[str, str]
    method: str = "GET"

    def param(self, name: str) -> str | None:
        """A query parameter, or the header of the same name (Plex takes X-Plex-* either way)."""
        values = parse_qs(self.query).get(name)
        return values[0] if values else self.headers.get(name.lower())


@dataclass
class Fault:
    """Misbehaviour for requests whose path (after any prefix) starts with ``path``."""

    kind: Literal["slow", "malformed", "status"]
    path: str = "/"
    seconds: float = 0.0
    status: int = 500


# -- images -------------------------------------------------------------------------------------


def png(width: int, height: int, seed: str) -> bytes:
    """A real PNG of that size, grey level from ``seed``."""
    shade = hashlib.sha256(seed.encode()).digest()[0]
    rows = b"".join(b"\x00" + bytes([shade]) * width for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows, 1)) + chunk(b"IEND", b"")


def png_size(data: bytes) -> tuple[int, int]:
    width, height = struct.unpack(">II", data[16:24])
    return width, height


# -- videos (trailers) ---------------------------------------------------------------------------


def video_bytes(seed: str, size: int) -> bytes:
    """The bytes of a fake video file: different for every seed, and at every byte position."""
    digest = hashlib.sha256(seed.encode()).digest()
    return (digest * (size // len(digest) + 1))[:size]


def byte_range(request: Request, size: int) -> tuple[int, int] | Response | None:
    """The single byte range a Range header asks for, as (start, end exclusive); a 416 beyond the end."""
    asked = re.fullmatch(r"bytes=(\d*)-(\d*)", request.headers.get("range", ""))
    if asked is None:
        return None
    first, last = asked.groups()
    if not first:
        start, end = max(0, size - int(last or 0)), size
    else:
        start, end = int(first), min(size, int(last) + 1) if last else size
    if start >= size or start >= end:
        return Response(status_code=416, headers={"Content-Range": f"bytes */{size}"})
    return start, end


def video_response(request: Request, data: bytes, content_type: str) -> Response:
    """The whole video, or the part a Range header asks for (206), as media servers serve files."""
    found = byte_range(request, len(data))
    if isinstance(found, Response):
        return found
    headers = {"Accept-Ranges": "bytes"}
    if found is None:
        return Response(data, media_type=content_type, headers=headers)
    start, end = found
    headers["Content-Range"] = f"bytes {start}-{end - 1}/{len(data)}"
    return Response(data[start:end], status_code=206, media_type=content_type, headers=headers)


# -- the services -----------------------------------------------------------------------------------

# A route of a fake: (path, endpoint) answering GET, or (path, endpoint, method).
RouteSpec = tuple[str, Callable[[Request], Any]] | tuple[str, Callable[[Request], Any], str]


class FakeService(ABC):
    """Records requests, checks the token and applies the current fault, before its routes answer."""

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix
        self.received: list[Received] = []
        self.fault: Fault | None = None
        self._router = Router(
            routes=[
                Route(prefix + path, endpoint, methods=methods or None) for path, endpoint, *methods in self.routes()
            ]
        )

    @abstractmethod
    def routes(self) -> Sequence[RouteSpec]: ...

    def post_routes(self) -> list[tuple[str, Callable[[Request], Any]]]:
        """The routes that take POST (the others take GET)."""
        return []

    @abstractmethod
    def authorized(self, request: Request) -> bool: ...

    def requests_to(self, path: str) -> list[Received]:
        return [seen for seen in self.received if seen.path == self.prefix + path]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._router(scope, receive, send)
            return
        request = Request(scope, receive)
        self.received.append(Received(request.url.path, request.url.query, dict(request.headers), request.method))
        route_path = request.url.path.removeprefix(self.prefix)
        fault = self.fault
        response: Response | None = None
        if not self.authorized(request):
            response = Response("<html><body><h1>401 Unauthorized</h1></body></html>", 401, media_type="text/html")
        elif fault is not None and route_path.startswith(fault.path):
            if fault.kind == "slow":
                await asyncio.sleep(fault.seconds)
            elif fault.kind == "malformed":
                response = Response(b'{"MediaContainer": {"size": 1, "Direc', media_type="application/json")
            else:
                response = Response("Internal Server Error", fault.status, media_type="text/plain")
        if response is not None:
            await response(scope, receive, send)
        else:
            await self._router(scope, receive, send)


# -- serving ----------------------------------------------------------------------------------------


def bound_socket() -> socket.socket:
    """A loopback socket with a port but not yet listening: connections to it are refused until served."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock


def socket_url(sock: socket.socket) -> str:
    port: int = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def self_signed_certificate(directory: Path, common_name: str = "plex.direct") -> tuple[str, str]:
    """A certificate and key for ``common_name`` that no client trusts (the default: as Plex's on an IP address)."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            *(require_tool("openssl"), "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"),
            *("-nodes", "-days", "1", "-subj", f"/CN={common_name}", "-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    return str(cert), str(key)


@contextmanager
def serving(
    app: FakeService, sock: socket.socket | None = None, *, tls: tuple[str, str] | None = None
) -> Iterator[str]:
    """Serve ``app`` with uvicorn in a thread; yields its base URL (with the app's prefix).

    ``tls`` is a certificate and key file: then it is served over HTTPS.
    """
    sock = sock or bound_socket()
    certificate, key = tls or (None, None)
    config = uvicorn.Config(
        app,
        log_config=None,
        access_log=False,
        lifespan="off",
        ws="none",
        http="h11",
        timeout_graceful_shutdown=1,
        ssl_certfile=certificate,
        ssl_keyfile=key,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the fake server did not start")
            time.sleep(0.01)
        url = socket_url(sock) + app.prefix
        yield url.replace("http://", "https://") if tls else url
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


# -- for the provider tests ----------------------------------------------------------------------


def rule(key: str, operator: str, *values: str) -> Filter:
    return Filter(key=key, operator=operator, value=list(values))


async def eventually(condition: Callable[[], Awaitable[bool] | bool], within: float = 5.0) -> None:
    with anyio.fail_after(within):
        while True:
            met = condition()
            if await met if inspect.isawaitable(met) else met:
                return
            await anyio.sleep(0.02)


def log_lines(caplog: pytest.LogCaptureFixture, logger: str, least: int = logging.DEBUG) -> Callable[[int], list[str]]:
    """The messages of ``logger`` at exactly one level, capturing from ``least`` up."""
    caplog.set_level(least, logger=logger)

    def at(level: int) -> list[str]:
        return [record.getMessage() for record in caplog.records if record.name == logger and record.levelno == level]

    return at


def assert_clean(secrets: Sequence[str], *texts: object) -> None:
    for text in texts:
        for secret in secrets:
            assert secret not in str(text)


def no_secret_logged(*secrets: str) -> Callable[..., object]:
    """An autouse fixture for a test module: every log line of every test, httpx's and httpcore's
    included, is free of ``secrets``."""

    @pytest.fixture(autouse=True)
    def clean_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
        caplog.set_level(logging.DEBUG)
        yield
        # In teardown caplog.records and caplog.text hold the teardown's own records only.
        records = [*caplog.get_records("setup"), *caplog.get_records("call")]
        assert_clean(secrets, *(logging.Formatter().format(record) for record in records))

    return clean_logs
