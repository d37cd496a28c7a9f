"""Money on ``Decimal``: minor units for storage, display rounding and Babel formatting."""

from __future__ import annotations

import copy
import json
import re
import unicodedata
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from functools import cache, cached_property, lru_cache
from pathlib import Path

from babel import Locale
from babel.numbers import (
    NumberPattern,
    format_percent,
    get_currency_precision,
    get_currency_symbol,
    get_decimal_symbol,
    get_group_symbol,
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


# Formatted strings kept per (amount, currency, locale): a rush shows the same few prices
# in five languages over and over. Bounded, so a catalog of distinct prices cannot grow it.
FORMATTED_CACHE_SIZE = 8192


def format_money(money: Money, locale: str) -> str:
    """Format with the locale's CLDR pattern, the currency's display digits and home symbol.

    Always the same text as ``format_money_babel``; the steps that depend only on the locale
    and currency are done once, and whole answers are kept in a bounded cache.
    """
    amount = money.amount
    if not isinstance(amount, Decimal) or not amount.is_finite():
        return format_money_babel(money, locale)
    return _formatted(amount, amount.is_signed(), money.currency, locale)


@lru_cache(maxsize=FORMATTED_CACHE_SIZE)
def _formatted(amount: Decimal, signed: bool, currency: str, locale: str) -> str:
    # ``signed`` is there for the key alone: Decimal("-0") == Decimal("0"), yet Babel writes
    # the first with a minus. Otherwise equal amounts (12990, 12990.00) format alike, because
    # Babel normalizes the amount before quantizing it to the display digits.
    formatter = _formatter(currency, BABEL_LOCALE.get(locale, locale))
    if formatter is None:
        return format_money_babel(Money(amount, currency), locale)
    return formatter.format(amount)


def format_money_babel(money: Money, locale: str) -> str:
    """The reference: Babel applies the pattern (every lookup on every call), then the home
    symbol and currency spacing. ``format_money`` must give exactly this text."""
    rule = currency_rules()[money.currency]
    babel_locale = BABEL_LOCALE.get(locale, locale)
    cldr_locale, pattern = _pattern(babel_locale, rule.display_digits)
    text: str = pattern.apply(
        money.amount, cldr_locale, currency=money.currency, currency_digits=False
    )
    return _home_symbol(text, money.currency, babel_locale)


def _home_symbol(text: str, currency: str, babel_locale: str) -> str:
    local_symbol, home_symbol = _symbols(currency, babel_locale)
    if local_symbol != home_symbol:
        text = text.replace(local_symbol, home_symbol, 1)
    return _currency_spacing(text, home_symbol)


_QUOTED = re.compile(r"'([^']*)'")


@dataclass(frozen=True, slots=True)
class _Formatter:
    """``NumberPattern.apply`` for one currency pattern, locale and currency, with the
    locale's symbols looked up and the currency sign put into the affixes beforehand.

    It repeats Babel's steps for a plain pattern (no scale, exponent or significant digits,
    see ``_formatter``): sign, ``abs().normalize()``, quantize in the current decimal
    context, group the integer digits, pad the fraction.
    """

    currency: str
    babel_locale: str
    prefixes: tuple[str, str]  # (positive, negative)
    suffixes: tuple[str, str]
    group: str
    decimal: str
    grouping: tuple[int, int]
    min_int: int
    frac_prec: tuple[int, int]
    quantum: Decimal
    unquote: bool  # a quote somewhere: Babel's unquoting has to run on the whole text

    def format(self, amount: Decimal) -> str:
        value = amount.scaleb(0)  # as Babel's scaleb(pattern.scale): rounds to the context
        negative = int(value.is_signed())
        value = abs(value).normalize()
        whole, _, fraction = f"{value.quantize(self.quantum):f}".partition(".")
        if len(whole) < self.min_int:
            whole = "0" * (self.min_int - len(whole)) + whole
        size, grouped = self.grouping[0], ""
        while len(whole) > size:
            grouped = self.group + whole[-size:] + grouped
            whole = whole[:-size]
            size = self.grouping[1]
        text = (
            self.prefixes[negative]
            + whole
            + grouped
            + self._fraction(fraction or "0")
            + self.suffixes[negative]
        )
        if self.unquote:
            text = _QUOTED.sub(lambda m: m.group(1) or "'", text)
        return _home_symbol(text, self.currency, self.babel_locale)

    def _fraction(self, digits: str) -> str:
        least, most = self.frac_prec
        if len(digits) < least:
            digits += "0" * (least - len(digits))
        if most == 0 or (least == 0 and int(digits) == 0):
            return ""
        while len(digits) > least and digits[-1] == "0":
            digits = digits[:-1]
        return self.decimal + digits


@cache
def _formatter(currency: str, babel_locale: str) -> _Formatter | None:
    """The prepared formatter, or None where only Babel itself gives the right text."""
    rule = currency_rules()[currency]
    cldr_locale, pattern = _pattern(babel_locale, rule.display_digits)
    group = get_group_symbol(cldr_locale, numbering_system="latn")
    decimal = get_decimal_symbol(cldr_locale, numbering_system="latn")
    affixes = (*pattern.prefix, *pattern.suffix)
    if (
        pattern.scale
        or pattern.exp_prec
        or "@" in pattern.pattern
        or not pattern.number_pattern
        # The long name depends on the amount (plural rules), so it cannot be put in early.
        or any("¤¤¤" in affix for affix in affixes)
        # Babel replaces currency signs in the whole text: none may come from the number.
        or "¤" in group + decimal
    ):
        return None
    symbol = get_currency_symbol(currency, cldr_locale)

    def place(affix: str) -> str:
        return affix.replace("¤¤", currency.upper()).replace("¤", symbol)

    prefixes = (place(pattern.prefix[0]), place(pattern.prefix[1]))
    suffixes = (place(pattern.suffix[0]), place(pattern.suffix[1]))
    return _Formatter(
        currency=currency,
        babel_locale=babel_locale,
        prefixes=prefixes,
        suffixes=suffixes,
        group=group,
        decimal=decimal,
        grouping=pattern.grouping,
        min_int=pattern.int_prec[0],
        frac_prec=pattern.frac_prec,
        quantum=Decimal(10) ** -pattern.frac_prec[1],
        unquote="'" in "".join((*prefixes, *suffixes, group, decimal)),
    )


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


@lru_cache(maxsize=256)
def format_rate(rate: str, locale: str) -> str:
    """A tax or duty rate stored as a fraction (``"0.05"``) as the locale writes a percentage."""
    return str(
        format_percent(
            Decimal(rate), locale=BABEL_LOCALE.get(locale, locale), decimal_quantization=False
        )
    )
