"""One contract for every broker and presence: the in-memory default and the Redis one.

Each test uses rooms of its own, so tests never see each other's events even though the
Redis database is shared by the whole session.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from redis.asyncio import Redis

from livecommerce.rooms.broker import (
    Broker,
    BrokerUnavailable,
    Envelope,
    MemoryBroker,
    Position,
    Subscription,
)
from livecommerce.rooms.presence import MemoryPresence, Presence
from livecommerce.rooms.redis_broker import EMPTY_EPOCH_TTL_S, RedisBroker, RedisPresence
from tests.fixtures.redis import prepare_redis

IMPLEMENTATIONS = ["memory", "redis"]
PREFIX = "lctest"
TIMEOUT_S = 5.0  # a message not delivered by then is lost

BrokerFactory = Callable[..., Awaitable[Broker]]
RedisBrokerFactory = Callable[..., Awaitable[RedisBroker]]


@pytest.fixture(params=IMPLEMENTATIONS)
async def make_broker(request: pytest.FixtureRequest) -> AsyncIterator[BrokerFactory]:
    url = await prepare_redis() if request.param == "redis" else None
    made: list[Broker] = []

    async def make(**options: Any) -> Broker:
        broker: Broker
        if url is None:
            broker = MemoryBroker(**options)
        else:
            broker = RedisBroker(url, key_prefix=PREFIX, **options)
        await broker.start()
        made.append(broker)
        return broker

    yield make
    for broker in made:
        await broker.close()


@pytest.fixture
async def broker(make_broker: BrokerFactory) -> Broker:
    return await make_broker()


@pytest.fixture
async def make_redis_broker() -> AsyncIterator[RedisBrokerFactory]:
    """Brokers standing for separate API processes that share one Redis."""
    url = await prepare_redis()
    made: list[RedisBroker] = []

    async def make(**options: Any) -> RedisBroker:
        broker = RedisBroker(url, key_prefix=options.pop("key_prefix", PREFIX), **options)
        await broker.start()
        made.append(broker)
        return broker

    yield make
    for broker in made:
        await broker.close()


@pytest.fixture
async def redis_admin() -> AsyncIterator[Redis]:
    """A plain client, to look at and tamper with what the broker keeps in Redis."""
    client = Redis.from_url(await prepare_redis(), socket_timeout=5)
    yield client
    await client.aclose()


def new_room() -> str:
    return f"stream:{uuid.uuid4().hex[:12]}"


@pytest.fixture
def room() -> str:
    return new_room()


async def receive(sub: Subscription, count: int) -> list[Envelope]:
    """The next ``count`` messages of ``sub``; raises TimeoutError after TIMEOUT_S."""
    received: list[Envelope] = []
    # A timeout ends the iterator it interrupts; the subscription itself goes on.
    iterator = aiter(sub)
    async with asyncio.timeout(TIMEOUT_S):
        while len(received) < count:
            received.append(await anext(iterator))
    return received


async def assert_silent(sub: Subscription, seconds: float = 0.2) -> None:
    """Fails if ``sub`` yields anything within ``seconds``."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            async for envelope in sub:
                pytest.fail(f"unexpected message {envelope}")


async def assert_ended(sub: Subscription) -> None:
    """Fails unless iterating ``sub`` ends promptly without yielding anything."""
    async with asyncio.timeout(TIMEOUT_S):
        rest = [envelope async for envelope in sub]
    assert rest == []


# --- numbering and delivery ----------------------------------------------------------------


async def test_seq_starts_at_one_and_increments_without_gaps(broker: Broker, room: str) -> None:
    """A room's events are numbered 1, 2, 3, ... and last_seq follows the newest."""
    assert await broker.last_seq(room) == 0
    seqs = [await broker.publish(room, f"e{n}".encode()) for n in range(5)]
    assert seqs == [1, 2, 3, 4, 5]
    assert await broker.last_seq(room) == 5


async def test_subscriber_receives_events_in_order(broker: Broker, room: str) -> None:
    """Events published after subscribe arrive in seq order with their payloads."""
    sub = await broker.subscribe(room)
    payloads = [f"event {n}".encode() for n in range(10)] + [b"\x00:\xff binary:"]
    for payload in payloads:
        await broker.publish(room, payload)
    received = await receive(sub, len(payloads))
    assert received == [Envelope(room, n, p) for n, p in enumerate(payloads, start=1)]
    await sub.close()


async def test_every_subscriber_of_a_room_receives_everything(broker: Broker, room: str) -> None:
    """Two subscriptions to one room each get every event."""
    first, second = await broker.subscribe(room), await broker.subscribe(room)
    for n in range(5):
        await broker.publish(room, f"e{n}".encode())
    expected = [Envelope(room, n + 1, f"e{n}".encode()) for n in range(5)]
    assert await receive(first, 5) == expected
    assert await receive(second, 5) == expected
    await first.close()
    await second.close()


async def test_take_ready_drains_a_burst_without_waiting(broker: Broker, room: str) -> None:
    """After one message is read, the rest of a burst is taken at once, in order, capped."""
    sub = await broker.subscribe(room)
    assert sub.take_ready(10) == []
    for n in range(6):
        await broker.publish(room, f"b{n}".encode())
    first = await receive(sub, 1)
    rest: list[Envelope] = []
    async with asyncio.timeout(TIMEOUT_S):  # Redis hands messages over from its reader task
        while len(rest) < 5:
            chunk = sub.take_ready(3)
            assert len(chunk) <= 3
            rest += chunk
            await asyncio.sleep(0.01)
    assert [e.seq for e in first + rest] == [1, 2, 3, 4, 5, 6]
    assert sub.take_ready(10) == []
    await sub.close()
    assert sub.take_ready(10) == []
    await assert_ended(sub)


async def test_rooms_are_isolated(broker: Broker) -> None:
    """Events of one room neither reach another room's subscribers nor use its sequence."""
    room_a, room_b = new_room(), new_room()
    sub_a, sub_b = await broker.subscribe(room_a), await broker.subscribe(room_b)
    assert await broker.publish(room_a, b"a1") == 1
    assert await broker.publish(room_a, b"a2") == 2
    await broker.publish_ephemeral(room_a, b"a-ephemeral")
    assert await broker.publish(room_b, b"b1") == 1
    assert await receive(sub_b, 1) == [Envelope(room_b, 1, b"b1")]
    await assert_silent(sub_b)
    assert [e.payload for e in await receive(sub_a, 3)] == [b"a1", b"a2", b"a-ephemeral"]
    assert await broker.history(room_b, 0) == [Envelope(room_b, 1, b"b1")]
    await sub_a.close()
    await sub_b.close()


async def test_ephemeral_messages_are_delivered_unnumbered_and_not_kept(
    broker: Broker, room: str
) -> None:
    """An ephemeral message arrives in publish order with seq None and stays out of history."""
    sub = await broker.subscribe(room)
    await broker.publish(room, b"first")
    await broker.publish_ephemeral(room, b"reactions")
    await broker.publish(room, b"second")
    assert await receive(sub, 3) == [
        Envelope(room, 1, b"first"),
        Envelope(room, None, b"reactions"),
        Envelope(room, 2, b"second"),
    ]
    assert await broker.last_seq(room) == 2
    assert await broker.history(room, 0) == [
        Envelope(room, 1, b"first"),
        Envelope(room, 2, b"second"),
    ]
    await sub.close()


async def test_ephemeral_message_to_a_room_without_subscribers_is_dropped(
    broker: Broker, room: str
) -> None:
    """Nobody listening: the ephemeral message goes nowhere and numbers nothing."""
    await broker.publish_ephemeral(room, b"nobody hears this")
    assert await broker.last_seq(room) == 0
    assert await broker.history(room, 0) == []


# --- history -------------------------------------------------------------------------------


async def test_history_returns_exactly_the_events_after_a_seq(broker: Broker, room: str) -> None:
    """history(n) is every event with seq > n, in order."""
    for n in range(1, 11):
        await broker.publish(room, f"e{n}".encode())
    assert await broker.history(room, 3) == [
        Envelope(room, n, f"e{n}".encode()) for n in range(4, 11)
    ]
    everything = await broker.history(room, 0)
    assert everything is not None
    assert [e.seq for e in everything] == list(range(1, 11))


async def test_history_is_empty_at_the_head(broker: Broker, room: str) -> None:
    """A consumer that has everything gets [] (not None), also for a room without events."""
    assert await broker.history(room, 0) == []
    await broker.publish(room, b"only")
    assert await broker.history(room, 1) == []


async def test_history_refuses_a_seq_ahead_of_the_room_or_negative(
    broker: Broker, room: str
) -> None:
    """after_seq beyond the newest event, or below zero, is answered with None."""
    assert await broker.history(room, 1) is None
    await broker.publish(room, b"e1")
    await broker.publish(room, b"e2")
    assert await broker.history(room, 3) is None
    assert await broker.history(room, -1) is None


async def test_history_refuses_once_trimmed_past(make_broker: BrokerFactory, room: str) -> None:
    """The newest history_max_events are always there; older ones come whole or not at all."""
    broker = await make_broker(history_max_events=5)
    for n in range(1, 21):
        await broker.publish(room, f"e{n}".encode())
    assert await broker.history(room, 0) is None
    for after in range(21):
        events = await broker.history(room, after)
        if after >= 15:
            assert events is not None, f"history after {after} must be kept"
        if events is not None:
            expected = [Envelope(room, n, f"e{n}".encode()) for n in range(after + 1, 21)]
            assert events == expected, f"history after {after} is not exact"


# --- closing -------------------------------------------------------------------------------


async def test_events_carry_the_epoch_their_position_named(broker: Broker, room: str) -> None:
    """The epoch read before any event is the one the room's events then carry, and history
    answers only within it."""
    before = await broker.position(room)
    assert before.seq == 0 and before.epoch
    sub = await broker.subscribe(room)
    await broker.publish(room, b"one")
    await broker.publish(room, b"two")
    received = await receive(sub, 2)
    assert [(e.seq, e.epoch) for e in received] == [(1, before.epoch), (2, before.epoch)]
    assert await broker.position(room) == Position(2, before.epoch)
    history = await broker.history(room, 0, epoch=before.epoch)
    assert history == [Envelope(room, 1, b"one"), Envelope(room, 2, b"two")]
    assert all(e.epoch == before.epoch for e in history)
    assert await broker.history(room, 0, epoch="not-" + before.epoch) is None
    assert await broker.history(room, 2, epoch="not-" + before.epoch) is None


async def test_a_forgotten_room_comes_back_in_a_new_epoch(
    make_broker: BrokerFactory, room: str
) -> None:
    """A room kept past its TTL without viewers starts again at seq 1 in another epoch."""
    broker = await make_broker(history_ttl_s=1)
    await broker.publish(room, b"old")
    old = await broker.position(room)
    await asyncio.sleep(2.1)
    assert await broker.publish(room, b"new") == 1
    new = await broker.position(room)
    assert new.seq == 1 and new.epoch != old.epoch
    assert await broker.history(room, 0, epoch=old.epoch) is None


async def test_closed_subscription_ends_and_receives_nothing_more(
    broker: Broker, room: str
) -> None:
    """After close the iteration ends, later events are not delivered, other subscribers go on."""
    sub, other = await broker.subscribe(room), await broker.subscribe(room)
    await broker.publish(room, b"before")
    assert await receive(sub, 1) == [Envelope(room, 1, b"before")]
    await sub.close()
    await sub.close()  # closing twice is harmless
    await broker.publish(room, b"after")
    await assert_ended(sub)
    assert [e.seq for e in await receive(other, 2)] == [1, 2]
    await other.close()


async def test_room_can_be_subscribed_again_after_the_last_subscriber_left(
    broker: Broker, room: str
) -> None:
    """Leaving and rejoining at once still delivers everything published after rejoining."""
    for _ in range(3):
        sub = await broker.subscribe(room)
        await sub.close()
    sub = await broker.subscribe(room)
    seq = await broker.publish(room, b"back")
    assert await receive(sub, 1) == [Envelope(room, seq, b"back")]
    await sub.close()


async def test_closing_the_broker_ends_every_subscription(
    make_broker: BrokerFactory, room: str
) -> None:
    """Broker close ends the iteration of every open subscription."""
    broker = await make_broker()
    subs = [await broker.subscribe(room), await broker.subscribe(new_room())]
    await broker.close()
    for sub in subs:
        await assert_ended(sub)


# --- Redis: several processes --------------------------------------------------------------


async def test_two_redis_brokers_share_one_sequence_and_deliver_each_others_events(
    make_redis_broker: RedisBrokerFactory, room: str
) -> None:
    """Two processes number one room together and each sees the other's events."""
    one, two = await make_redis_broker(), await make_redis_broker()
    sub_one, sub_two = await one.subscribe(room), await two.subscribe(room)
    assert await one.publish(room, b"from one") == 1
    assert await two.publish(room, b"from two") == 2
    await one.publish_ephemeral(room, b"ephemeral from one")
    expected = [
        Envelope(room, 1, b"from one"),
        Envelope(room, 2, b"from two"),
        Envelope(room, None, b"ephemeral from one"),
    ]
    assert await receive(sub_one, 3) == expected
    assert await receive(sub_two, 3) == expected
    assert await one.last_seq(room) == await two.last_seq(room) == 2
    assert await two.history(room, 0) == expected[:2]


async def test_concurrent_publishes_from_two_brokers_are_numbered_once_in_order(
    make_redis_broker: RedisBrokerFactory, room: str
) -> None:
    """2x200 concurrent publishes get seqs 1..400 once each; every subscriber sees that order."""
    one, two = await make_redis_broker(), await make_redis_broker()
    subs = [await one.subscribe(room), await two.subscribe(room)]
    payloads = [
        (broker, f"{name}-{n}".encode())
        for name, broker in (("one", one), ("two", two))
        for n in range(200)
    ]
    seqs = await asyncio.gather(*(broker.publish(room, payload) for broker, payload in payloads))
    assert sorted(seqs) == list(range(1, 401))
    by_seq = {seq: payload for seq, (_, payload) in zip(seqs, payloads, strict=True)}
    for sub in subs:
        received = await receive(sub, 400)
        assert [e.seq for e in received] == list(range(1, 401))
        assert all(e.payload == by_seq[e.seq] for e in received if e.seq is not None)


async def test_pubsub_reconnects_and_history_fills_the_gap(
    make_redis_broker: RedisBrokerFactory, redis_admin: Redis, room: str
) -> None:
    """When the pub/sub connection dies it comes back; what it missed is in history."""
    listener, publisher = await make_redis_broker(), await make_redis_broker()
    sub = await listener.subscribe(room)
    await publisher.publish(room, b"before")
    assert await receive(sub, 1) == [Envelope(room, 1, b"before")]
    killed = listener.pubsub_client_id
    assert killed is not None
    assert await redis_admin.client_kill_filter(_id=str(killed)) == 1
    await publisher.publish(room, b"while reconnecting")
    # Delivery resumes once the listener has resubscribed: publish until something arrives.
    async with asyncio.timeout(TIMEOUT_S):
        while True:
            await publisher.publish(room, b"after")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.1):
                    [resumed] = await receive(sub, 1)
                break
    assert listener.pubsub_client_id not in (None, killed)
    assert resumed.seq is not None and resumed.seq >= 2
    missed = await listener.history(room, 1)
    assert missed is not None
    assert [e.seq for e in missed] == list(range(2, await listener.last_seq(room) + 1))
    assert missed[0].payload == b"while reconnecting"


async def test_a_room_lost_from_redis_starts_a_new_epoch(
    make_redis_broker: RedisBrokerFactory, redis_admin: Redis, room: str
) -> None:
    """Redis restarted empty (or evicted the room): numbering starts again at 1 in a new
    epoch, and history refuses a resume from the old one instead of mixing the two."""
    broker = await make_redis_broker()
    sub = await broker.subscribe(room)
    for n in range(1, 4):
        await broker.publish(room, f"e{n}".encode())
    old = await broker.position(room)
    assert old.seq == 3
    keys = [key async for key in redis_admin.scan_iter(match=f"{PREFIX}:room:{{{room}}}:*")]
    assert len(keys) == 2, keys  # the room's meta and log
    assert await redis_admin.delete(*keys) == 2
    assert await broker.publish(room, b"new 1") == 1
    new = await broker.position(room)
    assert new.seq == 1 and new.epoch != old.epoch
    received = await receive(sub, 4)
    assert [(e.seq, e.epoch) for e in received] == [
        (1, old.epoch),
        (2, old.epoch),
        (3, old.epoch),
        (1, new.epoch),
    ]
    assert await broker.history(room, 2, epoch=old.epoch) is None
    assert await broker.history(room, 0, epoch=new.epoch) == [Envelope(room, 1, b"new 1")]


async def test_a_log_outliving_its_meta_is_not_continued(
    make_redis_broker: RedisBrokerFactory, redis_admin: Redis, room: str
) -> None:
    """Only the meta evicted: the old log belongs to an epoch nobody can resume any more, so
    the new epoch starts clean rather than numbering an event twice."""
    broker = await make_redis_broker()
    for n in range(1, 4):
        await broker.publish(room, f"e{n}".encode())
    old = await broker.position(room)
    assert await redis_admin.delete(f"{PREFIX}:room:{{{room}}}:meta") == 1
    assert await broker.publish(room, b"again") == 1
    assert (await broker.position(room)).epoch != old.epoch
    assert await broker.history(room, 0) == [Envelope(room, 1, b"again")]


async def test_an_epoch_made_by_a_read_expires_soon_unless_events_come(
    make_redis_broker: RedisBrokerFactory, redis_admin: Redis, room: str
) -> None:
    """Reading an unknown room's position leaves a key for minutes, not for the history's
    hours, so asking after made-up rooms cannot fill Redis; its first event keeps it."""
    broker = await make_redis_broker()
    read = await broker.position(room)
    key = f"{PREFIX}:room:{{{room}}}:meta"
    assert 0 < await redis_admin.ttl(key) <= EMPTY_EPOCH_TTL_S
    await broker.publish(room, b"first")
    assert await redis_admin.ttl(key) > EMPTY_EPOCH_TTL_S
    assert (await broker.position(room)).epoch == read.epoch


async def test_an_unreachable_redis_is_broker_unavailable() -> None:
    """Whatever went wrong on the wire, callers see one exception, promptly."""
    broker = RedisBroker("redis://127.0.0.1:1/0", socket_timeout_s=0.5)
    await broker.start()
    try:
        for call in (
            broker.publish("stream:1", b"x"),
            broker.position("stream:1"),
            broker.history("stream:1", 0),
            broker.last_seq("stream:1"),
            broker.ping(),
            broker.subscribe("stream:1"),
        ):
            with pytest.raises(BrokerUnavailable):
                await call
    finally:
        await broker.close()
    presence = RedisPresence("redis://127.0.0.1:1/0")
    with pytest.raises(BrokerUnavailable):
        await presence.count("stream:1")
    await presence.close()


async def test_every_redis_key_expires(
    make_redis_broker: RedisBrokerFactory, redis_admin: Redis, room: str
) -> None:
    """Broker and presence give every key they write a TTL; a room left empty leaves none."""
    prefix = f"lcttl{uuid.uuid4().hex[:8]}"
    broker = await make_redis_broker(key_prefix=prefix)
    sub = await broker.subscribe(room)
    await broker.publish(room, b"e1")
    await broker.publish_ephemeral(room, b"ephemeral")
    await sub.close()
    presence = RedisPresence(await prepare_redis(), key_prefix=prefix, process_id="p1")
    await presence.report(room, 3)
    emptied = new_room()
    await presence.report(emptied, 2)
    await presence.report(emptied, 0)
    keys = [key async for key in redis_admin.scan_iter(match=f"{prefix}:*")]
    assert len(keys) == 4, keys  # meta and log of the room, and its two presence keys
    assert not [key for key in keys if emptied.encode() in key]
    for key in keys:
        assert await redis_admin.ttl(key) > 0, key
    await presence.close()


# --- presence --------------------------------------------------------------------------------

PresenceFactory = Callable[..., Presence]


@pytest.fixture(params=IMPLEMENTATIONS)
async def make_presence(request: pytest.FixtureRequest) -> AsyncIterator[PresenceFactory]:
    url = await prepare_redis() if request.param == "redis" else None
    made: list[Presence] = []

    def make(**options: Any) -> Presence:
        presence: Presence
        presence = MemoryPresence() if url is None else RedisPresence(url, **options)
        made.append(presence)
        return presence

    yield make
    for presence in made:
        await presence.close()


@pytest.fixture
async def make_redis_presence() -> AsyncIterator[Callable[..., RedisPresence]]:
    url = await prepare_redis()
    made: list[RedisPresence] = []

    def make(**options: Any) -> RedisPresence:
        presence = RedisPresence(url, key_prefix=PREFIX, **options)
        made.append(presence)
        return presence

    yield make
    for presence in made:
        await presence.close()


async def test_presence_counts_what_was_reported(make_presence: PresenceFactory) -> None:
    """A report replaces the previous one, 0 removes it, and rooms are counted apart."""
    presence = make_presence()
    room, other = new_room(), new_room()
    assert await presence.count(room) == 0
    await presence.report(room, 3)
    await presence.report(other, 1)
    assert await presence.count(room) == 3
    await presence.report(room, 5)
    assert await presence.count(room) == 5
    await presence.report(room, 0)
    assert await presence.count(room) == 0
    assert await presence.count(other) == 1


async def test_redis_presence_sums_live_processes(
    make_redis_presence: Callable[..., RedisPresence], room: str
) -> None:
    """The room-wide count is the sum over processes; one leaving takes only its own share."""
    one, two = make_redis_presence(process_id="one"), make_redis_presence(process_id="two")
    await one.report(room, 3)
    await two.report(room, 4)
    assert await one.count(room) == await two.count(room) == 7
    await one.report(room, 1)
    assert await two.count(room) == 5
    await one.report(room, 0)
    assert await two.count(room) == 4
    await two.close()  # a clean shutdown withdraws at once
    assert await one.count(room) == 0


async def test_redis_presence_forgets_a_process_that_stops_refreshing(
    make_redis_presence: Callable[..., RedisPresence], room: str
) -> None:
    """A process whose report is older than its TTL no longer counts (waits ~1.5 s)."""
    short = make_redis_presence(process_id="short", ttl_s=1)
    steady = make_redis_presence(process_id="steady")
    await short.report(room, 2)
    await steady.report(room, 3)
    assert await steady.count(room) == 5
    await asyncio.sleep(1.5)
    assert await steady.count(room) == 3
    await steady.report(room, 3)  # a report also prunes the expired process
    assert await steady.count(room) == 3
