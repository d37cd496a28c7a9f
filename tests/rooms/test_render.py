"""Prices in room events: the cached conversions give what converting afresh gives."""

from __future__ import annotations

import gc
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from livecommerce.i18n.money import Money, supported_currencies
from livecommerce.rates.service import RateBook, RateQuote, RateUnavailable
from livecommerce.rooms import render

AS_OF = datetime(2026, 11, 20, 6, 0, tzinfo=UTC)
SEED = [("KZT", "602.50"), ("RUB", "94.80"), ("UZS", "14050.00"), ("KGS", "101.20")]
SEED += [("CNY", "8.2700"), ("USD", "1.1600")]


def book(rates: list[tuple[str, str]] = SEED, *, base: str = "EUR") -> RateBook:
    return RateBook(RateQuote(base, quote, Decimal(rate), "seed", AS_OF) for quote, rate in rates)


def converted_afresh(amount: Money, rates: RateBook) -> dict[str, Any]:
    """What render.money gave before it kept answers: every conversion done on the call."""
    prices = {amount.currency: amount.amount_str()}
    for code in supported_currencies():
        if code in prices:
            continue
        try:
            converted, _ = rates.convert(amount, code)
        except RateUnavailable:
            continue
        prices[code] = converted.rounded_for_display().amount_str()
    return {"$money": prices, "$base": amount.currency}


AMOUNTS = ["0", "-0", "0.00", "-0.00", "0.01", "-0.004", "0.005", "80.00", "80", "80.0"]
AMOUNTS += ["1499.50", "-12990.49", "12990.5", "999999999.99"]


@pytest.mark.parametrize("currency", ["KZT", "RUB", "UZS", "CNY", "EUR", "KGS", "USD"])
def test_money_matches_converting_afresh(currency: str) -> None:
    """Every amount, zero of either sign and each representation: the same prices, in order."""
    render._prices.cache_clear()
    rates = book()
    for text in AMOUNTS + [str(Decimal(n).scaleb(-2)) for n in range(-900, 900, 37)]:
        amount = Money(Decimal(text), currency)
        expected = converted_afresh(amount, rates)
        for _ in range(2):  # computed, then from the cache
            got = render.money(amount, rates, unavailable=RateUnavailable)
            assert got == expected, text
            assert list(got["$money"]) == list(expected["$money"])


def test_books_with_other_rates_are_other_keys() -> None:
    """A new rate is a new key; a book loaded again with the same rates shares the answers."""
    price = Money(Decimal("80.00"), "CNY")
    first = render.money(price, book(), unavailable=RateUnavailable)
    moved = book([(q, "700.00" if q == "KZT" else r) for q, r in SEED])
    assert render.money(price, moved, unavailable=RateUnavailable) == converted_afresh(price, moved)
    assert (
        render.money(price, moved, unavailable=RateUnavailable)["$money"]["KZT"]
        != first["$money"]["KZT"]
    )
    hits = render._prices.cache_info().hits
    assert render.money(price, book(), unavailable=RateUnavailable) == first
    assert render._prices.cache_info().hits == hits + 1


def test_unreachable_currencies_are_left_out() -> None:
    """A book without a path to a currency leaves it out, cached or not."""
    partial = book([("KZT", "602.50")])
    price = Money(Decimal("5000"), "KZT")
    expected = converted_afresh(price, partial)
    assert set(expected["$money"]) == {"KZT", "EUR"}
    assert render.money(price, partial, unavailable=RateUnavailable) == expected
    assert render.money(price, partial, unavailable=RateUnavailable) == expected


def test_each_answer_is_its_own_dict() -> None:
    """Changing one event's prices does not change the next event's."""
    price = Money(Decimal("80.00"), "CNY")
    render.money(price, book(), unavailable=RateUnavailable)["$money"]["RUB"] = "0"
    assert render.money(price, book(), unavailable=RateUnavailable)["$money"]["RUB"] != "0"


def test_books_are_not_kept_alive() -> None:
    """A request's rate book is freed with the request; only its rates stay in the cache."""
    gc.collect()
    before = len(render._KEYS)
    for _ in range(50):
        render.money(Money(Decimal("80.00"), "CNY"), book(), unavailable=RateUnavailable)
    gc.collect()
    assert len(render._KEYS) <= before
