"""Plain helpers for order tests: a merchant with stocked products, and buyers."""

from __future__ import annotations

from typing import Any

import httpx

from tests.fixtures.factories import account, create_product

ALMATY = {
    "country": "KZ",
    "city": "Almaty",
    "postal_code": "050000",
    "address_line1": "Abay Ave 10",
    "recipient_name": "Aigerim Sadykova",
    "phone": "+7 701 123 45 67",
}
TASHKENT = {
    "country": "UZ",
    "city": "Tashkent",
    "postal_code": "100000",
    "address_line1": "Amir Temur 1",
    "recipient_name": "Dilnoza Karimova",
    "phone": "+998 90 123 45 67",
}


async def stock(
    client: httpx.AsyncClient, headers: dict[str, str], product_id: int, **levels: int
) -> None:
    for code, quantity in levels.items():
        response = await client.put(
            f"/api/v1/products/{product_id}/stock/{code}",
            json={"quantity": quantity},
            headers=headers,
        )
        assert response.status_code == 200, response.text


async def stocked_product(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    *,
    KZALA: int | None = None,
    DEDUI: int | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    product = await create_product(client, headers, **overrides)
    given = {"KZALA": KZALA, "DEDUI": DEDUI}
    await stock(client, headers, product["id"], **{k: v for k, v in given.items() if v is not None})
    return product


async def order(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    items: list[tuple[int, int]],
    *,
    ship_to: dict[str, Any] | None = None,
    method: str = "cod",
    key: str | None = None,
    query: str = "",
    **extra: Any,
) -> httpx.Response:
    body = {
        "items": [{"product_id": p, "quantity": q} for p, q in items],
        "ship_to": ship_to or ALMATY,
        "payment_method": method,
        **extra,
    }
    hdrs = dict(headers)
    if key:
        hdrs["Idempotency-Key"] = key
    return await client.post(f"/api/v1/orders{query}", json=body, headers=hdrs)


async def merchant(client: httpx.AsyncClient) -> tuple[dict[str, Any], dict[str, str]]:
    return await account(client, role="merchant")
