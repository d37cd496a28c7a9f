from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint
from sqlmodel import Field, SQLModel

from livecommerce.sqltypes import UTCDateTime, utcnow


class FlashSale(SQLModel, table=True):
    """A limited quantity of one product at a special price for a limited time."""

    __tablename__ = "flash_sales"
    __table_args__ = (
        CheckConstraint("remaining >= 0", name="ck_flash_sales_remaining_nonneg"),
        CheckConstraint("remaining <= quantity", name="ck_flash_sales_remaining_le_quantity"),
    )

    id: int | None = Field(default=None, primary_key=True)
    stream_id: int = Field(foreign_key="streams.id", index=True, ondelete="CASCADE")
    product_id: int = Field(foreign_key="products.id")
    price_minor: int = Field(sa_type=BigInteger)
    price_currency: str = Field(max_length=3)
    quantity: int
    # Decremented atomically by orders (UPDATE ... WHERE remaining >= n), never in Python.
    remaining: int
    # Units one buyer may hold in this sale (None: only the sale's quantity limits it).
    per_customer_limit: int | None = Field(default=None)
    starts_at: datetime = Field(sa_type=UTCDateTime)
    ends_at: datetime = Field(sa_type=UTCDateTime)
    # Set when the host stops the sale early or the stream ends before ends_at.
    cancelled_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # Set by whichever timer announced the end first (the API's or the worker's job).
    end_announced_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class FlashSaleClaim(SQLModel, table=True):
    """How many units of a flash sale one buyer holds, for the per-customer limit."""

    __tablename__ = "flash_sale_claims"
    __table_args__ = (CheckConstraint("quantity >= 0", name="ck_flash_sale_claims_nonneg"),)

    flash_sale_id: int = Field(foreign_key="flash_sales.id", primary_key=True, ondelete="CASCADE")
    buyer_id: int = Field(foreign_key="users.id", primary_key=True, ondelete="CASCADE")
    quantity: int = Field(default=0)
