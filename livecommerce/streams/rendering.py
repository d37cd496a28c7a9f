"""Streams as the API shows them, in the request's locale and currency (shapes in
``streams/schemas.py``)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from pydantic import TypeAdapter

from livecommerce.i18n.money import Money
from livecommerce.rooms.render import render
from livecommerce.schemas import MoneyOut
from livecommerce.streams.models import Stream, StreamStatsRollup
from livecommerce.streams.schemas import (
    FlashSaleOut,
    LocaleConversion,
    ProductCard,
    StreamOut,
    StreamSales,
)

_card = TypeAdapter(ProductCard)
_sale = TypeAdapter(FlashSaleOut)


def render_stream(
    stream: Stream, room_state: dict[str, Any], locale: str, currency: str
) -> StreamOut:
    """The stream without its stats, from its language-neutral ``room_state``."""
    assert stream.id is not None
    state = render(room_state, locale, currency)
    info: dict[str, Any] = state["stream"]
    return StreamOut(
        id=stream.id,
        merchant_id=stream.merchant_id,
        host_id=stream.host_id,
        host_name=info["host_name"],
        title=info["title"],
        languages=list(stream.languages),
        status=stream.status,
        scheduled_at=stream.scheduled_at,
        started_at=stream.started_at,
        ended_at=stream.ended_at,
        playback_url=stream.playback_url,
        pinned_product=_card.validate_python(state["pinned_product"])
        if state["pinned_product"]
        else None,
        flash_sale=_sale.validate_python(state["flash_sale"]) if state["flash_sale"] else None,
    )


def render_sales(rolled: StreamStatsRollup, locale: str) -> StreamSales:
    """The stream's sales figures as last rolled up."""
    figures = rolled.data
    return StreamSales(
        orders=figures["orders"],
        buyers=figures["buyers"],
        gmv=[
            MoneyOut.of(Money(Decimal(g["amount"]), g["currency"]), locale) for g in figures["gmv"]
        ],
        unique_viewers=figures["unique_viewers"],
        conversion=figures["conversion"],
        by_locale=[LocaleConversion(**row) for row in figures["by_locale"]],
        rolled_up_at=rolled.rolled_up_at,
    )


def render_flash_sale(card: dict[str, Any], locale: str, currency: str) -> FlashSaleOut:
    """A flash sale's language-neutral card (``flashsales.card``) for one request."""
    return _sale.validate_python(render(card, locale, currency))
