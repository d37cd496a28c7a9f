from decimal import Decimal

import pytest

from livecommerce.i18n import money as money_module
from livecommerce.i18n.money import (
    FORMATTED_CACHE_SIZE,
    Money,
    format_money,
    format_money_babel,
)

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


# Rounding edges (half a display step either way, half-even against half-up), zero with
# both signs, negative amounts, long and many-digit amounts, and one representation of an
# amount against another (12990 and 12990.00).
EDGE_AMOUNTS = [
    "0",
    "-0",
    "0.00",
    "-0.00",
    "0.004",
    "-0.004",
    "0.005",
    "-0.005",
    "0.015",
    "0.025",
    "0.4",
    "-0.4",
    "0.5",
    "1.5",
    "2.5",
    "-2.5",
    "9.995",
    "999.995",
    "999999.5",
    "1499.5",
    "-1499.5",
    "12990",
    "12990.00",
    "12990.50",
    "-12990.49",
    "1E+3",
    "1E-10",
    "1000000",
    "123456789012345.67",
]
MARKETS = ("kk", "ru", "uz", "en", "zh")


@pytest.mark.parametrize("currency", ["KZT", "RUB", "UZS", "CNY", "EUR", "KGS", "USD"])
def test_format_money_gives_babels_text(currency: str) -> None:
    """Every amount formats exactly as Babel's own pattern application, cached or not."""
    money_module._formatted.cache_clear()
    amounts = [Decimal(a) for a in EDGE_AMOUNTS]
    amounts += [Decimal(n).scaleb(-2) for n in range(-2_000, 2_000, 7)]
    for locale in MARKETS:
        for amount in amounts:
            for money in (Money(amount, currency), Money(amount, currency).rounded_for_display()):
                expected = format_money_babel(money, locale)
                assert format_money(money, locale) == expected, (locale, money)
                assert format_money(money, locale) == expected, (locale, money)  # from cache


@pytest.mark.parametrize(
    ("locale", "currency", "amount", "expected"),
    [
        ("en", "EUR", "-0.00", "-€0.00"),
        ("kk", "KZT", "0", f"0{NBSP}₸"),
        ("kk", "KZT", "-0.4", f"-0{NBSP}₸"),
        ("ru", "RUB", "-1499.5", f"-1{NBSP}499,50{NBSP}₽"),
        ("uz", "UZS", "-45000", f"-45{NBSP}000{NBSP}soʻm"),
        ("en", "UZS", "-45000", f"-soʻm{NBSP}45,000"),
        ("zh", "CNY", "0.015", "¥0.02"),
        ("ru", "KZT", "999999999.5", f"1{NBSP}000{NBSP}000{NBSP}000{NBSP}₸"),
    ],
)
def test_format_money_edges(locale: str, currency: str, amount: str, expected: str) -> None:
    """Negative, zero and rounding edges keep their text (a negative zero keeps its minus)."""
    money = Money(Decimal(amount), currency).rounded_for_display()
    assert format_money(money, locale) == expected
    assert format_money_babel(money, locale) == expected


def test_format_money_keeps_the_sign_of_zero_apart() -> None:
    """Zero and negative zero are equal Decimals but not one cache entry."""
    money_module._formatted.cache_clear()
    assert format_money(Money(Decimal("0.00"), "EUR"), "en") == "€0.00"
    assert format_money(Money(Decimal("-0.00"), "EUR"), "en") == "-€0.00"
    assert format_money(Money(Decimal("0"), "EUR"), "en") == "€0.00"


def test_format_money_cache_is_bounded() -> None:
    """However many distinct prices are shown, the cache keeps at most its size."""
    money_module._formatted.cache_clear()
    for minor in range(FORMATTED_CACHE_SIZE + 100):
        format_money(Money.from_minor(minor, "RUB"), "ru")
    assert money_module._formatted.cache_info().currsize == FORMATTED_CACHE_SIZE
