"""A payment webhook storm against a real server: every event 3-5 times, all at once,
shuffled (a decline arriving after the success that followed it), with replays of old
deliveries mixed in.

The sandbox's own deliveries are aimed at a closed port, so the storm is the first time
the shop hears of each event: the duplicates of one event race each other, and an order's
events race each other. The server sends its jobs to a Redis queue that no worker reads,
so the test counts the fulfilment jobs it sent exactly, message by message.
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from livecommerce.orders.sandbox import sign
from tests.conftest import BACKENDS  # noqa: F401 - the backend param drives the database
from tests.fixtures.database import TestDatabase
from tests.fixtures.factories import account
from tests.fixtures.queues import broker_urls, queue_env, require_broker
from tests.fixtures.server import free_port, running_server
from tests.fixtures.waiting import wait_for
from tests.orders.shop import ALMATY, merchant, order, stocked_product
from tests.orders.test_payments import DECLINED, GOOD, WEBHOOK, confirm, events, start_payment

WEBHOOK_SECRET = "storm-webhook-secret-shared-with-the-provider"
ORDERS = 30
# What each order goes through at the provider, and the state it must end in.
STORIES = {
    "paid": "paid",  # a good card
    "declined_then_paid": "paid",  # declined, then a good card on the same intent
    "retried_then_paid": "paid",  # declined, then a new attempt paid with a good card
    "declined": "pending_payment",  # declined only: still awaiting payment
    "paid_then_cancelled": "refunded",  # paid, then cancelled by the buyer (refunded)
    "paid_twice": "paid",  # declined, a new attempt paid, then the first paid too
}


async def live_story(
    client: httpx.AsyncClient, oid: int, bh: dict[str, str], story: str, delivered: set[str]
) -> None:
    """What the buyer does at the provider; ``delivered`` gathers the events the shop was
    told of on the way (the storm brings every one of them again)."""
    payment = first = await start_payment(client, oid, bh)
    if story in ("declined_then_paid", "retried_then_paid", "declined", "paid_twice"):
        assert (await confirm(client, payment, DECLINED)).json()["status"] == "failed"
    if story in ("retried_then_paid", "paid_twice"):
        # The shop must hear of the decline before it opens another attempt.
        [declined] = await events(client, first["intent_id"])
        assert (await post_signed(client, declined)).json()["status"] == "processed"
        delivered.add(declined["id"])
        payment = await start_payment(client, oid, bh)
        assert payment["intent_id"] != first["intent_id"]
    if story != "declined":
        assert (await confirm(client, payment, GOOD)).json()["status"] == "succeeded"
    if story == "paid_twice":
        assert (await confirm(client, first, GOOD)).json()["status"] == "succeeded"
    if story == "paid_then_cancelled":
        # Paid (the success delivered now, once), then cancelled: the refund's event, and
        # the success again, come with the storm.
        [succeeded] = await events(client, payment["intent_id"])
        assert (await post_signed(client, succeeded)).json()["status"] == "processed"
        delivered.add(succeeded["id"])
        assert await status_is(client, oid, bh, "paid")
        cancelled = await client.post(f"/api/v1/orders/{oid}/cancel", headers=bh)
        assert cancelled.status_code == 200, cancelled.text


async def status_is(client: httpx.AsyncClient, oid: int, bh: dict[str, str], want: str) -> bool:
    response = await client.get(f"/api/v1/orders/{oid}", headers=bh)
    return bool(response.json()["status"] == want)


async def post_signed(
    client: httpx.AsyncClient, event: dict[str, Any], *, age: float = 0.0
) -> httpx.Response:
    body = json.dumps(event).encode()
    signature = sign(WEBHOOK_SECRET, body, int(time.time() - age))
    return await client.post(
        WEBHOOK,
        content=body,
        headers={"Sandbox-Signature": signature, "Content-Type": "application/json"},
    )


async def fulfilment_jobs(redis_url: str, queue: str) -> list[int]:
    """The order ids of every fulfilment job waiting in ``queue`` (a batch counts each id)."""
    client = aioredis.Redis.from_url(redis_url)
    try:
        messages = await client.lrange(queue, 0, -1)
    finally:
        await client.aclose()
    ids: list[int] = []
    for raw in messages:
        message = json.loads(raw)
        task = message["headers"]["task"]
        args = json.loads(base64.b64decode(message["body"]))[0]
        if task == "livecommerce.fulfil_order":
            ids.append(args[0])
        elif task == "livecommerce.fulfil_orders":
            ids.extend(args[0])
    return ids


@pytest.mark.slow
async def test_a_webhook_storm_leaves_every_order_in_one_right_state(
    clean: TestDatabase,
    tmp_path: Path,
) -> None:
    """Thirty card orders, five stories; every signed event delivered 3-5 times at once,
    shuffled: no 5xx, each order in its one right state, each paid order's fulfilment job
    sent exactly once and none for the others."""
    require_broker("redis")
    env = queue_env(
        tmp_path,
        "redis",
        database_url=clean.url,
        payment_webhook_secret=WEBHOOK_SECRET,
        payment_webhook_url=f"http://127.0.0.1:{free_port()}/nobody-listens",
    )
    queue = env["LIVECOMMERCE_TASK_QUEUE"]
    rng = random.Random(20261203)
    with running_server(env, tmp_path / "server.log") as base:
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
        async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as client:
            _, mh = await merchant(client)
            product = await stocked_product(client, mh, KZALA=ORDERS)
            buyers = [await account(client) for _ in range(6)]
            stories = list(STORIES)
            placed: list[tuple[int, dict[str, str], str]] = []
            for i in range(ORDERS):
                bh = buyers[i % len(buyers)][1]
                made = await order(client, bh, [(product["id"], 1)], ship_to=ALMATY, method="card")
                assert made.status_code == 201, made.text
                placed.append((made.json()["id"], bh, stories[i % len(stories)]))
            told: set[str] = set()
            await asyncio.gather(*(live_story(client, oid, bh, s, told) for oid, bh, s in placed))

            storm: list[dict[str, Any]] = []
            for oid, bh, _ in placed:
                attempts = (await client.get(f"/api/v1/orders/{oid}/payments", headers=bh)).json()
                for attempt in attempts:
                    for event in await events(client, attempt["intent_id"]):
                        storm.extend([event] * rng.randint(3, 5))
            rng.shuffle(storm)
            # Each order's newest events first, so that stale ones arrive after them.
            storm.sort(key=lambda e: -e["created"])
            replays = rng.sample(storm, 20)  # signed 10 minutes ago: refused, never applied
            answers, refused = await asyncio.gather(
                asyncio.gather(*(post_signed(client, e) for e in storm)),
                asyncio.gather(*(post_signed(client, e, age=600) for e in replays)),
            )
            failed = [(a.status_code, a.text) for a in answers if a.status_code != 200]
            assert failed == [], failed
            outcomes = [a.json()["status"] for a in answers]
            assert set(outcomes) == {"processed", "duplicate"}, outcomes
            distinct = {e["id"] for e in storm}
            assert outcomes.count("processed") == len(distinct - told)
            assert [r.status_code for r in refused] == [400] * len(replays)
            assert {r.json()["error"]["code"] for r in refused} == {"webhook_rejected"}

            for oid, bh, story in placed:
                detail = (await client.get(f"/api/v1/orders/{oid}", headers=bh)).json()
                assert detail["status"] == STORIES[story], (oid, story, detail["events"])
                moves = [e["to_status"] for e in detail["events"]]
                assert moves.count("paid") == (0 if story == "declined" else 1), (story, moves)
                kept = await client.get(f"/api/v1/orders/{oid}/payments", headers=bh)
                statuses = sorted(p["status"] for p in kept.json())
                if story == "paid_twice":  # one charge kept, the other given back
                    assert statuses == ["refunded", "succeeded"], statuses
                elif story == "paid_then_cancelled":
                    assert statuses == ["refunded"], statuses
            paid = sorted(oid for oid, _, story in placed if story != "declined")

            async def all_sent() -> bool:
                return set(paid) <= set(await fulfilment_jobs(broker_urls()["redis"], queue))

            await wait_for(all_sent, "every paid order's fulfilment job")
            await asyncio.sleep(1.0)  # the outbox sends within 0.1 s: a duplicate shows now
            sent = await fulfilment_jobs(broker_urls()["redis"], queue)
    assert sorted(sent) == paid
    assert "Traceback" not in (tmp_path / "server.log").read_text()
