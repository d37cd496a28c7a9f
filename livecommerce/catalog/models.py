from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from livecommerce.sqltypes import UTCDateTime, utcnow


class Product(SQLModel, table=True):
    __tablename__ = "products"
    __table_args__ = (UniqueConstraint("merchant_id", "sku", name="uq_products_merchant_sku"),)

    id: int | None = Field(default=None, primary_key=True)
    merchant_id: int = Field(foreign_key="merchants.id", index=True)
    sku: str = Field(max_length=64)
    # Translatable text as {locale: text}; read back through the fallback chain.
    title: dict[str, str] = Field(sa_type=JSON)
    description: dict[str, str] = Field(default_factory=dict, sa_type=JSON)
    # Integer minor units of price_currency (ISO exponent): exact on every database.
    price_minor: int = Field(sa_type=BigInteger)
    price_currency: str = Field(max_length=3)
    weight_grams: int
    hs_code: str = Field(max_length=10)
    origin_country: str = Field(max_length=2)
    image_urls: list[str] = Field(default_factory=list, sa_type=JSON)
    # Case-folded SKU, titles and descriptions in every language: one LIKE finds any of them.
    search_text: str = Field(default="", sa_type=Text)
    # The CSV import that last wrote the row; lets an import spot a SKU repeated in its file
    # without holding every SKU in memory.
    import_id: str | None = Field(default=None, max_length=32)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    deleted_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
