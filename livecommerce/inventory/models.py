from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, CheckConstraint
from sqlmodel import Field, SQLModel

from livecommerce.sqltypes import UTCDateTime, utcnow


class Warehouse(SQLModel, table=True):
    """A stock-holding node, keyed by its UN/LOCODE (``DEDUI``, ``KZALA``)."""

    __tablename__ = "warehouses"

    code: str = Field(primary_key=True, max_length=5)
    name: dict[str, str] = Field(sa_type=JSON)
    country: str = Field(max_length=2)
    currency: str = Field(max_length=3)
    timezone: str = Field(max_length=64)


class Stock(SQLModel, table=True):
    __tablename__ = "stock"
    __table_args__ = (CheckConstraint("quantity >= 0", name="ck_stock_quantity_nonneg"),)

    product_id: int = Field(foreign_key="products.id", primary_key=True, ondelete="CASCADE")
    warehouse_code: str = Field(foreign_key="warehouses.code", primary_key=True, max_length=5)
    quantity: int = Field(default=0)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
