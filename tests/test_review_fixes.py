"""Hostile and edge inputs: each once answered 500, lost data or leaked state."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from livecommerce.config import Settings
from tests.catalog.test_import import HEADER, row, to_csv, upload
from tests.fixtures.database import TestDatabase
from tests.fixtures.factories import account, create_product, product_body


async def test_failed_commit_is_an_error_not_a_success(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The commit happens before the response: if it fails the client gets a 500, not 201."""
    from livecommerce import db

    _, headers = await account(client, role="merchant")

    async def failing_commit(session: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(db, "commit_and_run_effects", failing_commit)
    app = client._transport.app  # type: ignore[attr-defined]
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as raw:
        response = await raw.post("/api/v1/products", json=product_body(), headers=headers)
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "internal_error"


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


async def test_control_characters_are_refused(client: httpx.AsyncClient) -> None:
    """NUL and other control characters in text are a 422 on every database."""
    _, headers = await account(client, role="merchant")
    body = product_body(title={"ru": "a\u0000b"})
    response = await client.post("/api/v1/products", json=body, headers=headers)
    assert response.status_code == 422
    assert response.json()["error"]["details"]["fields"][0]["code"] == "invalid_characters"
    assert (await client.get("/api/v1/products", params={"q": "a\x00b"})).status_code == 422
    content = to_csv([row("C-1"), row("C-2", title_ru="bad\x00cell")])
    report = (await upload(client, headers, content)).json()
    assert report["created"] == 1
    assert [(e["row"], e["code"]) for e in report["errors"]] == [(3, "invalid_characters")]


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


async def test_csv_stock_beyond_the_maximum_is_a_row_error(client: httpx.AsyncClient) -> None:
    """A ten-digit stock figure fails its row instead of overflowing the column."""
    _, headers = await account(client, role="merchant")
    content = to_csv([row("Q-1"), row("Q-2", stock_KZALA="5000000000")])
    report = (await upload(client, headers, content)).json()
    assert report["created"] == 1
    assert [(e["row"], e["code"]) for e in report["errors"]] == [(3, "invalid_stock")]


async def test_utf16_files_with_bad_units(client: httpx.AsyncClient) -> None:
    """A lone surrogate fails its row; a truncated UTF-16 file is one clear 422."""
    _, headers = await account(client, role="merchant")
    text = to_csv([row("U-1"), row("U-2", title_ru="XX"), row("U-3")]).decode()
    encoded = text.encode("utf-16-le")
    lone = "\ud800".encode("utf-16-le", "surrogatepass")
    encoded = b"\xff\xfe" + encoded.replace("XX".encode("utf-16-le"), lone)
    report = (await upload(client, headers, encoded, "?encoding=utf-16")).json()
    assert report["created"] == 2
    assert [(e["row"], e["code"]) for e in report["errors"]] == [(3, "bad_encoding")]
    truncated = b"\xff\xfe" + text.encode("utf-16-le") + b"\x41"
    response = await upload(client, headers, truncated, "?encoding=utf-16")
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "csv_undecodable"


async def test_reimport_without_images_keeps_them(client: httpx.AsyncClient) -> None:
    """A re-import whose file has no image column leaves the stored images alone."""
    _, headers = await account(client, role="merchant")
    await upload(
        client, headers, to_csv([row("I-1", image_urls="https://a.kz/1.jpg|https://a.kz/2.jpg")])
    )
    header = [h for h in HEADER if h != "image_urls"]
    plain = to_csv(
        [[v for h, v in zip(HEADER, row("I-1", price="5"), strict=True) if h != "image_urls"]],
        header=header,
    )
    assert (await upload(client, headers, plain)).json()["updated"] == 1
    product = (await client.get("/api/v1/products", headers=headers)).json()["items"][0]
    assert product["image_urls"] == ["https://a.kz/1.jpg", "https://a.kz/2.jpg"]


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


async def test_concurrent_imports_of_one_merchant(client: httpx.AsyncClient) -> None:
    """Two imports of the same SKUs in opposite orders both finish (no deadlock)."""
    _, headers = await account(client, role="merchant")
    rows = [row(f"D-{n}") for n in range(1500)]
    first, second = await asyncio.gather(
        upload(client, headers, to_csv(rows)), upload(client, headers, to_csv(rows[::-1]))
    )
    assert (first.status_code, second.status_code) == (200, 200)
    assert sorted([first.json()["created"], second.json()["created"]]) == [0, 1500]


async def test_chunked_upload_over_the_limit_is_cut_off(
    database: TestDatabase, tmp_path: Path
) -> None:
    """A body without Content-Length is still stopped at the limit with a 413."""
    from livecommerce.app import create_app
    from tests.conftest import make_settings

    app = create_app(make_settings(database.url, tmp_path, max_upload_bytes=4096))
    sent = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal sent
        boundary = b'--x\r\nContent-Disposition: form-data; name="file"; filename="a.csv"\r\n\r\n'
        yield boundary
        for _ in range(1000):
            sent += 1024
            yield b"a" * 1024

    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            try:
                _, headers = await account(client, role="merchant")
                response = await client.post(
                    "/api/v1/products/import",
                    content=body(),
                    headers={**headers, "Content-Type": "multipart/form-data; boundary=x"},
                )
                assert response.status_code == 413
                assert sent < 1000 * 1024  # reading stopped early
            finally:
                await database.reset()


async def test_guest_profile_follows_requested_currency(client: httpx.AsyncClient) -> None:
    """A guest's /me reports the negotiated currency."""
    token = (await client.post("/api/v1/auth/guest")).json()["access_token"]
    me = await client.get("/api/v1/me?currency=USD", headers={"Authorization": f"Bearer {token}"})
    assert me.json()["currency"] == "USD"


def test_short_configured_secret_keys_are_refused() -> None:
    """A configured signing key shorter than 32 characters is a configuration error."""
    with pytest.raises(ValidationError):
        Settings(secret_key="short")
