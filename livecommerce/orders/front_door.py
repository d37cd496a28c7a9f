"""The order route's front door: a flash-sale rush answered without the request machinery.

In a rush three buyers in four lose, all in the same second, and the rest each cost a whole
order. This ASGI middleware sits in front of ``POST /api/v1/orders``. For a request it can
fully understand (a JSON body that is a valid order, a signed-in buyer's valid token, a
language the request names by ``?locale=`` or ``Accept-Language``) it asks the admission
gate for the order's units (``Admission.at_door``):

- **A certain loser** hears the same localized 409 the order path would give, at once,
  without a single SQL statement.
- **A winner** (the gate handed it units, a ``Ticket``) is placed here: the door opens the
  request's transaction itself, loads the buyer's row as the route's dependencies do (a
  missing or deactivated account is the route's 401), chooses the currency as they do
  (``?currency=``, else the buyer's saved one), and calls the very function the route calls
  (``placing.place``), which claims the ticket. Routing, dependency solving and a second
  validation of the body are skipped; that was a fifth of a winner's CPU.
- **Anything else** (no language named, a guest, a bad token or body, a gate that cannot
  tell) goes on untouched to the route, which checks it all again.

What the door answers is what the app would: the response of the route (``JSONResponse``
with the same body and headers), errors through the app's own exception handlers, applied
as Starlette's exception layer applies them (so a ``PoolTimeout`` is its 503); an error no
handler takes (a bug) propagates to the app's server-error layer, which answers its 500.
The middlewares added after the door (CORS, the body size limit, the socket router) wrap its
answers as they wrap the route's. Units the door took and the order did not keep go back to
the gate: on rollback once claimed (``Ticket.claim``), and here otherwise.

One answer differs from the route's, on purpose: a deactivated account whose token has not
yet expired hears "sold out" rather than 401 when the gate has nothing for it (its account
is not looked up for a refusal).
"""

from __future__ import annotations

import email.message
import json
from dataclasses import dataclass
from functools import partial
from typing import Any

from fastapi.responses import JSONResponse
from fastapi.security.utils import get_authorization_scheme_param
from starlette.datastructures import Headers, QueryParams
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from livecommerce.accounts.security import decode_token
from livecommerce.db import session_scope
from livecommerce.deps import BEARER_STATE, active_user, choose_currency, requested_locale
from livecommerce.errors import AppError
from livecommerce.flashsales.admission import Admission, Ticket
from livecommerce.orders import placing
from livecommerce.orders.schemas import OrderIn

ORDERS_PATH = "/api/v1/orders"
MAX_BODY = 64 * 1024  # an order body is a few hundred bytes; larger ones take the full path


@dataclass(frozen=True)
class Understood:
    """An order request the door can answer as the route would."""

    order: OrderIn
    buyer_id: int
    locale: str
    currency: str | None  # ?currency=
    idempotency_key: str | None


class OrderFrontDoor:
    def __init__(self, app: ASGIApp, *, path: str = ORDERS_PATH) -> None:
        self.app = app
        self.path = path
        self._handlers: dict[Any, Any] | None = None

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
        admission: Admission | None = getattr(scope["app"].state, "admission", None)
        if admission is not None and admission.usable and not more:
            understood = understand(scope, body)
            if understood is not None:
                verdict = await admission.at_door(
                    sale_id=understood.order.flash_sale_id,
                    items=[(i.product_id, i.quantity) for i in understood.order.items],
                    buyer_id=understood.buyer_id,
                    keyed=understood.idempotency_key is not None,
                )
                if isinstance(verdict, Ticket):
                    await self._win(scope, receive, send, understood, verdict)
                    return
                if verdict is not None:
                    scope.setdefault("state", {})["locale"] = understood.locale  # as get_context
                    await self._refuse(scope, receive, send, verdict)
                    return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": more}
            return await receive()

        await self.app(scope, replay, send)

    async def _win(
        self, scope: Scope, receive: Receive, send: Send, understood: Understood, ticket: Ticket
    ) -> None:
        try:
            await self._handled(scope, partial(self._place, understood, ticket))(
                scope, receive, send
            )
        finally:
            if not ticket.claimed:  # answered before the order claimed its units
                await ticket.release()

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, error: AppError) -> None:
        """The gate's refusal, rendered by the app's handler for it (as if raised; the
        exception layer is skipped for the commonest answer of a rush)."""
        handlers = self._handlers_of(scope)
        handler = next(handlers[cls] for cls in type(error).__mro__ if cls in handlers)
        response = await handler(Request(scope, receive), error)
        await response(scope, receive, send)

    def _handlers_of(self, scope: Scope) -> dict[Any, Any]:
        if self._handlers is None:
            handlers = scope["app"].exception_handlers
            self._handlers = {k: v for k, v in handlers.items() if k not in (500, Exception)}
        return self._handlers

    def _handled(self, scope: Scope, answer: ASGIApp) -> ASGIApp:
        """``answer`` behind the app's exception handlers, as Starlette puts them in front of
        the router (all but the server-error one, which stays outside every middleware)."""
        handlers = self._handlers_of(scope)
        return ExceptionMiddleware(answer, handlers=handlers, debug=scope["app"].debug)

    async def _place(
        self, understood: Understood, ticket: Ticket, scope: Scope, receive: Receive, send: Send
    ) -> None:
        state = scope["app"].state
        async with session_scope(state.sessions) as session:  # as deps.get_session
            buyer = await active_user(session, understood.buyer_id)
            scope.setdefault("state", {})["locale"] = understood.locale  # as deps.get_context
            answer = await placing.place(
                session=session,
                buyer=buyer,
                data=understood.order,
                locale=understood.locale,
                currency=choose_currency(understood.currency, buyer, understood.locale),
                idempotency_key=understood.idempotency_key,
                settings=state.settings,
                admission=state.admission,
                announcer=state.hub,
                books=state.rate_books,
                ticket=ticket,
            )
        # The commit is done: a failed commit was an error answer, as through the route.
        response = JSONResponse(answer.body, status_code=answer.status, headers=answer.headers)
        await response(scope, receive, send)


def understand(scope: Scope, body: bytes) -> Understood | None:
    """The order and the buyer, read exactly as the route reads them; None when the door
    cannot tell (the route then gives the precise answer)."""
    headers = Headers(scope=scope)
    query = QueryParams(scope.get("query_string", b""))
    try:
        locale = requested_locale(query.get("locale"), headers.get("accept-language"))
    except AppError:
        return None
    scheme, token = get_authorization_scheme_param(headers.get("authorization"))
    if locale is None or scheme.lower() != "bearer" or not token:
        return None
    if not is_json(headers.get("content-type")):
        return None
    settings = scope["app"].state.settings
    try:
        claims = decode_token(token, secret=settings.resolved_secret_key())
        # As FastAPI reads a JSON body (Starlette's ``request.json()``), then validates it.
        order = OrderIn.model_validate(json.loads(body))
    except Exception:  # not valid (the token, the JSON, the order): the route says how
        return None
    # The route's authentication reuses what was checked here (deps.bearer_claims).
    scope.setdefault("state", {})[BEARER_STATE] = (token, claims)
    if claims.is_guest or claims.user_id is None:
        return None
    return Understood(
        order, claims.user_id, locale, query.get("currency"), headers.get("idempotency-key")
    )


def is_json(content_type: str | None) -> bool:
    """Whether FastAPI reads a body of this type as JSON (with its strict default, a body
    without a content type is not)."""
    if not content_type:
        return False
    if content_type == "application/json":
        return True
    message = email.message.Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )
