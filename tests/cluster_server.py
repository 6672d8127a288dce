"""``python -m tests.cluster_server``: one real server process for the cluster tests.

This is ``python -m server`` (settings from the environment, its logging, its uvicorn server) with
one difference: the films come from ``tests.library``, so rooms hold test:1..test:N exactly as in
the in-process protocol tests. Besides the server's own variables it reads:

- ``CLUSTER_FILMS``: how many films (default 10);
- ``CLUSTER_FAIL_FLAG``: a file path; while that file exists the library is down, in every process
  started with the same path (``world.provider.fail = True`` of the protocol tests).
"""

from __future__ import annotations

import os
from pathlib import Path

from server import __main__ as cli
from tests.library import ListProvider, film


class SwitchableProvider(ListProvider):
    """``tests.library``'s films, whose ``fail`` switch is a file shared by processes.

    Without a flag file it is a plain ``ListProvider`` (the switch stays in this process).
    """

    def __init__(self, count: int = 10, flag: Path | None = None) -> None:
        self._flag: Path | None = None  # set after ListProvider's `fail = False`, which must not touch the file
        self._failing = False
        super().__init__([film(number) for number in range(1, count + 1)])
        self._flag = flag

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
    flag = os.environ.get("CLUSTER_FAIL_FLAG")
    provider = SwitchableProvider(int(os.environ.get("CLUSTER_FILMS", "10")), Path(flag) if flag else None)
    cli.main([], provider=provider)


if __name__ == "__main__":
    main()
