"""Stream figures rolled up by the worker job, and a flash sale's end announced once."""

from __future__ import annotations

import json
from datetime import timedelta

import httpx
from fastapi import FastAPI
from sqlalchemy import update
from sqlmodel import col

from livecommerce.db import session_scope
from livecommerce.flashsales import service as flashsales
from livecommerce.flashsales.models import FlashSale
from livecommerce.orders import tasks as order_tasks
from livecommerce.rates.service import load_rate_book
from livecommerce.rooms.broker import MemoryBroker
from livecommerce.sqltypes import utcnow
from livecommerce.streams import service as streams
from tests.fixtures.factories import account
from tests.orders.shop import ALMATY, TASHKENT, merchant, order, stocked_product
from tests.orders.test_orders_api import flash_sale, live_stream


async def test_rollup_counts_sales_viewers_and_conversion_by_locale(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """Three kk and two uz viewers (one of them twice); two kk buyers and one uz buyer; a
    cancelled order is no sale. GMV is per currency."""
    _, mh = await merchant(client)
    sid = await live_stream(client, mh)
    cream = await stocked_product(client, mh, KZALA=20)
    viewers = {"user:1": "kk", "user:2": "kk", "guest-a": "kk", "user:3": "uz", "guest-b": "uz"}
    await streams.record_room_stats(app.state.sessions, sid, 4, 0, viewers)
    await streams.record_room_stats(app.state.sessions, sid, 2, 3, {"user:3": "uz"})
    placed = []
    for locale, currency, ship_to in (
        ("kk", "KZT", ALMATY),
        ("kk", "KZT", ALMATY),
        ("uz", "UZS", TASHKENT),
        ("kk", "KZT", ALMATY),
    ):
        _, bh = await account(client)
        response = await order(
            client,
            bh,
            [(cream["id"], 1)],
            ship_to=ship_to,
            stream_id=sid,
            currency=currency,
            query=f"?locale={locale}",
        )
        assert response.status_code == 201, response.text
        placed.append((response.json(), bh))
    last, last_headers = placed[-1]
    cancelled = await client.post(f"/api/v1/orders/{last['id']}/cancel", headers=last_headers)
    assert cancelled.status_code == 200, cancelled.text

    assert sid in await order_tasks.roll_up_stream_sales(sessions=app.state.sessions)
    stats = (await client.get(f"/api/v1/streams/{sid}?locale=en", headers=mh)).json()["stats"]
    sales = stats["sales"]
    assert stats["peak_viewers"] == 4
    assert sales["orders"] == 3 and sales["buyers"] == 3 and sales["unique_viewers"] == 5
    kzt = placed[0][0]["total"]["amount"]
    gmv = {g["currency"]: g["amount"] for g in sales["gmv"]}
    assert set(gmv) == {"KZT", "UZS"}
    assert float(gmv["KZT"]) == 2 * float(kzt)
    assert gmv["UZS"] == placed[2][0]["total"]["amount"]
    by_locale = {row["locale"]: row for row in sales["by_locale"]}
    assert by_locale["kk"] == {"locale": "kk", "viewers": 3, "buyers": 2, "conversion": 0.6667}
    assert by_locale["uz"] == {"locale": "uz", "viewers": 2, "buyers": 1, "conversion": 0.5}
    assert sales["conversion"] == 0.6


async def test_a_flash_sale_end_is_announced_once_by_whichever_timer_is_first(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """Before its end nothing is announced; after it, the first caller announces and the
    second (the other timer) finds the sale claimed."""
    _, mh = await merchant(client)
    sid = await live_stream(client, mh)
    cream = await stocked_product(client, mh, KZALA=20)
    sale = await flash_sale(client, mh, sid, cream["id"])
    broker = MemoryBroker()
    room = streams.room_of(sid)
    before = await broker.last_seq(room)

    async def close() -> bool:
        async with session_scope(app.state.sessions) as session:
            return await flashsales.close_if_due(
                session=session,
                broker=broker,
                admission=None,
                sale_id=sale["id"],
                book=await load_rate_book(session),
            )

    assert await close() is False  # still running
    async with session_scope(app.state.sessions) as session:
        await session.execute(
            update(FlashSale)
            .where(col(FlashSale.id) == sale["id"])
            .values(ends_at=utcnow() - timedelta(seconds=1))
        )
    assert await close() is True
    assert await close() is False
    assert await broker.last_seq(room) == before + 1
    await broker.close()


async def test_ending_a_stream_ends_its_flash_sale_in_the_room(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """Viewers see the running sale end with the stream, not only at its own end time."""
    _, mh = await merchant(client)
    sid = await live_stream(client, mh)
    cream = await stocked_product(client, mh, KZALA=20)
    sale = await flash_sale(client, mh, sid, cream["id"])
    room = streams.room_of(sid)
    before = await app.state.broker.last_seq(room)
    ended = await client.post(f"/api/v1/streams/{sid}/end", headers=mh)
    assert ended.status_code == 200, ended.text
    events = await app.state.broker.history(room, before)
    kinds = [json.loads(e.payload)["type"] for e in events]
    assert kinds == ["flash_sale", "stream_status"]
    card = json.loads(events[0].payload)["data"]
    assert card["id"] == sale["id"] and card["status"] == "ended"
