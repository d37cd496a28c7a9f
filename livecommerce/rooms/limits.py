"""Limits on what one viewer may do to a room, whichever socket or process they use.

Two things are counted per person rather than per socket, because a person may open as
many sockets as they like, on as many API processes as the deployment runs:

- **Chat rate**: a token bucket per key (``chat_key``: a signed-in user), ``burst`` messages
  at once, then one per ``refill_s``. Every socket of the user draws from the same bucket.
- **Sockets**: concurrent room sockets per key (``user_room_key``/``user_key`` for a
  signed-in user, in one room and in all rooms; ``address_room_key`` for guests, who can
  mint guest tokens at will and are therefore counted by client address), and a user's
  ``/ws/me`` sockets (``user_me_key``).

Two implementations with one contract (tests/rooms/test_limits_contract.py runs against
both): :class:`MemoryLimits` for the embedded default (one process) and
:class:`RedisLimits` for the scaled mode, where every API process must see the same counts.

Redis keys (``lc`` is the default prefix; the person sits in a ``{hash tag}`` so that the
keys one script touches share a Redis Cluster slot):

- ``lc:limits:chat:{<who>}``: hash ``tokens``, ``at_ms``; expires once the bucket would be
  full again, so an idle user leaves nothing behind.
- ``lc:limits:sockets:{<who>}:<scope>``: sorted set, socket id -> the time its claim
  expires (ms, Redis's clock). Each process refreshes its own sockets' claims every third
  of ``ttl_s``; a process that dies stops counting once they expire, and the key itself
  expires with its newest claim (as ``RedisPresence`` does).

Redis slow or down: chat and joins go on unlimited (fail open, and the log says so at
most once per ``OUTAGE_LOG_S``) rather than silencing every room; a socket admitted then is
not counted, and is counted again by the next heartbeat once Redis answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import os
import secrets
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from livecommerce.config import Settings

log = logging.getLogger(__name__)

SOCKET_TTL_S = 30.0  # a socket claim not refreshed for this long no longer counts
TIMEOUT_S = 1.0  # each Redis call on the chat and join paths
OUTAGE_S = 5.0  # after a Redis error, this long without asking it (fail open meanwhile)
OUTAGE_LOG_S = 60.0  # one warning per this long while Redis stays unreachable


@dataclass(frozen=True, slots=True)
class Rate:
    """``burst`` at once, then one per ``refill_s`` seconds."""

    burst: int
    refill_s: float


@dataclass(frozen=True, slots=True)
class Cap:
    """At most ``limit`` concurrent sockets under ``key``."""

    key: str
    limit: int


@dataclass(eq=False, slots=True)
class Ticket:
    """One admitted socket: the claims to withdraw when it closes."""

    id: str
    caps: tuple[Cap, ...]
    counted: bool = True  # False: admitted while the counts were unreachable


def chat_key(user_id: int) -> str:
    return f"user:{user_id}"


def user_key(user_id: int) -> str:
    return f"{{user:{user_id}}}:all"


def user_room_key(user_id: int, stream_id: int) -> str:
    return f"{{user:{user_id}}}:room:{stream_id}"


def user_me_key(user_id: int) -> str:
    return f"{{user:{user_id}}}:me"


def address_room_key(address: str, stream_id: int) -> str:
    # Hashed: the Redis keys name no client address.
    digest = hashlib.sha256(address.encode()).hexdigest()[:32]
    return f"{{addr:{digest}}}:room:{stream_id}"


class RoomLimits(Protocol):
    async def take_chat(self, key: str, rate: Rate) -> float:
        """Take one message from ``key``'s bucket: 0 when allowed, else the seconds until
        the next one would be (nothing is taken then)."""
        ...

    async def open_socket(self, caps: Sequence[Cap]) -> Ticket | Cap:
        """Count one more socket under every cap, or none when one is full: a ticket when
        admitted, else the first cap that is full."""
        ...

    async def close_socket(self, ticket: Ticket) -> None: ...

    async def close(self) -> None: ...


class MemoryLimits:
    """Counts in this process; enough when there is only one (the embedded mode)."""

    # Buckets full again are swept once this many are held: users who chatted once and
    # left do not accumulate.
    SWEEP_AT = 10_000

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, tuple[float, float, float]] = {}  # key -> tokens, at, full at
        self._sockets: dict[str, set[str]] = {}

    async def take_chat(self, key: str, rate: Rate) -> float:
        now = self._clock()
        if len(self._buckets) >= self.SWEEP_AT:
            self._buckets = {k: v for k, v in self._buckets.items() if v[2] > now}
        tokens, at, _ = self._buckets.get(key, (float(rate.burst), now, now))
        tokens = min(float(rate.burst), tokens + (now - at) / rate.refill_s)
        if tokens < 1:
            self._buckets[key] = (tokens, now, now + (rate.burst - tokens) * rate.refill_s)
            return (1 - tokens) * rate.refill_s
        tokens -= 1
        self._buckets[key] = (tokens, now, now + (rate.burst - tokens) * rate.refill_s)
        return 0.0

    async def open_socket(self, caps: Sequence[Cap]) -> Ticket | Cap:
        for cap in caps:
            if len(self._sockets.get(cap.key, ())) >= cap.limit:
                return cap
        ticket = Ticket(secrets.token_hex(8), tuple(caps))
        for cap in caps:
            self._sockets.setdefault(cap.key, set()).add(ticket.id)
        return ticket

    async def close_socket(self, ticket: Ticket) -> None:
        for cap in ticket.caps:
            held = self._sockets.get(cap.key)
            if held is not None:
                held.discard(ticket.id)
                if not held:
                    del self._sockets[cap.key]

    async def close(self) -> None:
        self._buckets.clear()
        self._sockets.clear()


# Server time, so that processes with skewed clocks agree on buckets and expiries.
_NOW_MS_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# KEYS: bucket. ARGV: burst, refill ms. Returns 0 (taken) or the ms until a token is due.
_TAKE_LUA = (
    _NOW_MS_LUA
    + """
local burst = tonumber(ARGV[1])
local refill = tonumber(ARGV[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at_ms')
local tokens = tonumber(state[1])
local at = tonumber(state[2])
if tokens == nil or at == nil then
    tokens, at = burst, now
end
tokens = math.min(burst, tokens + math.max(0, now - at) / refill)
local wait = 0
if tokens < 1 then
    wait = math.ceil((1 - tokens) * refill)
else
    tokens = tokens - 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at_ms', now)
-- Gone once it would be full again: a missing bucket reads as a full one.
redis.call('PEXPIRE', KEYS[1], math.max(1, math.ceil((burst - tokens) * refill)))
return wait
"""
)

# KEYS: socket sets. ARGV: socket id, ttl ms, then one limit per key. Returns 0 (counted
# under every key) or the 1-based index of the first key that is full (nothing counted).
_OPEN_LUA = (
    _NOW_MS_LUA
    + """
for i, key in ipairs(KEYS) do
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
    if redis.call('ZCARD', key) >= tonumber(ARGV[2 + i]) then return i end
end
local expires = now + tonumber(ARGV[2])
for _, key in ipairs(KEYS) do
    redis.call('ZADD', key, expires, ARGV[1])
    local newest = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
    redis.call('PEXPIREAT', key, string.format('%d', tonumber(newest[2])))
end
return 0
"""
)

# KEYS: socket sets. ARGV: ttl ms, then one socket id per key. Claims of this process's
# open sockets, renewed (and made again if Redis lost them).
_REFRESH_LUA = (
    _NOW_MS_LUA
    + """
local expires = now + tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
    redis.call('ZADD', key, expires, ARGV[1 + i])
    redis.call('PEXPIREAT', key, expires)
end
return 0
"""
)


class RedisLimits:
    """Counts in Redis, shared by every API process of the scaled mode."""

    REFRESH_BATCH = 500  # claims renewed per script call

    def __init__(
        self,
        redis: str | Redis,
        *,
        key_prefix: str = "lc",
        ttl_s: float = SOCKET_TTL_S,
        refresh_s: float | None = None,
        timeout_s: float = TIMEOUT_S,
    ) -> None:
        from livecommerce.rooms.redis_broker import redis_client

        self._owns_client = isinstance(redis, str)
        self._client = (
            redis_client(redis, socket_timeout_s=timeout_s) if isinstance(redis, str) else redis
        )
        self._prefix = f"{key_prefix}:limits:"
        self._ttl_ms = max(1, round(ttl_s * 1000))
        self._refresh_s = ttl_s / 3 if refresh_s is None else refresh_s
        self._take = self._client.register_script(_TAKE_LUA)
        self._open = self._client.register_script(_OPEN_LUA)
        self._refresh = self._client.register_script(_REFRESH_LUA)
        self.process_id = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._held: dict[str, Ticket] = {}
        self._refresher: asyncio.Task[None] | None = None
        self._down_until = 0.0
        self._logged_at = -math.inf
        self._closed = False

    def _sockets_key(self, key: str) -> str:
        return f"{self._prefix}sockets:{key}"

    # --- outages -------------------------------------------------------------------------

    def _reachable(self) -> bool:
        return time.monotonic() >= self._down_until

    def _unreachable(self, what: str, exc: BaseException) -> None:
        now = time.monotonic()
        self._down_until = now + OUTAGE_S
        if now - self._logged_at >= OUTAGE_LOG_S:
            self._logged_at = now
            log.warning(
                "room limits unavailable, %s not limited for now: %s: %s",
                what,
                type(exc).__name__,
                exc,
            )

    # --- chat ----------------------------------------------------------------------------

    async def take_chat(self, key: str, rate: Rate) -> float:
        from redis.exceptions import RedisError

        if not self._reachable():
            return 0.0
        try:
            wait_ms = await self._take(
                keys=[f"{self._prefix}chat:{{{key}}}"],
                args=[rate.burst, max(1, round(rate.refill_s * 1000))],
            )
        except (RedisError, OSError) as exc:
            self._unreachable("chat", exc)
            return 0.0
        return int(wait_ms) / 1000

    # --- sockets -------------------------------------------------------------------------

    async def open_socket(self, caps: Sequence[Cap]) -> Ticket | Cap:
        from redis.exceptions import RedisError

        ticket = Ticket(f"{self.process_id}:{secrets.token_hex(6)}", tuple(caps))
        if not caps:
            return ticket
        if not self._reachable():
            ticket.counted = False
        else:
            try:
                full = await self._open(
                    keys=[self._sockets_key(cap.key) for cap in caps],
                    args=[ticket.id, self._ttl_ms, *(cap.limit for cap in caps)],
                )
            except (RedisError, OSError) as exc:
                self._unreachable("room sockets", exc)
                ticket.counted = False
            else:
                if int(full):
                    return caps[int(full) - 1]
        # Counted or not, its claims are refreshed from now on: an uncounted socket is
        # counted again by the first heartbeat that reaches Redis.
        self._held[ticket.id] = ticket
        self._ensure_refresher()
        return ticket

    async def close_socket(self, ticket: Ticket) -> None:
        from redis.exceptions import RedisError

        if self._held.pop(ticket.id, None) is None or not ticket.caps:
            return
        if not self._reachable():
            return  # its claims expire with the TTL
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for cap in ticket.caps:
                    pipe.zrem(self._sockets_key(cap.key), ticket.id)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            self._unreachable("room sockets", exc)

    def _ensure_refresher(self) -> None:
        if self._closed:
            return
        if self._refresher is None or self._refresher.done():
            self._refresher = asyncio.create_task(
                self._refresh_forever(), name="room-limits-heartbeat"
            )

    async def _refresh_forever(self) -> None:
        while self._held:
            await asyncio.sleep(self._refresh_s)
            await self.refresh()

    async def refresh(self) -> None:
        """Renew the claims of every socket this process holds."""
        from redis.exceptions import RedisError

        claims = [
            (self._sockets_key(cap.key), ticket.id)
            for ticket in list(self._held.values())
            for cap in ticket.caps
        ]
        try:
            for at in range(0, len(claims), self.REFRESH_BATCH):
                batch = claims[at : at + self.REFRESH_BATCH]
                await self._refresh(
                    keys=[key for key, _ in batch],
                    args=[self._ttl_ms, *(member for _, member in batch)],
                )
                # A socket that closed while its claim was being renewed had it withdrawn
                # first and renewed after: withdraw it again.
                gone = [(key, member) for key, member in batch if member not in self._held]
                if gone:
                    async with self._client.pipeline(transaction=False) as pipe:
                        for key, member in gone:
                            pipe.zrem(key, member)
                        await pipe.execute()
        except (RedisError, OSError) as exc:
            self._unreachable("room sockets", exc)
            return
        self._down_until = 0.0

    async def close(self) -> None:
        """Withdraw this process's claims (a clean stop need not wait for the TTL)."""
        if self._closed:
            return
        self._closed = True
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
        from redis.exceptions import RedisError

        claims = [(self._sockets_key(c.key), t.id) for t in self._held.values() for c in t.caps]
        self._held.clear()
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for key, member in claims:
                    pipe.zrem(key, member)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            self._unreachable("room sockets", exc)  # the claims expire with the TTL
        if self._owns_client:
            await self._client.aclose()


@dataclass(frozen=True, slots=True)
class Policy:
    """The limits in force."""

    chat: Rate = field(default_factory=lambda: Rate(5, 1.0))
    sockets_per_user: int = 20
    room_sockets_per_user: int = 5
    room_guest_sockets_per_address: int = 50
    me_sockets_per_user: int = 5

    @classmethod
    def from_settings(cls, settings: Settings) -> Policy:
        return cls(
            chat=Rate(settings.room_chat_burst, settings.room_chat_refill_seconds),
            sockets_per_user=settings.room_sockets_per_user_total,
            room_sockets_per_user=settings.room_sockets_per_user,
            room_guest_sockets_per_address=settings.room_guest_sockets_per_address,
            me_sockets_per_user=settings.me_sockets_per_user,
        )

    def caps(self, *, stream_id: int, user_id: int | None, address: str | None) -> list[Cap]:
        if user_id is not None:
            return [
                Cap(user_room_key(user_id, stream_id), self.room_sockets_per_user),
                Cap(user_key(user_id), self.sockets_per_user),
            ]
        if address:
            return [Cap(address_room_key(address, stream_id), self.room_guest_sockets_per_address)]
        return []


def make_room_limits(redis_url: str | None) -> RoomLimits:
    """In process, or in Redis (shared by every API process) when rooms are."""
    if not redis_url:
        return MemoryLimits()
    return RedisLimits(redis_url)
