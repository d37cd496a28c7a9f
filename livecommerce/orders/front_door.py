"""The order route's front door: the refusals that need neither the database nor the
request machinery behind it.

In a flash-sale rush three buyers in four lose, all in the same second. This ASGI middleware
sits in front of ``POST /api/v1/orders``; for a request it can fully understand (a valid
body, a signed-in buyer's valid token, a language the request names) it asks the admission
gate for the order's units (``Admission.at_door``). If it cannot win, the door answers the
same localized 409 the order path would, at once. If the gate gave it units, the request
goes on with that ticket for the order path to claim (an order answered before it got there,
a 401 say, gives them back). Everything else goes on untouched to the route, which checks it
all again.

Two answers differ from the route's, on purpose: a deactivated account whose token has
not yet expired hears "sold out" rather than 401 (its token is not looked up here), and a
request without ``?locale=`` or ``Accept-Language`` always takes the full path (its language
is the user's saved one, which is in the database).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs

from pydantic import ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from livecommerce.accounts.security import decode_token
from livecommerce.deps import BEARER_STATE
from livecommerce.errors import AppError
from livecommerce.flashsales.admission import Admission, Ticket
from livecommerce.i18n.locales import normalize_locale, parse_accept_language
from livecommerce.orders.schemas import OrderIn

ORDERS_PATH = "/api/v1/orders"
MAX_BODY = 64 * 1024  # an order body is a few hundred bytes; larger ones take the full path


class OrderFrontDoor:
    def __init__(self, app: ASGIApp, *, path: str = ORDERS_PATH) -> None:
        self.app = app
        self.path = path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != self.path:
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size, more = 0, True
        while more and size <= MAX_BODY:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunk = message.get("body", b"")
            chunks.append(chunk)
            size += len(chunk)
            more = bool(message.get("more_body"))
        body = b"".join(chunks)
        ticket: Ticket | None = None
        if not more:
            verdict = await self._verdict(scope, body)
            if isinstance(verdict, Ticket):
                ticket = verdict
                scope.setdefault("state", {})["order_ticket"] = ticket
            elif verdict is not None:
                await _answer(send, *verdict)
                return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": more}
            return await receive()

        try:
            await self.app(scope, replay, send)
        finally:
            if ticket is not None and not ticket.claimed:  # answered before the order path
                await ticket.release()

    async def _verdict(self, scope: Scope, body: bytes) -> tuple[AppError, str] | Ticket | None:
        state = scope["app"].state
        admission: Admission | None = getattr(state, "admission", None)
        if admission is None or not admission.usable:
            return None
        headers = {k.lower(): v for k, v in scope["headers"]}
        locale = _locale(scope, headers)
        auth = headers.get(b"authorization", b"").decode("latin-1")
        if locale is None or not auth.startswith("Bearer "):
            return None
        try:
            claims = decode_token(auth[7:], secret=state.settings.resolved_secret_key())
            order = OrderIn.model_validate_json(body)
        except (AppError, ValidationError, ValueError):
            return None  # the route gives the precise answer
        # The route's authentication reuses what was checked here (deps.bearer_claims).
        scope.setdefault("state", {})[BEARER_STATE] = (auth[7:], claims)
        if claims.user_id is None:
            return None
        verdict = await admission.at_door(
            sale_id=order.flash_sale_id,
            items=[(item.product_id, item.quantity) for item in order.items],
            buyer_id=claims.user_id,
            keyed=b"idempotency-key" in headers,
        )
        return (verdict, locale) if isinstance(verdict, AppError) else verdict


def _locale(scope: Scope, headers: dict[bytes, bytes]) -> str | None:
    """As ``deps.negotiate_locale``, without the user's saved locale (None then)."""
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    if "locale" in query:
        return normalize_locale(query["locale"][0])  # an unsupported one: the route's 422
    preferred = parse_accept_language(headers.get(b"accept-language", b"").decode("latin-1"))
    return preferred[0] if preferred else None


async def _answer(send: Send, error: AppError, locale: str) -> None:
    payload: Any = error.body(locale)
    data = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    await send(
        {
            "type": "http.response.start",
            "status": error.status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(data)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})
