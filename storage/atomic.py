"""Replacing a file so that readers and crashes only ever see the old or the new content."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

# Temp files start with a dot and end with this suffix, so the directory's owner can tell them from
# finished files and sweep the ones a crash left behind.
TEMP_PREFIX = "."
TEMP_SUFFIX = ".tmp"


def write_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Durably replace ``path`` with ``data``: a crash leaves the old file, the new one, or a temp file.

    Blocking (several fsyncs); call it from a worker thread.
    """
    with replacing(path, mode) as file:
        file.write(data)


@contextlib.contextmanager
def replacing(path: Path, mode: int = 0o600) -> Iterator[BinaryIO]:
    """A file to write that replaces ``path`` durably when the block ends (nothing changes if it
    raises); for content too big to hold in memory at once."""
    # Same directory, so os.replace is a rename within one file system and therefore atomic.
    fd, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f"{TEMP_PREFIX}{path.name}.", suffix=TEMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as temp:
            yield temp
            temp.flush()
            os.fchmod(temp.fileno(), mode)
            # The data must be on disk before the rename, or a crash can publish an empty file.
            os.fsync(temp.fileno())
        os.replace(temp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
        raise
    # The rename itself lives in the directory, which a crash can otherwise roll back.
    directory_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(directory_fd)
    finally:
        os.close(directory_fd)
