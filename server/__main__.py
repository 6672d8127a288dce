"""``moviematch`` and ``python -m server``: load the settings, set up logging, serve."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import socket
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, NoReturn

import uvicorn
from uvicorn.config import STARTUP_FAILURE

from server import __version__, collector, commands
from server.config import ConfigError, Settings, load_settings
from server.listener import ServerConfig, gate_for, trusted_networks
from server.security import RedactSecrets, ShortAccessLines
from server.startup import StartupErrors, StartupProblem, banner, check_port

if TYPE_CHECKING:
    from server.context import AppContext
    from server.providers import MediaProvider

TEXT_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# Every attribute a bare LogRecord has; the rest of a record's attributes came from `extra=`.
# uvicorn's color_message is its ANSI-coloured copy of the message: noise in a JSON line.
_RECORD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "color_message"}


def _extra_fields(record: logging.LogRecord) -> dict[str, object]:
    """What the call passed in ``extra=`` (room, user ...), unset ones left out."""
    return {key: value for key, value in vars(record).items() if key not in _RECORD_ATTRIBUTES and value is not None}


class TextFormatter(logging.Formatter):
    """The plain format, followed by the ``extra`` fields as ``key='value'`` (repr: names are
    user-chosen, and a newline in one must not forge a log line)."""

    def __init__(self) -> None:
        super().__init__(TEXT_LOG_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = " ".join(f"{key}={value!r}" for key, value in _extra_fields(record).items())
        return f"{line} [{fields}]" if fields else line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and any ``extra`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(_extra_fields(record))
        if record.exc_info:
            entry["exception"] = record.exc_text or self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="moviematch", description="Pick a movie together: the room server.")
    parser.add_argument(
        "--config",
        metavar="PATH",
        default=os.environ.get("CONFIG_PATH") or None,
        help="YAML config file (env CONFIG_PATH; default: ./config.yaml when present)",
    )
    parser.add_argument("--host", help="address to listen on (overrides HOST and the config file)")
    parser.add_argument("--port", type=int, help="port to listen on, 0 for any free port (overrides PORT)")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser.parse_args(argv)


def configure_logging(settings: Settings) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if settings.log_format == "json" else TextFormatter())
    # On the handler, so records of every logger (libraries included) pass through it.
    handler.addFilter(ShortAccessLines())
    handler.addFilter(RedactSecrets(settings.secrets()))
    logging.basicConfig(level=settings.log_level, handlers=[handler], force=True)


class GoingAwayServer(uvicorn.Server):
    """Says where to open the app once it listens (or, in one line, why it cannot start), and closes
    WebSockets with 1001 (going away) before uvicorn's own shutdown, which uses 1012."""

    def __init__(self, config: uvicorn.Config, context: AppContext, settings: Settings, errors: StartupErrors) -> None:
        super().__init__(config)
        self.context = context
        self.settings = settings
        self.errors = errors

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        if sockets is None:
            await check_port(self.settings.host, self.settings.port)
        # uvicorn binds the port itself: a socket bound beforehand (for port 0's real number) would
        # lose TCP_NODELAY on its connections (asyncio sets it only for sockets made as IPPROTO_TCP),
        # and Nagle's algorithm then holds back the small frames every rating sends.
        await super().startup(sockets)
        if self.started:
            collector.settle()
            port = self.servers[0].sockets[0].getsockname()[1]
            print_banner(banner(self.settings, port))

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        await self.context.say_goodbye()
        await super().shutdown(sockets)


def build_server(settings: Settings, provider: MediaProvider | None = None) -> GoingAwayServer:
    """The uvicorn server of the app; ``provider`` replaces the configured media sources."""
    # Imported here, so a configuration error is reported without loading the whole app.
    from server.app import create_app

    app = create_app(settings, provider=provider)
    errors = StartupErrors(app, settings)
    trusted = trusted_networks(settings.trusted_proxies)
    config = ServerConfig(
        errors,
        gate=gate_for(settings, trusted),
        header_timeout=settings.header_timeout,
        host=settings.host,
        port=settings.port,
        lifespan="on",
        # Above the app's own limit, so the app sees an oversized message and answers it first. The
        # websockets protocol applies it after inflating a compressed message, so no deflate bomb gets in.
        ws_max_size=settings.max_message_bytes * 2,
        ws_per_message_deflate=settings.ws_compression,
        ws_ping_interval=settings.ws_ping_interval,
        ws_ping_timeout=settings.ws_ping_timeout,
        # Connections get the first part of shutdown_timeout; the lifespan shutdown (flushing rooms) follows.
        timeout_graceful_shutdown=max(1, round(settings.drain_timeout)),
        log_config=None,
        # X-Forwarded-For and -Proto of these peers are believed, for HTTP and WebSocket alike.
        proxy_headers=True,
        forwarded_allow_ips=trusted,
        ssl_certfile=settings.tls.cert if settings.tls else None,
        ssl_keyfile=settings.tls.key if settings.tls else None,
    )
    return GoingAwayServer(config, app.state.context, settings, errors)


def print_banner(text: str) -> None:
    """On stdout (logs go to stderr); without the QR code where the terminal cannot show it."""
    encoding = sys.stdout.encoding or "ascii"
    try:
        text.encode(encoding)
    except UnicodeEncodeError:
        text = text.encode(encoding, "ignore").decode(encoding)
    print(text, flush=True)


def serve(settings: Settings, provider: MediaProvider | None = None) -> None:
    server = build_server(settings, provider)
    try:
        with contextlib.suppress(KeyboardInterrupt):  # Ctrl+C: uvicorn re-raises it after shutting down
            server.run()
    except StartupProblem as problem:  # the port cannot be had
        exit_with(problem)
    except SystemExit:
        if server.errors.problem is not None:  # the storage cannot be opened
            exit_with(server.errors.problem)
        if server.errors.invalid is not None:  # a standing room the media library refuses
            exit_invalid(server.errors.invalid)
        raise
    if not server.started:  # the app failed to start (uvicorn has logged why)
        sys.exit(STARTUP_FAILURE)


def exit_with(problem: StartupProblem) -> NoReturn:
    print(f"moviematch: cannot start: {problem}", file=sys.stderr, flush=True)
    sys.exit(STARTUP_FAILURE)


def exit_invalid(error: ConfigError) -> NoReturn:
    print(
        "moviematch: invalid configuration:", *(f"  {problem}" for problem in error.problems), sep="\n", file=sys.stderr
    )
    sys.exit(2)


def main(argv: list[str] | None = None, provider: MediaProvider | None = None) -> None:
    """The ``moviematch`` command; ``provider`` serves embedders and tests with a library of their own."""
    arguments = sys.argv[1:] if argv is None else argv
    if commands.is_command(arguments):  # rooms, export, import, storage: the host's tools
        sys.exit(commands.main(arguments))
    args = parse_args(arguments)
    overrides = {name: value for name in ("host", "port") if (value := getattr(args, name)) is not None}
    try:
        settings = load_settings(args.config, os.environ, overrides=overrides)
    except ConfigError as exc:
        exit_invalid(exc)
    configure_logging(settings)
    serve(settings, provider)


if __name__ == "__main__":
    main()
