from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import Index
from sqlmodel import Field, SQLModel

from livecommerce.sqltypes import DecimalText, UTCDateTime, utcnow


class ExchangeRate(SQLModel, table=True):
    """1 ``base`` = ``rate`` ``quote``, as published by ``source`` at ``as_of``.

    Rows are never updated: a new publication is a new row, so every conversion can say
    exactly which rate it used.
    """

    __tablename__ = "exchange_rates"
    __table_args__ = (Index("ix_exchange_rates_pair_as_of", "base", "quote", "as_of"),)

    id: int | None = Field(default=None, primary_key=True)
    base: str = Field(max_length=3)
    quote: str = Field(max_length=3)
    rate: Decimal = Field(sa_type=DecimalText)
    source: str = Field(max_length=120)
    as_of: datetime = Field(sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
