"""Quotes, orders and payments as the API shows them, in the request's language.

Quotes and orders are rendered straight into the JSON that QuoteOut and OrderOut dump, key
by key in the schemas' field order, rather than validated into the models and dumped back
(which cost more than the rest of the render). The few values the schemas convert go
through pydantic's own validators and serializers: times and dates become its ISO text,
the free-form objects (customs, ship_to) its JSON. tests/orders/test_render.py holds the
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


# Stored quotes keep rate times and ETAs as ISO text; the same few repeat in every order.
@lru_cache(maxsize=1024)
def _stored_time(value: str) -> str:
    return _DATETIME.dump_python(_DATETIME.validate_python(value), mode="json")


@lru_cache(maxsize=1024)
def _stored_date(value: str) -> str:
    return _DATE.dump_python(_DATE.validate_python(value), mode="json")


def _object(value: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if value is None else _OBJECT.dump_python(value, mode="json")


def _money(amount: str, currency: str, locale: str) -> dict[str, str]:
    shown, formatted = _shown(amount, currency, locale)
    return {"amount": shown, "currency": currency, "formatted": formatted}


# A stored amount's text as shown, per language: a rush's orders repeat the same figures.
@lru_cache(maxsize=4096, typed=True)
def _shown(amount: str, currency: str, locale: str) -> tuple[str, str]:
    money = Money(Decimal(amount), currency)
    return money.amount_str(), format_money(money, locale)


def _charges(data: dict[str, Any], locale: str) -> list[dict[str, Any]]:
    """CustomsChargeOut's JSON: the stored breakdown, or for a quote stored before it was
    kept, one charge per assessed parcel (its duties, as then charged)."""
    cur = data["currency"]
    if "customs" not in data:
        return [
            {
                "warehouse": s["warehouse"],
                "type": "duty",
                "rule": str(s["customs"].get("rule", "")),
                "legal_basis": None,
                "border_date": None,
                "base": None,
                "rate": None,
                "rate_text": None,
                "basis": "legacy",
                "minimum": None,
                "allowance": None,
                "assessed": _money(s["customs"]["duty"], s["customs"]["currency"], locale),
                "amount": _money(s["duties"], cur, locale),
            }
            for s in data["shipments"]
            if s.get("customs")
        ]
    out = []
    for c in data["customs"]:
        rule_cur = c["currency"]
        out.append(
            {
                "warehouse": c["warehouse"],
                "type": c["type"],
                "rule": c["rule"],
                "legal_basis": c["legal_basis"],
                "border_date": _stored_date(c["border_date"]) if c["border_date"] else None,
                "base": _money(c["base"], rule_cur, locale),
                "rate": c["rate"],
                "rate_text": format_rate(c["rate"], locale),
                "basis": c["basis"],
                "minimum": None if c["minimum"] is None else _money(c["minimum"], rule_cur, locale),
                "allowance": _money(c["allowance"], rule_cur, locale),
                "assessed": _money(c["assessed"], rule_cur, locale),
                "amount": _money(c["charged"], cur, locale),
            }
        )
    return out


def render_quote(
    data: dict[str, Any], locale: str, *, consignee: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A stored (language-neutral) quote as the API shows it in ``locale`` (QuoteOut's JSON);
    ``consignee`` (a fresh quote's, from ``orders.consignee.consignee_of``) is kept as is."""
    cur = data["currency"]
    return {
        "currency": cur,
        "destination": {
            "country": data["destination"]["country"],
            "city": pick_translation(data["destination"]["city"], locale) or "",
        },
        "items": [
            {
                "product_id": item["product_id"],
                "title": pick_translation(item["title"], locale) or "",
                "quantity": item["quantity"],
                "unit_price": _money(item["unit_price"], cur, locale),
                "line_total": _money(item["line_total"], cur, locale),
                "flash_sale_id": item["flash_sale_id"],
            }
            for item in data["items"]
        ],
        "subtotal": _money(data["subtotal"], cur, locale),
        "shipping": _money(data["shipping"], cur, locale),
        "duties": _money(data["duties"], cur, locale),
        "customs": _charges(data, locale),
        "total": _money(data["total"], cur, locale),
        "shipments": [
            {
                "warehouse": s["warehouse"],
                "items": [
                    {"product_id": i["product_id"], "quantity": i["quantity"]} for i in s["items"]
                ],
                "legs": [
                    {
                        "mode": leg["mode"],
                        "from": pick_translation(leg["from"], locale) or "",
                        "to": pick_translation(leg["to"], locale) or "",
                        "days": leg["days"],
                    }
                    for leg in s["legs"]
                ],
                "days": s["days"],
                "eta": _stored_date(s["eta"]),
                "shipping": _money(s["shipping"], cur, locale),
                "duties": _money(s["duties"], cur, locale),
                "customs": _object(s["customs"]),
            }
            for s in data["shipments"]
        ],
        "rates": [
            {
                "base": r["base"],
                "quote": r["quote"],
                "rate": r["rate"],
                "source": r["source"],
                "as_of": _stored_time(r["as_of"]),
            }
            for r in data["rates"]
        ],
        # Orders stored before the choice existed went by courier.
        "delivery": data.get("delivery", "courier"),
        "deliveries": data.get("deliveries", ["courier"]),
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


def render_order(order: Order, events: list[OrderEvent], locale: str) -> dict[str, Any]:
    """The order as the API shows it in ``locale`` (OrderOut's JSON)."""
    body = render_quote(order.quote, locale)
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
