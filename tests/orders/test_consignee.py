"""The recipient's tax id: asked for where a parcel's customs rule needs it, in the shape of
the destination country's number, on both ways of placing an order; a quote never needs it.

Orders are placed after 1 July 2026, so EAEU parcels are e-commerce goods: a tax id is
needed when duty or import VAT is due (above EUR 200), and never for Uzbekistan.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from livecommerce.accounts.models import User
from livecommerce.db import session_scope
from livecommerce.logistics.network import load_network
from livecommerce.orders import service
from livecommerce.orders.consignee import mask_tax_id
from livecommerce.orders.schemas import OrderIn
from livecommerce.orders.service import PlaceApart, Wanted
from tests.fixtures.factories import account
from tests.orders.shop import ALMATY, TASHKENT, merchant, order, stocked_product
from tests.orders.test_concurrency import buyers
from tests.orders.test_orders_api import flash_sale, live_stream
from tests.orders.test_placed_at_the_door import user_id

MOSCOW = {**ALMATY, "country": "RU", "city": "Moscow", "phone": "+7 916 000 00 02"}
INN = "770112345678"
EUR = "EUR"


async def coat(client: httpx.AsyncClient, price: str = "250.00", **stock: int) -> int:
    _, mh = await merchant(client)
    levels = stock or {"DEDUI": 5}
    product = await stocked_product(
        client, mh, weight_grams=1000, price={"amount": price, "currency": EUR}, **levels
    )
    return int(product["id"])


async def quote(client: httpx.AsyncClient, product: int, ship_to: dict[str, Any]) -> Any:
    body = {"items": [{"product_id": product, "quantity": 1}], "ship_to": ship_to}
    return await client.post("/api/v1/quotes?locale=ru", json=body)


async def test_a_dutiable_eaeu_order_needs_the_recipients_tax_id(
    client: httpx.AsyncClient,
) -> None:
    """Moscow, EUR 250 from Duisburg: the quote says an INN is required (and needs none
    itself); the order without one is a localized 422 naming the rule, with one it is placed
    and the order shows only its last four digits."""
    product = await coat(client)
    quoted = await quote(client, product, {"country": "RU", "city": "Moscow"})
    assert quoted.status_code == 200, quoted.text
    assert quoted.json()["consignee"] == {"tax_id": "required", "tax_id_name": "ИНН"}

    _, buyer = await account(client)
    refused = await order(client, buyer, [(product, 1)], ship_to=MOSCOW, query="?locale=ru")
    assert refused.status_code == 422, refused.text
    error = refused.json()["error"]
    assert error["code"] == "tax_id_required"
    assert error["message"] == (
        "Для таможенного оформления этого заказа нужен налоговый номер (ИНН)."
    )
    assert error["details"] == {
        "field": "ship_to.tax_id",
        "country": "RU",
        "rule": "EAEU-2026-ECOM",
        "warehouses": ["DEDUI"],
    }
    in_english = await order(client, buyer, [(product, 1)], ship_to=MOSCOW, query="?locale=en")
    assert in_english.json()["error"]["message"] == (
        "A tax id (INN) is required for customs for this order."
    )

    placed = await order(client, buyer, [(product, 1)], ship_to={**MOSCOW, "tax_id": INN})
    assert placed.status_code == 201, placed.text
    assert placed.json()["ship_to"]["tax_id"] == "••••••••5678"
    assert placed.json()["consignee"] is None  # quotes only
    again = await client.get(f"/api/v1/orders/{placed.json()['id']}", headers=buyer)
    assert again.json()["ship_to"]["tax_id"] == "••••••••5678"


async def test_a_malformed_tax_id_is_refused_for_its_country(client: httpx.AsyncClient) -> None:
    """An INN must have 12 digits, a Kazakh IIN too, a Kyrgyz PIN 14: a number of another
    shape is a 422 ``bad_tax_id`` naming the document, on a quote as on an order."""
    product = await coat(client)
    _, buyer = await account(client)
    bad = await order(
        client, buyer, [(product, 1)], ship_to={**MOSCOW, "tax_id": "77011234"}, query="?locale=ru"
    )
    assert bad.status_code == 422, bad.text
    assert bad.json()["error"]["code"] == "bad_tax_id"
    assert bad.json()["error"]["message"] == "Это неверный ИНН: проверьте номер."
    assert bad.json()["error"]["details"] == {"field": "ship_to.tax_id", "country": "RU"}
    letters = await quote(client, product, {"country": "KZ", "city": "Almaty", "tax_id": "ABC"})
    assert letters.status_code == 422 and letters.json()["error"]["code"] == "bad_tax_id"
    kyrgyz = {"country": "KG", "city": "Bishkek", "tax_id": INN}  # 12 digits, not 14
    assert (await quote(client, product, kyrgyz)).json()["error"]["code"] == "bad_tax_id"
    fits = await quote(client, product, {**kyrgyz, "tax_id": "21234567890123"})
    assert fits.status_code == 200, fits.text


@pytest.mark.parametrize(
    ("ship_to", "price", "expected"),
    [
        pytest.param(MOSCOW, "150.00", "optional", id="eaeu-within-allowance"),
        pytest.param(TASHKENT, "250.00", "optional", id="uzbekistan"),
    ],
)
async def test_no_tax_id_is_needed_where_the_rule_does_not_ask(
    client: httpx.AsyncClient, ship_to: dict[str, Any], price: str, expected: str
) -> None:
    """EUR 150 to Moscow is duty-free, and Uzbek rules never ask for a PINFL: the quote says
    the number is optional and the order is placed without it."""
    product = await coat(client, price)
    quoted = await quote(client, product, {"country": ship_to["country"], "city": ship_to["city"]})
    assert quoted.json()["consignee"]["tax_id"] == expected
    _, buyer = await account(client)
    placed = await order(client, buyer, [(product, 1)], ship_to=ship_to)
    assert placed.status_code == 201, placed.text


async def test_stock_inside_the_union_needs_no_tax_id(client: httpx.AsyncClient) -> None:
    """EUR 250 from Almaty to Moscow crosses no customs border: nothing is declared, so the
    quote asks for no tax id and the order is placed without one."""
    product = await coat(client, KZALA=5)
    quoted = await quote(client, product, {"country": "RU", "city": "Moscow"})
    assert quoted.json()["consignee"] == {"tax_id": None, "tax_id_name": "ИНН"}
    _, buyer = await account(client)
    placed = await order(client, buyer, [(product, 1)], ship_to=MOSCOW)
    assert placed.status_code == 201, placed.text


async def test_winners_placed_together_need_the_tax_id_as_each_alone(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """A flash sale of EUR 250 coats in Duisburg: winners rushing at once who give an INN are
    placed, those without one hear the same localized 422 as an order placed alone."""
    _, mh = await merchant(client)
    product = await stocked_product(
        client, mh, DEDUI=20, weight_grams=1000, price={"amount": "300.00", "currency": EUR}
    )
    sid = await live_stream(client, mh)
    sale = await flash_sale(
        client,
        mh,
        sid,
        product["id"],
        quantity=10,
        price={"amount": "250.00", "currency": EUR},
    )
    crowd = await buyers(app, 8)

    def ship_to(i: int) -> dict[str, Any]:
        to = {**MOSCOW, "phone": f"+7 916 000 01 0{i}"}
        return {**to, "tax_id": INN} if i % 2 == 0 else to

    answers = await asyncio.gather(
        *(
            order(
                client,
                {**b, "Accept-Language": "ru"},
                [(product["id"], 1)],
                flash_sale_id=sale["id"],
                ship_to=ship_to(i),
            )
            for i, b in enumerate(crowd)
        )
    )
    assert [a.status_code for a in answers] == [201, 422] * 4, [a.text for a in answers]
    for refused in answers[1::2]:
        assert refused.json()["error"]["code"] == "tax_id_required"
        assert "ИНН" in refused.json()["error"]["message"]

    # The batch path itself: one order of the batch without a tax id sends it apart; with
    # one for both, the same two are placed together.
    ids = [user_id(app, b) for b in crowd[:2]]

    async def together(*addresses: dict[str, Any]) -> int:
        async with session_scope(app.state.sessions) as session:
            found = await session.scalars(select(User).where(User.id.in_(ids)))  # type: ignore[attr-defined]
            users = {u.id: u for u in found}
            wanted = [
                Wanted(
                    users[uid],
                    OrderIn.model_validate(
                        {
                            "items": [{"product_id": product["id"], "quantity": 1}],
                            "ship_to": address,
                            "payment_method": "cod",
                        }
                    ),
                    "RUB",
                    "ru",
                )
                for uid, address in zip(ids, addresses, strict=True)
            ]
            placed = await service.place_together(
                session=session,
                network=load_network(),
                wanted=wanted,
                reservation=timedelta(minutes=15),
                announcer=None,
                books=app.state.rate_books,
            )
            await session.rollback()
            return len(placed.placed)

    with pytest.raises(PlaceApart):
        await together(ship_to(0), ship_to(1))
    assert await together(ship_to(0), ship_to(2)) == 2


def test_masking_keeps_the_last_four_characters() -> None:
    """Enough to tell two recipients apart, not enough to file with."""
    assert mask_tax_id("900101300123") == "••••••••0123"
    assert mask_tax_id("123") == "123" and mask_tax_id(None) is None
