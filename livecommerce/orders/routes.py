from __future__ import annotations

import math
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Request, status
from fastapi.responses import JSONResponse, Response
from pydantic import Field

from livecommerce.accounts.deps import ContextDep, CurrentUser
from livecommerce.config import Settings
from livecommerce.deps import WAREHOUSE_CODE, IdPath, ReadSessionDep, SessionDep, SettingsDep
from livecommerce.logistics.network import Network, load_network
from livecommerce.orders import estimates, idempotency, payments, placing, service
from livecommerce.orders.consignee import consignee_of
from livecommerce.orders.payments import PaymentProvider, UnknownProvider
from livecommerce.orders.rendering import render_order, render_payment, render_quote
from livecommerce.orders.sandbox import SandboxProvider
from livecommerce.orders.schemas import (
    EstimateOut,
    OrderIn,
    OrderOut,
    PaymentOut,
    QuoteIn,
    QuoteOut,
)
from livecommerce.schemas import Page, StrictModel

router = APIRouter(tags=["orders"])
sandbox_router = APIRouter(prefix="/sandbox/payments", tags=["sandbox payment provider"])

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="Retry-safe writes: the same key and body return the first response",
    ),
]


def network_of(settings: Settings) -> Network:
    return load_network(settings.logistics_file)


def provider_of(request: Request, name: str | None = None) -> PaymentProvider:
    providers: dict[str, PaymentProvider] = request.app.state.payment_providers
    provider = providers.get(name or request.app.state.settings.payment_provider)
    if provider is None:
        raise UnknownProvider()
    return provider


# --- quotes and orders ---------------------------------------------------------------------


@router.post("/quotes", response_model=QuoteOut)
async def create_quote(
    body: QuoteIn,
    request: Request,
    session: ReadSessionDep,
    ctx: ContextDep,
    settings: SettingsDep,
) -> dict[str, Any]:
    buyer = ctx.principal.user if ctx.principal else None
    network = network_of(settings)
    async with service.stock_shown_to(session=session, user=buyer):
        landed = await service.quote(
            session=session,
            network=network,
            data=body,
            currency=ctx.currency,
            buyer=buyer,
            books=request.app.state.rate_books,
        )
    consignee = consignee_of(network, landed, ctx.locale)
    return render_quote(landed.snapshot(), ctx.locale, consignee=consignee)


# Browsers and shared caches may reuse an anonymous estimate this long without asking; after
# that a conditional request costs one small query and a 304.
ESTIMATE_MAX_AGE = 30


@router.get(
    "/products/{product_id}/delivery-estimate",
    response_model=EstimateOut,
    responses={304: {"description": "unchanged since the ETag in If-None-Match"}},
)
async def delivery_estimate(
    product_id: IdPath,
    request: Request,
    session: SessionDep,
    ctx: ContextDep,
    settings: SettingsDep,
    country: Annotated[str, Query(min_length=2, max_length=2, examples=["KZ"])],
    city: Annotated[str, Query(min_length=1, max_length=120, examples=["Almaty"])],
    if_none_match: Annotated[str | None, Header(alias="If-None-Match")] = None,
) -> Response:
    """One unit of the product delivered to the city: anonymous, cheap and cacheable."""
    buyer = ctx.principal.user if ctx.principal else None
    answer = await estimates.delivery_estimate(
        session=session,
        cache=request.app.state.estimates,
        network=network_of(settings),
        product_id=product_id,
        country=country,
        city=city,
        currency=ctx.currency,
        buyer_id=buyer.id if buyer else None,
    )
    etag = f'"{answer.etag}-{ctx.locale}"'
    headers = {
        "ETag": etag,
        "Vary": "Accept-Language, Authorization",
        # Signed in, the currency may be the user's saved one and the allowance theirs.
        "Cache-Control": "private, no-cache"
        if buyer is not None
        else f"public, max-age={ESTIMATE_MAX_AGE}",
    }
    if if_none_match is not None and etag in {t.strip() for t in if_none_match.split(",")}:
        return Response(status_code=304, headers=headers)
    return JSONResponse(estimates.render_answer(answer, ctx.locale), headers=headers)


@router.post(
    "/orders",
    status_code=status.HTTP_201_CREATED,
    response_model=OrderOut,
    responses={409: {"description": "out_of_stock, flash_sale_sold_out, limit_exceeded"}},
)
async def create_order(
    body: OrderIn,
    request: Request,
    session: SessionDep,
    ctx: ContextDep,
    user: CurrentUser,
    settings: SettingsDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    state = request.app.state
    async with service.stock_shown_to(session=session, user=user):
        answer = await placing.place(
            session=session,
            buyer=user,
            data=body,
            locale=ctx.locale,
            currency=ctx.currency,
            idempotency_key=idempotency_key,
            settings=settings,
            admission=state.admission,
            announcer=state.room_events,
            books=state.rate_books,
        )
    return JSONResponse(answer.body, status_code=answer.status, headers=answer.headers)


@router.get("/orders", response_model=Page[OrderOut])
async def list_orders(
    session: SessionDep,
    ctx: ContextDep,
    user: CurrentUser,
    status_: Annotated[str | None, Query(alias="status")] = None,
    warehouse: Annotated[
        str | None, Query(pattern=WAREHOUSE_CODE, description="with a line from it")
    ] = None,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> dict[str, Any]:
    records, total = await service.orders_page(
        session=session, user=user, status=status_, page=page, warehouse=warehouse
    )
    items = [render_order(r.order, r.events, ctx.locale) for r in records]
    return {
        "items": items,
        "page": page,
        "page_size": service.PAGE_SIZE,
        "total": total,
        "pages": math.ceil(total / service.PAGE_SIZE) if total else 0,
    }


@router.get("/orders/{order_id}", response_model=OrderOut)
async def get_order(
    order_id: IdPath, session: SessionDep, ctx: ContextDep, user: CurrentUser
) -> dict[str, Any]:
    record = await service.read_order(session=session, user=user, order_id=order_id)
    return render_order(record.order, record.events, ctx.locale)


@router.post("/orders/{order_id}/cancel", response_model=OrderOut)
async def cancel_order(
    order_id: IdPath, request: Request, session: SessionDep, ctx: ContextDep, user: CurrentUser
) -> dict[str, Any]:
    record = await payments.cancel_order(
        session=session, provider=provider_of(request), user=user, order_id=order_id
    )
    return render_order(record.order, record.events, ctx.locale)


# --- payments ------------------------------------------------------------------------------


@router.post(
    "/orders/{order_id}/payments", status_code=status.HTTP_201_CREATED, response_model=PaymentOut
)
async def start_payment(
    order_id: IdPath,
    request: Request,
    session: SessionDep,
    ctx: ContextDep,
    user: CurrentUser,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    assert user.id is not None
    scope = f"POST /orders/{order_id}/payments"
    if idempotency_key is not None:
        replay = await idempotency.begin(
            session, user_id=user.id, key=idempotency_key, scope=scope, body={}
        )
        if replay is not None:
            return JSONResponse(
                replay.body, status_code=replay.status_code, headers={"Idempotent-Replayed": "true"}
            )
    provider = provider_of(request)
    payment, intent = await payments.start_payment(
        session=session, provider=provider, user=user, order_id=order_id
    )
    rendered = render_payment(payment, intent, provider, ctx.locale)
    if idempotency_key is not None:
        await idempotency.finish(
            session, user_id=user.id, key=idempotency_key, status_code=201, body=rendered
        )
    return JSONResponse(rendered, status_code=201)


@router.get("/orders/{order_id}/payments", response_model=list[PaymentOut])
async def list_payments(
    order_id: IdPath, request: Request, session: SessionDep, ctx: ContextDep, user: CurrentUser
) -> list[dict[str, Any]]:
    found = await payments.payments_of(session=session, user=user, order_id=order_id)
    provider = provider_of(request)
    return [render_payment(p, None, provider, ctx.locale) for p in found]


@router.post("/payments/webhooks/{provider_name}", include_in_schema=True)
async def payment_webhook(
    provider_name: Annotated[str, Field(max_length=32)], request: Request, session: SessionDep
) -> dict[str, str]:
    """Called by the payment provider, not by clients: signed, deduplicated, re-verified."""
    provider = provider_of(request, provider_name)
    body = await request.body()
    outcome = await payments.handle_webhook(
        session=session, provider=provider, body=body, headers=request.headers
    )
    return {"status": outcome}


# --- the sandbox provider's own endpoints (what its card form would call) -------------------


class ConfirmIn(StrictModel):
    client_secret: str = Field(min_length=1, max_length=80)
    card_number: str = Field(min_length=12, max_length=23, examples=["4242 4242 4242 4242"])


IntentId = Annotated[str, Path(pattern=r"^pi_[0-9a-f]{1,40}$")]
EventId = Annotated[str, Path(pattern=r"^evt_[0-9a-f]{1,40}$")]


def _sandbox(request: Request) -> SandboxProvider:
    provider = request.app.state.payment_providers.get("sandbox")
    if not isinstance(provider, SandboxProvider):
        raise UnknownProvider()
    return provider


@sandbox_router.post("/{intent_id}/confirm")
async def sandbox_confirm(intent_id: IntentId, body: ConfirmIn, request: Request) -> dict[str, Any]:
    intent = await _sandbox(request).confirm(
        intent_id,
        client_secret=body.client_secret,
        card_number=body.card_number,
    )
    return {"id": intent.id, "status": intent.status, "failure_code": intent.failure_code}


@sandbox_router.get("/{intent_id}/events")
async def sandbox_events(intent_id: IntentId, request: Request) -> list[dict[str, Any]]:
    return await _sandbox(request).event_payloads(intent_id)


@sandbox_router.post("/events/{event_id}/resend", status_code=status.HTTP_202_ACCEPTED)
async def sandbox_resend(event_id: EventId, request: Request) -> dict[str, str]:
    await _sandbox(request).resend(event_id)
    return {"status": "queued"}
