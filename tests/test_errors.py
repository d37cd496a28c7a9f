from __future__ import annotations

import httpx
import pytest


async def test_unknown_route_is_a_localized_404(client: httpx.AsyncClient) -> None:
    """Unknown paths answer in the error shape, in the negotiated language."""
    response = await client.get("/api/v1/nowhere", headers={"Accept-Language": "uz"})
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "not_found" and error["details"] == {}
    assert error["message"] != "Nothing was found at this address."


async def test_wrong_method_is_405(client: httpx.AsyncClient) -> None:
    """A wrong HTTP method is a 405 in the error shape."""
    response = await client.put("/api/v1/warehouses")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("?locale=fr", "unsupported_locale"),
        ("?currency=GBP", "unsupported_currency"),
        ("?page=0", "validation_error"),
        ("?page_size=1000", "validation_error"),
        ("?page=abc", "validation_error"),
    ],
)
async def test_bad_query_parameters_are_422(
    client: httpx.AsyncClient, query: str, code: str
) -> None:
    """Unsupported locales, currencies and paging values are 422 with a clear code."""
    response = await client.get(f"/api/v1/products{query}")
    assert response.status_code == 422
    assert response.json()["error"]["code"] == code


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"[]",
        b"null",
        b'{"email": 5}',
        '{"email": "\udc80"}'.encode("utf-8", "surrogatepass"),
    ],
)
async def test_malformed_bodies_never_500(client: httpx.AsyncClient, body: bytes) -> None:
    """Broken JSON, wrong types and invalid UTF-8 are a 422, never a 500."""
    response = await client.post(
        "/api/v1/auth/register", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_error"


@pytest.mark.parametrize("locale", ["kk", "ru", "uz", "en", "zh"])
async def test_error_messages_in_every_locale(client: httpx.AsyncClient, locale: str) -> None:
    """The same error reads differently in each of the five languages."""
    response = await client.get(f"/api/v1/products/999999?locale={locale}")
    assert response.status_code == 404
    expected = {
        "kk": "Тауар табылмады.",
        "ru": "Товар не найден.",
        "uz": "Mahsulot topilmadi.",
        "en": "Product not found.",
        "zh": "未找到商品。",
    }
    assert response.json()["error"] == {
        "code": "product_not_found",
        "message": expected[locale],
        "details": {},
    }


async def test_health_endpoints(client: httpx.AsyncClient) -> None:
    """/healthz answers always; /readyz checks the database and the rooms broker."""
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    assert (await client.get("/readyz")).json() == {
        "status": "ok",
        "database": "ok",
        "rooms": "ok",
    }


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/products/3000000000",
        "/api/v1/products/99999999999999999999",
        "/api/v1/products/0",
        "/api/v1/products?merchant_id=3000000000",
    ],
)
async def test_ids_out_of_range_are_422(client: httpx.AsyncClient, path: str) -> None:
    """Ids beyond 32 bits (or below 1) are a validation error, not a database error."""
    response = await client.get(path)
    assert response.status_code == 422
