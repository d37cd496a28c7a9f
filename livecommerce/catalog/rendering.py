"""Products, stock and warehouses as the API shows them, in the request's locale and
currency (shapes in ``catalog/schemas.py``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from livecommerce.accounts.models import Role, User
from livecommerce.catalog.importer import ROW_MESSAGES, ImportResult
from livecommerce.catalog.models import Product
from livecommerce.catalog.schemas import (
    ImportReport,
    ImportRowError,
    ProductOut,
    StockLevel,
    Translations,
    WarehouseOut,
)
from livecommerce.catalog.service import caller_merchant_id
from livecommerce.errors import field_message
from livecommerce.i18n.locales import pick_translation
from livecommerce.i18n.messages import translate_plural
from livecommerce.i18n.money import Money
from livecommerce.inventory.models import Warehouse
from livecommerce.rates.schemas import RateOut
from livecommerce.rates.service import RateBook, RateQuote
from livecommerce.schemas import MoneyOut


@dataclass
class Presenter:
    """Renders products in one request's locale and currency, collecting the rates it used."""

    locale: str
    currency: str
    book: RateBook
    owner_merchant_id: int | None
    is_admin: bool
    rates_used: dict[tuple[str, str], RateQuote]

    def display_price(self, product: Product) -> Money:
        base = Money.from_minor(product.price_minor, product.price_currency)
        converted, used = self.book.convert(base, self.currency)
        for rate in used:
            self.rates_used[(rate.base, rate.quote)] = rate
        return converted.rounded_for_display()

    def product(self, product: Product, stock: Mapping[str, int]) -> ProductOut:
        assert product.id is not None
        out = ProductOut(
            id=product.id,
            merchant_id=product.merchant_id,
            sku=product.sku,
            title=pick_translation(product.title, self.locale) or product.sku,
            description=pick_translation(product.description, self.locale) or "",
            price=MoneyOut.of(self.display_price(product), self.locale),
            weight_grams=product.weight_grams,
            hs_code=product.hs_code,
            origin_country=product.origin_country,
            image_urls=list(product.image_urls),
            available=any(qty > 0 for qty in stock.values()),
            created_at=product.created_at,
            updated_at=product.updated_at,
        )
        if self.is_admin or product.merchant_id == self.owner_merchant_id:
            base = Money.from_minor(product.price_minor, product.price_currency)
            out.base_price = MoneyOut.of(base, self.locale)
            out.translations = Translations(
                title=dict(product.title), description=dict(product.description)
            )
            out.stock = [
                StockLevel(warehouse=code, quantity=qty) for code, qty in sorted(stock.items())
            ]
        return out

    def rates(self) -> list[RateOut]:
        return [RateOut.of(rate) for _, rate in sorted(self.rates_used.items())]


async def presenter_for(
    *, session: AsyncSession, user: User | None, locale: str, currency: str, book: RateBook
) -> Presenter:
    return Presenter(
        locale=locale,
        currency=currency,
        book=book,
        owner_merchant_id=await caller_merchant_id(session=session, user=user),
        is_admin=user is not None and user.role == Role.ADMIN,
        rates_used={},
    )


def render_stock(levels: Mapping[str, int]) -> list[StockLevel]:
    return [StockLevel(warehouse=code, quantity=qty) for code, qty in sorted(levels.items())]


def render_warehouse(warehouse: Warehouse, locale: str) -> WarehouseOut:
    return WarehouseOut(
        code=warehouse.code,
        name=pick_translation(warehouse.name, locale) or warehouse.code,
        country=warehouse.country,
        currency=warehouse.currency,
        timezone=warehouse.timezone,
    )


def render_import_report(result: ImportResult, locale: str) -> ImportReport:
    errors = []
    for err in result.errors:
        # Validation failures read like API field errors; the importer's own codes have theirs.
        template = None if err.validation_type else ROW_MESSAGES[err.code]
        message = field_message(err.code, err.params, locale, template)
        errors.append(
            ImportRowError(
                row=err.row, sku=err.sku, code=err.code, field=err.column, message=message
            )
        )
    imported = result.created + result.updated
    summary = "; ".join(
        [
            translate_plural(
                locale, "%(num)d product imported", "%(num)d products imported", imported
            ),
            translate_plural(
                locale, "%(num)d row rejected", "%(num)d rows rejected", result.failed
            ),
        ]
    )
    return ImportReport(
        import_id=result.import_id,
        rows_total=result.rows_total,
        created=result.created,
        updated=result.updated,
        failed=result.failed,
        errors=errors,
        errors_truncated=result.errors_truncated,
        ignored_columns=result.ignored_columns,
        summary=summary,
    )
