"""The FastAPI application: routers, error rendering and start-up checks."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from livecommerce import __version__, jobs
from livecommerce.accounts.routes import router as accounts_router
from livecommerce.accounts.security import set_hash_concurrency
from livecommerce.accounts.throttle import MemoryThrottle, RedisThrottle, Throttle
from livecommerce.catalog.routes import router as catalog_router
from livecommerce.composition import wire
from livecommerce.config import Settings, get_settings
from livecommerce.db import create_engine, ping
from livecommerce.errors import (
    API_ERROR_RESPONSES,
    AppError,
    PayloadTooLarge,
    ServiceUnavailable,
    error_responses,
    field_message,
    megabytes,
)
from livecommerce.flashsales.admission import Admission
from livecommerce.flashsales.gate import Gate, MemoryGate, RedisGate
from livecommerce.fulfillment.rendering import SHIPMENT_STATUS_LABELS
from livecommerce.fulfillment.routes import router as fulfillment_router
from livecommerce.i18n.locales import normalize_locale, parse_accept_language
from livecommerce.i18n.messages import N_, load_catalogs, translate
from livecommerce.logistics.network import load_network
from livecommerce.migrate import ensure_migrated
from livecommerce.notifications.feed import NotificationFeed
from livecommerce.notifications.routes import router as notifications_router
from livecommerce.notifications.routes import routes as notification_routes
from livecommerce.notifications.service import ORDER_STATUS, SHIPMENT_STATUS
from livecommerce.orders.estimates import EstimateCache, EstimateDesk, room_estimates
from livecommerce.orders.front_door import OrderFrontDoor
from livecommerce.orders.routes import router as orders_router
from livecommerce.orders.routes import sandbox_router
from livecommerce.orders.sandbox import SandboxProvider, storage_url
from livecommerce.orders.states import STATUS_LABELS
from livecommerce.orders.winners import WinnerDesk
from livecommerce.rates.routes import router as rates_router
from livecommerce.rates.service import RateBookCache
from livecommerce.rooms.broker import Broker, MemoryBroker
from livecommerce.rooms.hub import Hub
from livecommerce.rooms.limits import Policy as RoomPolicy
from livecommerce.rooms.limits import make_room_limits
from livecommerce.rooms.presence import MemoryPresence, Presence
from livecommerce.streams import service as streams_service
from livecommerce.streams.room import routes as room_routes
from livecommerce.streams.room_events import StreamRoomEvents
from livecommerce.streams.routes import router as streams_router
from livecommerce.web.routes import router as web_router
from livecommerce.web.routes import static_app
from livecommerce.wiring import ProcessListeners, wired_sessions
from workers.app import make_celery

log = logging.getLogger("livecommerce")

HTTP_MESSAGES = {
    404: ("not_found", N_("Nothing was found at this address.")),
    405: ("method_not_allowed", N_("This method is not allowed here.")),
    401: ("not_authenticated", N_("Sign in to continue.")),
    413: ("payload_too_large", N_("The request is too large.")),
}
INTERNAL_MESSAGE = N_("Something went wrong on our side. Please try again.")


def request_locale(request: Request) -> str:
    """The locale already negotiated for this request, else the best guess from its headers."""
    chosen = getattr(request.state, "locale", None)
    if chosen:
        return str(chosen)
    explicit = normalize_locale(request.query_params.get("locale"))
    if explicit:
        return explicit
    preferred = parse_accept_language(request.headers.get("accept-language"))
    settings: Settings = request.app.state.settings
    return preferred[0] if preferred else settings.default_locale


def error_response(
    status: int,
    code: str,
    message: str,
    details: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = {"error": {"code": code, "message": message, "details": jsonable_encoder(details or {})}}
    return JSONResponse(body, status_code=status, headers=headers)


def _field_name(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] == "body":
        parts = parts[1:]
    return ".".join(parts) or "body"


def field_error(err: dict[str, Any], locale: str) -> dict[str, Any]:
    kind = str(err.get("type", "value_error"))
    ctx = dict(err.get("ctx") or {})
    if kind == "value_error" and "email" in str(err.get("msg", "")):
        kind = "invalid_email"
    message = field_message(kind, ctx, locale)
    return {"field": _field_name(err.get("loc", ())), "code": kind, "message": message}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AppError)
    async def _app_error(request: Request, exc: AppError) -> JSONResponse:
        locale = request_locale(request)
        headers: dict[str, str] | None = getattr(exc, "headers", None)
        if exc.status == 401:
            headers = {"WWW-Authenticate": "Bearer"}
        return error_response(exc.status, exc.code, exc.localized(locale), exc.details, headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        locale = request_locale(request)
        fields = [field_error(dict(err), locale) for err in exc.errors()]
        return error_response(
            422,
            "validation_error",
            translate(locale, "Some fields are invalid."),
            {"fields": fields},
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code, message = HTTP_MESSAGES.get(
            exc.status_code, ("http_error", N_("The request cannot be processed."))
        )
        return error_response(
            exc.status_code,
            code,
            translate(request_locale(request), message),
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(PoolTimeout)
    async def _busy(request: Request, exc: PoolTimeout) -> JSONResponse:
        # Every database connection stayed busy for the whole pool timeout: an overload to
        # retry, not a fault of the request.
        log.warning("no database connection free on %s %s", request.method, request.url.path)
        error = ServiceUnavailable(details={"database": "busy"})
        locale = request_locale(request)
        return error_response(
            error.status,
            error.code,
            translate(locale, error.message),
            error.details,
            headers={"Retry-After": "1"},
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(
            500, "internal_error", translate(request_locale(request), INTERNAL_MESSAGE)
        )


class BodySizeLimit:
    """Stops reading a request body past the limit, whether or not it declared its length.

    Starlette spools uploads to disk as they arrive; without this a chunked upload would be
    read whole before the route could look at its size.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise PayloadTooLarge(limit_mb=megabytes(self.limit))
            return message

        await self.app(scope, limited_receive, send)


_NOSNIFF = (b"x-content-type-options", b"nosniff")
_NO_STORE = (b"cache-control", b"no-store")


class SecurityHeaders:
    """``X-Content-Type-Options: nosniff`` on every HTTP response, and ``Cache-Control:
    no-store`` on API answers that set no caching of their own (the delivery estimate's
    ``max-age`` and ETag stay; pages and static files are outside ``/api/``).

    Pure ASGI, outside every other layer, so the order front door's answers (its cached
    refusals included) get them too; the headers are copied, never appended in place, as a
    cached refusal's list is sent again.
    """

    def __init__(self, app: ASGIApp, *, api_prefix: str = "/api/") -> None:
        self.app = app
        self.api_prefix = api_prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        api = scope["path"].startswith(self.api_prefix)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                names = {name.lower() for name, _ in headers}
                if _NOSNIFF[0] not in names:  # pages set their own
                    headers.append(_NOSNIFF)
                if api and _NO_STORE[0] not in names:
                    headers.append(_NO_STORE)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class OptionsAnswer:
    """``OPTIONS`` on a route's path answers 204 with the path's methods in ``Allow``
    (the router alone answers 405 with the ``Allow`` of the first route on that path).

    A CORS preflight (an ``Origin`` and ``Access-Control-Request-Method``) goes on to the
    CORS layer when one is configured; a path no route serves goes on to its 404.
    """

    def __init__(self, app: ASGIApp, *, cors: bool) -> None:
        self.app = app
        self.cors = cors

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "OPTIONS":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        if self.cors and b"origin" in headers and b"access-control-request-method" in headers:
            await self.app(scope, receive, send)
            return
        allowed: set[str] = set()
        # Included routers are one entry each in ``router.routes``: their routes come
        # through FastAPI's own iteration (as the router matches them).
        for route in iter_route_contexts(scope["app"].router.routes):
            methods = getattr(route, "methods", None)
            if methods and route.matches(scope)[0] != Match.NONE:
                allowed.update(methods)
        if not allowed:
            await self.app(scope, receive, send)
            return
        allowed.add("OPTIONS")
        allow = ", ".join(sorted(allowed)).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 204,
                "headers": [(b"allow", allow), (b"content-length", b"0")],
            }
        )
        await send({"type": "http.response.body", "body": b""})


class SocketRoutes:
    """Serves the WebSocket routes before the HTTP layers and the API router.

    A join storm is thousands of handshakes a second; through the whole stack each would pass
    the body limit, the exception and exit-stack layers and be matched against every API
    route before reaching its own, which costs more than the join itself. The socket
    handlers answer their own errors (an ``error`` frame and a close code), so none of those
    layers has anything to do for them.
    """

    def __init__(self, app: ASGIApp, routes: list[BaseRoute]) -> None:
        self.app = app
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            for route in self.routes:
                match, child_scope = route.matches(scope)
                if match == Match.FULL:
                    scope.update(child_scope)
                    await route.handle(scope, receive, send)
                    return
        await self.app(scope, receive, send)


def make_realtime(settings: Settings) -> tuple[Broker, Presence]:
    """The embedded in-process broker, or Redis when ``LIVECOMMERCE_REDIS_URL`` is set."""
    if not settings.redis_url:
        return MemoryBroker(), MemoryPresence()
    from livecommerce.rooms.redis_broker import RedisBroker, RedisPresence

    return RedisBroker(settings.redis_url), RedisPresence(settings.redis_url)


def make_login_throttle(settings: Settings) -> Throttle:
    """Sign-in failure counts: in process, or in Redis (shared by every API process)."""
    if not settings.redis_url:
        return MemoryThrottle()
    return RedisThrottle(settings.redis_url)


def make_gate(settings: Settings) -> Gate:
    """Flash-sale admission: in process, or in Redis (shared by every API process)."""
    if not settings.redis_url:
        return MemoryGate()
    return RedisGate(settings.redis_url)


async def _restocked(app: FastAPI, product_ids: list[int]) -> None:
    admission: Admission = app.state.admission
    await admission.restocked(product_ids)


def _noticed(app: FastAPI) -> None:
    feed: NotificationFeed = app.state.notifications
    feed.poke()


def api_listeners(app: FastAPI) -> ProcessListeners:
    """What only an API process listens for, after commit (a worker has none): stock that
    may have grown reaches its flash-sale admission gate, notices it wrote its live feed."""
    return ProcessListeners(
        stock=(partial(_restocked, app),), notice_wakeups=(partial(_noticed, app),)
    )


def create_app(settings: Settings | None = None, *, check_migrations: bool = True) -> FastAPI:
    settings = settings or get_settings()
    load_catalogs(settings.locales_dir)
    load_network(settings.logistics_file)  # a broken corridor file stops start-up, not a quote

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(
            settings.resolved_database_url, pool_timeout=settings.database_pool_timeout
        )
        if check_migrations:
            try:
                await ensure_migrated(engine)
            except Exception:
                await engine.dispose()
                raise
        app.state.engine = engine
        # Jobs for the Celery workers (fulfilment), sent after commit; see livecommerce/jobs.py.
        app.state.jobs = job_queue = jobs.JobQueue(partial(make_celery, settings))
        # The domain hooks every process has (composition.py), and this process's own.
        app.state.wiring = wire(job_queue, api_listeners(app))
        app.state.sessions = sessions = wired_sessions(engine, app.state.wiring)
        broker, presence = make_realtime(settings)
        # What stream rooms' events mean, and the order ticker the order path feeds.
        app.state.room_events = room_events = StreamRoomEvents()
        hub = Hub(
            broker=broker,
            presence=presence,
            load_settings=partial(streams_service.load_room_settings, sessions),
            load_state=partial(streams_service.load_room_state, sessions),
            flush_stats=partial(streams_service.record_room_stats, sessions),
            rules=room_events,
        )
        app.state.broker = broker
        gate = make_gate(settings)
        set_hash_concurrency(settings.password_hash_concurrency)
        app.state.login_throttle = login_throttle = make_login_throttle(settings)
        app.state.admission = Admission(gate, sessions=sessions)
        app.state.hub = hub
        app.state.room_limits = room_limits = make_room_limits(settings.redis_url)
        app.state.room_policy = RoomPolicy.from_settings(settings)
        desk = EstimateDesk(
            sessions=sessions,
            cache=app.state.estimates,
            network=partial(load_network, settings.logistics_file),
        )
        app.state.estimate_desk = desk
        # What a pin carries to every city: orders estimate it, streams (which import nothing
        # of orders) call it with their session.
        app.state.pin_estimates = partial(
            room_estimates, cache=app.state.estimates, network=load_network(settings.logistics_file)
        )
        winners = WinnerDesk(
            sessions=sessions,
            settings=settings,
            admission=app.state.admission,
            announcer=room_events,
            books=app.state.rate_books,
        )
        app.state.winner_desk = winners
        app.state.room_requests = {"estimate": desk.from_room}
        sandbox = SandboxProvider(
            database_url=storage_url(settings.resolved_database_url, settings.data_dir),
            secret=settings.resolved_webhook_secret(),
            webhook_url=settings.resolved_webhook_url(),
        )
        app.state.payment_providers = {sandbox.name: sandbox}
        feed = NotificationFeed(sessions, settings.notification_poll_seconds)
        app.state.notifications = feed
        try:
            await sandbox.start()
            await hub.start()
            await feed.start()
            yield
        finally:
            await job_queue.close()  # what the outbox still holds goes to the broker first
            await feed.close()
            await winners.close()  # placed and answered before the rooms close
            await hub.close()
            await room_limits.close()
            await desk.close()
            await gate.close()
            await login_throttle.close()
            await sandbox.close()
            await engine.dispose()

    app = FastAPI(
        title="livecommerce",
        version=__version__,
        description=(
            "Cross-border livestream shopping: accounts, multilingual catalog, stock, live "
            "rooms, landed-cost quotes, orders and payments."
        ),
        lifespan=lifespan,
    )
    app.state.settings = settings
    # The words for the statuses a buyer's notices carry (livecommerce/notifications/routes.py).
    app.state.notice_labels = {
        ORDER_STATUS: {status.value: label for status, label in STATUS_LABELS.items()},
        SHIPMENT_STATUS: SHIPMENT_STATUS_LABELS,
    }
    # Flash-sale orders answered before the request machinery: losers refused, winners
    # placed. Added first, so it sits inside every other middleware (CORS, the body limit,
    # the server-error layer) and its answers pass them as the route's do; the exception
    # layer inside it, it applies itself with the handlers below.
    app.add_middleware(OrderFrontDoor)
    app.state.rate_books = RateBookCache()  # per process, reloaded when a rate is added
    # per process; see livecommerce/orders/estimates.py
    app.state.estimates = EstimateCache(books=app.state.rate_books)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_credentials=False,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Accept-Language", "Idempotency-Key"],
        )
    # Multipart framing adds a little to the file itself.
    app.add_middleware(BodySizeLimit, limit=settings.max_upload_bytes + 64 * 1024)
    app.add_middleware(OptionsAnswer, cors=bool(settings.cors_origins))
    # Around every HTTP answer (the front door's refusals included); pure ASGI and a few
    # list operations per response, so the rush paths keep their cost.
    app.add_middleware(SecurityHeaders)
    # Outermost but for the server-error layer (added last): sockets skip the HTTP layers.
    app.add_middleware(SocketRoutes, routes=[*room_routes, *notification_routes])
    install_error_handlers(app)

    api = APIRouter(prefix="/api/v1", responses=API_ERROR_RESPONSES)
    api.include_router(accounts_router)
    api.include_router(catalog_router)
    api.include_router(rates_router)
    api.include_router(streams_router)
    api.include_router(orders_router)
    api.include_router(fulfillment_router)
    api.include_router(notifications_router)
    app.include_router(api)
    app.include_router(
        sandbox_router, responses=error_responses(400, 402, 403, 404, 409, 413, 422, 503)
    )
    app.router.routes.extend(room_routes)
    app.router.routes.extend(notification_routes)
    app.include_router(web_router)
    app.mount("/static", static_app(), name="static")

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], responses=error_responses(503))
    async def readyz(request: Request) -> dict[str, str]:
        try:
            await ping(request.app.state.engine)
        except Exception as exc:
            log.warning("readiness check failed: %s", exc)
            raise ServiceUnavailable(details={"database": "unreachable"}) from exc
        try:
            await request.app.state.broker.ping()
        except Exception as exc:
            log.warning("readiness check failed: %s", exc)
            raise ServiceUnavailable(details={"rooms": "unreachable"}) from exc
        ready = {"status": "ok", "database": "ok", "rooms": "ok"}
        # A dead scheduler stops every periodic job while the workers look healthy: its
        # heartbeat tells (livecommerce/jobs.py). Never recorded: nothing to report yet.
        try:
            scheduler = await jobs.scheduler_health(request.app.state.settings)
        except Exception as exc:
            log.warning("readiness check failed: scheduler heartbeat unreadable: %s", exc)
            raise ServiceUnavailable(details={"scheduler": "unreachable"}) from exc
        if scheduler is not None:
            if scheduler["scheduler"] != "ok":
                log.warning(
                    "readiness check failed: the scheduler's last heartbeat is %s s old "
                    "(stale after %s s): periodic jobs are not running",
                    scheduler["age_seconds"],
                    scheduler["stale_after_seconds"],
                )
                raise ServiceUnavailable(details=scheduler)
            ready["scheduler"] = "ok"
        return ready

    return app
