from __future__ import annotations

from decimal import Decimal

from fastapi import APIRouter, status
from pydantic import AwareDatetime, Field

from livecommerce.catalog.schemas import RateOut
from livecommerce.deps import AdminUser, SessionDep
from livecommerce.rates import service
from livecommerce.schemas import CurrencyCode, StrictModel

router = APIRouter(tags=["rates"])


class RateIn(StrictModel):
    base: CurrencyCode
    quote: CurrencyCode
    rate: Decimal = Field(gt=0, max_digits=22, decimal_places=10, examples=["602.50"])
    source: str = Field(min_length=1, max_length=120, examples=["National Bank of Kazakhstan"])
    as_of: AwareDatetime


@router.get("/rates", response_model=list[RateOut])
async def list_rates(session: SessionDep) -> list[RateOut]:
    """The newest published rate of every currency pair."""
    return [RateOut(**r.as_dict()) for r in await service.list_latest(session=session)]


@router.post("/rates", status_code=status.HTTP_201_CREATED, response_model=RateOut)
async def add_rate(body: RateIn, _admin: AdminUser, session: SessionDep) -> RateOut:
    row = await service.add_rate(
        session=session,
        base=body.base,
        quote=body.quote,
        rate=body.rate,
        source=body.source,
        as_of=body.as_of,
    )
    return RateOut(
        base=row.base,
        quote=row.quote,
        rate=str(row.rate),
        source=row.source,
        as_of=row.as_of.isoformat(),
    )
