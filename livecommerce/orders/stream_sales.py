"""Stream sales figures, rolled up by a periodic worker job rather than per request.

For each stream that is live or ended recently: orders and buyers, GMV per currency (what
buyers were charged for orders paid or sent cash on delivery; unpaid, cancelled and refunded
orders excluded), peak and unique viewers, and
conversion by locale (buyers who ordered in a language / unique viewers who watched in it).
Orders compute them (streams read no orders); ``streams/rollup.py`` stores the rollup and
the stream stats endpoint shows the latest with its time.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from livecommerce.i18n.money import Money
from livecommerce.orders.models import Order, OrderStatus
from livecommerce.streams.models import Stream, StreamViewer

# Not (or no longer) a sale: unpaid card orders count once paid, at the next rollup.
NOT_SALES = (OrderStatus.PENDING_PAYMENT, OrderStatus.CANCELLED, OrderStatus.REFUNDED)
RECENT = timedelta(days=1)


async def compute(session: AsyncSession, stream: Stream) -> dict[str, Any]:
    assert stream.id is not None
    sales = (col(Order.stream_id) == stream.id, col(Order.status).not_in(NOT_SALES))
    gmv_rows = await session.execute(
        select(col(Order.currency), func.sum(col(Order.total_minor)), func.count())
        .where(*sales)
        .group_by(col(Order.currency))
        .order_by(col(Order.currency))
    )
    gmv = []
    orders = 0
    for currency, total_minor, count in gmv_rows:
        gmv.append(
            {
                "currency": currency,
                "amount": Money.from_minor(int(total_minor or 0), currency).amount_str(),
                "orders": int(count),
            }
        )
        orders += int(count)
    buyers_by_locale: dict[str, int] = {
        locale: int(count)
        for locale, count in await session.execute(
            select(col(Order.locale), func.count(func.distinct(col(Order.buyer_id))))
            .where(*sales)
            .group_by(col(Order.locale))
        )
    }
    buyers = int(
        await session.scalar(select(func.count(func.distinct(col(Order.buyer_id)))).where(*sales))
        or 0
    )
    viewers_by_locale: dict[str, int] = {
        locale: int(count)
        for locale, count in await session.execute(
            select(col(StreamViewer.locale), func.count())
            .where(col(StreamViewer.stream_id) == stream.id)
            .group_by(col(StreamViewer.locale))
        )
    }
    locales = sorted(set(viewers_by_locale) | set(buyers_by_locale))
    by_locale = []
    for locale in locales:
        viewers = int(viewers_by_locale.get(locale, 0))
        bought = int(buyers_by_locale.get(locale, 0))
        by_locale.append(
            {
                "locale": locale,
                "viewers": viewers,
                "buyers": bought,
                # A buyer may order without watching in that language (an app set to
                # another one): the rate is capped rather than shown above 100 %.
                "conversion": round(min(bought / viewers, 1.0), 4) if viewers else None,
            }
        )
    unique = sum(int(v) for v in viewers_by_locale.values())
    return {
        "orders": orders,
        "buyers": buyers,
        "gmv": gmv,
        "peak_viewers": stream.peak_viewers,
        "unique_viewers": unique,
        "conversion": round(min(buyers / unique, 1.0), 4) if unique else None,
        "by_locale": by_locale,
    }
