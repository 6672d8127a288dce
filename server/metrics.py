"""Counters for ``/metrics``, written out in the Prometheus text format (version 0.0.4) by hand:
a handful of numbers does not justify a client library."""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Iterable

from storage import StorageError

# Seconds. A file save is a few fsyncs (milliseconds on an SSD); the upper buckets show a sick disk.
WRITE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    return repr(float(value)) if isinstance(value, float) else str(value)


class Histogram:
    def __init__(self, buckets: Iterable[float]) -> None:
        self.buckets = tuple(sorted(buckets))
        self._counts = [0] * (len(self.buckets) + 1)  # the last one is +Inf
        self.total = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self._counts[bisect.bisect_left(self.buckets, value)] += 1
        self.total += value
        self.count += 1

    def samples(self, name: str) -> list[str]:
        lines, cumulative = [], 0
        for bound, count in zip((*map(_number, self.buckets), "+Inf"), self._counts, strict=True):
            cumulative += count
            lines.append(f'{name}_bucket{{le="{bound}"}} {cumulative}')
        return [*lines, f"{name}_sum {_number(self.total)}", f"{name}_count {self.count}"]


class Metrics:
    """What happened since start; current sizes (connections, rooms) are passed in when rendering.

    Also the saver's observer, so storage writes are timed where they happen.
    """

    def __init__(self) -> None:
        self.connections_total = 0
        self.ratings_total = 0
        self.matches_total = 0
        self.errors: Counter[str] = Counter()
        self.storage_writes = Histogram(WRITE_BUCKETS)
        self.storage_write_failures = 0
        # Shared rooms (Redis): rooms read again after missed events, members of dead processes removed.
        self.room_rereads = 0
        self.members_reaped = 0

    def error(self, name: str) -> None:
        self.errors[name] += 1

    def save_succeeded(self, key: str, seconds: float) -> None:
        self.storage_writes.observe(seconds)

    def save_failed(self, key: str, error: StorageError, *, outage_started: bool) -> None:
        self.storage_write_failures += 1

    def render(self, *, connections: int, rooms: int, storage_up: bool) -> str:
        lines: list[str] = []

        def family(name: str, kind: str, help_text: str, samples: Iterable[str]) -> None:
            lines.extend((f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", *samples))

        family(
            "moviematch_connections", "gauge", "Open WebSocket connections.", [f"moviematch_connections {connections}"]
        )
        family(
            "moviematch_connections_total",
            "counter",
            "WebSocket connections accepted since start.",
            [f"moviematch_connections_total {self.connections_total}"],
        )
        family("moviematch_rooms_active", "gauge", "Rooms held in memory.", [f"moviematch_rooms_active {rooms}"])
        family(
            "moviematch_ratings_total",
            "counter",
            "Ratings recorded.",
            [f"moviematch_ratings_total {self.ratings_total}"],
        )
        family(
            "moviematch_matches_total",
            "counter",
            "Matches announced.",
            [f"moviematch_matches_total {self.matches_total}"],
        )
        family(
            "moviematch_errors_total",
            "counter",
            "Error replies sent to clients, by error name.",
            [
                f'moviematch_errors_total{{name="{_label(name)}"}} {count}'
                for name, count in sorted(self.errors.items())
            ],
        )
        family(
            "moviematch_storage_write_seconds",
            "histogram",
            "Time to save one room.",
            self.storage_writes.samples("moviematch_storage_write_seconds"),
        )
        family(
            "moviematch_storage_write_failures_total",
            "counter",
            "Room saves that failed (each is retried).",
            [f"moviematch_storage_write_failures_total {self.storage_write_failures}"],
        )
        family(
            "moviematch_room_rereads_total",
            "counter",
            "Shared rooms read again from Redis because events were missed (a lost subscription).",
            [f"moviematch_room_rereads_total {self.room_rereads}"],
        )
        family(
            "moviematch_members_reaped_total",
            "counter",
            "Members removed from rooms because their process stopped sending heartbeats.",
            [f"moviematch_members_reaped_total {self.members_reaped}"],
        )
        family(
            "moviematch_storage_up",
            "gauge",
            "1 when the storage answers and the last saves succeeded.",
            [f"moviematch_storage_up {int(storage_up)}"],
        )
        return "\n".join(lines) + "\n"
