from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from livecommerce.accounts.deps import ContextDep, CurrentUser
from livecommerce.deps import WAREHOUSE_CODE, IdPath, IdQuery, ReadSessionDep, SettingsDep
from livecommerce.fulfillment import service
from livecommerce.fulfillment.models import ShipmentStatus
from livecommerce.fulfillment.rendering import (
    render_manifest,
    render_shipment_page,
    render_tracking,
)
from livecommerce.fulfillment.schemas import ShipmentPage, TrackingOut
from livecommerce.logistics.network import load_network

router = APIRouter(tags=["fulfilment"])


@router.get("/orders/{order_id}/tracking", response_model=TrackingOut)
async def tracking(
    order_id: IdPath,
    user: CurrentUser,
    session: ReadSessionDep,
    ctx: ContextDep,
    settings: SettingsDep,
) -> dict[str, Any]:
    """Where the order's parcels are: legs, ETA, customs declaration and every scan.

    Readable by the buyer, the merchant and admins.
    """
    found = await service.tracking_of(session=session, user=user, order_id=order_id)
    return render_tracking(found, ctx.locale, load_network(settings.logistics_file))


@router.get("/shipments", response_model=ShipmentPage)
async def list_shipments(
    user: CurrentUser,
    session: ReadSessionDep,
    ctx: ContextDep,
    settings: SettingsDep,
    status_: Annotated[ShipmentStatus | None, Query(alias="status")] = None,
    warehouse: Annotated[str | None, Query(pattern=WAREHOUSE_CODE)] = None,
    day: Annotated[
        date | None, Query(alias="date", description="with warehouse: its local day")
    ] = None,
    order_id: IdQuery = None,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> dict[str, Any]:
    """A merchant's parcels (all of them for an admin), newest first, by status, warehouse
    and the day they were made."""
    listed = await service.shipments_page(
        session=session,
        user=user,
        status=status_,
        warehouse=warehouse,
        day=day,
        order_id=order_id,
        page=page,
    )
    return render_shipment_page(listed, ctx.locale, load_network(settings.logistics_file))


@router.get(
    "/shipments/manifest.csv",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}, "description": "one row per declared line"}},
)
async def customs_manifest(
    user: CurrentUser,
    session: ReadSessionDep,
    ctx: ContextDep,
    settings: SettingsDep,
    warehouse: Annotated[str, Query(pattern=WAREHOUSE_CODE, examples=["DEDUI"])],
    day: Annotated[date, Query(alias="date", description="the warehouse's local calendar day")],
) -> Response:
    """The customs manifest of one warehouse and day: every declared line of the parcels made
    there that day and crossing a customs border (HS code, description in the customs
    language, quantity, weight, value, recipient, export mode; the recipient's tax id shows
    its last four digits only). The export mode's name is in the request's language."""
    rows = await service.manifest(
        session=session,
        network=load_network(settings.logistics_file),
        user=user,
        warehouse=warehouse,
        day=day,
        locale=ctx.locale,
    )
    filename = f"manifest-{warehouse.upper()}-{day.isoformat()}.csv"
    return Response(
        content=render_manifest(rows),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
