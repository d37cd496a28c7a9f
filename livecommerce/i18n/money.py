"""Money on ``Decimal``: minor units for storage, display rounding and Babel formatting."""

from __future__ import annotations

import copy
import json
import unicodedata
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from functools import cache, cached_property
from pathlib import Path

from babel import Locale
from babel.numbers import (
    NumberPattern,
    get_currency_precision,
    get_currency_symbol,
    parse_pattern,
)

from livecommerce.i18n.locales import BABEL_LOCALE


@dataclass(frozen=True)
class CurrencyRule:
    code: str
    display_step: Decimal
    symbol_locale: str

    @cached_property
    def minor_digits(self) -> int:
        """ISO 4217 exponent: how amounts are stored (KZT and UZS keep 2, as ISO says)."""
        return int(get_currency_precision(self.code))

    @cached_property
    def minor_quantum(self) -> Decimal:
        """One minor unit (``0.01``): what ``amount_str`` quantizes to."""
        return Decimal(1).scaleb(-self.minor_digits)

    @cached_property
    def display_digits(self) -> int:
        exponent = self.display_step.normalize().as_tuple().exponent
        return max(0, -int(exponent))


@cache
def currency_rules() -> dict[str, CurrencyRule]:
    raw = json.loads((Path(__file__).with_name("currencies.json")).read_text(encoding="utf-8"))
    return {
        code: CurrencyRule(code, Decimal(rule["display_step"]), rule["symbol_locale"])
        for code, rule in raw["currencies"].items()
    }


def supported_currencies() -> tuple[str, ...]:
    return tuple(currency_rules())


def is_supported_currency(code: str) -> bool:
    return code in currency_rules()


@dataclass(frozen=True, slots=True)
class Money:
    amount: Decimal
    currency: str

    @classmethod
    def from_minor(cls, minor: int, currency: str) -> Money:
        digits = currency_rules()[currency].minor_digits
        return cls(Decimal(minor).scaleb(-digits), currency)

    def to_minor(self) -> int:
        """Exact integer minor units; refuses amounts finer than the currency allows."""
        digits = currency_rules()[self.currency].minor_digits
        scaled = self.amount.scaleb(digits)
        if scaled != scaled.to_integral_value():
            raise ValueError(f"{self.amount} has more than {digits} decimals for {self.currency}")
        return int(scaled)

    def rounded_for_display(self) -> Money:
        rule = currency_rules()[self.currency]
        steps = (self.amount / rule.display_step).quantize(Decimal(1), rounding=ROUND_HALF_UP)
        return Money(steps * rule.display_step, self.currency)

    def amount_str(self) -> str:
        """Decimal string with the ISO number of decimals, as clients expect ("12990.00")."""
        quantum = currency_rules()[self.currency].minor_quantum
        return str(self.amount.quantize(quantum, rounding=ROUND_HALF_UP))


@cache
def _pattern(babel_locale: str, digits: int) -> tuple[Locale, NumberPattern]:
    locale = Locale.parse(babel_locale)
    pattern = copy.copy(parse_pattern(locale.currency_formats["standard"].pattern))
    pattern.frac_prec = (digits, digits)
    return locale, pattern


@cache
def _symbols(currency: str, babel_locale: str) -> tuple[str, str]:
    rule = currency_rules()[currency]
    return get_currency_symbol(currency, babel_locale), get_currency_symbol(
        currency, rule.symbol_locale
    )


def format_money(money: Money, locale: str) -> str:
    """Format with the locale's CLDR pattern, the currency's display digits and home symbol."""
    rule = currency_rules()[money.currency]
    babel_locale = BABEL_LOCALE.get(locale, locale)
    cldr_locale, pattern = _pattern(babel_locale, rule.display_digits)
    text: str = pattern.apply(
        money.amount, cldr_locale, currency=money.currency, currency_digits=False
    )
    local_symbol, home_symbol = _symbols(money.currency, babel_locale)
    if local_symbol != home_symbol:
        text = text.replace(local_symbol, home_symbol, 1)
    return _currency_spacing(text, home_symbol)


def _currency_spacing(text: str, symbol: str) -> str:
    """CLDR currencySpacing: a symbol made of letters ("soʻm", "сом") is kept off the digits."""
    if not symbol or unicodedata.category(symbol[0])[0] != "L":
        return text
    start = text.find(symbol)
    end = start + len(symbol)
    if start < 0:
        return text
    if end < len(text) and text[end].isdigit():
        return text[:end] + "\xa0" + text[end:]
    if start > 0 and text[start - 1].isdigit():
        return text[:start] + "\xa0" + text[start:]
    return text
