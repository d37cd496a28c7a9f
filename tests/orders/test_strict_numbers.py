"""Numbers in request bodies are JSON numbers: a string or a boolean is a 422, not coerced."""

from __future__ import annotations

from typing import Any

import httpx

from tests.fixtures.factories import account, product_body
from tests.orders.shop import ALMATY, merchant, stocked_product


async def test_quote_and_order_refuse_strings_and_booleans_as_numbers(
    client: httpx.AsyncClient,
) -> None:
    """ "2", true and "7" as quantity or product id are a localized 422 on quotes and orders."""
    _, mh = await merchant(client)
    product = await stocked_product(client, mh, KZALA=5)
    _, buyer = await account(client)
    good: dict[str, Any] = {"product_id": product["id"], "quantity": 2}
    bad_items = (
        {**good, "quantity": "2"},
        {**good, "quantity": True},
        {**good, "quantity": 2.5},
        {**good, "product_id": str(product["id"])},
        {**good, "product_id": True},
    )
    for item in bad_items:
        quote = {"items": [item], "ship_to": {"country": "KZ", "city": "Almaty"}}
        response = await client.post("/api/v1/quotes?locale=ru", json=quote)
        assert response.status_code == 422, (item, response.text)
        error = response.json()["error"]
        assert error["code"] == "validation_error", error
        placed = await client.post(
            "/api/v1/orders?locale=en",
            json={"items": [item], "ship_to": ALMATY, "payment_method": "cod"},
            headers=buyer,
        )
        assert placed.status_code == 422, (item, placed.text)
    as_stream = await client.post(
        "/api/v1/quotes",
        json={"items": [good], "ship_to": {"country": "KZ", "city": "Almaty"}, "stream_id": "1"},
    )
    assert as_stream.status_code == 422
    fine = await client.post(
        "/api/v1/quotes", json={"items": [good], "ship_to": {"country": "KZ", "city": "Almaty"}}
    )
    assert fine.status_code == 200, fine.text


async def test_catalog_bodies_refuse_strings_as_numbers(client: httpx.AsyncClient) -> None:
    """Stock and weight must be JSON numbers; "5" and true are a 422."""
    _, mh = await merchant(client)
    product = await stocked_product(client, mh, KZALA=1)
    for quantity in ("5", True):
        response = await client.put(
            f"/api/v1/products/{product['id']}/stock/KZALA",
            json={"quantity": quantity},
            headers=mh,
        )
        assert response.status_code == 422, response.text
    created = await client.post(
        "/api/v1/products", json=product_body(weight_grams="180"), headers=mh
    )
    assert created.status_code == 422, created.text
    patched = await client.patch(
        f"/api/v1/products/{product['id']}", json={"weight_grams": True}, headers=mh
    )
    assert patched.status_code == 422, patched.text
