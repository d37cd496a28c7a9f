from __future__ import annotations

from fastapi import APIRouter, status

from livecommerce.accounts.deps import AdminUser
from livecommerce.deps import SessionDep
from livecommerce.rates import service
from livecommerce.rates.schemas import RateIn, RateOut

router = APIRouter(tags=["rates"])


@router.get("/rates", response_model=list[RateOut])
async def list_rates(session: SessionDep) -> list[RateOut]:
    """The newest published rate of every currency pair."""
    return [RateOut.of(r) for r in await service.list_latest(session=session)]


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
    return RateOut.of_row(row)
