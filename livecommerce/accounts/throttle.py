"""Sign-in throttling: failed attempts counted per account and per client address.

A key (an account's email, a client's address) that failed too often within the window is
refused before the password is looked at, so a flood of guesses costs neither argon2 time
nor a database read. Counting is a fixed window per key: the first failure opens it, the
key is refused once its count reaches the limit, until the window closes.

Two implementations with one contract (tests/accounts/test_throttle.py runs against both):
``MemoryThrottle`` for the embedded default (one process) and ``RedisThrottle`` for the
scaled mode, where every API process must see the same counts (or an attacker would get
the limit once per process).

Keys are hashed: the Redis keys name no email address.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from dataclasses import dataclass
from typing import Any, Protocol

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limit:
    """At most ``attempts`` failures per ``window_s`` seconds for one key."""

    attempts: int
    window_s: int


def account_key(email: str) -> str:
    return "acct:" + hashlib.sha256(email.encode()).hexdigest()[:32]


def address_key(address: str) -> str:
    return "addr:" + hashlib.sha256(address.encode()).hexdigest()[:32]


class Throttle(Protocol):
    async def retry_after(self, keys: list[tuple[str, Limit]]) -> int:
        """Seconds until every key may try again; 0 when none is over its limit."""
        ...

    async def failed(self, keys: list[tuple[str, Limit]]) -> None: ...

    async def reset(self, key: str) -> None: ...

    async def close(self) -> None: ...


class MemoryThrottle:
    """Counts in this process; enough when there is only one (the embedded mode)."""

    # Windows already closed are swept once this many keys are held: a flood of made-up
    # emails cannot grow the table without bound.
    SWEEP_AT = 10_000

    def __init__(self, clock: Any = time.monotonic) -> None:
        self._clock = clock
        self._counts: dict[str, tuple[int, float]] = {}  # key -> (failures, window end)

    def _live(self, key: str, now: float) -> tuple[int, float] | None:
        entry = self._counts.get(key)
        if entry is None or entry[1] <= now:
            return None
        return entry

    async def retry_after(self, keys: list[tuple[str, Limit]]) -> int:
        now = self._clock()
        wait = 0.0
        for key, limit in keys:
            entry = self._live(key, now)
            if entry is not None and entry[0] >= limit.attempts:
                wait = max(wait, entry[1] - now)
        return math.ceil(wait)

    async def failed(self, keys: list[tuple[str, Limit]]) -> None:
        now = self._clock()
        if len(self._counts) >= self.SWEEP_AT:
            self._counts = {k: v for k, v in self._counts.items() if v[1] > now}
        for key, limit in keys:
            entry = self._live(key, now)
            if entry is None:
                self._counts[key] = (1, now + limit.window_s)
            else:
                self._counts[key] = (entry[0] + 1, entry[1])

    async def reset(self, key: str) -> None:
        self._counts.pop(key, None)

    async def close(self) -> None:
        self._counts.clear()


# KEYS: the counters; ARGV: their windows in seconds, in the same order. Counts one
# failure on each and opens its window on the first (EXPIRE only when the key is new, so
# that further failures do not keep pushing the window out).
_FAILED = """
for i, key in ipairs(KEYS) do
  if redis.call('INCR', key) == 1 then redis.call('EXPIRE', key, tonumber(ARGV[i])) end
end
return 1
"""


class RedisThrottle:
    """Counts in Redis, shared by every API process of the scaled mode.

    Redis slow or down: sign-in goes on unthrottled (and says so in the log) rather than
    locking every user out; the password check still stands.
    """

    def __init__(self, url: str, *, prefix: str = "lc:login:", timeout_s: float = 1.0) -> None:
        from redis.asyncio import Redis

        self._redis: Any = Redis.from_url(
            url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            decode_responses=True,
            max_connections=32,
        )
        self._prefix = prefix
        self._failed = self._redis.register_script(_FAILED)

    async def retry_after(self, keys: list[tuple[str, Limit]]) -> int:
        from redis.exceptions import RedisError

        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for key, _ in keys:
                    pipe.get(self._prefix + key)
                    pipe.ttl(self._prefix + key)
                replies = await pipe.execute()
        except (RedisError, OSError) as exc:
            log.warning("login throttle unavailable, not throttling: %s", exc)
            return 0
        wait = 0
        for i, (_, limit) in enumerate(keys):
            count, ttl = replies[2 * i], replies[2 * i + 1]
            if count is not None and int(count) >= limit.attempts and ttl != -2:
                # -2: expired between the two reads. -1 (no expiry, which we never write):
                # a full window.
                wait = max(wait, ttl if ttl > 0 else limit.window_s)
        return wait

    async def failed(self, keys: list[tuple[str, Limit]]) -> None:
        from redis.exceptions import RedisError

        try:
            await self._failed(
                keys=[self._prefix + key for key, _ in keys],
                args=[limit.window_s for _, limit in keys],
            )
        except (RedisError, OSError) as exc:
            log.warning("login throttle unavailable, failure not counted: %s", exc)

    async def reset(self, key: str) -> None:
        from redis.exceptions import RedisError

        try:
            await self._redis.delete(self._prefix + key)
        except (RedisError, OSError) as exc:
            log.warning("login throttle unavailable, counter not reset: %s", exc)

    async def close(self) -> None:
        await self._redis.aclose()
