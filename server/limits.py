"""Abuse limits that need memory of the past: a token bucket per connection, sliding windows per client.

Both take their clock as an argument, so tests step time instead of sleeping. Processes sharing
rooms through Redis share the windows too (``server.limits_redis.RedisWindow``).
"""

from __future__ import annotations

import enum
import ipaddress
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

from server.config import Settings

Clock = Callable[[], float]

PASSWORD_WINDOW = 60.0
ROOM_CREATION_WINDOW = 24 * 3600.0

_PRUNE_FLOOR = 1024


def address_key(host: str, ipv6_prefix: int) -> str:
    """What per-address limits count for a client at ``host``: an IPv4 address itself (an
    IPv4-mapped IPv6 address too), an IPv6 address by its network of ``ipv6_prefix`` bits, since a
    single home or server is handed a whole /64 and may use any address in it. Anything else (a
    Unix socket's name, a test client's) is its own key."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, ipv6_prefix), strict=False))
    return str(address)


class Occurrences:
    """A recurring condition worth one log line per ``interval``, not one per occurrence.

    ``occurred()`` returns how many times it happened since the last report (itself included) when
    a line is due, None otherwise: the first occurrence is reported at once.
    """

    def __init__(self, interval: float, clock: Clock = time.monotonic) -> None:
        self.interval = interval
        self._clock = clock
        self._reported_at: float | None = None
        self._count = 0

    def occurred(self) -> int | None:
        self._count += 1
        now = self._clock()
        if self._reported_at is not None and now - self._reported_at < self.interval:
            return None
        self._reported_at, count, self._count = now, self._count, 0
        return count


class Verdict(enum.Enum):
    ALLOWED = "allowed"
    LIMITED = "limited"  # refuse this message, keep the connection
    ABUSIVE = "abusive"  # the client kept sending while limited: close it


class TokenBucket:
    """``rate`` messages per second on average, ``burst`` at once.

    A refused message still costs a token, so the balance goes into debt: a client that keeps
    sending while refused digs deeper, and once its debt exceeds a whole burst it is ``ABUSIVE``.
    A client that pauses pays the debt back at ``rate`` and is served again.
    """

    def __init__(self, rate: float, burst: int, clock: Clock = time.monotonic) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._at = clock()

    def take(self) -> Verdict:
        now = self._clock()
        self._tokens = min(float(self.burst), self._tokens + (now - self._at) * self.rate)
        self._at = now
        self._tokens -= 1
        if self._tokens >= 0:
            return Verdict.ALLOWED
        return Verdict.ABUSIVE if self._tokens < -self.burst else Verdict.LIMITED


class Window(Protocol):
    """At most ``limit`` events per ``window`` seconds for each key (a client address, a user)."""

    limit: int

    async def exhausted(self, key: str) -> bool: ...

    async def record(self, key: str) -> None: ...


class SlidingWindow:
    """A ``Window`` in this process's memory.

    Keys without recent events are dropped, so memory stays proportional to the active clients.
    """

    def __init__(self, limit: int, window: float, clock: Clock = time.monotonic) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._events: dict[str, deque[float]] = {}
        self._prune_above = _PRUNE_FLOOR

    def _recent(self, key: str) -> deque[float]:
        events = self._events.get(key)
        if events is None:
            return deque()
        horizon = self._clock() - self.window
        while events and events[0] <= horizon:
            events.popleft()
        if not events:
            del self._events[key]
        return events

    async def exhausted(self, key: str) -> bool:
        return len(self._recent(key)) >= self.limit

    async def record(self, key: str) -> None:
        events = self._recent(key)
        self._events[key] = events
        events.append(self._clock())
        if len(self._events) > self._prune_above:
            # Clients that never come back are otherwise only forgotten when asked about.
            for stale in list(self._events):
                self._recent(stale)
            self._prune_above = max(_PRUNE_FLOOR, 2 * len(self._events))


class Guards:
    """The limits one server process enforces across its connections."""

    def __init__(self, settings: Settings, clock: Clock = time.monotonic) -> None:
        self.settings = settings
        self.password_failures: Window = SlidingWindow(settings.max_password_attempts, PASSWORD_WINDOW, clock)
        self.room_creations: Window = SlidingWindow(settings.max_rooms_per_user, ROOM_CREATION_WINDOW, clock)
        self._clock = clock

    def client(self, host: str) -> str:
        """The key of a client address (``address_key`` with the configured IPv6 prefix)."""
        return address_key(host, self.settings.ipv6_prefix_length)

    def share(self, windows: Callable[[str, int, float], Window]) -> None:
        """Count in windows shared with other processes: ``windows(name, limit, seconds)``."""
        self.password_failures = windows("passwords", self.settings.max_password_attempts, PASSWORD_WINDOW)
        self.room_creations = windows("rooms", self.settings.max_rooms_per_user, ROOM_CREATION_WINDOW)

    def message_bucket(self) -> TokenBucket:
        """A new connection's own allowance."""
        return TokenBucket(self.settings.rate_limit_per_second, self.settings.rate_limit_burst, self._clock)
