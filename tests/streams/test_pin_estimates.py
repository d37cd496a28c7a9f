"""A pin carries the delivery estimate to every city, rendered per viewer group."""

from __future__ import annotations

import json
from typing import Any

import httpx
from websockets.asyncio.client import connect

from tests.fixtures.factories import account
from tests.fixtures.frames import next_frame
from tests.orders.shop import TASHKENT, merchant, order, stocked_product
from tests.rooms.test_rooms_ws import (  # noqa: F401  (fixtures)
    base_url,
    guest_token,
    http,
    live_stream,
    ws_url,
)


def entry(frame: dict[str, Any], city_key: str) -> dict[str, Any]:
    found: dict[str, Any] = next(
        d for d in frame["data"]["estimates"]["destinations"] if d["city_key"] == city_key
    )
    return found


async def test_the_pin_frame_carries_estimates_in_the_viewers_currency(
    http: httpx.AsyncClient,  # noqa: F811
) -> None:
    """kk/KZT and uz/UZS viewers read their city's estimate from the frame, in their own
    currency and language, with the endpoint's figures."""
    live = await live_stream(http)
    product_id = live.product["id"]
    for code, quantity in {"DEDUI": 5}.items():
        put = await http.put(
            f"/api/v1/products/{product_id}/stock/{code}",
            json={"quantity": quantity},
            headers=live.host,
        )
        assert put.status_code == 200, put.text
    token = await guest_token(http)
    wanted = {"kk": "KZT", "uz": "UZS"}
    sockets = {
        loc: await connect(ws_url(http, live.stream_id, token, locale=loc)) for loc in wanted
    }
    try:
        for ws in sockets.values():
            await next_frame(ws, "welcome")
        pinned = await http.post(
            f"/api/v1/streams/{live.stream_id}/pins",
            json={"product_id": product_id},
            headers=live.host,
        )
        assert pinned.status_code == 200, pinned.text
        frames = {loc: await next_frame(ws, "product_pinned") for loc, ws in sockets.items()}
    finally:
        for ws in sockets.values():
            await ws.close()
    assert frames["kk"]["data"]["estimates"]["out_of_stock"] is False
    for loc, city_key, country, city in (
        ("kk", "almaty", "KZ", "Алматы"),
        ("uz", "tashkent", "UZ", "Toshkent"),
    ):
        carried = entry(frames[loc], city_key)
        currency = wanted[loc]
        asked = await http.get(
            f"/api/v1/products/{product_id}/delivery-estimate",
            params={"country": country, "city": city, "locale": loc, "currency": currency},
        )
        assert asked.status_code == 200, asked.text
        body = asked.json()
        for field in ("unit_price", "shipping", "duties", "total"):
            assert carried[field]["currency"] == currency
            assert carried[field] == body[field], field
        assert carried["eta"] == body["eta"] and carried["warehouse"] == "DEDUI"
        assert carried["city"] == body["destination"]["city"]
        assert carried["monthly_allowance"] is body["monthly_allowance"]
    assert entry(frames["kk"], "almaty")["city"] == "Алматы"
    assert entry(frames["uz"], "tashkent")["monthly_allowance"] is True
    assert "toshkent" in entry(frames["uz"], "tashkent")["match"]


async def test_a_signed_in_buyer_asks_for_their_own_figure_over_the_room(
    http: httpx.AsyncClient,  # noqa: F811
) -> None:
    """A buyer who imported this month asks over the room's socket and gets the endpoint's
    personal answer; requests beyond the per-connection burst are refused, localized."""
    live = await live_stream(http)
    _, mh = await merchant(http)
    bag = await stocked_product(
        http, mh, DEDUI=5, weight_grams=2000, price={"amount": "150.00", "currency": "EUR"}
    )
    _, buyer = await account(http)
    placed = await order(http, buyer, [(bag["id"], 1)], ship_to=TASHKENT)
    assert placed.status_code == 201, placed.text
    token = buyer["Authorization"].removeprefix("Bearer ")
    own = await http.get(
        f"/api/v1/products/{bag['id']}/delivery-estimate",
        params={"country": "UZ", "city": "Toshkent", "locale": "uz", "currency": "UZS"},
        headers=buyer,
    )
    assert own.status_code == 200, own.text
    async with connect(ws_url(http, live.stream_id, token, locale="uz", currency="UZS")) as ws:
        await next_frame(ws, "welcome")
        ask = {"product_id": bag["id"], "country": "UZ", "city": "Toshkent"}
        for n in range(6):
            await ws.send(json.dumps({"type": "estimate", "data": {**ask, "ref": f"p{n}"}}))
        answers = [await next_frame(ws, "estimate", "error") for _ in range(6)]
    assert all(f["seq"] is None and f["ts"] for f in answers)  # the envelope, not an event
    by_type: dict[str, list[dict[str, Any]]] = {}
    for frame in answers:
        by_type.setdefault(frame["type"], []).append(frame["data"])
    assert len(by_type["estimate"]) == 5, answers
    for data in by_type["estimate"]:
        assert data == {**own.json(), "ref": data["ref"]}
        assert data["personal"] is True and data["duties"]["amount"] == "537776.00"
    [refused] = by_type["error"]
    assert refused["code"] == "rate_limited"
    assert refused["message"] != "You are sending messages too fast. Wait a moment."  # uz
