from decimal import Decimal

import pytest

from livecommerce.i18n.money import Money, format_money

NBSP = "\xa0"


@pytest.mark.parametrize(
    ("locale", "currency", "amount", "expected"),
    [
        ("kk", "KZT", "12990", f"12{NBSP}990{NBSP}₸"),
        ("ru", "KZT", "12990", f"12{NBSP}990{NBSP}₸"),
        ("ru", "RUB", "1499.5", f"1{NBSP}499,50{NBSP}₽"),
        ("uz", "UZS", "1250000", f"1{NBSP}250{NBSP}000{NBSP}soʻm"),
        ("en", "EUR", "89.9", "€89.90"),
        ("zh", "CNY", "1999", "¥1,999.00"),
        ("en", "UZS", "45000", f"soʻm{NBSP}45,000"),
        ("ru", "KGS", "350", f"350,00{NBSP}сом"),
        ("en", "USD", "12.5", "$12.50"),
    ],
)
def test_format_money_per_locale(locale: str, currency: str, amount: str, expected: str) -> None:
    """Each locale formats with its CLDR pattern, the currency's digits and its home symbol."""
    money = Money(Decimal(amount), currency).rounded_for_display()
    assert format_money(money, locale) == expected


def test_whole_unit_currencies_round_half_up() -> None:
    """KZT and UZS show whole units; halves round up, as shoppers expect."""
    assert Money(Decimal("12990.50"), "KZT").rounded_for_display().amount == Decimal("12991")
    assert Money(Decimal("12990.49"), "UZS").rounded_for_display().amount == Decimal("12990")
    assert Money(Decimal("10.005"), "EUR").rounded_for_display().amount == Decimal("10.01")


def test_amount_string_keeps_iso_decimals() -> None:
    """The JSON amount keeps ISO 4217 decimals even for whole-unit display ("12990.00")."""
    assert Money(Decimal("12990"), "KZT").amount_str() == "12990.00"
    assert Money(Decimal("5"), "EUR").amount_str() == "5.00"


def test_minor_units_round_trip_and_refuse_extra_decimals() -> None:
    """Storage in minor units is exact, and an amount finer than a cent is refused."""
    assert Money(Decimal("120.45"), "CNY").to_minor() == 12045
    assert Money.from_minor(12045, "CNY") == Money(Decimal("120.45"), "CNY")
    with pytest.raises(ValueError):
        Money(Decimal("1.234"), "EUR").to_minor()
