"""Customs duties on parcels to individuals: the worked examples of the published rules."""

from __future__ import annotations

from decimal import Decimal

import pytest

from livecommerce.logistics.customs import CustomsRule, assess
from livecommerce.logistics.network import load_network

D = Decimal


@pytest.fixture(scope="module")
def eaeu() -> CustomsRule:
    return load_network().customs["EAEU"]


@pytest.fixture(scope="module")
def uzbekistan() -> CustomsRule:
    return load_network().customs["UZ"]


@pytest.mark.parametrize(
    ("value", "grams", "duty", "why"),
    [
        ("200.00", 31_000, "0.00", "exactly at both limits is still duty-free"),
        ("250.00", 2_000, "7.50", "15 % of the EUR 50 over the value limit"),
        ("150.00", 35_000, "8.00", "4 kg over the weight limit at EUR 2 per kg"),
        ("210.00", 40_000, "18.00", "both over: 15 % of 10 = 1.50 < 9 kg x EUR 2 = 18"),
        ("400.00", 32_000, "30.00", "both over: 15 % of 200 = 30 > 1 kg x EUR 2 = 2"),
        ("200.01", 500, "0.00", "one cent over: 15 % of 0.01 rounds to nothing"),
        ("1200.00", 31_500, "150.00", "half a kilogram over counts as EUR 1, value wins"),
    ],
)
def test_eaeu_per_parcel_rule(
    eaeu: CustomsRule, value: str, grams: int, duty: str, why: str
) -> None:
    """EAEU: EUR 200 / 31 kg per parcel; 15 % of the excess value, at least EUR 2 per excess kg."""
    assessed = assess(eaeu, value=D(value), weight_grams=grams)
    assert assessed.currency == "EUR"
    assert assessed.duty == D(duty), why


def test_eaeu_ignores_earlier_parcels(eaeu: CustomsRule) -> None:
    """Each EAEU parcel stands alone: earlier imports do not shrink its allowance."""
    assessed = assess(eaeu, value=D("150"), weight_grams=1000, earlier_value=D("5000"))
    assert assessed.allowance == D("200") and assessed.duty == D("0.00")


@pytest.mark.parametrize(
    ("earlier", "value", "allowance", "excess", "duty"),
    [
        ("0", "174.00", "200", "0", "0.00"),  # first parcel of the month fits
        ("174.00", "174.00", "26.00", "148.00", "44.40"),  # 30 % of what no longer fits
        ("200", "50.00", "0", "50.00", "15.00"),  # allowance used up: all of it is dutiable
        ("350", "10.00", "0", "10.00", "3.00"),  # over-used earlier: never a negative allowance
        ("120.50", "79.50", "79.50", "0", "0.00"),  # fills the allowance exactly
    ],
)
def test_uzbekistan_monthly_allowance(
    uzbekistan: CustomsRule, earlier: str, value: str, allowance: str, excess: str, duty: str
) -> None:
    """Uzbekistan: USD 200 per recipient per month, counting the recipient's earlier parcels."""
    assessed = assess(uzbekistan, value=D(value), weight_grams=1500, earlier_value=D(earlier))
    assert assessed.currency == "USD"
    assert assessed.allowance == D(allowance)
    assert assessed.excess_value == D(excess)
    assert assessed.duty == D(duty)


def test_rules_come_from_data() -> None:
    """A rule read from data changes the result: nothing is a constant in code."""
    stricter = CustomsRule.from_data(
        "TEST",
        {
            "kind": "per_parcel",
            "currency": "EUR",
            "value_limit": "100",
            "rate": "0.2",
            "weight_limit_kg": "10",
            "min_per_kg": "3",
        },
    )
    assert assess(stricter, value=D("150"), weight_grams=1000).duty == D("10.00")
    assert assess(stricter, value=D("50"), weight_grams=12_000).duty == D("6.00")
    with pytest.raises(ValueError):
        CustomsRule.from_data(
            "BAD", {"kind": "per_planet", "currency": "EUR", "value_limit": "1", "rate": "1"}
        )
