"""Orders over HTTP: reservation, flash-sale rules, idempotency, cancel and expiry."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.types import Message, Receive, Scope, Send

from livecommerce.orders import service
from livecommerce.orders import tasks as order_tasks
from livecommerce.sqltypes import utcnow
from tests.fixtures.factories import account
from tests.orders.shop import ALMATY, merchant, order, stocked_product

STREAM_TITLE = {"ru": "Эфир", "kk": "Эфир", "uz": "Efir"}


async def levels(
    client: httpx.AsyncClient, product_id: int, headers: dict[str, str]
) -> dict[str, int]:
    product = (await client.get(f"/api/v1/products/{product_id}", headers=headers)).json()
    return {s["warehouse"]: s["quantity"] for s in product["stock"]}


async def live_stream(client: httpx.AsyncClient, headers: dict[str, str]) -> int:
    created = await client.post("/api/v1/streams", json={"title": STREAM_TITLE}, headers=headers)
    sid: int = created.json()["id"]
    assert (await client.post(f"/api/v1/streams/{sid}/start", headers=headers)).status_code == 200
    return sid


async def flash_sale(
    client: httpx.AsyncClient, headers: dict[str, str], sid: int, product_id: int, **extra: Any
) -> dict[str, Any]:
    body = {
        "product_id": product_id,
        "price": {"amount": "60.00", "currency": "CNY"},
        "quantity": 5,
        "duration_s": 600,
        **extra,
    }
    response = await client.post(f"/api/v1/streams/{sid}/flash-sales", json=body, headers=headers)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def test_cash_on_delivery_order_reserves_stock_and_records_its_path(
    client: httpx.AsyncClient,
) -> None:
    """A COD order is charged what the quote said, takes stock and goes straight to fulfilling."""
    _, mh = await merchant(client)
    cream = await stocked_product(client, mh, KZALA=5, DEDUI=2)
    buyer, bh = await account(client)
    quoted = await client.post(
        "/api/v1/quotes?locale=kk",
        json={
            "items": [{"product_id": cream["id"], "quantity": 2}],
            "ship_to": ALMATY,
            "currency": "KZT",
        },
    )
    placed = await order(client, bh, [(cream["id"], 2)], query="?locale=kk&currency=KZT")
    assert placed.status_code == 201, placed.text
    body = placed.json()
    assert placed.headers["location"] == f"/api/v1/orders/{body['id']}"
    assert body["status"] == "fulfilling" and body["payment_method"] == "cod"
    for figure in ("subtotal", "shipping", "duties", "total"):
        assert body[figure] == quoted.json()[figure]
    assert body["payment"]["method"] == "cod" and "18" in body["payment"]["text"]
    assert [(e["from_status"], e["to_status"], e["actor"]) for e in body["events"]] == [
        (None, "pending_payment", f"user:{buyer['id']}"),
        ("pending_payment", "fulfilling", "system"),
    ]
    assert await levels(client, cream["id"], mh) == {"KZALA": 3, "DEDUI": 2}
    mine = (await client.get("/api/v1/orders", headers=bh)).json()
    assert [o["id"] for o in mine["items"]] == [body["id"]] and mine["total"] == 1


async def test_only_buyer_merchant_and_admin_see_an_order(client: httpx.AsyncClient) -> None:
    """Another viewer and another merchant get 404; guests cannot order at all."""
    _, mh = await merchant(client)
    cream = await stocked_product(client, mh, KZALA=5)
    _, bh = await account(client)
    oid = (await order(client, bh, [(cream["id"], 1)])).json()["id"]
    assert (await client.get(f"/api/v1/orders/{oid}", headers=mh)).status_code == 200
    assert [o["id"] for o in (await client.get("/api/v1/orders", headers=mh)).json()["items"]] == [
        oid
    ]
    for role in ("viewer", "merchant"):
        _, other = await account(client, role=role)
        assert (await client.get(f"/api/v1/orders/{oid}", headers=other)).status_code == 404
        assert (await client.post(f"/api/v1/orders/{oid}/cancel", headers=other)).status_code == 404
    guest = (await client.post("/api/v1/auth/guest")).json()["access_token"]
    refused = await order(client, {"Authorization": f"Bearer {guest}"}, [(cream["id"], 1)])
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "guest_not_allowed"
    unsigned = await order(client, {}, [(cream["id"], 1)])
    assert unsigned.status_code == 401


async def test_out_of_stock_is_a_localized_409_and_takes_nothing(client: httpx.AsyncClient) -> None:
    """Asking for more than all warehouses hold: 409 out_of_stock, stock untouched."""
    _, mh = await merchant(client)
    cream = await stocked_product(client, mh, KZALA=1, DEDUI=1)
    _, bh = await account(client)
    refused = await order(client, bh, [(cream["id"], 3)], query="?locale=uz")
    assert refused.status_code == 409
    error = refused.json()["error"]
    assert error["code"] == "out_of_stock" and "available" not in error["details"]
    assert "2" not in error["message"]  # stock figures are the merchant's
    assert await levels(client, cream["id"], mh) == {"KZALA": 1, "DEDUI": 1}


async def test_full_address_is_required_to_order(client: httpx.AsyncClient) -> None:
    """A quote needs country and city; an order needs recipient, phone and street too."""
    _, mh = await merchant(client)
    cream = await stocked_product(client, mh, KZALA=1)
    _, bh = await account(client)
    partial = await order(
        client, bh, [(cream["id"], 1)], ship_to={"country": "KZ", "city": "Almaty"}
    )
    assert partial.status_code == 422
    fields = {f["field"] for f in partial.json()["error"]["details"]["fields"]}
    assert {"ship_to.recipient_name", "ship_to.phone", "ship_to.address_line1"} <= fields
    bad_phone = await order(client, bh, [(cream["id"], 1)], ship_to={**ALMATY, "phone": "call me"})
    assert bad_phone.status_code == 422
    no_method = await client.post(
        "/api/v1/orders",
        headers=bh,
        json={"items": [{"product_id": cream["id"], "quantity": 1}], "ship_to": ALMATY},
    )
    assert no_method.status_code == 422


async def test_idempotent_retry_returns_the_first_order(client: httpx.AsyncClient) -> None:
    """Same key and body: the first response again and one order; another body: 422."""
    _, mh = await merchant(client)
    cream = await stocked_product(client, mh, KZALA=5)
    _, bh = await account(client)
    first = await order(client, bh, [(cream["id"], 1)], key="tap-1")
    again = await order(client, bh, [(cream["id"], 1)], key="tap-1")
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    other_body = await order(client, bh, [(cream["id"], 2)], key="tap-1")
    assert other_body.status_code == 422
    assert other_body.json()["error"]["code"] == "idempotency_key_reused"
    # Keys belong to their user: the same key from someone else is a new order.
    _, other = await account(client)
    assert (await order(client, other, [(cream["id"], 1)], key="tap-1")).json()[
        "id"
    ] != first.json()["id"]
    assert await levels(client, cream["id"], mh) == {"KZALA": 3}
    too_long = await order(client, bh, [(cream["id"], 1)], key="k" * 300)
    assert too_long.status_code == 422


def test_idempotency_fingerprint_survives_a_later_default() -> None:
    """A body sent before ``delivery`` existed hashes as the same body sent after (courier
    is what it meant); choosing the post is another request."""
    from livecommerce.orders.idempotency import request_hash
    from livecommerce.orders.placing import SCOPE
    from livecommerce.orders.schemas import OrderIn

    before = {
        "items": [{"product_id": 7, "quantity": 1}],
        "ship_to": ALMATY,
        "currency": None,
        "stream_id": None,
        "flash_sale_id": None,
        "payment_method": "cod",
    }
    recorded = OrderIn.model_validate(before).model_dump(mode="json")
    # The fingerprint as it was recorded before these fields existed.
    del recorded["delivery"], recorded["ship_to"]["tax_id"]
    now = OrderIn.model_validate({**before, "delivery": "courier"}).fingerprint()
    assert request_hash(SCOPE, now) == request_hash(SCOPE, recorded)
    postal = OrderIn.model_validate({**before, "delivery": "postal"}).fingerprint()
    assert request_hash(SCOPE, postal) != request_hash(SCOPE, recorded)
    taxed = {**before, "ship_to": {**ALMATY, "tax_id": "123456789012"}}
    assert request_hash(SCOPE, OrderIn.model_validate(taxed).fingerprint()) != request_hash(
        SCOPE, recorded
    )


async def test_failed_request_does_not_burn_its_key(client: httpx.AsyncClient) -> None:
    """A 409 stores nothing: the same key succeeds once stock is back."""
    _, mh = await merchant(client)
    cream = await stocked_product(client, mh, KZALA=0)
    _, bh = await account(client)
    assert (await order(client, bh, [(cream["id"], 1)], key="retry-me")).status_code == 409
    await client.put(
        f"/api/v1/products/{cream['id']}/stock/KZALA", json={"quantity": 1}, headers=mh
    )
    assert (await order(client, bh, [(cream["id"], 1)], key="retry-me")).status_code == 201


async def test_crash_between_commit_and_response_is_answered_on_retry(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """The response is lost after the commit; the retry gets the stored 201 and no new order."""
    _, mh = await merchant(client)
    cream = await stocked_product(client, mh, KZALA=5)
    _, bh = await account(client)

    async def crash_before_response(scope: Scope, receive: Receive, send: Send) -> None:
        async def lose(message: Message) -> None:
            if message["type"] == "http.response.start":
                raise ConnectionResetError("process died before answering")
            await send(message)

        await app(scope, receive, lose)

    transport = httpx.ASGITransport(app=crash_before_response)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as doomed:
        with pytest.raises(ConnectionResetError):
            await order(doomed, bh, [(cream["id"], 2)], key="lost-response")
    assert await levels(client, cream["id"], mh) == {"KZALA": 3}  # the order did commit
    retry = await order(client, bh, [(cream["id"], 2)], key="lost-response")
    assert retry.status_code == 201 and retry.headers["idempotent-replayed"] == "true"
    assert await levels(client, cream["id"], mh) == {"KZALA": 3}
    assert (await client.get("/api/v1/orders", headers=bh)).json()["total"] == 1


async def test_cancel_returns_stock_once(client: httpx.AsyncClient) -> None:
    """Cancelling a COD order gives its units back; a second cancel is a 409."""
    _, mh = await merchant(client)
    cream = await stocked_product(client, mh, KZALA=2, DEDUI=3)
    _, bh = await account(client)
    oid = (await order(client, bh, [(cream["id"], 4)])).json()["id"]
    # Neither warehouse holds 4: Almaty's 2 (faster) and 2 of Duisburg's 3.
    assert await levels(client, cream["id"], mh) == {"KZALA": 0, "DEDUI": 1}
    cancelled = await client.post(f"/api/v1/orders/{oid}/cancel?locale=ru", headers=bh)
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["events"][-1]["reason"] == "cancelled_by_buyer"
    assert await levels(client, cream["id"], mh) == {"KZALA": 2, "DEDUI": 3}
    twice = await client.post(f"/api/v1/orders/{oid}/cancel?locale=ru", headers=bh)
    assert twice.status_code == 409 and twice.json()["error"]["code"] == "order_not_cancellable"
    assert await levels(client, cream["id"], mh) == {"KZALA": 2, "DEDUI": 3}


async def test_unpaid_card_reservation_expires(app: FastAPI, client: httpx.AsyncClient) -> None:
    """A card order holds stock until reserved_until; the sweep then cancels it and frees it."""
    _, mh = await merchant(client)
    cream = await stocked_product(client, mh, KZALA=3)
    _, bh = await account(client)
    placed = (await order(client, bh, [(cream["id"], 2)], method="card")).json()
    assert placed["status"] == "pending_payment"
    assert placed["payment"]["pay_url"] == f"/api/v1/orders/{placed['id']}/payments"
    assert placed["payment"]["expires_at"] is not None
    paid_later = (await order(client, bh, [(cream["id"], 1)], method="card")).json()
    assert await levels(client, cream["id"], mh) == {"KZALA": 0}
    assert await order_tasks.expire_reservations(sessions=app.state.sessions) == []  # not yet due
    due = utcnow() + timedelta(minutes=16)
    expired = await order_tasks.expire_reservations(sessions=app.state.sessions, now=due)
    assert sorted(expired) == sorted([placed["id"], paid_later["id"]])
    assert await levels(client, cream["id"], mh) == {"KZALA": 3}
    after = (await client.get(f"/api/v1/orders/{placed['id']}", headers=bh)).json()
    assert after["status"] == "cancelled"
    assert after["events"][-1] == {
        **after["events"][-1],
        "actor": "system",
        "reason": "reservation_expired",
    }


async def test_flash_sale_price_limit_and_sell_out(client: httpx.AsyncClient) -> None:
    """Sale price applies; per-customer limit and sale quantity give 409s with their codes."""
    _, mh = await merchant(client)
    cream = await stocked_product(client, mh, KZALA=50)
    sid = await live_stream(client, mh)
    sale = await flash_sale(client, mh, sid, cream["id"], quantity=3, per_customer_limit=2)
    assert sale["per_customer_limit"] == 2
    _, first = await account(client)
    placed = await order(
        client, first, [(cream["id"], 2)], stream_id=sid, flash_sale_id=sale["id"], currency="CNY"
    )
    assert placed.status_code == 201, placed.text
    line = placed.json()["items"][0]
    assert line["unit_price"]["amount"] == "60.00" and line["flash_sale_id"] == sale["id"]
    over = await order(
        client,
        first,
        [(cream["id"], 1)],
        stream_id=sid,
        flash_sale_id=sale["id"],
        query="?locale=ru",
    )
    assert over.status_code == 409 and over.json()["error"]["code"] == "limit_exceeded"
    assert over.json()["error"]["details"] == {"limit": 2}
    at_once = await order(client, first, [(cream["id"], 3)], flash_sale_id=sale["id"])
    assert at_once.status_code == 409 and at_once.json()["error"]["code"] == "limit_exceeded"
    _, second = await account(client)
    sold_out = await order(client, second, [(cream["id"], 2)], flash_sale_id=sale["id"])
    assert sold_out.status_code == 409
    assert sold_out.json()["error"]["code"] == "flash_sale_sold_out"
    assert sold_out.json()["error"]["details"] == {"remaining": 1}
    assert (
        await order(client, second, [(cream["id"], 1)], flash_sale_id=sale["id"])
    ).status_code == 201
    # Cancelling gives the units back to the sale and to the buyer's allowance.
    oid = placed.json()["id"]
    assert (await client.post(f"/api/v1/orders/{oid}/cancel", headers=first)).status_code == 200
    assert (
        await order(client, first, [(cream["id"], 2)], flash_sale_id=sale["id"])
    ).status_code == 201
    # Without the sale, the same product is sold at its own price from ordinary stock.
    plain = await order(client, second, [(cream["id"], 1)], currency="CNY")
    assert plain.json()["items"][0]["unit_price"]["amount"] == "120.00"
    assert await levels(client, cream["id"], mh) == {"KZALA": 50 - 2 - 1 - 1}


async def test_ended_flash_sale_is_refused(client: httpx.AsyncClient) -> None:
    """After the host ends the stream, the sale's orders get 409 flash_sale_ended."""
    _, mh = await merchant(client)
    cream = await stocked_product(client, mh, KZALA=5)
    sid = await live_stream(client, mh)
    sale = await flash_sale(client, mh, sid, cream["id"])
    await client.post(f"/api/v1/streams/{sid}/end", headers=mh)
    _, bh = await account(client)
    ended = await order(client, bh, [(cream["id"], 1)], flash_sale_id=sale["id"])
    assert ended.status_code == 409 and ended.json()["error"]["code"] == "flash_sale_ended"
    elsewhere = await order(client, bh, [(cream["id"], 1)], flash_sale_id=sale["id"] + 1000)
    assert elsewhere.status_code == 404


async def test_order_from_a_stream_reaches_the_room_after_commit(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """order_placed (buyer anonymised) and the sale's remaining quantity are room events."""
    _, mh = await merchant(client)
    cream = await stocked_product(client, mh, KZALA=20)
    sid = await live_stream(client, mh)
    sale = await flash_sale(client, mh, sid, cream["id"], quantity=10)
    _, bh = await account(client, display_name="Aigerim Sadykova")
    broker = app.state.broker
    room = f"stream:{sid}"
    before = await broker.history(room, 0)
    assert (
        await order(client, bh, [(cream["id"], 3)], stream_id=sid, flash_sale_id=sale["id"])
    ).status_code == 201
    refused = await order(client, bh, [(cream["id"], 30)], stream_id=sid)
    assert refused.status_code == 409  # rolled back: announces nothing
    events: list[dict[str, Any]] = []
    for _ in range(40):
        await asyncio.sleep(0.1)
        history = await broker.history(room, len(before))
        events = [json.loads(e.payload) for e in history]
        if {e["type"] for e in events} >= {"order_placed", "flash_sale"}:
            break
    ticker = [e for e in events if e["type"] == "order_placed"]
    sales = [e for e in events if e["type"] == "flash_sale"]
    assert len(ticker) == 1 and ticker[0]["data"]["count"] == 1
    [entry] = ticker[0]["data"]["orders"]
    assert entry["quantity"] == 3
    assert entry["buyer"]["params"]["name"] == "Aigerim"  # first name only
    assert "Sadykova" not in json.dumps(ticker[0], ensure_ascii=False)
    assert sales[-1]["data"]["remaining"] == 7 and sales[-1]["data"]["id"] == sale["id"]


async def test_an_order_beaten_to_its_stock_snapshot_starts_over(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The units are taken last; when the stock the order was quoted on went to someone else
    meanwhile, the whole order (claim, stored answer, rows) starts over on a fresh snapshot
    and ships from the warehouse that still has it: one order, one claim, nothing twice."""
    _, mh = await merchant(client)
    cream = await stocked_product(client, mh, KZALA=0, DEDUI=5)
    sid = await live_stream(client, mh)
    sale = await flash_sale(client, mh, sid, cream["id"], per_customer_limit=2)
    _, bh = await account(client)
    real = service._load_basket
    snapshots: list[dict[int, dict[str, int]]] = []

    async def stale_first(*args: Any) -> service.Basket:
        basket = await real(*args)
        if not snapshots:  # as read a moment before another buyer took Almaty's 5 units
            basket.stock = {pid: {**levels, "KZALA": 5} for pid, levels in basket.stock.items()}
        snapshots.append(basket.stock)
        return basket

    monkeypatch.setattr(service, "_load_basket", stale_first)
    placed = await order(
        client,
        bh,
        [(cream["id"], 2)],
        key="beaten-once",
        stream_id=sid,
        flash_sale_id=sale["id"],
        query="?locale=ru",
    )
    assert placed.status_code == 201, placed.text
    assert len(snapshots) == 2  # the stale one, then the fresh one
    assert [s["warehouse"] for s in placed.json()["shipments"]] == ["DEDUI"]
    assert await levels(client, cream["id"], mh) == {"KZALA": 0, "DEDUI": 3}
    stream = (await client.get(f"/api/v1/streams/{sid}")).json()
    assert stream["flash_sale"]["remaining"] == 3  # claimed once, not twice
    # The same key again is the stored answer of the order that won, not a second order.
    again = await order(
        client,
        bh,
        [(cream["id"], 2)],
        key="beaten-once",
        stream_id=sid,
        flash_sale_id=sale["id"],
        query="?locale=ru",
    )
    assert again.status_code == 201
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.json()["id"] == placed.json()["id"]
    # The buyer's limit counts the two units once: a third and fourth are refused.
    more = await order(
        client, bh, [(cream["id"], 2)], stream_id=sid, flash_sale_id=sale["id"], query="?locale=ru"
    )
    assert more.status_code == 409
    assert more.json()["error"]["code"] == "limit_exceeded"
