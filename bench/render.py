"""What rendering costs: a placed order's body, one money object and a flash-sale card.

Usage (from the repository root)::

    .venv/bin/python bench/render.py [--renders 3000] [--repeats 5]

No database and no server: the figures a winning flash-sale order renders are built in this
process (the packaged corridor network, the seed reference rates, one product sold at a
flash-sale price from Almaty to Almaty), then each renderer is called ``--renders`` times in
a row, ``--repeats`` times over; the best pass is reported, in CPU microseconds per render
(``time.process_time``).

- ``order body``: ``render_order``, what ``POST /api/v1/orders`` answers (and stores for
  its Idempotency-Key), per market (kk KZT, ru RUB, uz UZS, en EUR, zh CNY);
- ``money``: ``MoneyOut.of`` of one displayed amount, per market;
- ``sale card``: ``flashsales.card``, the sale with its product and both prices in every
  currency, which every winning order publishes to the room after commit; each call with a
  rate book of its own (holding the same rates), as each request loads one.

Each is measured twice: ``same prices`` (every render shows the figures the previous one
showed, as in a rush on one sale) and ``new prices`` (every render a price not shown
before in this process, so nothing a cache kept can answer).

The script prints figures only; it never judges them.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from livecommerce.catalog.models import Product  # noqa: E402
from livecommerce.flashsales import service as flashsales  # noqa: E402
from livecommerce.flashsales.models import FlashSale  # noqa: E402
from livecommerce.i18n.locales import DEFAULT_CURRENCY  # noqa: E402
from livecommerce.i18n.money import Money  # noqa: E402
from livecommerce.logistics.network import load_network  # noqa: E402
from livecommerce.orders.models import Order, OrderEvent, OrderStatus  # noqa: E402
from livecommerce.orders.quotes import BasketLine, build_quote  # noqa: E402
from livecommerce.orders.rendering import render_order  # noqa: E402
from livecommerce.rates.service import RateBook, RateQuote  # noqa: E402
from livecommerce.schemas import MoneyOut  # noqa: E402

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
# The reference rates the first migration seeds.
RATES = [("KZT", "602.50"), ("RUB", "94.80"), ("UZS", "14050.00"), ("KGS", "101.20")]
RATES += [("CNY", "8.2700"), ("USD", "1.1600")]
BOOK = RateBook(
    RateQuote("EUR", quote, Decimal(rate), "seed", datetime(2026, 11, 20, 6, 0, tzinfo=UTC))
    for quote, rate in RATES
)
TITLE = {"ru": "Увлажняющий крем", "kk": "Ылғалдандыратын крем", "en": "Moisturising cream"}
SHIP_TO = {
    "country": "KZ",
    "city": "Almaty",
    "postal_code": "050000",
    "address_line1": "Abay Ave 10",
    "recipient_name": "Aigerim Sadykova",
    "phone": "+7 701 123 45 67",
}


def product(price_minor: int = 12000) -> Product:
    return Product(
        id=7,
        merchant_id=1,
        sku="CREAM-50",
        title=TITLE,
        price_minor=price_minor,
        price_currency="CNY",
        weight_grams=180,
        hs_code="330499",
        origin_country="CN",
        image_urls=["https://img.example.com/cream.jpg"],
    )


def sale(price_minor: int = 8000) -> FlashSale:
    return FlashSale(
        id=3,
        stream_id=2,
        product_id=7,
        price_minor=price_minor,
        price_currency="CNY",
        quantity=500,
        remaining=420,
        per_customer_limit=2,
        starts_at=NOW - timedelta(minutes=1),
        ends_at=NOW + timedelta(hours=1),
    )


def order(currency: str, price_minor: int, order_id: int) -> tuple[Order, list[OrderEvent]]:
    network = load_network()
    landed = build_quote(
        network=network,
        destination=network.destination("KZ", "Almaty"),
        basket=[BasketLine(7, 1, Money.from_minor(price_minor, "CNY"), 180, TITLE, 3)],
        stock={7: {"KZALA": 1000}},
        book=BOOK,
        currency=currency,
        earlier_imports=Decimal(0),
        now=NOW,
    )
    row = Order(
        id=order_id,
        buyer_id=11,
        merchant_id=1,
        stream_id=2,
        flash_sale_id=3,
        status=OrderStatus.FULFILLING,
        payment_method="cod",
        currency=currency,
        subtotal_minor=landed.subtotal.to_minor(),
        shipping_minor=landed.shipping.to_minor(),
        duties_minor=landed.duties.to_minor(),
        total_minor=landed.total.to_minor(),
        ship_to=SHIP_TO,
        destination_country="KZ",
        recipient_key="+77011234567",
        quote=landed.snapshot().record(),
        locale="ru",
        created_at=NOW,
    )
    events = [
        OrderEvent(
            order_id=order_id,
            from_status=None,
            to_status=OrderStatus.FULFILLING,
            actor="user:11",
            at=NOW,
        )
    ]
    return row, events


def per_render(build: Callable[[], Sequence[Callable[[], Any]]], repeats: int) -> float:
    """Best CPU microseconds per call over ``repeats`` passes, each of a list ``build`` made
    beforehand (outside the clock)."""
    best = float("inf")
    for _ in range(repeats):
        calls = build()
        start = time.process_time()
        for call in calls:
            call()
        best = min(best, (time.process_time() - start) / len(calls) * 1e6)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--renders", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    n, repeats = args.renders, args.repeats
    # New prices: distinct, and a fresh range for every pass, so no pass sees a price an
    # earlier pass (or the warm-up) rendered.
    fresh = iter(range(10_000, 10**9, 7))

    def same_prices(make: Callable[[int], Callable[[], Any]]) -> float:
        return per_render(lambda: [make(8000) for _ in range(n)], repeats)

    def new_prices(make: Callable[[int], Callable[[], Any]]) -> float:
        return per_render(lambda: [make(next(fresh)) for _ in range(n)], repeats)

    def order_call(currency: str, locale: str, minor: int) -> Callable[[], Any]:
        placed, events = order(currency, minor, 1)
        return partial(render_order, placed, events, locale)

    def money_call(currency: str, locale: str, minor: int) -> Callable[[], Any]:
        return partial(MoneyOut.of, Money.from_minor(minor, currency), locale)

    def card_call(minor: int) -> Callable[[], Any]:
        # A book of its own, holding the same rates, as every request loads one.
        book = RateBook(BOOK.all())
        return partial(flashsales.card, sale(minor), product(minor + 4000), book)

    rows: list[tuple[str, str, float, float]] = []
    for locale, currency in DEFAULT_CURRENCY.items():
        market = f"{locale} {currency}"
        for what, make in (("order body", order_call), ("money", money_call)):
            bound = partial(make, currency, locale)
            bound(8000)()  # warm-up: catalogs, patterns, symbols
            rows.append((what, market, same_prices(bound), new_prices(bound)))
    card_call(8000)()
    rows.append(("sale card", "every currency", same_prices(card_call), new_prices(card_call)))
    print(f"{n} renders a pass, best of {repeats} passes; CPU µs per render")
    print()
    print("| render | market | same prices | new prices |")
    print("|---|---|---:|---:|")
    for what, market, repeated, new in rows:
        print(f"| {what} | {market} | {repeated:.1f} | {new:.1f} |")


if __name__ == "__main__":
    main()
