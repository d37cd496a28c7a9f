"""The viewer pages in headless Chromium against a real server with the demo data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fixtures.factories import PASSWORD, login, register
from tests.orders.shop import TASHKENT

DEMO_HOST = ("host@demo.livecommerce.kz", "khorgos-demo-host")
DEMO_MERCHANT = ("merchant@demo.livecommerce.kz", "khorgos-demo-merchant")
DEMO_VIEWER = ("viewer@demo.livecommerce.kz", "khorgos-demo-viewer")

pytestmark = pytest.mark.slow


async def bearer(http: httpx.AsyncClient, account: tuple[str, str]) -> dict[str, str]:
    response = await http.post(
        "/api/v1/auth/token", data={"username": account[0], "password": account[1]}
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def live_stream_with_pin(
    http: httpx.AsyncClient, product_id: int | None = None
) -> tuple[int, dict[str, Any]]:
    host = await bearer(http, DEMO_HOST)
    body = {"title": {"kk": "Кешкі эфир", "ru": "Вечерний эфир", "uz": "Kechki efir"}}
    created = await http.post("/api/v1/streams", json=body, headers=host)
    assert created.status_code == 201, created.text
    sid = created.json()["id"]
    assert (await http.post(f"/api/v1/streams/{sid}/start", headers=host)).status_code == 200
    merchant = await bearer(http, DEMO_MERCHANT)
    if product_id is not None:
        product: dict[str, Any] | None = {"id": product_id}
    else:
        found = (await http.get("/api/v1/products?q=scarf&locale=en", headers=merchant)).json()
        product = found["items"][0] if found["items"] else None
    if product is None:
        product = (await http.get("/api/v1/products", headers=merchant)).json()["items"][0]
    pinned = await http.post(
        f"/api/v1/streams/{sid}/pins", json={"product_id": product["id"]}, headers=host
    )
    assert pinned.status_code == 200, pinned.text
    full = (await http.get(f"/api/v1/products/{product['id']}", headers=merchant)).json()
    return sid, full


def shown_title(product: dict[str, Any], locale: str) -> str:
    """The product title a viewer in ``locale`` reads (fallback uz/kk -> ru -> en)."""
    titles = product["translations"]["title"]
    return str(titles.get(locale) or titles.get("ru") or titles["en"])


async def checkout_to_moscow(page: Any) -> Any:
    """The demo viewer signs in, opens the pinned product's checkout and ships to Moscow."""
    await sign_in(page, DEMO_VIEWER)
    await page.locator("#buy").click()
    dialog = page.locator("#checkout")
    await dialog.locator("#checkout-total").wait_for()
    await dialog.locator("select[name=country]").select_option("RU")
    await dialog.locator("input[name=city]").fill("Москва")
    await dialog.locator("input[name=city]").dispatch_event("change")
    return dialog


async def open_page(browser: Any, url: str, *, locale: str, width: int = 1280) -> Any:
    context = await browser.new_context(
        viewport={"width": width, "height": 900}, locale=locale, device_scale_factor=1
    )
    page = await context.new_page()
    page.errors = []  # type: ignore[attr-defined]
    page.on("pageerror", lambda exc: page.errors.append(str(exc)))
    page.on(
        "console",
        lambda msg: (
            page.errors.append(msg.text)
            if msg.type == "error" and "ERR_NAME_NOT_RESOLVED" not in msg.text
            else None
        ),
    )
    await page.goto(url)
    return page


async def sign_in(page: Any, account: tuple[str, str]) -> None:
    await page.click("#open-sign-in")
    await page.fill("#sign-in input[name=email]", account[0])
    await page.fill("#sign-in input[name=password]", account[1])
    await page.click("#sign-in button[type=submit]")
    # Signed in once the dialog is gone: the token is stored before it closes. Clicking on
    # before that (the password check takes a while on a busy machine) reopens sign-in.
    await page.locator("#sign-in").wait_for(state="detached")


async def test_kazakh_and_uzbek_viewers_see_the_pin_in_their_language_and_currency(
    browser: Any, web_base: str, screenshots: Path
) -> None:
    """One pin, two viewers: Kazakh title and tenge, Uzbek title and soʻm, each with a
    delivery estimate to their own city; switching to Russian re-renders without a reload;
    a dropped connection resumes and shows what the host said meanwhile."""
    async with httpx.AsyncClient(base_url=web_base, timeout=10) as http:
        sid, product = await live_stream_with_pin(http)
        kk = await open_page(browser, f"{web_base}/live/{sid}", locale="kk-KZ")
        uz = await open_page(browser, f"{web_base}/live/{sid}", locale="uz-UZ", width=390)
        for page, locale, symbol in ((kk, "kk", "₸"), (uz, "uz", "soʻm")):
            title = page.locator("#pinned-title")
            await title.wait_for()
            assert await title.text_content() == shown_title(product, locale)
            assert symbol in (await page.locator("#pinned-price").text_content() or "")
            await page.locator("#pinned-eta").wait_for()
        assert "Алматы" in (await kk.locator("#pinned-eta").text_content() or "")
        assert "Toshkent" in (await uz.locator("#pinned-eta").text_content() or "")
        await kk.screenshot(path=str(screenshots / "viewer-live-kk-desktop.png"), full_page=True)
        await uz.screenshot(path=str(screenshots / "viewer-live-uz-mobile.png"), full_page=True)

        await kk.evaluate("window.__notReloaded = true")
        await kk.select_option("#pick-locale", "ru")
        await kk.wait_for_function(
            "t => document.querySelector('#pinned-title')?.textContent === t",
            arg=shown_title(product, "ru"),
        )
        assert await kk.evaluate("window.__notReloaded === true")

        host = await bearer(http, DEMO_HOST)
        await uz.evaluate("window.livecommerce.room.drop()")
        await uz.locator("#offline").wait_for()  # said while this viewer is away
        said = await http.post(
            f"/api/v1/streams/{sid}/announcements",
            json={"text": {"kk": "Сәлем!", "ru": "Привет!", "uz": "Salom!"}},
            headers=host,
        )
        assert said.status_code == 202, said.text
        await uz.locator("#announcement-text").wait_for()
        assert await uz.locator("#announcement-text").text_content() == "Salom!"
        for page in (kk, uz):
            assert page.errors == []
            await page.context.close()


async def test_an_uzbek_viewer_orders_with_cash_on_delivery(
    browser: Any, web_base: str, screenshots: Path
) -> None:
    """Signed in through the page, the viewer sees the landed cost in soʻm, orders cash on
    delivery, and the order exists, attributed to the stream."""
    async with httpx.AsyncClient(base_url=web_base, timeout=10) as http:
        sid, product = await live_stream_with_pin(http)
        page = await open_page(browser, f"{web_base}/live/{sid}", locale="uz-UZ")
        await page.locator("#pinned-title").wait_for()
        await sign_in(page, DEMO_VIEWER)
        await page.locator("#pinned-title").wait_for()
        await page.click("#buy")
        dialog = page.locator("#checkout")
        await dialog.locator("#checkout-total").wait_for()
        assert "soʻm" in (await dialog.locator("#checkout-total").text_content() or "")
        await dialog.locator("input[name=address_line1]").fill("Amir Temur 1")
        await dialog.locator("input[name=postal_code]").fill("100000")
        await dialog.locator("input[name=phone]").fill("+998 90 555 44 33")
        await dialog.locator("input[name=recipient_name]").fill("Dilnoza Karimova")
        await page.screenshot(path=str(screenshots / "viewer-checkout-uz.png"), full_page=True)
        await dialog.locator("#place-order").click()
        await page.locator("#order-done").wait_for()
        await page.screenshot(path=str(screenshots / "viewer-order-placed-uz.png"))
        text = await page.locator("#order-done").text_content() or ""
        order_id = int(text.split("#", 1)[1].split()[0].rstrip("."))
        merchant = await bearer(http, DEMO_MERCHANT)
        order = (await http.get(f"/api/v1/orders/{order_id}", headers=merchant)).json()
        assert order["stream_id"] == sid and order["payment_method"] == "cod"
        assert order["currency"] == "UZS" and order["items"][0]["product_id"] == product["id"]
        assert page.errors == []
        await page.context.close()


async def test_pages_are_served_with_strict_headers(web_base: str) -> None:
    """Every page and static file carries the Content-Security-Policy; texts exist in all
    five languages."""
    async with httpx.AsyncClient(base_url=web_base, timeout=10) as http:
        for path in ("/", "/live/1", "/host", "/merchant", "/static/js/core.js"):
            response = await http.get(path)
            assert response.status_code == 200, path
            assert "script-src 'self'" in response.headers["content-security-policy"]
            assert response.headers["x-content-type-options"] == "nosniff"
        for locale in ("kk", "ru", "uz", "en", "zh"):
            texts = (await http.get(f"/web/i18n/{locale}.json")).json()
            assert texts["app.name"] and texts["month.11"]
        assert (await http.get("/web/i18n/xx.json")).status_code == 404


async def test_a_viewer_pays_by_card_through_the_sandbox(
    browser: Any, web_base: str, screenshots: Path
) -> None:
    """The card path: order, the sandbox card form, the provider's webhook, and the page
    shows the order paid."""
    async with httpx.AsyncClient(base_url=web_base, timeout=10) as http:
        sid, _ = await live_stream_with_pin(http)
        page = await open_page(browser, f"{web_base}/live/{sid}", locale="ru-RU", width=390)
        await page.locator("#pinned-title").wait_for()
        dialog = await checkout_to_moscow(page)
        await dialog.locator("input[name=address_line1]").fill("Тверская 1")
        await dialog.locator("input[name=postal_code]").fill("125009")
        await dialog.locator("input[name=phone]").fill("+7 916 000 11 22")
        await dialog.locator("input[name=recipient_name]").fill("Иван Петров")
        await dialog.locator("input[name=method][value=card]").check()
        await dialog.locator("#place-order").click()
        await page.locator("#card-number").fill("4242 4242 4242 4242")
        await page.screenshot(path=str(screenshots / "viewer-card-ru-mobile.png"))
        await page.locator("#pay").click()
        await page.locator("#order-done").wait_for()
        text = await page.locator("#checkout").text_content() or ""
        order_id = int(text.split("#", 1)[1].split()[0].rstrip("."))
        viewer = await bearer(http, DEMO_VIEWER)
        order = (await http.get(f"/api/v1/orders/{order_id}", headers=viewer)).json()
        assert order["status"] in ("paid", "fulfilling", "shipped", "delivered")
        assert order["currency"] == "RUB" and order["payment_method"] == "card"
        assert page.errors == []
        await page.context.close()


async def test_the_room_socket_waits_the_delay_a_draining_server_asks_for(
    browser: Any, web_base: str
) -> None:
    """A close reason's retry_after_ms sets the reconnect delay (plus jitter); else backoff."""
    page = await browser.new_page()
    try:
        await page.goto(f"{web_base}/")
        delays = await page.evaluate(
            """async () => {
                const { reconnectDelay } = await import("/static/js/room.js");
                const draw = (reason, attempt) =>
                    Array.from({ length: 200 }, () => reconnectDelay(reason, attempt));
                const drained = "server restarting: reconnect with last_seq (retry_after_ms=1234)";
                return {
                    hinted: draw(drained, 5),
                    first: draw("", 0),
                    late: draw("dropped", 10),
                };
            }"""
        )
    finally:
        await page.close()
    assert all(1234 <= d < 1484 for d in delays["hinted"])
    assert len(set(delays["hinted"])) > 100, "jittered, not one instant for everyone"
    assert all(250 <= d <= 500 for d in delays["first"])
    assert all(7500 <= d <= 15000 for d in delays["late"])


async def test_checkout_during_a_flash_sale_shows_and_charges_the_sale_price(
    browser: Any, web_base: str, screenshots: Path
) -> None:
    """Buying at the sale price: the checkout's quote is at the sale price, and the order
    is charged exactly the total the checkout showed."""
    async with httpx.AsyncClient(base_url=web_base, timeout=10) as http:
        sid, product = await live_stream_with_pin(http)
        host = await bearer(http, DEMO_HOST)
        merchant = await bearer(http, DEMO_MERCHANT)
        for code in ("KZALA", "DEDUI"):
            stocked = await http.put(
                f"/api/v1/products/{product['id']}/stock/{code}",
                json={"quantity": 50},
                headers=merchant,
            )
            assert stocked.status_code == 200, stocked.text
        listed = product["base_price"] or product["price"]
        sale_price = f"{float(listed['amount']) * 0.6:.2f}"
        started = await http.post(
            f"/api/v1/streams/{sid}/flash-sales",
            json={
                "product_id": product["id"],
                "price": {"amount": sale_price, "currency": listed["currency"]},
                "quantity": 20,
                "duration_s": 600,
            },
            headers=host,
        )
        assert started.status_code in (200, 201), started.text
        page = await open_page(browser, f"{web_base}/live/{sid}", locale="kk-KZ")
        await page.locator("#buy-sale").wait_for()
        await sign_in(page, DEMO_VIEWER)
        await page.locator("#buy-sale").click()
        dialog = page.locator("#checkout")
        await dialog.locator("#checkout-total").wait_for()
        shown_total = await dialog.locator("#checkout-total").text_content() or ""
        shown_items = await dialog.locator("#checkout-summary > div").first.text_content() or ""
        await dialog.locator("input[name=address_line1]").fill("Абай даңғылы 10")
        await dialog.locator("input[name=postal_code]").fill("050000")
        await dialog.locator("input[name=phone]").fill("+7 701 555 44 33")
        await dialog.locator("input[name=recipient_name]").fill("Айгерім Садықова")
        await page.screenshot(path=str(screenshots / "viewer-checkout-sale-kk.png"), full_page=True)
        await dialog.locator("#place-order").click()
        await page.locator("#order-done").wait_for()
        text = await page.locator("#order-done").text_content() or ""
        order_id = int(text.split("#", 1)[1].split()[0].rstrip("."))
        order = (await http.get(f"/api/v1/orders/{order_id}?locale=kk", headers=merchant)).json()
        assert order["flash_sale_id"] == started.json()["id"]
        [line] = order["items"]
        assert line["flash_sale_id"] == order["flash_sale_id"]
        assert line["unit_price"]["formatted"] in shown_items  # the sale price was shown
        assert order["total"]["formatted"] == shown_total  # and charged
        listed_kzt = (
            await http.get(f"/api/v1/products/{product['id']}?currency=KZT&locale=kk")
        ).json()["price"]
        assert float(line["unit_price"]["amount"]) < float(listed_kzt["amount"])
        assert page.errors == []
        await page.context.close()


async def test_a_pin_shows_the_estimate_without_a_request(browser: Any, web_base: str) -> None:
    """A viewer watching when the host pins reads the estimate to their city from the pin
    itself: the page asks the server neither for a quote nor for an estimate."""
    async with httpx.AsyncClient(base_url=web_base, timeout=10) as http:
        sid, product = await live_stream_with_pin(http)
        page = await open_page(browser, f"{web_base}/live/{sid}", locale="kk-KZ")
        await page.locator("#pinned-eta").wait_for()  # the pin before arrival: asked once
        asked: list[str] = []
        page.on(
            "request",
            lambda r: asked.append(r.url) if "/quotes" in r.url or "estimate" in r.url else None,
        )
        host = await bearer(http, DEMO_HOST)
        merchant = await bearer(http, DEMO_MERCHANT)
        others = (await http.get("/api/v1/products?page_size=5", headers=merchant)).json()
        other = next(p for p in others["items"] if p["id"] != product["id"] and p["available"])
        pinned = await http.post(
            f"/api/v1/streams/{sid}/pins", json={"product_id": other["id"]}, headers=host
        )
        assert pinned.status_code == 200, pinned.text
        await page.wait_for_function(
            "id => document.querySelector('.product')?.dataset.productId === String(id)"
            " && document.querySelector('#pinned-eta')",
            arg=other["id"],
        )
        eta = await page.locator("#pinned-eta").text_content() or ""
        await page.wait_for_timeout(1800)  # longer than the client's spread
        assert "Алматы" in eta and asked == []
        assert page.errors == []
        await page.context.close()


async def test_a_signed_in_uzbek_buyer_gets_their_own_estimate_over_the_room(
    browser: Any, web_base: str
) -> None:
    """A buyer who already imported this month sees their own duties (their allowance is
    partly used), asked over the room's socket: the page sends no estimate request."""
    async with httpx.AsyncClient(base_url=web_base, timeout=10) as http:
        sid, product = await live_stream_with_pin(http)
        user = await register(http, locale="uz", currency="UZS")
        buyer = await login(http, user["email"])
        earlier = await http.post(
            "/api/v1/orders?locale=uz",
            json={
                "items": [{"product_id": product["id"], "quantity": 3}],
                "payment_method": "cod",
                "ship_to": TASHKENT,
            },
            headers=buyer,
        )
        assert earlier.status_code == 201, earlier.text
        own = await http.get(
            f"/api/v1/products/{product['id']}/delivery-estimate",
            params={"country": "UZ", "city": "Toshkent", "locale": "uz", "currency": "UZS"},
            headers=buyer,
        )
        assert own.status_code == 200 and own.json()["personal"] is True, own.text
        expected = own.json()["duties"]
        assert expected["amount"] != "0.00", own.text  # the allowance no longer covers it
        anonymous = await http.get(
            f"/api/v1/products/{product['id']}/delivery-estimate",
            params={"country": "UZ", "city": "Toshkent", "locale": "uz", "currency": "UZS"},
        )
        assert anonymous.json()["duties"]["amount"] == "0.00", anonymous.text

        page = await open_page(browser, f"{web_base}/live/{sid}", locale="uz-UZ")
        await page.locator("#pinned-eta").wait_for()
        asked: list[str] = []
        page.on("request", lambda r: asked.append(r.url) if "estimate" in r.url else None)
        await sign_in(page, (user["email"], PASSWORD))
        await page.wait_for_function(
            "text => (document.querySelector('#pinned-eta')?.textContent || '').includes(text)",
            arg=expected["formatted"],
        )
        assert asked == []
        assert page.errors == []
        await page.context.close()


async def test_checkout_shows_duties_and_taxes_with_the_breakdown_on_demand(
    browser: Any, web_base: str, screenshots: Path
) -> None:
    """A EUR 250 parcel from Duisburg to Moscow pays the e-commerce duty and Russian import
    VAT: the checkout shows their total as "duties and taxes", and on demand each charge
    with its rate, base and amount, as the quote gives them."""
    from tests.fixtures.factories import product_body

    async with httpx.AsyncClient(base_url=web_base, timeout=10) as http:
        merchant = await bearer(http, DEMO_MERCHANT)
        viewer = await bearer(http, DEMO_VIEWER)
        body = product_body(price={"amount": "250.00", "currency": "EUR"}, weight_grams=1000)
        created = await http.post("/api/v1/products", json=body, headers=merchant)
        assert created.status_code == 201, created.text
        pid = created.json()["id"]
        stocked = await http.put(
            f"/api/v1/products/{pid}/stock/DEDUI", json={"quantity": 10}, headers=merchant
        )
        assert stocked.status_code == 200, stocked.text
        sid, _ = await live_stream_with_pin(http, pid)
        page = await open_page(browser, f"{web_base}/live/{sid}", locale="ru-RU")
        await page.locator("#buy").wait_for()
        dialog = await checkout_to_moscow(page)
        breakdown = dialog.locator("#checkout-customs")
        await breakdown.wait_for(state="attached")
        shown_duties = await dialog.locator("#checkout-duties").text_content()

        # The page's currency: the one chosen on it, else the language's market default.
        currency = await page.evaluate("localStorage.getItem('lc.currency')") or "RUB"
        quote = await http.post(
            f"/api/v1/quotes?locale=ru&currency={currency}",
            json={
                "items": [{"product_id": pid, "quantity": 1}],
                "ship_to": {"country": "RU", "city": "Москва"},
            },
            headers=viewer,
        )
        assert quote.status_code == 200, quote.text
        expected = quote.json()
        assert shown_duties == expected["duties"]["formatted"]
        charges = expected["customs"]
        assert [c["type"] for c in charges] == ["duty", "vat"]
        assert [c["rule"] for c in charges] == ["EAEU-2026-ECOM", "VAT-RU-2026"]

        assert await breakdown.get_attribute("open") is None  # on demand: closed at first
        rows = breakdown.locator("[data-charge]")
        assert not await rows.first.is_visible()
        await breakdown.locator("summary").click()
        assert await rows.count() == 2
        for row, charge in zip(await rows.all(), charges, strict=True):
            text = await row.text_content() or ""
            assert charge["amount"]["formatted"] in text
            assert charge["rate_text"] in text and charge["base"]["formatted"] in text
        vat_text = await rows.nth(1).text_content() or ""
        assert "НДС" in vat_text
        await page.screenshot(
            path=str(screenshots / "viewer-checkout-customs-ru.png"), full_page=True
        )

        # Duty is due, so customs needs the recipient's INN: the quote says so and the
        # checkout asks for it by its name; the order carries it.
        assert expected["consignee"] == {"tax_id": "required", "tax_id_name": "ИНН"}
        tax_id = dialog.locator("#checkout-tax-id")
        assert "ИНН" in (await tax_id.text_content() or "")
        await dialog.locator("input[name=address_line1]").fill("Тверская 1")
        await dialog.locator("input[name=postal_code]").fill("125009")
        await dialog.locator("input[name=phone]").fill("+7 916 000 11 23")
        await dialog.locator("input[name=recipient_name]").fill("Иван Петров")
        await tax_id.locator("input[name=tax_id]").fill("770112345678")
        await dialog.locator("#place-order").click()
        await page.locator("#order-done").wait_for()
        text = await page.locator("#checkout").text_content() or ""
        order_id = int(text.split("#", 1)[1].split()[0].rstrip("."))
        order = (await http.get(f"/api/v1/orders/{order_id}", headers=viewer)).json()
        assert order["ship_to"]["tax_id"] == "••••••••5678"
        assert "770112345678" not in await page.evaluate("JSON.stringify(localStorage)")
        assert page.errors == []
        await page.context.close()


async def test_checkout_offers_the_post_where_the_destination_has_one(
    browser: Any, web_base: str
) -> None:
    """Moscow has only couriers: no choice is shown. Tashkent has the post too: choosing it
    quotes the postal leg and the postal allowance, the figures the API gives for it."""
    from tests.fixtures.factories import product_body

    async with httpx.AsyncClient(base_url=web_base, timeout=10) as http:
        merchant = await bearer(http, DEMO_MERCHANT)
        body = product_body(price={"amount": "150.00", "currency": "EUR"}, weight_grams=1000)
        created = await http.post("/api/v1/products", json=body, headers=merchant)
        assert created.status_code == 201, created.text
        pid = created.json()["id"]
        stocked = await http.put(
            f"/api/v1/products/{pid}/stock/KZALA", json={"quantity": 10}, headers=merchant
        )
        assert stocked.status_code == 200, stocked.text
        sid, _ = await live_stream_with_pin(http, pid)
        page = await open_page(browser, f"{web_base}/live/{sid}", locale="uz-UZ")
        await page.locator("#buy").wait_for()
        dialog = await checkout_to_moscow(page)
        await dialog.locator("#checkout-summary").wait_for()
        assert await dialog.locator("#checkout-delivery").count() == 0

        await dialog.locator("select[name=country]").select_option("UZ")
        await dialog.locator("input[name=city]").fill("Toshkent")
        await dialog.locator("input[name=city]").dispatch_event("change")
        choice = dialog.locator("#checkout-delivery")
        await choice.wait_for()
        assert await choice.locator("input[value=courier]").is_checked()
        await choice.locator("input[value=postal]").check()
        await dialog.locator("#checkout-summary .legs", has_text="Toshkent").wait_for()

        currency = await page.evaluate("localStorage.getItem('lc.currency')") or "UZS"
        asked = {
            "items": [{"product_id": pid, "quantity": 1}],
            "ship_to": {"country": "UZ", "city": "Toshkent"},
            "delivery": "postal",
        }
        quote = await http.post(f"/api/v1/quotes?locale=uz&currency={currency}", json=asked)
        assert quote.status_code == 200, quote.text
        expected = quote.json()
        # USD 174.00 of customs value, above the post's USD 100: duty is charged by post.
        assert expected["shipments"][0]["customs"]["rule"] == "UZ-2025-POSTAL"
        assert expected["duties"]["amount"] != "0.00"
        # The summary is redrawn with each quote: wait for the postal one's figures.
        await page.wait_for_function(
            "want => document.querySelector('#checkout-duties')?.textContent === want",
            arg=expected["duties"]["formatted"],
        )
        assert (
            await dialog.locator("#checkout-total").text_content()
            == (expected["total"]["formatted"])
        )
        assert await choice.locator("input[value=postal]").is_checked()
        assert page.errors == []
        await page.context.close()
