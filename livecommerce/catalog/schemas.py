from __future__ import annotations

import re
from datetime import datetime
from functools import cache
from typing import Annotated, Any

from babel import Locale
from pydantic import AfterValidator, BaseModel, BeforeValidator, Field
from pydantic_core import PydanticCustomError

from livecommerce.rates.schemas import RateOut
from livecommerce.schemas import MoneyIn, MoneyOut, StrictModel, translatable

TITLE_MAX = 200
DESCRIPTION_MAX = 5000
MAX_WEIGHT_GRAMS = 1_000_000  # one tonne: beyond a parcel, surely a typo
MAX_IMAGES = 10
SKU_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/\-]{0,63}$")
# CLDR territories that are not countries goods can originate from.
_NOT_COUNTRIES = {"EU", "EZ", "UN", "QO", "ZZ", "XA", "XB"}


@cache
def _countries() -> frozenset[str]:
    codes = Locale.parse("en").territories
    return frozenset(
        str(c)
        for c in codes
        if isinstance(c, str) and len(c) == 2 and c.isalpha() and c not in _NOT_COUNTRIES
    )


def _sku(value: Any) -> str:
    text = (
        str(value).strip() if isinstance(value, str | int) and not isinstance(value, bool) else ""
    )
    if not SKU_RE.match(text):
        raise PydanticCustomError(
            "invalid_sku", "SKU: 1-64 letters, digits and . _ / - starting with a letter or digit"
        )
    return text


def _hs_code(value: Any) -> str:
    # Customs paperwork often writes "3304.99.00" or "3304 99"; the code is the digits.
    text = re.sub(r"[\s.]", "", str(value)) if isinstance(value, str | int) else ""
    if not re.fullmatch(r"\d{6,10}", text):
        raise PydanticCustomError("invalid_hs_code", "HS code must have 6 to 10 digits")
    return text


def _country(value: Any) -> str:
    text = value.strip().upper() if isinstance(value, str) else ""
    if text not in _countries():
        raise PydanticCustomError("invalid_country", "not an ISO 3166 alpha-2 country code")
    return text


def _image_urls(value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > MAX_IMAGES:
        raise PydanticCustomError(
            "invalid_image_urls", "at most {max} image URLs", {"max": MAX_IMAGES}
        )
    urls = []
    for item in value:
        if not isinstance(item, str) or not re.fullmatch(r"https?://[^\s]{1,2040}", item.strip()):
            raise PydanticCustomError("invalid_image_urls", "image URLs must be http(s) URLs")
        urls.append(item.strip())
    return urls


def _positive_price(value: MoneyIn) -> MoneyIn:
    if value.amount <= 0 or value.amount >= 10**12:
        raise PydanticCustomError("invalid_price", "price must be above 0")
    try:
        minor = value.to_money().to_minor()
    except ValueError as exc:
        raise PydanticCustomError("invalid_price", "too many decimals for the currency") from exc
    if minor <= 0:
        raise PydanticCustomError("invalid_price", "price must be above 0")
    return value


Sku = Annotated[str, BeforeValidator(_sku)]
HsCode = Annotated[str, BeforeValidator(_hs_code)]
Country = Annotated[str, BeforeValidator(_country)]
ImageUrls = Annotated[list[str], BeforeValidator(_image_urls)]
Price = Annotated[MoneyIn, AfterValidator(_positive_price)]
# A CSV cell is text: the importer reads weights with the lax type, request bodies strictly.
WeightCell = Annotated[int, Field(gt=0, le=MAX_WEIGHT_GRAMS)]
Weight = Annotated[int, Field(strict=True, gt=0, le=MAX_WEIGHT_GRAMS)]
Title = Annotated[dict[str, str], translatable(TITLE_MAX, required=True)]
Description = Annotated[dict[str, str], translatable(DESCRIPTION_MAX, required=False)]
TitlePatch = Annotated[
    dict[str, str | None], translatable(TITLE_MAX, required=False, allow_null=True)
]
DescriptionPatch = Annotated[
    dict[str, str | None], translatable(DESCRIPTION_MAX, required=False, allow_null=True)
]


class ProductCreate(StrictModel):
    sku: Sku
    title: Title
    description: Description = Field(default_factory=dict)
    price: Price
    weight_grams: Weight
    hs_code: HsCode
    origin_country: Country
    image_urls: ImageUrls = Field(default_factory=list)


class ProductUpdate(StrictModel):
    sku: Sku | None = None
    # Merged per language; null (or "") for a language removes it.
    title: TitlePatch | None = None
    description: DescriptionPatch | None = None
    price: Price | None = None
    weight_grams: Weight | None = None
    hs_code: HsCode | None = None
    origin_country: Country | None = None
    image_urls: ImageUrls | None = None


class StockIn(StrictModel):
    quantity: int = Field(strict=True, ge=0, le=1_000_000_000)


class StockLevel(BaseModel):
    warehouse: str
    quantity: int


class Translations(BaseModel):
    title: dict[str, str]
    description: dict[str, str]


class ProductOut(BaseModel):
    id: int
    merchant_id: int
    sku: str
    title: str
    description: str
    price: MoneyOut
    weight_grams: int
    hs_code: str
    origin_country: str
    image_urls: list[str]
    available: bool
    created_at: datetime
    updated_at: datetime
    # Owner and admin only: what a merchant needs to edit the product.
    base_price: MoneyOut | None = None
    translations: Translations | None = None
    stock: list[StockLevel] | None = None


class ProductDetail(ProductOut):
    rates: list[RateOut] = Field(
        default_factory=list, description="Exchange rates used to show the price."
    )


class ProductPage(BaseModel):
    items: list[ProductOut]
    page: int
    page_size: int
    total: int
    total_exact: bool = Field(
        description="False when counting stopped at the cap (10,000): there are more."
    )
    pages: int
    rates: list[RateOut]


class ImportRowError(BaseModel):
    row: int = Field(description="Row number as a spreadsheet shows it: the header is row 1.")
    sku: str | None
    code: str
    field: str | None
    message: str


class ImportReport(BaseModel):
    import_id: str
    rows_total: int
    created: int
    updated: int
    failed: int
    errors: list[ImportRowError]
    errors_truncated: bool
    ignored_columns: list[str]
    summary: str


class WarehouseOut(BaseModel):
    code: str
    name: str
    country: str
    currency: str
    timezone: str
