from __future__ import annotations

import httpx
import pytest

from tests.fixtures.factories import account, create_product, product_body


async def test_create_and_read_in_each_locale(client: httpx.AsyncClient) -> None:
    """A product reads back in the request's language and the locale's market currency."""
    _, headers = await account(client, role="merchant", currency="CNY")
    product = await create_product(client, headers, price={"amount": "120.00", "currency": "CNY"})
    expected = {
        "kk": ("Ылғалдандыратын крем", "KZT"),
        "ru": ("Увлажняющий крем", "RUB"),
        "uz": ("Namlovchi krem", "UZS"),
        "en": ("Moisturising cream", "EUR"),
        "zh": ("保湿霜", "CNY"),
    }
    for locale, (title, currency) in expected.items():
        body = (await client.get(f"/api/v1/products/{product['id']}?locale={locale}")).json()
        assert body["title"] == title
        assert body["price"]["currency"] == currency


async def test_price_conversion_states_its_rates(client: httpx.AsyncClient) -> None:
    """120 CNY in KZT goes through EUR with the seeded rates and lists both rates."""
    _, headers = await account(client, role="merchant", currency="CNY")
    product = await create_product(client, headers)
    body = (await client.get(f"/api/v1/products/{product['id']}?locale=kk")).json()
    # 120 / 8.27 * 602.50 = 8742.44... -> whole tenge
    assert body["price"] == {"amount": "8742.00", "currency": "KZT", "formatted": "8\xa0742\xa0₸"}
    pairs = {(r["base"], r["quote"]) for r in body["rates"]}
    assert pairs == {("EUR", "CNY"), ("EUR", "KZT")}
    same = (await client.get(f"/api/v1/products/{product['id']}?currency=CNY&locale=zh")).json()
    assert same["price"]["formatted"] == "¥120.00" and same["rates"] == []


async def test_new_rate_changes_the_price(client: httpx.AsyncClient) -> None:
    """An admin publishes a newer rate and prices follow it."""
    _, headers = await account(client, role="merchant", currency="EUR")
    product = await create_product(client, headers, price={"amount": "10.00", "currency": "EUR"})
    admin_headers = await _admin(client)
    posted = await client.post(
        "/api/v1/rates",
        headers=admin_headers,
        json={
            "base": "EUR",
            "quote": "KZT",
            "rate": "610.00",
            "source": "National Bank of Kazakhstan",
            "as_of": "2026-11-22T06:00:00+05:00",
        },
    )
    assert posted.status_code == 201, posted.text
    body = (await client.get(f"/api/v1/products/{product['id']}?currency=KZT")).json()
    assert body["price"]["amount"] == "6100.00"
    assert body["rates"][0]["source"] == "National Bank of Kazakhstan"
    refused = await client.post(
        "/api/v1/rates",
        headers=headers,
        json={
            "base": "EUR",
            "quote": "KZT",
            "rate": "1",
            "source": "x",
            "as_of": "2026-11-22T06:00:00Z",
        },
    )
    assert refused.status_code == 403


async def _admin(client: httpx.AsyncClient) -> dict[str, str]:
    from livecommerce.accounts.service import create_admin
    from livecommerce.db import session_scope
    from tests.fixtures.factories import PASSWORD, login

    app = client._transport.app  # type: ignore[attr-defined]
    async with session_scope(app.state.sessions) as session:
        await create_admin(
            session=session, email="admin@example.kz", password=PASSWORD, display_name="Admin"
        )
    return await login(client, "admin@example.kz")


async def test_sku_is_unique_per_merchant(client: httpx.AsyncClient) -> None:
    """One merchant cannot reuse a SKU; another merchant can."""
    _, first = await account(client, role="merchant")
    _, second = await account(client, role="merchant")
    await create_product(client, first, sku="KHG-1")
    clash = await client.post("/api/v1/products", json=product_body(sku="KHG-1"), headers=first)
    assert clash.status_code == 409 and clash.json()["error"]["code"] == "sku_taken"
    assert "KHG-1" in clash.json()["error"]["message"]
    await create_product(client, second, sku="KHG-1")


async def test_merchant_isolation(client: httpx.AsyncClient) -> None:
    """A merchant can neither see nor change another merchant's products or stock."""
    owner, owner_headers = await account(client, role="merchant")
    _, other_headers = await account(client, role="merchant")
    product = await create_product(client, owner_headers)
    pid = product["id"]
    assert (await client.get(f"/api/v1/products/{pid}", headers=other_headers)).status_code == 404
    patch = await client.patch(
        f"/api/v1/products/{pid}", json={"weight_grams": 1}, headers=other_headers
    )
    assert patch.status_code == 404
    stock = await client.put(
        f"/api/v1/products/{pid}/stock/KZALA", json={"quantity": 1}, headers=other_headers
    )
    assert stock.status_code == 404
    assert (
        await client.delete(f"/api/v1/products/{pid}", headers=other_headers)
    ).status_code == 404
    listing = await client.get("/api/v1/products", headers=other_headers)
    assert listing.json()["total"] == 0
    foreign = await client.get(
        f"/api/v1/products?merchant_id={owner['merchant']['id']}", headers=other_headers
    )
    assert foreign.status_code == 403
    # The owner still has it, with the editing view.
    mine = (await client.get(f"/api/v1/products/{pid}", headers=owner_headers)).json()
    assert mine["translations"]["title"]["kk"] == "Ылғалдандыратын крем"
    assert mine["base_price"]["amount"] == "120.00"


async def test_viewers_see_no_merchant_internals(client: httpx.AsyncClient) -> None:
    """Viewers read products without stock figures or the translation maps."""
    _, headers = await account(client, role="merchant")
    product = await create_product(client, headers)
    await client.put(
        f"/api/v1/products/{product['id']}/stock/DEDUI", json={"quantity": 3}, headers=headers
    )
    _, viewer = await account(client, role="viewer")
    body = (await client.get(f"/api/v1/products/{product['id']}", headers=viewer)).json()
    assert body["available"] is True
    assert body["stock"] is None and body["translations"] is None and body["base_price"] is None


async def test_patch_merges_translations(client: httpx.AsyncClient) -> None:
    """PATCH merges titles per language; null removes one, and the fallback takes over."""
    _, headers = await account(client, role="merchant")
    product = await create_product(client, headers)
    response = await client.patch(
        f"/api/v1/products/{product['id']}",
        headers=headers,
        json={"title": {"kk": None, "uz": "Yangi krem"}, "hs_code": "3304.99.00"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["hs_code"] == "33049900"
    assert body["translations"]["title"]["uz"] == "Yangi krem"
    assert "kk" not in body["translations"]["title"]
    kk = (await client.get(f"/api/v1/products/{product['id']}?locale=kk")).json()
    assert kk["title"] == "Увлажняющий крем"  # kk falls back to ru
    every = {locale: None for locale in ("kk", "ru", "uz", "en", "zh")}
    emptied = await client.patch(
        f"/api/v1/products/{product['id']}?locale=ru", headers=headers, json={"title": every}
    )
    assert emptied.status_code == 422
    assert emptied.json()["error"]["code"] == "translation_required"
    assert emptied.json()["error"]["message"] == "Укажите текст хотя бы на одном языке."


async def test_delete_hides_and_frees_the_sku(client: httpx.AsyncClient) -> None:
    """A deleted product disappears from reads, and its SKU can be used again."""
    _, headers = await account(client, role="merchant")
    product = await create_product(client, headers, sku="GONE-1")
    assert (
        await client.delete(f"/api/v1/products/{product['id']}", headers=headers)
    ).status_code == 204
    assert (await client.get(f"/api/v1/products/{product['id']}")).status_code == 404
    again = await create_product(client, headers, sku="GONE-1", title={"en": "Back"})
    assert again["title"] == "Back"


async def test_search_in_any_language_and_pagination(client: httpx.AsyncClient) -> None:
    """Search matches Kazakh, Chinese or SKU text, case-insensitively, and pages results."""
    _, headers = await account(client, role="merchant")
    await create_product(
        client,
        headers,
        sku="TEA-1",
        title={"kk": "Фарфор шай жиынтығы", "zh": "瓷器茶具", "en": "Tea set"},
    )
    for n in range(5):
        await create_product(client, headers, sku=f"CABLE-{n}", title={"en": f"USB-C cable {n}"})
    assert (await client.get("/api/v1/products", params={"q": "ШАЙ"})).json()["total"] == 1
    assert (await client.get("/api/v1/products", params={"q": "茶具"})).json()["total"] == 1
    assert (await client.get("/api/v1/products", params={"q": "tea-1"})).json()["total"] == 1
    assert (await client.get("/api/v1/products", params={"q": "100%_"})).json()["total"] == 0
    page = (
        await client.get("/api/v1/products", params={"q": "usb-c", "page_size": 2, "page": 3})
    ).json()
    assert page["total"] == 5 and page["pages"] == 3 and len(page["items"]) == 1
    assert page["items"][0]["title"] == "USB-C cable 0"  # newest first


@pytest.mark.parametrize(
    ("overrides", "field", "code"),
    [
        ({"hs_code": "12345"}, "hs_code", "invalid_hs_code"),
        ({"hs_code": "12345678901"}, "hs_code", "invalid_hs_code"),
        ({"origin_country": "XX"}, "origin_country", "invalid_country"),
        ({"title": {}}, "title", "translation_required"),
        ({"title": {"fr": "Crème"}}, "title", "unsupported_language"),
        ({"price": {"amount": "-1", "currency": "CNY"}}, "price", "invalid_price"),
        ({"price": {"amount": "abc", "currency": "CNY"}}, "price.amount", "invalid_amount"),
        ({"price": {"amount": "1.234", "currency": "EUR"}}, "price", "invalid_price"),
        ({"price": {"amount": "1", "currency": "GBP"}}, "price.currency", "unsupported_currency"),
        ({"weight_grams": 0}, "weight_grams", "greater_than"),
        ({"sku": "has space"}, "sku", "invalid_sku"),
        ({"image_urls": ["ftp://x"]}, "image_urls", "invalid_image_urls"),
    ],
)
async def test_product_validation_is_localized(
    client: httpx.AsyncClient, overrides: dict[str, object], field: str, code: str
) -> None:
    """Invalid product fields give 422 with a code and a Russian message, never a 500."""
    _, headers = await account(client, role="merchant")
    response = await client.post(
        "/api/v1/products?locale=ru", json=product_body(**overrides), headers=headers
    )
    assert response.status_code == 422, response.text
    fields = response.json()["error"]["details"]["fields"]
    assert {"field": field, "code": code} in [
        {"field": f["field"], "code": f["code"]} for f in fields
    ]
    message = next(f["message"] for f in fields if f["field"] == field)
    assert any("а" <= ch <= "я" for ch in message.lower()), message


async def test_counting_stops_at_the_cap(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the count cap the page says total_exact false instead of scanning every row."""
    from livecommerce.catalog import service

    _, headers = await account(client, role="merchant")
    for n in range(4):
        await create_product(client, headers, sku=f"CAP-{n}")
    monkeypatch.setattr(service, "COUNT_CAP", 3)
    page = (await client.get("/api/v1/products?page_size=2")).json()
    assert (page["total"], page["total_exact"], page["pages"]) == (3, False, 2)
    monkeypatch.setattr(service, "COUNT_CAP", 10)
    page = (await client.get("/api/v1/products?page_size=2")).json()
    assert (page["total"], page["total_exact"], page["pages"]) == (4, True, 2)


@pytest.mark.parametrize("amount", ["1e-999999999", "0.001", "1e20", "NaN", "Infinity"])
async def test_degenerate_prices_are_refused(client: httpx.AsyncClient, amount: str) -> None:
    """Prices that would round to zero, overflow or are not numbers are refused."""
    _, headers = await account(client, role="merchant")
    body = product_body(price={"amount": amount, "currency": "CNY"})
    response = await client.post("/api/v1/products", json=body, headers=headers)
    assert response.status_code == 422


async def test_sku_must_be_text(client: httpx.AsyncClient) -> None:
    """A JSON true is not a SKU."""
    _, headers = await account(client, role="merchant")
    response = await client.post("/api/v1/products", json=product_body(sku=True), headers=headers)
    assert response.status_code == 422


async def test_deleted_product_does_not_come_back_with_stock(client: httpx.AsyncClient) -> None:
    """Deleting a product empties its stock, so a revived SKU starts at zero."""
    _, headers = await account(client, role="merchant")
    product = await create_product(client, headers, sku="REV-1")
    await client.put(
        f"/api/v1/products/{product['id']}/stock/KZALA", json={"quantity": 40}, headers=headers
    )
    await client.delete(f"/api/v1/products/{product['id']}", headers=headers)
    again = await create_product(client, headers, sku="REV-1")
    assert again["available"] is False
    assert {s["quantity"] for s in again["stock"]} == {0}
