"""Delivery estimates: what one unit of a product costs to deliver to a city, and when.

An estimate is a one-unit quote (``build_quote``, so the figures are the same as
``POST /quotes`` for that product and destination), made cheap by a per-process cache.

What a cached estimate depends on is read in **one** query per request (``read_inputs``):
the product's price and weight, the warehouses that hold at least one unit (a one-unit
allocation depends on nothing else about stock), and the newest exchange-rate row (rates
are append-only, so its id and creation time change whenever the rate book can). Those
values are part of the cache key, together with the destination, the currency and the
destination's local date (the ETA is a calendar date). So there is nothing to invalidate:
a price change, a stock change that moves the shipping warehouse or a new rate makes a new
key, in every API process at once, because every process reads the same database. Stock
changes that do not move the warehouse (an order taking one of many units) keep the entry.

The only personal part is the Uzbek monthly allowance: a signed-in buyer who already
imported this month has less of it left. That buyer's figure re-assesses the cached
customs value against their earlier imports (one more query), never a whole quote.

A viewer in a room asks for its figure over the room's socket (``EstimateDesk``): the
requests that arrive within a few milliseconds of each other, as after a pin, are answered
together, with one query per product and one of earlier imports per destination country
for all the signed-in buyers among them.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import unicodedata
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal
from functools import partial
from typing import Any, Protocol

from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from livecommerce.catalog.models import Product
from livecommerce.catalog.service import ProductNotFound
from livecommerce.db import session_scope
from livecommerce.errors import AppError, ServiceUnavailable, ValidationFailed
from livecommerce.events import ServerEvent
from livecommerce.i18n.money import Money, supported_currencies
from livecommerce.inventory.models import Stock
from livecommerce.logistics.allocation import Shortage
from livecommerce.logistics.customs import CustomsRule, DutyAssessment, NoCustomsRule, assess
from livecommerce.logistics.network import Destination, Network
from livecommerce.orders.quotes import BasketLine, build_quote, charge
from livecommerce.orders.schemas import EstimateOut
from livecommerce.orders.service import (
    OutOfStock,
    earlier_imports,
    earlier_imports_of,
    out_of_stock,
)
from livecommerce.rates.service import (
    RateBook,
    RateBookCache,
    RateQuote,
    RatesVersion,
    RateUnavailable,
    rates_version,
    version_columns,
)
from livecommerce.rooms import render
from livecommerce.schemas import MoneyOut
from livecommerce.sqltypes import utcnow

log = logging.getLogger(__name__)

ZERO = Decimal(0)
MAX_ENTRIES = 4096  # products x destinations x currencies a process keeps; LRU beyond


@dataclass(frozen=True, slots=True)
class Inputs:
    """Everything about the database an anonymous one-unit estimate depends on."""

    product_id: int
    price: Money
    weight_grams: int
    in_stock: frozenset[str]  # warehouses holding at least one unit
    rates_version: RatesVersion  # newest exchange-rate row: (id, created_at)
    hs_code: str = ""  # decides whether customs excludes the goods from a regime


@dataclass(frozen=True, slots=True)
class Estimate:
    """One unit to one destination, in one currency (language-neutral)."""

    product_id: int
    currency: str
    warehouse: str
    days: int
    eta: date
    unit_price: Money
    shipping: Money
    duties: Money
    total: Money
    customs: DutyAssessment | None
    rule: CustomsRule | None
    weight_grams: int
    rates: tuple[RateQuote, ...]
    # What was converted into ``currency``: the price, and the shipping and duty as the
    # tariff and the customs rule state them (unrounded), so other currencies follow exactly.
    price: Money
    shipping_source: Money
    personal: bool = False  # re-assessed against the signed-in buyer's earlier imports

    @property
    def monthly(self) -> bool:
        """Under a per-recipient monthly allowance: a signed-in buyer's figure may differ."""
        return self.rule is not None and self.rule.monthly


class EstimateCache:
    """Built estimates by input values (see the module docstring), and the rate book."""

    def __init__(self, max_entries: int = MAX_ENTRIES, books: RateBookCache | None = None) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[Hashable, Estimate] = OrderedDict()
        self.books = books or RateBookCache()
        self.hits = 0
        self.builds = 0

    def get(self, key: Hashable) -> Estimate | None:
        found = self._entries.get(key)
        if found is not None:
            self._entries.move_to_end(key)
            self.hits += 1
        return found

    def put(self, key: Hashable, estimate: Estimate) -> None:
        self.builds += 1
        self._entries[key] = estimate
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    async def book(self, session: AsyncSession, version: RatesVersion) -> RateBook:
        return await self.books.book(session, version)

    def clear(self) -> None:
        self._entries.clear()
        self.books.clear()


async def read_inputs(session: AsyncSession, product_id: int) -> Inputs:
    """The product, the warehouses that can ship one unit and the rates version: one query."""
    rows = (
        await session.execute(
            select(
                col(Product.price_minor),
                col(Product.price_currency),
                col(Product.weight_grams),
                col(Product.deleted_at),
                col(Stock.warehouse_code),
                *version_columns(),
                col(Product.hs_code),
            )
            .outerjoin(
                Stock,
                and_(col(Stock.product_id) == col(Product.id), col(Stock.quantity) > 0),
            )
            .where(col(Product.id) == product_id)
        )
    ).all()
    if not rows or rows[0][3] is not None:
        raise ProductNotFound(id=product_id)
    price_minor, price_currency, weight, _, _, rate_id, rate_created, hs_code = rows[0]
    return Inputs(
        product_id=product_id,
        price=Money.from_minor(price_minor, price_currency),
        weight_grams=weight,
        in_stock=frozenset(row[4] for row in rows if row[4] is not None),
        rates_version=rates_version(rate_id, rate_created),
        hs_code=hs_code or "",
    )


def _key(inputs: Inputs, destination: Destination, currency: str, today: date) -> Hashable:
    # An off-network city is routed through its country's hub: its figures do not depend on
    # the city's name, so all of them share one entry (and no one can fill the cache with
    # made-up city names).
    return (inputs, destination.country, destination.city.key, currency, today)


def _build(
    inputs: Inputs,
    *,
    network: Network,
    destination: Destination,
    book: RateBook,
    currency: str,
    now: datetime,
) -> Estimate:
    line = BasketLine(
        inputs.product_id, 1, inputs.price, inputs.weight_grams, {}, hs_code=inputs.hs_code
    )
    stock = {inputs.product_id: dict.fromkeys(inputs.in_stock, 1)}
    quote = build_quote(
        network=network,
        destination=destination,
        basket=[line],
        stock=stock,
        book=book,
        currency=currency,
        earlier_imports=ZERO,
        now=now,
    )
    [shipment] = quote.shipments  # one unit is one parcel
    shipping_source = Money(
        shipment.route.shipping_cost(shipment.weight_grams), network.tariff_currency
    )
    return Estimate(
        product_id=inputs.product_id,
        currency=currency,
        warehouse=shipment.warehouse,
        days=shipment.route.days,
        eta=shipment.eta,
        unit_price=quote.lines[0].unit_price,
        shipping=quote.shipping,
        duties=quote.duties,
        total=quote.total,
        customs=shipment.customs,
        rule=shipment.customs.rule if shipment.customs else None,
        weight_grams=inputs.weight_grams,
        rates=tuple(quote.rates),
        price=inputs.price,
        shipping_source=shipping_source,
    )


async def _anonymous(
    session: AsyncSession,
    cache: EstimateCache,
    inputs: Inputs,
    *,
    network: Network,
    destination: Destination,
    currency: str,
    now: datetime,
) -> Estimate:
    if not inputs.in_stock:
        raise out_of_stock(inputs.product_id, 1, 0)
    today = now.astimezone(destination.timezone).date()
    key = _key(inputs, destination, currency, today)
    found = cache.get(key)
    if found is None:
        book = await cache.book(session, inputs.rates_version)
        try:
            found = _build(
                inputs,
                network=network,
                destination=destination,
                book=book,
                currency=currency,
                now=now,
            )
        except Shortage as short:  # no warehouse with stock reaches this destination
            raise out_of_stock(short.product_id, short.requested, short.available) from None
        cache.put(key, found)
    return found


def _personal(estimate: Estimate, earlier: Decimal, book: RateBook) -> Estimate:
    """The estimate re-assessed for a recipient who already imported ``earlier`` this month,
    exactly as ``build_quote`` assesses the first parcel of a basket."""
    if estimate.customs is None or estimate.rule is None or earlier <= 0:
        return replace(estimate, personal=True)
    customs = assess(
        estimate.rule,
        value=estimate.customs.customs_value,
        weight_grams=estimate.weight_grams,
        border_date=estimate.customs.border_date,
        vat=estimate.customs.vat_rate,
        earlier_value=earlier,
    )
    used = {(r.base, r.quote): r for r in estimate.rates}

    def charged(money: Money, target: str) -> Money:
        converted, rates = book.convert(money, target)
        used.update({(r.base, r.quote): r for r in rates})
        return converted.rounded_for_display()

    duty, vat = charge(charged, customs, estimate.currency)
    duties = Money(duty.amount + vat.amount, estimate.currency)
    total = estimate.unit_price.amount + estimate.shipping.amount + duties.amount
    return replace(
        estimate,
        customs=customs,
        duties=duties,
        total=Money(total, estimate.currency),
        rates=tuple(sorted(used.values(), key=lambda r: (r.base, r.quote))),
        personal=True,
    )


@dataclass(frozen=True, slots=True)
class Answer:
    estimate: Estimate
    destination: Destination
    etag: str


async def delivery_estimate(
    *,
    session: AsyncSession,
    cache: EstimateCache,
    network: Network,
    product_id: int,
    country: str,
    city: str,
    currency: str,
    buyer_id: int | None,
    now: datetime | None = None,
) -> Answer:
    """The one-unit estimate; ``buyer_id`` only matters under a monthly allowance."""
    now = now or utcnow()
    destination = network.destination(country, city)
    inputs = await read_inputs(session, product_id)
    estimate = await _anonymous(
        session,
        cache,
        inputs,
        network=network,
        destination=destination,
        currency=currency,
        now=now,
    )
    earlier = ZERO
    if buyer_id is not None and estimate.monthly:
        earlier = await earlier_imports(
            session, network=network, destination=destination, key=None, buyer_id=buyer_id, now=now
        )
        estimate = _personal(estimate, earlier, await cache.book(session, inputs.rates_version))
    today = now.astimezone(destination.timezone).date()
    tag = repr((_key(inputs, destination, currency, today), estimate.personal, str(earlier)))
    return Answer(estimate, destination, hashlib.sha1(tag.encode()).hexdigest()[:20])


def render_estimate(estimate: Estimate, where: Destination, locale: str) -> dict[str, Any]:
    """EstimateOut's JSON in ``locale``."""
    e = estimate
    return EstimateOut(
        product_id=e.product_id,
        destination={
            "country": where.country,
            "city": where.city.name(locale),
            "city_key": where.city.key,
        },
        currency=e.currency,
        eta=e.eta,
        days=e.days,
        warehouse=e.warehouse,
        unit_price=MoneyOut.of(e.unit_price, locale),
        shipping=MoneyOut.of(e.shipping, locale),
        duties=MoneyOut.of(e.duties, locale),
        total=MoneyOut.of(e.total, locale),
        customs=e.customs.as_data() if e.customs else None,
        monthly_allowance=e.monthly,
        personal=e.personal,
        rates=[r.as_dict() for r in e.rates],
    ).model_dump(mode="json")


def render_answer(answer: Answer, locale: str) -> dict[str, Any]:
    return render_estimate(answer.estimate, answer.destination, locale)


# --- Estimates over the room's socket ------------------------------------------------------

DESK_WINDOW_S = 0.02  # how long a request waits for others to be answered with
DESK_BATCH = 256  # requests answered in one go (one session) at most
DESK_QUEUE = 10_000  # requests waiting at most; beyond, the newest are refused
REF_MAX = 64


@dataclass(slots=True)
class Asked:
    """One viewer's request: a product to a city, in the viewer's language and currency."""

    product_id: int
    country: str
    city: str
    locale: str
    currency: str
    buyer_id: int | None  # signed in: the figure is their own under a monthly allowance
    reply: Callable[[str], None]  # hands a frame to the viewer's connection
    ref: str | None = None


class Viewer(Protocol):
    """What the desk needs of a room's connection."""

    locale: str
    currency: str
    user_id: int | None

    def push(self, data: str) -> None: ...


def parse_request(data: dict[str, Any]) -> tuple[int, str, str, str | None]:
    """``{"product_id", "country", "city", "ref"?}`` as sent by a viewer; the same limits as
    the endpoint's parameters."""
    product_id, country, city, ref = (
        data.get("product_id"),
        data.get("country"),
        data.get("city"),
        data.get("ref"),
    )
    fields: dict[str, str] = {}
    if type(product_id) is not int or not 0 < product_id < 2**31:
        fields["product_id"] = "a product id"
    if not isinstance(country, str) or len(country) != 2:
        fields["country"] = "two letters"
    if not isinstance(city, str) or not 0 < len(city.strip()) <= 120:
        fields["city"] = "1 to 120 characters"
    if ref is not None and (not isinstance(ref, str) or len(ref) > REF_MAX):
        fields["ref"] = f"at most {REF_MAX} characters"
    if fields:
        raise ValidationFailed(details={"fields": fields})
    assert isinstance(product_id, int) and isinstance(country, str) and isinstance(city, str)
    return product_id, country, city, ref


def estimate_frame(ref: str | None, body: dict[str, Any]) -> str:
    """The answer, in the room's frame envelope (protocol.md), to this viewer only."""
    return render.frame(ServerEvent.ESTIMATE, {**body, "ref": ref})


def error_frame(locale: str, ref: str | None, error: AppError) -> str:
    """The endpoint's error object, localized, as the room's ``error`` frame."""
    return render.frame(ServerEvent.ERROR, {**error.body(locale)["error"], "ref": ref})


def busy_frame(asked: Asked) -> str:
    return error_frame(asked.locale, asked.ref, ServiceUnavailable(details={"estimates": "busy"}))


class EstimateDesk:
    """Answers viewers' estimate requests in batches (see the module docstring).

    ``ask`` never waits: the answer (an ``estimate`` frame, or an ``error`` frame with the
    endpoint's code) is handed to ``Asked.reply`` once its batch is done.
    """

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        cache: EstimateCache,
        network: Callable[[], Network],
        window_s: float = DESK_WINDOW_S,
        batch: int = DESK_BATCH,
        queue_max: int = DESK_QUEUE,
    ) -> None:
        self.sessions = sessions
        self.cache = cache
        self.network = network
        self.window_s = window_s
        self.batch = batch
        self.queue_max = queue_max
        self._waiting: list[Asked] = []
        self._task: asyncio.Task[None] | None = None
        self.batches = 0  # answered batches, for tests and figures

    def from_room(self, viewer: Viewer, data: dict[str, Any]) -> None:
        """A room message ``{"type": "estimate", "data": {...}}`` from ``viewer``."""
        ref = data.get("ref") if isinstance(data.get("ref"), str) else None
        try:
            product_id, country, city, ref = parse_request(data)
        except AppError as error:
            viewer.push(error_frame(viewer.locale, ref[:REF_MAX] if ref else None, error))
            return
        self.ask(
            Asked(
                product_id=product_id,
                country=country,
                city=city,
                locale=viewer.locale,
                currency=viewer.currency,
                buyer_id=viewer.user_id,
                reply=viewer.push,
                ref=ref,
            )
        )

    def ask(self, asked: Asked) -> None:
        if len(self._waiting) >= self.queue_max:
            asked.reply(busy_frame(asked))
            return
        self._waiting.append(asked)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="estimate-desk")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        await asyncio.sleep(self.window_s)
        while self._waiting:
            batch, self._waiting = self._waiting[: self.batch], self._waiting[self.batch :]
            try:
                await self._answer(batch)
            except Exception:
                log.exception("%d estimate requests could not be answered", len(batch))
                for asked in batch:
                    asked.reply(busy_frame(asked))

    async def _answer(self, batch: list[Asked], now: datetime | None = None) -> None:
        now = now or utcnow()
        network = self.network()
        async with session_scope(self.sessions, read_only=True) as session:
            inputs: dict[int, Inputs | AppError] = {}
            for product_id in {a.product_id for a in batch}:
                try:
                    inputs[product_id] = await read_inputs(session, product_id)
                except AppError as error:
                    inputs[product_id] = error
            # Anonymous figures first (cached); the signed-in buyers under a monthly
            # allowance are then re-assessed, one query per destination country.
            found: list[tuple[Asked, Destination, Estimate] | None] = []
            personal: dict[str, tuple[Destination, set[int]]] = {}
            for asked in batch:
                try:
                    got = inputs[asked.product_id]
                    if isinstance(got, AppError):
                        raise got
                    destination = network.destination(asked.country, asked.city)
                    estimate = await _anonymous(
                        session,
                        self.cache,
                        got,
                        network=network,
                        destination=destination,
                        currency=asked.currency,
                        now=now,
                    )
                except AppError as error:
                    asked.reply(error_frame(asked.locale, asked.ref, error))
                    found.append(None)
                    continue
                found.append((asked, destination, estimate))
                if asked.buyer_id is not None and estimate.monthly:
                    entry = personal.setdefault(destination.country, (destination, set()))
                    entry[1].add(asked.buyer_id)
            imported: dict[str, dict[int, Decimal]] = {}
            for country, (destination, buyers) in personal.items():
                imported[country] = await earlier_imports_of(
                    session, network=network, destination=destination, buyer_ids=buyers, now=now
                )
            for item in found:
                if item is None:
                    continue
                asked, destination, estimate = item
                if asked.buyer_id is not None and estimate.monthly:
                    earlier = imported[destination.country].get(asked.buyer_id, ZERO)
                    got = inputs[asked.product_id]
                    assert isinstance(got, Inputs)
                    book = await self.cache.book(session, got.rates_version)
                    estimate = _personal(estimate, earlier, book)
                asked.reply(
                    estimate_frame(asked.ref, render_estimate(estimate, destination, asked.locale))
                )
            # Counted once every answer is out, not after the read-only session has closed: a
            # viewer may already act on its answer while the connection is being released.
            self.batches += 1


# --- Estimates for a room -------------------------------------------------------------------


def _fold(text: str) -> str:
    # Same folding as the network's city lookup, so a client can match its typed city.
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def _figures(estimate: Estimate, book: RateBook, currency: str) -> dict[str, Money]:
    """The estimate's amounts in another currency, converted and rounded as ``build_quote``
    converts them (each from its own source amount, once)."""

    def charged(amount: Money, target: str = currency) -> Money:
        return book.convert(amount, target)[0].rounded_for_display()

    unit, shipping = charged(estimate.price), charged(estimate.shipping_source)
    duties = Money(ZERO, currency)
    if estimate.customs is not None:
        duty, vat = charge(charged, estimate.customs, currency)
        duties = Money(duty.amount + vat.amount, currency)
    total = Money(unit.amount + shipping.amount + duties.amount, currency)
    return {"unit_price": unit, "shipping": shipping, "duties": duties, "total": total}


def _marker(per_currency: dict[str, dict[str, Money]], base: str, field: str) -> dict[str, Any]:
    """One figure of the estimates in every currency, as a ``$money`` marker."""
    prices = {code: figures[field].amount_str() for code, figures in per_currency.items()}
    return {"$money": prices, "$base": base if base in prices else next(iter(prices))}


async def room_estimates(
    product_id: int,
    *,
    session: AsyncSession,
    cache: EstimateCache,
    network: Network,
    currencies: Sequence[str] | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """One-unit estimates to every city on the network, in every currency, as a pin carries
    them: money as ``$money`` markers (each viewer group renders its own currency), names as
    ``$t``, ``eta`` as an ISO date. The same figures as the endpoint (it warms its cache)."""
    now = now or utcnow()
    inputs = await read_inputs(session, product_id)
    if not inputs.in_stock:
        return {"out_of_stock": True, "destinations": []}
    codes = list(currencies or supported_currencies())
    base = inputs.price.currency
    book = await cache.book(session, inputs.rates_version)
    out = []
    for country, place, aliases in network.cities():
        destination = network.destination(country, place.key or "")
        try:
            # Routing and customs once per city; then only conversions per currency.
            first = await _anonymous(
                session,
                cache,
                inputs,
                network=network,
                destination=destination,
                currency=base,
                now=now,
            )
        except (RateUnavailable, OutOfStock, NoCustomsRule):
            continue  # a city the product cannot be quoted to is left out of the pin
        per_currency: dict[str, dict[str, Money]] = {}
        for code in codes:
            with contextlib.suppress(RateUnavailable):
                per_currency[code] = _figures(first, book, code)
        if not per_currency:
            continue
        marker = partial(_marker, per_currency, base)
        out.append(
            {
                "country": country,
                "city_key": place.key,
                "city": render.text(dict(place.names)),
                "match": sorted({_fold(name) for name in (*place.names.values(), *aliases)}),
                "warehouse": first.warehouse,
                "days": first.days,
                "eta": first.eta.isoformat(),
                "unit_price": marker("unit_price"),
                "shipping": marker("shipping"),
                "duties": marker("duties"),
                "total": marker("total"),
                "monthly_allowance": first.monthly,
            }
        )
    return {"out_of_stock": False, "destinations": out}
