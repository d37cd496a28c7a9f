from __future__ import annotations

import logging
from functools import partial
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status

from livecommerce.accounts.deps import ContextDep, CurrentUser, OptionalPrincipal
from livecommerce.db import after_commit
from livecommerce.deps import IdPath, SessionDep
from livecommerce.errors import NotAuthenticated
from livecommerce.flashsales.admission import Admission
from livecommerce.rates.service import RateBook, load_rate_book
from livecommerce.rooms.broker import Broker, BrokerUnavailable, Position
from livecommerce.rooms.hub import Hub
from livecommerce.schemas import Page
from livecommerce.streams import rollup, service, wordfilter
from livecommerce.streams.models import Stream, StreamStatus
from livecommerce.streams.rendering import render_flash_sale, render_sales, render_stream
from livecommerce.streams.schemas import (
    AnnouncementIn,
    BlockedWordsIn,
    FlashSaleIn,
    FlashSaleOut,
    ModerationIn,
    PinIn,
    StreamCreate,
    StreamOut,
    StreamStats,
)

log = logging.getLogger(__name__)
router = APIRouter(tags=["streams"])


def _broker(request: Request) -> Broker:
    broker: Broker = request.app.state.broker
    return broker


def _admission(request: Request) -> Admission:
    admission: Admission = request.app.state.admission
    return admission


async def _out(
    request: Request,
    session: SessionDep,
    ctx: ContextDep,
    stream: Stream,
    *,
    stats: bool,
    sales: bool = False,
    book: RateBook | None = None,
) -> StreamOut:
    assert stream.id is not None
    book = book or await load_rate_book(session)
    state = await service.room_state(session=session, stream=stream, book=book)
    out = render_stream(stream, state, ctx.locale, ctx.currency)
    if stats:
        hub: Hub = request.app.state.hub
        room = service.room_of(stream.id)
        # Sales figures are the stream's merchant's, its host's and admins' (``sales``);
        # everyone else sees the public part (viewers, chat, peak) with ``sales`` null.
        rolled = await rollup.latest(session, stream.id) if sales else None
        figures_out = render_sales(rolled, ctx.locale) if rolled is not None else None
        # The live figures come from the realtime layer; while it is unreachable they are
        # null and the rest of the stream is still answered.
        viewer_count: int | None = None
        position: Position | None = None
        try:
            viewer_count = await hub.presence.count(room)
            position = await hub.broker.position(room)
        except BrokerUnavailable as exc:
            log.warning("stream %s: live figures unavailable: %s", stream.id, exc)
        out.stats = StreamStats(
            viewer_count=viewer_count,
            peak_viewers=stream.peak_viewers,
            chat_messages=stream.chat_messages,
            last_seq=position.seq if position else None,
            epoch=position.epoch if position else None,
            sales=figures_out,
        )
    return out


@router.post("/streams", status_code=status.HTTP_201_CREATED, response_model=StreamOut)
async def create_stream(
    body: StreamCreate, user: CurrentUser, session: SessionDep, ctx: ContextDep, request: Request
) -> StreamOut:
    stream = await service.create_stream(session=session, user=user, data=body)
    return await _out(request, session, ctx, stream, stats=False)


@router.get("/streams", response_model=Page[StreamOut])
async def list_streams(
    request: Request,
    session: SessionDep,
    ctx: ContextDep,
    principal: OptionalPrincipal,
    status_filter: Annotated[StreamStatus | None, Query(alias="status")] = None,
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
    mine: Annotated[
        bool, Query(description="only streams you host, or your merchant's (signed in)")
    ] = False,
) -> Page[StreamOut]:
    owner = None
    if mine:
        if principal is None or principal.user is None:
            raise NotAuthenticated()
        owner = principal.user
    rows, total = await service.list_streams(
        session=session, status=status_filter, page=page, owner=owner
    )
    book = await load_rate_book(session)  # once for the page, not once per stream
    items = [await _out(request, session, ctx, s, stats=False, book=book) for s in rows]
    return Page[StreamOut](
        items=items,
        page=page,
        page_size=service.PAGE_SIZE,
        total=total,
        pages=max(1, -(-total // service.PAGE_SIZE)),
    )


@router.get("/streams/{stream_id}", response_model=StreamOut)
async def get_stream(
    stream_id: IdPath,
    request: Request,
    session: SessionDep,
    ctx: ContextDep,
    principal: OptionalPrincipal,
) -> StreamOut:
    """The stream; its sales figures (``stats.sales``) only for its merchant, its host and
    admins."""
    stream = await service.get_stream(session=session, stream_id=stream_id)
    user = principal.user if principal is not None else None
    sales = await service.sees_sales(session=session, user=user, stream=stream)
    return await _out(request, session, ctx, stream, stats=True, sales=sales)


@router.post("/streams/{stream_id}/start", response_model=StreamOut)
async def start_stream(
    stream_id: IdPath, user: CurrentUser, request: Request, session: SessionDep, ctx: ContextDep
) -> StreamOut:
    stream = await service.require_driver(session=session, user=user, stream_id=stream_id)
    await service.start_stream(session=session, broker=_broker(request), stream=stream)
    return await _out(request, session, ctx, stream, stats=False)


@router.post("/streams/{stream_id}/end", response_model=StreamOut)
async def end_stream(
    stream_id: IdPath, user: CurrentUser, request: Request, session: SessionDep, ctx: ContextDep
) -> StreamOut:
    stream = await service.require_driver(session=session, user=user, stream_id=stream_id)
    await service.end_stream(
        session=session, broker=_broker(request), stream=stream, admission=_admission(request)
    )
    return await _out(request, session, ctx, stream, stats=False)


@router.post("/streams/{stream_id}/pins", response_model=StreamOut)
async def pin_product(
    stream_id: IdPath,
    body: PinIn,
    user: CurrentUser,
    request: Request,
    session: SessionDep,
    ctx: ContextDep,
) -> StreamOut:
    stream = await service.require_driver(session=session, user=user, stream_id=stream_id)
    book = await load_rate_book(session)
    await service.pin_product(
        session=session,
        broker=_broker(request),
        stream=stream,
        product_id=body.product_id,
        book=book,
        # Every viewer's page shows the delivery estimate to its city: carried in the frame,
        # computed once here, instead of one request per viewer at the same instant.
        estimates=partial(request.app.state.pin_estimates, session=session),
    )
    return await _out(request, session, ctx, stream, stats=False, book=book)


@router.post("/streams/{stream_id}/announcements", status_code=status.HTTP_202_ACCEPTED)
async def announce(
    stream_id: IdPath,
    body: AnnouncementIn,
    user: CurrentUser,
    request: Request,
    session: SessionDep,
) -> dict[str, str]:
    stream = await service.require_driver(session=session, user=user, stream_id=stream_id)
    await service.announce(session=session, broker=_broker(request), stream=stream, text=body.text)
    return {"status": "sent"}


@router.post(
    "/streams/{stream_id}/flash-sales",
    status_code=status.HTTP_201_CREATED,
    response_model=FlashSaleOut,
    responses={409: {"description": "flash_sale_active: a sale with units left is running"}},
)
async def start_flash_sale(
    stream_id: IdPath,
    body: FlashSaleIn,
    user: CurrentUser,
    request: Request,
    session: SessionDep,
    ctx: ContextDep,
) -> FlashSaleOut:
    card = await service.start_flash_sale(
        session=session,
        sessions=request.app.state.sessions,
        broker=_broker(request),
        admission=_admission(request),
        hub=request.app.state.hub,
        user=user,
        stream_id=stream_id,
        data=body,
    )
    return render_flash_sale(card, ctx.locale, ctx.currency)


@router.post(
    "/streams/{stream_id}/flash-sales/{sale_id}/end",
    response_model=FlashSaleOut,
    responses={409: {"description": "flash_sale_ended: the sale is already over"}},
)
async def end_flash_sale(
    stream_id: IdPath,
    sale_id: IdPath,
    user: CurrentUser,
    request: Request,
    session: SessionDep,
    ctx: ContextDep,
) -> FlashSaleOut:
    """End a running sale early; the room hears ``flash_sale`` with status ``ended``."""
    card = await service.end_flash_sale(
        session=session,
        broker=_broker(request),
        admission=_admission(request),
        user=user,
        stream_id=stream_id,
        sale_id=sale_id,
    )
    return render_flash_sale(card, ctx.locale, ctx.currency)


@router.put("/streams/{stream_id}/blocked-words", response_model=BlockedWordsIn)
async def set_blocked_words(
    stream_id: IdPath,
    body: BlockedWordsIn,
    user: CurrentUser,
    request: Request,
    session: SessionDep,
) -> BlockedWordsIn:
    stream = await service.require_driver(session=session, user=user, stream_id=stream_id)
    await service.set_blocked_words(
        session=session, broker=_broker(request), stream=stream, words=body.words
    )
    # Once committed, and before the answer leaves, this process's hub has them: a message
    # sent after the answer is checked against the new list (other processes get them with
    # the signal).
    hub: Hub = request.app.state.hub
    rules = wordfilter.chat_rules(stream.blocked_words)
    after_commit(session, partial(hub.update_settings, service.room_of(stream_id), rules))
    return BlockedWordsIn(words=list(stream.blocked_words))


@router.post("/streams/{stream_id}/moderation", status_code=status.HTTP_204_NO_CONTENT)
async def moderate(
    stream_id: IdPath, body: ModerationIn, user: CurrentUser, request: Request, session: SessionDep
) -> Response:
    stream = await service.require_driver(session=session, user=user, stream_id=stream_id)
    await service.moderate(
        session=session,
        broker=_broker(request),
        stream=stream,
        by=user,
        user_id=body.user_id,
        action=body.action,
        duration_s=body.duration_s,
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.delete("/streams/{stream_id}/chat/{seq}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_chat_message(
    stream_id: IdPath, seq: IdPath, user: CurrentUser, request: Request, session: SessionDep
) -> Response:
    stream = await service.require_driver(session=session, user=user, stream_id=stream_id)
    await service.delete_chat_message(
        session=session, broker=_broker(request), stream=stream, seq=seq
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)
