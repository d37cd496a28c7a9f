"""The order route's front door: a flash-sale rush answered without the request machinery.

In a rush three buyers in four lose, all in the same second, and the rest each cost a whole
order. This ASGI middleware sits in front of ``POST /api/v1/orders``. For a request it can
fully understand (a JSON body that is a valid order, a signed-in buyer's valid token, a
language the request names by ``?locale=`` or ``Accept-Language``) it asks the admission
gate for the order's units (``Admission.at_door``):

- **A certain loser** hears the same localized 409 the order path would give, at once,
  without a single SQL statement.
- **A winner** (the gate handed it units, a ``Ticket``) is handed to the winner desk
  (``winners.py``), which places it with the other winners of the moment in one
  transaction, or alone through the very function the route calls (``placing.place``):
  the buyer's row loaded as the route's dependencies load it (a missing or deactivated
  account is the route's 401), the currency chosen as they choose it (``?currency=``, else
  the buyer's saved one). Routing, dependency solving and a second validation of the body
  are skipped; that was a fifth of a winner's CPU.
- **Anything else** (no language named, a guest, a bad token or body, a gate that cannot
  tell) goes on untouched to the route, which checks it all again.

What the door answers is what the app would: the response of the route (``JSONResponse``
with the same body and headers), errors through the app's own exception handlers, applied
as Starlette's exception layer applies them (so a ``PoolTimeout`` is its 503); an error no
handler takes (a bug) propagates to the app's server-error layer, which answers its 500.
The middlewares added after the door (CORS, the body size limit, the socket router) wrap its
answers as they wrap the route's. Units the door took for a winner are the desk's to keep or
give back; a refusal's rendering is kept and its bytes sent again (see ``_refuse``).

One answer differs from the route's, on purpose: a deactivated account whose token has not
yet expired hears "sold out" rather than 401 when the gate has nothing for it (its account
is not looked up for a refusal).
"""

from __future__ import annotations

import email.message
import json
from collections.abc import Hashable
from functools import partial
from typing import Any

from fastapi.responses import JSONResponse, Response
from fastapi.security.utils import get_authorization_scheme_param
from starlette.datastructures import Headers, QueryParams
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from livecommerce.accounts.deps import BEARER_STATE
from livecommerce.accounts.security import decode_token
from livecommerce.deps import requested_locale
from livecommerce.errors import AppError
from livecommerce.flashsales.admission import Admission, Ticket
from livecommerce.orders.schemas import OrderIn
from livecommerce.orders.winners import OrderRequest, Winner, WinnerDesk

ORDERS_PATH = "/api/v1/orders"
MAX_BODY = 64 * 1024  # an order body is a few hundred bytes; larger ones take the full path
REFUSALS_KEPT = 1024  # rendered refusals kept for reuse (a few per sale and language)


class OrderFrontDoor:
    def __init__(self, app: ASGIApp, *, path: str = ORDERS_PATH) -> None:
        self.app = app
        self.path = path
        self._handlers: dict[Any, Any] | None = None
        self._refusals: dict[Hashable, tuple[int, list[tuple[bytes, bytes]], bytes]] = {}

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
                    await self._refuse(scope, receive, send, verdict, understood.locale)
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
        self, scope: Scope, receive: Receive, send: Send, understood: OrderRequest, ticket: Ticket
    ) -> None:
        winner = Winner(understood, ticket)
        scope.setdefault("state", {})["locale"] = understood.locale  # as accounts.deps.get_context
        await self._handled(scope, partial(self._place, winner))(scope, receive, send)

    async def _refuse(
        self, scope: Scope, receive: Receive, send: Send, error: AppError, locale: str
    ) -> None:
        """The gate's refusal, rendered by the app's handler for it (as if raised; the
        exception layer is skipped for the commonest answer of a rush).

        The handler's answer to an ``AppError`` depends on the error and the language alone,
        and a rush repeats the same few refusals hundreds of times: each is rendered once
        and its bytes sent again (status, headers and body as the handler made them)."""
        key = _refusal_key(error, locale)
        answer = self._refusals.get(key) if key is not None else None
        if answer is None:
            handlers = self._handlers_of(scope)
            handler = next(handlers[cls] for cls in type(error).__mro__ if cls in handlers)
            response = await handler(Request(scope, receive), error)
            if key is None or type(response) not in (Response, JSONResponse) or response.background:
                await response(scope, receive, send)
                return
            if len(self._refusals) >= REFUSALS_KEPT:
                self._refusals.clear()
            answer = self._refusals[key] = (
                response.status_code,
                response.raw_headers,
                response.body,
            )
        status, headers, body = answer
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

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

    async def _place(self, winner: Winner, scope: Scope, receive: Receive, send: Send) -> None:
        desk: WinnerDesk = scope["app"].state.winner_desk
        # Committed once this returns: a failed commit was an error answer, as on the route.
        answer = await desk.place(winner)
        response = JSONResponse(answer.body, status_code=answer.status, headers=answer.headers)
        await response(scope, receive, send)


def _refusal_key(error: AppError, locale: str) -> Hashable | None:
    """What a refusal's rendering depends on; None when it cannot be told apart by value."""
    key = (
        type(error),
        locale,
        tuple(sorted(error.params.items())),
        tuple(sorted(error.details.items())),
    )
    try:
        hash(key)
    except TypeError:  # a nested value: rendered each time
        return None
    return key


def understand(scope: Scope, body: bytes) -> OrderRequest | None:
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
    # The route's authentication reuses what was checked here (accounts.deps.bearer_claims).
    scope.setdefault("state", {})[BEARER_STATE] = (token, claims)
    if claims.is_guest or claims.user_id is None:
        return None
    return OrderRequest(
        order,
        claims.user_id,
        claims.version,
        locale,
        query.get("currency"),
        headers.get("idempotency-key"),
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
