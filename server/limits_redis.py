"""The limits' sliding windows counted in Redis, so every process sharing rooms applies the same allowance."""

from __future__ import annotations

import logging
import uuid

from storage import StorageError
from storage.base import storage_errors
from storage.redis import RedisStorage

log = logging.getLogger("server.limits")

# KEYS: the window's sorted set. ARGV: window (ms), "1" to record an event, the event's unique id.
# Returns the events in the window. Redis's clock: the processes' clocks never matter.
_WINDOW = """
local now = redis.call("TIME")
now = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call("ZREMRANGEBYSCORE", KEYS[1], "-inf", now - tonumber(ARGV[1]))
if ARGV[2] == "1" then
  redis.call("ZADD", KEYS[1], now, ARGV[3])
  redis.call("PEXPIRE", KEYS[1], ARGV[1])
end
return redis.call("ZCARD", KEYS[1])
"""


class RedisWindow:
    """At most ``limit`` events per ``window`` seconds per key, counted by every process alike
    (``server.limits.Window``). While Redis is away it lets everything through: what it guards
    (creating and joining rooms) needs Redis and fails anyway."""

    def __init__(self, storage: RedisStorage, name: str, limit: int, window: float) -> None:
        self.limit = limit
        self._window_ms = int(window * 1000)
        self._prefix = f"{storage.prefix}:limit:{name}:"
        self._script = storage.client.register_script(_WINDOW)
        self._failing = False

    async def _count(self, key: str, *, record: bool) -> int:
        try:
            with storage_errors("limit", key):
                count = await self._script(
                    keys=[self._prefix + key], args=[self._window_ms, "1" if record else "0", uuid.uuid4().hex]
                )
        except StorageError as exc:
            if not self._failing:  # once per outage
                log.warning("limits are not checked while Redis is unreachable: %s", exc)
            self._failing = True
            return 0
        self._failing = False
        return int(count)

    async def exhausted(self, key: str) -> bool:
        return await self._count(key, record=False) >= self.limit

    async def record(self, key: str) -> None:
        await self._count(key, record=True)
