"""``python -m tests.cluster_server``: one real server process for the cluster tests.

This is ``python -m server`` (settings from the environment, its logging, its uvicorn server) with
one difference: the films come from ``tests.library``, so rooms hold test:1..test:N exactly as in
the in-process protocol tests. Besides the server's own variables it reads:

- ``CLUSTER_FILMS``: how many films (default 10);
- ``CLUSTER_FILMS_FILE``: a file path; when that file exists it holds how many films there are,
  read at every listing, so a test grows (or shrinks) the library of every process at once;
- ``CLUSTER_FAIL_FLAG``: a file path; while that file exists the library is down, in every process
  started with the same path (``world.provider.fail = True`` of the protocol tests);
- ``CLUSTER_LIBRARY``: ``servers`` for the media servers the settings name (fakes on loopback)
  instead of the test library.
"""

from __future__ import annotations

import os
from pathlib import Path

from server import __main__ as cli
from server.providers import Media
from tests.library import ListProvider, film


class SwitchableProvider(ListProvider):
    """``tests.library``'s films, whose ``fail`` switch is a file shared by processes.

    Without a flag file it is a plain ``ListProvider`` (the switch stays in this process). With a
    ``films`` file, the number in it says how many films the library has.
    """

    def __init__(self, count: int = 10, flag: Path | None = None, films: Path | None = None) -> None:
        self._flag: Path | None = None  # set after ListProvider's `fail = False`, which must not touch the file
        self._failing = False
        self._films = films
        super().__init__([film(number) for number in range(1, count + 1)])
        self._flag = flag

    @property
    def items(self) -> list[Media]:
        if self._films is not None and self._films.exists():
            return [film(number) for number in range(1, int(self._films.read_text()) + 1)]
        return self._items

    @items.setter
    def items(self, items: list[Media]) -> None:
        self._items = items

    @property
    def fail(self) -> bool:
        return self._flag.exists() if self._flag is not None else self._failing

    @fail.setter
    def fail(self, value: bool) -> None:
        if self._flag is None:
            self._failing = value
        elif value:
            self._flag.touch()
        else:
            self._flag.unlink(missing_ok=True)


def main() -> None:
    flag, films = os.environ.get("CLUSTER_FAIL_FLAG"), os.environ.get("CLUSTER_FILMS_FILE")
    count = int(os.environ.get("CLUSTER_FILMS", "10"))
    provider = SwitchableProvider(count, Path(flag) if flag else None, Path(films) if films else None)
    cli.main([], provider=None if os.environ.get("CLUSTER_LIBRARY") == "servers" else provider)


if __name__ == "__main__":
    main()
