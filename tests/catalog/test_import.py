from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.fixtures.database import TestDatabase
from tests.fixtures.factories import account, product_body

HEADER = [
    "sku",
    "title_ru",
    "title_kk",
    "title_uz",
    "description_ru",
    "price",
    "currency",
    "weight_grams",
    "hs_code",
    "origin_country",
    "image_urls",
    "stock_DEDUI",
    "stock_KZALA",
]


def row(sku: str, **overrides: str) -> list[str]:
    values = {
        "sku": sku,
        "title_ru": f"Товар {sku}",
        "title_kk": f"Тауар {sku}",
        "title_uz": f"Mahsulot {sku}",
        "description_ru": "Описание",
        "price": "99.50",
        "currency": "CNY",
        "weight_grams": "250",
        "hs_code": "330499",
        "origin_country": "CN",
        "image_urls": "https://img.example.com/a.jpg",
        "stock_DEDUI": "5",
        "stock_KZALA": "10",
        **overrides,
    }
    return [values[h] for h in HEADER]


def to_csv(rows: list[list[str]], header: list[str] = HEADER, delimiter: str = ",") -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter)
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8")


async def upload(
    client: httpx.AsyncClient, headers: dict[str, str], content: bytes, query: str = ""
) -> httpx.Response:
    return await client.post(
        f"/api/v1/products/import{query}",
        headers=headers,
        files={"file": ("catalog.csv", content, "text/csv")},
    )


async def test_import_creates_then_updates_by_sku(client: httpx.AsyncClient) -> None:
    """A re-import updates the same SKUs instead of duplicating them, stock included."""
    _, headers = await account(client, role="merchant")
    first = await upload(client, headers, to_csv([row("A-1"), row("A-2")]))
    assert first.status_code == 200, first.text
    assert first.json() | {"import_id": None, "summary": None} == {
        "import_id": None,
        "rows_total": 2,
        "created": 2,
        "updated": 0,
        "failed": 0,
        "errors": [],
        "errors_truncated": False,
        "ignored_columns": [],
        "summary": None,
    }
    second = await upload(
        client, headers, to_csv([row("A-1", price="120", stock_KZALA="3", title_kk="")])
    )
    assert (second.json()["created"], second.json()["updated"]) == (0, 1)
    listing = (await client.get("/api/v1/products?locale=kk&currency=CNY", headers=headers)).json()
    assert listing["total"] == 2
    updated = next(p for p in listing["items"] if p["sku"] == "A-1")
    assert updated["price"]["amount"] == "120.00"
    assert updated["title"] == "Тауар A-1"  # an empty cell keeps the existing translation
    assert {s["warehouse"]: s["quantity"] for s in updated["stock"]} == {"DEDUI": 5, "KZALA": 3}


async def test_bad_rows_never_stop_good_ones(client: httpx.AsyncClient) -> None:
    """Each bad row is reported with its row number and code; the good rows land."""
    _, headers = await account(client, role="merchant")
    rows = [
        row("OK-1"),
        row("BAD-HS", hs_code="12"),
        row("BAD-STOCK", stock_DEDUI="-4"),
        row("BAD-QTY", stock_KZALA="many"),
        row("OK-1"),  # duplicate of row 2
        row("BAD-COUNTRY", origin_country="Narnia"),
        row("BAD-PRICE", price="free"),
        row("", title_ru="no sku"),
        row("NO-TITLE", title_ru="", title_kk="", title_uz=""),
        row("OK-2"),
    ]
    body = (await upload(client, headers, to_csv(rows), "?locale=ru")).json()
    assert body["rows_total"] == 10 and body["created"] == 2 and body["failed"] == 8
    codes = {e["row"]: (e["code"], e["field"]) for e in body["errors"]}
    assert codes == {
        3: ("invalid_hs_code", "hs_code"),
        4: ("negative_stock", "stock_DEDUI"),
        5: ("invalid_stock", "stock_KZALA"),
        6: ("duplicate_sku", "sku"),
        7: ("invalid_country", "origin_country"),
        8: ("invalid_amount", "price"),
        9: ("invalid_sku", "sku"),
        10: ("translation_required", "title"),
    }
    assert all(e["message"] and e["message"].isascii() is False for e in body["errors"])
    assert body["summary"] == "Импортировано 2 товара; Отклонено 8 строк"


async def test_duplicate_sku_across_batches(client: httpx.AsyncClient) -> None:
    """A SKU repeated far apart in a file (different write batches) is still caught."""
    _, headers = await account(client, role="merchant")
    rows = [row(f"S-{n}") for n in range(2500)] + [row("S-3")]
    body = (await upload(client, headers, to_csv(rows))).json()
    assert body["created"] == 2500
    assert [(e["row"], e["code"]) for e in body["errors"]] == [(2502, "duplicate_sku")]


async def test_bad_encoding_row_is_reported_alone(client: httpx.AsyncClient) -> None:
    """Bytes that are not UTF-8 fail only the row that holds them."""
    _, headers = await account(client, role="merchant")
    content = to_csv([row("E-1"), row("E-2", title_ru="XXXX"), row("E-3")])
    content = content.replace(b"XXXX", "Крем".encode("cp1251"))
    body = (await upload(client, headers, content)).json()
    assert body["created"] == 2
    assert [(e["row"], e["code"]) for e in body["errors"]] == [(3, "bad_encoding")]


async def test_cp1251_with_semicolons_and_bom(client: httpx.AsyncClient) -> None:
    """Files from Russian-locale spreadsheets (cp1251, ';') import with ?encoding=cp1251."""
    _, headers = await account(client, role="merchant")
    text = to_csv([row("W-1", title_ru="Чайник")], delimiter=";").decode()
    body = (await upload(client, headers, text.encode("cp1251"), "?encoding=cp1251")).json()
    assert body["created"] == 1, body
    bom = b"\xef\xbb\xbf" + to_csv([row("W-2")])
    assert (await upload(client, headers, bom)).json()["created"] == 1
    listing = await client.get("/api/v1/products", params={"q": "чайник"}, headers=headers)
    assert listing.json()["total"] == 1
    unknown = await upload(client, headers, bom, "?encoding=latin-7")
    assert unknown.status_code == 422 and unknown.json()["error"]["code"] == "unsupported_encoding"


@pytest.mark.parametrize(
    ("header", "code"),
    [
        (["sku", "title_ru", "price"], "csv_missing_columns"),
        (["sku", "price", "weight_grams", "hs_code", "origin_country"], "csv_no_title"),
        ([*HEADER, "stock_CNURC"], "csv_unknown_warehouse"),
        ([*HEADER, "SKU"], "csv_duplicate_column"),
    ],
)
async def test_file_level_errors(client: httpx.AsyncClient, header: list[str], code: str) -> None:
    """A header that cannot work is one clear 422 before any row is read."""
    _, headers = await account(client, role="merchant")
    response = await upload(client, headers, to_csv([], header=header))
    assert response.status_code == 422
    assert response.json()["error"]["code"] == code


async def test_empty_file_and_malformed_rows(client: httpx.AsyncClient) -> None:
    """An empty upload is a 422; a row with extra cells is reported; blank lines are skipped."""
    _, headers = await account(client, role="merchant")
    empty = await upload(client, headers, b"")
    assert empty.status_code == 422 and empty.json()["error"]["code"] == "csv_empty"
    content = (
        to_csv([row("M-1")])
        + b"\r\n\r\n"
        + to_csv([[*row("M-2"), "extra"]])[len(",".join(HEADER)) + 2 :]
    )
    body = (await upload(client, headers, content)).json()
    assert body["created"] == 1
    assert [(e["row"], e["code"]) for e in body["errors"]] == [(5, "malformed_row")]
    ignored = await upload(client, headers, to_csv([[*row("M-3"), "x"]], header=[*HEADER, "notes"]))
    assert ignored.json()["ignored_columns"] == ["notes"]


async def test_import_is_for_merchants_and_needs_a_file(client: httpx.AsyncClient) -> None:
    """Only merchants import; a request without a file is a 400, not a 500."""
    _, viewer = await account(client, role="viewer")
    assert (await upload(client, viewer, to_csv([row("V-1")]))).status_code == 403
    _, merchant = await account(client, role="merchant")
    no_file = await client.post("/api/v1/products/import", headers=merchant, data={"x": "1"})
    assert no_file.status_code == 400


async def test_ten_thousand_rows(client: httpx.AsyncClient) -> None:
    """10,000 rows with every 100th broken: 9,900 land, 100 are reported."""
    _, headers = await account(client, role="merchant")
    rows = [
        row(f"BULK-{n:05d}", weight_grams="0" if n % 100 == 0 else "300") for n in range(10_000)
    ]
    body = (await upload(client, headers, to_csv(rows))).json()
    assert (body["rows_total"], body["created"], body["failed"]) == (10_000, 9_900, 100)
    assert {e["code"] for e in body["errors"]} == {"greater_than"}
    listing = (await client.get("/api/v1/products?page_size=1", headers=headers)).json()
    assert listing["total"] == 9_900


async def test_upload_over_the_limit_is_413(database, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A CSV larger than LIVECOMMERCE_MAX_UPLOAD_BYTES is refused with 413, nothing imported."""
    from livecommerce.app import create_app
    from tests.conftest import make_settings

    app = create_app(make_settings(database.url, tmp_path, max_upload_bytes=4096))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            try:
                _, headers = await account(client, role="merchant")
                big = to_csv([row(f"L-{n}") for n in range(200)])
                response = await upload(client, headers, big, "?locale=en")
                assert response.status_code == 413
                assert response.json()["error"]["code"] == "payload_too_large"
                assert "0.00391 MB" in response.json()["error"]["message"]
                listing = await client.get("/api/v1/products", headers=headers)
                assert listing.json()["total"] == 0
            finally:
                await database.reset()


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
