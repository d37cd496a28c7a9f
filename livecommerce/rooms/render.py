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
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from livecommerce.i18n.locales import pick_translation
from livecommerce.i18n.messages import translate
from livecommerce.i18n.money import Money, format_money, supported_currencies
from livecommerce.rates.service import RateBook, RateUnavailable
from livecommerce.sqltypes import utcnow

Group = tuple[str, str]  # (locale, currency)


def text(translations: dict[str, str]) -> dict[str, Any]:
    return {"$t": dict(translations)}


def message(msgid: str, **params: Any) -> dict[str, Any]:
    return {"$msg": msgid, "params": params}


def money(amount: Money, book: RateBook) -> dict[str, Any]:
    """A price in every supported currency the rate book can reach, fixed now."""
    prices = {amount.currency: amount.amount_str()}
    for code in supported_currencies():
        if code in prices:
            continue
        try:
            converted, _ = book.convert(amount, code)
        except RateUnavailable:
            continue
        prices[code] = converted.rounded_for_display().amount_str()
    return {"$money": prices, "$base": amount.currency}


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
