"""Stream lifecycle, pins, announcements and moderation (flash sales: ``livecommerce.flashsales``).

Every change a room must see is published as a room event *after* the transaction commits
(``after_commit``), so a viewer never sees a pin or a sale that was rolled back.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

from sqlalchemy import case, func, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col, select

from livecommerce.accounts import service as accounts
from livecommerce.accounts.models import Merchant, Role, User
from livecommerce.catalog.cards import product_card
from livecommerce.catalog.models import Product
from livecommerce.catalog.service import ProductNotFound
from livecommerce.db import after_commit, dialect_insert, session_scope
from livecommerce.errors import Conflict, Forbidden, NotFound, ValidationFailed
from livecommerce.events import ServerEvent
from livecommerce.flashsales import service as flashsales
from livecommerce.flashsales.admission import Admission
from livecommerce.i18n.messages import N_
from livecommerce.rates.service import RateBook, load_rate_book
from livecommerce.rooms import render
from livecommerce.rooms.broker import Broker, publish_committed
from livecommerce.rooms.hub import Hub
from livecommerce.rooms.names import stream_room
from livecommerce.sqltypes import utcnow
from livecommerce.streams import wordfilter
from livecommerce.streams.models import (
    Stream,
    StreamModeration,
    StreamStatus,
    StreamViewer,
)
from livecommerce.streams.schemas import FlashSaleIn, StreamCreate

if TYPE_CHECKING:
    from livecommerce.flashsales.admission import Admission

PAGE_SIZE = 20
log = logging.getLogger(__name__)


class StreamNotFound(NotFound):
    code = "stream_not_found"
    message = N_("This stream does not exist.")


class StreamNotLive(Conflict):
    code = "stream_not_live"
    message = N_("The stream is not live.")


class InvalidTransition(Conflict):
    code = "invalid_stream_transition"
    message = N_("A stream that is %(status)s cannot be %(target)s.")


class HostNotLinked(Forbidden):
    code = "host_not_linked"
    message = N_("This host does not stream for this merchant.")


class MerchantRequired(ValidationFailed):
    code = "merchant_required"
    message = N_("Name the merchant this stream is for (merchant_id).")


class UserNotFound(NotFound):
    code = "user_not_found"
    message = N_("User %(id)s does not exist.")


class CannotModerateDriver(Conflict):
    code = "cannot_moderate_host"
    message = N_("The stream's host, its merchant and admins cannot be muted or banned.")


CONTROL_RELOAD = "_reload"  # internal signal between hubs, never sent to a client


room_of = stream_room


def _publish(session: AsyncSession, broker: Broker, stream_id: int, kind: str, data: Any) -> None:
    payload = render.encode_event(kind, data)
    after_commit(session, partial(publish_committed, broker, room_of(stream_id), payload))


# --- Reading ----------------------------------------------------------------------------


async def get_stream(*, session: AsyncSession, stream_id: int) -> Stream:
    stream = await session.get(Stream, stream_id)
    if stream is None:
        raise StreamNotFound()
    return stream


async def list_streams(
    *, session: AsyncSession, status: str | None, page: int, owner: User | None = None
) -> tuple[list[Stream], int]:
    query = select(Stream)
    count = select(func.count()).select_from(Stream)
    if owner is not None:
        # "Mine": streams the user hosts, and for a merchant all of its streams.
        mine = col(Stream.host_id) == owner.id
        if owner.role == Role.MERCHANT:
            merchant = await accounts.merchant_of(session=session, user=owner)
            if merchant is not None:
                mine = mine | (col(Stream.merchant_id) == merchant.id)
        query = query.where(mine)
        count = count.where(mine)
    if status:
        query = query.where(col(Stream.status) == status)
        count = count.where(col(Stream.status) == status)
    total = int(await session.scalar(count) or 0)
    rows = await session.scalars(
        query.order_by(col(Stream.started_at).desc(), col(Stream.id).desc())
        .offset((page - 1) * PAGE_SIZE)
        .limit(PAGE_SIZE)
    )
    return list(rows), total


async def room_state(*, session: AsyncSession, stream: Stream, book: RateBook) -> dict[str, Any]:
    """What a viewer needs on arrival (language-neutral; rendered per viewer)."""
    assert stream.id is not None
    host = await session.get(User, stream.host_id)
    pinned = None
    if stream.pinned_product_id is not None:
        product = await session.get(Product, stream.pinned_product_id)
        if product is not None and product.deleted_at is None:
            pinned = product_card(product, book)
    sale_card = None
    sale = await flashsales.current(session=session, stream_id=stream.id)
    if sale is not None:
        product = await session.get(Product, sale.product_id)
        if product is not None:
            sale_card = flashsales.card(sale, product, book)
    return {
        "stream": {
            "id": stream.id,
            "merchant_id": stream.merchant_id,
            "host_id": stream.host_id,
            "host_name": host.display_name if host else "",
            "title": render.text(stream.title),
            "languages": list(stream.languages),
            "status": stream.status,
            "scheduled_at": stream.scheduled_at.isoformat() if stream.scheduled_at else None,
            "started_at": stream.started_at.isoformat() if stream.started_at else None,
            "ended_at": stream.ended_at.isoformat() if stream.ended_at else None,
            "playback_url": stream.playback_url,
        },
        "pinned_product": pinned,
        "flash_sale": sale_card,
    }


# --- Who may drive a stream -------------------------------------------------------------


async def can_drive(*, session: AsyncSession, user: User, stream: Stream) -> bool:
    """Whether ``user`` may act on ``stream`` now: an admin, the stream's merchant, or its
    host while the host still streams for that merchant. Asked at every action, so a host
    the merchant removed (or who left) loses the stream at once, mid-stream too."""
    if user.role == Role.ADMIN:
        return True
    if user.role == Role.MERCHANT:
        merchant = await accounts.merchant_of(session=session, user=user)
        return merchant is not None and merchant.id == stream.merchant_id
    if user.role == Role.HOST and user.id == stream.host_id:
        return await accounts.is_linked(
            session=session, merchant_id=stream.merchant_id, host_id=user.id
        )
    return False


async def sees_sales(*, session: AsyncSession, user: User | None, stream: Stream) -> bool:
    """Whether ``user`` sees the stream's sales figures: those who may drive it (its
    merchant, its linked host, admins); everyone else sees the public part."""
    return user is not None and await can_drive(session=session, user=user, stream=stream)


async def require_driver(*, session: AsyncSession, user: User, stream_id: int) -> Stream:
    """The stream, for a user who may act on it now (``can_drive``); else 403, with
    ``host_not_linked`` for its own host once no longer linked to its merchant."""
    stream = await get_stream(session=session, stream_id=stream_id)
    if not await can_drive(session=session, user=user, stream=stream):
        if user.id == stream.host_id and user.role == Role.HOST:
            raise HostNotLinked()
        raise Forbidden()
    return stream


async def may_drive(*, session: AsyncSession, stream_id: int, user_id: int) -> bool:
    """``can_drive`` by ids, for callers holding only them (a room connection)."""
    user = await session.get(User, user_id)
    stream = await session.get(Stream, stream_id)
    if user is None or stream is None or not user.is_active:
        return False
    return await can_drive(session=session, user=user, stream=stream)


async def _is_linked(session: AsyncSession, merchant_id: int, host_id: int) -> bool:
    return await accounts.is_linked(session=session, merchant_id=merchant_id, host_id=host_id)


async def create_stream(*, session: AsyncSession, user: User, data: StreamCreate) -> Stream:
    assert user.id is not None
    if user.role == Role.MERCHANT:
        merchant = await accounts.require_merchant_of(session=session, user=user)
        assert merchant.id is not None
        merchant_id = merchant.id
        host_id = data.host_id or user.id
        if host_id != user.id and not await _is_linked(session, merchant_id, host_id):
            raise HostNotLinked()
    elif user.role == Role.HOST:
        host_id = user.id
        if data.host_id not in (None, user.id):
            raise Forbidden()
        if data.merchant_id is None:
            merchants = await accounts.merchants_hosted_by(session=session, user=user)
            if len(merchants) != 1 or merchants[0].id is None:
                raise MerchantRequired()
            merchant_id = merchants[0].id
        else:
            merchant_id = data.merchant_id
            if not await _is_linked(session, merchant_id, host_id):
                raise HostNotLinked()
    elif user.role == Role.ADMIN:
        if data.merchant_id is None or data.host_id is None:
            raise MerchantRequired()
        merchant_id, host_id = data.merchant_id, data.host_id
        # An admin too puts on a stream only a host who accepted the merchant (or the
        # merchant's own account): nobody streams for a merchant without consent.
        chosen = await session.get(Merchant, merchant_id)
        if chosen is None or (
            chosen.owner_id != host_id and not await _is_linked(session, merchant_id, host_id)
        ):
            raise HostNotLinked()
    else:
        raise Forbidden()
    stream = Stream(
        merchant_id=merchant_id,
        host_id=host_id,
        title=data.title,
        languages=data.languages,
        scheduled_at=data.scheduled_at,
        playback_url=str(data.playback_url) if data.playback_url else None,
    )
    session.add(stream)
    await session.flush()
    return stream


async def start_stream(*, session: AsyncSession, broker: Broker, stream: Stream) -> Stream:
    if stream.status != StreamStatus.SCHEDULED:
        raise InvalidTransition(status=stream.status, target="started")
    stream.status = StreamStatus.LIVE
    stream.started_at = utcnow()
    await session.flush()
    assert stream.id is not None
    _publish(
        session,
        broker,
        stream.id,
        ServerEvent.STREAM_STATUS,
        {"status": "live", "text": render.message(N_("The stream is live."))},
    )
    return stream


async def end_stream(
    *, session: AsyncSession, broker: Broker, stream: Stream, admission: Admission | None = None
) -> Stream:
    if stream.status == StreamStatus.ENDED:
        raise InvalidTransition(status=stream.status, target="ended")
    stream.status = StreamStatus.ENDED
    stream.ended_at = utcnow()
    assert stream.id is not None
    await session.flush()
    # Viewers see the running sale end with the stream.
    await flashsales.end_all(
        session=session,
        broker=broker,
        admission=admission,
        stream_id=stream.id,
        book=await load_rate_book(session),
    )
    _publish(
        session,
        broker,
        stream.id,
        ServerEvent.STREAM_STATUS,
        {"status": "ended", "text": render.message(N_("The stream has ended. Thank you!"))},
    )
    return stream


def require_live(stream: Stream) -> None:
    if stream.status != StreamStatus.LIVE:
        raise StreamNotLive()


async def product_of(*, session: AsyncSession, stream: Stream, product_id: int) -> Product:
    product = await session.get(Product, product_id)
    if (
        product is None
        or product.deleted_at is not None
        or product.merchant_id != (stream.merchant_id)
    ):
        raise ProductNotFound(id=product_id)
    return product


async def pin_product(
    *,
    session: AsyncSession,
    broker: Broker,
    stream: Stream,
    product_id: int | None,
    book: RateBook,
    estimates: Callable[[int], Awaitable[Any]] | None = None,
) -> Product | None:
    """``estimates(product_id)``, when given, is carried in the frame (language-neutral)."""
    require_live(stream)
    assert stream.id is not None
    product = (
        await product_of(session=session, stream=stream, product_id=product_id)
        if product_id
        else None
    )
    data: dict[str, Any] = {"product": product_card(product, book) if product else None}
    if product is not None and product.id is not None and estimates is not None:
        data["estimates"] = await estimates(product.id)
    stream.pinned_product_id = product.id if product else None
    await session.flush()
    _publish(session, broker, stream.id, ServerEvent.PRODUCT_PINNED, data)
    return product


async def announce(
    *, session: AsyncSession, broker: Broker, stream: Stream, text: dict[str, str]
) -> None:
    require_live(stream)
    assert stream.id is not None
    _publish(session, broker, stream.id, ServerEvent.ANNOUNCEMENT, {"text": render.text(text)})


# --- Moderation -------------------------------------------------------------------------


async def start_flash_sale(
    *,
    session: AsyncSession,
    sessions: async_sessionmaker[AsyncSession],
    broker: Broker,
    admission: Admission,
    hub: Hub,
    user: User,
    stream_id: int,
    data: FlashSaleIn,
) -> dict[str, Any]:
    """Start a flash sale in the driver's live stream; its card (prices in every currency).

    Its end is announced by a timer on this process's hub, started once the sale is
    committed (a rolled-back sale has no timer); if this process stops first, the workers'
    ``close_due_flash_sales`` announces it.
    """
    stream = await require_driver(session=session, user=user, stream_id=stream_id)
    require_live(stream)
    product = await product_of(session=session, stream=stream, product_id=data.product_id)
    book = await load_rate_book(session)
    sale = await flashsales.start(
        session=session,
        broker=broker,
        admission=admission,
        stream_id=stream_id,
        product=product,
        price=data.price.to_money(),
        quantity=data.quantity,
        duration_s=data.duration_s,
        per_customer_limit=data.per_customer_limit,
        book=book,
    )
    assert sale.id is not None
    end = partial(_close_sale, sessions, broker, admission, sale.id)
    after_commit(session, partial(_start_timer, hub, data.duration_s + 0.05, end))
    return flashsales.card(sale, product, book)


async def end_flash_sale(
    *,
    session: AsyncSession,
    broker: Broker,
    admission: Admission,
    user: User,
    stream_id: int,
    sale_id: int,
) -> dict[str, Any]:
    """End a running sale early (the room hears ``flash_sale`` with status ``ended``); its
    card."""
    await require_driver(session=session, user=user, stream_id=stream_id)
    book = await load_rate_book(session)
    sale = await flashsales.end(
        session=session,
        broker=broker,
        admission=admission,
        stream_id=stream_id,
        sale_id=sale_id,
        book=book,
    )
    product = await session.get(Product, sale.product_id)
    assert product is not None
    return flashsales.card(sale, product, book)


async def _start_timer(hub: Hub, delay_s: float, job: Callable[[], Awaitable[None]]) -> None:
    hub.call_later(delay_s, job)


async def _close_sale(
    sessions: async_sessionmaker[AsyncSession], broker: Broker, admission: Admission, sale_id: int
) -> None:
    async with session_scope(sessions) as session:
        await flashsales.close_if_due(
            session=session,
            broker=broker,
            admission=admission,
            sale_id=sale_id,
            book=await load_rate_book(session),
        )


async def set_blocked_words(
    *, session: AsyncSession, broker: Broker, stream: Stream, words: list[str]
) -> Stream:
    cleaned = sorted({w.strip().casefold() for w in words if w.strip()})
    stream.blocked_words = cleaned
    await session.flush()
    assert stream.id is not None
    # Each process's hub takes the room's new chat rules from this signal (the words ride
    # in it, so no hub has to read them back first); viewers never see the list (it would
    # tell them how to get around it). The route also hands them to its own hub at once.
    payload = render.encode_event(CONTROL_RELOAD, {"blocked_words": cleaned})
    after_commit(session, partial(broker.publish_ephemeral, room_of(stream.id), payload))
    return stream


async def moderate(
    *,
    session: AsyncSession,
    broker: Broker,
    stream: Stream,
    by: User,
    user_id: int,
    action: str,
    duration_s: int | None,
) -> StreamModeration | None:
    assert stream.id is not None and by.id is not None
    target = await session.get(User, user_id)
    if target is None:
        raise UserNotFound(id=user_id)
    if await can_drive(session=session, user=target, stream=stream):
        raise CannotModerateDriver()
    existing = await session.get(StreamModeration, (stream.id, user_id))
    until = utcnow() + timedelta(seconds=duration_s) if duration_s else None
    record: StreamModeration | None
    if action in ("unmute", "unban"):
        if existing is not None and existing.action == action.removeprefix("un"):
            await session.delete(existing)
        record = None
    else:
        if existing is None:
            existing = StreamModeration(
                stream_id=stream.id, user_id=user_id, action=action, by_user_id=by.id
            )
            session.add(existing)
        existing.action = action
        existing.until = until
        existing.by_user_id = by.id
        existing.created_at = utcnow()
        record = existing
    await session.flush()
    _publish(
        session,
        broker,
        stream.id,
        ServerEvent.MODERATION,
        {"user_id": user_id, "action": action, "until": until.isoformat() if until else None},
    )
    return record


async def moderation_of(
    *, session: AsyncSession, stream_id: int, user_id: int
) -> StreamModeration | None:
    record = await session.get(StreamModeration, (stream_id, user_id))
    if record is None or (record.until is not None and record.until <= utcnow()):
        return None
    return record


async def viewer_in_room(
    *, session: AsyncSession, stream_id: int, user_id: int
) -> tuple[User | None, StreamModeration | None]:
    """A signed-in viewer and their standing in the stream, in one query (a room join)."""
    row = (
        await session.execute(
            select(User, StreamModeration)
            .outerjoin(
                StreamModeration,
                (col(StreamModeration.user_id) == col(User.id))
                & (col(StreamModeration.stream_id) == stream_id),
            )
            .where(col(User.id) == user_id)
        )
    ).first()
    if row is None:
        return None, None
    user: User = row[0]
    record: StreamModeration | None = row[1]
    if record is not None and record.until is not None and record.until <= utcnow():
        record = None
    return user, record


async def delete_chat_message(
    *, session: AsyncSession, broker: Broker, stream: Stream, seq: int
) -> None:
    assert stream.id is not None
    _publish(session, broker, stream.id, ServerEvent.CHAT_DELETED, {"seq": seq})


# --- Hooks for the rooms hub --------------------------------------------------------------


async def load_room_settings(
    sessions: async_sessionmaker[AsyncSession], stream_id: int
) -> dict[str, Any]:
    """The chat rules a hub enforces for a room: status and blocked words."""
    async with session_scope(sessions, read_only=True) as session:
        stream = await session.get(Stream, stream_id)
        if stream is None:
            return {"status": StreamStatus.ENDED, **wordfilter.chat_rules([])}
        return {"status": stream.status, **wordfilter.chat_rules(stream.blocked_words)}


async def load_room_state(
    sessions: async_sessionmaker[AsyncSession], stream_id: int
) -> dict[str, Any] | None:
    """What a room's welcome shows (``room_state``), read once when the room opens in a
    process; None when there is no such stream."""
    async with session_scope(sessions, read_only=True) as session:
        stream = await session.get(Stream, stream_id)
        if stream is None:
            return None
        return await room_state(session=session, stream=stream, book=await load_rate_book(session))


async def record_room_stats(
    sessions: async_sessionmaker[AsyncSession],
    stream_id: int,
    peak: int,
    new_chats: int,
    viewers: dict[str, str] | None = None,
) -> None:
    async with session_scope(sessions) as session:
        now = utcnow()
        rows = [
            {"stream_id": stream_id, "viewer_key": key[:64], "locale": locale, "first_seen_at": now}
            for key, locale in (viewers or {}).items()
        ]
        table = StreamViewer.__table__  # type: ignore[attr-defined]
        for start in range(0, len(rows), 500):  # well under SQLite's bound-parameter limit
            await session.execute(
                dialect_insert(session, table)
                .values(rows[start : start + 500])
                .on_conflict_do_nothing(index_elements=["stream_id", "viewer_key"])
            )
        await session.execute(
            update(Stream)
            .where(col(Stream.id) == stream_id)
            .values(
                peak_viewers=case(
                    (col(Stream.peak_viewers) < peak, peak), else_=col(Stream.peak_viewers)
                ),
                chat_messages=col(Stream.chat_messages) + new_chats,
            )
        )
