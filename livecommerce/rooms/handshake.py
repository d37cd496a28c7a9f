"""What every WebSocket of the app does before its first frame (docs/protocol.md).

The socket is accepted first and refused with an ``error`` frame then a close code, so a
browser's client can tell the reasons apart. The steps are shared by the room socket
(livecommerce/streams/room.py) and a buyer's own channel (livecommerce/notifications/
routes.py): the token, the locale and currency, the resume position (``last_seq``,
``epoch``) and the socket caps. Which user a token may stand for, and what else the socket
checks, is each endpoint's own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from starlette.websockets import WebSocket

from livecommerce.accounts.models import User
from livecommerce.accounts.security import TokenClaims, decode_token
from livecommerce.config import Settings
from livecommerce.deps import negotiate_locale
from livecommerce.errors import AppError
from livecommerce.events import ServerEvent
from livecommerce.i18n.locales import DEFAULT_CURRENCY
from livecommerce.i18n.messages import N_, translate
from livecommerce.i18n.money import is_supported_currency
from livecommerce.rooms.hub import CLOSE_TRY_AGAIN, reconnect_reason
from livecommerce.rooms.limits import Cap, RoomLimits, Ticket
from livecommerce.rooms.render import frame

CLOSE_BAD_REQUEST = 4400
# Too many sockets open already for this user (or guest address): see rooms/limits.py.
CLOSE_TOO_MANY_SOCKETS = 4429
TOO_MANY_SOCKETS_REASON = "too many sockets: close another one first"
EPOCH_MAX = 64  # characters of a client's ``epoch``; longer is no epoch of ours
# The most digits a ``last_seq`` may have: a seq is a 64-bit count, and a longer number
# is no position of ours (answered like any unusable one).
LAST_SEQ_DIGITS_MAX = 18
UNUSABLE_LAST_SEQ = -1  # a ``last_seq`` was given but means nothing: ``resumed: false``

# The errors of the handshake and of frames the transport refuses before any endpoint
# reads them. An endpoint adds its own (``messages=`` below).
ERRORS: dict[str, str] = {
    "invalid_token": N_("Your session has expired. Sign in again."),
    "unsupported_locale": N_("This language is not supported."),
    "unsupported_currency": N_("This currency is not supported."),
    "invalid_json": N_("The message is not valid JSON."),
    "invalid_frame": N_("The message is not in the expected format."),  # details.field
    "unknown_type": N_("Unknown message type."),
    "frame_too_large": N_("The message is too large."),
    "binary_not_supported": N_("Send text frames with JSON."),
    "rate_limited": N_("You are sending messages too fast. Wait a moment."),
    "rooms_unavailable": N_("Live rooms are unavailable for a moment. Reconnecting…"),
    "too_many_sockets": N_(
        "Too many windows are watching at once. Close one of them and try again."
    ),
}


def error_frame(
    locale: str, code: str, /, *, messages: Mapping[str, str] = ERRORS, **params: Any
) -> str:
    """The ``error`` frame for ``code`` (its message from ``messages``); ``params`` fill the
    message and are sent as ``details``."""
    return frame(
        ServerEvent.ERROR,
        {"code": code, "message": translate(locale, messages[code], **params), "details": params},
    )


async def refuse(
    websocket: WebSocket,
    locale: str,
    code: str,
    close: int,
    *,
    messages: Mapping[str, str] = ERRORS,
) -> None:
    """Refuse an accepted socket: the ``error`` frame, then the close code."""
    await websocket.send_text(error_frame(locale, code, messages=messages))
    await websocket.close(close)


async def try_again(websocket: WebSocket, locale: str) -> None:
    """The socket cannot be served now (its broker or the database is unreachable)."""
    await websocket.send_text(error_frame(locale, "rooms_unavailable"))
    reason = reconnect_reason("rooms unavailable: reconnect with last_seq and epoch", 1)
    await websocket.close(CLOSE_TRY_AGAIN, reason)


def read_token(websocket: WebSocket, settings: Settings) -> TokenClaims | None:
    """The ``token`` query parameter's claims; None when missing, forged or expired."""
    token = websocket.query_params.get("token")
    if not token:
        return None
    try:
        return decode_token(token, secret=settings.resolved_secret_key())
    except AppError:
        return None


def stands_for(claims: TokenClaims, user: User | None) -> bool:
    """Whether a signed-in token still stands for ``user`` (active, not signed out since)."""
    return user is not None and user.is_active and claims.current_for(user)


def choose_locale(websocket: WebSocket, user: User | None, settings: Settings) -> str | None:
    """``?locale=``, else Accept-Language, else the user's, else the default; None when the
    requested one is not supported."""
    try:
        return negotiate_locale(websocket, user, settings.default_locale)
    except AppError:
        return None


def choose_currency(websocket: WebSocket, user: User | None, locale: str) -> str | None:
    """``?currency=`` (blank is none), else the user's, else the locale's market currency;
    None when the requested one is not supported."""
    currency = (websocket.query_params.get("currency") or "").strip().upper() or (
        user.currency if user else DEFAULT_CURRENCY[locale]
    )
    return currency if is_supported_currency(currency) else None


def parse_last_seq(raw: str | None) -> int | None:
    """The client's ``last_seq``: None when absent, :data:`UNUSABLE_LAST_SEQ` unless it is a
    plain decimal number (ASCII digits only: no sign, space or ``_``) of at most
    :data:`LAST_SEQ_DIGITS_MAX` digits."""
    if raw is None:
        return None
    if raw.isascii() and raw.isdigit() and len(raw) <= LAST_SEQ_DIGITS_MAX:
        return int(raw)
    return UNUSABLE_LAST_SEQ


def parse_epoch(raw: str | None) -> str | None:
    """The client's ``epoch`` (opaque); None when absent, empty or too long to be ours."""
    return raw if raw and len(raw) <= EPOCH_MAX else None


async def claim_socket(
    websocket: WebSocket, limits: RoomLimits, caps: Sequence[Cap], locale: str
) -> Ticket | None:
    """Count the socket against ``caps``; None once it was refused (``too_many_sockets``)."""
    claimed = await limits.open_socket(caps)
    if isinstance(claimed, Cap):
        await websocket.send_text(error_frame(locale, "too_many_sockets", limit=claimed.limit))
        await websocket.close(CLOSE_TOO_MANY_SOCKETS, TOO_MANY_SOCKETS_REASON)
        return None
    return claimed
