"""Flash sales over HTTP: ending early, the next sale, and the admission gate in front of
the database (right answers with the gate wrong, empty, or down)."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import event, select, update

from livecommerce.db import session_scope
from livecommerce.flashsales.admission import Admission
from livecommerce.flashsales.gate import MemoryGate, RedisGate, Verdict
from livecommerce.flashsales.models import FlashSale
from livecommerce.rooms.names import stream_room
from tests.fixtures.factories import account
from tests.fixtures.redis import prepare_redis
from tests.orders.shop import merchant, order, stocked_product
from tests.orders.test_concurrency import buyers, sold
from tests.orders.test_orders_api import flash_sale, live_stream


@contextmanager
def statements(app: FastAPI) -> Iterator[list[str]]:
    """Every SQL statement the app sends while the block runs."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, sql: str, *_args: Any) -> None:
        seen.append(sql)

    engine = app.state.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def touching(seen: list[str], *tables: str) -> list[str]:
    return [sql for sql in seen if any(table in sql for table in tables)]


async def sale_row(app: FastAPI, sale_id: int) -> FlashSale:
    async with session_scope(app.state.sessions, read_only=True) as session:
        row = await session.get(FlashSale, sale_id)
        assert row is not None
        return row


async def test_host_ends_a_sale_early(app: FastAPI, client: httpx.AsyncClient) -> None:
    """Ending early answers the ended card, tells the room, refuses later orders and a
    second end."""
    _, mh = await merchant(client)
    hot = await stocked_product(client, mh, KZALA=10)
    sid = await live_stream(client, mh)
    sale = await flash_sale(client, mh, sid, hot["id"], quantity=5)
    ended = await client.post(f"/api/v1/streams/{sid}/flash-sales/{sale['id']}/end", headers=mh)
    assert ended.status_code == 200, ended.text
    assert ended.json()["status"] == "ended"
    history = await app.state.broker.history(stream_room(sid), 0)
    cards = [e for e in history if b'"flash_sale"' in e.payload]
    assert b'"status":"ended"' in cards[-1].payload
    _, bh = await account(client)
    late = await order(client, bh, [(hot["id"], 1)], stream_id=sid, flash_sale_id=sale["id"])
    assert late.status_code == 409 and late.json()["error"]["code"] == "flash_sale_ended"
    again = await client.post(
        f"/api/v1/streams/{sid}/flash-sales/{sale['id']}/end?locale=kk", headers=mh
    )
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "flash_sale_ended"
    assert again.json()["error"]["message"] != "This flash sale has ended."  # in Kazakh


async def test_only_the_streams_drivers_end_its_sales(client: httpx.AsyncClient) -> None:
    """A viewer cannot end a sale (403); a sale of another stream is not found (404)."""
    _, mh = await merchant(client)
    hot = await stocked_product(client, mh, KZALA=10)
    sid = await live_stream(client, mh)
    other = await live_stream(client, mh)
    sale = await flash_sale(client, mh, sid, hot["id"])
    _, bh = await account(client)
    url = f"/api/v1/streams/{sid}/flash-sales/{sale['id']}/end"
    assert (await client.post(url, headers=bh)).status_code == 403
    wrong = await client.post(f"/api/v1/streams/{other}/flash-sales/{sale['id']}/end", headers=mh)
    assert wrong.status_code == 404 and wrong.json()["error"]["code"] == "flash_sale_not_found"


async def test_a_sold_out_sale_does_not_block_the_next(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """After a sell-out the host starts the next sale at once; the sold-out one ends."""
    _, mh = await merchant(client)
    hot = await stocked_product(client, mh, KZALA=10)
    sid = await live_stream(client, mh)
    first = await flash_sale(client, mh, sid, hot["id"], quantity=1)
    _, bh = await account(client)
    won = await order(client, bh, [(hot["id"], 1)], stream_id=sid, flash_sale_id=first["id"])
    assert won.status_code == 201, won.text
    second = await flash_sale(client, mh, sid, hot["id"], quantity=2)
    assert (await sale_row(app, first["id"])).cancelled_at is not None
    shown = (await client.get(f"/api/v1/streams/{sid}")).json()["flash_sale"]
    assert shown["id"] == second["id"] and shown["status"] == "active"


async def test_a_running_sale_with_units_still_blocks(client: httpx.AsyncClient) -> None:
    """A sale with units left is still the only one: 409 flash_sale_active."""
    _, mh = await merchant(client)
    hot = await stocked_product(client, mh, KZALA=10)
    sid = await live_stream(client, mh)
    await flash_sale(client, mh, sid, hot["id"], quantity=2)
    body = {
        "product_id": hot["id"],
        "price": {"amount": "50.00", "currency": "CNY"},
        "quantity": 1,
        "duration_s": 60,
    }
    again = await client.post(f"/api/v1/streams/{sid}/flash-sales", json=body, headers=mh)
    assert again.status_code == 409 and again.json()["error"]["code"] == "flash_sale_active"


async def test_losers_are_answered_without_touching_the_sale_or_stock(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """Once the gate says sold out, a loser's 409 reads no sale, claim, stock or order row
    (only the first refusal in a second is checked against the database)."""
    _, mh = await merchant(client)
    hot = await stocked_product(client, mh, KZALA=10)
    sid = await live_stream(client, mh)
    sale = await flash_sale(client, mh, sid, hot["id"], quantity=1)
    winner, first, loser = await buyers(app, 3)
    assert (await order(client, winner, [(hot["id"], 1)], flash_sale_id=sale["id"])).status_code
    with statements(app) as checked:
        refused = await order(client, first, [(hot["id"], 1)], flash_sale_id=sale["id"])
    assert refused.json()["error"]["code"] == "flash_sale_sold_out"
    assert touching(checked, "flash_sale")  # the once-a-second check against the database
    with statements(app) as seen:
        lost = await order(client, loser, [(hot["id"], 1)], flash_sale_id=sale["id"], key="k1")
    assert lost.status_code == 409 and lost.json()["error"]["code"] == "flash_sale_sold_out"
    assert touching(seen, "flash_sale", "stock", "orders", "idempotency", "products") == []


async def test_a_gate_that_lost_units_is_corrected_by_the_database(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """The gate says sold out while the database has units, and still has them a second
    later (no order came for them: lost, not in flight): the gate is rebuilt from the
    database and the order wins."""
    _, mh = await merchant(client)
    hot = await stocked_product(client, mh, KZALA=10)
    sid = await live_stream(client, mh)
    sale = await flash_sale(client, mh, sid, hot["id"], quantity=3)
    row = await sale_row(app, sale["id"])
    gate = app.state.admission.gate
    await gate.load_sale(sale["id"], 0, {}, None, row.ends_at, replace=True)  # lost them all
    first, buyer = await buyers(app, 2)
    refused = await order(client, first, [(hot["id"], 1)], flash_sale_id=sale["id"])
    # One look is no proof: in a rush the database lags the orders the gate let through.
    assert refused.status_code == 409, refused.text
    app.state.admission._verified.clear()  # a second later: the same three units left
    won = await order(client, buyer, [(hot["id"], 1)], flash_sale_id=sale["id"])
    assert won.status_code == 201, won.text
    # Rebuilt: 3 in the database, 1 of them now taken by the order.
    assert (await gate.admit(sale["id"], 999, 2, False))[0] is Verdict.ADMIT
    assert (await gate.admit(sale["id"], 998, 1, False))[0] is Verdict.SOLD_OUT


async def test_a_gate_that_admits_too_many_never_oversells(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """A gate that believes in 100 units of a 5-unit sale: the database sells 5, refuses the
    rest, and the refused units go back to the gate."""
    _, mh = await merchant(client)
    hot = await stocked_product(client, mh, KZALA=50)
    sid = await live_stream(client, mh)
    sale = await flash_sale(client, mh, sid, hot["id"], quantity=5)
    row = await sale_row(app, sale["id"])
    gate = app.state.admission.gate
    await gate.load_sale(sale["id"], 100, {}, None, row.ends_at, replace=True)
    crowd = await buyers(app, 30)
    responses = await asyncio.gather(
        *(order(client, h, [(hot["id"], 1)], flash_sale_id=sale["id"]) for h in crowd)
    )
    assert Counter(r.status_code for r in responses) == {201: 5, 409: 25}
    assert await sold(app, hot["id"]) == 5
    assert (await gate.admit(sale["id"], 999, 95, False))[0] is Verdict.ADMIT


async def test_a_cancelled_order_frees_the_buyers_limit(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """After cancelling, the buyer may buy again although the gate still counted the units."""
    _, mh = await merchant(client)
    hot = await stocked_product(client, mh, KZALA=10)
    sid = await live_stream(client, mh)
    sale = await flash_sale(client, mh, sid, hot["id"], quantity=5, per_customer_limit=1)
    [buyer] = await buyers(app, 1)
    first = await order(client, buyer, [(hot["id"], 1)], flash_sale_id=sale["id"])
    assert first.status_code == 201
    over = await order(client, buyer, [(hot["id"], 1)], flash_sale_id=sale["id"])
    assert over.status_code == 409 and over.json()["error"]["code"] == "limit_exceeded"
    cancelled = await client.post(f"/api/v1/orders/{first.json()['id']}/cancel", headers=buyer)
    assert cancelled.status_code == 200, cancelled.text
    again = await order(client, buyer, [(hot["id"], 1)], flash_sale_id=sale["id"])
    assert again.status_code == 201, again.text


async def test_a_winners_retry_after_the_sell_out_is_its_replay(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """The same Idempotency-Key after the sale sold out returns the first 201, not a 409;
    concurrent duplicates still make one order."""
    _, mh = await merchant(client)
    hot = await stocked_product(client, mh, KZALA=10)
    sid = await live_stream(client, mh)
    sale = await flash_sale(client, mh, sid, hot["id"], quantity=1)
    [buyer] = await buyers(app, 1)
    same = await asyncio.gather(
        *(order(client, buyer, [(hot["id"], 1)], flash_sale_id=sale["id"], key="x") for _ in "abc")
    )
    assert sorted(r.status_code for r in same)[0] == 201
    ids = {r.json()["id"] for r in same if r.status_code == 201}
    assert len(ids) == 1
    later = await order(client, buyer, [(hot["id"], 1)], flash_sale_id=sale["id"], key="x")
    assert later.status_code == 201 and later.headers["idempotent-replayed"] == "true"
    assert await sold(app, hot["id"]) == 1


async def test_a_plain_product_out_of_stock_is_answered_by_the_gate(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """Once a product is gone everywhere, the next buyer's 409 reads no stock; a restock is
    sold at once."""
    _, mh = await merchant(client)
    hot = await stocked_product(client, mh, KZALA=1)
    first, second, third = await buyers(app, 3)
    assert (await order(client, first, [(hot["id"], 1)])).status_code == 201
    assert (await order(client, second, [(hot["id"], 1)])).status_code == 409
    with statements(app) as seen:
        lost = await order(client, third, [(hot["id"], 1)])
    assert lost.status_code == 409 and lost.json()["error"]["code"] == "out_of_stock"
    assert touching(seen, "stock", "products", "orders") == []
    await client.put(f"/api/v1/products/{hot['id']}/stock/KZALA", json={"quantity": 1}, headers=mh)
    assert (await order(client, third, [(hot["id"], 1)])).status_code == 201


async def test_redis_gate_is_rebuilt_after_a_flush(app: FastAPI, client: httpx.AsyncClient) -> None:
    """With the gate in Redis, an emptied Redis is rebuilt from the database: the sale goes
    on selling exactly its units."""
    url = await prepare_redis()
    prefix = f"test:{uuid.uuid4().hex}:"
    app.state.admission = Admission(RedisGate(url, prefix=prefix))
    _, mh = await merchant(client)
    hot = await stocked_product(client, mh, KZALA=50)
    sid = await live_stream(client, mh)
    sale = await flash_sale(client, mh, sid, hot["id"], quantity=4)
    crowd = await buyers(app, 10)
    assert (await order(client, crowd[0], [(hot["id"], 1)], flash_sale_id=sale["id"])).status_code
    from redis.asyncio import Redis

    raw = Redis.from_url(url)
    try:
        keys = [k async for k in raw.scan_iter(f"{prefix}*")]
        assert keys  # the sale's gate was in Redis
        await raw.delete(*keys)
    finally:
        await raw.aclose()
    responses = await asyncio.gather(
        *(order(client, h, [(hot["id"], 1)], flash_sale_id=sale["id"]) for h in crowd[1:])
    )
    assert Counter(r.status_code for r in responses) == {201: 3, 409: 6}
    assert await sold(app, hot["id"]) == 4


async def test_orders_go_on_when_the_gates_redis_is_down(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """Redis unreachable: the sale still sells exactly its units, with clean 409s, no 500."""
    with socket_nobody_listens_on() as port:
        app.state.admission = Admission(RedisGate(f"redis://127.0.0.1:{port}/0", timeout_s=0.2))
        _, mh = await merchant(client)
        hot = await stocked_product(client, mh, KZALA=50)
        sid = await live_stream(client, mh)
        sale = await flash_sale(client, mh, sid, hot["id"], quantity=3)
        crowd = await buyers(app, 12)
        responses = await asyncio.gather(
            *(order(client, h, [(hot["id"], 1)], flash_sale_id=sale["id"]) for h in crowd)
        )
    assert Counter(r.status_code for r in responses) == {201: 3, 409: 9}
    assert {r.json()["error"]["code"] for r in responses if r.status_code == 409} == {
        "flash_sale_sold_out"
    }
    async with session_scope(app.state.sessions, read_only=True) as session:
        left = await session.scalar(select(FlashSale.remaining).where(FlashSale.id == sale["id"]))
    assert left == 0


async def test_memory_gate_survives_a_sale_it_never_saw(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """A process that did not start the sale (fresh gate) rebuilds it from the database."""
    _, mh = await merchant(client)
    hot = await stocked_product(client, mh, KZALA=50)
    sid = await live_stream(client, mh)
    sale = await flash_sale(client, mh, sid, hot["id"], quantity=2)
    async with session_scope(app.state.sessions) as session:  # one already sold elsewhere
        await session.execute(
            update(FlashSale).where(FlashSale.id == sale["id"]).values(remaining=1)
        )
    app.state.admission = Admission(MemoryGate())
    crowd = await buyers(app, 4)
    responses = await asyncio.gather(
        *(order(client, h, [(hot["id"], 1)], flash_sale_id=sale["id"]) for h in crowd)
    )
    assert Counter(r.status_code for r in responses) == {201: 1, 409: 3}


@contextmanager
def socket_nobody_listens_on() -> Iterator[int]:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        yield sock.getsockname()[1]
