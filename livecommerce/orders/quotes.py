"""Landed cost: item prices, shipping, duties and delivery dates for a basket.

``build_quote`` is pure: it takes the basket, a stock snapshot, the network, the rate book
and the recipient's earlier imports, and returns every figure with the rates it used. The
order service calls the same function, so an order is always charged what a quote shows.

Rounding: every amount the buyer pays (unit price, shipping and duties per shipment) is
converted once and rounded to the currency's display step (whole tenge and soʻm), so the
figures shown add up exactly to the total charged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from livecommerce.i18n.money import Money
from livecommerce.logistics.allocation import allocate
from livecommerce.logistics.customs import DutyAssessment, assess
from livecommerce.logistics.network import Destination, Network, Route
from livecommerce.rates.service import RateBook, RateQuote

ZERO = Decimal(0)


@dataclass(frozen=True)
class BasketLine:
    product_id: int
    quantity: int
    unit_price: Money  # in the currency it is sold in (product price or flash-sale price)
    weight_grams: int
    title: Mapping[str, str]
    flash_sale_id: int | None = None


@dataclass
class QuotedLine:
    product_id: int
    quantity: int
    unit_price: Money  # buyer's currency, rounded
    line_total: Money
    title: Mapping[str, str]
    flash_sale_id: int | None


@dataclass
class QuotedShipment:
    warehouse: str
    items: list[tuple[int, int]]  # (product_id, quantity)
    route: Route
    eta: date
    weight_grams: int
    shipping: Money
    duties: Money
    customs: DutyAssessment | None

    def as_data(self) -> dict[str, Any]:
        """Language-neutral record kept on the order (leg places keep every name)."""
        return {
            "warehouse": self.warehouse,
            "items": [{"product_id": p, "quantity": q} for p, q in self.items],
            "legs": [
                {
                    "mode": leg.mode,
                    "from": dict(leg.origin.names),
                    "to": dict(leg.destination.names),
                    "from_key": leg.origin.key,
                    "to_key": leg.destination.key,
                    "days": leg.days,
                }
                for leg in self.route.legs
            ],
            "handling_days": self.route.handling_days,
            "days": self.route.days,
            "eta": self.eta.isoformat(),
            "weight_grams": self.weight_grams,
            "shipping": self.shipping.amount_str(),
            "duties": self.duties.amount_str(),
            "customs": self.customs.as_data() if self.customs else None,
        }


@dataclass
class Quote:
    currency: str
    destination: Destination
    lines: list[QuotedLine]
    shipments: list[QuotedShipment]
    subtotal: Money
    shipping: Money
    duties: Money
    total: Money
    rates: list[RateQuote]
    allocation: dict[int, list[tuple[str, int]]]

    @property
    def declared(self) -> tuple[Decimal, str | None]:
        """Customs value of the parcels that cross a border, in the rule's currency."""
        assessed = [s.customs for s in self.shipments if s.customs is not None]
        if not assessed:
            return ZERO, None
        return sum((a.customs_value for a in assessed), ZERO), assessed[0].currency

    def as_data(self) -> dict[str, Any]:
        return {
            "currency": self.currency,
            "destination": {
                "country": self.destination.country,
                "city": dict(self.destination.city.names),
                "city_key": self.destination.city.key,
            },
            "items": [
                {
                    "product_id": line.product_id,
                    "title": dict(line.title),
                    "quantity": line.quantity,
                    "unit_price": line.unit_price.amount_str(),
                    "line_total": line.line_total.amount_str(),
                    "flash_sale_id": line.flash_sale_id,
                }
                for line in self.lines
            ],
            "subtotal": self.subtotal.amount_str(),
            "shipping": self.shipping.amount_str(),
            "duties": self.duties.amount_str(),
            "total": self.total.amount_str(),
            "shipments": [s.as_data() for s in self.shipments],
            "rates": [r.as_dict() for r in self.rates],
        }


@dataclass
class _Converter:
    book: RateBook
    used: dict[tuple[str, str], RateQuote] = field(default_factory=dict)

    def exact(self, money: Money, target: str) -> Money:
        converted, rates = self.book.convert(money, target)
        for rate in rates:
            self.used[(rate.base, rate.quote)] = rate
        return converted

    def charged(self, money: Money, target: str) -> Money:
        return self.exact(money, target).rounded_for_display()


def rank_warehouses(network: Network, destination: Destination) -> list[tuple[str, Route]]:
    """Warehouses that reach the destination, soonest first (then cheapest, then by code)."""
    routes = []
    for code in network.warehouses:
        route = network.route(code, destination)
        if route is not None:
            routes.append((route.days, route.shipping_cost(1000), code, route))
    return [(code, route) for _, _, code, route in sorted(routes, key=lambda r: r[:3])]


def build_quote(
    *,
    network: Network,
    destination: Destination,
    basket: Sequence[BasketLine],
    stock: Mapping[int, Mapping[str, int]],
    book: RateBook,
    currency: str,
    earlier_imports: Decimal,
    now: datetime,
) -> Quote:
    """The landed cost of ``basket`` delivered to ``destination``, paid in ``currency``.

    ``earlier_imports`` is the customs value the recipient already imported this month
    under a monthly allowance (in that rule's currency). Raises ``Shortage`` when the
    warehouses together hold too little of a line.
    """
    convert = _Converter(book)
    ranked = rank_warehouses(network, destination)
    routes = dict(ranked)
    by_product = {line.product_id: line for line in basket}
    allocation = allocate(
        [(line.product_id, line.quantity) for line in basket], stock, [c for c, _ in ranked]
    )

    lines: list[QuotedLine] = []
    subtotal = ZERO
    for line in basket:
        unit = convert.charged(line.unit_price, currency)
        total = Money(unit.amount * line.quantity, currency)
        subtotal += total.amount
        lines.append(
            QuotedLine(line.product_id, line.quantity, unit, total, line.title, line.flash_sale_id)
        )

    per_warehouse: dict[str, list[tuple[int, int]]] = {}
    for product_id, parts in allocation.items():
        for code, quantity in parts:
            per_warehouse.setdefault(code, []).append((product_id, quantity))

    shipments: list[QuotedShipment] = []
    shipping_total = duties_total = ZERO
    monthly_used = earlier_imports
    # Shipments in ranking order, so the fastest parcel is assessed first under a monthly
    # allowance (it is the one that reaches customs first).
    for code, _ in ranked:
        items = per_warehouse.get(code)
        if not items:
            continue
        route = routes[code]
        weight = sum(by_product[p].weight_grams * q for p, q in items)
        shipping = convert.charged(
            Money(route.shipping_cost(weight), network.tariff_currency), currency
        )
        customs = None
        duties = Money(ZERO, currency)
        rule = network.crosses_customs(code, destination)
        if rule is not None:
            value = sum(
                (
                    convert.exact(by_product[p].unit_price, rule.currency).amount * q
                    for p, q in items
                ),
                ZERO,
            )
            customs = assess(rule, value=value, weight_grams=weight, earlier_value=monthly_used)
            if rule.monthly:
                monthly_used += customs.customs_value
            if customs.duty > 0:
                duties = convert.charged(Money(customs.duty, rule.currency), currency)
        shipping_total += shipping.amount
        duties_total += duties.amount
        shipments.append(
            QuotedShipment(
                warehouse=code,
                items=sorted(items),
                route=route,
                eta=route.eta(now, destination),
                weight_grams=weight,
                shipping=shipping,
                duties=duties,
                customs=customs,
            )
        )
    return Quote(
        currency=currency,
        destination=destination,
        lines=lines,
        shipments=shipments,
        subtotal=Money(subtotal, currency),
        shipping=Money(shipping_total, currency),
        duties=Money(duties_total, currency),
        total=Money(subtotal + shipping_total + duties_total, currency),
        rates=sorted(convert.used.values(), key=lambda r: (r.base, r.quote)),
        allocation=allocation,
    )
