"""Quotes and orders render straight to JSON: it must be exactly what the schemas dump."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from livecommerce.i18n.money import Money
from livecommerce.logistics.network import load_network
from livecommerce.orders.models import Order, OrderEvent, OrderStatus
from livecommerce.orders.quotes import BasketLine, Quote, build_quote
from livecommerce.orders.rendering import render_order, render_quote
from livecommerce.orders.schemas import OrderOut, QuoteOut
from livecommerce.orders.snapshots import QuoteSnapshot
from livecommerce.rates.service import RateBook, RateQuote

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
NBSP = "\xa0"
BOOK = RateBook(
    RateQuote("EUR", quote, Decimal(rate), "seed", datetime(2026, 11, 20, 6, 0, tzinfo=UTC))
    for quote, rate in [("KZT", "602.50"), ("RUB", "94.80"), ("UZS", "14050.00"), ("CNY", "8.27")]
)
CREAM = {"ru": "Увлажняющий крем", "kk": "Ылғалдандыратын крем", "en": "Moisturising cream"}
SHIP_TO = {
    "country": "KZ",
    "city": "Almaty",
    "postal_code": "050000",
    "address_line1": "Abay Ave 10",
    "address_line2": None,
    "recipient_name": "Aigerim Sadykova",
    "phone": "+7 701 123 45 67",
}
MARKETS = [("kk", "KZT"), ("ru", "RUB"), ("uz", "UZS"), ("en", "EUR"), ("zh", "CNY")]


def landed(currency: str, *, two_warehouses: bool = False) -> Quote:
    """A flash-sale line from Almaty, and with ``two_warehouses`` boots through customs."""
    network = load_network()
    basket = [BasketLine(7, 2, Money(Decimal("80.00"), "CNY"), 180, CREAM, 3)]
    stock: dict[int, dict[str, int]] = {7: {"KZALA": 5}}
    if two_warehouses:
        basket.append(BasketLine(8, 1, Money(Decimal("240.00"), "EUR"), 900, {"en": "Boots"}))
        stock[8] = {"DEDUI": 5}
    return build_quote(
        network=network,
        destination=network.destination("KZ", "Almaty"),
        basket=basket,
        stock=stock,
        book=BOOK,
        currency=currency,
        earlier_imports=Decimal(0),
        now=NOW,
    )


def placed(
    quote: dict[str, Any], currency: str, *, method: str, status: str
) -> tuple[Order, list[OrderEvent]]:
    order = Order(
        id=41,
        buyer_id=11,
        merchant_id=1,
        stream_id=2,
        flash_sale_id=3,
        status=status,
        payment_method=method,
        currency=currency,
        subtotal_minor=0,
        shipping_minor=0,
        duties_minor=0,
        total_minor=123_456,
        ship_to=SHIP_TO,
        destination_country="KZ",
        recipient_key="+77011234567",
        quote=quote,
        locale="ru",
        reserved_until=NOW + timedelta(minutes=15, microseconds=250),
        created_at=NOW + timedelta(microseconds=123_456),
    )
    events = [
        OrderEvent(order_id=41, to_status=OrderStatus.PENDING_PAYMENT, actor="user:11", at=NOW),
        OrderEvent(
            order_id=41,
            from_status=OrderStatus.PENDING_PAYMENT,
            to_status=status,
            actor="system",
            reason="paid" if status != OrderStatus.PENDING_PAYMENT else None,
            at=NOW + timedelta(seconds=5),
        ),
    ]
    return order, events


def assert_plain_json(value: Any) -> None:
    """Only JSON's own types: no StrEnum, datetime or Decimal left for the encoder."""
    if isinstance(value, dict):
        assert all(type(k) is str for k in value)
        for v in value.values():
            assert_plain_json(v)
    elif isinstance(value, list):
        for v in value:
            assert_plain_json(v)
    else:
        assert value is None or type(value) in (str, int, bool, float), repr(value)


def assert_schema_json(rendered: dict[str, Any], schema: type[QuoteOut]) -> None:
    dumped = schema.model_validate(rendered).model_dump(mode="json", by_alias=True)
    # Byte for byte, key order included, as the response and the stored idempotent replay.
    assert json.dumps(rendered, ensure_ascii=False) == json.dumps(dumped, ensure_ascii=False)
    assert_plain_json(rendered)


@pytest.mark.parametrize(("locale", "currency"), MARKETS)
@pytest.mark.parametrize("stored", [False, True], ids=["fresh", "stored"])
def test_quote_renders_as_the_schema_dumps(locale: str, currency: str, stored: bool) -> None:
    """A quote's body is QuoteOut's JSON, whether the quote is fresh or read back as JSON."""
    for two in (False, True):
        quote = landed(currency, two_warehouses=two).snapshot()
        if stored:
            quote = QuoteSnapshot.read(json.loads(json.dumps(quote.record())))
        assert_schema_json(render_quote(quote, locale), QuoteOut)


@pytest.mark.parametrize(("locale", "currency"), MARKETS)
@pytest.mark.parametrize(
    ("method", "status"),
    [
        ("cod", OrderStatus.FULFILLING),
        ("card", OrderStatus.PENDING_PAYMENT),
        ("card", OrderStatus.PAID),
        ("card", "cancelled"),
    ],
)
def test_order_renders_as_the_schema_dumps(
    locale: str, currency: str, method: str, status: str
) -> None:
    """An order's body is OrderOut's JSON for every market, payment method and status."""
    for two in (False, True):
        data = json.loads(json.dumps(landed(currency, two_warehouses=two).snapshot().record()))
        order, events = placed(data, currency, method=method, status=status)
        assert_schema_json(render_order(order, events, locale), OrderOut)


def test_order_body_pins_its_text() -> None:
    """Money, times and payment text of a pending card order, as clients read them."""
    data = landed("RUB", two_warehouses=True).snapshot().record()
    order, events = placed(data, "RUB", method="card", status=OrderStatus.PENDING_PAYMENT)
    body = render_order(order, events, "ru")
    assert body["items"][0]["unit_price"] == {
        "amount": "917.05",
        "currency": "RUB",
        "formatted": f"917,05{NBSP}₽",
    }
    assert body["payment"]["amount"] == {
        "amount": "1234.56",
        "currency": "RUB",
        "formatted": f"1{NBSP}234,56{NBSP}₽",
    }
    assert body["payment"]["pay_url"] == "/api/v1/orders/41/payments"
    assert body["payment"]["expires_at"] == "2026-11-23T12:15:00.000250Z"
    assert body["created_at"] == "2026-11-23T12:00:00.123456Z"
    assert body["rates"][0]["as_of"] == "2026-11-20T06:00:00Z"
    assert [s["warehouse"] for s in body["shipments"]] == ["KZALA", "DEDUI"]
    # Boots EUR 240 / 0.9 kg cross at Khorgos on 23 Nov + 16 days = 9 Dec 2026, under the
    # e-commerce regime: duty 5 % x 240 = EUR 12.00 (> 0.9 kg x EUR 1) = 1,137.60 RUB; VAT
    # 16 % x 252.00 = EUR 40.32 = 3,822.336 -> 3,822.34 RUB; duties 4,959.94 RUB.
    assert body["shipments"][1]["customs"]["rule"] == "EAEU-2026-ECOM"
    assert body["shipments"][1]["customs"]["border_date"] == "2026-12-09"
    assert body["duties"]["amount"] == body["shipments"][1]["duties"]["amount"] == "4959.94"
    duty, vat = body["customs"]
    assert (duty["type"], duty["rule"], duty["rate"], duty["rate_text"]) == (
        "duty",
        "EAEU-2026-ECOM",
        "0.05",
        f"5{NBSP}%",
    )
    assert duty["base"]["formatted"] == f"240,00{NBSP}€"
    assert (duty["assessed"]["amount"], duty["amount"]["amount"]) == ("12.00", "1137.60")
    assert (vat["rule"], vat["base"]["amount"], vat["rate"]) == ("VAT-KZ-2026", "252.00", "0.16")
    assert (vat["assessed"]["amount"], vat["amount"]["amount"]) == ("40.32", "3822.34")
    assert vat["border_date"] == "2026-12-09"
    assert body["status"] == "pending_payment"
    assert type(body["status"]) is str
    assert body["events"][0] == {
        "from_status": None,
        "to_status": "pending_payment",
        "actor": "user:11",
        "reason": None,
        "at": "2026-11-23T12:00:00Z",
    }


def test_one_stored_figure_renders_in_each_language() -> None:
    """A figure shown in one language is not shown in the next one's text."""
    quote = landed("RUB").snapshot()
    shown = {locale: render_quote(quote, locale)["total"]["formatted"] for locale, _ in MARKETS}
    assert shown == {
        "kk": f"2{NBSP}033,94{NBSP}₽",
        "ru": f"2{NBSP}033,94{NBSP}₽",
        "uz": f"2{NBSP}033,94{NBSP}₽",
        "en": "₽2,033.94",
        "zh": "₽2,033.94",
    }


def test_a_quote_stored_before_the_breakdown_still_renders() -> None:
    """An order stored with only shipment customs gets one duty charge per assessed parcel."""
    data = json.loads(json.dumps(landed("RUB", two_warehouses=True).snapshot().record()))
    del data["version"], data["customs"]  # as a version-1 row of before 3 December
    data["shipments"][1]["customs"] = {"rule": "EAEU", "currency": "EUR", "duty": "7.50"}
    data["shipments"][1]["duties"] = data["duties"] = "711.00"
    body = render_quote(QuoteSnapshot.read(data), "ru")
    assert_schema_json(body, QuoteOut)
    [charge] = body["customs"]
    assert (charge["rule"], charge["basis"], charge["rate"]) == ("EAEU", "legacy", None)
    assert (charge["assessed"]["amount"], charge["amount"]["amount"]) == ("7.50", "711.00")
