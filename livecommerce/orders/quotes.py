"""Landed cost: item prices, shipping, duties and delivery dates for a basket.

``build_quote`` is pure: it takes the basket, a stock snapshot, the network, the rate book
and the recipient's earlier imports, and returns every figure with the rates it used. The
order service calls the same function, so an order is always charged what a quote shows.

Customs: a parcel that leaves one customs union for another is assessed under the rule in
force on the day it is expected at the border (``Route.border_date``). A destination or day
with no rule, or goods the rule excludes, is ``NoCustomsRule`` (a 422), never a silent 0.
Under an e-commerce rule the duty-free threshold applies to the purchase: the customs value
of all of the quote's parcels assessed under that rule together.

Rounding: every amount the buyer pays (unit price, shipping, and per shipment the duty and
the import VAT, each on its own) is converted once and rounded to the currency's display step
(whole tenge and soʻm), so the figures shown, and the ``customs`` breakdown, add up exactly to
the total charged.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from livecommerce.i18n.money import Money
from livecommerce.logistics.allocation import allocate
from livecommerce.logistics.customs import (
    Charge,
    CustomsRule,
    DutyAssessment,
    NoCustomsRule,
    VatRate,
    assess,
)
from livecommerce.logistics.network import Destination, Network, Route
from livecommerce.orders.snapshots import (
    AssessmentSnapshot,
    ChargeSnapshot,
    DestinationSnapshot,
    LineSnapshot,
    QuoteSnapshot,
    RateSnapshot,
    RoutePlan,
    ShipmentItem,
    ShipmentSnapshot,
)
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
    hs_code: str = ""


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
    duties: Money  # duty + import VAT, each converted and rounded on its own
    customs: DutyAssessment | None
    border_date: date | None = None

    def snapshot(self) -> ShipmentSnapshot:
        """The parcel as kept on the order (leg places keep every name)."""
        plan = RoutePlan.of(self.route, eta=self.eta, border_date=self.border_date)
        return ShipmentSnapshot(
            **dict(plan),
            warehouse=self.warehouse,
            items=[ShipmentItem(product_id=p, quantity=q) for p, q in self.items],
            weight_grams=self.weight_grams,
            shipping=_amount(self.shipping),
            duties=_amount(self.duties),
            customs=AssessmentSnapshot.of(self.customs) if self.customs else None,
        )


@dataclass(frozen=True)
class QuotedCharge:
    """One duty or VAT of one parcel: as assessed (rule's currency) and as charged."""

    warehouse: str
    charge: Charge
    assessment: DutyAssessment
    charged: Money  # in the buyer's currency, rounded

    def snapshot(self) -> ChargeSnapshot:
        c, a = self.charge, self.assessment
        return ChargeSnapshot(
            warehouse=self.warehouse,
            type=c.type,
            rule=c.rule,
            legal_basis=c.legal_basis,
            border_date=a.border_date,
            currency=a.currency,
            base=c.base,
            rate=c.rate,
            basis=c.basis,
            minimum=c.minimum,
            allowance=a.allowance,
            assessed=c.amount,
            charged=_amount(self.charged),
        )


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
    customs: list[QuotedCharge] = field(default_factory=list)  # adds up to ``duties``
    # How the destination's country can be delivered to; ``destination.delivery`` is the one.
    deliveries: tuple[str, ...] = ("courier",)

    @property
    def declared(self) -> tuple[Decimal, str | None]:
        """Customs value of the parcels that cross a border, in the rule's currency."""
        assessed = [s.customs for s in self.shipments if s.customs is not None]
        if not assessed:
            return ZERO, None
        return sum((a.customs_value for a in assessed), ZERO), assessed[0].currency

    def snapshot(self) -> QuoteSnapshot:
        """The quote as kept on the order (``Order.quote``) and rendered by the API."""
        return QuoteSnapshot(
            currency=self.currency,
            destination=DestinationSnapshot(
                country=self.destination.country,
                city=dict(self.destination.city.names),
                city_key=self.destination.city.key,
            ),
            items=[
                LineSnapshot(
                    product_id=line.product_id,
                    title=dict(line.title),
                    quantity=line.quantity,
                    unit_price=_amount(line.unit_price),
                    line_total=_amount(line.line_total),
                    flash_sale_id=line.flash_sale_id,
                )
                for line in self.lines
            ],
            subtotal=_amount(self.subtotal),
            shipping=_amount(self.shipping),
            duties=_amount(self.duties),
            customs=[c.snapshot() for c in self.customs],
            total=_amount(self.total),
            shipments=[s.snapshot() for s in self.shipments],
            rates=[
                RateSnapshot(
                    base=r.base, quote=r.quote, rate=r.rate, source=r.source, as_of=r.as_of
                )
                for r in self.rates
            ],
            delivery=self.destination.delivery,
            deliveries=list(self.deliveries),
        )


def _amount(money: Money) -> Decimal:
    """What the buyer pays, with the currency's number of decimals (``"12990.00"``)."""
    return Decimal(money.amount_str())


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


def charge(
    convert: Callable[[Money, str], Money], assessment: DutyAssessment, currency: str
) -> tuple[Money, Money]:
    """The duty and the import VAT in ``currency``, each converted and rounded on its own
    (so a breakdown adds up to what is charged); nothing owed needs no rate."""

    def one(amount: Decimal) -> Money:
        if amount <= 0:
            return Money(ZERO, currency)
        return convert(Money(amount, assessment.currency), currency)

    return one(assessment.duty), one(assessment.vat)


@dataclass
class _Parcel:
    code: str
    route: Route
    items: list[tuple[int, int]]
    weight: int
    shipping: Money
    border_date: date | None = None
    rule: CustomsRule | None = None
    vat: VatRate | None = None
    value: Decimal = ZERO


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
    under a monthly allowance (in that rule's currency). ``now`` is the moment of the
    order: it sets the ETAs and the border dates, so the customs rule in force. Raises
    ``Shortage`` when the warehouses together hold too little of a line, and
    ``NoCustomsRule`` when a parcel cannot be assessed.
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

    # Pass 1: route, weigh and price every parcel, and find the rule each is assessed under.
    parcels: list[_Parcel] = []
    for code, _ in ranked:
        items = per_warehouse.get(code)
        if not items:
            continue
        route = routes[code]
        weight = sum(by_product[p].weight_grams * q for p, q in items)
        shipping = convert.charged(
            Money(route.shipping_cost(weight), network.tariff_currency), currency
        )
        parcel = _Parcel(code, route, items, weight, shipping)
        day = route.border_date(now, destination)
        if day is not None:  # a parcel that crosses a customs border (Route.border_days)
            rule = network.customs_for(destination, on=day)
            for p, _q in items:
                category = rule.excluded_category(by_product[p].hs_code)
                if category is not None:
                    raise NoCustomsRule(
                        country=destination.country,
                        on=day,
                        reason="excluded_goods",
                        union=rule.union,
                        category=category.key,
                        hs_code=by_product[p].hs_code,
                        product_id=p,
                    )
            parcel.border_date, parcel.rule = day, rule
            if rule.vat:
                parcel.vat = network.vat_for(destination.country, on=day)
            parcel.value = sum(
                (
                    convert.exact(by_product[p].unit_price, rule.currency).amount * q
                    for p, q in items
                ),
                ZERO,
            )
        parcels.append(parcel)
    # An e-commerce threshold applies per purchase: to all the parcels under that rule.
    purchase: dict[str, Decimal] = {}
    for parcel in parcels:
        if parcel.rule is not None and parcel.rule.kind == "ecommerce":
            purchase[parcel.rule.id] = purchase.get(parcel.rule.id, ZERO) + parcel.value

    # Pass 2: assess in ranking order, so the fastest parcel is assessed first under a
    # monthly allowance (it is the one that reaches customs first).
    shipments: list[QuotedShipment] = []
    charges: list[QuotedCharge] = []
    shipping_total = duties_total = ZERO
    monthly_used = earlier_imports
    for parcel in parcels:
        customs = None
        duties = Money(ZERO, currency)
        if parcel.rule is not None and parcel.border_date is not None:
            rule = parcel.rule
            customs = assess(
                rule,
                value=parcel.value,
                weight_grams=parcel.weight,
                border_date=parcel.border_date,
                vat=parcel.vat,
                earlier_value=monthly_used,
                purchase_value=purchase.get(rule.id),
            )
            if rule.monthly:
                monthly_used += customs.customs_value
            duty, vat = charge(convert.charged, customs, currency)
            duties = Money(duty.amount + vat.amount, currency)
            by_type = {"duty": duty, "vat": vat}
            charges.extend(
                QuotedCharge(parcel.code, c, customs, by_type[c.type]) for c in customs.charges
            )
        shipping_total += parcel.shipping.amount
        duties_total += duties.amount
        shipments.append(
            QuotedShipment(
                warehouse=parcel.code,
                items=sorted(parcel.items),
                route=parcel.route,
                eta=parcel.route.eta(now, destination),
                weight_grams=parcel.weight,
                shipping=parcel.shipping,
                duties=duties,
                customs=customs,
                border_date=parcel.border_date,
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
        customs=charges,
        deliveries=network.deliveries(destination.country),
    )
