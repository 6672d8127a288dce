"""What the terminal shows at startup: where to open the app (with a QR code for phones), and, when
the server cannot start for a reason the operator can fix, one line saying what and which setting."""

from __future__ import annotations

import errno
import io
import logging
import socket
from collections.abc import Iterable

import ifaddr
import segno
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.addresses import local_url, reachable_hosts, url
from server.config import ConfigError, Settings, mask_secrets
from storage import StorageError

_PORT_SETTING = "PORT (port: in config.yaml, or --port)"
_HOST_SETTING = "HOST (host: in config.yaml, or --host)"
_STORAGE_SETTING = "STORAGE_URL (storage: url: in config.yaml)"
# uvicorn's own line when the lifespan startup failed; the problem's line says it better.
_UVICORN_STARTUP_FAILED = "Application startup failed. Exiting."


class StartupProblem(Exception):
    """The server cannot start; the message is one line: what happened, and which setting to change."""


def listen_problem(exc: OSError, host: str, port: int) -> StartupProblem:
    if exc.errno == errno.EADDRINUSE:
        return StartupProblem(
            f"port {port} is already in use on {host} (is MovieMatch running already?). "
            f"Stop that program, or choose another port with {_PORT_SETTING}."
        )
    if exc.errno == errno.EACCES:
        return StartupProblem(
            f"not allowed to listen on port {port} (ports below 1024 need privileges). "
            f"Choose another port with {_PORT_SETTING}."
        )
    if exc.errno == errno.EADDRNOTAVAIL or isinstance(exc, socket.gaierror):
        return StartupProblem(
            f"cannot listen on {host}: it is not an address of this machine. "
            f"Set {_HOST_SETTING}, e.g. 0.0.0.0 for every network."
        )
    reason = exc.strerror or str(exc)
    return StartupProblem(f"cannot listen on {host} port {port}: {reason}. Check {_HOST_SETTING} and {_PORT_SETTING}.")


async def check_port(host: str, port: int) -> None:
    """Bind the addresses uvicorn will listen on (with its flags) and let go, so that a taken port
    is reported before the room storage is opened; port 0 is always free. Bound, never listening:
    nobody can connect meanwhile and take this for the server being up."""
    if port == 0:
        return
    try:
        for family, kind, proto, _, address in socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        ):
            with socket.socket(family, kind, proto) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                probe.bind(address)
    except OSError as exc:
        raise listen_problem(exc, host, port) from exc


def storage_problem(exc: StorageError, settings: Settings) -> StartupProblem:
    if isinstance(exc.__cause__, BlockingIOError):  # the directory's lock is held
        return StartupProblem(
            f"{exc.reason}. Stop that process, or give this one another directory with {_STORAGE_SETTING}."
        )
    text = mask_secrets(f"cannot open the room storage {exc.target}: {exc.reason}", settings.storage_url())
    return StartupProblem(f"{text}. Check {_STORAGE_SETTING}.")


class StartupErrors:
    """Wraps the app: a storage that cannot be opened fails the lifespan startup with ``problem``
    set, and a configuration that proves invalid once the media can be asked (a standing room's
    library) with ``invalid`` set, instead of uvicorn's traceback (other failures pass through as
    they are)."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self.problem: StartupProblem | None = None
        self.invalid: ConfigError | None = None

    @staticmethod
    def _said_better(record: logging.LogRecord) -> bool:
        return record.getMessage() != _UVICORN_STARTUP_FAILED

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        failed: Message | None = None

        async def hold_failure(message: Message) -> None:
            nonlocal failed
            if message["type"] == "lifespan.startup.failed":  # its text is a traceback
                failed = message
            else:
                await send(message)

        try:
            await self.app(scope, receive, hold_failure)
        except (StorageError, ConfigError) as exc:
            if isinstance(exc, ConfigError):
                self.invalid = exc
            else:
                self.problem = storage_problem(exc, self.settings)
            logging.getLogger("uvicorn.error").addFilter(self._said_better)
            await send({"type": "lifespan.startup.failed", "message": ""})
        except BaseException:
            if failed is not None:
                await send(failed)
            raise


def banner(settings: Settings, port: int, adapters: Iterable[ifaddr.Adapter] | None = None) -> str:
    """Where to open the app: this computer, the other devices of its networks (from the machine's
    interfaces, or ``adapters``) or ``PUBLIC_URL``, and a QR code of the address to share."""
    scheme = "https" if settings.tls else "http"
    lan = [url(scheme, host, port, settings.root_path) for host in reachable_hosts(settings.host, adapters)]
    here = local_url(scheme, settings.host, port, settings.root_path)
    lines = ["MovieMatch is running.", f"  On this computer:   {here}"]
    lines += [f"  On your network:    {address}" for address in lan]
    share = settings.public_url or (lan[0] if lan else None)
    if settings.public_url:
        lines.append(f"  Public address:     {settings.public_url}")
    if share is None:
        lines.append(
            f"  Only this computer can open it (HOST={settings.host}): set HOST=0.0.0.0 to let phones in, "
            "or PUBLIC_URL behind a reverse proxy."
        )
        return "\n".join(lines)
    lines += ["", f"Scan with a phone to open {share}", qr_code(share)]
    return "\n".join(lines)


def qr_code(text: str) -> str:
    """A QR code in text: two modules per character, light modules drawn (for dark terminals)."""
    out = io.StringIO()
    segno.make(text, error="m").terminal(out=out, compact=True, border=2)
    return out.getvalue().rstrip("\n")
