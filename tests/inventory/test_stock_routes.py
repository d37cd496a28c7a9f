"""Stock per warehouse over HTTP: the merchant's levels, and the warehouses themselves."""

from __future__ import annotations

import httpx

from tests.fixtures.factories import account, create_product


async def test_stock_per_warehouse(client: httpx.AsyncClient) -> None:
    """Stock is set per warehouse; unknown warehouses are 404 and negatives 422."""
    _, headers = await account(client, role="merchant")
    product = await create_product(client, headers)
    pid = product["id"]
    await client.put(f"/api/v1/products/{pid}/stock/dedui", json={"quantity": 5}, headers=headers)
    levels = (
        await client.put(
            f"/api/v1/products/{pid}/stock/KZALA", json={"quantity": 12}, headers=headers
        )
    ).json()
    assert levels == [{"warehouse": "DEDUI", "quantity": 5}, {"warehouse": "KZALA", "quantity": 12}]
    unknown = await client.put(
        f"/api/v1/products/{pid}/stock/CNURC", json={"quantity": 1}, headers=headers
    )
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "warehouse_not_found"
    negative = await client.put(
        f"/api/v1/products/{pid}/stock/KZALA", json={"quantity": -1}, headers=headers
    )
    assert negative.status_code == 422


async def test_warehouses_are_listed_in_the_request_language(client: httpx.AsyncClient) -> None:
    """Both corridor warehouses are seeded, with localized names."""
    body = (await client.get("/api/v1/warehouses?locale=uz")).json()
    assert [(w["code"], w["name"]) for w in body] == [("DEDUI", "Duysburg"), ("KZALA", "Olmaota")]
