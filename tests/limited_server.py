"""``python -m tests.limited_server``: ``python -m server`` under a file limit of ``FILE_LIMIT``
descriptors (soft and hard, so the server cannot raise it), as on a host that allows no more."""

from __future__ import annotations

import os
import resource

from server import __main__ as cli


def main() -> None:
    limit = int(os.environ["FILE_LIMIT"])
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))
    cli.main([])


if __name__ == "__main__":
    main()
