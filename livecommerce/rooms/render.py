"""Room events: written once in a language-neutral form, rendered per (locale, currency).

A publisher (a host's REST call, a chat message) describes an event with markers wherever
the viewer's language or currency matters:

- ``{"$t": {"ru": "...", "kk": "..."}}``: translatable text, read through the fallback chain;
- ``{"$money": {"KZT": "12990.00", "RUB": "2301.55", ...}, "$base": "KZT"}``: a price already
  converted at publish time into every currency there was a rate for (so every process and
  every replay shows the same figure), rendered as the API's money object;
- ``{"$msg": "msgid", "params": {...}}``: system text from the message catalogs; params may
  themselves hold markers.

``render`` replaces the markers for one group. An event without markers is the same for all
groups and is serialised once for the whole room (``Event.uniform``).
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any, Protocol

from livecommerce.i18n.locales import pick_translation
from livecommerce.i18n.messages import translate
from livecommerce.i18n.money import Money, format_money, supported_currencies
from livecommerce.sqltypes import utcnow

Group = tuple[str, str]  # (locale, currency)


def text(translations: dict[str, str]) -> dict[str, Any]:
    return {"$t": dict(translations)}


def message(msgid: str, **params: Any) -> dict[str, Any]:
    return {"$msg": msgid, "params": params}


class RateBook(Protocol):
    """What converts a price into other currencies (``livecommerce.rates.service.RateBook``
    is one): the rates it holds, comparable and hashable (books holding the same rates
    convert alike), and the conversion itself."""

    def all(self) -> Sequence[Hashable]: ...

    def convert(self, money: Money, target: str) -> tuple[Money, Any]: ...


def money(amount: Money, book: RateBook, *, unavailable: type[Exception]) -> dict[str, Any]:
    """A price in every supported currency the rate book can reach, fixed now: a currency
    whose conversion raises ``unavailable`` (the book's "no rate") is left out."""
    prices = _prices(
        amount.amount, amount.amount.is_signed(), amount.currency, _rates_of(book, unavailable)
    )
    return {"$money": dict(prices), "$base": amount.currency}


class _Rates:
    """A rate book as a cache key: books holding the same rates are one key, however often
    they are loaded (a book per request, or one a process keeps). ``unavailable`` is what the
    book raises for a currency it cannot reach."""

    __slots__ = ("_book", "_hash", "rates", "unavailable")

    def __init__(self, book: RateBook, unavailable: type[Exception]) -> None:
        # Weakly: the book is the key of _KEYS, and this its value.
        self._book = weakref.ref(book)
        self.rates = tuple(book.all())
        self.unavailable = unavailable
        self._hash = hash(self.rates)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Rates) and self.rates == other.rates

    def __hash__(self) -> int:
        return self._hash

    def book(self) -> RateBook:
        """The book, alive while a caller converts with it (a miss is computed at once)."""
        book = self._book()
        assert book is not None
        return book


# Each live book's key, made once per book (sorting and hashing its rates is a few µs).
_KEYS: weakref.WeakKeyDictionary[RateBook, _Rates] = weakref.WeakKeyDictionary()


def _rates_of(book: RateBook, unavailable: type[Exception]) -> _Rates:
    key = _KEYS.get(book)
    if key is None:
        key = _KEYS[book] = _Rates(book, unavailable)
    return key


# Every winning flash-sale order publishes the sale's card: the same two prices each time.
@lru_cache(maxsize=1024)
def _prices(
    amount: Decimal, signed: bool, currency: str, rates: _Rates
) -> tuple[tuple[str, str], ...]:
    # Equal amounts give the same strings (each is quantized), but -0 and 0 do not: ``signed``
    # keeps them apart. The conversions depend on nothing but the rates the key holds.
    price = Money(amount, currency)
    prices = {currency: price.amount_str()}
    for code in supported_currencies():
        if code in prices:
            continue
        try:
            converted, _ = rates.book().convert(price, code)
        except rates.unavailable:
            continue
        prices[code] = converted.rounded_for_display().amount_str()
    return tuple(prices.items())


def _has_markers(value: Any) -> bool:
    if isinstance(value, dict):
        if "$t" in value or "$money" in value or "$msg" in value:
            return True
        return any(_has_markers(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_markers(v) for v in value)
    return False


def render(value: Any, locale: str, currency: str) -> Any:
    if isinstance(value, dict):
        if "$t" in value:
            return pick_translation(value["$t"], locale) or ""
        if "$money" in value:
            prices: dict[str, str] = value["$money"]
            code = currency if currency in prices else value["$base"]
            shown = Money(Decimal(prices[code]), code)
            return {
                "amount": shown.amount_str(),
                "currency": code,
                "formatted": format_money(shown, locale),
            }
        if "$msg" in value:
            params = {k: render(v, locale, currency) for k, v in value["params"].items()}
            msgid: str = value["$msg"]  # marked with N_ where the event was written
            return translate(locale, msgid, **params)
        return {k: render(v, locale, currency) for k, v in value.items()}
    if isinstance(value, list):
        return [render(v, locale, currency) for v in value]
    return value


@dataclass(frozen=True, slots=True)
class Event:
    """A decoded broker payload: ``{"type", "ts", "data"}`` plus the room's ``seq``."""

    type: str
    ts: str
    data: Any
    seq: int | None
    uniform: bool

    @classmethod
    def decode(cls, payload: bytes, seq: int | None) -> Event:
        raw = json.loads(payload)
        return cls(raw["type"], raw["ts"], raw["data"], seq, not raw.get("localized", True))

    def frame(self, locale: str, currency: str) -> str:
        data = self.data if self.uniform else render(self.data, locale, currency)
        return frame(self.type, data, seq=self.seq, ts=self.ts)


def encode_event(event_type: str, data: Any, *, at: datetime | None = None) -> bytes:
    """The broker payload of an event (language-neutral JSON)."""
    return json.dumps(
        {
            "type": event_type,
            "ts": (at or utcnow()).isoformat(),
            "data": data,
            "localized": _has_markers(data),
        },
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode()


def frame(event_type: str, data: Any, *, seq: int | None = None, ts: str | None = None) -> str:
    """One wire frame, the envelope of API.md."""
    return json.dumps(
        {"type": event_type, "seq": seq, "ts": ts or utcnow().isoformat(), "data": data},
        ensure_ascii=False,
        separators=(",", ":"),
    )
