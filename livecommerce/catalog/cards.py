"""A product as room events carry it: title in every language, price in every currency."""

from __future__ import annotations

from typing import Any

from livecommerce.catalog.models import Product
from livecommerce.i18n.money import Money
from livecommerce.rates.service import RateBook, RateUnavailable
from livecommerce.rooms import render


def product_card(product: Product, book: RateBook) -> dict[str, Any]:
    return {
        "id": product.id,
        "sku": product.sku,
        "title": render.text(product.title or {"en": product.sku}),
        "price": render.money(
            Money.from_minor(product.price_minor, product.price_currency),
            book,
            unavailable=RateUnavailable,
        ),
        "image_url": product.image_urls[0] if product.image_urls else None,
    }
