"""Quotes, orders and payments as the API shows them, in the request's language.

A stored quote is read into its ``QuoteSnapshot`` (orders/snapshots.py), of any version,
and rendered straight into the JSON that QuoteOut and OrderOut dump, key by key in the
schemas' field order, rather than validated into the response models and dumped back
(which cost more than the rest of the render). The few values the schemas convert go
through pydantic's own serializers: times and dates become its ISO text, the free-form
objects (a parcel's assessment, ship_to) their JSON. tests/orders/test_render.py holds the
output to the schema's.
"""

from __future__ import annotations

import math
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from pydantic import TypeAdapter

from livecommerce.i18n.locales import pick_translation
from livecommerce.i18n.messages import N_, translate
from livecommerce.i18n.money import Money, format_money, format_rate
from livecommerce.orders.consignee import masked_ship_to
from livecommerce.orders.models import Order, OrderEvent, OrderStatus, Payment
from livecommerce.orders.schemas import PaymentOut
from livecommerce.orders.snapshots import AssessmentSnapshot, LegacyAssessment, QuoteSnapshot
from livecommerce.orders.states import STATUS_LABELS
from livecommerce.schemas import MoneyOut, money_json
from livecommerce.sqltypes import utcnow

if TYPE_CHECKING:
    from livecommerce.orders.payments import PaymentProvider, ProviderIntent

_DATETIME: TypeAdapter[datetime] = TypeAdapter(datetime)
_DATE: TypeAdapter[date] = TypeAdapter(date)
_OBJECT: TypeAdapter[dict[str, Any]] = TypeAdapter(dict[str, Any])


def _time(value: datetime | None) -> str | None:
    return None if value is None else _DATETIME.dump_python(value, mode="json")


def _date(value: date | None) -> str | None:
    return None if value is None else _DATE.dump_python(value, mode="json")


def _object(value: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if value is None else _OBJECT.dump_python(value, mode="json")


def _money(amount: Decimal, currency: str, locale: str) -> dict[str, str]:
    shown, formatted = _shown(str(amount), currency, locale)
    return {"amount": shown, "currency": currency, "formatted": formatted}


# A stored amount's text as shown, per language: a rush's orders repeat the same figures.
# Keyed by the text: Decimal("1.0") == Decimal("1.00"), but they are not written alike.
@lru_cache(maxsize=4096, typed=True)
def _shown(amount: str, currency: str, locale: str) -> tuple[str, str]:
    money = Money(Decimal(amount), currency)
    return money.amount_str(), format_money(money, locale)


def _charges(quote: QuoteSnapshot, locale: str) -> list[dict[str, Any]]:
    """CustomsChargeOut's JSON. A "legacy" charge (a quote stored before the breakdown was
    kept: the parcel's whole duty) has no base, rate or allowance to show."""
    cur = quote.currency
    out = []
    for c in quote.customs:
        rule_cur = c.currency
        out.append(
            {
                "warehouse": c.warehouse,
                "type": c.type,
                "rule": c.rule,
                "legal_basis": c.legal_basis,
                "border_date": _date(c.border_date),
                "base": None if c.base is None else _money(c.base, rule_cur, locale),
                "rate": None if c.rate is None else str(c.rate),
                "rate_text": None if c.rate is None else format_rate(str(c.rate), locale),
                "basis": c.basis,
                "minimum": None if c.minimum is None else _money(c.minimum, rule_cur, locale),
                "allowance": None if c.allowance is None else _money(c.allowance, rule_cur, locale),
                "assessed": _money(c.assessed, rule_cur, locale),
                "amount": _money(c.charged, cur, locale),
            }
        )
    return out


def _assessment(customs: AssessmentSnapshot | LegacyAssessment | None) -> dict[str, Any] | None:
    """A parcel's assessment as stored: a legacy one with only the keys its row had."""
    if customs is None:
        return None
    return customs.model_dump(mode="json", exclude_unset=isinstance(customs, LegacyAssessment))


def render_quote(
    quote: QuoteSnapshot, locale: str, *, consignee: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A stored (language-neutral) quote as the API shows it in ``locale`` (QuoteOut's JSON);
    ``consignee`` (a fresh quote's, from ``orders.consignee.consignee_of``) is kept as is."""
    cur = quote.currency
    return {
        "currency": cur,
        "destination": {
            "country": quote.destination.country,
            "city": pick_translation(quote.destination.city, locale) or "",
        },
        "items": [
            {
                "product_id": item.product_id,
                "title": pick_translation(item.title, locale) or "",
                "quantity": item.quantity,
                "unit_price": _money(item.unit_price, cur, locale),
                "line_total": _money(item.line_total, cur, locale),
                "flash_sale_id": item.flash_sale_id,
            }
            for item in quote.items
        ],
        "subtotal": _money(quote.subtotal, cur, locale),
        "shipping": _money(quote.shipping, cur, locale),
        "duties": _money(quote.duties, cur, locale),
        "customs": _charges(quote, locale),
        "total": _money(quote.total, cur, locale),
        "shipments": [
            {
                "warehouse": s.warehouse,
                "items": [{"product_id": i.product_id, "quantity": i.quantity} for i in s.items],
                "legs": [
                    {
                        "mode": leg.mode,
                        "from": pick_translation(leg.origin, locale) or "",
                        "to": pick_translation(leg.destination, locale) or "",
                        "days": leg.days,
                    }
                    for leg in s.legs
                ],
                "days": s.days,
                "eta": _date(s.eta),
                "shipping": _money(s.shipping, cur, locale),
                "duties": _money(s.duties, cur, locale),
                "customs": _assessment(s.customs),
            }
            for s in quote.shipments
        ],
        "rates": [
            {
                "base": r.base,
                "quote": r.quote,
                "rate": str(r.rate),
                "source": r.source,
                "as_of": _time(r.as_of),
            }
            for r in quote.rates
        ],
        "delivery": quote.delivery,
        "deliveries": list(quote.deliveries),
        "consignee": consignee,
    }


def _instructions(order: Order, locale: str) -> dict[str, Any]:
    """PaymentInstructions' JSON."""
    total = Money.from_minor(order.total_minor, order.currency)
    shown = money_json(total, locale)
    pay_url = expires_at = None
    if order.payment_method == "cod":
        method = "cod"
        text = translate(
            locale,
            N_("Pay %(amount)s in cash to the courier on delivery."),
            amount=shown["formatted"],
        )
    elif order.status != OrderStatus.PENDING_PAYMENT:
        method = "card"
        text = translate(locale, STATUS_LABELS[OrderStatus(order.status)])
    else:
        method = "card"
        minutes = 0
        if order.reserved_until is not None:
            minutes = max(0, math.ceil((order.reserved_until - utcnow()).total_seconds() / 60))
        text = translate(
            locale,
            N_("Pay %(amount)s by card within %(minutes)s min to keep your items."),
            amount=shown["formatted"],
            minutes=str(minutes),
        )
        pay_url = f"/api/v1/orders/{order.id}/payments"
        expires_at = _time(order.reserved_until)
    return {
        "method": method,
        "amount": shown,
        "text": text,
        "pay_url": pay_url,
        "expires_at": expires_at,
    }


def render_order(
    order: Order, events: list[OrderEvent], locale: str, *, quote: QuoteSnapshot | None = None
) -> dict[str, Any]:
    """The order as the API shows it in ``locale`` (OrderOut's JSON). ``quote``: the
    snapshot its stored quote was made from, where the caller has it (an order just placed:
    reading the stored JSON back into it would cost more than the rest of the render)."""
    body = render_quote(quote or QuoteSnapshot.read(order.quote), locale)
    # Statuses may be StrEnum members on a fresh row; the schema's str gives their text.
    body.update(
        id=order.id,
        status=str(order.status),
        status_text=translate(locale, STATUS_LABELS[OrderStatus(order.status)]),
        payment_method=str(order.payment_method),
        stream_id=order.stream_id,
        flash_sale_id=order.flash_sale_id,
        # The tax id shows only its last digits: merchants read orders too.
        ship_to=_object(masked_ship_to(order.ship_to)),
        payment=_instructions(order, locale),
        created_at=_time(order.created_at),
        events=[
            {
                "from_status": None if e.from_status is None else str(e.from_status),
                "to_status": str(e.to_status),
                "actor": e.actor,
                "reason": e.reason,
                "at": _time(e.at),
            }
            for e in events
        ],
    )
    return body


def render_payment(
    payment: Payment, intent: ProviderIntent | None, provider: PaymentProvider, locale: str
) -> dict[str, Any]:
    """A payment as the API shows it (PaymentOut's JSON); ``intent`` only when just started."""
    return PaymentOut(
        id=payment.id or 0,
        order_id=payment.order_id,
        provider=payment.provider,
        intent_id=payment.intent_id,
        status=payment.status,
        amount=MoneyOut.of(Money.from_minor(payment.amount_minor, payment.currency), locale),
        client_secret=intent.client_secret if intent else None,
        confirm_url=provider.confirm_url(payment.intent_id),
    ).model_dump(mode="json")
