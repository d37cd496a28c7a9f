"""Catalog rules: ownership, SKUs, translations and search (presented by ``rendering.py``)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, func
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import defer
from sqlmodel import col, select

from livecommerce.accounts import service as accounts
from livecommerce.accounts.models import Merchant, Role, User
from livecommerce.catalog.models import Product
from livecommerce.catalog.schemas import (
    ProductCreate,
    ProductUpdate,
)
from livecommerce.errors import Conflict, Forbidden, NotFound, ValidationFailed
from livecommerce.i18n.messages import N_, translate
from livecommerce.inventory import service as inventory
from livecommerce.sqltypes import utcnow

MAX_PAGE_SIZE = 100
# Counting stops here: an exact count of a large catalog costs a scan of every row on every
# page view, and nobody pages through more than this. Pages report `total_exact: false`.
COUNT_CAP = 10_000


class ProductNotFound(NotFound):
    """No such product, a deleted one, or one the caller may not see (never "forbidden": that
    would tell it exists). Raised with ``id`` where the request names several products (a
    basket, a stream's pin), the message then says which one."""

    code = "product_not_found"
    message = N_("Product not found.")
    message_naming_it = N_("Product %(id)s does not exist.")

    def localized(self, locale: str) -> str:
        if "id" not in self.params:
            return super().localized(locale)
        return translate(locale, self.message_naming_it, **self.params)


class TitleRequired(ValidationFailed):
    code = "translation_required"
    message = N_("Give the text in at least one language.")


class SkuTaken(Conflict):
    code = "sku_taken"
    message = N_("You already have a product with SKU %(sku)s.")


def build_search_text(sku: str, title: Mapping[str, str], description: Mapping[str, str]) -> str:
    """Case-folded text of every language, so one substring match finds any of them."""
    parts = [sku, *title.values(), *description.values()]
    return "\n".join(parts).casefold()


def merge_translations(
    current: Mapping[str, str], patch: Mapping[str, str | None]
) -> dict[str, str]:
    merged = dict(current)
    for locale, text in patch.items():
        if text is None:
            merged.pop(locale, None)
        else:
            merged[locale] = text
    return merged


async def create_product(
    *, session: AsyncSession, merchant: Merchant, data: ProductCreate
) -> Product:
    existing = await session.scalar(
        select(Product).where(col(Product.merchant_id) == merchant.id, col(Product.sku) == data.sku)
    )
    if existing is not None and existing.deleted_at is None:
        raise SkuTaken(sku=data.sku)
    # A deleted product's SKU is free again: the row is brought back with the new data, so
    # the (merchant, sku) key stays unique and old orders keep pointing at it.
    product = existing or Product(
        merchant_id=merchant.id or 0,
        sku=data.sku,
        title={},
        price_minor=0,
        price_currency=data.price.currency,
        weight_grams=data.weight_grams,
        hs_code=data.hs_code,
        origin_country=data.origin_country,
    )
    price = data.price.to_money()
    product.title = data.title
    product.description = data.description
    product.price_minor = price.to_minor()
    product.price_currency = price.currency
    product.weight_grams = data.weight_grams
    product.hs_code = data.hs_code
    product.origin_country = data.origin_country
    product.image_urls = data.image_urls
    product.deleted_at = None
    return await _save(session, product)


async def _save(session: AsyncSession, product: Product) -> Product:
    product.search_text = build_search_text(product.sku, product.title, product.description)
    product.updated_at = utcnow()
    session.add(product)
    try:
        # The unique (merchant, sku) index settles a race between two writers of one SKU.
        await session.flush()
    except IntegrityError as exc:
        raise SkuTaken(sku=product.sku) from exc
    return product


async def get_visible_product(
    *, session: AsyncSession, user: User | None, product_id: int
) -> Product:
    """A product the caller may read: merchants see only their own, others see all live ones."""
    product = await session.get(Product, product_id)
    if product is None or product.deleted_at is not None:
        raise ProductNotFound()
    # Another merchant's product is "not found" rather than "forbidden": no leak that it exists.
    if (
        user is not None
        and user.role == Role.MERCHANT
        and product.merchant_id != await caller_merchant_id(session=session, user=user)
    ):
        raise ProductNotFound()
    return product


async def get_writable_product(*, session: AsyncSession, user: User, product_id: int) -> Product:
    """A product the caller may change: its merchant's, or any for an admin."""
    if user.role not in (Role.MERCHANT, Role.ADMIN):
        raise Forbidden()
    return await get_visible_product(session=session, user=user, product_id=product_id)


def is_owner_view(user: User | None, product: Product, merchant_id: int | None) -> bool:
    if user is None:
        return False
    return user.role == Role.ADMIN or (
        merchant_id is not None and product.merchant_id == merchant_id
    )


async def caller_merchant_id(*, session: AsyncSession, user: User | None) -> int | None:
    """The caller's merchant id (merchants only), looked up once per request's session."""
    if user is None or user.role != Role.MERCHANT:
        return None
    key = ("merchant_id", user.id)
    if key not in session.info:
        merchant = await accounts.merchant_of(session=session, user=user)
        session.info[key] = merchant.id if merchant else None
    merchant_id: int | None = session.info[key]
    return merchant_id


async def update_product(
    *, session: AsyncSession, product: Product, data: ProductUpdate
) -> Product:
    if data.sku is not None and data.sku != product.sku:
        clash = await session.scalar(
            select(col(Product.id)).where(
                col(Product.merchant_id) == product.merchant_id, col(Product.sku) == data.sku
            )
        )
        if clash is not None:
            raise SkuTaken(sku=data.sku)
        product.sku = data.sku
    if data.title is not None:
        title = merge_translations(product.title, data.title)
        if not title:
            raise TitleRequired(details={"field": "title"})
        product.title = title
    if data.description is not None:
        product.description = merge_translations(product.description, data.description)
    if data.price is not None:
        price = data.price.to_money()
        product.price_minor, product.price_currency = price.to_minor(), price.currency
    for field in ("weight_grams", "hs_code", "origin_country", "image_urls"):
        value = getattr(data, field)
        if value is not None:
            setattr(product, field, value)
    return await _save(session, product)


async def delete_product(*, session: AsyncSession, product: Product) -> None:
    product.deleted_at = utcnow()
    session.add(product)
    await session.flush()
    # A deleted product sells nothing; should its SKU come back, it comes back with no stock.
    assert product.id is not None
    await inventory.clear_stock(session=session, product_id=product.id)


async def set_stock(
    *, session: AsyncSession, product: Product, warehouse_code: str, quantity: int
) -> dict[str, int]:
    warehouse = await inventory.require_warehouse(session=session, code=warehouse_code)
    assert product.id is not None
    await inventory.set_stock_levels(
        session=session, levels=[(product.id, warehouse.code, quantity)]
    )
    return (await inventory.stock_by_product(session=session, product_ids=[product.id])).get(
        product.id, {}
    )


def _like_pattern(term: str) -> str:
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


@dataclass(frozen=True)
class ProductQuery:
    q: str | None
    merchant_id: int | None
    page: int
    page_size: int


async def list_products(
    *, session: AsyncSession, user: User | None, query: ProductQuery
) -> tuple[list[Product], int]:
    conditions: list[ColumnElement[bool]] = [col(Product.deleted_at).is_(None)]
    own = await caller_merchant_id(session=session, user=user)
    if user is not None and user.role == Role.MERCHANT:
        if query.merchant_id is not None and query.merchant_id != own:
            raise Forbidden()
        conditions.append(col(Product.merchant_id) == own)
    elif query.merchant_id is not None:
        conditions.append(col(Product.merchant_id) == query.merchant_id)
    if query.q:
        for term in query.q.casefold().split()[:8]:
            conditions.append(col(Product.search_text).like(_like_pattern(term), escape="\\"))
    capped = select(col(Product.id)).where(*conditions).limit(COUNT_CAP + 1).subquery()
    total = await session.scalar(select(func.count()).select_from(capped)) or 0
    rows = await session.scalars(
        select(Product)
        .options(defer(Product.search_text))  # type: ignore[arg-type]
        .where(*conditions)
        .order_by(col(Product.id).desc())
        .offset((query.page - 1) * query.page_size)
        .limit(query.page_size)
    )
    return list(rows), int(total)


def page_count(total: int, page_size: int) -> int:
    return max(1, math.ceil(total / page_size))


async def stock_for(
    *, session: AsyncSession, products: Sequence[Product]
) -> dict[int, dict[str, int]]:
    return await inventory.stock_by_product(
        session=session, product_ids=[p.id for p in products if p.id is not None]
    )


async def merchant_for_write(*, session: AsyncSession, user: User) -> Merchant:
    merchant = await accounts.merchant_of(session=session, user=user)
    if merchant is None:
        raise Forbidden()
    return merchant
