"""Landed cost under dated customs law: the rule in force on the day a parcel reaches the
border, duty and import VAT converted each on its own, and no rule never meaning no duty.

Rates as seeded: 1 EUR = 602.50 KZT = 94.80 RUB = 14,050 UZS = 101.20 KGS = 8.27 CNY =
1.16 USD. Shipping from the packaged corridor (EUR): Duisburg -> Moscow 8.00 + 1.30 per kg,
-> Almaty 9.50 + 1.70 per kg, -> Bishkek 11.50 + 2.00 per kg. Duisburg parcels reach the
EAEU at Moscow 10 days, or at Khorgos 16 days, after the order (handling included).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from livecommerce.i18n.money import Money
from livecommerce.logistics.customs import NoCustomsRule
from livecommerce.logistics.network import load_network
from livecommerce.orders.quotes import BasketLine, Quote, build_quote
from livecommerce.rates.service import RateBook, RateQuote

D = Decimal
AS_OF = datetime(2026, 6, 1, 6, 0, tzinfo=UTC)
BOOK = RateBook(
    RateQuote("EUR", quote, D(rate), "seed", AS_OF)
    for quote, rate in [
        ("KZT", "602.50"),
        ("RUB", "94.80"),
        ("UZS", "14050.00"),
        ("KGS", "101.20"),
        ("CNY", "8.27"),
        ("USD", "1.16"),
    ]
)
AFTER = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)  # every border date under the new regime


def eur(amount: str) -> Money:
    return Money(D(amount), "EUR")


def landed(
    country: str,
    city: str,
    currency: str,
    lines: list[tuple[str, int, str]],  # (EUR price, grams, warehouse)
    *,
    now: datetime = AFTER,
    hs_code: str = "640399",
) -> Quote:
    network = load_network()
    basket = [
        BasketLine(n, 1, eur(price), grams, {"en": f"item {n}"}, hs_code=hs_code)
        for n, (price, grams, _) in enumerate(lines, start=1)
    ]
    stock = {n: {code: 5} for n, (_, _, code) in enumerate(lines, start=1)}
    return build_quote(
        network=network,
        destination=network.destination(country, city),
        basket=basket,
        stock=stock,
        book=BOOK,
        currency=currency,
        earlier_imports=D(0),
        now=now,
    )


def figures(q: Quote) -> tuple[str, str, str, str]:
    return (
        q.subtotal.amount_str(),
        q.shipping.amount_str(),
        q.duties.amount_str(),
        q.total.amount_str(),
    )


def breakdown(q: Quote) -> list[tuple[str, str, str, str]]:
    return [
        (c.charge.type, c.charge.rule, str(c.charge.amount), c.charged.amount_str())
        for c in q.customs
    ]


def assert_adds_up(q: Quote) -> None:
    assert sum((c.charged.amount for c in q.customs), D(0)) == q.duties.amount
    for s in q.shipments:
        mine = [c.charged.amount for c in q.customs if c.warehouse == s.warehouse]
        assert sum(mine, D(0)) == s.duties.amount


def test_moscow_border_on_30_june_is_the_old_rule() -> None:
    """Ordered 20 Jun 2026: at the border 30 Jun, the last day of the per-parcel rule.
    EUR 250 / 1 kg: 15 % x (250 - 200) = EUR 7.50 = 711.00 RUB; shipping 9.30 x 94.80."""
    q = landed(
        "RU",
        "Moscow",
        "RUB",
        [("250.00", 1000, "DEDUI")],
        now=datetime(2026, 6, 20, 12, tzinfo=UTC),
    )
    assert q.shipments[0].border_date == date(2026, 6, 30)
    assert figures(q) == ("23700.00", "881.64", "711.00", "25292.64")
    assert breakdown(q) == [("duty", "EAEU-2020-PERSONAL", "7.50", "711.00")]
    assert_adds_up(q)


def test_moscow_border_on_1_july_is_the_ecommerce_regime() -> None:
    """Ordered 21 Jun 2026: at the border 1 Jul. Duty 5 % x 250 = 12.50 EUR = 1,185.00 RUB;
    VAT 22 % x 262.50 = 57.75 EUR = 5,474.70 RUB; duties 6,659.70."""
    q = landed(
        "RU",
        "Moscow",
        "RUB",
        [("250.00", 1000, "DEDUI")],
        now=datetime(2026, 6, 21, 12, tzinfo=UTC),
    )
    assert q.shipments[0].border_date == date(2026, 7, 1)
    assert figures(q) == ("23700.00", "881.64", "6659.70", "31241.34")
    assert breakdown(q) == [
        ("duty", "EAEU-2026-ECOM", "12.50", "1185.00"),
        ("vat", "VAT-RU-2026", "57.75", "5474.70"),
    ]
    assert_adds_up(q)


def test_border_date_not_order_date_decides() -> None:
    """Almaty, KZT, EUR 250 / 1 kg: 16 days to Khorgos, so an order of 14 Jun pays the old
    rule and one of 15 Jun the new one, although both are placed before 1 July."""
    old = landed(
        "KZ",
        "Almaty",
        "KZT",
        [("250.00", 1000, "DEDUI")],
        now=datetime(2026, 6, 14, 12, tzinfo=UTC),
    )
    # 250 x 602.50 = 150,625; shipping 11.20 x 602.50 = 6,748; duty 7.50 x 602.50 = 4,518.75
    # -> 4,519 (whole tenge).
    assert old.shipments[0].border_date == date(2026, 6, 30)
    assert figures(old) == ("150625.00", "6748.00", "4519.00", "161892.00")
    new = landed(
        "KZ",
        "Almaty",
        "KZT",
        [("250.00", 1000, "DEDUI")],
        now=datetime(2026, 6, 15, 12, tzinfo=UTC),
    )
    # duty 12.50 x 602.50 = 7,531.25 -> 7,531; VAT 16 % x 262.50 = 42.00 x 602.50 = 25,305.
    assert new.shipments[0].border_date == date(2026, 7, 1)
    assert figures(new) == ("150625.00", "6748.00", "32836.00", "190209.00")
    assert breakdown(new) == [
        ("duty", "EAEU-2026-ECOM", "12.50", "7531.00"),
        ("vat", "VAT-KZ-2026", "42.00", "25305.00"),
    ]
    assert_adds_up(new)


def test_vat_is_the_destination_countrys_rate() -> None:
    """The same EUR 250 / 1 kg parcel: VAT 22 % in Russia, 16 % in Kazakhstan, 12 % in
    Kyrgyzstan (12 % x 262.50 = 31.50 EUR = 3,187.80 KGS; duty 12.50 = 1,265.00 KGS)."""
    kg = landed("KG", "Bishkek", "KGS", [("250.00", 1000, "DEDUI")])
    # subtotal 250 x 101.20 = 25,300.00; shipping 13.50 x 101.20 = 1,366.20.
    assert figures(kg) == ("25300.00", "1366.20", "4452.80", "31119.00")
    assert [c.charge.rate for c in kg.customs] == [D("0.05"), D("0.12")]
    rates = {
        country: landed(country, city, "EUR", [("250.00", 1000, "DEDUI")]).customs[1].charge
        for country, city in [("RU", "Moscow"), ("KZ", "Almaty"), ("KG", "Bishkek")]
    }
    assert {c: (v.rule, v.rate, v.amount) for c, v in rates.items()} == {
        "RU": ("VAT-RU-2026", D("0.22"), D("57.75")),
        "KZ": ("VAT-KZ-2026", D("0.16"), D("42.00")),
        "KG": ("VAT-KG-2026", D("0.12"), D("31.50")),
    }


def test_threshold_is_eur_200_inclusive() -> None:
    """Moscow, 1 kg: EUR 200.00 is duty- and VAT-free; EUR 200.01 pays 5 % of all of it
    (10.0005 -> 10.00 EUR = 948.00 RUB) and 22 % x 210.01 = 46.2022 -> 46.20 EUR = 4,379.76."""
    free = landed("RU", "Moscow", "RUB", [("200.00", 1000, "DEDUI")])
    assert figures(free) == ("18960.00", "881.64", "0.00", "19841.64")
    assert [(c.charge.type, c.charge.basis, c.charged.amount_str()) for c in free.customs] == [
        ("duty", "within_allowance", "0.00"),
        ("vat", "within_allowance", "0.00"),
    ]
    # 200.01 x 94.80 = 18,960.948 -> 18,960.95 RUB.
    over = landed("RU", "Moscow", "RUB", [("200.01", 1000, "DEDUI")])
    assert figures(over) == ("18960.95", "881.64", "5327.76", "25170.35")
    assert breakdown(over) == [
        ("duty", "EAEU-2026-ECOM", "10.00", "948.00"),
        ("vat", "VAT-RU-2026", "46.20", "4379.76"),
    ]


def test_per_kg_minimum_wins_for_a_heavy_parcel() -> None:
    """EUR 300 / 20 kg to Moscow: 5 % = 15.00 < 20 kg x EUR 1 = 20.00 EUR = 1,896.00 RUB;
    VAT 22 % x 320 = 70.40 EUR = 6,673.92; shipping 8.00 + 1.30 x 20 = 34.00 EUR = 3,223.20."""
    q = landed("RU", "Moscow", "RUB", [("300.00", 20_000, "DEDUI")])
    assert figures(q) == ("28440.00", "3223.20", "8569.92", "40233.12")
    duty = q.customs[0].charge
    assert (duty.basis, duty.minimum, duty.amount) == ("per_kg_minimum", D("20.00"), D("20.00"))
    assert_adds_up(q)


def test_threshold_counts_the_whole_purchase() -> None:
    """Two EUR 120 lines (0.75 kg each) in one parcel are a EUR 240 purchase: 5 % x 240 =
    12.00 EUR = 1,137.60 RUB; VAT 22 % x 252 = 55.44 EUR = 5,255.712 -> 5,255.71 RUB."""
    q = landed("RU", "Moscow", "RUB", [("120.00", 750, "DEDUI"), ("120.00", 750, "DEDUI")])
    assert q.duties.amount_str() == "6393.31"
    assert breakdown(q) == [
        ("duty", "EAEU-2026-ECOM", "12.00", "1137.60"),
        ("vat", "VAT-RU-2026", "55.44", "5255.71"),
    ]


def test_intra_union_stock_pays_nothing() -> None:
    """Almaty stock to Moscow stays inside the EAEU: no assessment and no border date; and
    it does not count towards the purchase of a mixed basket (EUR 150 from Duisburg alone)."""
    q = landed("RU", "Moscow", "RUB", [("250.00", 1000, "KZALA")])
    assert q.customs == [] and q.duties.amount == 0
    assert q.shipments[0].customs is None and q.shipments[0].border_date is None
    mixed = landed("RU", "Moscow", "RUB", [("150.00", 1000, "KZALA"), ("150.00", 1000, "DEDUI")])
    assert [s.warehouse for s in mixed.shipments if s.customs] == ["DEDUI"]
    assert mixed.duties.amount == 0


def test_excluded_goods_are_refused() -> None:
    """A car (HS 870323) is outside the simplified regime: NoCustomsRule, not a 0."""
    with pytest.raises(NoCustomsRule) as caught:
        landed("RU", "Moscow", "RUB", [("250.00", 1000, "DEDUI")], hs_code="870323")
    assert caught.value.status == 422
    assert caught.value.details["reason"] == "excluded_goods"
    assert caught.value.details["category"] == "motor_vehicles"
    assert caught.value.details["product_id"] == 1


def test_no_rule_in_force_on_the_border_date_is_refused() -> None:
    """Ordered 1 Jun 2019: at the border 11 Jun 2019, before any EAEU rule in the data. Stock
    that crosses no border can still be quoted that day."""
    then = datetime(2019, 6, 1, 12, tzinfo=UTC)
    with pytest.raises(NoCustomsRule) as caught:
        landed("RU", "Moscow", "RUB", [("250.00", 1000, "DEDUI")], now=then)
    assert caught.value.details == {
        "country": "RU",
        "date": "2019-06-11",
        "reason": "no_rule",
        "union": "EAEU",
        "delivery": "courier",
    }
    assert landed("RU", "Moscow", "RUB", [("250.00", 1000, "KZALA")], now=then).duties.amount == 0


@pytest.mark.parametrize("currency", ["KZT", "RUB", "UZS", "EUR", "CNY", "KGS", "USD"])
@pytest.mark.parametrize(
    ("price", "grams"), [("250.00", 1000), ("300.00", 20_000), ("200.01", 333)]
)
def test_breakdown_adds_up_to_duties(currency: str, price: str, grams: int) -> None:
    """In every currency the charges, each rounded on its own, add up to duties exactly."""
    q = landed("KZ", "Almaty", currency, [(price, grams, "DEDUI")])
    assert len(q.customs) == 2
    assert_adds_up(q)
    assert q.total.amount == q.subtotal.amount + q.shipping.amount + q.duties.amount
