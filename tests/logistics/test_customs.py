"""Customs duties and import VAT on parcels to individuals: worked examples of the rules."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from livecommerce.logistics.customs import (
    CorridorDataError,
    CustomsRule,
    NoCustomsRule,
    VatRate,
    assess,
)
from livecommerce.logistics.network import Network

D = Decimal
OLD_DAY = date(2026, 6, 30)  # the last day of the per-parcel rule
NEW_DAY = date(2026, 7, 1)  # the first day of the e-commerce regime


@pytest.fixture(scope="module")
def eaeu(network: Network) -> CustomsRule:
    return network.customs_for(network.destination("RU", "Moscow"), on=OLD_DAY)


@pytest.fixture(scope="module")
def ecom(network: Network) -> CustomsRule:
    return network.customs_for(network.destination("RU", "Moscow"), on=NEW_DAY)


@pytest.fixture(scope="module")
def uzbekistan(network: Network) -> CustomsRule:
    return network.customs_for(network.destination("UZ", "Tashkent"), on=NEW_DAY)


def vat(network: Network, country: str) -> VatRate:
    return network.vat_for(country, on=NEW_DAY)


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
def test_eaeu_per_parcel_rule_until_30_june_2026(
    eaeu: CustomsRule, value: str, grams: int, duty: str, why: str
) -> None:
    """EAEU to 30 Jun 2026: EUR 200 / 31 kg per parcel; 15 % of the excess, >= EUR 2/excess kg."""
    assert eaeu.id == "EAEU-2020-PERSONAL"
    assessed = assess(eaeu, value=D(value), weight_grams=grams, border_date=OLD_DAY)
    assert assessed.currency == "EUR"
    assert assessed.duty == D(duty), why
    assert assessed.vat == D(0) and [c.type for c in assessed.charges] == ["duty"]


def test_eaeu_ignores_earlier_parcels(eaeu: CustomsRule) -> None:
    """Each EAEU parcel stands alone: earlier imports do not shrink its allowance."""
    assessed = assess(
        eaeu, value=D("150"), weight_grams=1000, border_date=OLD_DAY, earlier_value=D("5000")
    )
    assert assessed.allowance == D("200") and assessed.duty == D("0.00")


@pytest.mark.parametrize(
    ("country", "value", "grams", "duty", "vat_amount", "why"),
    [
        ("RU", "200.00", 1000, "0.00", "0.00", "at the threshold: neither duty nor VAT"),
        ("RU", "200.01", 1000, "10.00", "46.20", "5 % x 200.01 = 10.0005; 22 % x 210.01 = 46.2022"),
        ("KZ", "200.01", 1000, "10.00", "33.60", "16 % x 210.01 = 33.6016"),
        ("RU", "250.00", 1000, "12.50", "57.75", "5 % x 250 = 12.50 > 1 kg x 1; 22 % x 262.50"),
        ("KZ", "250.00", 1000, "12.50", "42.00", "16 % x 262.50 = 42.00"),
        ("KG", "250.00", 1000, "12.50", "31.50", "12 % x 262.50 = 31.50"),
        ("RU", "300.00", 20_000, "20.00", "70.40", "5 % x 300 = 15 < 20 kg x 1; 22 % x 320"),
        ("KZ", "300.00", 20_000, "20.00", "51.20", "16 % x 320 = 51.20"),
        ("RU", "150.00", 40_000, "0.00", "0.00", "no weight limit any more (the old rule: 18)"),
        ("RU", "1000.00", 60_000, "60.00", "233.20", "50 < 60 kg x 1; 22 % x 1060 = 233.20"),
        ("RU", "200.01", 250_000, "250.00", "99.00", "250 kg x 1 >> 10.00; 22 % x 450.01"),
    ],
)
def test_eaeu_ecommerce_regime_from_1_july_2026(
    network: Network,
    ecom: CustomsRule,
    country: str,
    value: str,
    grams: int,
    duty: str,
    vat_amount: str,
    why: str,
) -> None:
    """From 1 Jul 2026: above EUR 200, 5 % of the whole value (>= EUR 1 per kg of the whole
    weight) plus import VAT at the national rate on value + duty; at or below, nothing."""
    assert ecom.id == "EAEU-2026-ECOM"
    rate = vat(network, country)
    assessed = assess(ecom, value=D(value), weight_grams=grams, border_date=NEW_DAY, vat=rate)
    assert (assessed.duty, assessed.vat) == (D(duty), D(vat_amount)), why
    assert assessed.total == D(duty) + D(vat_amount)
    duty_charge, vat_charge = assessed.charges
    assert (duty_charge.type, duty_charge.rule, duty_charge.amount) == ("duty", ecom.id, D(duty))
    assert (vat_charge.type, vat_charge.rule, vat_charge.amount) == ("vat", rate.id, D(vat_amount))
    if assessed.duty:
        assert duty_charge.base == D(value)  # the whole value, not the excess
        assert vat_charge.base == D(value) + D(duty)


def test_per_kg_minimum_is_named_in_the_charge(network: Network, ecom: CustomsRule) -> None:
    """EUR 300 / 20 kg: the EUR 20.00 floor beats 5 % (15.00), and the charge says so."""
    assessed = assess(
        ecom, value=D("300"), weight_grams=20_000, border_date=NEW_DAY, vat=vat(network, "RU")
    )
    duty = assessed.charges[0]
    assert (duty.basis, duty.minimum, duty.amount) == ("per_kg_minimum", D("20.00"), D("20.00"))
    at_rate = assess(
        ecom, value=D("250"), weight_grams=1000, border_date=NEW_DAY, vat=vat(network, "RU")
    )
    assert at_rate.charges[0].basis == "rate"


def test_ecommerce_threshold_applies_to_the_purchase(network: Network, ecom: CustomsRule) -> None:
    """A EUR 150 parcel of a EUR 240 purchase is dutiable: 5 % x 150 = 7.50 (> 1.5 kg x 1),
    VAT 22 % x 157.50 = 34.65; on its own it would be duty-free."""
    ru = vat(network, "RU")
    part = assess(
        ecom, value=D("150"), weight_grams=1500, border_date=NEW_DAY, vat=ru, purchase_value=D(240)
    )
    assert (part.duty, part.vat) == (D("7.50"), D("34.65"))
    alone = assess(ecom, value=D("150"), weight_grams=1500, border_date=NEW_DAY, vat=ru)
    assert (alone.duty, alone.vat) == (D("0.00"), D("0.00"))
    assert {c.basis for c in alone.charges} == {"within_allowance"}


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
    assert uzbekistan.id == "UZ-2025-COURIER"
    assessed = assess(
        uzbekistan,
        value=D(value),
        weight_grams=1500,
        border_date=NEW_DAY,
        earlier_value=D(earlier),
    )
    assert assessed.currency == "USD"
    assert assessed.allowance == D(allowance)
    assert assessed.excess_value == D(excess)
    assert assessed.duty == D(duty)


@pytest.mark.parametrize(
    ("delivery", "rule_id", "earlier", "allowance", "duty"),
    [
        # USD 150 parcel, nothing earlier: the courier's 200 covers it; the post's 100 leaves
        # 50 over at 30 % = USD 15.00.
        ("courier", "UZ-2025-COURIER", "0", "200.00", "0.00"),
        ("postal", "UZ-2025-POSTAL", "0", "100.00", "15.00"),
        # USD 80 declared earlier that month the same way: courier 200 - 80 = 120 left, 30
        # over = USD 9.00; post 100 - 80 = 20 left, 130 over = USD 39.00.
        ("courier", "UZ-2025-COURIER", "80", "120.00", "9.00"),
        ("postal", "UZ-2025-POSTAL", "80", "20.00", "39.00"),
    ],
)
def test_uzbek_courier_and_postal_limits(
    network: Network, delivery: str, rule_id: str, earlier: str, allowance: str, duty: str
) -> None:
    """The carrier's kind picks the rule: USD 200 a month by courier, USD 100 by post."""
    rule = network.customs_for(network.destination("UZ", "Tashkent", delivery), on=NEW_DAY)
    assert (rule.id, rule.carrier_kind) == (rule_id, delivery)
    assessed = assess(
        rule, value=D("150"), weight_grams=1000, border_date=NEW_DAY, earlier_value=D(earlier)
    )
    assert (assessed.allowance, assessed.duty) == (D(allowance), D(duty))


def test_the_rule_in_force_is_picked_by_date(network: Network) -> None:
    """30 Jun 2026 is the old EAEU rule's last day, 1 Jul the e-commerce regime's first."""
    moscow = network.destination("RU", "Moscow")
    assert network.customs_for(moscow, on=OLD_DAY).id == "EAEU-2020-PERSONAL"
    assert network.customs_for(moscow, on=NEW_DAY).id == "EAEU-2026-ECOM"
    assert network.customs_for(moscow, on=date(2031, 1, 1)).id == "EAEU-2026-ECOM"


def test_national_vat_rates_are_dated(network: Network) -> None:
    """Kazakhstan 12 % -> 16 % and Russia 20 % -> 22 % on 1 Jan 2026; Kyrgyzstan 12 %."""
    rates = {
        (country, day): network.vat_for(country, on=day).rate
        for country in ("KZ", "RU")
        for day in (date(2025, 12, 31), date(2026, 1, 1))
    }
    assert rates == {
        ("KZ", date(2025, 12, 31)): D("0.12"),
        ("KZ", date(2026, 1, 1)): D("0.16"),
        ("RU", date(2025, 12, 31)): D("0.20"),
        ("RU", date(2026, 1, 1)): D("0.22"),
    }
    assert network.vat_for("KG", on=NEW_DAY).rate == D("0.12")
    assert network.vat_for("AM", on=NEW_DAY).rate == network.vat_for("BY", on=NEW_DAY).rate


def test_no_rule_in_force_is_an_error_not_zero(network: Network) -> None:
    """Before the first EAEU rule (2020) there is no rule: a 422 naming country and date."""
    with pytest.raises(NoCustomsRule) as caught:
        network.customs_for(network.destination("RU", "Moscow"), on=date(2019, 12, 31))
    assert caught.value.status == 422 and caught.value.code == "no_customs_rule"
    assert caught.value.details == {
        "country": "RU",
        "date": "2019-12-31",
        "reason": "no_rule",
        "union": "EAEU",
        "delivery": "courier",
    }
    body = caught.value.body("en")["error"]
    assert body["message"] == "No customs rule is in force for RU on December 31, 2019."
    with pytest.raises(NoCustomsRule) as no_vat:
        network.vat_for("KG", on=date(2025, 12, 31))
    assert no_vat.value.details["reason"] == "no_vat"


def test_excluded_goods_are_data(ecom: CustomsRule, eaeu: CustomsRule) -> None:
    """Motor vehicles (HS 8703...) fall outside the e-commerce regime, by HS code prefix."""
    category = ecom.excluded_category("870323")
    assert category is not None and category.key == "motor_vehicles"
    assert ecom.excluded_category("330499") is None
    assert eaeu.excluded_category("870323") is None


def test_rules_come_from_data() -> None:
    """A rule read from data changes the result: nothing is a constant in code."""
    stricter = CustomsRule.from_data(
        {
            "id": "TEST",
            "union": "TEST",
            "kind": "per_parcel",
            "effective_from": "2020-01-01",
            "legal_basis": "test",
            "currency": "EUR",
            "value_limit": "100",
            "rate": "0.2",
            "weight_limit_kg": "10",
            "min_per_kg": "3",
        }
    )
    assert assess(stricter, value=D("150"), weight_grams=1000, border_date=NEW_DAY).duty == D(
        "10.00"
    )
    assert assess(stricter, value=D("50"), weight_grams=12_000, border_date=NEW_DAY).duty == D(
        "6.00"
    )
    with pytest.raises(CorridorDataError, match="'BAD': unknown kind 'per_planet'"):
        CustomsRule.from_data(
            {
                "id": "BAD",
                "union": "X",
                "kind": "per_planet",
                "effective_from": "2020-01-01",
                "currency": "EUR",
                "value_limit": "1",
                "rate": "1",
            }
        )
