"""Exchange rates in and out of the API."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

from pydantic import AwareDatetime, BaseModel, Field

from livecommerce.schemas import CurrencyCode, StrictModel

if TYPE_CHECKING:
    from livecommerce.rates.models import ExchangeRate
    from livecommerce.rates.service import RateQuote


class RateIn(StrictModel):
    base: CurrencyCode
    quote: CurrencyCode
    rate: Decimal = Field(gt=0, max_digits=22, decimal_places=10, examples=["602.50"])
    source: str = Field(min_length=1, max_length=120, examples=["National Bank of Kazakhstan"])
    as_of: AwareDatetime


class RateOut(BaseModel):
    """A published rate: ``rate`` a decimal string, ``as_of`` an ISO timestamp."""

    base: str
    quote: str
    rate: str
    source: str
    as_of: str

    @classmethod
    def of(cls, rate: RateQuote) -> RateOut:
        return cls(**rate.as_dict())

    @classmethod
    def of_row(cls, row: ExchangeRate) -> RateOut:
        return cls(
            base=row.base,
            quote=row.quote,
            rate=str(row.rate),
            source=row.source,
            as_of=row.as_of.isoformat(),
        )
