"""The scaled broker and presence: rooms, sequence numbers and history shared through Redis.

Keys (``lc`` is the default ``key_prefix``; the room name sits in a ``{hash tag}`` so that the
keys one script touches share a Redis Cluster slot):

- ``lc:room:{<room>}:meta``: a hash, ``s`` the room's last ``seq`` and ``e`` its epoch, with
  the history TTL. One key, so the sequence and the epoch are lost together: whoever finds it
  missing (a new room, or Redis restarted empty or evicted it) starts a new epoch at seq 0.
- ``lc:room:{<room>}:log``: a Stream of the room's events, entry id ``<seq>-0``, field ``p``
  holding the payload; trimmed to about ``history_max_events``, with the history TTL. A new
  epoch deletes what an earlier one left there.
- ``lc:room:<room>``: the pub/sub channel. A message is ``b"<seq>.<epoch>:" + payload`` for a
  room event and ``b"-:" + payload`` for an ephemeral one; the payload after the first colon
  is opaque bytes.
- ``lc:presence:{<room>}:procs``: sorted set, process id -> the time its report expires (ms).
- ``lc:presence:{<room>}:counts``: hash, process id -> its connections in the room. Both
  presence keys expire with the newest report, so an abandoned room leaves nothing behind.

``publish`` numbers, stores and publishes in one Lua script, so every process sees one
sequence and pub/sub delivers a room's events in ``seq`` order. A room's epoch made by a read
(``position``, before any event) lives ``EMPTY_EPOCH_TTL_S``, renewed by every read, so that
guessing stream ids does not fill Redis; its first event extends it to the history TTL.

Errors reaching Redis are raised as :class:`~livecommerce.rooms.broker.BrokerUnavailable`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import secrets
import socket
from collections import deque
from collections.abc import Iterator
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError

from livecommerce.rooms.broker import (
    HISTORY_MAX_EVENTS,
    HISTORY_TTL_S,
    BrokerUnavailable,
    Envelope,
    Position,
    QueueSubscription,
    Subscription,
    new_epoch,
)
from livecommerce.rooms.presence import PRESENCE_TTL_S

log = logging.getLogger(__name__)

SOCKET_TIMEOUT_S = 5.0  # every command and connect; the pub/sub read alone blocks without one
MAX_CONNECTIONS = 100  # per client, the pub/sub connection included
RECONNECT_MIN_S = 0.05
RECONNECT_MAX_S = 2.0

_EPHEMERAL = b"-"

EMPTY_EPOCH_TTL_S = 600

# Makes the room's epoch when its meta is missing: a new epoch at seq 0, and what an earlier
# epoch left in the log goes. KEYS: meta, log. ARGV[1]: the new epoch if one is needed.
_ENSURE_EPOCH_LUA = """
local epoch = redis.call('HGET', KEYS[1], 'e')
if not epoch then
    epoch = ARGV[1]
    redis.call('DEL', KEYS[2])
    redis.call('HSET', KEYS[1], 'e', epoch, 's', 0)
end
"""

# KEYS: meta, log. ARGV: new epoch, payload, history max, ttl seconds, channel.
_PUBLISH_LUA = (
    _ENSURE_EPOCH_LUA
    + """
local seq = redis.call('HINCRBY', KEYS[1], 's', 1)
local added = redis.pcall('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3],
    string.format('%d-0', seq), 'p', ARGV[2])
if type(added) == 'table' and added.err then
    -- The log holds ids at or past seq, which no epoch of ours writes: start a new epoch
    -- rather than number an event twice.
    epoch = ARGV[1]
    seq = 1
    redis.call('DEL', KEYS[2])
    redis.call('HSET', KEYS[1], 'e', epoch, 's', seq)
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '1-0', 'p', ARGV[2])
end
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('EXPIRE', KEYS[2], ARGV[4])
redis.call('PUBLISH', ARGV[5], string.format('%d.', seq) .. epoch .. ':' .. ARGV[2])
return {seq, epoch}
"""
)

# KEYS: meta, log. ARGV: new epoch, ttl seconds for an epoch without events.
_POSITION_LUA = (
    _ENSURE_EPOCH_LUA
    + """
local seq = tonumber(redis.call('HGET', KEYS[1], 's'))
if seq == 0 and redis.call('TTL', KEYS[1]) < tonumber(ARGV[2]) then
    redis.call('EXPIRE', KEYS[1], ARGV[2])
end
return {seq, epoch}
"""
)

# Server time, so that processes with skewed clocks agree on who has expired.
_NOW_MS_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# KEYS: procs, counts. ARGV: process id, count, ttl ms.
_REPORT_LUA = (
    _NOW_MS_LUA
    + """
if tonumber(ARGV[2]) > 0 then
    redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
    redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
else
    redis.call('ZREM', KEYS[1], ARGV[1])
    redis.call('HDEL', KEYS[2], ARGV[1])
end
-- Forget processes that stopped refreshing, or the hash would collect the dead.
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', string.format('%d', now))
if #dead > 0 then
    redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%d', now))
    redis.call('HDEL', KEYS[2], unpack(dead))
end
-- The keys live as long as the newest report: processes may run with different TTLs.
local newest = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if #newest == 0 then
    redis.call('DEL', KEYS[1], KEYS[2])
else
    local at = string.format('%d', tonumber(newest[2]))
    redis.call('PEXPIREAT', KEYS[1], at)
    redis.call('PEXPIREAT', KEYS[2], at)
end
return 0
"""
)

# KEYS: procs, counts.
_COUNT_LUA = (
    _NOW_MS_LUA
    + """
local live = redis.call('ZRANGEBYSCORE', KEYS[1], string.format('(%d', now), '+inf')
if #live == 0 then return 0 end
local total = 0
for _, count in ipairs(redis.call('HMGET', KEYS[2], unpack(live))) do
    if count then total = total + tonumber(count) end
end
return total
"""
)


def _keepalive_options() -> dict[int, int]:
    # A peer that vanished without a FIN (a failed-over VM) would otherwise leave the
    # pub/sub read, which has no timeout, waiting for hours.
    wanted = {"TCP_KEEPIDLE": 30, "TCP_KEEPINTVL": 5, "TCP_KEEPCNT": 3}
    return {getattr(socket, k): v for k, v in wanted.items() if hasattr(socket, k)}


def redis_client(url: str, *, socket_timeout_s: float = SOCKET_TIMEOUT_S) -> Redis:
    """A client for the broker or presence: bytes in and out, bounded waits."""
    # A blocking pool: a burst of publishes waits for a free connection instead of failing
    # with "Too many connections" as the default pool does past its size.
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=MAX_CONNECTIONS,
        timeout=socket_timeout_s,
        decode_responses=False,
        socket_timeout=socket_timeout_s,
        socket_connect_timeout=socket_timeout_s,
        socket_keepalive=True,
        socket_keepalive_options=_keepalive_options(),
        # Retry only when the connection failed, never after a timeout: a publish that timed
        # out may have run, and running it again would duplicate the event under a new seq.
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 2, (RedisConnectionError,)),
    )
    return Redis.from_pool(pool)


@contextlib.contextmanager
def _reaching_redis() -> Iterator[None]:
    try:
        yield
    except (RedisError, OSError) as exc:
        raise BrokerUnavailable(f"Redis: {type(exc).__name__}: {exc}") from exc


def _tag(room: str) -> str:
    return "{" + room + "}"


class _RedisSubscription(QueueSubscription):
    def __init__(self, broker: RedisBroker, room: str, channel: bytes) -> None:
        super().__init__(room)
        self._broker = broker
        self.channel = channel

    async def _release(self) -> None:
        await self._broker._release(self)


class _Channel:
    """A Redis channel this process listens to, for one or more local subscriptions."""

    def __init__(self, room: str) -> None:
        self.room = room
        self.subs: set[_RedisSubscription] = set()
        # Resolved when Redis confirms the SUBSCRIBE: only then may ``subscribe`` return.
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()


class RedisBroker:
    """Broker shared by every API process through one Redis.

    One pub/sub connection per broker carries every room this process listens to; a reader
    task hands each message to the room's local subscriptions. When that connection drops,
    the reader reconnects and subscribes again to every room still listened to; messages
    published meanwhile are not delivered, and consumers take them from history when the
    next event shows the gap.
    """

    def __init__(
        self,
        url: str,
        *,
        key_prefix: str = "lc",
        history_max_events: int = HISTORY_MAX_EVENTS,
        history_ttl_s: float = HISTORY_TTL_S,
        socket_timeout_s: float = SOCKET_TIMEOUT_S,
    ) -> None:
        self._client = redis_client(url, socket_timeout_s=socket_timeout_s)
        self._prefix = key_prefix
        self._history_max = max(0, int(history_max_events))
        self._ttl_s = max(1, math.ceil(history_ttl_s))
        self._subscribe_timeout_s = socket_timeout_s
        self._publish_script = self._client.register_script(_PUBLISH_LUA)
        self._position_script = self._client.register_script(_POSITION_LUA)
        self._channels: dict[bytes, _Channel] = {}
        # Per channel, the confirmations Redis still owes on the current connection, in the
        # order the commands went out (None for an UNSUBSCRIBE): Redis answers in that order,
        # so a SUBSCRIBE sent after an UNSUBSCRIBE is not mistaken for the earlier one.
        self._acks: dict[bytes, deque[asyncio.Future[None] | None]] = {}
        self._conn: AbstractConnection | None = None
        self._send_lock = asyncio.Lock()
        self._reader: asyncio.Task[None] | None = None
        self._last_error: BaseException | None = None
        self._closed = False
        self.pubsub_client_id: int | None = None  # the Redis CLIENT ID of that connection

    # --- keys ----------------------------------------------------------------------------

    def _meta_key(self, room: str) -> str:
        return f"{self._prefix}:room:{_tag(room)}:meta"

    def _log_key(self, room: str) -> str:
        return f"{self._prefix}:room:{_tag(room)}:log"

    def _channel(self, room: str) -> bytes:
        return f"{self._prefix}:room:{room}".encode()

    # --- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        # Nothing is awaited here: a Redis that is down at startup must not stop the API
        # from starting (``ping`` reports it; the reader keeps trying to connect).
        self._ensure_reader()

    def _ensure_reader(self) -> None:
        if self._closed:
            raise RuntimeError("RedisBroker is closed")
        if self._reader is None or self._reader.done():
            self._reader = asyncio.create_task(self._read_forever(), name="redis-broker-pubsub")

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for state in list(self._channels.values()):
            for sub in list(state.subs):
                await sub.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None
        await self._client.aclose()

    async def ping(self) -> None:
        with _reaching_redis():
            await self._client.ping()

    # --- publishing ----------------------------------------------------------------------

    async def publish(self, room: str, payload: bytes) -> int:
        with _reaching_redis():
            seq, _epoch = await self._publish_script(
                keys=[self._meta_key(room), self._log_key(room)],
                args=[
                    new_epoch(),
                    payload,
                    max(1, self._history_max),
                    self._ttl_s,
                    self._channel(room),
                ],
            )
        return int(seq)

    async def publish_ephemeral(self, room: str, payload: bytes) -> None:
        with _reaching_redis():
            await self._client.publish(self._channel(room), _EPHEMERAL + b":" + payload)

    # --- history -------------------------------------------------------------------------

    async def position(self, room: str) -> Position:
        with _reaching_redis():
            seq, epoch = await self._position_script(
                keys=[self._meta_key(room), self._log_key(room)],
                args=[new_epoch(), EMPTY_EPOCH_TTL_S],
            )
        return Position(int(seq), epoch.decode())

    async def history(
        self, room: str, after_seq: int, *, epoch: str | None = None
    ) -> list[Envelope] | None:
        if after_seq < 0:
            return None
        with _reaching_redis():
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.hmget(self._meta_key(room), [b"s", b"e"])
                # Never more than the window can hold: a request outside it is refused below.
                pipe.xrange(
                    self._log_key(room), min=f"{after_seq + 1}-0", count=max(1, self._history_max)
                )
                (raw_last, raw_epoch), entries = await pipe.execute()
        current = raw_epoch.decode() if raw_epoch is not None else None
        if epoch is not None and epoch != current:
            return None
        last = int(raw_last or 0)
        if after_seq > last:
            return None
        if after_seq == last:
            return []
        # The stream is trimmed approximately and may hold more than history_max_events;
        # answering only within the window keeps the result the same as MemoryBroker's.
        if last - after_seq > self._history_max:
            return None
        events: list[Envelope] = []
        for expected, (entry_id, fields) in enumerate(entries, start=after_seq + 1):
            if int(entry_id.split(b"-", 1)[0]) != expected:
                return None  # trimmed, expired or evicted: history no longer reaches back
            events.append(Envelope(room, expected, fields.get(b"p", b""), current))
        if len(events) != last - after_seq:
            return None
        return events

    async def last_seq(self, room: str) -> int:
        with _reaching_redis():
            return int(await self._client.hget(self._meta_key(room), b"s") or 0)

    # --- subscribing ---------------------------------------------------------------------

    async def subscribe(self, room: str) -> Subscription:
        self._ensure_reader()
        channel = self._channel(room)
        sub = _RedisSubscription(self, room, channel)
        state = self._channels.get(channel)
        first = state is None
        if state is None:
            state = self._channels[channel] = _Channel(room)
        state.subs.add(sub)
        try:
            async with asyncio.timeout(self._subscribe_timeout_s):
                if first:
                    await self._send_subscription(b"SUBSCRIBE", channel, state.ready)
                await asyncio.shield(state.ready)
        except TimeoutError:
            await sub.close()
            error = self._last_error
            raise BrokerUnavailable(
                f"Redis did not confirm the subscription to {room!r} within "
                f"{self._subscribe_timeout_s} s"
                + (f" (last error: {type(error).__name__}: {error})" if error else "")
            ) from None
        except BaseException as exc:
            # Not handed out, so nobody would ever close it: it would hold the channel
            # and fill its queue for good.
            await sub.close()
            if isinstance(exc, RedisError | OSError):
                raise BrokerUnavailable(f"Redis: {type(exc).__name__}: {exc}") from exc
            raise
        return sub

    async def _release(self, sub: _RedisSubscription) -> None:
        state = self._channels.get(sub.channel)
        if state is None or sub not in state.subs:
            return
        state.subs.discard(sub)
        if state.subs:
            return
        del self._channels[sub.channel]
        if not state.ready.done():
            state.ready.set_exception(
                RedisConnectionError("subscription closed before Redis confirmed it")
            )
            state.ready.exception()  # retrieved: a waiting subscribe re-raises it itself
        if not self._closed:
            await self._send_subscription(b"UNSUBSCRIBE", sub.channel, None)

    async def _send_subscription(
        self, command: bytes, channel: bytes, ack: asyncio.Future[None] | None
    ) -> None:
        async with self._send_lock:
            conn = self._conn
            if conn is None:
                return  # the reader subscribes to every wanted channel when it connects
            self._acks.setdefault(channel, deque()).append(ack)
            try:
                await conn.send_command(command, channel)
            except (RedisError, OSError) as exc:
                # The connection broke: the reader notices, reconnects and resubscribes.
                log.debug("pub/sub %s %r failed: %r", command.decode(), channel, exc)

    async def _read_forever(self) -> None:
        delay = RECONNECT_MIN_S
        pool = self._client.connection_pool
        while True:
            conn: AbstractConnection | None = None
            try:
                conn = await pool.get_connection()
                await self._attach(conn)
                delay = RECONNECT_MIN_S
                while True:
                    response = await conn.read_response(timeout=math.inf, push_request=True)
                    self._handle(response)
            except (RedisError, OSError) as exc:
                self._last_error = exc
                log.warning("redis pub/sub connection down (%s: %s)", type(exc).__name__, exc)
            except Exception as exc:
                # A bug here must not silence every room of the process for good.
                self._last_error = exc
                log.exception("redis pub/sub reader failed; reconnecting")
            finally:
                self._conn = None
                self._acks = {}
                if conn is not None:
                    await conn.disconnect(nowait=True)
                    await pool.release(conn)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_MAX_S)

    async def _attach(self, conn: AbstractConnection) -> None:
        """Make ``conn`` the pub/sub connection, subscribed to every wanted channel."""
        async with self._send_lock:
            # Asked before SUBSCRIBE, while the connection still answers ordinary commands:
            # the id names it in logs and lets tests kill exactly this connection.
            await conn.send_command("CLIENT", "ID")
            try:
                self.pubsub_client_id = int(await conn.read_response())
            except ResponseError:
                self.pubsub_client_id = None  # an ACL without CLIENT: the id is only a nicety
            log.debug("redis pub/sub connection %s attached", self.pubsub_client_id)
            self._acks = {
                channel: deque([state.ready]) for channel, state in self._channels.items()
            }
            if self._acks:
                await conn.send_command(b"SUBSCRIBE", *self._acks)
            self._conn = conn

    def _handle(self, response: Any) -> None:
        if not isinstance(response, list) or len(response) < 3:
            return  # a PONG
        kind, channel = response[0], response[1]
        if kind == b"message":
            state = self._channels.get(channel)
            if state is not None:
                self._dispatch(state, response[2])
        elif kind in (b"subscribe", b"unsubscribe"):
            pending = self._acks.get(channel)
            if not pending:
                return
            ack = pending.popleft()
            if not pending:
                del self._acks[channel]
            if ack is not None and not ack.done():
                ack.set_result(None)

    def _dispatch(self, state: _Channel, data: bytes) -> None:
        head, sep, payload = data.partition(b":")
        if head == _EPHEMERAL and sep:
            envelope = Envelope(state.room, None, payload)
        else:
            seq, dot, epoch = head.partition(b".")
            if not (sep and dot and seq.isdigit() and epoch):
                log.warning("room %s: malformed pub/sub message %r dropped", state.room, data[:40])
                return
            envelope = Envelope(state.room, int(seq), payload, epoch.decode())
        for sub in list(state.subs):
            sub.deliver(envelope)


class RedisPresence:
    """Room-wide viewer counts summed over the processes that reported within ``ttl_s``.

    Each process refreshes its reports (the hub does, every third of the TTL); one that
    stops, because it died or lost Redis, stops counting once its reports expire.
    """

    def __init__(
        self,
        redis: str | Redis,
        *,
        process_id: str | None = None,
        key_prefix: str = "lc",
        ttl_s: float = PRESENCE_TTL_S,
    ) -> None:
        self._owns_client = isinstance(redis, str)
        self._client = redis_client(redis) if isinstance(redis, str) else redis
        self.process_id = process_id or (
            f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        )
        self._prefix = key_prefix
        self._ttl_ms = max(1, round(ttl_s * 1000))
        self._report_script = self._client.register_script(_REPORT_LUA)
        self._count_script = self._client.register_script(_COUNT_LUA)
        self._reported: set[str] = set()

    def _keys(self, room: str) -> list[str]:
        base = f"{self._prefix}:presence:{_tag(room)}"
        return [f"{base}:procs", f"{base}:counts"]

    async def report(self, room: str, local_count: int) -> None:
        count = max(0, int(local_count))
        with _reaching_redis():
            await self._report_script(
                keys=self._keys(room), args=[self.process_id, count, self._ttl_ms]
            )
        if count:
            self._reported.add(room)
        else:
            self._reported.discard(room)

    async def count(self, room: str) -> int:
        with _reaching_redis():
            return int(await self._count_script(keys=self._keys(room)))

    async def close(self) -> None:
        # A clean shutdown withdraws at once instead of counting on until the TTL.
        for room in list(self._reported):
            with contextlib.suppress(BrokerUnavailable):
                await self.report(room, 0)
        self._reported.clear()
        if self._owns_client:
            await self._client.aclose()
