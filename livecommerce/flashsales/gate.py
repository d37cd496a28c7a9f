"""The admission gate: who may still win a flash sale, answered without the database.

In a rush most buyers lose. The gate holds each running sale's remaining units and every
buyer's claimed units; a request that cannot win is refused here, and only one that may
win goes on to the database, which stays the arbiter (its conditional updates decide, so a
lost or wrong gate can never oversell). The same gate remembers, for a couple of seconds,
that a plain product is out of stock everywhere, so the losers of a hot product a room is
selling are answered the same way.

Two implementations with one contract (tests/flashsales/test_gate.py runs against both):
``MemoryGate`` for the embedded default (one process) and ``RedisGate`` for the scaled mode,
where one Lua script checks, decrements and counts the buyer in one atomic step.

What a gate may get wrong, and how it is put right:

- It admits too many (rebuilt from a database snapshot while orders were in flight, or
  several processes without Redis): the database refuses the extra ones. Slower, never wrong.
- It admits too few (a process died between admission and its give-back): the order path
  checks a "sold out" against the database at most once a second per sale and rebuilds the
  gate when the two disagree (``flashsales.admission``).
- It is empty (a new process, Redis restarted or flushed): ``UNKNOWN``; the caller rebuilds
  it from the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, NamedTuple, Protocol

from livecommerce.sqltypes import utcnow

# How long "out of stock everywhere" is believed without asking the database again. A
# restock or a cancellation reaches buyers at most this late.
SOLD_OUT_TTL_S = 2.0
# Buyers of a product remembered for keyed retries (a retry of a won order is a replay).
HOLDERS_TTL_S = 3600
# A sale's gate outlives its end by this much (late requests still get the right answer).
SALE_GRACE_S = 300


class Verdict(StrEnum):
    ADMIT = "admit"  # units taken from the gate; give them back if the order does not commit
    SOLD_OUT = "sold_out"
    LIMIT = "limit"
    PASS = "pass"  # may be a replay of this buyer's own order: let the database answer
    UNKNOWN = "unknown"  # the gate does not hold this sale


class Answer(NamedTuple):
    verdict: Verdict
    limit: int | None  # the sale's per-customer limit (for the 409's message)
    remaining: int  # units the gate still holds (after this admission)


class Gate(Protocol):
    async def admit(
        self, sale_id: int, buyer_id: int, quantity: int, keyed: bool, product_id: int = 0
    ) -> Answer:
        """The verdict; on ADMIT the units are taken (give them back if unused). With a
        ``product_id`` that is not the sale's: UNKNOWN, nothing taken."""
        ...

    async def peek(
        self, sale_id: int, buyer_id: int, quantity: int, keyed: bool, product_id: int = 0
    ) -> Answer:
        """What ``admit`` would answer, taking nothing."""
        ...

    async def give_back(self, sale_id: int, buyer_id: int, quantity: int) -> None: ...

    async def load_sale(
        self,
        sale_id: int,
        remaining: int,
        claims: dict[int, int],
        limit: int | None,
        ends_at: datetime,
        *,
        replace: bool = False,
        product_id: int = 0,
    ) -> None: ...

    async def forget_sale(self, sale_id: int) -> None: ...

    async def sold_out(self, product_id: int, buyer_id: int, keyed: bool) -> bool: ...

    async def mark_sold_out(self, product_id: int) -> None: ...

    async def restocked(self, product_ids: list[int]) -> None: ...

    async def note_buyer(self, product_id: int, buyer_id: int) -> None: ...

    async def close(self) -> None: ...


def _ttl_s(ends_at: datetime) -> int:
    return max(1, int((ends_at - utcnow()).total_seconds()) + SALE_GRACE_S)


@dataclass
class _Sale:
    remaining: int
    limit: int | None
    expires: float
    claims: dict[int, int] = field(default_factory=dict)
    product_id: int = 0


def _decide(held: int, quantity: int, remaining: int, limit: int | None, keyed: bool) -> Verdict:
    if limit is not None and held + quantity > limit:
        refusal = Verdict.LIMIT
    elif remaining < quantity:
        refusal = Verdict.SOLD_OUT
    else:
        return Verdict.ADMIT
    # A buyer who already holds units and sends an Idempotency-Key may be retrying the
    # order that took them: the stored response, not a 409, is the answer.
    return Verdict.PASS if keyed and held > 0 else refusal


class MemoryGate:
    """In-process gate for the embedded default (one API process)."""

    def __init__(self) -> None:
        self._sales: dict[int, _Sale] = {}
        self._sold_out: dict[int, float] = {}
        self._holders: dict[int, tuple[float, set[int]]] = {}

    async def admit(
        self, sale_id: int, buyer_id: int, quantity: int, keyed: bool, product_id: int = 0
    ) -> Answer:
        return self._admit(sale_id, buyer_id, quantity, keyed, product_id, take=True)

    async def peek(
        self, sale_id: int, buyer_id: int, quantity: int, keyed: bool, product_id: int = 0
    ) -> Answer:
        return self._admit(sale_id, buyer_id, quantity, keyed, product_id, take=False)

    def _admit(
        self,
        sale_id: int,
        buyer_id: int,
        quantity: int,
        keyed: bool,
        product_id: int,
        *,
        take: bool,
    ) -> Answer:
        sale = self._sales.get(sale_id)
        if sale is None or sale.expires <= time.monotonic():
            self._sales.pop(sale_id, None)
            return Answer(Verdict.UNKNOWN, None, 0)
        if product_id and product_id != sale.product_id:
            return Answer(Verdict.UNKNOWN, None, 0)
        held = sale.claims.get(buyer_id, 0)
        verdict = _decide(held, quantity, sale.remaining, sale.limit, keyed)
        if verdict is Verdict.ADMIT and take:
            sale.remaining -= quantity
            sale.claims[buyer_id] = held + quantity
        return Answer(verdict, sale.limit, sale.remaining)

    async def give_back(self, sale_id: int, buyer_id: int, quantity: int) -> None:
        sale = self._sales.get(sale_id)
        if sale is None:
            return
        sale.remaining += quantity
        left = sale.claims.get(buyer_id, 0) - quantity
        if left > 0:
            sale.claims[buyer_id] = left
        else:
            sale.claims.pop(buyer_id, None)

    async def load_sale(
        self,
        sale_id: int,
        remaining: int,
        claims: dict[int, int],
        limit: int | None,
        ends_at: datetime,
        *,
        replace: bool = False,
        product_id: int = 0,
    ) -> None:
        if sale_id in self._sales and not replace:
            return
        expires = time.monotonic() + _ttl_s(ends_at)
        self._sales[sale_id] = _Sale(remaining, limit, expires, dict(claims), product_id)

    async def forget_sale(self, sale_id: int) -> None:
        self._sales.pop(sale_id, None)

    async def sold_out(self, product_id: int, buyer_id: int, keyed: bool) -> bool:
        until = self._sold_out.get(product_id)
        now = time.monotonic()
        if until is None or until <= now:
            self._sold_out.pop(product_id, None)
            return False
        if keyed:
            entry = self._holders.get(product_id)
            if entry is not None and entry[0] > now and buyer_id in entry[1]:
                return False
        return True

    async def mark_sold_out(self, product_id: int) -> None:
        now = time.monotonic()
        self._sold_out[product_id] = now + SOLD_OUT_TTL_S
        if len(self._sold_out) > 10_000:  # bounded: drop what has run out
            self._sold_out = {p: t for p, t in self._sold_out.items() if t > now}

    async def restocked(self, product_ids: list[int]) -> None:
        for product_id in product_ids:
            self._sold_out.pop(product_id, None)

    async def note_buyer(self, product_id: int, buyer_id: int) -> None:
        now = time.monotonic()
        expires, buyers = self._holders.get(product_id, (0.0, set()))
        if expires <= now:
            buyers = set()
        buyers.add(buyer_id)
        self._holders[product_id] = (now + HOLDERS_TTL_S, buyers)
        if len(self._holders) > 10_000:
            self._holders = {p: e for p, e in self._holders.items() if e[0] > now}

    async def close(self) -> None:
        self._sales.clear()
        self._sold_out.clear()
        self._holders.clear()


# KEYS: the sale's hash (remaining, limit, product) and its claims hash. ARGV: buyer, quantity,
# keyed, take (0: only say what the answer would be), product (0: not checked).
# Returns the verdict, the limit (0: none) and the units left.
_ADMIT = """
if redis.call('EXISTS', KEYS[1]) == 0 then return {'unknown', 0, 0} end
if ARGV[5] ~= '0' and redis.call('HGET', KEYS[1], 'product') ~= ARGV[5] then
  return {'unknown', 0, 0}
end
local qty = tonumber(ARGV[2])
local held = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
local remaining = tonumber(redis.call('HGET', KEYS[1], 'remaining'))
local limit = tonumber(redis.call('HGET', KEYS[1], 'limit') or '0')
local refusal = false
if limit > 0 and held + qty > limit then refusal = 'limit'
elseif remaining < qty then refusal = 'sold_out' end
if refusal then
  if ARGV[3] == '1' and held > 0 then return {'pass', limit, remaining} end
  return {refusal, limit, remaining}
end
if ARGV[4] == '1' then
  remaining = redis.call('HINCRBY', KEYS[1], 'remaining', -qty)
  redis.call('HINCRBY', KEYS[2], ARGV[1], qty)
end
return {'admit', limit, remaining}
"""

# Only into a gate that still exists: a give-back after the sale was forgotten is dropped.
_GIVE_BACK = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HINCRBY', KEYS[1], 'remaining', tonumber(ARGV[2]))
local left = redis.call('HINCRBY', KEYS[2], ARGV[1], -tonumber(ARGV[2]))
if left <= 0 then redis.call('HDEL', KEYS[2], ARGV[1]) end
return 1
"""

# ARGV: remaining, limit (0 = none), ttl seconds, replace (0/1), product, then buyer,
# quantity pairs.
_LOAD = """
if ARGV[4] == '0' and redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('HSET', KEYS[1], 'remaining', ARGV[1], 'limit', ARGV[2], 'product', ARGV[5])
for i = 6, #ARGV, 2 do redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1]) end
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
if #ARGV > 5 then redis.call('EXPIRE', KEYS[2], tonumber(ARGV[3])) end
return 1
"""


# Admissions sent to Redis in one pipeline at most (a rush's thousands go in a few).
ADMIT_BATCH = 256


@dataclass(eq=False, slots=True)
class _Call:
    """A request's commands waiting for the next pipeline: ``ask`` puts them on it, their
    results go to ``future``; ``unclaimed`` gets them if nobody waits any more."""

    ask: Callable[[Any], Awaitable[None]]
    future: asyncio.Future[list[Any]]
    unclaimed: Callable[[list[Any]], Awaitable[None]] | None


class RedisGate:
    """The gate in Redis, shared by every API process of the scaled mode.

    Its client has short timeouts: when Redis is slow or down, the order path goes straight
    to the database (``flashsales.admission``) instead of waiting.
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "lc:gate:",
        timeout_s: float = 1.0,
        max_connections: int = 64,
        queue_timeout_s: float = 20.0,
    ) -> None:
        from redis.asyncio import BlockingConnectionPool, Redis

        # A bounded pool: a rush of thousands of requests queues for a few connections
        # instead of opening a socket each (whose connect timeouts, on a busy event loop,
        # would look like Redis being down). The wait for a free connection is the rush's
        # own length, not Redis failing, so it may last far longer than one call may.
        pool = BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=queue_timeout_s,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            decode_responses=True,
        )
        self._redis: Any = Redis(connection_pool=pool)
        self._prefix = prefix
        self._admit = self._redis.register_script(_ADMIT)
        self._give_back = self._redis.register_script(_GIVE_BACK)
        self._load = self._redis.register_script(_LOAD)
        self._pending: list[_Call] = []
        self._flusher: asyncio.Task[None] | None = None

    def _sale_keys(self, sale_id: int) -> list[str]:
        base = f"{self._prefix}sale:{sale_id}"
        # One hash tag: both keys of a sale land on the same Redis Cluster slot.
        return [f"{base}:{{s{sale_id}}}", f"{base}:claims:{{s{sale_id}}}"]

    async def admit(
        self, sale_id: int, buyer_id: int, quantity: int, keyed: bool, product_id: int = 0
    ) -> Answer:
        return await self._run_admit(sale_id, buyer_id, quantity, keyed, product_id, take=True)

    async def peek(
        self, sale_id: int, buyer_id: int, quantity: int, keyed: bool, product_id: int = 0
    ) -> Answer:
        return await self._run_admit(sale_id, buyer_id, quantity, keyed, product_id, take=False)

    async def _run_admit(
        self,
        sale_id: int,
        buyer_id: int,
        quantity: int,
        keyed: bool,
        product_id: int,
        *,
        take: bool,
    ) -> Answer:
        keys = self._sale_keys(sale_id)
        args = [buyer_id, quantity, 1 if keyed else 0, 1 if take else 0, product_id]

        async def ask(pipe: Any) -> None:
            await self._admit(keys=keys, args=args, client=pipe)

        async def unclaimed(results: list[Any]) -> None:
            if results[0][0] == Verdict.ADMIT and take:
                # Its request went away while it waited: the units it was given go back,
                # or the gate would hold them away from everyone until rebuilt.
                await self._give_back(keys=keys, args=[buyer_id, quantity])

        [(verdict, limit, remaining)] = await self._batched(ask, unclaimed)
        return Answer(Verdict(verdict), int(limit) or None, int(remaining))

    async def _batched(
        self,
        ask: Callable[[Any], Awaitable[None]],
        unclaimed: Callable[[list[Any]], Awaitable[None]] | None = None,
    ) -> list[Any]:
        """The results of the commands ``ask`` puts on a pipeline, sent with every other
        request's in the next round trip."""
        call = _Call(ask, asyncio.get_running_loop().create_future(), unclaimed)
        self._pending.append(call)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await call.future

    async def _flush(self) -> None:
        """Every admission and sold-out check asked for since the last round trip, in one
        pipeline.

        In a rush thousands of requests ask at once; one Redis call each would queue them for
        the pool's connections, a few per turn of a busy event loop. Batched, a turn answers
        them all. The scripts run once per request, atomically, in arrival order."""
        while self._pending:
            batch, self._pending = self._pending[:ADMIT_BATCH], self._pending[ADMIT_BATCH:]
            try:
                pipe = self._redis.pipeline(transaction=False)
                sizes = []
                for call in batch:
                    before = len(pipe)
                    await call.ask(pipe)
                    sizes.append(len(pipe) - before)
                results = await pipe.execute()
            except Exception as exc:  # Redis down or slow: every waiter hears it
                for call in batch:
                    if not call.future.done():
                        call.future.set_exception(exc)
                continue
            at = 0
            for call, size in zip(batch, sizes, strict=True):
                mine, at = results[at : at + size], at + size
                if not call.future.done():
                    call.future.set_result(mine)
                elif call.unclaimed is not None:
                    with contextlib.suppress(Exception):
                        await call.unclaimed(mine)

    async def give_back(self, sale_id: int, buyer_id: int, quantity: int) -> None:
        await self._give_back(keys=self._sale_keys(sale_id), args=[buyer_id, quantity])

    async def load_sale(
        self,
        sale_id: int,
        remaining: int,
        claims: dict[int, int],
        limit: int | None,
        ends_at: datetime,
        *,
        replace: bool = False,
        product_id: int = 0,
    ) -> None:
        args: list[Any] = [
            remaining,
            limit or 0,
            _ttl_s(ends_at),
            1 if replace else 0,
            product_id,
        ]
        for buyer, quantity in sorted(claims.items()):
            args.extend((buyer, quantity))
        await self._load(keys=self._sale_keys(sale_id), args=args)

    async def forget_sale(self, sale_id: int) -> None:
        await self._redis.delete(*self._sale_keys(sale_id))

    async def sold_out(self, product_id: int, buyer_id: int, keyed: bool) -> bool:
        marker = f"{self._prefix}soldout:{product_id}"
        holders = f"{self._prefix}buyers:{product_id}"

        async def ask(pipe: Any) -> None:
            pipe.exists(marker)
            if keyed:
                pipe.sismember(holders, buyer_id)

        # In the same round trip as the admissions asked for at the same moment: every
        # order request asks this first, and one call each would cost a round trip each.
        marked, *holder = await self._batched(ask)
        return bool(marked) and not (holder and holder[0])

    async def mark_sold_out(self, product_id: int) -> None:
        marker = f"{self._prefix}soldout:{product_id}"
        await self._redis.set(marker, 1, px=int(SOLD_OUT_TTL_S * 1000))

    async def restocked(self, product_ids: list[int]) -> None:
        if product_ids:
            await self._redis.delete(*(f"{self._prefix}soldout:{p}" for p in product_ids))

    async def note_buyer(self, product_id: int, buyer_id: int) -> None:
        key = f"{self._prefix}buyers:{product_id}"
        pipe = self._redis.pipeline(transaction=False)
        pipe.sadd(key, buyer_id)
        pipe.expire(key, HOLDERS_TTL_S)
        await pipe.execute()

    async def close(self) -> None:
        await self._redis.aclose()
        await self._redis.connection_pool.disconnect()


class Breaker:
    """Skips the gate for a moment after it failed, so a Redis outage costs each request
    nothing more than the database path (not a timeout each)."""

    def __init__(self, cool_off_s: float = 2.0) -> None:
        self.cool_off_s = cool_off_s
        self._open_until = 0.0

    @property
    def open(self) -> bool:
        return time.monotonic() < self._open_until

    def trip(self) -> None:
        self._open_until = time.monotonic() + self.cool_off_s
