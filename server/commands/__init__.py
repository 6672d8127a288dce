"""The host's commands: ``moviematch rooms | export | import | storage ...``.

They read the server's configuration (``--config``, the environment) for the storage to work on,
and work on a stopped server and beside a running one (see ``access`` for what each may do then).
Exit status: 0 done, 1 refused or incomplete (the message says why), 2 a usage or configuration error.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import IO

import anyio

from server.config import ConfigError, Settings, load_settings, mask_secrets
from server.security import RedactSecrets
from storage import Storage, StorageError, create_storage
from storage.file import FileStorage

from . import check, rooms, transfer
from .access import CommandError, reading, writing

COMMANDS = ("rooms", "export", "import", "storage")
# The server's options that take a value, so that the command after them can be found.
_OPTIONS_WITH_VALUES = frozenset({"--config", "--host", "--port"})


def is_command(argv: list[str]) -> bool:
    """Whether ``argv`` (without the program name) names a command rather than starting the server."""
    arguments = iter(argv)
    for argument in arguments:
        if argument in _OPTIONS_WITH_VALUES:
            next(arguments, None)
        elif not argument.startswith("-"):
            return argument in COMMANDS
    return False


def parser() -> argparse.ArgumentParser:
    config = argparse.ArgumentParser(add_help=False)
    config.add_argument(
        "--config",
        metavar="PATH",
        default=argparse.SUPPRESS,
        help="YAML config file, as for the server (env CONFIG_PATH; default: ./config.yaml when present)",
    )
    top = argparse.ArgumentParser(
        prog="moviematch",
        parents=[config],
        description="The host's commands; `moviematch` without one starts the server.",
    )
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    rooms_command = commands.add_parser("rooms", parents=[config], help="list, show or delete stored rooms")
    room_actions = rooms_command.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = room_actions.add_parser("list", parents=[config], help="every stored room, one line each")
    listing.add_argument("--json", action="store_true", help="a JSON array instead of a table")
    showing = room_actions.add_parser("show", parents=[config], help="one room in detail (no secrets)")
    showing.add_argument("name", metavar="NAME", help="the room's name or join code")
    showing.add_argument("--json", action="store_true", help="the room's JSON form, without secrets or deck")
    deleting = room_actions.add_parser("delete", parents=[config], help="delete a room (servers sharing it drop it)")
    deleting.add_argument("name", metavar="NAME", help="the room's name or join code")

    exporting = commands.add_parser("export", parents=[config], help="every room to one JSON-lines file")
    exporting.add_argument("--to", metavar="FILE", type=Path, help="write FILE (replaced atomically) instead of stdout")
    importing = commands.add_parser("import", parents=[config], help="the rooms of an export into the storage")
    importing.add_argument("file", metavar="FILE", type=Path)
    importing.add_argument("--replace", action="store_true", help="overwrite rooms that are stored already")

    storage_command = commands.add_parser("storage", parents=[config], help="move rooms between backends, check them")
    storage_actions = storage_command.add_subparsers(dest="action", required=True, metavar="ACTION")
    migrating = storage_actions.add_parser(
        "migrate", parents=[config], help="copy every room to another backend and verify the copy"
    )
    migrating.add_argument("--from", dest="source", metavar="URL", help="storage URL (default: the configured one)")
    migrating.add_argument("--to", dest="target", metavar="URL", required=True, help="storage URL")
    migrating.add_argument("--replace", action="store_true", help="overwrite rooms the destination holds already")
    storage_actions.add_parser(
        "check", parents=[config], help="read every stored room; report those that cannot be read"
    )
    return top


def main(argv: list[str], out: IO[str] | None = None) -> int:
    """Run one command; its exit status."""
    if out is None:
        out = sys.stdout
        # Names are the users': one the terminal cannot show is escaped rather than fatal.
        sys.stdout.reconfigure(errors="backslashreplace")  # type: ignore[union-attr]
    args = parser().parse_args(argv)
    try:
        settings = load_settings(getattr(args, "config", None) or os.environ.get("CONFIG_PATH") or None, os.environ)
    except ConfigError as exc:
        problems = (f"  {problem}" for problem in exc.problems)
        print("moviematch: invalid configuration:", *problems, sep="\n", file=sys.stderr)
        return 2
    _log_to_stderr(settings)
    url = settings.storage_url()
    try:
        anyio.run(_run, args, settings, url, out)
    except BrokenPipeError:
        # The reader went away (`moviematch export | head`): say nothing more, and let nothing be
        # written to the closed pipe at exit either.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except CommandError as exc:
        if str(exc):
            print(f"moviematch: {mask_secrets(str(exc), url)}", file=sys.stderr)
        return exc.status
    except StorageError as exc:
        print(f"moviematch: {mask_secrets(str(exc), url)}", file=sys.stderr)
        return 1
    return 0


async def _run(args: argparse.Namespace, settings: Settings, url: str, out: IO[str]) -> None:
    command: tuple[str, ...] = (args.command, *([args.action] if "action" in args else []))
    if command == ("storage", "migrate"):
        source_url = args.source or url
        source, target = _storage(source_url), _storage(args.target)
        if _same(source, target, source_url, args.target):
            raise CommandError("--from and --to name the same storage", status=2)
        async with reading(source, source_url) as source, writing(target, args.target) as target:
            await transfer.migrate(source, target, replace=args.replace, out=out)
        return
    actions: dict[tuple[str, ...], tuple[bool, Callable[[Storage], Awaitable[None]]]] = {
        ("rooms", "list"): (False, lambda storage: rooms.list_rooms(storage, out, as_json=args.json)),
        ("rooms", "show"): (False, lambda storage: rooms.show_room(storage, args.name, out, as_json=args.json)),
        ("rooms", "delete"): (True, lambda storage: rooms.delete(storage, args.name, out)),
        ("export",): (False, lambda storage: transfer.export(storage, args.to, out)),
        ("import",): (True, lambda storage: transfer.import_rooms(storage, args.file, replace=args.replace, out=out)),
        ("storage", "check"): (False, lambda storage: check.check(storage, out)),
    }
    writes, action = actions[command]
    opened = writing if writes else reading
    async with opened(settings.storage.create(), url) as storage:
        await action(storage)


def _storage(url: str) -> Storage:
    try:
        return create_storage(url)
    except StorageError as exc:
        raise CommandError(f"{exc.target}: {exc.reason}", status=2) from exc


def _same(source: Storage, target: Storage, source_url: str, target_url: str) -> bool:
    if isinstance(source, FileStorage) and isinstance(target, FileStorage):
        return source.directory.resolve() == target.directory.resolve()
    return source_url == target_url


def _log_to_stderr(settings: Settings) -> None:
    """Storage warnings (a room skipped as unreadable ...) reach the host; secrets never do."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("moviematch: %(levelname)s %(message)s"))
    handler.addFilter(RedactSecrets(settings.secrets()))
    logging.basicConfig(level=logging.WARNING, handlers=[handler], force=True)
