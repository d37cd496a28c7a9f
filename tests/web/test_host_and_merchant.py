"""The host console and the merchant page in headless Chromium, with viewers alongside."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.web.test_viewer_pages import (
    DEMO_HOST,
    DEMO_MERCHANT,
    DEMO_VIEWER,
    bearer,
    open_page,
    shown_title,
    sign_in,
)

pytestmark = pytest.mark.slow


async def test_a_host_runs_a_stream_that_two_viewers_buy_from(
    browser: Any, web_base: str, screenshots: Path
) -> None:
    """The host creates, starts and pins through the console. A Kazakh and an Uzbek viewer
    see the pin in their own language and currency. The Uzbek viewer orders cash on
    delivery, and the console shows the order."""
    host = await open_page(browser, f"{web_base}/host", locale="ru-RU")
    await sign_in(host, DEMO_HOST)
    await host.locator("#stream-title-kk").wait_for()
    await host.fill("#stream-title-kk", "Таңғы эфир")
    await host.fill("#stream-title-ru", "Утренний эфир")
    await host.fill("#stream-title-uz", "Ertalabki efir")
    await host.click("#create-stream")
    await host.locator("#start-stream").click()
    async with httpx.AsyncClient(base_url=web_base, timeout=10) as http:
        live = (await http.get("/api/v1/streams?status=live&locale=ru")).json()["items"]
        [stream] = [s for s in live if s["title"] == "Утренний эфир"]
        sid = stream["id"]
        await host.locator("#product-search").fill("кашемир")
        pin = host.locator(".pin[data-product-id]").first
        await pin.wait_for()
        product_id = int(await pin.get_attribute("data-product-id") or 0)
        await pin.click()
        merchant = await bearer(http, DEMO_MERCHANT)
        product = (await http.get(f"/api/v1/products/{product_id}", headers=merchant)).json()

        async def pinned_id() -> Any:
            return (await http.get(f"/api/v1/streams/{sid}")).json()["pinned_product"]

        for _ in range(50):
            if (await pinned_id() or {}).get("id") == product_id:
                break
            await host.wait_for_timeout(100)
        assert (await pinned_id())["id"] == product_id
    await host.screenshot(path=str(screenshots / "host-console-ru.png"), full_page=True)

    kk = await open_page(browser, f"{web_base}/live/{sid}", locale="kk-KZ", width=390)
    uz = await open_page(browser, f"{web_base}/live/{sid}", locale="uz-UZ")
    for page, locale, symbol in ((kk, "kk", "₸"), (uz, "uz", "soʻm")):
        await page.locator("#pinned-title").wait_for()
        assert await page.locator("#pinned-title").text_content() == shown_title(product, locale)
        assert symbol in (await page.locator("#pinned-price").text_content() or "")

    await sign_in(uz, DEMO_VIEWER)
    await uz.locator("#buy").click()
    dialog = uz.locator("#checkout")
    await dialog.locator("#checkout-total").wait_for()
    await dialog.locator("input[name=address_line1]").fill("Amir Temur 7")
    await dialog.locator("input[name=postal_code]").fill("100000")
    await dialog.locator("input[name=phone]").fill("+998 90 777 66 55")
    await dialog.locator("input[name=recipient_name]").fill("Dilnoza Karimova")
    await dialog.locator("#place-order").click()
    await uz.locator("#order-done").wait_for()

    orders_shown = (
        "Number(document.querySelector('#orders-count')?.textContent?.match(/\\d+/)?.[0])"
    )
    await host.wait_for_function(f"() => {orders_shown} >= 1", timeout=15000)
    ticker = host.locator("#host-ticker")
    await ticker.locator("li").first.wait_for()
    assert await ticker.locator("li").count() >= 1
    await host.screenshot(path=str(screenshots / "host-console-with-order.png"), full_page=True)
    await kk.screenshot(path=str(screenshots / "viewer-kk-mobile-host-stream.png"), full_page=True)
    for page in (host, kk, uz):
        assert page.errors == [], page.errors
        await page.context.close()


CSV = (
    "sku,title_ru,title_kk,title_uz,price,currency,weight_grams,hs_code,origin_country,stock_KZALA\n"
    "WEB-OK-1,Шапка,Бөрік,Shapka,45.00,CNY,200,650500,CN,10\n"
    "WEB-BAD-1,Шарф,Шарф,Sharf,not-a-price,CNY,300,611710,CN,5\n"
    "WEB-OK-2,Варежки,Қолғап,Qoʻlqop,30.00,CNY,150,611610,CN,8\n"
    "WEB-BAD-2,Носки,Шұлық,Paypoq,12.00,CNY,-5,611595,CN,3\n"
)


async def test_a_merchant_imports_a_csv_and_sees_each_bad_row(
    browser: Any, web_base: str, screenshots: Path, tmp_path: Path
) -> None:
    """The import shows its progress, then the report: two rows created, and the two bad
    rows with their row numbers and a message each. The catalog then lists the new ones."""
    page = await open_page(browser, f"{web_base}/merchant", locale="ru-RU")
    await sign_in(page, DEMO_MERCHANT)
    await page.locator("#tab-import").click()
    upload = tmp_path / "catalog.csv"
    upload.write_text(CSV, encoding="utf-8")
    await page.locator("#import-file").set_input_files(str(upload))
    await page.locator("#import-submit").click()
    await page.locator("#import-summary").wait_for()
    rows = page.locator("#import-errors tr[data-row]")
    await rows.first.wait_for()
    assert await rows.count() == 2
    numbers = sorted([int(await rows.nth(i).get_attribute("data-row") or 0) for i in range(2)])
    assert numbers == [3, 5]  # the header is row 1
    assert await page.locator("#import-progress").count() == 1
    await page.screenshot(path=str(screenshots / "merchant-import-errors-ru.png"), full_page=True)

    await page.locator("#tab-catalog").click()
    await page.locator("#product-search").fill("WEB-OK")
    await page.locator("[data-product-id]").first.wait_for()
    await page.screenshot(path=str(screenshots / "merchant-catalog-ru.png"), full_page=True)
    await page.locator("#tab-orders").click()
    await page.locator("#orders-table").wait_for()
    await page.screenshot(path=str(screenshots / "merchant-orders-ru.png"), full_page=True)
    await page.locator("#tab-shipments").click()
    await page.locator("#shipments-table").wait_for()
    await page.screenshot(path=str(screenshots / "merchant-shipments-ru.png"), full_page=True)
    mobile = await open_page(browser, f"{web_base}/merchant", locale="kk-KZ", width=390)
    await mobile.screenshot(path=str(screenshots / "merchant-signed-out-kk-mobile.png"))
    assert page.errors == [] and mobile.errors == []
    await page.context.close()
    await mobile.context.close()


async def test_a_host_ends_a_flash_sale_early_from_the_console(
    browser: Any, web_base: str, screenshots: Path
) -> None:
    """A running sale shows an end button; pressing it ends the sale for everyone, and the
    form for the next sale comes back."""
    async with httpx.AsyncClient(base_url=web_base, timeout=10) as http:
        host_auth = await bearer(http, DEMO_HOST)
        created = await http.post(
            "/api/v1/streams",
            json={"title": {"ru": "Распродажа", "kk": "Сатылым", "uz": "Savdo"}},
            headers=host_auth,
        )
        sid = created.json()["id"]
        assert (await http.post(f"/api/v1/streams/{sid}/start", headers=host_auth)).is_success
        merchant = await bearer(http, DEMO_MERCHANT)
        product = (await http.get("/api/v1/products?page_size=1", headers=merchant)).json()
        sale = await http.post(
            f"/api/v1/streams/{sid}/flash-sales",
            json={
                "product_id": product["items"][0]["id"],
                "price": {"amount": "50.00", "currency": "CNY"},
                "quantity": 5,
                "duration_s": 600,
            },
            headers=host_auth,
        )
        assert sale.status_code == 201, sale.text
        host = await open_page(browser, f"{web_base}/host?stream={sid}", locale="ru-RU")
        await sign_in(host, DEMO_HOST)
        await host.locator("#end-sale").click()
        await host.locator("#start-sale").wait_for()
        shown = (await http.get(f"/api/v1/streams/{sid}")).json()["flash_sale"]
        assert shown is None  # no running sale any more
        await host.screenshot(path=str(screenshots / "host-sale-ended-ru.png"), full_page=True)
