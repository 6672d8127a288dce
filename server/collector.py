"""Python's garbage collector, set for a long-running server."""

from __future__ import annotations

import gc

# Container objects made between two youngest-generation collections (Python's default: 700). A
# rating's objects live as long as its round trip (tens of milliseconds under load): collected every
# 700 allocations, they outlived two collections, reached the oldest generation, and made it be
# scanned whole about once a second (30-70 ms each, a sixth of the process's time). Ten thousand
# lets them die young; what it costs is a few megabytes of garbage cycles kept a little longer.
YOUNGEST_THRESHOLD = 10_000


def settle() -> None:
    """Once the process has started: what it made so far (modules, settings, the first libraries)
    lives as long as the process, so the collector stops looking at it, and collects less often."""
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(YOUNGEST_THRESHOLD, middle, oldest)
