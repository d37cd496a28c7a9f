"""Hundreds of buyers at the same second: nothing oversold, no deadlock, clean 409s."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from livecommerce.accounts.models import User
from livecommerce.accounts.service import issue_user_token
from livecommerce.db import session_scope
from livecommerce.flashsales.models import FlashSale
from livecommerce.orders.models import OrderLine
from tests.orders.shop import merchant, order, stocked_product
from tests.orders.test_orders_api import flash_sale, levels, live_stream

pytestmark = pytest.mark.slow


async def buyers(app: FastAPI, count: int) -> list[dict[str, str]]:
    """Signed-in viewers, made directly in the database (500 password hashes would dominate)."""
    run = uuid.uuid4().hex[:8]
    async with session_scope(app.state.sessions) as session:
        users = [
            User(
                email=f"race-{run}-{i}@example.kz",
                password_hash="-",
                display_name=f"Buyer {i}",
                role="viewer",
                locale="ru",
                currency="RUB",
            )
            for i in range(count)
        ]
        session.add_all(users)
        await session.flush()
    secret = app.state.settings.resolved_secret_key()
    return [
        {"Authorization": f"Bearer {issue_user_token(u, secret=secret, minutes=30)[0]}"}
        for u in users
    ]


async def sold(app: FastAPI, product_id: int) -> int:
    async with session_scope(app.state.sessions) as session:
        total = await session.scalar(
            select(func.coalesce(func.sum(OrderLine.quantity), 0)).where(
                OrderLine.product_id == product_id
            )
        )
        return int(total or 0)


async def test_500_buyers_for_50_units(app: FastAPI, client: httpx.AsyncClient) -> None:
    """500 concurrent orders for 50 units: exactly 50 orders, 0 oversold, 450 clean 409s."""
    _, mh = await merchant(client)
    hot = await stocked_product(client, mh, KZALA=50)
    crowd = await buyers(app, 500)
    responses = await asyncio.gather(
        *(order(client, headers, [(hot["id"], 1)]) for headers in crowd)
    )
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {201: 50, 409: 450}, statuses
    assert {r.json()["error"]["code"] for r in responses if r.status_code == 409} == {
        "out_of_stock"
    }
    assert await levels(client, hot["id"], mh) == {"KZALA": 0}
    assert await sold(app, hot["id"]) == 50


async def test_500_buyers_race_a_flash_sale_of_50(app: FastAPI, client: httpx.AsyncClient) -> None:
    """The sale's own quantity is the limit: 50 orders, remaining 0, the rest sold out."""
    _, mh = await merchant(client)
    hot = await stocked_product(client, mh, KZALA=400, DEDUI=400)
    sid = await live_stream(client, mh)
    sale = await flash_sale(client, mh, sid, hot["id"], quantity=50, per_customer_limit=1)
    crowd = await buyers(app, 500)
    responses = await asyncio.gather(
        *(
            order(client, headers, [(hot["id"], 1)], stream_id=sid, flash_sale_id=sale["id"])
            for headers in crowd
        )
    )
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {201: 50, 409: 450}, statuses
    codes = {r.json()["error"]["code"] for r in responses if r.status_code == 409}
    assert codes == {"flash_sale_sold_out"}
    async with session_scope(app.state.sessions) as session:
        remaining = await session.scalar(
            select(FlashSale.remaining).where(FlashSale.id == sale["id"])
        )
    assert remaining == 0
    assert await sold(app, hot["id"]) == 50
    left = await levels(client, hot["id"], mh)
    assert left["KZALA"] + left["DEDUI"] == 800 - 50


async def test_per_customer_limit_holds_under_concurrency(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """One buyer firing 30 requests at once with a limit of 3 gets exactly 3 units."""
    _, mh = await merchant(client)
    hot = await stocked_product(client, mh, KZALA=100)
    sid = await live_stream(client, mh)
    sale = await flash_sale(client, mh, sid, hot["id"], quantity=50, per_customer_limit=3)
    [greedy] = await buyers(app, 1)
    responses = await asyncio.gather(
        *(order(client, greedy, [(hot["id"], 1)], flash_sale_id=sale["id"]) for _ in range(30))
    )
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {201: 3, 409: 27}, statuses
    assert {r.json()["error"]["code"] for r in responses if r.status_code == 409} == {
        "limit_exceeded"
    }
    assert await sold(app, hot["id"]) == 3


async def test_orders_on_shared_products_do_not_deadlock(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """Baskets naming the same products in opposite orders all complete (fixed lock order)."""
    _, mh = await merchant(client)
    a = await stocked_product(client, mh, KZALA=1000)
    b = await stocked_product(client, mh, KZALA=1000)
    crowd = await buyers(app, 100)
    responses = await asyncio.gather(
        *(
            order(
                client,
                headers,
                [(a["id"], 1), (b["id"], 1)] if i % 2 else [(b["id"], 1), (a["id"], 1)],
            )
            for i, headers in enumerate(crowd)
        )
    )
    assert Counter(r.status_code for r in responses) == {201: 100}
    assert await levels(client, a["id"], mh) == await levels(client, b["id"], mh) == {"KZALA": 900}
