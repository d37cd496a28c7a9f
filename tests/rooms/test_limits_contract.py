"""One contract for the room limits: the in-memory default and the Redis one.

Each test uses keys of its own, so tests never see each other's counts even though the
Redis database is shared by the whole session.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from redis.asyncio import Redis

from livecommerce.rooms.limits import (
    Cap,
    MemoryLimits,
    Rate,
    RedisLimits,
    RoomLimits,
    Ticket,
    address_room_key,
    user_key,
    user_room_key,
)
from tests.fixtures.redis import prepare_redis

IMPLEMENTATIONS = ["memory", "redis"]
PREFIX = "lctest"
SLOW = Rate(burst=3, refill_s=60.0)  # nothing refills within a test

LimitsFactory = Callable[..., Awaitable[RoomLimits]]


@pytest.fixture(params=IMPLEMENTATIONS)
async def make_limits(request: pytest.FixtureRequest) -> AsyncIterator[LimitsFactory]:
    url = await prepare_redis() if request.param == "redis" else None
    made: list[RoomLimits] = []

    async def make(**options: Any) -> RoomLimits:
        limits: RoomLimits = (
            MemoryLimits() if url is None else RedisLimits(url, key_prefix=PREFIX, **options)
        )
        made.append(limits)
        return limits

    yield make
    for limits in made:
        await limits.close()


@pytest.fixture
async def limits(make_limits: LimitsFactory) -> RoomLimits:
    return await make_limits()


def fresh() -> str:
    return uuid.uuid4().hex


async def test_a_burst_passes_then_messages_wait_with_a_hint(limits: RoomLimits) -> None:
    """The burst is taken at once; the next message is refused with the wait until a token."""
    key = fresh()
    assert [await limits.take_chat(key, SLOW) for _ in range(3)] == [0, 0, 0]
    wait = await limits.take_chat(key, SLOW)
    assert 0 < wait <= 60
    assert await limits.take_chat(key, SLOW) > 0  # a refusal takes nothing, but adds nothing


async def test_buckets_are_per_key(limits: RoomLimits) -> None:
    """One user's spent bucket does not limit another."""
    spent, other = fresh(), fresh()
    for _ in range(3):
        await limits.take_chat(spent, SLOW)
    assert await limits.take_chat(spent, SLOW) > 0
    assert await limits.take_chat(other, SLOW) == 0


async def test_a_bucket_refills(limits: RoomLimits) -> None:
    """After the refill interval a spent bucket gives a message again."""
    fast = Rate(burst=1, refill_s=0.05)
    key = fresh()
    assert await limits.take_chat(key, fast) == 0
    await asyncio.sleep(0.3)
    assert await limits.take_chat(key, fast) == 0


async def test_sockets_are_capped_per_key_and_released(limits: RoomLimits) -> None:
    """Up to the cap sockets are admitted; the next gets the full cap; closing one frees it."""
    caps = [Cap(user_room_key(7, 1) + fresh(), 2), Cap(user_key(7) + fresh(), 10)]
    first = await limits.open_socket(caps)
    second = await limits.open_socket(caps)
    assert isinstance(first, Ticket) and isinstance(second, Ticket)
    refused = await limits.open_socket(caps)
    assert refused == caps[0]
    await limits.close_socket(first)
    third = await limits.open_socket(caps)
    assert isinstance(third, Ticket)
    await limits.close_socket(first)  # twice: no effect
    assert await limits.open_socket(caps) == caps[0]


async def test_a_refused_socket_counts_under_no_key(limits: RoomLimits) -> None:
    """Refused by its room cap, a socket is not counted under the user's overall cap either."""
    suffix = fresh()
    overall = Cap(user_key(8) + suffix, 3)
    room_a = [Cap(user_room_key(8, 1) + suffix, 1), overall]
    room_b = [Cap(user_room_key(8, 2) + suffix, 5), overall]
    assert isinstance(await limits.open_socket(room_a), Ticket)
    for _ in range(5):
        assert await limits.open_socket(room_a) == room_a[0]
    assert isinstance(await limits.open_socket(room_b), Ticket)
    assert isinstance(await limits.open_socket(room_b), Ticket)
    assert await limits.open_socket(room_b) == overall  # three in all, across the two rooms


async def test_guests_are_capped_per_address(limits: RoomLimits) -> None:
    """Guest sockets count per client address and room."""
    stream = int(uuid.uuid4().int % 2**31)
    here = [Cap(address_room_key("10.0.0.1", stream), 1)]
    there = [Cap(address_room_key("10.0.0.2", stream), 1)]
    assert isinstance(await limits.open_socket(here), Ticket)
    assert await limits.open_socket(here) == here[0]
    assert isinstance(await limits.open_socket(there), Ticket)


async def test_no_caps_always_admits(limits: RoomLimits) -> None:
    """A socket with nothing to count against is admitted."""
    ticket = await limits.open_socket([])
    assert isinstance(ticket, Ticket)
    await limits.close_socket(ticket)


# --- Redis only: several processes, crashes, outages -------------------------------------


async def test_processes_share_chat_buckets_and_socket_counts() -> None:
    """Two processes draw from one bucket and fill one socket cap."""
    url = await prepare_redis()
    a, b = RedisLimits(url, key_prefix=PREFIX), RedisLimits(url, key_prefix=PREFIX)
    try:
        key = fresh()
        assert await a.take_chat(key, SLOW) == 0
        assert await b.take_chat(key, SLOW) == 0
        assert await a.take_chat(key, SLOW) == 0
        assert await b.take_chat(key, SLOW) > 0
        caps = [Cap(fresh(), 2)]
        assert isinstance(await a.open_socket(caps), Ticket)
        assert isinstance(await b.open_socket(caps), Ticket)
        assert await a.open_socket(caps) == caps[0]
        assert await b.open_socket(caps) == caps[0]
    finally:
        await a.close()
        await b.close()


async def test_a_crashed_process_stops_counting_and_a_live_one_keeps_counting() -> None:
    """Claims of a process that stopped refreshing expire; those refreshed do not."""
    url = await prepare_redis()
    crashed = RedisLimits(url, key_prefix=PREFIX, ttl_s=0.5, refresh_s=3600)
    live = RedisLimits(url, key_prefix=PREFIX, ttl_s=0.5, refresh_s=0.05)
    other = RedisLimits(url, key_prefix=PREFIX)
    try:
        gone, kept = [Cap(fresh(), 1)], [Cap(fresh(), 1)]
        assert isinstance(await crashed.open_socket(gone), Ticket)
        assert isinstance(await live.open_socket(kept), Ticket)
        assert await other.open_socket(gone) == gone[0]
        await asyncio.sleep(1.5)
        assert isinstance(await other.open_socket(gone), Ticket)
        assert await other.open_socket(kept) == kept[0]
    finally:
        for limits in (crashed, live, other):
            await limits.close()


async def test_a_clean_close_withdraws_its_claims() -> None:
    """A process that stops cleanly frees its users' sockets at once, not after the TTL."""
    url = await prepare_redis()
    leaving = RedisLimits(url, key_prefix=PREFIX)
    staying = RedisLimits(url, key_prefix=PREFIX)
    try:
        caps = [Cap(fresh(), 1)]
        assert isinstance(await leaving.open_socket(caps), Ticket)
        await leaving.close()
        assert isinstance(await staying.open_socket(caps), Ticket)
    finally:
        await leaving.close()
        await staying.close()


async def test_claims_come_back_after_redis_lost_them() -> None:
    """The heartbeat counts a process's open sockets again once Redis has forgotten them."""
    url = await prepare_redis()
    holder = RedisLimits(url, key_prefix=PREFIX, refresh_s=0.05)
    other = RedisLimits(url, key_prefix=PREFIX)
    admin = Redis.from_url(url)
    try:
        cap = Cap(fresh(), 1)
        assert isinstance(await holder.open_socket([cap]), Ticket)
        await admin.delete(f"{PREFIX}:limits:sockets:{cap.key}")
        await asyncio.sleep(0.3)
        assert await other.open_socket([cap]) == cap
    finally:
        await holder.close()
        await other.close()
        await admin.aclose()


async def test_redis_down_fails_open_with_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    """With Redis unreachable, chat and joins go on unlimited, and the log says so once."""
    limits = RedisLimits("redis://127.0.0.1:1/0", key_prefix=PREFIX, timeout_s=0.2)
    try:
        with caplog.at_level(logging.WARNING, logger="livecommerce.rooms.limits"):
            for _ in range(10):
                assert await limits.take_chat("user:1", SLOW) == 0
            tickets = [await limits.open_socket([Cap("k", 1)]) for _ in range(3)]
        assert all(isinstance(t, Ticket) and not t.counted for t in tickets)
        warnings = [r for r in caplog.records if r.name == "livecommerce.rooms.limits"]
        assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
        assert warnings[0].exc_info is None  # a line, not a traceback
        for ticket in tickets:
            assert isinstance(ticket, Ticket)
            await limits.close_socket(ticket)
    finally:
        await limits.close()
