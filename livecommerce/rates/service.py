"""Currency conversion with the latest published rates, stating which rates were used."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from livecommerce.errors import ServiceUnavailable, ValidationFailed
from livecommerce.i18n.messages import N_
from livecommerce.i18n.money import Money, is_supported_currency
from livecommerce.rates.models import ExchangeRate

# Cross rates go through these currencies when no direct pair is published.
PIVOTS = ("EUR", "USD")


class RateUnavailable(ServiceUnavailable):
    code = "rate_unavailable"
    message = N_("No exchange rate from %(source)s to %(target)s is available.")


@dataclass(frozen=True)
class RateQuote:
    base: str
    quote: str
    rate: Decimal
    source: str
    as_of: datetime

    def as_dict(self) -> dict[str, str]:
        return {
            "base": self.base,
            "quote": self.quote,
            "rate": str(self.rate),
            "source": self.source,
            "as_of": self.as_of.isoformat(),
        }


class RateBook:
    """The newest rate of every pair, loaded once per request."""

    def __init__(self, rates: Iterable[RateQuote]) -> None:
        self._rates = {(r.base, r.quote): r for r in rates}

    def all(self) -> list[RateQuote]:
        return sorted(self._rates.values(), key=lambda r: (r.base, r.quote))

    def _factor(self, source: str, target: str) -> tuple[Decimal, list[RateQuote]] | None:
        if source == target:
            return Decimal(1), []
        direct = self._rates.get((source, target))
        if direct:
            return direct.rate, [direct]
        inverse = self._rates.get((target, source))
        if inverse:
            return Decimal(1) / inverse.rate, [inverse]
        return None

    def convert(self, money: Money, target: str) -> tuple[Money, list[RateQuote]]:
        """``money`` in ``target`` (unrounded) and the rates it took."""
        found = self._factor(money.currency, target)
        if found is None:
            for pivot in PIVOTS:
                first = self._factor(money.currency, pivot)
                second = self._factor(pivot, target)
                if first and second:
                    found = (first[0] * second[0], first[1] + second[1])
                    break
        if found is None:
            raise RateUnavailable(source=money.currency, target=target)
        factor, used = found
        return Money(money.amount * factor, target), used


async def load_rate_book(session: AsyncSession) -> RateBook:
    newest = (
        select(
            col(ExchangeRate.base),
            col(ExchangeRate.quote),
            func.max(col(ExchangeRate.as_of)).label("as_of"),
        )
        .group_by(col(ExchangeRate.base), col(ExchangeRate.quote))
        .subquery()
    )
    # Two rows for one pair and instant would both match; the larger id (newer row) wins below.
    rows = await session.execute(
        select(ExchangeRate)
        .join(
            newest,
            (col(ExchangeRate.base) == newest.c.base)
            & (col(ExchangeRate.quote) == newest.c.quote)
            & (col(ExchangeRate.as_of) == newest.c.as_of),
        )
        .order_by(col(ExchangeRate.id))
    )
    return RateBook(RateQuote(r.base, r.quote, r.rate, r.source, r.as_of) for r in rows.scalars())


RatesVersion = tuple[int, str]


def version_columns() -> tuple[Any, Any]:
    """The newest rate row's id and creation time, as two scalar subqueries to add to a
    query the caller runs anyway. Rates are append-only, so the pair changes whenever the
    rate book can."""
    newest = select(col(ExchangeRate.id), col(ExchangeRate.created_at)).order_by(
        col(ExchangeRate.id).desc()
    )
    return (
        newest.with_only_columns(col(ExchangeRate.id)).limit(1).scalar_subquery(),
        newest.with_only_columns(col(ExchangeRate.created_at)).limit(1).scalar_subquery(),
    )


def rates_version(rate_id: int | None, created_at: Any) -> RatesVersion:
    return (int(rate_id or 0), str(created_at))


class RateBookCache:
    """The rate book of one process, loaded again only when the rates version (see
    ``version_columns``) has changed: every process sees a new rate on its next request."""

    def __init__(self) -> None:
        self._held: tuple[RatesVersion, RateBook] | None = None

    async def book(self, session: AsyncSession, version: RatesVersion) -> RateBook:
        held = self._held
        if held is None or held[0] != version:
            held = (version, await load_rate_book(session))
            self._held = held
        return held[1]

    def clear(self) -> None:
        self._held = None


async def add_rate(
    *, session: AsyncSession, base: str, quote: str, rate: Decimal, source: str, as_of: datetime
) -> ExchangeRate:
    for code in (base, quote):
        if not is_supported_currency(code):
            raise ValidationFailed(details={"currency": code})
    if base == quote or rate <= 0:
        raise ValidationFailed(details={"rate": str(rate)})
    row = ExchangeRate(base=base, quote=quote, rate=rate, source=source, as_of=as_of)
    session.add(row)
    await session.flush()
    return row


async def list_latest(*, session: AsyncSession) -> list[RateQuote]:
    return (await load_rate_book(session)).all()
